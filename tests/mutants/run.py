r"""Mutation testing: apply each curated one-edit bug in a scratch copy and run the fast suite.

Usage (``make mutants`` runs the first line; not part of CI)::

    python tests/mutants/run.py                       # every mutant, table to docs/mutants.md
    python tests/mutants/run.py --only vjp-no-mu-correction ties-take-full-correction
    python tests/mutants/run.py --timeout 600 --workers 2 --output /tmp/mutants.md

For each mutant of :data:`mutants.MUTANTS`:

1. the working tree (tracked and untracked files, without ``.git``, ``.venv`` and caches) is
   copied once, at the start, into a snapshot; each mutant gets a fresh copy of the snapshot,
   and the mutant's ``original`` snippet is replaced by its ``replacement`` there; a snippet found zero times is reported **stale**, more than
   once **ambiguous**, and nothing is run;
2. the copy is made the code under test: ``pytest`` runs with the copy as working directory
   and first on ``PYTHONPATH`` (ahead of the editable install of the repository), and the
   harness checks, before any test, that ``shared_math``, ``pyro_gmm`` and ``numpyro_gmm``
   import from the copy;
3. the mutant's ``focus`` tests run first, then (if they all pass) the whole fast suite
   (``make test``'s selection, less ``tests/test_mutants_list.py``, which fails on any
   applied mutant by design), both with ``-x -q``, in ``--workers``
   processes (``-n``; 1 means no xdist), under a per-mutant ``--timeout`` in seconds.

A mutant is **killed** when a test fails (the first failing test is reported),
**survived** when the whole fast suite passes, **timeout** when the time runs out.  The
unmutated copy is run first (``--skip-baseline`` to skip): if it fails, the run stops,
since every mutant would look killed.  The table (with the run time and the machine's load)
goes to ``docs/mutants.md`` unless ``--output`` says otherwise, followed by
``tests/mutants/notes.md`` (survivors explained, equivalent mutants, history).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from mutants import MUTANTS

IGNORED = (".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", "out", "*.egg-info", ".mypy_cache")
PACKAGES = ("shared_math", "pyro_gmm", "numpyro_gmm")
LIST_TEST = "tests/test_mutants_list.py"
NOTES = HERE / "notes.md"


def apply(mutant, root):
    """Apply ``mutant`` to the tree at ``root``: ``"applied"``, ``"stale"`` or ``"ambiguous"``."""
    path = root / mutant.path
    if not path.is_file():
        return "stale"
    text = path.read_text(encoding="utf-8")
    count = text.count(mutant.original)
    if count == 0:
        return "stale"
    if count > 1:
        return "ambiguous"
    path.write_text(text.replace(mutant.original, mutant.replacement), encoding="utf-8")
    return "applied"


def snapshot(destination):
    """Copy the working tree to ``destination`` once: every mutant starts from this state,
    whatever happens to the working tree during the run."""
    shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(*IGNORED))
    return destination


def environment(copy):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("JAX_PLATFORMS", "cpu")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports_from(copy, env):
    """Raise unless the packages import from ``copy`` (not from the repository's editable install)."""
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    print(importlib.import_module(name).__file__)"
    output = subprocess.run(
        [sys.executable, "-c", code, *PACKAGES], cwd=copy, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = [path for path in output if not Path(path).resolve().is_relative_to(Path(copy).resolve())]
    if outside:
        raise RuntimeError(f"the scratch copy is not what gets imported: {outside}")


def run_pytest(copy, env, targets, workers, deadline):
    """``(passed, first_failure, seconds)``; ``passed`` is ``None`` on timeout."""
    # The list's own freshness test fails on every applied mutant by design: not a kill.
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", f"--ignore={LIST_TEST}", *targets]
    command += ["-n", str(workers)] if workers > 1 else ["-p", "no:xdist"]
    started = time.perf_counter()
    remaining = max(1.0, deadline - time.monotonic())
    try:
        result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=remaining)
    except subprocess.TimeoutExpired:
        return None, "", time.perf_counter() - started
    seconds = time.perf_counter() - started
    if result.returncode == 0:
        return True, "", seconds
    if result.returncode == 5:  # no tests collected: the focus does not exist
        return True, "", seconds
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.MULTILINE)
    first = match.group(1) if match else f"pytest exit code {result.returncode}: {result.stdout[-300:]!r}"
    return False, first, seconds


