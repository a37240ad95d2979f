r"""NumPyro adapter of gmm-reparam: mixtures whose samples are differentiable with respect
to locations, scales, shape parameters and mixture weights (Graves 2016).

Public names: :class:`DiagNormalMixture`, :class:`ReparamMixtureSameFamily` (components of
every family of :mod:`shared_math.families`, and ``MultivariateNormal``),
:class:`AutoDiagonalNormalMixture`, for full covariances :class:`MultivariateNormalMixture`
and :class:`AutoMultivariateNormalMixture`, and :class:`Stratified_ELBO` (a drop-in ``SVI`` loss
that stratifies mixture guide sites over their component, so that mixture weights learn
when the modes are far apart; Morningstar et al. 2021).  The maths is in :mod:`shared_math`.
"""

try:
    import jax  # noqa: F401  (imported to fail early with the install hint below)
    import numpyro  # noqa: F401  (idem)
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "numpyro_gmm needs JAX and NumPyro; install them with: pip install gmm-reparam[numpyro]"
    ) from error

from shared_math import __version__

from .autoguide import AutoDiagonalNormalMixture
from .distributions import DiagNormalMixture, ReparamMixtureSameFamily
from .full_covariance import AutoMultivariateNormalMixture, MultivariateNormalMixture
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
