r"""Every Python file of the repository compiles without warnings, and no docstring holds a
backslash escape by accident (issue 11).

In a non-raw string, ``\m`` or ``\P`` is an invalid escape (a ``SyntaxWarning`` today, an
error in a future Python) and ``\a``, ``\b``, ``\f``, ``\n``, ``\r``, ``\t``, ``\v`` silently
become control characters: ``:math:`\frac`` would render as a form feed and "rac".  Docstrings
with LaTeX must be raw (``r\"\"\"``) or double every backslash.
"""

from __future__ import annotations

import io
import pathlib
import re
import tokenize
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("shared_math", "pyro_gmm", "numpyro_gmm", "tests", "examples", "benchmarks")
SOURCES = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py") if ".venv" not in path.parts)

#: A backslash (not itself escaped) followed by a letter.
_SINGLE_BACKSLASH_LETTER = re.compile(r"(?<!\\)(?:\\\\)*\\([A-Za-z])")


def _identifier(path):
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", SOURCES, ids=_identifier)
def test_compiles_without_warnings(path):
    source = path.read_text(encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(source, str(path), "exec")


def backslash_letters_in_docstrings(source):
    r"""``[(line, escape)]`` for every ``\x`` (``x`` a letter) inside a non-raw triple-quoted string."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.STRING:
            continue
        prefix = re.match(r"[A-Za-z]*", token.string).group(0)
        body = token.string[len(prefix) :]
        if "r" in prefix.lower() or not body.startswith(('"""', "'''")):
            continue
        found += [(token.start[0], "\\" + match.group(1)) for match in _SINGLE_BACKSLASH_LETTER.finditer(body)]
    return found


@pytest.mark.parametrize("path", SOURCES, ids=_identifier)
def test_no_backslash_escapes_in_non_raw_docstrings(path):
    assert backslash_letters_in_docstrings(path.read_text(encoding="utf-8")) == []


def test_the_checker_finds_what_it_should():
    r"""The checker itself: finds ``\m``, ``\f`` and ``\a`` in a non-raw docstring, not in a raw
    one, not a doubled backslash, not in a one-line string."""
    bad = 'def f():\n    """:math:`\\mu`, :math:`\\frac12`, \\arg"""\n'
    good = 'def f():\n    r""":math:`\\mu`"""\n    """:math:`\\\\mu`"""\n    x = "\\n"\n'
    assert [escape for _, escape in backslash_letters_in_docstrings(bad)] == ["\\m", "\\f", "\\a"]
    assert backslash_letters_in_docstrings(good) == []
