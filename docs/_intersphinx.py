"""Offline intersphinx inventories for the external names these docs cite.

Sphinx's intersphinx links ``:class:`torch.Tensor``` and the like to other projects' docs
through each project's ``objects.inv``.  Builds here have no network, so :func:`write`
writes small inventories (Sphinx's version-2 format) for the names gmm-reparam's docs cite,
with the addresses of those projects' documentation pages; ``conf.py`` reads them first
and the projects' own inventories second.  Add a name here when a docstring cites a new one.
"""

from __future__ import annotations

import zlib
from pathlib import Path

#: project -> (display name, version, [(name, role, page#anchor)]); pages relative to the
#: project's documentation root given in ``conf.py``.
INVENTORIES = {
    "python": (
        "Python",
        "3.11",
        [
            ("tuple", "class", "library/stdtypes.html#tuple"),
            ("float", "class", "library/functions.html#float"),
            ("int", "class", "library/functions.html#int"),
            ("str", "class", "library/stdtypes.html#str"),
            ("ValueError", "exception", "library/exceptions.html#ValueError"),
        ],
    ),
    "torch": (
        "PyTorch",
        "2.13",
        [
            ("torch.Tensor", "class", "tensors.html#torch.Tensor"),
            ("torch.Size", "class", "size.html#torch.Size"),
            ("torch.autograd.Function", "class", "autograd.html#torch.autograd.Function"),
            (
                "torch.distributions.distribution.Distribution",
                "class",
                "distributions.html#torch.distributions.distribution.Distribution",
            ),
            (
                "torch.distributions.mixture_same_family.MixtureSameFamily",
                "class",
                "distributions.html#torch.distributions.mixture_same_family.MixtureSameFamily",
            ),
            ("torch.compile", "function", "generated/torch.compile.html#torch.compile"),
        ],
    ),
    "pyro": (
        "Pyro",
        "1.9.2",
        [
            (
                "pyro.distributions.torch_distribution.TorchDistribution",
                "class",
                "distributions.html#pyro.distributions.torch_distribution.TorchDistribution",
            ),
            (
                "pyro.distributions.torch_distribution.TorchDistributionMixin",
                "class",
                "distributions.html#pyro.distributions.torch_distribution.TorchDistributionMixin",
            ),
            ("pyro.distributions.MixtureSameFamily", "class", "distributions.html#mixturesamefamily"),
            ("pyro.infer.elbo.ELBO", "class", "inference_algos.html#pyro.infer.elbo.ELBO"),
            ("pyro.infer.trace_elbo.Trace_ELBO", "class", "inference_algos.html#pyro.infer.trace_elbo.Trace_ELBO"),
            (
                "pyro.infer.autoguide.AutoContinuous",
                "class",
                "infer.autoguide.html#pyro.infer.autoguide.AutoContinuous",
            ),
            (
                "pyro.infer.autoguide.AutoDiagonalNormal",
                "class",
                "infer.autoguide.html#pyro.infer.autoguide.AutoDiagonalNormal",
            ),
            (
                "pyro.infer.autoguide.AutoMultivariateNormal",
                "class",
                "infer.autoguide.html#pyro.infer.autoguide.AutoMultivariateNormal",
            ),
        ],
    ),
    "numpyro": (
        "NumPyro",
        "0.22.0",
        [
            (
                "numpyro.distributions.distribution.Distribution",
                "class",
                "distributions.html#numpyro.distributions.distribution.Distribution",
            ),
            (
                "numpyro.distributions.mixtures.MixtureSameFamily",
                "class",
                "distributions.html#numpyro.distributions.mixtures.MixtureSameFamily",
            ),
            ("numpyro.infer.elbo.ELBO", "class", "svi.html#numpyro.infer.elbo.ELBO"),
            ("numpyro.infer.elbo.Trace_ELBO", "class", "svi.html#numpyro.infer.elbo.Trace_ELBO"),
            (
                "numpyro.infer.autoguide.AutoContinuous",
                "class",
                "autoguide.html#numpyro.infer.autoguide.AutoContinuous",
            ),
            (
                "numpyro.infer.autoguide.AutoDiagonalNormal",
                "class",
                "autoguide.html#numpyro.infer.autoguide.AutoDiagonalNormal",
            ),
            (
                "numpyro.infer.autoguide.AutoMultivariateNormal",
                "class",
                "autoguide.html#numpyro.infer.autoguide.AutoMultivariateNormal",
            ),
        ],
    ),
    "jax": (
        "JAX",
        "0.10.2",
        [
            ("jax.custom_jvp", "class", "_autosummary/jax.custom_jvp.html#jax.custom_jvp"),
            ("jax.Array", "class", "_autosummary/jax.Array.html#jax.Array"),
            ("jax.jit", "function", "_autosummary/jax.jit.html#jax.jit"),
            ("jax.vmap", "function", "_autosummary/jax.vmap.html#jax.vmap"),
        ],
    ),
}


def write(folder):
    """Write ``<project>.inv`` for every entry of :data:`INVENTORIES` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for key, (project, version, entries) in INVENTORIES.items():
        header = (
            "# Sphinx inventory version 2\n"
            f"# Project: {project}\n# Version: {version}\n"
            "# The remainder of this file is compressed using zlib.\n"
        )
        body = "".join(f"{name} py:{role} 1 {page} -\n" for name, role, page in entries)
        (folder / f"{key}.inv").write_bytes(header.encode() + zlib.compress(body.encode()))
