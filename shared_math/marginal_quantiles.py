r"""Quantiles of the one-dimensional marginals of a diagonal Gaussian mixture.

The marginal of coordinate :math:`d` is the 1-D mixture
:math:`F_d(t) = \sum_k \pi_k\,\Phi\big((t-\mu_{kd})/\sigma_{kd}\big)`; its quantile
:math:`F_d^{-1}(q)` has no closed form, so it is found by bisection on
:func:`shared_math.log_cdf` (log space, so both tails stay resolved).  The root lies between
the smallest and the largest component quantile; the bracket used,
:math:`[\min_k(\mu_{kd}-c\sigma_{kd}),\ \max_k(\mu_{kd}+c\sigma_{kd})]` with :math:`c=40`,
contains every quantile representable in float64 (:math:`\Phi(-40)\approx 4\cdot10^{-350}`).

Used by the autoguides for ``median`` and ``quantiles`` (per-coordinate marginals, mapped
through each latent site's monotone transform).

**Edge values** (the same as a Normal's ``icdf`` in torch and ``ndtri`` in JAX, so the same
as ``AutoDiagonalNormal.quantiles`` in both frameworks): :math:`q=0` gives :math:`-\infty`,
:math:`q=1` gives :math:`+\infty`, and :math:`q` outside :math:`[0, 1]` or NaN gives NaN
(no exception, so it also holds inside ``jax.jit``).
"""

from __future__ import annotations

import math

from ._backend import promote, sequential_scan
from ._typing import Array, Namespace
from .mixture import log_cdf

#: Half-width of the bisection bracket in units of the component scales.
BRACKET_HALF_WIDTH = 40.0


def _bisection_steps(xp, dtype):
    # Each step halves the bracket; ~2.2 x (mantissa bits) steps bring a bracket of any
    # realistic width (up to ~1e8 times the answer's scale) below one unit in the last place.
    return 115 if xp.finfo(dtype).eps < 1e-10 else 55


def marginal_quantile(q: Array, locs: Array, scales: Array, logits: Array, *, xp: Namespace | None = None) -> Array:
    r"""Quantile :math:`F_d^{-1}(q)` of every coordinate's marginal mixture.

    A fixed number of bisection steps (115 in float64, 55 in float32) through
    ``sequential_scan`` (``jax.lax.scan`` for JAX: one compiled step).

    ``q`` broadcasts against ``batch_shape + (D,)``; values in :math:`(0, 1)` are found by
    bisection, 0 and 1 give :math:`\mp\infty` and anything else (outside :math:`[0, 1]`,
    NaN) gives NaN.  ``locs``/``scales`` have shape ``(..., K, D)`` and ``logits``
    ``(..., K)``.  Returns the broadcast shape of ``q`` and ``batch_shape + (D,)``.  Not
    differentiable (bisection).
    """
    xp, (q, locs, scales, logits) = promote(q, locs, scales, logits, xp=xp)
    locs_by_dim = xp.moveaxis(locs, -1, -2)  # (..., D, K): one 1-D mixture per coordinate
    scales_by_dim = xp.moveaxis(scales, -1, -2)
    logits_by_dim = logits[..., None, :]
    lower = xp.min(locs_by_dim - BRACKET_HALF_WIDTH * scales_by_dim, axis=-1)
    upper = xp.max(locs_by_dim + BRACKET_HALF_WIDTH * scales_by_dim, axis=-1)
    inside = (q > 0.0) & (q < 1.0)
    log_q = xp.log(xp.where(inside, q, xp.full_like(q, 0.5)))  # edge values are set at the end
    shape = tuple(xp.broadcast_arrays(log_q, lower)[0].shape)
    lower = xp.broadcast_to(lower, shape)
    upper = xp.broadcast_to(upper, shape)

    def halve(bracket, _):
        lower, upper = bracket
        middle = 0.5 * (lower + upper)
        below = log_cdf(middle, locs_by_dim, scales_by_dim, logits_by_dim, xp=xp) < log_q
        return (xp.where(below, middle, lower), xp.where(below, upper, middle)), ()

    steps = xp.zeros((_bisection_steps(xp, lower.dtype),), dtype=lower.dtype)
    (lower, upper), _ = sequential_scan(halve, (lower, upper), (steps,), xp)
    quantile = 0.5 * (lower + upper)
    quantile = xp.where(inside, quantile, xp.full_like(quantile, math.nan))
    quantile = xp.where(q == 0.0, xp.full_like(quantile, -math.inf), quantile)
    return xp.where(q == 1.0, xp.full_like(quantile, math.inf), quantile)
