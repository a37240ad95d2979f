# Set-up is done by the targets themselves: a fresh clone needs only `make test` or `make demo`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
export JAX_PLATFORMS ?= cpu

.PHONY: test test-all test-wheel lint docs demo bench venv clean mutants

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e '.[pyro,numpyro,test,demo,docs,lint]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 tests

test-all: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 -m "" tests

test-wheel: $(STAMP)
	$(PY) -m pytest -q -p no:xdist -m packaging tests/test_packaging.py

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

docs: $(STAMP)
	rm -rf docs/_build/html
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

# Mutation testing (not run by CI; takes a while): docs/mutants.md.
mutants: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) tests/mutants/run.py

demo: $(STAMP)
	$(PY) examples/demo.py

bench: $(STAMP)
	$(PIP) install --quiet -c constraints.txt -e '.[bench]'
	$(PY) benchmarks/goals.py --large --write docs/benchmarks.md
	$(PY) benchmarks/families_speed.py --write docs/benchmarks-families.md
	$(PY) benchmarks/run_all.py
	$(PY) -m benchmarks.variance

clean:
	rm -rf $(VENV) docs/_build
