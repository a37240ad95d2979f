"""The version of gmm-reparam: the one place it is set (``pyproject.toml`` reads it)."""

__version__ = "0.2.0"