def run_mutant(mutant, workers, timeout, source):
    """``{"status", "killed_by", "seconds"}`` of one mutant (``mutant`` ``None``: the baseline),
    in a fresh copy of the snapshot ``source``."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gmm-mutant-") as directory:
        copy = Path(directory) / "repo"
        shutil.copytree(source, copy)
        if mutant is not None:
            state = apply(mutant, copy)
            if state != "applied":
                return {"status": state, "killed_by": "", "seconds": 0.0}
        env = environment(copy)
        check_imports_from(copy, env)
        deadline = time.monotonic() + timeout
        stages = ([list(mutant.focus)] if mutant is not None and mutant.focus else []) + [["tests"]]
        for targets in stages:
            passed, failure, _ = run_pytest(copy, env, targets, workers, deadline)
            if passed is None:
                return {"status": "timeout", "killed_by": "", "seconds": time.perf_counter() - started}
            if not passed:
                return {"status": "killed", "killed_by": failure, "seconds": time.perf_counter() - started}
    return {"status": "survived", "killed_by": "", "seconds": time.perf_counter() - started}


def markdown(rows, header):
    lines = [
        header,
        "",
        "| mutant | file | bug | result | first failing test (or note) | s |",
        "|---|---|---|---|---|---|",
    ]
    for mutant, row in rows:
        detail = f"`{row['killed_by']}`" if row["killed_by"] else (mutant.note if row["status"] != "killed" else "")
        lines.append(
            f"| `{mutant.id}` | `{mutant.path}` | {mutant.description} | **{row['status']}** | {detail} | "
            f"{row['seconds']:.0f} |"
        )
    counts = {}
    for _, row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    lines += ["", "Totals: " + ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="mutant ids to run (default: all)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per mutant (default 1200)")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (1: none)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "docs" / "mutants.md"))
    arguments = parser.parse_args(argv)

    selected = [m for m in MUTANTS if not arguments.only or m.id in arguments.only]
    unknown = set(arguments.only or ()) - {m.id for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutant ids: {sorted(unknown)}")
    started = time.perf_counter()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gmm-mutants-snapshot-") as directory:
        source = snapshot(Path(directory) / "repo")
        if not arguments.skip_baseline:
            baseline = run_mutant(None, arguments.workers, arguments.timeout, source)
            print(f"baseline (no mutant): {baseline['status']} in {baseline['seconds']:.0f} s", flush=True)
            if baseline["status"] != "survived":
                print(f"the unmutated suite does not pass ({baseline}); stopping", file=sys.stderr)
                return 2
        for mutant in selected:
            row = run_mutant(mutant, arguments.workers, arguments.timeout, source)
            rows.append((mutant, row))
            print(f"{mutant.id}: {row['status']} {row['killed_by']} ({row['seconds']:.0f} s)", flush=True)
    elapsed = time.perf_counter() - started
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    load_after = os.getloadavg()
    header = (
        "# Mutation testing\n\n"
        f"`make mutants` (`tests/mutants/run.py`) on commit `{commit or 'unknown'}` "
        f"({datetime.date.today().isoformat()}): {len(rows)} mutants from `tests/mutants/mutants.py`, "
        f"each applied in a scratch copy and run against the focus tests, then the fast suite "
        f"(`-x`, {arguments.workers} worker(s), timeout {arguments.timeout:.0f} s per mutant).  "
        f"Total run time {elapsed / 60:.1f} min; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after, on {os.cpu_count()} CPUs."
    )
    text = markdown(rows, header)
    if NOTES.is_file():  # what the table cannot say: survivors explained, history
        text += "\n" + NOTES.read_text(encoding="utf-8")
    Path(arguments.output).write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(row["status"] == "killed" for _, row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
