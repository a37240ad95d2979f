"""Reparameterizable diagonal Gaussian mixtures for PyTorch / Pyro.

Thin adapter over :mod:`shared_math` (Graves 2016, "Stochastic Backpropagation through
Mixture Density Distributions", arXiv:1607.05690):

* :class:`DiagNormalMixture`: a Pyro ``TorchDistribution`` with ``rsample`` differentiable
  with respect to the locations, scales and mixture weights;
* :class:`ReparamMixtureSameFamily`: drop-in for ``pyro.distributions.MixtureSameFamily``
  (``Categorical`` mixing, ``Normal`` or ``Normal(...).to_event(1)`` components) with
  ``rsample``;
* :class:`AutoDiagonalNormalMixture`: an autoguide with a K-component diagonal mixture over
  the packed latent vector;
* :class:`MultivariateNormalMixture` and :class:`AutoMultivariateNormalMixture`: the same with
  full-covariance (``scale_tril``) components.
"""

try:
    import pyro  # noqa: F401
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "pyro_gmm needs PyTorch and Pyro; install them with `pip install gmm-reparam[pyro]`"
    ) from error

from .autoguide import AutoDiagonalNormalMixture
from .distribution import DiagNormalMixture
from .mixture_same_family import ReparamMixtureSameFamily

# Full-covariance mixtures (project issue 12).
from .full_covariance import AutoMultivariateNormalMixture, MultivariateNormalMixture

__all__ = [
    "AutoDiagonalNormalMixture",
    "DiagNormalMixture",
    "ReparamMixtureSameFamily",
    "AutoMultivariateNormalMixture",
    "MultivariateNormalMixture",
]
