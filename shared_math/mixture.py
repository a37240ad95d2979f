r"""Densities, CDFs and the distributional transform of diagonal Gaussian mixtures.

Notation (``../shared/DESIGN.md`` §1, after Graves 2016): ``locs`` :math:`\mu` has shape
``(..., K, D)``, ``scales`` :math:`\sigma` ``(..., K, D)``, ``logits`` :math:`\ell` ``(..., K)``
with :math:`\pi = \mathrm{softmax}(\ell)`; a point ``x`` has shape ``(..., D)``.  Leading
dimensions broadcast against each other (sample dimensions in front of batch dimensions).

.. math::

    z_{kd} = (x_d - \mu_{kd}) / \sigma_{kd}, \qquad
    \log N_{kd} = -\tfrac12 z_{kd}^2 - \log\sigma_{kd} - \log\sqrt{2\pi}.

Everything is computed in log space: the only exponentials taken are of quantities that
are at most a few units above zero.
"""

from __future__ import annotations

import math

from ._backend import LOG_SQRT_2PI, get_namespace, log_ndtr


def promote(*arrays, xp=None):
    """Namespace and common floating dtype of ``arrays``; returns ``(xp, converted arrays)``.

    Arrays already of the common dtype are passed through untouched (no copy, so torch's
    ``requires_grad`` and JAX tracers survive).
    """
    xp = get_namespace(*arrays) if xp is None else xp
    present = [a for a in arrays if a is not None]
    dtype = xp.result_type(*present)
    if not xp.isdtype(dtype, "real floating"):
        dtype = xp.result_type(dtype, xp.float32)
    return xp, [a if a is None or a.dtype == dtype else xp.astype(a, dtype) for a in arrays]


def exp_of_log(values, xp):
    r""":math:`e^{a}` of a log-space quantity, with results below :math:`e\cdot\text{tiny}` raised to it.

    Subnormal results fall off the CPU's fast path: torch's ``exp`` is over 100x slower when
    it returns one.  Every such quantity here is a weight, responsibility or tail that
    enters sums with terms of order one, so raising anything below :math:`e\cdot\text{tiny}`
    (3e-38 in float32, 6e-308 in float64) to that bound changes no result beyond its
    rounding, even after a factor :math:`z/\sigma` of 1e9.  (A floor of
    :math:`\sqrt{\text{tiny}}` would also keep products normal, but 1e-19 times such a factor
    is visible in float32.)
    """
    floor = math.log(float(xp.finfo(values.dtype).smallest_normal)) + 1.0
    return xp.exp(xp.clip(values, min=floor))


def logsumexp(values, axis, xp, keepdims=False):
    r""":math:`\log\sum \exp(\cdot)` along ``axis``, shifted by the maximum (finite when any entry is)."""
    peak = xp.max(values, axis=axis, keepdims=True)
    peak = xp.where(xp.isfinite(peak), peak, xp.zeros_like(peak))
    out = xp.log(xp.sum(exp_of_log(values - peak, xp), axis=axis, keepdims=True)) + peak
    return out if keepdims else xp.squeeze(out, axis=axis)


def log_softmax(logits, xp):
    r"""Mixture log weights :math:`\log\pi_k = \ell_k - \log\sum_j e^{\ell_j}` along the last axis."""
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


def standardize(x, locs, scales, xp):
    r"""``(z, log_normal)``: :math:`z_{kd}` and :math:`\log N_{kd}(x_d)`, shape ``(..., K, D)``."""
    z = (x[..., None, :] - locs) / scales
    log_normal = -0.5 * z * z - xp.log(scales) - LOG_SQRT_2PI
    return z, log_normal


def log_prob(x, locs, scales, logits, *, xp=None):
    r"""Mixture log density :math:`\log\sum_k \pi_k \prod_d N(x_d;\mu_{kd},\sigma_{kd})`, shape ``(...)``."""
    xp, (x, locs, scales, logits) = promote(x, locs, scales, logits, xp=xp)
    _, log_normal = standardize(x, locs, scales, xp)
    return logsumexp(log_softmax(logits, xp) + xp.sum(log_normal, axis=-1), -1, xp)


def log_cdf(x, locs, scales, logits, *, xp=None):
    r"""Log CDF of a 1-D mixture: :math:`\log\sum_k \pi_k\Phi((x-\mu_k)/\sigma_k)`.

    ``x`` has shape ``(...)``; ``locs``, ``scales`` and ``logits`` have shape ``(..., K)``.
    Uses ``log_ndtr`` so both tails stay finite (``log(ndtr(z))`` is ``-inf`` below
    :math:`z\approx-38` in float32).
    """
    xp, (x, locs, scales, logits) = promote(x, locs, scales, logits, xp=xp)
    log_phi = log_ndtr((x[..., None] - locs) / scales, xp)
    return logsumexp(log_softmax(logits, xp) + log_phi, -1, xp)


