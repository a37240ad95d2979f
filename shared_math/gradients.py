r"""Exact implicit sample gradients of a diagonal Gaussian mixture in O(N·K·D).

Graves (2016), "Stochastic Backpropagation through Mixture Density Distributions",
arXiv:1607.05690.  A sample is drawn ancestrally and held fixed through its
distributional transform :math:`T(x;\theta) = u` (:func:`shared_math.distributional_transform`),
so (his Eq. 6, made multivariate)

.. math::

    J\,\mathrm{d}x = -\frac{\partial T}{\partial\theta}\,\mathrm{d}\theta,
    \qquad J = \frac{\partial T}{\partial x}\ \text{(lower triangular, } J_{dd} = f_d).

**Structure** (``../shared/DESIGN.md`` §1).  With the conditional weights
:math:`w_{kd}`, the conditional density :math:`f_d=\sum_k w_{kd}N_{kd}` and CDF
:math:`F_d=\sum_k w_{kd}\Phi(z_{kd})`, for :math:`i<d`

.. math::

    J_{di} = \sum_k a_{kd}\,\gamma_{ki}, \qquad a_{kd} = w_{kd}(\Phi(z_{kd}) - F_d),
    \qquad \gamma_{ki} = \partial_{x_i}\log N_{ki} = -z_{ki}/\sigma_{ki},

so the off-diagonal part of :math:`J` has rank :math:`K` and both triangular solves are a
single sweep over the dimensions with a :math:`K`-vector carry.  We sweep in the scaled
variables :math:`u_d = f_d v_d` and :math:`\tilde a_{kd} = a_{kd}/f_d`, which stay bounded
where :math:`f_d` itself underflows.

**Parameter terms.**  :math:`\bar\theta = -\nabla_\theta\sum_d v_d T_d(x;\theta)` at fixed
:math:`x, v`.  With responsibilities :math:`r_{kd}=w_{kd}N_{kd}/f_d` and
:math:`E_{kd}=\sum_{d'>d} u_{d'}\tilde a_{kd'}` (the sweep's carry before step :math:`d`):

.. math::

    \bar\mu_{kd} = u_d r_{kd} - E_{kd}\frac{z_{kd}}{\sigma_{kd}},\qquad
    \bar\sigma_{kd} = u_d r_{kd} z_{kd} - E_{kd}\frac{z_{kd}^2-1}{\sigma_{kd}},\qquad
    \bar\ell_k = -\sum_d u_d\tilde a_{kd}.

The last line is Graves' Eq. 22 for the weights, written through the logits; the
softmax's normalising term drops out because :math:`\sum_k a_{kd}=0`.  For :math:`K=1`
everything reduces to the reparameterization trick :math:`\bar\mu=g,\ \bar\sigma=gz`.

**Numerics.**  :math:`\Phi(z_{kd})-F_d` is taken in whichever tail of :math:`F_d` is smaller
(:math:`\Phi-F = Q_F-Q_\Phi` with :math:`Q=1-\Phi`), from ``log_ndtr`` values, so separated
components and tiny scales keep their accuracy in float32.
"""

from __future__ import annotations

from typing import NamedTuple

from ._backend import LOG_SQRT_2PI, contiguous, log_ndtr, sequential_scan
from .mixture import exp_of_log, log_softmax, logsumexp, promote


class SweepTerms(NamedTuple):
    """Per-sample quantities of the implicit gradient in dimension-major layout ``(D, ..., K)``.

    ``z``: standardized point; ``inv_scales``: :math:`1/\\sigma`; ``responsibilities``:
    :math:`r_{kd}`; ``a_scaled``: :math:`\\tilde a_{kd} = a_{kd}/f_d`; ``dlog_normal_dx``:
    :math:`\\gamma_{kd} = -z_{kd}/\\sigma_{kd}`.  The event axis comes first so that each
    step of the sweeps reads one contiguous ``(..., K)`` slice and the sums over components
    run along the last axis.
    """

    z: object
    inv_scales: object
    responsibilities: object
    a_scaled: object
    dlog_normal_dx: object


