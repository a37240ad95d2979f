"""The mutation-testing list stays current, and the harness applies mutants as it says.

``make mutants`` (``tests/mutants/run.py``) reports a mutant whose snippet it cannot find as
"stale"; this test fails as soon as that happens, so whoever moves or edits the mutated code
updates ``tests/mutants/mutants.py`` in the same change.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

MUTANTS_DIR = Path(__file__).resolve().parent / "mutants"
sys.path.insert(0, str(MUTANTS_DIR))

from mutants import MUTANTS
from run import ROOT, apply


def test_mutant_ids_are_unique():
    ids = [mutant.id for mutant in MUTANTS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: mutant.id)
def test_every_mutant_applies_exactly_once(mutant):
    path = ROOT / mutant.path
    assert path.is_file(), f"{mutant.id}: {mutant.path} no longer exists (stale; update tests/mutants/mutants.py)"
    count = path.read_text(encoding="utf-8").count(mutant.original)
    assert count == 1, f"{mutant.id}: snippet found {count} times in {mutant.path} (update tests/mutants/mutants.py)"
    assert mutant.replacement != mutant.original
    for focus in mutant.focus:
        assert (ROOT / focus.split("::")[0]).exists(), f"{mutant.id}: focus {focus} does not exist"


def test_apply_reports_stale_and_ambiguous(tmp_path):
    from mutants import Mutant

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "code.py").write_text("a = 1\nb = 2\nb = 2\n", encoding="utf-8")

    def make(original):
        return Mutant("m", "pkg/code.py", original, "a = 3\n", "test")

    assert apply(make("c = 1\n"), tmp_path) == "stale"
    assert apply(Mutant("m", "pkg/missing.py", "a", "b", "test"), tmp_path) == "stale"
    assert apply(make("b = 2\n"), tmp_path) == "ambiguous"
    assert (tmp_path / "pkg" / "code.py").read_text(encoding="utf-8") == "a = 1\nb = 2\nb = 2\n"
    assert apply(make("a = 1\n"), tmp_path) == "applied"
    assert (tmp_path / "pkg" / "code.py").read_text(encoding="utf-8") == "a = 3\nb = 2\nb = 2\n"
