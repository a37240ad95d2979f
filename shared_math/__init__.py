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
:mod:`~shared_math.marginal_quantiles`, :mod:`~shared_math.stratified` (the stratified
objective's weighting); the private :mod:`~shared_math._sweeps` (the O(N·K·D)
sweeps), :mod:`~shared_math._backend` (namespace dispatch, special functions) and
:mod:`~shared_math._special` (array-API special functions).

Method: Graves (2016), "Stochastic Backpropagation through Mixture Density
Distributions", arXiv:1607.05690; notation, derivation and algorithm in ``docs/design.md``.
"""

from ._backend import parameter_dtype
from ._version import __version__
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

# --- Full-covariance mixtures (``scale_tril``; project issue 12) -------------------------
from .full_covariance import (
    FULL_COVARIANCE_AUTO_ESTIMATOR,
    FULL_COVARIANCE_ESTIMATORS,
    check_full_covariance_values,
    full_covariance_component_samples,
    full_covariance_component_scales,
    full_covariance_conditional_log_weights,
    full_covariance_covariance,
    full_covariance_distributional_transform,
    full_covariance_hybrid_jvp,
    full_covariance_hybrid_vjp,
    full_covariance_implicit_jvp,
    full_covariance_implicit_vjp,
    full_covariance_log_prob,
    full_covariance_mean,
    full_covariance_rao_blackwell_jvp,
    full_covariance_rao_blackwell_vjp,
    full_covariance_sample_from_noise,
    full_covariance_sample_jvp,
    full_covariance_sample_vjp,
    full_covariance_shapes,
    full_covariance_variance,
    resolve_full_covariance_estimator,
)
from .initialization import component_offsets
from .marginal_quantiles import marginal_quantile
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
from .sampled import CDF_GRADIENT_CHOICES, DEFAULT_CDF_GRADIENT_SAMPLES, resolve_cdf_gradient
from .stratified import (
    Stratum,
    check_term_axes,
    component_draws_from_noise,
    stratified_log_weight,
    stratified_sum,
    term_log_weights,
)
from .validation import (
    broadcast_shapes,
    cdf_gradient_settings,
    check_parameter_values,
    check_value_shape,
    guide_settings,
    learn_weights_setting,
    mixture_shapes,
)

__all__ = [
    "__version__",
    "AUTO_ESTIMATOR",
    "broadcast_shapes",
    "cdf",
    "CDF_GRADIENT_CHOICES",
    "cdf_gradient_settings",
    "check_parameter_values",
    "check_term_axes",
    "check_value_shape",
    "component_draws_from_noise",
    "component_offsets",
    "conditional_log_weights",
    "DEFAULT_CDF_GRADIENT_SAMPLES",
    "distributional_transform",
    "Estimator",
    "ESTIMATOR_CHOICES",
    "ESTIMATORS",
    "FAMILIES",
    "get_family",
    "guide_settings",
    "hybrid_jvp",
    "hybrid_vjp",
    "implicit_jvp",
    "implicit_vjp",
    "learn_weights_setting",
    "LocationScaleFamily",
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
    "stratified_log_weight",
    "stratified_sum",
    "Stratum",
    "term_log_weights",
    "variance",
    # full-covariance mixtures
    "FULL_COVARIANCE_AUTO_ESTIMATOR",
    "FULL_COVARIANCE_ESTIMATORS",
    "check_full_covariance_values",
    "full_covariance_component_samples",
    "full_covariance_component_scales",
    "full_covariance_conditional_log_weights",
    "full_covariance_covariance",
    "full_covariance_distributional_transform",
    "full_covariance_hybrid_jvp",
    "full_covariance_hybrid_vjp",
    "full_covariance_implicit_jvp",
    "full_covariance_implicit_vjp",
    "full_covariance_log_prob",
    "full_covariance_mean",
    "full_covariance_rao_blackwell_jvp",
    "full_covariance_rao_blackwell_vjp",
    "full_covariance_sample_from_noise",
    "full_covariance_sample_jvp",
    "full_covariance_sample_vjp",
    "full_covariance_shapes",
    "full_covariance_variance",
    "resolve_full_covariance_estimator",
]
