"""NumPyro adapter of gmm-reparam: diagonal Gaussian mixtures whose samples are
differentiable with respect to locations, scales and mixture weights (Graves 2016).

Public names: :class:`DiagNormalMixture`, :class:`ReparamMixtureSameFamily`,
:class:`AutoDiagonalNormalMixture`, and for full covariances :class:`MultivariateNormalMixture`
and :class:`AutoMultivariateNormalMixture`.  The maths is in :mod:`shared_math`.
"""

try:
    import jax  # noqa: F401
    import numpyro  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "numpyro_gmm needs JAX and NumPyro; install them with: pip install gmm-reparam[numpyro]"
    ) from error

from .autoguide import AutoDiagonalNormalMixture
from .distributions import DiagNormalMixture, ReparamMixtureSameFamily

# Full-covariance mixtures (project issue 12).
from .full_covariance import AutoMultivariateNormalMixture, MultivariateNormalMixture

__all__ = [
    "AutoDiagonalNormalMixture",
    "DiagNormalMixture",
    "ReparamMixtureSameFamily",
    "AutoMultivariateNormalMixture",
    "MultivariateNormalMixture",
]