def last_axis_first(array, xp):
    """``(..., D)`` to ``(D, ...)`` (``permute_dims``: unlike torch's ``moveaxis`` it has a vmap rule)."""
    ndim = array.ndim
    return xp.permute_dims(array, (ndim - 1,) + tuple(range(ndim - 1)))


def first_axis_last(array, xp):
    """``(D, ...)`` to ``(..., D)``; inverse of :func:`last_axis_first`."""
    ndim = array.ndim
    return xp.permute_dims(array, tuple(range(1, ndim)) + (0,))


def largest_entry(values, xp):
    """Boolean mask of the first largest entry along the last axis (exactly one per row)."""
    is_max = values == xp.max(values, axis=-1, keepdims=True)
    return is_max & (xp.cumulative_sum(xp.astype(is_max, xp.int32), axis=-1) == 1)


def sum_over_others(values, xp, largest=None):
    r""":math:`\sum_{j\ne k} v_j` along the last axis for non-negative :math:`v`, without cancellation.

    Every entry but the largest gets :math:`\sum_j v_j - v_k` (at least half the total, so
    accurate); the largest gets the other entries added up.  ``1 - w_k`` for a weight
    :math:`w_k\approx 1` would instead carry an absolute error of one ulp of 1.
    """
    largest = largest_entry(values, xp) if largest is None else largest
    zeros = xp.zeros_like(values)
    rest = xp.sum(xp.where(largest, zeros, values), axis=-1, keepdims=True)
    return xp.where(largest, rest, xp.sum(values, axis=-1, keepdims=True) - values)


class DimensionMajor:
    """Moves arrays between the public layout ``(..., K, D)`` and the internal ``(D, ..., K)``.

    Every array is first padded to the common number of batch dimensions ``batch_ndim``
    (sample and batch dimensions of ``x`` and the parameters), so that broadcasting in the
    internal layout lines up.
    """

    def __init__(self, batch_ndim, xp):
        self.batch_ndim = batch_ndim
        self.xp = xp

    def _pad(self, array, core_ndim):
        shape = tuple(array.shape)
        return self.xp.reshape(array, (1,) * (self.batch_ndim + core_ndim - len(shape)) + shape)

    def event_first(self, array, core_ndim):
        """``(..., D)`` (``core_ndim=1``) or ``(..., K, D)`` (``core_ndim=2``) to ``(D, ...)`` / ``(D, ..., K)``."""
        return contiguous(last_axis_first(self._pad(array, core_ndim), self.xp), self.xp)

    def batch_padded(self, array):
        """``(..., K)`` padded to ``batch_ndim`` batch dimensions."""
        return self._pad(array, 1)

    def parameter(self, full, shape):
        """Sum ``(D, ..., K)`` over broadcast dimensions and return it in the layout ``shape`` ``(..., K, D)``."""
        padded = (1,) * (self.batch_ndim + 2 - len(shape)) + tuple(shape)
        target = (padded[-1],) + padded[:-1]
        return self.xp.reshape(first_axis_last(sum_to_shape(full, target, self.xp), self.xp), tuple(shape))


def _layout(x, locs, scales, logits, xp):
    batch_ndim = max(x.ndim - 1, locs.ndim - 2, scales.ndim - 2, logits.ndim - 1)
    return DimensionMajor(batch_ndim, xp)


