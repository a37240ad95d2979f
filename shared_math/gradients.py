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

**Numerics.**  Everything is formed from quantities of order one or from the smaller tail
of each component (below).  Subnormal exponentials are floored (:func:`exp_of_log`).

**Layout and cost.**  Internally arrays are ``(D, K, ...)``: event axis first (each step of
a sweep reads one contiguous slice), components second, sample and batch dimensions last,
where they are contiguous.  Parameters ``(D, K, 1...)`` then broadcast over long contiguous
runs and sums over components add whole rows; with ``K`` last (``(D, ..., K)``) both cost
about 4x more in torch on CPU at ``K = 8``.  The tails use ``erfc`` (vectorized), not
``log_ndtr`` (about 40 ``erfc`` in torch).  ``benchmarks/kernels.py`` has the figures.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

from ._backend import (
    LOG_SQRT_2PI,
    contiguous,
    fuses_elementwise,
    get_namespace,
    leading_cumsum,
    normal_tail,
    sequential_scan,
    subnormals_flushed,
)
from .mixture import exp_of_log, log_softmax, promote


class SweepTerms(NamedTuple):
    """Per-sample quantities of the implicit gradient in the internal layout ``(D, K, ...)``.

    ``z``: standardized point :math:`z_{kd}`; ``inv_scales``: :math:`1/\\sigma_{kd}`
    (``(D, K, 1...)``, a broadcast view where the parameters have fewer dimensions); ``responsibilities``: :math:`r_{kd}`; ``a_scaled``:
    :math:`\\tilde a_{kd} = a_{kd}/f_d`.  (:math:`\\gamma_{kd} = -z_{kd}/\\sigma_{kd}` is formed
    where it is used.)
    """

    z: object
    inv_scales: object
    responsibilities: object
    a_scaled: object


def _flushing_subnormals(function):
    """Run ``function`` (whose positional arguments are arrays or ``None``) with subnormal
    results flushed to zero where the backend allows it (:func:`subnormals_flushed`)."""

    @functools.wraps(function)
    def wrapper(*args, xp=None, **kwargs):
        namespace = get_namespace(*args, *kwargs.values()) if xp is None else xp
        with subnormals_flushed(namespace):
            return function(*args, xp=namespace, **kwargs)

    return wrapper


def _move_axes(array, order, xp):
    """``permute_dims`` (unlike torch's ``moveaxis`` it has a vmap rule)."""
    return xp.permute_dims(array, tuple(order))


