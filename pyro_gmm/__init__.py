r"""Reparameterizable mixtures for PyTorch / Pyro.

Thin adapter over :mod:`shared_math` (Graves 2016, "Stochastic Backpropagation through
Mixture Density Distributions", arXiv:1607.05690):

* :class:`DiagNormalMixture`: a Pyro ``TorchDistribution`` with ``rsample`` differentiable
  with respect to the locations, scales and mixture weights;
* :class:`ReparamMixtureSameFamily`: drop-in for ``pyro.distributions.MixtureSameFamily``
  (``Categorical`` mixing; ``Normal``, ``Logistic``, ``Laplace``, ``Cauchy``, ``Gumbel`` or
  ``StudentT`` components, scalar or ``.to_event(1)``) with ``rsample``;
* :class:`AutoDiagonalNormalMixture`: an autoguide with a K-component diagonal mixture over
  the packed latent vector;
* :class:`MultivariateNormalMixture` and :class:`AutoMultivariateNormalMixture`: the same with
  full-covariance (``scale_tril``) components;
* :class:`Stratified_ELBO`: a drop-in ``SVI`` loss that stratifies mixture guide sites over
  their component (one reparameterized draw per component, weighted by :math:`\pi_k`), so
  mixture weights learn when the modes are far apart (Morningstar et al. 2021).
"""

try:
    import pyro  # noqa: F401  (imported to fail early with the install hint below)
    import torch  # noqa: F401  (idem)
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("pyro_gmm needs PyTorch and Pyro; install them with `pip install gmm-reparam[pyro]`") from error

from shared_math import __version__

from .autoguide import AutoDiagonalNormalMixture
from .distribution import DiagNormalMixture
from .full_covariance import AutoMultivariateNormalMixture, MultivariateNormalMixture
from .mixture_same_family import ReparamMixtureSameFamily
from .objectives import Stratified_ELBO

__all__ = [
    "__version__",
    "AutoDiagonalNormalMixture",
    "AutoMultivariateNormalMixture",
    "DiagNormalMixture",
    "MultivariateNormalMixture",
    "ReparamMixtureSameFamily",
    "Stratified_ELBO",
]