def sweep_terms(x, locs, scales, logits, xp, layout=None):
    r"""The :class:`SweepTerms` at ``x`` (arrays already promoted to one dtype).

    With the joint log weights :math:`S_{kd} = \log\pi_k + \sum_{j\le d}\log N_{kj}` and
    :math:`L_d = \operatorname{logsumexp}_k S_{kd} = \log p(x_{\le d})`:
    :math:`\log w_{kd} = S_{k,d-1} - L_{d-1}`, :math:`\log f_d = L_d - L_{d-1}`, so
    :math:`\log(w_{kd}/f_d) = S_{k,d-1} - L_d` and :math:`r_{kd} = \exp(S_{kd} - L_d)`, so
    :math:`w_{kd} = r_{k,d-1}` (:math:`w_{k0}=\pi_k`): one cumulative sum and one
    log-sum-exp serve all three.

    For :math:`\tilde a`, each :math:`\Phi(z_{kd})` is taken in whichever tail of the
    mixture CDF :math:`F_d` is smaller (tail :math:`t_{kd}` = :math:`\Phi(z_{kd})` if
    :math:`F_d\le\frac12`, else :math:`1-\Phi(z_{kd})`, with sign :math:`s_d=\pm1`):
    :math:`P_{kd} = (w_{kd}/f_d)\,t_{kd}` from logs, and
    :math:`\tilde a_{kd} = s_d\,\big(P_{kd}\sum_{j\ne k} w_{jd} - w_{kd}\sum_{j\ne k}P_{jd}\big)`
    (using :math:`\sum_j w_{jd}=1`), with both sums over the others from
    :func:`sum_over_others`, so the float32 error stays relative to the minor weights
    when one component dominates.
    """
    layout = _layout(x, locs, scales, logits, xp) if layout is None else layout
    scales_t = layout.event_first(scales, 2)
    inv_scales = 1.0 / scales_t
    z = (layout.event_first(x, 1)[..., None] - layout.event_first(locs, 2)) * inv_scales
    log_normal = -0.5 * z * z - (xp.log(scales_t) + LOG_SQRT_2PI)
    log_pi = xp.broadcast_to(log_softmax(layout.batch_padded(logits), xp)[None, ...], (1,) + tuple(z.shape[1:]))
    joint = log_pi + xp.cumulative_sum(log_normal, axis=0)  # S_kd
    log_marginal = logsumexp(joint, -1, xp, keepdims=True)  # L_d
    joint_before = xp.concat([log_pi, joint[:-1, ...]], axis=0)  # S_{k,d-1}
    log_w_over_f = joint_before - log_marginal
    responsibilities = exp_of_log(joint - log_marginal, xp)  # r_kd
    weights = xp.concat([exp_of_log(log_pi, xp), responsibilities[:-1, ...]], axis=0)  # w_kd = r_{k,d-1}

    # Each component's smaller tail Phi(-|z|) from one log_ndtr; the larger as log1p(-p).
    negative = z < 0
    log_small = log_ndtr(-xp.abs(z), xp)
    small = exp_of_log(log_small, xp)
    mixture_cdf = xp.sum(weights * xp.where(negative, small, 1.0 - small), axis=-1, keepdims=True)
    use_lower = mixture_cdf <= 0.5
    log_tail = xp.where(use_lower == negative, log_small, xp.log1p(-small))
    scaled_tail = exp_of_log(log_w_over_f + log_tail, xp)  # P_kd
    sign = xp.where(use_lower, xp.ones_like(mixture_cdf), -xp.ones_like(mixture_cdf))
    # a~_k = s (P_k sum_{j!=k} w_j - w_k sum_{j!=k} P_j): no difference of near-equal terms.
    a_scaled = sign * (scaled_tail * sum_over_others(weights, xp) - weights * sum_over_others(scaled_tail, xp))
    return SweepTerms(
        z=z,
        inv_scales=inv_scales,
        responsibilities=responsibilities,
        a_scaled=a_scaled,
        dlog_normal_dx=-z * inv_scales,
    )


def reverse_sweep(terms, cotangent_t, xp):
    r"""Solve :math:`J^\top v = g` by one reverse sweep (``DESIGN.md`` §1).

    For :math:`i = D-1,\dots,0`: :math:`E_{ki} = C_k`,
    :math:`u_i = g_i - \sum_k \gamma_{ki} C_k`, :math:`C_k \mathrel{+}= u_i\tilde a_{ki}`.
    ``cotangent_t`` is :math:`g` in layout ``(D, ...)``.  Returns ``(u, carry_before,
    final_carry)`` with shapes ``(D, ...)``, ``(D, ..., K)``, ``(..., K)``; :math:`v = u/f`.
    """
    cotangent_t = xp.broadcast_to(cotangent_t, tuple(terms.z.shape[:-1]))

    def step(carry, slices):
        g_i, gamma_i, a_i = slices
        u_i = g_i - xp.sum(gamma_i * carry, axis=-1)
        return carry + u_i[..., None] * a_i, (u_i, carry)

    carry0 = xp.zeros_like(terms.z[0, ...])
    final, (u, carry_before) = sequential_scan(
        step, carry0, (cotangent_t, terms.dlog_normal_dx, terms.a_scaled), xp, reverse=True
    )
    return u, carry_before, final