def cdf(x, locs, scales, logits, *, xp=None):
    r"""CDF of a 1-D mixture, :math:`F(x)=\sum_k \pi_k \Phi((x-\mu_k)/\sigma_k)` (see :func:`log_cdf`)."""
    xp = get_namespace(x, locs, scales, logits) if xp is None else xp
    return xp.exp(log_cdf(x, locs, scales, logits, xp=xp))


def _conditional_log_weights(log_pi, log_normal, xp):
    log_joint_before = log_pi[..., None] + exclusive_cumsum(log_normal, xp)
    return log_joint_before - logsumexp(log_joint_before, -2, xp, keepdims=True)


def conditional_log_weights(x, locs, scales, logits, *, xp=None):
    r"""Log weights of the 1-D conditional mixtures :math:`p(x_d \mid x_{<d})`, shape ``(..., K, D)``.

    .. math::

        \log w_{kd} = \log\pi_k + \sum_{j<d}\log N_{kj}(x_j)
                      - \operatorname{logsumexp}_k\Big(\log\pi_k + \sum_{j<d}\log N_{kj}(x_j)\Big).

    Dimension 0 is sampled first (ancestral order), so ``w[..., 0] = pi``.
    """
    xp, (x, locs, scales, logits) = promote(x, locs, scales, logits, xp=xp)
    _, log_normal = standardize(x, locs, scales, xp)
    return _conditional_log_weights(log_softmax(logits, xp), log_normal, xp)


def distributional_transform(x, locs, scales, logits, *, xp=None):
    r"""The distributional transform :math:`T_d(x) = F_d(x_d \mid x_{<d}) = \sum_k w_{kd}\Phi(z_{kd})`.

    Maps the mixture onto :math:`\mathrm{Uniform}(0,1)^D`; shape ``(..., D)``.  Its inverse,
    solved dimension by dimension, is the sampler whose gradient :func:`implicit_vjp`
    returns (Graves 2016, Eq. 6).
    """
    xp, (x, locs, scales, logits) = promote(x, locs, scales, logits, xp=xp)
    z, log_normal = standardize(x, locs, scales, xp)
    log_w = _conditional_log_weights(log_softmax(logits, xp), log_normal, xp)
    return xp.exp(logsumexp(log_w + log_ndtr(z, xp), -2, xp))


def mean(locs, scales, logits, *, xp=None):
    r"""Mixture mean :math:`\sum_k \pi_k\mu_k`, shape ``(..., D)``."""
    xp, (locs, scales, logits) = promote(locs, scales, logits, xp=xp)
    pi = xp.exp(log_softmax(logits, xp))[..., None]
    return xp.sum(pi * locs, axis=-2)


def variance(locs, scales, logits, *, xp=None):
    r"""Per-dimension mixture variance :math:`\sum_k\pi_k(\sigma_k^2 + (\mu_k - \bar\mu)^2)`, shape ``(..., D)``."""
    xp, (locs, scales, logits) = promote(locs, scales, logits, xp=xp)
    pi = xp.exp(log_softmax(logits, xp))[..., None]
    centred = locs - xp.sum(pi * locs, axis=-2, keepdims=True)
    return xp.sum(pi * (scales * scales + centred * centred), axis=-2)


def one_hot(component_index, num_components, dtype, *, xp=None):
    """``(..., K)`` indicator of ``component_index`` (an integer array of shape ``(...)``)."""
    xp = get_namespace(component_index) if xp is None else xp
    components = xp.arange(num_components, device=_device(component_index))
    return xp.astype(component_index[..., None] == components, dtype)


def sample_from_noise(locs, scales, component_one_hot, noise, *, xp=None):
    r"""Ancestral draw :math:`x = \mu_k + \sigma_k\varepsilon` for the chosen components.

    ``component_one_hot`` has shape ``(..., K)`` and ``noise`` :math:`\varepsilon` ``(..., D)``;
    the result has shape ``(..., D)``.  Written as a sum over the one-hot axis so that it is
    differentiable (the gradient through the chosen component, used by ``"hybrid"``).
    """
    xp, (locs, scales, component_one_hot, noise) = promote(locs, scales, component_one_hot, noise, xp=xp)
    chosen = component_one_hot[..., None]
    return xp.sum(chosen * locs, axis=-2) + xp.sum(chosen * scales, axis=-2) * noise


def _device(array):
    import array_api_compat

    return array_api_compat.device(array)
