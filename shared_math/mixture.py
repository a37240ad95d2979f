r"""Densities, CDFs, moments and the distributional transform of factorized mixtures.

Notation (``docs/design.md``, after Graves 2016): ``locs`` :math:`\mu` has shape
``(..., K, D)``, ``scales`` :math:`\sigma` ``(..., K, D)``, ``logits`` :math:`\ell` ``(..., K)``
with :math:`\pi = \mathrm{softmax}(\ell)`; a point ``x`` has shape ``(..., D)``.  Leading
dimensions broadcast against each other (sample dimensions in front of batch dimensions).
Every component is a product over coordinates of one location-scale ``family``
(:mod:`shared_math.families`; the Normal by default) with standardized density :math:`g`:

.. math::

    z_{kd} = (x_d - \mu_{kd}) / \sigma_{kd}, \qquad
    \log N_{kd} = \log g(z_{kd}) - \log\sigma_{kd}.

Shape parameters of the family (e.g. the Student-t ``df``) are passed as
``shape_params``, a tuple of arrays broadcastable to ``(..., K, D)`` in the order of
``family.shape_names``.

Everything is computed in log space: the only exponentials taken are of quantities that
are at most a few units above zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ._backend import get_namespace, matmul, native_log_softmax, native_logsumexp, promote
from ._typing import Array, DType, Namespace
from .families import LocationScaleFamily, exp_of_log, get_family


def logsumexp(values, axis, xp, keepdims=False):
    r""":math:`\log\sum \exp(\cdot)` along ``axis``, shifted by the maximum.

    :math:`-\infty` where every entry is :math:`-\infty` (the floor of :func:`exp_of_log`
    would otherwise turn an empty sum into :math:`\log(K e\,\text{tiny})`), :math:`+\infty`
    where any entry is, NaN where any entry is NaN.  Entries that are :math:`-\infty` get a
    zero gradient.

    torch and JAX use their own reduction (:func:`~shared_math._backend.native_logsumexp`:
    one kernel in eager torch instead of about a dozen) on the entries raised to the lowest
    finite number, so that a row of :math:`-\infty` gets zero gradients rather than NaN, and
    put the :math:`-\infty` back afterwards.
    """
    peak = xp.max(values, axis=axis, keepdims=True)
    empty = peak == -math.inf
    native = native_logsumexp(xp)
    if native is not None:
        out = native(xp.clip(values, min=-float(xp.finfo(values.dtype).max)), axis, True)
    else:
        peak = xp.where(xp.isfinite(peak), peak, xp.zeros_like(peak))
        out = xp.log(xp.sum(exp_of_log(values - peak, xp), axis=axis, keepdims=True)) + peak
    out = xp.where(empty, xp.full_like(out, -math.inf), out)
    return out if keepdims else xp.squeeze(out, axis=axis)


def log_softmax(logits, xp):
    r"""Mixture log weights :math:`\log\pi_k = \ell_k - \log\sum_j e^{\ell_j}` along the last axis
    (the backend's own log-softmax where it has one, :func:`~shared_math._backend.native_log_softmax`)."""
    native = native_log_softmax(xp)
    if native is not None:
        return native(logits, -1)
    return logits - logsumexp(logits, -1, xp, keepdims=True)


def exclusive_cumsum(values, xp):
    r"""``out[..., d] = sum(values[..., :d])`` along the last axis.

    Summed directly rather than as ``cumsum - values`` so that a huge last term cannot wipe
    out the smaller earlier ones.
    """
    head = xp.zeros_like(values[..., :1])
    if values.shape[-1] == 1:
        return head
    return xp.concat([head, xp.cumulative_sum(values[..., :-1], axis=-1)], axis=-1)


def family_and_shape(
    family: str | LocationScaleFamily, shape_params: Sequence[Array]
) -> tuple[LocationScaleFamily, tuple[Array, ...]]:
    family = get_family(family)
    shape_params = tuple(shape_params)
    if len(shape_params) != len(family.shape_names):
        raise ValueError(
            f"the {family.name} family takes shape parameters {family.shape_names}; got {len(shape_params)} arrays"
        )
    return family, shape_params


def _standardized_values(x, locs, scales, xp):
    r""":math:`z_{kd} = (x_d-\mu_{kd})/\sigma_{kd}`, shape ``(..., K, D)``, clipped to the finite range.

    Formed as :math:`(x_d-\mu_{kd})\cdot(1/\sigma_{kd})` with the reciprocal taken on the
    parameters' shape: a product instead of a quotient on every entry, forward and backward
    (torch's ``log_prob`` + backward took 15-30% less time at the benchmark shapes).  The
    derivative of :math:`1/\sigma` overflows for :math:`\sigma < 1/\sqrt{\text{max}}`
    (5e-20 in float32), as the quotient's did for :math:`\sigma^2` below the smallest
    subnormal (4e-23): scales far below any density a float can hold.
    """
    largest = float(xp.finfo(locs.dtype).max)
    inv_scales = xp.clip(1.0 / scales, max=largest)  # finite for subnormal scales too (0 * inf is NaN)
    return xp.clip((x[..., None, :] - locs) * inv_scales, min=-largest, max=largest)


def standardize(x, locs, scales, xp, family="normal", shape_params=()):
    r"""``(z, log_density)``: :math:`z_{kd}` and :math:`\log N_{kd}(x_d)`, shape ``(..., K, D)``.

    :math:`z` is clipped to the finite range, so that a point at infinity gives a log
    density of :math:`-\infty` with zero (not NaN) gradients.
    """
    family = get_family(family)
    z = _standardized_values(x, locs, scales, xp)
    log_density = family.log_kernel(z, shape_params, xp) - (family.log_normalizer(shape_params, xp) + xp.log(scales))
    return z, log_density


def _summed_log_density(x, locs, scales, xp, family, shape_params):
    r""":math:`\sum_d \log N_{kd}(x_d)`, shape ``(..., K)``: :func:`standardize`'s log density
    summed over the event, with the terms that do not depend on :math:`x`
    (:math:`\log\sigma_{kd}` and the family's normalizer) summed on the parameters' own
    shape instead of on every sample's (one pass over ``(..., K, D)`` fewer each way)."""
    family = get_family(family)
    z = _standardized_values(x, locs, scales, xp)
    offsets = family.log_normalizer(shape_params, xp) + xp.log(scales)
    offsets = xp.broadcast_to(offsets, tuple(offsets.shape[:-1]) + (x.shape[-1],))
    return xp.sum(family.log_kernel(z, shape_params, xp), axis=-1) - xp.sum(offsets, axis=-1)


def log_prob(
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    *,
    family: str | LocationScaleFamily = "normal",
    shape_params: Sequence[Array] = (),
    xp: Namespace | None = None,
) -> Array:
    r"""Mixture log density :math:`\log\sum_k \pi_k \prod_d N_{kd}(x_d)`, shape ``(...)``.

    :math:`-\infty` far from every component (where every term underflows), never a floor.
    """
    family, shape_params = family_and_shape(family, shape_params)
    xp, (x, locs, scales, logits, *shape_params) = promote(x, locs, scales, logits, *shape_params, xp=xp)
    return logsumexp(log_softmax(logits, xp) + _summed_log_density(x, locs, scales, xp, family, shape_params), -1, xp)


def responsibilities(
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    *,
    family: str | LocationScaleFamily = "normal",
    shape_params: Sequence[Array] = (),
    xp: Namespace | None = None,
) -> Array:
    r"""Posterior component probabilities of points ``x``, shape ``(..., K)``:

    .. math::

        r_k(x) = \frac{\pi_k\prod_d N_{kd}(x_d)}{\sum_j\pi_j\prod_d N_{jd}(x_d)},

    the probability that component :math:`k` drew :math:`x` (the E-step of EM, and the
    weights of the ``"rao_blackwell"`` estimator, :func:`shared_math.rao_blackwell_vjp`).
    They are the conditional weights :func:`conditional_log_weights` would give a
    coordinate after the last one.  Computed in log space; NaN where :math:`x` has zero
    density under every component (0/0).
    """
    family, shape_params = family_and_shape(family, shape_params)
    xp, (x, locs, scales, logits, *shape_params) = promote(x, locs, scales, logits, *shape_params, xp=xp)
    log_joint = log_softmax(logits, xp) + _summed_log_density(x, locs, scales, xp, family, shape_params)
    return xp.exp(log_joint - logsumexp(log_joint, -1, xp, keepdims=True))


def log_cdf(
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    *,
    family: str | LocationScaleFamily = "normal",
    shape_params: Sequence[Array] = (),
    xp: Namespace | None = None,
) -> Array:
    r"""Log CDF of a 1-D mixture: :math:`\log\sum_k \pi_k G((x-\mu_k)/\sigma_k)`.

    ``x`` has shape ``(...)``; ``locs``, ``scales``, ``logits`` and the shape parameters have
    shape ``(..., K)``.  Uses the family's ``log_cdf``, so both tails stay finite
    (``log(ndtr(z))`` is ``-inf`` below :math:`z\approx-38` in float32).
    """
    family, shape_params = family_and_shape(family, shape_params)
    xp, (x, locs, scales, logits, *shape_params) = promote(x, locs, scales, logits, *shape_params, xp=xp)
    log_component_cdf = family.log_cdf((x[..., None] - locs) / scales, shape_params, xp)
    return logsumexp(log_softmax(logits, xp) + log_component_cdf, -1, xp)


def cdf(
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    *,
    family: str | LocationScaleFamily = "normal",
    shape_params: Sequence[Array] = (),
    xp: Namespace | None = None,
) -> Array:
    r"""CDF of a 1-D mixture, :math:`F(x)=\sum_k \pi_k G((x-\mu_k)/\sigma_k)` (see :func:`log_cdf`)."""
    xp = get_namespace(x, locs, scales, logits, *shape_params) if xp is None else xp
    return xp.exp(log_cdf(x, locs, scales, logits, family=family, shape_params=shape_params, xp=xp))


def _conditional_log_weights(log_pi, log_density, xp):
    log_joint_before = log_pi[..., None] + exclusive_cumsum(log_density, xp)
    return log_joint_before - logsumexp(log_joint_before, -2, xp, keepdims=True)


def conditional_log_weights(
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    *,
    family: str | LocationScaleFamily = "normal",
    shape_params: Sequence[Array] = (),
    xp: Namespace | None = None,
) -> Array:
    r"""Log weights of the 1-D conditional mixtures :math:`p(x_d \mid x_{<d})`, shape ``(..., K, D)``.

    .. math::

        \log w_{kd} = \log\pi_k + \sum_{j<d}\log N_{kj}(x_j)
                      - \operatorname{logsumexp}_k\Big(\log\pi_k + \sum_{j<d}\log N_{kj}(x_j)\Big).

    Dimension 0 is sampled first (ancestral order), so ``w[..., 0] = pi``.  NaN where
    :math:`x_{<d}` has zero density under every component (0/0).
    """
    family, shape_params = family_and_shape(family, shape_params)
    xp, (x, locs, scales, logits, *shape_params) = promote(x, locs, scales, logits, *shape_params, xp=xp)
    _, log_density = standardize(x, locs, scales, xp, family, shape_params)
    return _conditional_log_weights(log_softmax(logits, xp), log_density, xp)


def distributional_transform(
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    *,
    family: str | LocationScaleFamily = "normal",
    shape_params: Sequence[Array] = (),
    xp: Namespace | None = None,
) -> Array:
    r"""The distributional transform :math:`T_d(x) = F_d(x_d \mid x_{<d}) = \sum_k w_{kd}G(z_{kd})`.

    Maps the mixture onto :math:`\mathrm{Uniform}(0,1)^D`; shape ``(..., D)``.  Its inverse,
    solved dimension by dimension, is the sampler whose gradient
    :func:`shared_math.implicit_vjp` returns (Graves 2016, Eq. 6).
    """
    family, shape_params = family_and_shape(family, shape_params)
    xp, (x, locs, scales, logits, *shape_params) = promote(x, locs, scales, logits, *shape_params, xp=xp)
    z, log_density = standardize(x, locs, scales, xp, family, shape_params)
    log_w = _conditional_log_weights(log_softmax(logits, xp), log_density, xp)
    return xp.exp(logsumexp(log_w + family.log_cdf(z, shape_params, xp), -2, xp))


def mean(
    locs: Array,
    scales: Array,
    logits: Array,
    *,
    family: str | LocationScaleFamily = "normal",
    shape_params: Sequence[Array] = (),
    xp: Namespace | None = None,
) -> Array:
    r"""Mixture mean :math:`\sum_k \pi_k(\mu_k + \sigma_k m)`, shape ``(..., D)``, with :math:`m`
    the mean of the standardized family (NaN where it has none, e.g. Cauchy)."""
    family, shape_params = family_and_shape(family, shape_params)
    xp, (locs, scales, logits, *shape_params) = promote(locs, scales, logits, *shape_params, xp=xp)
    pi = xp.exp(log_softmax(logits, xp))[..., None]
    return xp.sum(pi * _component_means(locs, scales, family, shape_params, xp), axis=-2)


def _component_means(locs, scales, family, shape_params, xp):
    standard_mean = family.standard_mean(shape_params, xp)
    if isinstance(standard_mean, float) and standard_mean == 0.0:
        return locs
    return locs + scales * standard_mean


def variance(
    locs: Array,
    scales: Array,
    logits: Array,
    *,
    family: str | LocationScaleFamily = "normal",
    shape_params: Sequence[Array] = (),
    xp: Namespace | None = None,
) -> Array:
    r"""Per-dimension mixture variance :math:`\sum_k\pi_k(\sigma_k^2 v + (\mu_k + \sigma_k m - \bar\mu)^2)`,
    shape ``(..., D)``, with :math:`m, v` the standardized family's mean and variance (NaN or
    infinite where undefined, e.g. Cauchy, Student-t with ``df <= 2``)."""
    family, shape_params = family_and_shape(family, shape_params)
    xp, (locs, scales, logits, *shape_params) = promote(locs, scales, logits, *shape_params, xp=xp)
    pi = xp.exp(log_softmax(logits, xp))[..., None]
    means = _component_means(locs, scales, family, shape_params, xp)
    centred = means - xp.sum(pi * means, axis=-2, keepdims=True)
    return xp.sum(pi * (scales * scales * family.standard_variance(shape_params, xp) + centred * centred), axis=-2)


def one_hot(component_index: Array, num_components: int, dtype: DType, *, xp: Namespace | None = None) -> Array:
    """``(..., K)`` indicator of ``component_index`` (an integer array of shape ``(...)``)."""
    xp = get_namespace(component_index) if xp is None else xp
    components = xp.arange(num_components, device=_device(component_index))
    return xp.astype(component_index[..., None] == components, dtype)


def sample_from_noise(
    locs: Array, scales: Array, component_one_hot: Array, noise: Array, *, xp: Namespace | None = None
) -> Array:
    r"""Ancestral draw :math:`x = \mu_k + \sigma_k\varepsilon` for the chosen components.

    ``component_one_hot`` has shape ``(..., K)`` and ``noise`` :math:`\varepsilon` ``(..., D)``
    (drawn from the standardized family, e.g. by the framework's sampler);
    the result has shape ``(..., D)``.  Written as a sum over the one-hot axis so that it is
    differentiable (the gradient through the chosen component, used by ``"hybrid"``).
    """
    xp, (locs, scales, component_one_hot, noise) = promote(locs, scales, component_one_hot, noise, xp=xp)
    num_components = component_one_hot.shape[-1]
    if locs.ndim == 2 and scales.ndim == 2 and locs.shape[0] == scales.shape[0] == num_components:
        # unbatched parameters, every component its own row: two matrix products
        return matmul(component_one_hot, locs, xp) + matmul(component_one_hot, scales, xp) * noise
    chosen = component_one_hot[..., None]
    return xp.sum(chosen * locs, axis=-2) + xp.sum(chosen * scales, axis=-2) * noise


def _device(array):
    import array_api_compat

    return array_api_compat.device(array)