def forward_sweep(terms, scaled_transform_tangent, xp):
    r"""Solve :math:`J\,\dot x = -\dot T` by one forward sweep, given :math:`\dot T_d / f_d` as ``(D, ...)``.

    For :math:`d = 0,\dots,D-1`: :math:`\dot x_d = -\dot T_d/f_d - \sum_k \tilde a_{kd} G_k`,
    :math:`G_k \mathrel{+}= \gamma_{kd}\dot x_d`.  Linear in the tangent, so JAX can
    transpose it (reverse mode) and differentiate it again (higher orders).  Returns
    :math:`\dot x` as ``(D, ...)``.
    """
    scaled_transform_tangent = xp.broadcast_to(scaled_transform_tangent, tuple(terms.z.shape[:-1]))

    def step(carry, slices):
        t_d, a_d, gamma_d = slices
        x_dot_d = -t_d - xp.sum(a_d * carry, axis=-1)
        return carry + gamma_d * x_dot_d[..., None], (x_dot_d,)

    carry0 = xp.zeros_like(terms.z[0, ...])
    _, (x_dot,) = sequential_scan(
        step, carry0, (scaled_transform_tangent, terms.a_scaled, terms.dlog_normal_dx), xp
    )
    return x_dot


def sum_to_shape(array, shape, xp):
    """Sum ``array`` over the dimensions that broadcasting added to ``shape``."""
    shape = tuple(shape)
    extra = array.ndim - len(shape)
    if extra > 0:
        array = xp.sum(array, axis=tuple(range(extra)))
    squeezed = tuple(i for i, (have, want) in enumerate(zip(array.shape, shape)) if want == 1 and have != 1)
    if squeezed:
        array = xp.sum(array, axis=squeezed, keepdims=True)
    return array


def implicit_vjp(x, locs, scales, logits, cotangent, *, xp=None):
    r"""Reverse-mode implicit gradient: ``(locs_bar, scales_bar, logits_bar)``.

    :math:`\bar\theta = (\partial L/\partial x)\,\mathrm{d}x/\mathrm{d}\theta` for samples
    ``x`` (shape ``(..., D)``) held fixed through their distributional transform, with
    ``cotangent`` :math:`\partial L/\partial x` of the same shape.  Results have the
    parameters' shapes (summed over sample and broadcast dimensions).  O(N·K·D) time and
    memory; see the module docstring for the formulas.
    """
    xp, (x, locs, scales, logits, cotangent) = promote(x, locs, scales, logits, cotangent, xp=xp)
    layout = _layout(x, locs, scales, logits, xp)
    terms = sweep_terms(x, locs, scales, logits, xp, layout)
    cotangent_t = layout.event_first(cotangent, 1)
    u, carry_before, final_carry = reverse_sweep(terms, cotangent_t, xp)
    # mu_bar = u r + gamma E with u = g - sum_j gamma_j E_j.  For the most responsible
    # component the two gamma_k E_k terms cancel; there it is formed as
    # r_k (g - sum_{j!=k} gamma_j E_j) + (sum_{j!=k} r_j) gamma_k E_k instead.
    responsibilities = terms.responsibilities
    gamma_carry = terms.dlog_normal_dx * carry_before
    main = largest_entry(responsibilities, xp)
    zeros = xp.zeros_like(gamma_carry)
    others_gamma_carry = xp.sum(xp.where(main, zeros, gamma_carry), axis=-1, keepdims=True)
    locs_bar = xp.where(
        main,
        responsibilities * (xp.broadcast_to(cotangent_t, u.shape)[..., None] - others_gamma_carry)
        + sum_over_others(responsibilities, xp, main) * gamma_carry,
        u[..., None] * responsibilities + gamma_carry,
    )
    # sigma_bar = u r z - E (z^2 - 1)/sigma = z mu_bar + E / sigma.
    scales_bar = terms.z * locs_bar + carry_before * terms.inv_scales
    return (
        layout.parameter(locs_bar, locs.shape),
        layout.parameter(scales_bar, scales.shape),
        sum_to_shape(-final_carry, logits.shape, xp),
    )


