r"""Backend-agnostic maths of reparameterizable mixtures (the public face of the core).

Written once against the Python array API (through ``array-api-compat``): every function
takes NumPy, PyTorch, JAX (or any standard) arrays and returns arrays of the same
namespace, dtype and device.  Importing this package imports neither torch nor JAX.

Modules: :mod:`~shared_math.families` (component families as tables of standardized
functions), :mod:`~shared_math.mixture` (densities, CDFs, moments, sampling from noise),
:mod:`~shared_math.estimators` (the sample-gradient estimators and their registry),
:mod:`~shared_math.sampled` (derivatives of the component CDFs in their parameters, exact or
by Graves' Eq. 9),
:mod:`~shared_math.validation`, :mod:`~shared_math.initialization`,
:mod:`~shared_math.marginal_quantiles`; the private :mod:`~shared_math._sweeps` (the O(N·K·D)
sweeps), :mod:`~shared_math._backend` (namespace dispatch, special functions) and
:mod:`~shared_math._special` (array-API special functions).

Method: Graves (2016), "Stochastic Backpropagation through Mixture Density
Distributions", arXiv:1607.05690; notation, derivation and algorithm in ``docs/design.md``.
"""

from ._backend import parameter_dtype
from .estimators import (
    AUTO_ESTIMATOR,
    ESTIMATOR_CHOICES,
    ESTIMATORS,
    Estimator,
    hybrid_jvp,
    hybrid_vjp,
    implicit_jvp,
    implicit_vjp,
    rao_blackwell_jvp,
    rao_blackwell_vjp,
    resolve_estimator,
    sample_jvp,
    sample_vjp,
)
from .families import FAMILIES, LocationScaleFamily, get_family
from .initialization import component_offsets
from .marginal_quantiles import marginal_quantile
from .sampled import CDF_GRADIENT_CHOICES, DEFAULT_CDF_GRADIENT_SAMPLES, resolve_cdf_gradient
from .mixture import (
    cdf,
    conditional_log_weights,
    distributional_transform,
    log_cdf,
    log_prob,
    mean,
    one_hot,
    responsibilities,
    sample_from_noise,
    variance,
)
from .validation import (
    broadcast_shapes,
    cdf_gradient_settings,
    check_parameter_values,
    check_value_shape,
    guide_settings,
    mixture_shapes,
)

__all__ = [
    "AUTO_ESTIMATOR",
    "CDF_GRADIENT_CHOICES",
    "DEFAULT_CDF_GRADIENT_SAMPLES",
    "ESTIMATORS",
    "ESTIMATOR_CHOICES",
    "Estimator",
    "FAMILIES",
    "LocationScaleFamily",
    "broadcast_shapes",
    "cdf",
    "cdf_gradient_settings",
    "check_parameter_values",
    "check_value_shape",
    "component_offsets",
    "conditional_log_weights",
    "distributional_transform",
    "get_family",
    "guide_settings",
    "hybrid_jvp",
    "hybrid_vjp",
    "implicit_jvp",
    "implicit_vjp",
    "log_cdf",
    "log_prob",
    "marginal_quantile",
    "mean",
    "mixture_shapes",
    "one_hot",
    "parameter_dtype",
    "rao_blackwell_jvp",
    "rao_blackwell_vjp",
    "resolve_cdf_gradient",
    "resolve_estimator",
    "responsibilities",
    "sample_from_noise",
    "sample_jvp",
    "sample_vjp",
    "variance",
]
