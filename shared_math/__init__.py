"""Backend-agnostic maths of reparameterizable diagonal Gaussian mixtures.

Written once against the Python array API (through ``array-api-compat``): every function
takes NumPy, PyTorch, JAX (or any standard) arrays and returns arrays of the same
namespace, dtype and device.  Importing this package imports neither torch nor JAX.

Method: Graves (2016), "Stochastic Backpropagation through Mixture Density
Distributions", arXiv:1607.05690; notation and algorithm in ``DESIGN.md`` §1.
"""

from .gradients import (
    chosen_component_vjp,
    hybrid_jvp,
    hybrid_vjp,
    implicit_jvp,
    ESTIMATORS,
    implicit_vjp,
    rao_blackwell_jvp,
    rao_blackwell_vjp,
    resolve_estimator,
    sample_jvp,
    sample_vjp,
    sum_to_shape,
)
from .initialization import component_offsets
from .mixture import (
    cdf,
    conditional_log_weights,
    distributional_transform,
    log_cdf,
    log_prob,
    logsumexp,
    mean,
    one_hot,
    sample_from_noise,
    variance,
)
from .validation import broadcast_shapes, check_parameter_values, mixture_shapes

# --- Full-covariance mixtures (``scale_tril``; project issue 12) -------------------------
from .full_covariance import (
    FULL_COVARIANCE_AUTO_ESTIMATOR,
    FULL_COVARIANCE_ESTIMATORS,
    check_full_covariance_values,
    full_covariance_component_samples,
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

__all__ = [
    "component_offsets",
    "ESTIMATORS",
    "resolve_estimator",
    "rao_blackwell_jvp",
    "rao_blackwell_vjp",
    "sample_jvp",
    "sample_vjp",
    "broadcast_shapes",
    "cdf",
    "check_parameter_values",
    "chosen_component_vjp",
    "conditional_log_weights",
    "distributional_transform",
    "hybrid_jvp",
    "hybrid_vjp",
    "implicit_jvp",
    "implicit_vjp",
    "log_cdf",
    "log_prob",
    "logsumexp",
    "mean",
    "mixture_shapes",
    "one_hot",
    "sample_from_noise",
    "sum_to_shape",
    "variance",
    # full-covariance mixtures
    "FULL_COVARIANCE_AUTO_ESTIMATOR",
    "FULL_COVARIANCE_ESTIMATORS",
    "check_full_covariance_values",
    "full_covariance_component_samples",
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