def _scaled_transform_tangent(terms, layout, locs_dot, scales_dot, logits_dot, xp):
    r""":math:`\dot T_d / f_d` at fixed :math:`x`, layout ``(D, ...)``.

    .. math::

        \frac{\dot T_d}{f_d} = \sum_k \tilde a_{kd}\Big(\dot\ell_k + \sum_{j<d}
        \frac{z_{kj}\dot\mu_{kj} + (z_{kj}^2-1)\dot\sigma_{kj}}{\sigma_{kj}}\Big)
        - \sum_k r_{kd}(\dot\mu_{kd} + z_{kd}\dot\sigma_{kd}).

    (The softmax's normalising term of :math:`\dot\ell` drops out: :math:`\sum_k\tilde a_{kd}=0`.)
    """
    z = terms.z
    log_joint_dot = xp.zeros_like(z)
    direct = xp.zeros_like(z)
    if locs_dot is not None:
        locs_dot = layout.event_first(locs_dot, 2)
        log_joint_dot = log_joint_dot + z * terms.inv_scales * locs_dot
        direct = direct + locs_dot
    if scales_dot is not None:
        scales_dot = layout.event_first(scales_dot, 2)
        log_joint_dot = log_joint_dot + (z * z - 1.0) * terms.inv_scales * scales_dot
        direct = direct + z * scales_dot
    log_weight_dot = xp.concat(
        [xp.zeros_like(log_joint_dot[:1, ...]), xp.cumulative_sum(log_joint_dot[:-1, ...], axis=0)], axis=0
    )
    if logits_dot is not None:
        log_weight_dot = log_weight_dot + layout.batch_padded(logits_dot)[None, ...]
    return xp.sum(terms.a_scaled * log_weight_dot - terms.responsibilities * direct, axis=-1)


def implicit_jvp(x, locs, scales, logits, locs_dot=None, scales_dot=None, logits_dot=None, *, xp=None):
    r"""Forward-mode implicit gradient :math:`\dot x = -J^{-1}\,\partial_\theta T\,\dot\theta`.

    Tangents have the parameters' shapes (``None`` means zero); the result has the
    broadcast sample shape ``(..., D)``.  One forward sweep, O(N·K·D).
    """
    xp, (x, locs, scales, logits, locs_dot, scales_dot, logits_dot) = promote(
        x, locs, scales, logits, locs_dot, scales_dot, logits_dot, xp=xp
    )
    layout = _layout(x, locs, scales, logits, xp)
    terms = sweep_terms(x, locs, scales, logits, xp, layout)
    scaled = _scaled_transform_tangent(terms, layout, locs_dot, scales_dot, logits_dot, xp)
    return first_axis_last(forward_sweep(terms, scaled, xp), xp)


def chosen_component_vjp(component_one_hot, noise, cotangent, locs_shape, scales_shape, *, xp=None):
    r"""Gradient through the chosen component, :math:`x = \mu_k + \sigma_k\varepsilon` given :math:`k`.

    :math:`\bar\mu_{kd} = [k\text{ chosen}]\,g_d` and :math:`\bar\sigma_{kd} = [k\text{ chosen}]\,g_d\varepsilon_d`;
    unbiased since :math:`E[h(x)] = \sum_k\pi_k E_\varepsilon[h(\mu_k+\sigma_k\varepsilon)]`.
    """
    xp, (component_one_hot, noise, cotangent) = promote(component_one_hot, noise, cotangent, xp=xp)
    locs_bar = component_one_hot[..., None] * cotangent[..., None, :]
    scales_bar = locs_bar * noise[..., None, :]
    return sum_to_shape(locs_bar, locs_shape, xp), sum_to_shape(scales_bar, scales_shape, xp)


