"""The distribution: ``python -m build`` makes an sdist and a wheel, and the wheel installs
into fresh virtual environments with one adapter's extra only.

Run by ``make test-wheel`` (marker ``packaging``; deselected from ``make test``, since it
creates two virtual environments and installs JAX or PyTorch into them, about a minute).

* ``[numpyro]`` only: ``import numpyro_gmm`` works and imports neither torch nor Pyro;
  ``import pyro_gmm`` fails with an ``ImportError`` that names the ``[pyro]`` extra.
* ``[pyro]`` only: the reverse.
* Both: ``import shared_math`` imports neither torch nor JAX; every package reports the
  one version of ``shared_math/_version.py`` and ships ``py.typed``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.packaging

VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "shared_math" / "_version.py").read_text()).group(1)


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(outdir), str(ROOT)])
    wheels = list(outdir.glob("*.whl"))
    sdists = list(outdir.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(outdir.iterdir())
    assert wheels[0].name.startswith(f"gmm_reparam-{VERSION}-")
    return wheels[0]


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("shared_math", "pyro_gmm", "numpyro_gmm"):
        assert f"{package}/__init__.py" in names and f"{package}/py.typed" in names, package
    assert not any(name.startswith(("tests/", "benchmarks/", "examples/")) for name in names)


CHECKS = {
    "numpyro": (
        "import sys, shared_math\n"
        "assert 'torch' not in sys.modules and 'jax' not in sys.modules, 'shared_math pulled in a backend'\n"
        "import numpyro_gmm\n"
        f"assert numpyro_gmm.__version__ == shared_math.__version__ == {VERSION!r}\n"
        "assert 'torch' not in sys.modules and 'pyro' not in sys.modules, sorted(sys.modules)\n"
        "try:\n"
        "    import pyro_gmm\n"
        "except ImportError as error:\n"
        "    assert 'gmm-reparam[pyro]' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('pyro_gmm imported without torch')\n"
    ),
    "pyro": (
        "import sys, shared_math\n"
        "assert 'torch' not in sys.modules and 'jax' not in sys.modules, 'shared_math pulled in a backend'\n"
        "import pyro_gmm\n"
        f"assert pyro_gmm.__version__ == shared_math.__version__ == {VERSION!r}\n"
        "assert 'jax' not in sys.modules and 'numpyro' not in sys.modules, sorted(sys.modules)\n"
        "try:\n"
        "    import numpyro_gmm\n"
        "except ImportError as error:\n"
        "    assert 'gmm-reparam[numpyro]' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('numpyro_gmm imported without JAX')\n"
    ),
}


@pytest.mark.parametrize("extra", sorted(CHECKS))
def test_wheel_installs_with_one_extra(wheel, extra, tmp_path):
    environment = tmp_path / f"venv-{extra}"
    run([sys.executable, "-m", "venv", str(environment)])
    python = environment / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), f"{wheel}[{extra}]"])
    installed = run([str(python), "-m", "pip", "list", "--format=freeze"]).lower()
    other = {"numpyro": ("torch==", "pyro-ppl=="), "pyro": ("jax==", "numpyro==")}[extra]
    assert not any(name in installed for name in other), installed
    run([str(python), "-c", CHECKS[extra]], cwd=tmp_path)  # not the repository: the installed wheel
