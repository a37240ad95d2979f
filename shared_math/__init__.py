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
from .stratified import (
    Stratum,
    check_term_axes,
    component_draws_from_noise,
    stratified_log_weight,
    stratified_sum,
    term_log_weights,
)
from .validation import broadcast_shapes, check_parameter_values, mixture_shapes

__all__ = [
    "component_draws_from_noise",
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
    "check_term_axes",
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
    "stratified_log_weight",
    "stratified_sum",
    "Stratum",
    "term_log_weights",
    "sum_to_shape",
    "variance",
]