def hybrid_vjp(x, locs, scales, logits, component_one_hot, noise, cotangent, *, xp=None):
    r"""The ``"hybrid"`` estimator: chosen-component gradient for ``locs``/``scales``,
    implicit gradient (Graves Eq. 22, via :func:`implicit_vjp`'s sweep) for ``logits``.

    ``x`` must be the draw ``sample_from_noise(locs, scales, component_one_hot, noise)``.
    """
    xp, (x, locs, scales, logits, cotangent) = promote(x, locs, scales, logits, cotangent, xp=xp)
    layout = _layout(x, locs, scales, logits, xp)
    terms = sweep_terms(x, locs, scales, logits, xp, layout)
    _, _, final_carry = reverse_sweep(terms, layout.event_first(cotangent, 1), xp)
    locs_bar, scales_bar = chosen_component_vjp(component_one_hot, noise, cotangent, locs.shape, scales.shape, xp=xp)
    return locs_bar, scales_bar, sum_to_shape(-final_carry, logits.shape, xp)


def hybrid_jvp(
    x, locs, scales, logits, component_one_hot, noise, locs_dot=None, scales_dot=None, logits_dot=None, *, xp=None
):
    r"""Forward mode of :func:`hybrid_vjp`: :math:`\dot x = \dot\mu_k + \dot\sigma_k\varepsilon + \dot x^{\text{implicit}}(\dot\ell)`."""
    xp, (x, locs, scales, logits, component_one_hot, noise, locs_dot, scales_dot, logits_dot) = promote(
        x, locs, scales, logits, component_one_hot, noise, locs_dot, scales_dot, logits_dot, xp=xp
    )
    chosen = component_one_hot[..., None]
    x_dot = xp.zeros_like(x + xp.sum(chosen * locs, axis=-2))
    if locs_dot is not None:
        x_dot = x_dot + xp.sum(chosen * locs_dot, axis=-2)
    if scales_dot is not None:
        x_dot = x_dot + xp.sum(chosen * scales_dot, axis=-2) * noise
    if logits_dot is not None:
        x_dot = x_dot + implicit_jvp(x, locs, scales, logits, None, None, logits_dot, xp=xp)
    return x_dot


def rao_blackwell_vjp(x, locs, scales, logits, cotangent, *, xp=None):
    r"""The ``"rao_blackwell"`` estimator: the chosen-component gradient averaged over the
    component given :math:`x`, plus the implicit gradient for ``logits``.

    .. math::

        \bar\mu_{kd} = r_k(x)\,g_d,\qquad \bar\sigma_{kd} = r_k(x)\,z_{kd}\,g_d,\qquad
        r_k(x) = \frac{\pi_k N(x;\mu_k,\sigma_k)}{\sum_j \pi_j N(x;\mu_j,\sigma_j)},

    i.e. :math:`E[\text{chosen-component gradient}\mid x]`, so its variance never exceeds
    that of ``"hybrid"`` (law of total variance).  It is a pathwise gradient in its own
    right: the velocity :math:`v_{\mu_{kd}}(x) = r_k(x)\,e_d` solves the continuity equation
    :math:`\nabla\cdot(p\,v) = \pi_k\partial_d N_k = -\partial p/\partial\mu_{kd}`, so
    :math:`E[g\cdot v]` is the exact gradient for any objective.  For :math:`D=1` it equals
    the implicit gradient.  ``logits_bar`` as in :func:`implicit_vjp` (Graves Eq. 22).
    """
    xp, (x, locs, scales, logits, cotangent) = promote(x, locs, scales, logits, cotangent, xp=xp)
    layout = _layout(x, locs, scales, logits, xp)
    terms = sweep_terms(x, locs, scales, logits, xp, layout)
    cotangent_t = layout.event_first(cotangent, 1)
    _, _, final_carry = reverse_sweep(terms, cotangent_t, xp)
    locs_bar = terms.responsibilities[-1:, ...] * cotangent_t[..., None]  # r_k(x) = r_{k,D-1}
    return (
        layout.parameter(locs_bar, locs.shape),
        layout.parameter(locs_bar * terms.z, scales.shape),
        sum_to_shape(-final_carry, logits.shape, xp),
    )


