"""Sphinx configuration: the API reference of gmm-reparam and its narrative pages.

Build with ``make docs`` (warnings are errors).  The narrative pages are the Markdown files
of this folder (MyST); the API pages document every public name of ``shared_math``,
``pyro_gmm`` and ``numpyro_gmm`` with autodoc.  Cross-references to PyTorch, Pyro, NumPyro
and JAX go through intersphinx; its inventories are written into ``_build/inventories`` by
``_intersphinx.py`` (for the names these docs cite) and read from there first, so a build
needs no network, and from the projects' sites second.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import shared_math

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _intersphinx

project = "gmm-reparam"
author = "the gmm-reparam developers"
copyright = "2026, the gmm-reparam developers"
release = version = shared_math.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {"undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_numpy_docstring = False

_INVENTORIES = Path(__file__).resolve().parent / "_build" / "inventories"
_intersphinx.write(_INVENTORIES)
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", (str(_INVENTORIES / "python.inv"), None)),
    "torch": ("https://docs.pytorch.org/docs/stable", (str(_INVENTORIES / "torch.inv"), None)),
    "pyro": ("https://docs.pyro.ai/en/stable", (str(_INVENTORIES / "pyro.inv"), None)),
    "numpyro": ("https://num.pyro.ai/en/stable", (str(_INVENTORIES / "numpyro.inv"), None)),
    "jax": ("https://docs.jax.dev/en/latest", (str(_INVENTORIES / "jax.inv"), None)),
}
intersphinx_timeout = 5

html_theme = "alabaster"
html_title = f"gmm-reparam {release}"
html_static_path: list[str] = []