class SweepLayout:
    """Moves arrays between the public layouts and the internal ``(D, K, ...)``.

    Public: points ``(..., D)``, ``locs``/``scales`` ``(..., K, D)``, ``logits`` ``(..., K)``.
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

    def point(self, array):
        """``(..., D)`` to ``(D, ...)``."""
        padded = self._pad(array, 1)
        ndim = padded.ndim
        return contiguous(_move_axes(padded, (ndim - 1,) + tuple(range(ndim - 1)), self.xp), self.xp)

    def point_back(self, array):
        """``(D, ...)`` to ``(..., D)``; inverse of :meth:`point`."""
        return _move_axes(array, tuple(range(1, array.ndim)) + (0,), self.xp)

    def components(self, array):
        """``(..., K, D)`` to ``(D, K, ...)``."""
        padded = self._pad(array, 2)
        ndim = padded.ndim
        return contiguous(_move_axes(padded, (ndim - 1, ndim - 2) + tuple(range(ndim - 2)), self.xp), self.xp)

    def weights(self, array):
        """``(..., K)`` to ``(1, K, ...)``."""
        padded = self._pad(array, 1)
        ndim = padded.ndim
        return self.xp.expand_dims(_move_axes(padded, (ndim - 1,) + tuple(range(ndim - 1)), self.xp), axis=0)

    def parameter(self, full, shape):
        """Sum ``(D, K, ...)`` over broadcast dimensions; return it in the layout ``shape`` ``(..., K, D)``."""
        padded = (1,) * (self.batch_ndim + 2 - len(shape)) + tuple(shape)
        summed = sum_to_shape(full, (padded[-1], padded[-2]) + padded[:-2], self.xp)
        back = _move_axes(summed, tuple(range(2, summed.ndim)) + (1, 0), self.xp)
        return self.xp.reshape(back, tuple(shape))

    def weights_parameter(self, full, shape):
        """Sum ``(K, ...)`` over broadcast dimensions; return it in the layout ``shape`` ``(..., K)``."""
        padded = (1,) * (self.batch_ndim + 1 - len(shape)) + tuple(shape)
        summed = sum_to_shape(full, (padded[-1],) + padded[:-1], self.xp)
        back = _move_axes(summed, tuple(range(1, summed.ndim)) + (0,), self.xp)
        return self.xp.reshape(back, tuple(shape))


def _layout(x, locs, scales, logits, xp):
    batch_ndim = max(x.ndim - 1, locs.ndim - 2, scales.ndim - 2, logits.ndim - 1)
    return SweepLayout(batch_ndim, xp)


def _shift_in(first, values, xp):
    """``out[0] = first`` (broadcast), ``out[d] = values[d - 1]``: a quantity at :math:`d-1`
    indexed by :math:`d`, with ``first`` as its value "before dimension 0"."""
    first = xp.broadcast_to(first, (1,) + tuple(values.shape[1:]))
    return xp.concat([first, values[:-1, ...]], axis=0)


def sweep_terms(x, locs, scales, logits, xp, layout=None, all_responsibilities=True):
    r"""The :class:`SweepTerms` at ``x`` (arrays already promoted to one dtype).

    With ``all_responsibilities=False`` only :math:`r_{k,D-1} = r_k(x)` is kept, as
    ``(1, K, ...)`` (what ``"rao_blackwell"`` reads; saves a full-size array).

    **Weights.**  With the joint log weights :math:`S_{kd} = \log\pi_k + \sum_{j\le d}\log N_{kj}`
    and :math:`L_d = \operatorname{logsumexp}_k S_{kd} = \log p(x_{\le d})`:
    :math:`r_{kd} = e^{S_{kd}-L_d}`, the conditional weights are :math:`w_{kd} = r_{k,d-1}`
    (:math:`w_{k0}=\pi_k`) and the conditional density is :math:`f_d = e^{L_d-L_{d-1}}`: one
    cumulative sum and one log-sum-exp serve all three.

    **Tails.**  Each component is taken in its own smaller tail: with
    :math:`s_{kd} = \operatorname{sign} z_{kd}` (:math:`\pm1`; :math:`+1` at :math:`+0`),
    :math:`t_{kd} = \Phi(-|z_{kd}|)` and :math:`P_{kd} = (w_{kd}/f_d)\,t_{kd}`, the mixture's
    two tails over the density are sums of non-negative terms,

    .. math::

        \frac{F_d}{f_d} = \sum_k \frac{w_{kd}\Phi(z_{kd})}{f_d},\quad
        \frac{1-F_d}{f_d} = \sum_k \frac{w_{kd}(1-\Phi(z_{kd}))}{f_d},\qquad
        \frac{w_{kd}\Phi(z_{kd})}{f_d} = \begin{cases} P_{kd} & s_{kd}=-1\\
        w_{kd}/f_d - P_{kd} & s_{kd}=+1\end{cases}

    (the other likewise), each accurate; and

    .. math::

        \tilde a_{kd} = \frac{w_{kd}(\Phi(z_{kd}) - F_d)}{f_d}
        = s_{kd}\Big(\frac{w_{kd}}{f_d}\,C_{kd} - P_{kd}\Big),\qquad
        C_{kd} = \begin{cases} F_d & s_{kd}=-1\\ 1-F_d & s_{kd}=+1,\end{cases}

    since for :math:`s=+1`, :math:`\Phi - F = (1-F) - (1-\Phi)`.  Only the component of the
    largest weight can lose accuracy there (for :math:`w_{kd}\to1`, :math:`C_{kd}` is mostly
    its own :math:`P_{kd}` and the bracket cancels); it is replaced by
    :math:`-\sum_{j\ne k}\tilde a_{jd}` (:math:`\sum_k a_{kd} = 0`), formed as
    :math:`\tilde a_{kd} - \sum_j\tilde a_{jd}`, whose error is a rounding of the largest
    term.  Where :math:`m` weights tie for the largest, each takes :math:`1/m` of the
    correction (identical components then get exactly equal :math:`\tilde a`, summing to 0).
    """
    layout = _layout(x, locs, scales, logits, xp) if layout is None else layout
    scales_t = layout.components(scales)
    offsets = -(xp.log(scales_t) + LOG_SQRT_2PI)  # log N_kd = offsets_kd - z_kd^2 / 2
    point = xp.expand_dims(layout.point(x), axis=1)
    locs_t = layout.components(locs)
    full_shape = tuple(max(a, b) for a, b in zip(point.shape, locs_t.shape))  # (D, K, ...)
    # 1/sigma over every dimension d (a view where scales broadcast over d): the sweeps read it by d.
    inv_scales = xp.broadcast_to(1.0 / scales_t, (full_shape[0],) + tuple(scales_t.shape[1:]))
    log_pi = layout.weights(log_softmax(logits, xp))  # (1, K, ...)
    # What each block needs from the dimension before it (d = -1: the prior).
    joint_before = log_pi  # S_{k,d-1}
    log_marginal_before = xp.zeros_like(log_pi[:, :1, ...])  # L_{d-1}
    weights_first = xp.exp(log_pi)  # w_kd = r_{k,d-1}
    largest_first = xp.floor(exp_of_log(log_pi - xp.max(log_pi, axis=1, keepdims=True), xp))
    z_blocks, a_blocks, responsibility_blocks = [], [], []
    for start, stop in event_blocks(full_shape, xp):
        z = (point[start:stop, ...] - _event_slice(locs_t, start, stop)) * inv_scales[start:stop, ...]
        joint = leading_cumsum((-0.5) * (z * z) + _event_slice(offsets, start, stop), xp, initial=joint_before)
        peak = xp.max(joint, axis=1, keepdims=True)
        shifted = exp_of_log(joint - peak, xp)  # exactly 1 at the largest S_kd
        joint_before = joint[-1:, ...]
        del joint
        total = xp.sum(shifted, axis=1, keepdims=True)
        responsibilities = shifted * (1.0 / total)
        # floor() keeps the entries equal to 1: the component of the largest weight w_kd = r_{k,d-1}.
        largest_now = xp.floor(shifted)
        del shifted
        largest_weight = _shift_in(largest_first, largest_now, xp)
        largest_first = largest_now[-1:, ...]
        del largest_now
        log_marginal = peak + xp.log(total)  # L_d, (B, 1, ...)
        log_density = log_marginal - _shift_in(log_marginal_before, log_marginal, xp)
        log_marginal_before = log_marginal[-1:, ...]
        a_scaled = _scaled_cdf_terms(
            z, _shift_in(weights_first, responsibilities, xp), log_density, largest_weight, xp
        )
        weights_first = responsibilities[-1:, ...]
        z_blocks.append(z)
        a_blocks.append(a_scaled)
        if all_responsibilities:
            responsibility_blocks.append(responsibilities)
        del z, a_scaled, responsibilities
    z, a_scaled = _join_blocks(z_blocks, xp), _join_blocks(a_blocks, xp)
    del z_blocks, a_blocks
    responsibilities = _join_blocks(responsibility_blocks, xp) if all_responsibilities else weights_first
    return SweepTerms(z=z, inv_scales=inv_scales, responsibilities=responsibilities, a_scaled=a_scaled)


def _event_slice(array, start, stop):
    """Event block ``[start, stop)`` of a ``(D, ...)`` array, or the array itself if its event axis broadcasts (size 1)."""
    return array if array.shape[0] == 1 else array[start:stop, ...]


def _join_blocks(blocks, xp):
    return blocks[0] if len(blocks) == 1 else xp.concat(blocks, axis=0)


def event_blocks(full_shape, xp):
    """``[(start, stop)]``: the event axis of ``(D, K, ...)`` arrays of shape ``full_shape`` in
    blocks of about :data:`BLOCK_ELEMENTS` entries (whole slices; at least one per block).

    Eager backends (NumPy, torch) run every elementwise step as a separate pass over memory;
    blocks that stay in the CPU's L2 cache make those passes several times cheaper than
    passes over whole arrays, which at ``N=4096, K=8, D=128`` are 16 MB each.  JAX compiles
    the whole computation (XLA fuses the elementwise steps itself), so it gets one block.
    """
    event_size = full_shape[0]
    if fuses_elementwise(xp):
        return [(0, event_size)]
    per_block = max(1, BLOCK_ELEMENTS // max(1, math.prod(full_shape[1:])))
    return [(start, min(start + per_block, event_size)) for start in range(0, event_size, per_block)]


#: Target entries per block of :func:`event_blocks` (512 KiB of float32; the fastest of
#: 2**15..2**18 and unblocked at N=4096, K=8, D=16 and 128 in torch).
BLOCK_ELEMENTS = 1 << 17


def _scaled_cdf_terms(z, weights, log_density, largest_weight, xp):
    r""":math:`\tilde a_{kd}` from :math:`z_{kd}`, :math:`w_{kd}`, :math:`\log f_d` and the
    mask of the largest weight (:func:`sweep_terms` has the formulas)."""
    bound = 0.9 * math.log(float(xp.finfo(z.dtype).max))
    density = xp.exp(xp.clip(log_density, min=-bound, max=bound))
    weights_over_density = weights * xp.exp(xp.clip(-log_density, max=bound))
    sign = xp.copysign(xp.ones_like(z[:1, :1, ...]), z)
    signed_tail = sign * (weights_over_density * normal_tail(xp.abs(z), xp))  # s_kd P_kd
    below = 0.5 - 0.5 * sign  # 1 where z < 0
    above = 1.0 - below
    lower_over_density = xp.sum(above * weights_over_density - signed_tail, axis=1, keepdims=True)  # F/f
    upper_over_density = xp.sum(below * weights_over_density + signed_tail, axis=1, keepdims=True)  # (1-F)/f
    own_cdf_tail = below * (lower_over_density * density) + above * (upper_over_density * density)  # C_kd
    del below, above
    a_scaled = sign * (weights_over_density * own_cdf_tail) - signed_tail
    ties = xp.clip(xp.sum(largest_weight, axis=1, keepdims=True), min=1.0)  # 0 if exp(0) rounded below 1
    return a_scaled - largest_weight * (xp.sum(a_scaled, axis=1, keepdims=True) / ties)


def reverse_sweep(terms, cotangent_t, xp, collect=True):
    r"""Solve :math:`J^\top v = g` by one reverse sweep (``DESIGN.md`` §1).

    For :math:`i = D-1,\dots,0`: :math:`E_{ki} = C_k`,
    :math:`u_i = g_i - \sum_k \gamma_{ki} C_k`, :math:`C_k \mathrel{+}= u_i\tilde a_{ki}`.
    ``cotangent_t`` is :math:`g` in layout ``(D, ...)``.  Returns ``(u, carry_before,
    final_carry)`` with shapes ``(D, ...)``, ``(D, K, ...)``, ``(K, ...)``; :math:`v = u/f`.
    With ``collect=False`` only ``final_carry`` is returned (nothing is stacked).
    """
    cotangent_t = xp.broadcast_to(cotangent_t, (terms.z.shape[0],) + tuple(terms.z.shape[2:]))

    def step(carry, slices):
        g_i, z_i, inv_i, a_i = slices
        u_i = g_i + xp.sum(z_i * (inv_i * carry), axis=0)  # gamma = -z / sigma
        outputs = (u_i, carry) if collect else ()
        return carry + u_i[None, ...] * a_i, outputs

    carry0 = xp.zeros_like(terms.z[0, ...])
    sequences = (cotangent_t, terms.z, terms.inv_scales, terms.a_scaled)
    final, stacked = sequential_scan(step, carry0, sequences, xp, reverse=True)
    if not collect:
        return final
    u, carry_before = stacked
    return u, carry_before, final


def forward_sweep(terms, scaled_transform_tangent, xp):
    r"""Solve :math:`J\,\dot x = -\dot T` by one forward sweep, given :math:`\dot T_d / f_d` as ``(D, ...)``.

    For :math:`d = 0,\dots,D-1`: :math:`\dot x_d = -\dot T_d/f_d - \sum_k \tilde a_{kd} G_k`,
    :math:`G_k \mathrel{+}= \gamma_{kd}\dot x_d`.  Linear in the tangent, so JAX can
    transpose it (reverse mode) and differentiate it again (higher orders).  Returns
    :math:`\dot x` as ``(D, ...)``.
    """
    scaled_transform_tangent = xp.broadcast_to(
        scaled_transform_tangent, (terms.z.shape[0],) + tuple(terms.z.shape[2:])
    )

    def step(carry, slices):
        t_d, a_d, z_d, inv_d = slices
        x_dot_d = -t_d - xp.sum(a_d * carry, axis=0)
        return carry - (z_d * inv_d) * x_dot_d[None, ...], (x_dot_d,)

    carry0 = xp.zeros_like(terms.z[0, ...])
    _, (x_dot,) = sequential_scan(step, carry0, (scaled_transform_tangent, terms.a_scaled, terms.z, terms.inv_scales), xp)
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


@_flushing_subnormals
def implicit_vjp(x, locs, scales, logits, cotangent, *, xp=None):
    r"""Reverse-mode implicit gradient: ``(locs_bar, scales_bar, logits_bar)``.

    :math:`\bar\theta = (\partial L/\partial x)\,\mathrm{d}x/\mathrm{d}\theta` for samples
    ``x`` (shape ``(..., D)``) held fixed through their distributional transform, with
    ``cotangent`` :math:`\partial L/\partial x` of the same shape.  Results have the
    parameters' shapes (summed over sample and broadcast dimensions).  O(N·K·D) time and
    memory; see the module docstring for the formulas.  :math:`\bar\mu` of the most
    responsible component is taken from :math:`\sum_k\bar\mu_{kd} = g_d` (moving every
    component by :math:`\delta` moves the sample by :math:`\delta`), since its two
    :math:`\gamma_kE_k` terms cancel in float32.
    """
    xp, (x, locs, scales, logits, cotangent) = promote(x, locs, scales, logits, cotangent, xp=xp)
    layout = _layout(x, locs, scales, logits, xp)
    terms = sweep_terms(x, locs, scales, logits, xp, layout)
    cotangent_t = layout.point(cotangent)
    u, carry_before, final_carry = reverse_sweep(terms, cotangent_t, xp)
    cotangent_t = xp.broadcast_to(cotangent_t, tuple(u.shape))
    locs_pieces, scales_pieces = [], []
    for start, stop in event_blocks(terms.z.shape, xp):  # no full-size temporaries
        z = terms.z[start:stop, ...]
        inv_scales = terms.inv_scales[start:stop, ...]
        responsibilities = terms.responsibilities[start:stop, ...]
        carry = carry_before[start:stop, ...]
        locs_bar = xp.expand_dims(u[start:stop, ...], axis=1) * responsibilities - (z * inv_scales) * carry
        # For the most responsible component the two gamma_k E_k terms (one inside u) cancel;
        # there mu_bar is replaced through sum_k mu_bar_kd = g_d (ties share the correction).
        largest = xp.astype(responsibilities == xp.max(responsibilities, axis=1, keepdims=True), z.dtype)
        correction = (cotangent_t[start:stop, ...] - xp.sum(locs_bar, axis=1)) / xp.sum(largest, axis=1)
        locs_bar = locs_bar + largest * xp.expand_dims(correction, axis=1)
        # sigma_bar = u r z - E (z^2 - 1)/sigma = z mu_bar + E / sigma.
        scales_bar = z * locs_bar + carry * inv_scales
        locs_pieces.append(layout.parameter(locs_bar, _event_block_shape(locs.shape, start, stop)))
        scales_pieces.append(layout.parameter(scales_bar, _event_block_shape(scales.shape, start, stop)))
    return (
        _join_event_blocks(locs_pieces, locs.shape, xp),
        _join_event_blocks(scales_pieces, scales.shape, xp),
        layout.weights_parameter(-final_carry, logits.shape),
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
    log_weight_dot = None
    direct = None
    if locs_dot is not None or scales_dot is not None:
        log_joint_dot = xp.zeros_like(z)
        direct = xp.zeros_like(z)
        if locs_dot is not None:
            locs_dot = layout.components(locs_dot)
            log_joint_dot = log_joint_dot + z * terms.inv_scales * locs_dot
            direct = direct + locs_dot
        if scales_dot is not None:
            scales_dot = layout.components(scales_dot)
            log_joint_dot = log_joint_dot + (z * z - 1.0) * terms.inv_scales * scales_dot
            direct = direct + z * scales_dot
        log_weight_dot = _shift_in(xp.zeros_like(log_joint_dot[:1, ...]), leading_cumsum(log_joint_dot, xp), xp)
    if logits_dot is not None:
        logits_term = layout.weights(logits_dot)
        log_weight_dot = logits_term if log_weight_dot is None else log_weight_dot + logits_term
    total = xp.zeros_like(z[:, 0, ...])
    if log_weight_dot is not None:
        total = total + xp.sum(terms.a_scaled * log_weight_dot, axis=1)
    if direct is not None:
        total = total - xp.sum(terms.responsibilities * direct, axis=1)
    return total


@_flushing_subnormals
def implicit_jvp(x, locs, scales, logits, locs_dot=None, scales_dot=None, logits_dot=None, *, xp=None):
    r"""Forward-mode implicit gradient :math:`\dot x = -J^{-1}\,\partial_\theta T\,\dot\theta`.

    Tangents have the parameters' shapes (``None`` means zero); the result has the
    broadcast sample shape ``(..., D)``.  One forward sweep, O(N·K·D).
    """
    xp, (x, locs, scales, logits, locs_dot, scales_dot, logits_dot) = promote(
        x, locs, scales, logits, locs_dot, scales_dot, logits_dot, xp=xp
    )
    layout = _layout(x, locs, scales, logits, xp)
    direct_terms = locs_dot is not None or scales_dot is not None  # read r_kd at every d
    terms = sweep_terms(x, locs, scales, logits, xp, layout, all_responsibilities=direct_terms)
    scaled = _scaled_transform_tangent(terms, layout, locs_dot, scales_dot, logits_dot, xp)
    return layout.point_back(forward_sweep(terms, scaled, xp))


def chosen_component_vjp(component_one_hot, noise, cotangent, locs_shape, scales_shape, *, xp=None):
    r"""Gradient through the chosen component, :math:`x = \mu_k + \sigma_k\varepsilon` given :math:`k`.

    :math:`\bar\mu_{kd} = [k\text{ chosen}]\,g_d` and :math:`\bar\sigma_{kd} = [k\text{ chosen}]\,g_d\varepsilon_d`;
    unbiased since :math:`E[h(x)] = \sum_k\pi_k E_\varepsilon[h(\mu_k+\sigma_k\varepsilon)]`.
    """
    xp, (component_one_hot, noise, cotangent) = promote(component_one_hot, noise, cotangent, xp=xp)
    locs_bar = component_one_hot[..., None] * cotangent[..., None, :]
    scales_bar = locs_bar * noise[..., None, :]
    return sum_to_shape(locs_bar, locs_shape, xp), sum_to_shape(scales_bar, scales_shape, xp)


@_flushing_subnormals
def hybrid_vjp(x, locs, scales, logits, component_one_hot, noise, cotangent, *, xp=None):
    r"""The ``"hybrid"`` estimator: chosen-component gradient for ``locs``/``scales``,
    implicit gradient (Graves Eq. 22, via :func:`implicit_vjp`'s sweep) for ``logits``.

    ``x`` must be the draw ``sample_from_noise(locs, scales, component_one_hot, noise)``.
    """
    xp, (x, locs, scales, logits, cotangent) = promote(x, locs, scales, logits, cotangent, xp=xp)
    layout = _layout(x, locs, scales, logits, xp)
    terms = sweep_terms(x, locs, scales, logits, xp, layout, all_responsibilities=False)
    final_carry = reverse_sweep(terms, layout.point(cotangent), xp, collect=False)
    locs_bar, scales_bar = chosen_component_vjp(component_one_hot, noise, cotangent, locs.shape, scales.shape, xp=xp)
    return locs_bar, scales_bar, layout.weights_parameter(-final_carry, logits.shape)


@_flushing_subnormals
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


@_flushing_subnormals
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
    terms = sweep_terms(x, locs, scales, logits, xp, layout, all_responsibilities=False)
    cotangent_t = layout.point(cotangent)
    final_carry = reverse_sweep(terms, cotangent_t, xp, collect=False)
    locs_pieces, scales_pieces = [], []
    for start, stop in event_blocks(terms.z.shape, xp):  # no full-size temporaries
        locs_bar = terms.responsibilities * xp.expand_dims(cotangent_t[start:stop, ...], axis=1)  # r_k(x) g_d
        locs_pieces.append(layout.parameter(locs_bar, _event_block_shape(locs.shape, start, stop)))
        scales_pieces.append(layout.parameter(locs_bar * terms.z[start:stop, ...], _event_block_shape(scales.shape, start, stop)))
    return (
        _join_event_blocks(locs_pieces, locs.shape, xp),
        _join_event_blocks(scales_pieces, scales.shape, xp),
        layout.weights_parameter(-final_carry, logits.shape),
    )


def _event_block_shape(shape, start, stop):
    """Parameter shape ``(..., K, D)`` of the event block ``[start, stop)`` (``D = 1`` stays 1)."""
    return tuple(shape[:-1]) + ((stop - start) if shape[-1] != 1 else 1,)


def _join_event_blocks(pieces, shape, xp):
    """The parameter gradient of shape ``shape`` from its event blocks (summed where ``D = 1`` broadcasts)."""
    if len(pieces) == 1:
        return pieces[0]
    if shape[-1] == 1:
        total = pieces[0]
        for piece in pieces[1:]:
            total = total + piece
        return total
    return xp.concat(pieces, axis=-1)


@_flushing_subnormals
def rao_blackwell_jvp(x, locs, scales, logits, locs_dot=None, scales_dot=None, logits_dot=None, *, xp=None):
    r"""Forward mode of :func:`rao_blackwell_vjp`:
    :math:`\dot x_d = \sum_k r_k(x)(\dot\mu_{kd} + z_{kd}\dot\sigma_{kd}) + \dot x_d^{\text{implicit}}(\dot\ell)`."""
    xp, (x, locs, scales, logits, locs_dot, scales_dot, logits_dot) = promote(
        x, locs, scales, logits, locs_dot, scales_dot, logits_dot, xp=xp
    )
    layout = _layout(x, locs, scales, logits, xp)
    terms = sweep_terms(x, locs, scales, logits, xp, layout, all_responsibilities=False)
    x_dot = xp.zeros_like(terms.z[:, 0, ...])
    if logits_dot is not None:
        x_dot = forward_sweep(terms, _scaled_transform_tangent(terms, layout, None, None, logits_dot, xp), xp)
    direct = xp.zeros_like(terms.z)
    if locs_dot is not None:
        direct = direct + layout.components(locs_dot)
    if scales_dot is not None:
        direct = direct + terms.z * layout.components(scales_dot)
    x_dot = x_dot + xp.sum(terms.responsibilities[-1:, ...] * direct, axis=1)
    return layout.point_back(x_dot)


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