def rao_blackwell_jvp(x, locs, scales, logits, locs_dot=None, scales_dot=None, logits_dot=None, *, xp=None):
    r"""Forward mode of :func:`rao_blackwell_vjp`:
    :math:`\dot x_d = \sum_k r_k(x)(\dot\mu_{kd} + z_{kd}\dot\sigma_{kd}) + \dot x_d^{\text{implicit}}(\dot\ell)`."""
    xp, (x, locs, scales, logits, locs_dot, scales_dot, logits_dot) = promote(
        x, locs, scales, logits, locs_dot, scales_dot, logits_dot, xp=xp
    )
    layout = _layout(x, locs, scales, logits, xp)
    terms = sweep_terms(x, locs, scales, logits, xp, layout)
    x_dot = xp.zeros_like(terms.z[..., 0])
    if logits_dot is not None:
        x_dot = forward_sweep(terms, _scaled_transform_tangent(terms, layout, None, None, logits_dot, xp), xp)
    direct = xp.zeros_like(terms.z)
    if locs_dot is not None:
        direct = direct + layout.event_first(locs_dot, 2)
    if scales_dot is not None:
        direct = direct + terms.z * layout.event_first(scales_dot, 2)
    x_dot = x_dot + xp.sum(terms.responsibilities[-1:, ...] * direct, axis=-1)
    return first_axis_last(x_dot, xp)


ESTIMATORS = ("auto", "implicit", "hybrid", "rao_blackwell")

#: What ``estimator="auto"`` resolves to, at every event size.  From
#: ``benchmarks/variance_study.py`` (``docs/estimators.md``): for locs/scales the
#: Rao-Blackwellised chosen-component gradient is never noisier than ``"hybrid"`` (it is
#: its conditional expectation given x), equals ``"implicit"`` at D = 1, and stays within
#: about 1.2x of the better of the two everywhere we measured (D = 1..128, K = 2, 8,
#: overlapping and separated components), while the implicit locs/scales gradient is up to
#: ~10^3x noisier (and heavy-tailed) for separated components and ``"hybrid"`` up to ~7x
#: noisier for overlapping ones.
AUTO_ESTIMATOR = "rao_blackwell"


def resolve_estimator(estimator, event_size):
    """The concrete estimator (``"implicit"``, ``"hybrid"`` or ``"rao_blackwell"``) for ``estimator`` at event size ``event_size``."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}; got {estimator!r}")
    if estimator == "auto":
        return AUTO_ESTIMATOR
    return estimator


def sample_vjp(estimator, x, locs, scales, logits, component_one_hot, noise, cotangent, *, xp=None):
    """``(locs_bar, scales_bar, logits_bar)`` of a draw ``x`` under a concrete ``estimator``.

    ``component_one_hot`` and ``noise`` are the draw's random inputs (used by ``"hybrid"``).
    """
    if estimator == "implicit":
        return implicit_vjp(x, locs, scales, logits, cotangent, xp=xp)
    if estimator == "hybrid":
        return hybrid_vjp(x, locs, scales, logits, component_one_hot, noise, cotangent, xp=xp)
    if estimator == "rao_blackwell":
        return rao_blackwell_vjp(x, locs, scales, logits, cotangent, xp=xp)
    raise ValueError(f"estimator must be one of {ESTIMATORS[1:]} here; got {estimator!r}")


def sample_jvp(
    estimator, x, locs, scales, logits, component_one_hot, noise, locs_dot=None, scales_dot=None, logits_dot=None, *, xp=None
):
    """Tangent of a draw ``x`` under a concrete ``estimator`` (forward mode of :func:`sample_vjp`)."""
    if estimator == "implicit":
        return implicit_jvp(x, locs, scales, logits, locs_dot, scales_dot, logits_dot, xp=xp)
    if estimator == "hybrid":
        return hybrid_jvp(x, locs, scales, logits, component_one_hot, noise, locs_dot, scales_dot, logits_dot, xp=xp)
    if estimator == "rao_blackwell":
        return rao_blackwell_jvp(x, locs, scales, logits, locs_dot, scales_dot, logits_dot, xp=xp)
    raise ValueError(f"estimator must be one of {ESTIMATORS[1:]} here; got {estimator!r}")
