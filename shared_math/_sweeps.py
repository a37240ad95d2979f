r"""The sweeps behind the exact implicit sample gradients, in O(N·K·D) (private).

Graves (2016), "Stochastic Backpropagation through Mixture Density Distributions",
arXiv:1607.05690.  A sample is drawn ancestrally and held fixed through its
distributional transform :math:`T(x;\theta) = u` (:func:`shared_math.distributional_transform`),
so (his Eq. 6, made multivariate)

.. math::

    J\,\mathrm{d}x = -\frac{\partial T}{\partial\theta}\,\mathrm{d}\theta,
    \qquad J = \frac{\partial T}{\partial x}\ \text{(lower triangular, } J_{dd} = f_d).

The public estimators built on these sweeps are in :mod:`shared_math.estimators`; the
derivation is in ``docs/design.md``.  Components are products of a location-scale family
(:mod:`shared_math.families`) with standardized density :math:`g`, score
:math:`\psi = (\log g)'` and CDF :math:`G`; for the Normal, :math:`-\psi(z) = z` and
:math:`G = \Phi`.

**Structure** (``docs/design.md``).  With the conditional weights
:math:`w_{kd}`, the conditional density :math:`f_d=\sum_k w_{kd}N_{kd}` and CDF
:math:`F_d=\sum_k w_{kd}G(z_{kd})`, for :math:`i<d`

.. math::

    J_{di} = \sum_k a_{kd}\,\gamma_{ki}, \qquad a_{kd} = w_{kd}(G(z_{kd}) - F_d),
    \qquad \gamma_{ki} = \partial_{x_i}\log N_{ki} = \psi(z_{ki})/\sigma_{ki},

so the off-diagonal part of :math:`J` has rank :math:`K` and both triangular solves are a
single sweep over the dimensions with a :math:`K`-vector carry.  We sweep in the scaled
variables :math:`u_d = f_d v_d` and :math:`\tilde a_{kd} = a_{kd}/f_d`, which stay bounded
where :math:`f_d` itself underflows.

**Parameter terms.**  :math:`\bar\theta = -\nabla_\theta\sum_d v_d T_d(x;\theta)` at fixed
:math:`x, v`.  With responsibilities :math:`r_{kd}=w_{kd}N_{kd}/f_d` and
:math:`E_{kd}=\sum_{d'>d} u_{d'}\tilde a_{kd'}` (the sweep's carry before step :math:`d`):

.. math::

    \bar\mu_{kd} = u_d r_{kd} + E_{kd}\frac{\psi(z_{kd})}{\sigma_{kd}},\qquad
    \bar\sigma_{kd} = u_d r_{kd} z_{kd} + E_{kd}\frac{1 + z_{kd}\psi(z_{kd})}{\sigma_{kd}}
    = z_{kd}\bar\mu_{kd} + \frac{E_{kd}}{\sigma_{kd}},\qquad
    \bar\ell_k = -\sum_d u_d\tilde a_{kd}.

The last line is Graves' Eq. 22 for the weights, written through the logits; the
softmax's normalising term drops out because :math:`\sum_k a_{kd}=0`.  For :math:`K=1`
everything reduces to the reparameterization trick :math:`\bar\mu=g,\ \bar\sigma=gz`.
(For the Normal, :math:`\psi(z) = -z` gives :math:`\bar\mu = u r - E z/\sigma` and
:math:`\bar\sigma = u r z - E(z^2-1)/\sigma`.)

**Numerics.**  Everything is formed from quantities of order one or from the smaller tail
of each component (below).  Subnormal exponentials are floored (:func:`exp_of_log`).

**Layout and cost.**  Internally arrays are ``(D, K, ...)``: event axis first (each step of
a sweep reads one contiguous slice), components second, sample and batch dimensions last,
where they are contiguous.  Parameters ``(D, K, 1...)`` then broadcast over long contiguous
runs and sums over components add whole rows; with ``K`` last (``(D, ..., K)``) both cost
about 4x more in torch on CPU at ``K = 8``.  The Normal's tails use ``erfc`` (vectorized),
not ``log_ndtr`` (about 40 ``erfc`` in torch).  ``benchmarks/kernels.py`` has the figures.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import array_api_compat

from ._backend import (
    contiguous,
    fuses_elementwise,
    leading_cumsum,
    matmul,
    multiply_add,
    sequential_scan,
    solve_unit_triangular,
)
from .families import NORMAL, exp_of_log
from .mixture import log_softmax


class SweepTerms(NamedTuple):
    r"""Per-sample quantities of the implicit gradient in the internal layout ``(D, K, ...)``.

    ``z``: standardized point :math:`z_{kd}`; ``neg_score``: :math:`-\psi(z_{kd})` (the same
    array as ``z`` for the Normal); ``inv_scales``: :math:`1/\sigma_{kd}` (``(D, K, 1...)``, a
    broadcast view where the parameters have fewer dimensions); ``responsibilities``:
    :math:`r_{kd}`; ``a_scaled``: :math:`\tilde a_{kd} = a_{kd}/f_d`.
    (:math:`\gamma_{kd} = \psi(z_{kd})/\sigma_{kd}` is formed where it is used.)
    """

    z: object
    neg_score: object
    inv_scales: object
    responsibilities: object
    a_scaled: object


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

    def product_parameter(self, weights, values, shape):
        """``parameter(weights * values, shape)`` for ``weights`` ``(1, K, ...)`` and ``values``
        ``(B, 1, ...)`` (the event axis on one of them only).

        When the parameter has no batch dimensions (every sample and batch axis is summed),
        this is one matrix product ``values @ weights^T`` over the flattened samples: no
        full-size temporary, and under XLA no second copy of the weights' producer fused
        into the reduction (that duplication doubled ``"rao_blackwell"``'s step at
        ``N = 1024, K = 8, D = 128``).
        """
        xp = self.xp
        padded = (1,) * (self.batch_ndim + 2 - len(shape)) + tuple(shape)
        if any(size != 1 for size in padded[:-2]) or weights.shape[0] != 1 or values.shape[1] != 1:
            return self.parameter(weights * values, shape)
        trailing = tuple(max(a, b) for a, b in zip(weights.shape[2:], values.shape[2:]))
        num_components, event_size = weights.shape[1], values.shape[0]
        flat_weights = xp.reshape(xp.broadcast_to(weights, (1, num_components) + trailing), (num_components, -1))
        flat_values = xp.reshape(xp.broadcast_to(values, (event_size, 1) + trailing), (event_size, -1))
        product = matmul(flat_weights, xp.permute_dims(flat_values, (1, 0)), xp)  # (K, B)
        if padded[-1] == 1 and event_size != 1:
            product = xp.sum(product, axis=1, keepdims=True)
        if padded[-2] == 1 and num_components != 1:
            product = xp.sum(product, axis=0, keepdims=True)
        return xp.reshape(product, tuple(shape))

    def weights_parameter(self, full, shape):
        """Sum ``(K, ...)`` over broadcast dimensions; return it in the layout ``shape`` ``(..., K)``."""
        padded = (1,) * (self.batch_ndim + 1 - len(shape)) + tuple(shape)
        summed = sum_to_shape(full, (padded[-1],) + padded[:-1], self.xp)
        back = _move_axes(summed, tuple(range(1, summed.ndim)) + (0,), self.xp)
        return self.xp.reshape(back, tuple(shape))


def make_layout(x, locs, scales, logits, xp, shape_params=()):
    """The :class:`SweepLayout` for these arrays (shape parameters are ``(..., K, D)`` like ``scales``)."""
    batch_ndim = max(x.ndim - 1, locs.ndim - 2, scales.ndim - 2, logits.ndim - 1, *(p.ndim - 2 for p in shape_params))
    return SweepLayout(batch_ndim, xp)


def _shift_in(first, values, xp):
    """``out[0] = first`` (broadcast), ``out[d] = values[d - 1]``: a quantity at :math:`d-1`
    indexed by :math:`d`, with ``first`` as its value "before dimension 0"."""
    first = xp.broadcast_to(first, (1,) + tuple(values.shape[1:]))
    return xp.concat([first, values[:-1, ...]], axis=0)


def sweep_terms(x, locs, scales, logits, xp, layout=None, all_responsibilities=True, family=NORMAL, shape_params=()):
    r"""The :class:`SweepTerms` at ``x`` (arrays already promoted to one dtype) for components
    of ``family`` with ``shape_params``.

    With ``all_responsibilities=False`` only :math:`r_{k,D-1} = r_k(x)` is kept, as
    ``(1, K, ...)`` (what ``"rao_blackwell"`` reads; saves a full-size array).

    **Weights.**  With the joint log weights :math:`S_{kd} = \log\pi_k + \sum_{j\le d}\log N_{kj}`
    and :math:`L_d = \operatorname{logsumexp}_k S_{kd} = \log p(x_{\le d})`:
    :math:`r_{kd} = e^{S_{kd}-L_d}`, the conditional weights are :math:`w_{kd} = r_{k,d-1}`
    (:math:`w_{k0}=\pi_k`) and the conditional density is :math:`f_d = e^{L_d-L_{d-1}}`: one
    cumulative sum and one log-sum-exp serve all three.

    **Tails.**  Each component is taken in its own smaller tail
    (:meth:`~shared_math.families.LocationScaleFamily.smaller_tail`): with
    :math:`s_{kd}=-1` where :math:`t_{kd} = G(z_{kd})` and :math:`+1` where
    :math:`t_{kd} = 1 - G(z_{kd})` (for the Normal, :math:`s = \operatorname{sign} z` and
    :math:`t = \Phi(-|z|)`), and :math:`P_{kd} = (w_{kd}/f_d)\,t_{kd}`, the mixture's
    two tails over the density are sums of non-negative terms,

    .. math::

        \frac{F_d}{f_d} = \sum_k \frac{w_{kd}G(z_{kd})}{f_d},\quad
        \frac{1-F_d}{f_d} = \sum_k \frac{w_{kd}(1-G(z_{kd}))}{f_d},\qquad
        \frac{w_{kd}G(z_{kd})}{f_d} = \begin{cases} P_{kd} & s_{kd}=-1\\
        w_{kd}/f_d - P_{kd} & s_{kd}=+1\end{cases}

    (the other likewise), each accurate; and

    .. math::

        \tilde a_{kd} = \frac{w_{kd}(G(z_{kd}) - F_d)}{f_d}
        = s_{kd}\Big(\frac{w_{kd}}{f_d}\,C_{kd} - P_{kd}\Big),\qquad
        C_{kd} = \begin{cases} F_d & s_{kd}=-1\\ 1-F_d & s_{kd}=+1,\end{cases}

    since for :math:`s=+1`, :math:`G - F = (1-F) - (1-G)`.  Only the component of the
    largest weight can lose accuracy there (for :math:`w_{kd}\to1`, :math:`C_{kd}` is mostly
    its own :math:`P_{kd}` and the bracket cancels); it is replaced by
    :math:`-\sum_{j\ne k}\tilde a_{jd}` (:math:`\sum_k a_{kd} = 0`), formed as
    :math:`\tilde a_{kd} - \sum_j\tilde a_{jd}`, whose error is a rounding of the largest
    term.  Where :math:`m` weights tie for the largest, each takes :math:`1/m` of the
    correction (identical components then get exactly equal :math:`\tilde a`, summing to 0).
    """
    layout = make_layout(x, locs, scales, logits, xp, shape_params) if layout is None else layout
    shape_t, offsets, inv_scales, z_all = _standardized_terms(x, locs, scales, layout, family, shape_params, xp)
    full_shape = tuple(z_all.shape)  # (D, K, ...)
    joint_before = layout.weights(log_softmax(logits, xp))  # S_{k,d-1}: the prior (d = -1), row 0 of each block
    a_blocks, responsibility_blocks, neg_score_blocks = [], [], []
    for start, stop in event_blocks(full_shape, xp):
        z = z_all[start:stop, ...]
        shape_block = tuple(_event_slice(p, start, stop) for p in shape_t)
        # The block's score while it is in cache (for the Normal, z itself: nothing to join).
        log_kernel, neg_score, smaller_tail = family.sweep_block_terms(z, shape_block, xp)
        neg_score_blocks.append(neg_score)
        # S_kd for d = start - 1 .. stop - 1, one row more than the block (block_weight_terms)
        joint = leading_cumsum(
            log_kernel + _event_slice(offsets, start, stop), xp, initial=joint_before, keep_initial=True
        )
        del log_kernel
        joint_before = joint[-1:, ...]
        responsibilities, _, a_scaled = block_weight_terms(joint, smaller_tail, xp)
        del joint
        a_blocks.append(a_scaled)
        if all_responsibilities:
            responsibility_blocks.append(responsibilities[1:, ...])
        last_responsibilities = responsibilities[-1:, ...]
        del z, a_scaled, responsibilities, neg_score, smaller_tail
    z, a_scaled = z_all, join_blocks(a_blocks, xp)
    neg_score = z if family == NORMAL else join_blocks(neg_score_blocks, xp)
    del a_blocks, neg_score_blocks
    responsibilities = join_blocks(responsibility_blocks, xp) if all_responsibilities else last_responsibilities
    return SweepTerms(
        z=z, neg_score=neg_score, inv_scales=inv_scales, responsibilities=responsibilities, a_scaled=a_scaled
    )


def _standardized_terms(x, locs, scales, layout, family, shape_params, xp):
    r"""What :func:`sweep_terms` and :func:`final_responsibility_terms` start from, in the
    internal layout: ``(shape_t, offsets, inv_scales, z)`` with the shape parameters
    ``(D, K, ...)``, :math:`\log N_{kd} - \text{kernel}(z_{kd}) = -\log\sigma_{kd} - \log Z`
    ``(D or 1, K, ...)``, :math:`1/\sigma_{kd}` over every dimension (a view where the scales
    broadcast over :math:`d`; the sweeps read it by :math:`d`) and :math:`z_{kd}` over every
    dimension at once (two passes; the event blocks read it as views, cheaper than joining
    per-block pieces afterwards, a copy of the whole array)."""
    scales_t = layout.components(scales)
    shape_t = tuple(layout.components(p) for p in shape_params)
    offsets = -(xp.log(scales_t) + family.log_normalizer(shape_t, xp))
    point = xp.expand_dims(layout.point(x), axis=1)
    locs_t = layout.components(locs)
    event_size = max(point.shape[0], locs_t.shape[0])
    inv_scales = xp.broadcast_to(1.0 / scales_t, (event_size,) + tuple(scales_t.shape[1:]))
    return shape_t, offsets, inv_scales, (point - locs_t) * inv_scales


def component_softmax(joint, xp):
    r""":math:`r_k = e^{S_k}/\sum_j e^{S_j}` over axis 1 of joint log weights ``(.., K, ...)``,
    shifted by the largest and with subnormal exponentials floored (:func:`exp_of_log`), as
    :func:`block_weight_terms` forms its responsibilities."""
    shifted = exp_of_log(joint - xp.max(joint, axis=1, keepdims=True), xp)
    return shifted * (1.0 / xp.sum(shifted, axis=1, keepdims=True))


def final_responsibility_terms(x, locs, scales, logits, xp, layout=None, family=NORMAL, shape_params=()):
    r"""The part of :func:`sweep_terms` that needs no sweep: a :class:`SweepTerms` with ``z``,
    ``inv_scales`` and the final responsibilities :math:`r_k(x)` as ``(1, K, ...)``;
    ``neg_score`` and ``a_scaled`` are ``None``.

    This is all that ``"rao_blackwell"`` reads when no ``logits`` gradient is asked for (and
    ``"hybrid"``, for its shape-parameter velocities): :math:`r_k(x) =
    \operatorname{softmax}_k\big(\log\pi_k + \sum_d\log N_{kd}\big)` is the last row of
    :func:`sweep_terms`' responsibilities, here without the conditional weights, tails and
    :math:`\tilde a` of every dimension, or the sweep that reads them.  The event sum is
    taken block by block (:func:`event_blocks`); the terms that do not depend on :math:`x`
    (:math:`\log\sigma_{kd}` and the normalizer) are summed on the parameters' shape.
    """
    layout = make_layout(x, locs, scales, logits, xp, shape_params) if layout is None else layout
    shape_t, offsets, inv_scales, z = _standardized_terms(x, locs, scales, layout, family, shape_params, xp)
    full_shape = tuple(z.shape)  # (D, K, ...)
    offsets = xp.broadcast_to(offsets, (full_shape[0],) + tuple(offsets.shape[1:]))
    joint = layout.weights(log_softmax(logits, xp)) + xp.sum(offsets, axis=0, keepdims=True)  # (1, K, ...)
    for start, stop in event_blocks(full_shape, xp):
        shape_block = tuple(_event_slice(p, start, stop) for p in shape_t)
        joint = joint + xp.sum(family.log_kernel(z[start:stop, ...], shape_block, xp), axis=0, keepdims=True)
    responsibilities = component_softmax(joint, xp)
    return SweepTerms(z=z, neg_score=None, inv_scales=inv_scales, responsibilities=responsibilities, a_scaled=None)


def block_weight_terms(joint, smaller_tail, xp):
    r"""Responsibilities, largest-weight masks and :math:`\tilde a` of one event block
    ``[start, stop)`` of the sweep terms (:func:`sweep_terms` has the formulas).

    ``joint`` holds the joint log weights :math:`S_{kd}` of the rows
    :math:`d = \text{start}-1, \dots, \text{stop}-1`, one row more than the block (row 0
    is the prior :math:`\log\pi_k` for the first block): each row's log-sum-exp is
    :math:`L_d` and, one row later, :math:`L_{d-1}`, and its responsibilities are the next
    row's weights :math:`w_{kd} = r_{k,d-1}`, so nothing is shifted or copied.
    ``smaller_tail()`` gives the block's ``(sign, tail)`` (called once the log-sum-exp's
    temporaries are freed).  Returns ``(responsibilities, largest, a_scaled)``: the first two
    for all ``B + 1`` rows (``largest`` is 1 at the largest :math:`r_{kd}`), ``a_scaled`` for
    the block's ``B`` rows.
    """
    peak = xp.max(joint, axis=1, keepdims=True)
    shifted = exp_of_log(joint - peak, xp)  # exactly 1 at the largest S_kd
    total = xp.sum(shifted, axis=1, keepdims=True)
    responsibilities = shifted * (1.0 / total)
    # floor() keeps the entries equal to 1: the component of the largest r_kd (the weight w_{k,d+1}).
    largest = xp.floor(shifted)
    del shifted
    log_marginal = peak + xp.log(total)  # L_d, (B + 1, 1, ...)
    sign, tail = smaller_tail()
    a_scaled = _scaled_cdf_terms(
        sign,
        tail,
        responsibilities[:-1, ...],
        log_marginal[1:, ...] - log_marginal[:-1, ...],
        largest[:-1, ...],
        xp,
    )
    return responsibilities, largest, a_scaled


def _event_slice(array, start, stop):
    """Event block ``[start, stop)`` of a ``(D, ...)`` array, or the array itself if its event axis broadcasts (size 1)."""
    return array if array.shape[0] == 1 else array[start:stop, ...]


def join_blocks(blocks, xp):
    return blocks[0] if len(blocks) == 1 else xp.concat(blocks, axis=0)


def event_blocks(full_shape, xp):
    """``[(start, stop)]``: the event axis of ``(D, K, ...)`` arrays of shape ``full_shape`` in
    blocks of about :data:`BLOCK_ELEMENTS` entries (whole slices; at least one per block).

    Eager backends (NumPy, torch) run every elementwise step as a separate pass over memory;
    blocks that stay in the CPU's L2 cache make those passes several times cheaper than
    passes over whole arrays, which at ``N=4096, K=8, D=128`` are 16 MB each.  JAX compiles
    the whole computation (XLA fuses the elementwise steps itself), so it gets one block.

    Arrays of more than ``MIN_EVENT_BLOCKS * MIN_BLOCK_ELEMENTS`` entries get at least
    :data:`MIN_EVENT_BLOCKS` blocks, so that the temporaries of one block, not of the whole
    array, set the peak memory (few samples in many dimensions: at ``N = 16, K = 8,
    D = 1000`` one block held 8.6 MB at the peak of a Pyro step, four hold 3.4 MB, for 10%
    more time).
    """
    event_size = full_shape[0]
    if fuses_elementwise(xp):
        return [(0, event_size)]
    slice_size = max(1, math.prod(full_shape[1:]))
    target = min(BLOCK_ELEMENTS, max(MIN_BLOCK_ELEMENTS, -(-event_size * slice_size // MIN_EVENT_BLOCKS)))
    per_block = max(1, target // slice_size)
    return [(start, min(start + per_block, event_size)) for start in range(0, event_size, per_block)]


#: Target entries per block of :func:`event_blocks` (512 KiB of float32; the fastest of
#: 2**15..2**18 and unblocked at N=4096, K=8, D=16 and 128 in torch).
BLOCK_ELEMENTS = 1 << 17
#: Blocks of :func:`event_blocks` for arrays of more than ``MIN_EVENT_BLOCKS *
#: MIN_BLOCK_ELEMENTS`` entries (fewer, larger blocks below that).
MIN_EVENT_BLOCKS = 4
MIN_BLOCK_ELEMENTS = 1 << 15


def _scaled_cdf_terms(sign, tail, weights, log_density, largest_weight, xp):
    r""":math:`\tilde a_{kd}` from the sign and size of each component's smaller tail,
    :math:`w_{kd}`, :math:`\log f_d` and the mask of the largest weight (:func:`sweep_terms`
    has the formulas)."""
    bound = 0.9 * math.log(float(xp.finfo(tail.dtype).max))
    density = xp.exp(xp.clip(log_density, min=-bound, max=bound))
    weights_over_density = weights * xp.exp(xp.clip(-log_density, max=bound))
    smaller = weights_over_density * tail  # P_kd
    signed_smaller = sign * smaller  # s_kd P_kd
    # 0/1 masks by the side of the median (arithmetic: torch's where() costs 5-10x a product).
    above = xp.clip(sign, min=0.0)  # 1 where t_kd = 1 - G(z_kd)
    weights_above = above * weights_over_density
    lower_over_density = xp.sum(weights_above - signed_smaller, axis=1, keepdims=True)  # F/f
    upper_over_density = xp.sum(
        (weights_over_density - weights_above) + signed_smaller, axis=1, keepdims=True
    )  # (1-F)/f
    del weights_above
    # C_kd, the mixture's tail on the component's side (F below the median, 1 - F above)
    own_cdf_tail = multiply_add((1.0 - above) * (lower_over_density * density), above, upper_over_density * density, xp)
    del above
    a_scaled = multiply_add(-signed_smaller, sign, weights_over_density * own_cdf_tail, xp)  # s (w/f) C - s P
    ties = xp.clip(xp.sum(largest_weight, axis=1, keepdims=True), min=1.0)  # 0 if exp(0) rounded below 1
    return a_scaled - largest_weight * (xp.sum(a_scaled, axis=1, keepdims=True) / ties)


def reverse_sweep(terms, cotangent_t, xp, collect=True):
    r"""Solve :math:`J^\top v = g` by one reverse sweep (``docs/design.md`` §2).

    For :math:`i = D-1,\dots,0`: :math:`E_{ki} = C_k`,
    :math:`u_i = g_i - \sum_k \gamma_{ki} C_k` (:math:`\gamma = \psi(z)/\sigma`),
    :math:`C_k \mathrel{+}= u_i\tilde a_{ki}`.
    ``cotangent_t`` is :math:`g` in layout ``(D, ...)``.  Returns ``(u, carry_before,
    final_carry)`` with shapes ``(D, ...)``, ``(D, K, ...)``, ``(K, ...)``; :math:`v = u/f`.
    With ``collect=False`` only ``final_carry`` is returned (nothing is stacked).
    """
    cotangent_t = xp.broadcast_to(cotangent_t, (terms.z.shape[0],) + tuple(terms.z.shape[2:]))
    if sweep_block_size(terms.z.shape, xp) > 1:
        return _blocked_reverse_sweep(terms, cotangent_t, xp, collect)

    def step(carry, slices):
        g_i, neg_gamma_i, a_i = slices
        u_i = g_i + xp.sum(neg_gamma_i * carry, axis=0)
        outputs = (u_i, carry) if collect else ()
        return multiply_add(carry, u_i[None, ...], a_i, xp), outputs

    carry0 = xp.zeros_like(terms.z[0, ...])
    # -gamma = -psi/sigma formed once outside the loop (one pass instead of a product per step).
    sequences = (cotangent_t, terms.neg_score * terms.inv_scales, terms.a_scaled)
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
    scaled_transform_tangent = xp.broadcast_to(scaled_transform_tangent, (terms.z.shape[0],) + tuple(terms.z.shape[2:]))
    if sweep_block_size(terms.z.shape, xp) > 1:
        return _blocked_forward_sweep(terms, scaled_transform_tangent, xp)

    def step(carry, slices):
        t_d, a_d, q_d = slices
        x_dot_d = -t_d - xp.sum(a_d * carry, axis=0)
        return multiply_add(carry, q_d, x_dot_d[None, ...], xp, scale=-1.0), (x_dot_d,)

    carry0 = xp.zeros_like(terms.z[0, ...])
    # -gamma = -psi/sigma formed outside the scan: inside, JAX's linearization of the step
    # would split off a second scan that only stacks this product (a residual) for reverse mode.
    neg_gamma = terms.neg_score * terms.inv_scales
    sequences = (scaled_transform_tangent, terms.a_scaled, neg_gamma)
    _, (x_dot,) = sequential_scan(step, carry0, sequences, xp)
    return x_dot


#: Dimensions per block of the blocked sweeps, and the largest ``K x samples`` slice for
#: which they are used (``sweep_block_size``); slices of at most
#: ``SWEEP_WIDE_BLOCK_MAX_SLICE`` entries take blocks of ``SWEEP_WIDE_BLOCK`` (at N = 16,
#: K = 8, D = 1000 the Pyro step took 9.9 ms with blocks of 32, 7.8 ms with 64; with 256
#: samples, 64 was slower than 32: 22.8 against 16.9 ms at D = 256).
SWEEP_BLOCK = 32
SWEEP_BLOCKED_MAX_SLICE = 1 << 12
SWEEP_WIDE_BLOCK = 64
SWEEP_WIDE_BLOCK_MAX_SLICE = 1 << 10


def sweep_block_size(full_shape, xp):
    r"""Dimensions per block of the sweeps for arrays ``(D, K, ...)`` of shape ``full_shape``;
    1 means the plain sequential sweep.

    A sequential step costs a handful of elementwise operations on one ``(K, ...)`` slice:
    with few samples that is mostly the eager backend's per-operation overhead, paid ``D``
    times (at ``N = 16, K = 8, D = 1000`` the loop was 16.8 ms against 0.6 ms for a
    ``log_prob``).  The blocked sweeps do ``D / B`` rounds of a few whole-block operations
    and one batched :math:`B\times B` triangular solve (``B`` = :data:`SWEEP_BLOCK`, or
    :data:`SWEEP_WIDE_BLOCK` for the smallest slices); they
    are used when a slice has at most :data:`SWEEP_BLOCKED_MAX_SLICE` entries and ``D``
    exceeds one block.  JAX compiles the scan, whose steps carry no such overhead.
    """
    event_size, slice_size = full_shape[0], math.prod(full_shape[1:])
    if fuses_elementwise(xp) or event_size <= SWEEP_BLOCK or slice_size > SWEEP_BLOCKED_MAX_SLICE:
        return 1
    return SWEEP_WIDE_BLOCK if slice_size <= SWEEP_WIDE_BLOCK_MAX_SLICE else SWEEP_BLOCK


def _samples_first(array, xp):
    """``(B, K, S...)`` to ``(P, B, K)`` with ``P = prod(S...)`` (samples first, for batched matrix products)."""
    flat = xp.reshape(array, tuple(array.shape[:2]) + (-1,))
    return xp.permute_dims(flat, (2, 0, 1))


def _block_coupling(first, second, xp, *, upper):
    r""":math:`M_{ij} = \sum_k \text{first}_{ik}\,\text{second}_{jk}` for each sample, kept
    strictly above (``upper``) or below the diagonal: ``(P, B, B)`` from two ``(B, K, S...)``."""
    # Contiguous operands: torch's batched product of these small strided views took 5-7x as
    # long (92 vs 18 us at B = 32, K = 8, 16 samples; 6.8 vs 1.0 ms with 1024 samples).
    left = contiguous(_samples_first(first, xp), xp)  # (P, B, K)
    right = contiguous(xp.permute_dims(_samples_first(second, xp), (0, 2, 1)), xp)  # (P, K, B)
    coupling = matmul(left, right, xp)
    size = coupling.shape[-1]
    index = xp.arange(size, device=array_api_compat.device(coupling))
    keep = (index[:, None] < index[None, :]) if upper else (index[:, None] > index[None, :])
    return coupling * xp.astype(keep, coupling.dtype)


def _blocks_from_samples(values, like, xp):
    """``(P, B)`` back to ``(B, S...)`` with the sample shape of ``like`` ``(B, K, S...)``."""
    return xp.reshape(xp.permute_dims(values, (1, 0)), (values.shape[1],) + tuple(like.shape[2:]))


def _blocked_reverse_sweep(terms, cotangent_t, xp, collect):
    r"""The reverse sweep a block of :math:`B` dimensions at a time.

    Within a block, with the carry :math:`C` after it (the dimensions above it done) and
    :math:`q_{ik} = -\gamma_{ik}`: :math:`u_i = g_i + \sum_k q_{ik}C_k + \sum_{j>i} M_{ij}u_j`,
    :math:`M_{ij} = \sum_k q_{ik}\tilde a_{jk}`: one unit upper triangular solve per sample,
    then :math:`E_i = C + \sum_{j>i} u_j\tilde a_j` (a suffix sum) and
    :math:`C \mathrel{+}= \sum_j u_j\tilde a_j`.  The same arithmetic as the sequential sweep,
    grouped.
    """
    event_size = terms.z.shape[0]
    block = sweep_block_size(terms.z.shape, xp)
    carry = xp.zeros_like(terms.z[0, ...])
    u_blocks, carry_blocks = [], []
    for start in range((event_size - 1) // block * block, -1, -block):
        stop = min(start + block, event_size)
        q = terms.neg_score[start:stop, ...] * terms.inv_scales[start:stop, ...]
        a = terms.a_scaled[start:stop, ...]
        rhs = cotangent_t[start:stop, ...] + xp.sum(q * carry, axis=1)
        rhs_flat = xp.permute_dims(xp.reshape(rhs, (stop - start, -1)), (1, 0))
        u_flat = solve_unit_triangular(_block_coupling(q, a, xp, upper=True), rhs_flat, xp, upper=True)
        u = _blocks_from_samples(u_flat, a, xp)
        contributions = xp.expand_dims(u, axis=1) * a
        if not collect:  # only the final carry: no suffix sums
            carry = carry + xp.sum(contributions, axis=0)
            continue
        suffix = xp.flip(xp.cumulative_sum(xp.flip(contributions, axis=0), axis=0), axis=0)  # sum over j >= i
        u_blocks.append(u)
        carry_blocks.append(carry + xp.concat([suffix[1:, ...], xp.zeros_like(suffix[:1, ...])], axis=0))
        carry = carry + suffix[0, ...]
    if not collect:
        return carry
    return xp.concat(u_blocks[::-1], axis=0), xp.concat(carry_blocks[::-1], axis=0), carry


def _blocked_forward_sweep(terms, scaled_transform_tangent, xp):
    r"""The forward sweep a block at a time: with the carry :math:`G` before the block,
    :math:`\dot x_i = -t_i - \sum_k\tilde a_{ik}G_k + \sum_{j<i} L_{ij}\dot x_j`,
    :math:`L_{ij} = \sum_k \tilde a_{ik} q_{jk}` (one unit lower triangular solve per sample),
    then :math:`G \mathrel{-}= \sum_j q_j\dot x_j`."""
    event_size = terms.z.shape[0]
    block = sweep_block_size(terms.z.shape, xp)
    carry = xp.zeros_like(terms.z[0, ...])
    pieces = []
    for start in range(0, event_size, block):
        stop = min(start + block, event_size)
        q = terms.neg_score[start:stop, ...] * terms.inv_scales[start:stop, ...]
        a = terms.a_scaled[start:stop, ...]
        rhs = -scaled_transform_tangent[start:stop, ...] - xp.sum(a * carry, axis=1)
        rhs_flat = xp.permute_dims(xp.reshape(rhs, (stop - start, -1)), (1, 0))
        x_dot_flat = solve_unit_triangular(_block_coupling(a, q, xp, upper=False), rhs_flat, xp, upper=False)
        x_dot = _blocks_from_samples(x_dot_flat, a, xp)
        pieces.append(x_dot)
        carry = carry - xp.sum(q * xp.expand_dims(x_dot, axis=1), axis=0)
    return xp.concat(pieces, axis=0)


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


def scaled_transform_tangent(
    terms, layout, locs_dot, scales_dot, logits_dot, xp, *, location_velocities=None, shape_terms=()
):
    r""":math:`\dot T_d / f_d` at fixed :math:`x`, layout ``(D, ...)``.

    .. math::

        \frac{\dot T_d}{f_d} = \sum_k \tilde a_{kd}\Big(\dot\ell_k + \sum_{j<d}
        \frac{-\psi_{kj}\dot\mu_{kj} - (1 + z_{kj}\psi_{kj})\dot\sigma_{kj}}{\sigma_{kj}}\Big)
        - \sum_k r_{kd}(\dot\mu_{kd} + z_{kd}\dot\sigma_{kd}).

    (The softmax's normalising term of :math:`\dot\ell` drops out: :math:`\sum_k\tilde a_{kd}=0`.)
    ``location_velocities`` ``(v_loc, v_scale)`` (internal layout) replace the closed forms 1
    and :math:`z` of the direct term; ``shape_terms`` are ``(score, velocity, dot)`` triples of
    shape parameters :math:`\theta`, adding :math:`\partial_\theta\log g_{kj}\,\dot\theta_{kj}`
    inside the bracket and :math:`-r_{kd}V_{kd}\dot\theta_{kd}` (``docs/design.md`` §7).
    """
    z = terms.z
    log_weight_dot = None
    direct = None
    if locs_dot is not None or scales_dot is not None or shape_terms:
        log_joint_dot = xp.zeros_like(z)
        direct = xp.zeros_like(z)
        if locs_dot is not None:
            locs_dot = layout.components(locs_dot)
            log_joint_dot = log_joint_dot + terms.neg_score * terms.inv_scales * locs_dot
            direct = direct + (locs_dot if location_velocities is None else location_velocities[0] * locs_dot)
        if scales_dot is not None:
            scales_dot = layout.components(scales_dot)
            log_joint_dot = log_joint_dot + (z * terms.neg_score - 1.0) * terms.inv_scales * scales_dot
            direct = direct + (z if location_velocities is None else location_velocities[1]) * scales_dot
        for score, velocity, dot in shape_terms:
            log_joint_dot = log_joint_dot + score * dot
            direct = direct + velocity * dot
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


def event_block_shape(shape, start, stop):
    """Parameter shape ``(..., K, D)`` of the event block ``[start, stop)`` (``D = 1`` stays 1)."""
    return tuple(shape[:-1]) + ((stop - start) if shape[-1] != 1 else 1,)


def join_event_blocks(pieces, shape, xp):
    """The parameter gradient of shape ``shape`` from its event blocks (summed where ``D = 1`` broadcasts)."""
    if len(pieces) == 1:
        return pieces[0]
    if shape[-1] == 1:
        total = pieces[0]
        for piece in pieces[1:]:
            total = total + piece
        return total
    return xp.concat(pieces, axis=-1)
