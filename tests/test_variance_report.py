"""The variance study's output machinery (``benchmarks/variance/report.py``): generated
blocks of ``docs/estimators.md`` are replaced in place, missing ones appended."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.variance.report import update_generated_blocks


def test_generated_blocks_are_replaced_in_place(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text("intro\n<!-- generated:a -->\nold\n<!-- /generated:a -->\noutro\n")
    update_generated_blocks(path, {"a": "new", "b": "added"})
    text = path.read_text()
    assert "old" not in text and "new" in text and text.index("outro") < text.index("added")
    assert text.startswith("intro\n")
