r"""Full-covariance Gaussian mixtures: densities, sampling and exact implicit sample gradients.

Parameters: ``locs`` :math:`\mu` ``(..., K, D)``, ``scale_tril`` :math:`L` ``(..., K, D, D)``
(lower triangular with a positive diagonal, :math:`\Sigma_k = L_kL_k^\top`; **only the lower
triangle is read**, and the gradient of the strict upper triangle is exactly zero),
``logits`` :math:`\ell` ``(..., K)``, :math:`\pi=\mathrm{softmax}(\ell)`.  Points ``x`` have
shape ``(..., D)``; all leading dimensions broadcast.  The maths is derived in
``docs/design.md`` ("Full covariance"); in brief (the equation tags are those of that section):

**Whitened residuals (FC1).**  :math:`\varepsilon_k = L_k^{-1}(x-\mu_k)`.  Under component
:math:`k` the conditional of :math:`x_d` given :math:`x_{<d}` is
:math:`N(\mu_{kd} + \sum_{j<d}L_{k,dj}\varepsilon_{kj},\ L_{k,dd}^2)`, whose standardized value
is :math:`\varepsilon_{kd}`, so everything the diagonal case does with
:math:`z_{kd}=(x_d-\mu_{kd})/\sigma_{kd}` carries over with :math:`z\to\varepsilon`,
:math:`\sigma_{kd}\to L_{k,dd}`:

.. math::

    \log N_{kd} = -\tfrac12\varepsilon_{kd}^2 - \log L_{k,dd} - \log\sqrt{2\pi},\qquad
    w_{kd} \propto \pi_k\prod_{j<d}N_{kj},\qquad
    T_d(x) = \sum_k w_{kd}\,\Phi(\varepsilon_{kd}),\qquad f_d = \sum_k w_{kd}N_{kd}.

**Jacobian (FC3).**  :math:`J=\partial T/\partial x` is lower triangular with diagonal
:math:`f`, but :math:`\partial\varepsilon_k/\partial x = L_k^{-1}` is dense below the diagonal,
so the strictly lower part is no longer of rank :math:`K`:
:math:`J_{di} = \sum_k\big[w_{kd}N_{kd}L_{k,dd}(L_k^{-1})_{di} - a_{kd}\sum_{j<d}\varepsilon_{kj}(L_k^{-1})_{ji}\big]`,
with :math:`a_{kd} = w_{kd}(\Phi(\varepsilon_{kd})-F_d)`.

**Reverse sweep (FC4).**  :math:`J^\top v = g` is solved without forming :math:`J`: with
:math:`u_i=f_iv_i`, :math:`\tilde a_{kd} = a_{kd}/f_d`, responsibilities
:math:`r_{ki} = w_{ki}N_{ki}/f_i` and :math:`E_{ki} = \sum_{d>i}u_d\tilde a_{kd}`,

.. math::

    c_{kj} = v_jw_{kj}N_{kj}L_{k,jj}\;-\;\varepsilon_{kj}E_{kj},\qquad
    y_k = L_k^{-\top}c_k,\qquad (J^\top v)_i = \sum_k y_{ki},

so for :math:`i=D-1,\dots,0`, with :math:`h_{ki}=(\varepsilon_{ki}E_{ki}+s_{ki})/L_{k,ii}` and
:math:`s_{ki}=\sum_{j>i}L_{k,ji}y_{kj}`:
:math:`u_i = g_i + \sum_k h_{ki}`, :math:`y_{ki} = u_ir_{ki} - h_{ki}`,
:math:`E_k \mathrel{+}= u_i\tilde a_{ki}`, :math:`s_{k,<i}\mathrel{+}=L_{k,i,<i}\,y_{ki}`.
A scalar and a :math:`D`-vector carry per component: :math:`O(KD^2)` per sample, the cost of
:math:`\log p` itself.

**Parameter cotangents (FC5).**  :math:`\bar\theta = -\nabla_\theta\sum_dv_dT_d` at fixed
:math:`x,v`:

.. math::

    \bar\mu_k = y_k,\qquad
    \bar L_k = \operatorname{tril}(y_k\varepsilon_k^\top) + \operatorname{diag}(E_{k\cdot}/L_{k,\cdot\cdot}),\qquad
    \bar\ell_k = -\sum_d u_d\tilde a_{kd},

and :math:`\sum_k\bar\mu_k = g` (moving every component moves the sample).  For diagonal
:math:`L` this is exactly the diagonal implicit gradient of :mod:`shared_math.estimators`.

**Forward sweep (FC6).**  :math:`J\dot x = -\dot T`: with :math:`\eta_k = L_k^{-1}\dot x`
(forward substitution, carried), :math:`m_{kd}=\sum_{j<d}L_{k,dj}\eta_{kj}` and
:math:`G_{kd}=\sum_{j<d}\varepsilon_{kj}\eta_{kj}`,
:math:`\dot x_d = -\dot T_d/f_d + \sum_k(r_{kd}m_{kd} + \tilde a_{kd}G_{kd})`.

**Rao-Blackwell and hybrid (FC7).**  The chosen-component path
:math:`x=\mu_k+L_k\varepsilon` has velocities :math:`e_i` for :math:`\mu_{k,i}` and
:math:`\varepsilon_je_i` for :math:`L_{k,ij}`; averaged over :math:`k` given :math:`x` they
become :math:`r_k(x)e_i` and :math:`r_k(x)\varepsilon_{kj}(x)e_i`, which solve the continuity
equation :math:`\nabla\cdot(p\,v) = -\partial p/\partial\theta`.  ``logits`` always get the
implicit gradient (Graves 2016, Eq. 22, through the sweep above).

**Layout and cost.**  Internally per-sample arrays are event-major ``(D, K, P, Q)``: the
event, components, the flattened batch dimensions in which some parameter varies (``P``)
and the flattened remaining (sample) dimensions (``Q``), so that one dimension's slice is
contiguous (as in the diagonal sweeps of :mod:`shared_math._sweeps`, whose weight and tail
terms are reused), the whitening
is one batched triangular solve per component with ``Q`` right-hand sides (viewed as
``(K, P, D, Q)``), the cumulative sums over the event are matrix products with a triangle
of ones, and the carries :math:`s_k` of the sweeps are updated a block of dimensions at a
time by matrix products (:func:`sweep_block_size`).  JAX runs each block as one
``lax.scan`` with a shifting carry, and gets the forward sweep as a
``jax.lax.custom_linear_solve`` whose transpose is the reverse sweep.  Nothing of size :math:`D\times D` per
sample is formed; time is :math:`O(NKD^2)`, memory :math:`O(NKD)`.

Reference: A. Graves, "Stochastic Backpropagation through Mixture Density Distributions",
arXiv:1607.05690 (2016): Eq. 6 (implicit gradient), Eq. 22 (weights); full covariances are
mentioned there as possible but not worked out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import array_api_compat
from array_api_compat import is_jax_namespace, is_numpy_namespace, is_torch_namespace

from ._backend import (
    LOG_SQRT_2PI,
    contiguous,
    flushing_subnormals,
    fuses_elementwise,
    get_namespace,
    leading_cumsum,
    matmul,
    multiply_add,
    promote,
    sequential_scan,
    special,
)
from ._sweeps import block_weight_terms, component_softmax, event_blocks, join_blocks, sum_to_shape
from ._typing import Array, Namespace, Shape
from .families import NORMAL
from .mixture import log_softmax, logsumexp

__all__ = [
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


# ------------------------------------------------------------------------------------------
# Backend pieces the array API does not have.
# ------------------------------------------------------------------------------------------


def _solve_lower_triangular(matrices, right_hand_sides, xp):
    r""":math:`X = A^{-1}B` for lower-triangular ``matrices`` :math:`A` ``(..., D, D)`` and
    ``right_hand_sides`` :math:`B` ``(..., D, M)`` with equal batch dimensions (the upper
    triangle of :math:`A` is not read).  Native triangular solves (``torch.linalg``,
    ``jax.scipy.linalg``, ``scipy.linalg``); other namespaces go through SciPy on the host."""
    if is_torch_namespace(xp):
        import torch

        # As X^T = B^T A^{-T}: LAPACK then reads B^T as a column-major (M, D) matrix with no
        # copy, 2-3x faster than the left-side solve on (D, M) at M = 4096, D = 16.
        return torch.linalg.solve_triangular(matrices.mT, right_hand_sides.mT, upper=True, left=False).mT
    if is_jax_namespace(xp):
        import jax

        # As X^T = B^T A^{-T}, like torch: the step of a NumPyro full-covariance draw at
        # N = 1024, K = 8, D = 64 took 15.7 against 17.3 ms with the left-side solve, 10.8
        # against 12.2 ms at N = 4096, K = 8, D = 16 (same results; an explicit inverse
        # times B was as fast but 4x less accurate in float32 on factors of condition 1e4).
        solved = jax.lax.linalg.triangular_solve(
            matrices, xp.matrix_transpose(right_hand_sides), left_side=False, lower=True, transpose_a=True
        )
        return xp.matrix_transpose(solved)
    import numpy as np
    import scipy.linalg

    if is_numpy_namespace(xp):
        return scipy.linalg.solve_triangular(matrices, right_hand_sides, lower=True)
    host = scipy.linalg.solve_triangular(
        np.asarray(np.from_dlpack(matrices)), np.asarray(np.from_dlpack(right_hand_sides)), lower=True
    )
    return xp.asarray(host, device=array_api_compat.device(right_hand_sides))


def _triangle_of_ones(size, dtype, xp, device, strict):
    """``(size, size)`` matrix with ones on and below (``strict=False``) or strictly below the diagonal."""
    ones = xp.ones((size, size), dtype=dtype, device=device)
    return xp.tril(ones, k=-1 if strict else 0)


def _diagonal(matrices, xp):
    """``(..., D)`` diagonals of ``(..., D, D)`` matrices."""
    size = matrices.shape[-1]
    eye = xp.eye(size, dtype=matrices.dtype, device=array_api_compat.device(matrices))
    return xp.sum(matrices * eye, axis=-1)


# ------------------------------------------------------------------------------------------
# Shapes and validation.
# ------------------------------------------------------------------------------------------


def full_covariance_shapes(
    locs_shape: Shape, scale_tril_shape: Shape, logits_shape: Shape
) -> tuple[tuple[int, ...], int, int]:
    """``(batch_shape, K, D)`` of a full-covariance mixture, or a ``ValueError`` naming the parameter.

    ``locs`` ``(..., K, D)``, ``scale_tril`` ``(..., K, D, D)``, ``logits`` ``(..., K)``; the
    leading dimensions must broadcast.  ``scale_tril`` may have 1 for ``K`` (shared factor).
    """
    from .validation import broadcast_shapes

    locs_shape, scale_tril_shape, logits_shape = tuple(locs_shape), tuple(scale_tril_shape), tuple(logits_shape)
    if len(locs_shape) < 2:
        raise ValueError(f"locs must have shape (..., K, D); got {locs_shape}")
    if len(logits_shape) < 1:
        raise ValueError(f"logits must have shape (..., K); got {logits_shape}")
    num_components, event_size = locs_shape[-2:]
    if event_size < 1 or num_components < 1:
        raise ValueError(f"locs must have at least one component and one event dimension; got shape {locs_shape}")
    if len(scale_tril_shape) < 3:
        raise ValueError(f"scale_tril must have shape (..., K, D, D); got {scale_tril_shape}")
    if scale_tril_shape[-1] != event_size or scale_tril_shape[-2] != event_size:
        raise ValueError(
            f"scale_tril must end in two axes of size D={event_size} (square lower-triangular factors); "
            f"got shape {scale_tril_shape}"
        )
    if scale_tril_shape[-3] not in (1, num_components):
        raise ValueError(f"scale_tril has {scale_tril_shape[-3]} components but locs has K={num_components}")
    if logits_shape[-1] != num_components:
        raise ValueError(f"logits has {logits_shape[-1]} components but locs has K={num_components}")
    batch_shape = broadcast_shapes(
        ("locs", locs_shape[:-2]), ("scale_tril", scale_tril_shape[:-3]), ("logits", logits_shape[:-1])
    )
    return batch_shape, num_components, event_size


def check_full_covariance_values(locs: Array, scale_tril: Array, logits: Array, *, xp: Namespace | None = None) -> None:
    """``ValueError`` naming the parameter if ``locs``/``logits`` are not finite, or if
    ``scale_tril`` holds NaN or infinity, has a diagonal entry that is not positive, or has
    a nonzero entry above the diagonal (it is a Cholesky factor, not a covariance matrix;
    nothing is symmetrized or repaired).  Needs concrete values (outside ``jax.jit``)."""
    xp = get_namespace(locs, scale_tril, logits) if xp is None else xp
    fine = (
        xp.all(xp.isfinite(locs))
        & xp.all(xp.isfinite(logits))
        & xp.all(xp.isfinite(scale_tril))
        & xp.all(_diagonal(scale_tril, xp) > 0)
        & xp.all(xp.triu(scale_tril, k=1) == 0)
    )
    if bool(fine):  # one read of a device value when all is well; the messages below otherwise
        return
    if bool(xp.any(~xp.isfinite(locs))):
        raise ValueError("locs must be finite (found NaN or infinity)")
    if bool(xp.any(~xp.isfinite(logits))):
        raise ValueError("logits must be finite (found NaN or infinity)")
    if bool(xp.any(xp.isnan(scale_tril))):
        raise ValueError("scale_tril must not contain NaN")
    if bool(xp.any(~xp.isfinite(scale_tril))):
        raise ValueError("scale_tril must be finite (found infinity)")
    if bool(xp.any(~(_diagonal(scale_tril, xp) > 0))):
        raise ValueError("scale_tril must have a positive diagonal (found a diagonal entry <= 0)")
    if bool(xp.any(xp.triu(scale_tril, k=1) != 0)):
        raise ValueError(
            "scale_tril must be lower triangular (found nonzero entries above the diagonal; "
            "pass a Cholesky factor, e.g. numpy.linalg.cholesky(covariance))"
        )


# ------------------------------------------------------------------------------------------
# Layout.
# ------------------------------------------------------------------------------------------


class _Layout:
    """Moves arrays between the public layouts and the internal event-major ``(D, K, P, Q)``.

    ``batch_shape`` is the broadcast of every leading (sample and batch) dimension, padded;
    ``P`` collects the dimensions in which some parameter has size > 1 and ``Q`` the others,
    each flattened.  Per-sample arrays are ``(D, K, P, Q)`` (points ``(D, 1, P, Q)``): one
    dimension's slice is contiguous, as in the diagonal sweeps (:mod:`shared_math._sweeps`).  ``locs`` become
    ``(D, K, P, 1)``, ``logits`` ``(1, K, P, 1)`` and ``scale_tril`` stays a stack of matrices
    ``(K, P, D, D)``; :func:`_matrices` views a per-sample array as ``(K, P, D, Q)`` for matrix
    products and triangular solves.
    """

    def __init__(self, sample_shape, parameter_shapes, num_components, event_size, xp):
        """``sample_shape``: leading dimensions of the points; ``parameter_shapes``: leading
        (batch) dimensions of the parameters."""
        self.xp = xp
        self.num_components, self.event_size = num_components, event_size
        shapes = [tuple(sample_shape)] + [tuple(s) for s in parameter_shapes]
        ndim = max(len(s) for s in shapes)
        padded = [(1,) * (ndim - len(s)) + s for s in shapes]
        self.batch_shape = tuple(max(sizes) for sizes in zip(*padded)) if ndim else ()
        self.parameter_batch = tuple(max(sizes) for sizes in zip(*padded[1:])) if ndim else ()
        self.p_axes = tuple(i for i in range(ndim) if self.parameter_batch[i] != 1)
        self.q_axes = tuple(i for i in range(ndim) if self.parameter_batch[i] == 1)
        self.p_shape = tuple(self.batch_shape[i] for i in self.p_axes)
        self.q_shape = tuple(self.batch_shape[i] for i in self.q_axes)
        self.p_size, self.q_size = math.prod(self.p_shape), math.prod(self.q_shape)

    # per-sample arrays ------------------------------------------------------------------

    def _to_internal(self, array, core_shape):
        """``batch + (A, C)`` (broadcast) to ``(C, A, P, Q)``, C-contiguous."""
        xp = self.xp
        ndim = len(self.batch_shape)
        array = xp.reshape(array, (1,) * (ndim + 2 - array.ndim) + tuple(array.shape))
        array = xp.broadcast_to(array, self.batch_shape + tuple(core_shape))
        moved = xp.permute_dims(array, (ndim + 1, ndim) + self.p_axes + self.q_axes)
        internal = xp.reshape(moved, (core_shape[1], core_shape[0], self.p_size, self.q_size))
        return contiguous(internal, xp)

    def _from_internal(self, array):
        """``(C, A, P, Q)`` to ``batch + (A, C)``; inverse of :meth:`_to_internal`."""
        xp = self.xp
        size_c, size_a = array.shape[0], array.shape[1]
        unflat = xp.reshape(array, (size_c, size_a) + self.p_shape + self.q_shape)
        position = {axis: 2 + index for index, axis in enumerate(self.p_axes)}
        position.update({axis: 2 + len(self.p_axes) + index for index, axis in enumerate(self.q_axes)})
        order = tuple(position[i] for i in range(len(self.batch_shape))) + (1, 0)
        return xp.permute_dims(unflat, order)

    def point(self, array):
        """``(..., D)`` to ``(D, 1, P, Q)``."""
        return self._to_internal(array[..., None, :], (1, self.event_size))

    def point_back(self, array):
        """``(D, 1, P, Q)`` to ``batch + (D,)``."""
        return self._from_internal(array)[..., 0, :]

    def scalar_back(self, array):
        """``(1, 1, P, Q)`` to ``batch``."""
        return self._from_internal(array)[..., 0, 0]

    def per_sample_components(self, array):
        """``(..., K)`` (e.g. a one-hot component) to ``(1, K, P, Q)``."""
        return self._to_internal(array[..., None], (self.num_components, 1))

    def per_sample_component_vectors(self, array):
        """``(..., K, D)`` to ``(D, K, P, Q)``."""
        return self._to_internal(array, (self.num_components, self.event_size))

    def per_sample_component_vectors_back(self, array):
        """``(D, K, P, Q)`` to ``batch + (K, D)``."""
        return self._from_internal(array)

    # parameters ---------------------------------------------------------------------------

    def _parameter_flat(self, array, core_ndim):
        """``(..., K, *core)`` to ``(P, K, *core)`` (broadcast over the parameter batch)."""
        xp = self.xp
        ndim = len(self.parameter_batch)
        core = tuple(array.shape[array.ndim - core_ndim :])
        array = xp.reshape(array, (1,) * (ndim + core_ndim - array.ndim) + tuple(array.shape))
        return xp.reshape(xp.broadcast_to(array, self.parameter_batch + core), (self.p_size,) + core)

    def locs(self, locs):
        """``(..., K, D)`` to ``(D, K, P, 1)``."""
        return self.xp.permute_dims(self._parameter_flat(locs, 2), (2, 1, 0))[..., None]

    def scale_tril(self, scale_tril):
        """``(..., K, D, D)`` to ``(K, P, D, D)`` (components broadcast to ``K``)."""
        xp = self.xp
        shape = tuple(scale_tril.shape)
        if shape[-3] != self.num_components:
            scale_tril = xp.broadcast_to(scale_tril, shape[:-3] + (self.num_components,) + shape[-2:])
        return xp.permute_dims(self._parameter_flat(scale_tril, 3), (1, 0, 2, 3))

    def logits(self, logits):
        """``(..., K)`` to ``(1, K, P, 1)``."""
        return self.xp.permute_dims(self._parameter_flat(logits, 1), (1, 0))[None, :, :, None]

    def _parameter_back(self, flat, shape):
        """``(P, K, *core)`` summed to the parameter shape ``shape`` ``(..., K, *core)``."""
        xp = self.xp
        full = xp.reshape(flat, self.parameter_batch + tuple(flat.shape[1:]))
        return xp.reshape(sum_to_shape(full, _padded(shape, full.ndim), xp), tuple(shape))

    def locs_back(self, array, shape):
        """``(D, K, P)`` to ``shape``."""
        return self._parameter_back(self.xp.permute_dims(array, (2, 1, 0)), shape)

    def scale_tril_back(self, array, shape):
        """``(K, P, D, D)`` to ``shape``."""
        return self._parameter_back(self.xp.permute_dims(array, (1, 0, 2, 3)), shape)

    def logits_back(self, array, shape):
        """``(K, P)`` to ``shape``."""
        return self._parameter_back(self.xp.permute_dims(array, (1, 0)), shape)


def _padded(shape, ndim):
    shape = tuple(shape)
    return (1,) * (ndim - len(shape)) + shape


def _layout(x_shape, locs, scale_tril, logits, xp):
    num_components, event_size = locs.shape[-2:]
    return _Layout(
        tuple(x_shape)[:-1],
        (locs.shape[:-2], scale_tril.shape[:-3], logits.shape[:-1]),
        num_components,
        event_size,
        xp,
    )


def _matrices(array, xp):
    """Per-sample ``(D, A, P, Q)`` viewed as stacked matrices ``(A, P, D, Q)``."""
    return xp.permute_dims(array, (1, 2, 0, 3))


def _event_major(array, xp):
    """Stacked matrices ``(A, P, D, Q)`` back to ``(D, A, P, Q)`` (C-contiguous)."""
    return contiguous(xp.permute_dims(array, (2, 0, 1, 3)), xp)


def _diagonal_event_major(tril, xp):
    """``(K, P, D, D)`` to its diagonal ``(D, K, P, 1)``."""
    return xp.permute_dims(_diagonal(tril, xp), (2, 0, 1))[..., None]


# ------------------------------------------------------------------------------------------
# Values.
# ------------------------------------------------------------------------------------------


class _Whitened(NamedTuple):
    r"""``eps`` :math:`\varepsilon_{kd}` ``(D, K, P, Q)``; ``log_normal`` :math:`\log N_{kd}`
    ``(D, K, P, Q)``; ``log_pi`` ``(1, K, P, 1)``; ``tril`` :math:`L` ``(K, P, D, D)`` (lower
    triangle only); ``diagonal`` :math:`L_{k,dd}` ``(D, K, P, 1)``."""

    eps: object
    log_normal: object
    log_pi: object
    tril: object
    diagonal: object


def _whitened_residuals(x, locs, scale_tril, layout, xp):
    r"""``(eps, tril, diagonal)``: :math:`\varepsilon_k = L_k^{-1}(x-\mu_k)` ``(D, K, P, Q)`` (Eq. FC1, one
    batched triangular solve), :math:`L` ``(K, P, D, D)`` and its diagonal ``(D, K, P, 1)``."""
    tril = xp.tril(layout.scale_tril(scale_tril))
    residuals = layout.point(x) - layout.locs(locs)  # (D, K, P, Q)
    eps = _event_major(_solve_lower_triangular(tril, _matrices(residuals, xp), xp), xp)
    return eps, tril, _diagonal_event_major(tril, xp)


def _whiten(x, locs, scale_tril, logits, layout, xp):
    eps, tril, diagonal = _whitened_residuals(x, locs, scale_tril, layout, xp)
    log_normal = (-0.5) * (eps * eps) - (xp.log(diagonal) + LOG_SQRT_2PI)
    log_pi = layout.logits(log_softmax(logits, xp))
    return _Whitened(eps, log_normal, log_pi, tril, diagonal)


def _cumulative_over_event(values, xp, exclusive=False):
    r"""Sum over :math:`j\le d` (or :math:`j<d`) along axis 0 of ``(D, ...)``, as one matrix
    product with a triangle of ones (a cumulative sum along the leading axis is several
    times slower in torch; this stays :math:`O(D^2)` per column like the rest)."""
    shape = tuple(values.shape)
    ones = _triangle_of_ones(shape[0], values.dtype, xp, array_api_compat.device(values), exclusive)
    return xp.reshape(matmul(ones, xp.reshape(values, (shape[0], -1)), xp), shape)


def full_covariance_log_prob(
    x: Array, locs: Array, scale_tril: Array, logits: Array, *, xp: Namespace | None = None
) -> Array:
    r""":math:`\log\sum_k\pi_k N(x;\mu_k, L_kL_k^\top)`, shape ``(...)`` (Eq. FC1)."""
    xp, (x, locs, scale_tril, logits) = promote(x, locs, scale_tril, logits, xp=xp)
    layout = _layout(x.shape, locs, scale_tril, logits, xp)
    white = _whiten(x, locs, scale_tril, logits, layout, xp)
    joint = white.log_pi + xp.sum(white.log_normal, axis=0, keepdims=True)  # (1, K, P, Q)
    return layout.scalar_back(logsumexp(joint, 1, xp, keepdims=True))


def _log_weights(white, xp):
    r""":math:`\log w_{kd}` ``(D, K, P, Q)`` (Eq. FC2)."""
    before = white.log_pi + _cumulative_over_event(white.log_normal, xp, exclusive=True)
    return before - logsumexp(before, 1, xp, keepdims=True)


def full_covariance_conditional_log_weights(
    x: Array, locs: Array, scale_tril: Array, logits: Array, *, xp: Namespace | None = None
) -> Array:
    r"""Log weights of the conditionals :math:`p(x_d\mid x_{<d})`, shape ``(..., K, D)`` (Eq. FC2).

    .. math::

        \log w_{kd} = \log\pi_k + \sum_{j<d}\log N_{kj} - \operatorname{logsumexp}_k(\cdot),
        \qquad \log N_{kj} = -\tfrac12\varepsilon_{kj}^2 - \log L_{k,jj} - \log\sqrt{2\pi}.
    """
    xp, (x, locs, scale_tril, logits) = promote(x, locs, scale_tril, logits, xp=xp)
    layout = _layout(x.shape, locs, scale_tril, logits, xp)
    white = _whiten(x, locs, scale_tril, logits, layout, xp)
    return layout.per_sample_component_vectors_back(_log_weights(white, xp))


def full_covariance_distributional_transform(
    x: Array, locs: Array, scale_tril: Array, logits: Array, *, xp: Namespace | None = None
) -> Array:
    r""":math:`T_d(x) = \sum_k w_{kd}\Phi(\varepsilon_{kd})`, shape ``(..., D)`` (Eq. FC2); maps
    the mixture onto :math:`\mathrm{Uniform}(0,1)^D`."""
    xp, (x, locs, scale_tril, logits) = promote(x, locs, scale_tril, logits, xp=xp)
    layout = _layout(x.shape, locs, scale_tril, logits, xp)
    white = _whiten(x, locs, scale_tril, logits, layout, xp)
    log_terms = _log_weights(white, xp) + special("log_ndtr", xp)(white.eps)
    return layout.point_back(xp.exp(logsumexp(log_terms, 1, xp, keepdims=True)))


def full_covariance_mean(locs: Array, scale_tril: Array, logits: Array, *, xp: Namespace | None = None) -> Array:
    r""":math:`\sum_k\pi_k\mu_k`, shape ``(..., D)``."""
    xp, (locs, scale_tril, logits) = promote(locs, scale_tril, logits, xp=xp)
    pi = xp.exp(log_softmax(logits, xp))[..., None]
    return xp.sum(pi * locs, axis=-2)


def full_covariance_covariance(locs: Array, scale_tril: Array, logits: Array, *, xp: Namespace | None = None) -> Array:
    r""":math:`\sum_k\pi_k\big(L_kL_k^\top + (\mu_k-\bar\mu)(\mu_k-\bar\mu)^\top\big)`, shape ``(..., D, D)``."""
    xp, (locs, scale_tril, logits) = promote(locs, scale_tril, logits, xp=xp)
    pi = xp.exp(log_softmax(logits, xp))[..., None]
    tril = xp.tril(scale_tril)
    centred = locs - xp.sum(pi * locs, axis=-2, keepdims=True)
    within = matmul(tril, xp.matrix_transpose(tril), xp)
    between = centred[..., :, None] * centred[..., None, :]
    return xp.sum(pi[..., None] * (within + between), axis=-3)


def full_covariance_variance(locs: Array, scale_tril: Array, logits: Array, *, xp: Namespace | None = None) -> Array:
    r"""Diagonal of :func:`full_covariance_covariance`:
    :math:`\sum_k\pi_k\big(\sum_jL_{k,ij}^2 + (\mu_{ki}-\bar\mu_i)^2\big)`, shape ``(..., D)``."""
    xp, (locs, scale_tril, logits) = promote(locs, scale_tril, logits, xp=xp)
    pi = xp.exp(log_softmax(logits, xp))[..., None]
    centred = locs - xp.sum(pi * locs, axis=-2, keepdims=True)
    return xp.sum(pi * (full_covariance_component_scales(scale_tril, xp=xp) ** 2 + centred * centred), axis=-2)


def full_covariance_component_scales(scale_tril: Array, *, xp: Namespace | None = None) -> Array:
    r"""Each component's marginal standard deviations
    :math:`\sqrt{\Sigma_{k,ii}} = \big(\sum_{j\le i}L_{k,ij}^2\big)^{1/2}`, shape ``(..., K, D)``.

    Coordinate :math:`i` of a full-covariance mixture has the 1-D marginal
    :math:`\sum_k\pi_k N(\mu_{ki}, \Sigma_{k,ii})`, the marginal of a diagonal mixture with
    these scales: what ``marginal_quantiles`` and the autoguides' ``median``/``quantiles`` use
    (:func:`shared_math.marginal_quantiles.marginal_quantile`).
    """
    xp, (scale_tril,) = promote(scale_tril, xp=xp)
    tril = xp.tril(scale_tril)
    return xp.sqrt(xp.sum(tril * tril, axis=-1))


def full_covariance_component_samples(
    locs: Array, scale_tril: Array, noise: Array, *, xp: Namespace | None = None
) -> Array:
    r"""One draw per component, :math:`x_k = \mu_k + L_k\varepsilon_k`, shape ``(..., K, D)``.

    ``noise`` :math:`\varepsilon` has shape ``(..., K, D)`` (one standard normal vector per
    component).  Plain array code, so autodiff gives the reparameterization gradient.
    """
    xp, (locs, scale_tril, noise) = promote(locs, scale_tril, noise, xp=xp)
    num_components, event_size = locs.shape[-2:]
    layout = _Layout(tuple(noise.shape)[:-2], (locs.shape[:-2], scale_tril.shape[:-3]), num_components, event_size, xp)
    tril = xp.tril(layout.scale_tril(scale_tril))
    moved = matmul(tril, _matrices(layout.per_sample_component_vectors(noise), xp), xp)
    return layout.per_sample_component_vectors_back(layout.locs(locs) + xp.permute_dims(moved, (2, 0, 1, 3)))


def full_covariance_sample_from_noise(
    locs: Array, scale_tril: Array, component_one_hot: Array, noise: Array, *, xp: Namespace | None = None
) -> Array:
    r"""Ancestral draw :math:`x = \mu_k + L_k\varepsilon` of the chosen components, shape ``(..., D)``.

    ``component_one_hot`` ``(..., K)``, ``noise`` :math:`\varepsilon` ``(..., D)``.  Written as a
    sum over the one-hot axis, so autodiff gives the chosen-component gradient (``"hybrid"``).
    """
    xp, (locs, scale_tril, component_one_hot, noise) = promote(locs, scale_tril, component_one_hot, noise, xp=xp)
    num_components, event_size = locs.shape[-2:]
    full_shape = (component_one_hot.shape[-1], noise.shape[-1])
    if tuple(locs.shape) == full_shape and tuple(scale_tril.shape) == full_shape + (noise.shape[-1],):
        # Unbatched parameters: every component's L_k eps as one plain matrix product
        # eps @ W, W[j, (k, i)] = L_k,ij, in the public layout (..., K, D), then the chosen
        # one: in torch 0.36 against 1.69 ms through the internal layout at N = 4096, K = 8,
        # D = 16; in JAX 0.6 against 3.6 ms at N = 1024, K = 8, D = 64.
        weights = xp.reshape(xp.permute_dims(xp.tril(scale_tril), (2, 0, 1)), (event_size, num_components * event_size))
        moved = xp.reshape(matmul(noise, weights, xp), tuple(noise.shape[:-1]) + (num_components, event_size))
        return xp.sum(xp.expand_dims(component_one_hot, axis=-1) * (locs + moved), axis=-2)
    sample_shape = _broadcast(tuple(component_one_hot.shape)[:-1], tuple(noise.shape)[:-1])
    layout = _Layout(sample_shape, (locs.shape[:-2], scale_tril.shape[:-3]), num_components, event_size, xp)
    tril = xp.tril(layout.scale_tril(scale_tril))
    moved = xp.permute_dims(matmul(tril, _matrices(layout.point(noise), xp), xp), (2, 0, 1, 3))  # (D, K, P, Q)
    chosen = layout.per_sample_components(component_one_hot)
    return layout.point_back(xp.sum(chosen * (layout.locs(locs) + moved), axis=1, keepdims=True))


def _broadcast(*shapes):
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    return tuple(max(sizes) for sizes in zip(*padded)) if ndim else ()


# ------------------------------------------------------------------------------------------
# Sweep terms.
# ------------------------------------------------------------------------------------------


class FullCovarianceTerms(NamedTuple):
    r"""Per-sample quantities of the sweeps, ``(D, K, P, Q)`` unless stated.

    ``eps``: :math:`\varepsilon_{kd}`; ``tril``: :math:`L` ``(K, P, D, D)``; ``inv_diagonal``:
    :math:`1/L_{k,dd}` ``(D, K, P, 1)``; ``responsibilities``: :math:`r_{kd}` (after dimension
    :math:`d`; the last is :math:`r_k(x)`); ``a_scaled``: :math:`\tilde a_{kd}=a_{kd}/f_d`;
    ``largest_share``: :math:`1/m` on the :math:`m` components of largest :math:`r_{kd}`, else 0.
    """

    eps: object
    tril: object
    inv_diagonal: object
    responsibilities: object
    a_scaled: object
    largest_share: object


def _sweep_terms(x, locs, scale_tril, logits, layout, xp):
    r"""The :class:`FullCovarianceTerms` at ``x`` (arrays already promoted).

    The weight recursion is that of :func:`shared_math._sweeps.sweep_terms` with
    :math:`\varepsilon_{kd}` for :math:`z_{kd}` and :math:`L_{k,dd}` for :math:`\sigma_{kd}`,
    in the same cache-sized event blocks (:func:`shared_math._sweeps.event_blocks`): joint
    log weights :math:`S_{kd}=\log\pi_k+\sum_{j\le d}\log N_{kj}`, their log-sum-exp
    :math:`\Lambda_d = \log p(x_{\le d})`, responsibilities :math:`r_{kd}=e^{S_{kd}-\Lambda_d}`,
    weights :math:`w_{kd}=r_{k,d-1}` (:math:`w_{k0}=\pi_k`), :math:`\log f_d = \Lambda_d-\Lambda_{d-1}`;
    the tails and :math:`\tilde a` (each component in its own smaller tail, the component of
    the largest weight corrected through :math:`\sum_k a_{kd}=0`) come from the same
    :func:`shared_math._sweeps.block_weight_terms`.
    """
    eps, tril, diagonal = _whitened_residuals(x, locs, scale_tril, layout, xp)
    offsets = -(xp.log(diagonal) + LOG_SQRT_2PI)  # log N_kd = offsets_kd - eps_kd^2 / 2
    log_pi = layout.logits(log_softmax(logits, xp))  # (1, K, P, 1)
    joint_before = log_pi  # S_{k,d-1}: row 0 of each block's joint log weights
    responsibility_blocks, a_blocks, share_blocks = [], [], []
    for start, stop in event_blocks(tuple(eps.shape), xp):
        eps_block = eps[start:stop, ...]
        log_normal = multiply_add(offsets[start:stop, ...], eps_block, eps_block, xp, scale=-0.5)
        # S_{k,d} for d = start - 1 .. stop - 1, one row more than the block (block_weight_terms)
        if fuses_elementwise(xp):  # one block: a product with a triangle of ones (XLA's dot is fast)
            first = xp.broadcast_to(joint_before, (1,) + tuple(log_normal.shape[1:]))
            joint = xp.concat([first, joint_before + _cumulative_over_event(log_normal, xp)], axis=0)
        else:
            joint = leading_cumsum(log_normal, xp, initial=joint_before, keep_initial=True)
        del log_normal
        joint_before = joint[-1:, ...]
        responsibilities, largest, a_scaled = block_weight_terms(
            joint, lambda eps_block=eps_block: NORMAL.smaller_tail(eps_block, (), xp), xp
        )
        del joint
        a_blocks.append(a_scaled)
        largest_now = largest[1:, ...]
        share_blocks.append(largest_now / xp.clip(xp.sum(largest_now, axis=1, keepdims=True), min=1.0))
        responsibility_blocks.append(responsibilities[1:, ...])
        del responsibilities, largest, largest_now, a_scaled
    return FullCovarianceTerms(
        eps=eps,
        tril=tril,
        inv_diagonal=1.0 / diagonal,
        responsibilities=join_blocks(responsibility_blocks, xp),
        a_scaled=join_blocks(a_blocks, xp),
        largest_share=join_blocks(share_blocks, xp),
    )


def _final_responsibility_terms(x, locs, scale_tril, logits, layout, xp):
    r"""The part of :func:`_sweep_terms` that needs no sweep: :class:`FullCovarianceTerms` with
    ``eps``, ``tril``, ``inv_diagonal`` and the final responsibilities :math:`r_k(x)` as
    ``(1, K, P, Q)`` (``a_scaled`` and ``largest_share`` are ``None``).

    :math:`r_k(x) = \operatorname{softmax}_k\big(\log\pi_k - \tfrac12\sum_d\varepsilon_{kd}^2
    - \sum_d\log L_{k,dd}\big)` (the common :math:`D\log\sqrt{2\pi}` cancels): all that
    ``"rao_blackwell"`` reads when no ``logits`` gradient is asked for.
    """
    eps, tril, diagonal = _whitened_residuals(x, locs, scale_tril, layout, xp)
    log_weights = layout.logits(log_softmax(logits, xp)) - xp.sum(xp.log(diagonal), axis=0, keepdims=True)
    joint = log_weights - 0.5 * xp.sum(eps * eps, axis=0, keepdims=True)  # (1, K, P, Q)
    return FullCovarianceTerms(
        eps=eps,
        tril=tril,
        inv_diagonal=1.0 / diagonal,
        responsibilities=component_softmax(joint, xp),
        a_scaled=None,
        largest_share=None,
    )


# ------------------------------------------------------------------------------------------
# The sweeps.
# ------------------------------------------------------------------------------------------


def sweep_block_size(event_size):
    r"""Dimensions per block of the eager sweeps: :math:`\lceil\sqrt{D/2}\,\rceil`.

    Inside a block the carries :math:`s_k` (reverse) and :math:`m_k` (forward) are updated
    one dimension at a time on the block's rows only (about :math:`B` elementwise passes
    per step); across blocks one matrix product per block brings in the rest, and the
    already-swept part is concatenated (about :math:`D/B` passes per block).  The total,
    :math:`\approx D(c + B) + D^2/(2B)` passes over ``K·N`` entries, is smallest near
    :math:`B=\sqrt{D/2}`.
    """
    return max(1, math.ceil(math.sqrt(event_size / 2.0)))


def _reverse_step(g_i, neg_eps_inv_i, responsibilities_i, a_i, share_i, neg_s_i, carry, xp):
    r"""One step of the reverse sweep (Eq. FC4) on ``(1, K, P, Q)`` slices; returns
    ``(u_i, y_i, new_carry)``.

    ``neg_s_i`` is :math:`-s_{ki}/L_{k,ii}` and ``neg_eps_inv_i`` :math:`-\varepsilon_{ki}/L_{k,ii}`
    (negated, so that :math:`-h` and :math:`y = ur - h` take one fused operation each in
    torch, :func:`multiply_add`).  :math:`y` of the most responsible component is
    replaced through :math:`\sum_ky_{ki}=g_i` (ties share the correction), since its two
    :math:`h` terms (one inside :math:`u_i`) cancel when :math:`r_{ki}\to1`.
    """
    neg_h = multiply_add(neg_s_i, neg_eps_inv_i, carry, xp)
    u = g_i - xp.sum(neg_h, axis=1, keepdims=True)
    y = multiply_add(neg_h, u, responsibilities_i, xp)
    y = multiply_add(y, share_i, g_i - xp.sum(y, axis=1, keepdims=True), xp)
    return u, y, multiply_add(carry, u, a_i, xp)


def _scaled_rows(tril, inv_diagonal, xp):
    r""":math:`\tilde L_{k,ij} = L_{k,ij}/L_{k,jj}` strictly below the diagonal (0 elsewhere),
    as ``(D_i, D_j, K, P, 1)``: row :math:`i` is what step :math:`i` adds to :math:`s_{k,<i}`."""
    scaled = xp.tril(tril, k=-1) * xp.permute_dims(inv_diagonal, (1, 2, 3, 0))  # (K, P, D, D)
    return xp.permute_dims(scaled, (2, 3, 0, 1))[..., None]


class _ReverseSweep(NamedTuple):
    r"""Results of :func:`_reverse_sweep`, ``None`` where not collected: :math:`u = f\,v`
    ``(D, 1, P, Q)``, :math:`y` ``(D, K, P, Q)``, :math:`E_{ki}` before step :math:`i`
    ``(D, K, P, Q)``, and the final :math:`E_k` ``(1, K, P, Q)``."""

    u: object
    y: object
    carry_before: object
    final_carry: object


def _reverse_sweep(terms, cotangent_t, xp, collect=True, collect_u=False):
    r"""Solve :math:`J^\top v=g` (Eq. FC4); a :class:`_ReverseSweep`.  ``collect=False``: only
    the final carry (what the ``logits`` gradient needs); ``collect_u``: also :math:`u` (the
    transpose of :func:`_forward_sweep`, which JAX's reverse mode uses)."""
    neg_eps_inv = terms.eps * (-terms.inv_diagonal)
    rows = _scaled_rows(terms.tril, terms.inv_diagonal, xp)
    size_d = terms.eps.shape[0]
    cotangent_t = xp.broadcast_to(cotangent_t, (size_d, 1) + tuple(terms.eps.shape[2:]))
    scan = fuses_elementwise(xp)
    carry = xp.zeros_like(terms.eps[:1, ...])
    block = jax_sweep_block_size(size_d) if scan else sweep_block_size(size_d)
    later = None  # y of the dimensions already swept, as stacked matrices (K, P, D - stop, Q)
    carry_blocks: list[Any] = []
    u_blocks: list[Any] = []
    for stop in range(size_d, 0, -block):
        start = max(0, stop - block)
        if later is None:
            rest = xp.zeros_like(terms.eps[start:stop, ...])
        else:  # -s_ki / L_ii for i in the block, from every later dimension at once
            block_rows = xp.permute_dims(-rows[stop:, start:stop, ..., 0], (2, 3, 1, 0))  # (K, P, B, D - stop)
            rest = xp.permute_dims(matmul(block_rows, later, xp), (2, 0, 1, 3))
        block_slices = tuple(
            a[start:stop, ...]
            for a in (cotangent_t, neg_eps_inv, terms.responsibilities, terms.a_scaled, terms.largest_share)
        )
        if scan:
            sweep = _reverse_block_scan(block_slices, rows[start:stop, start:stop, ...], rest, carry, xp)
        else:
            sweep = _reverse_block_loop(
                block_slices, rows[start:stop, start:stop, ...], rest, carry, xp, collect_u, collect
            )
        block_u, block_y, block_carry, carry = sweep
        carry_blocks.insert(0, block_carry)
        u_blocks.insert(0, block_u)
        if start == 0 and not (collect or collect_u):
            break
        block_matrices = _matrices(block_y, xp)  # (K, P, B, Q): the layout of the products above
        later = block_matrices if later is None else xp.concat([block_matrices, later], axis=2)
    return _ReverseSweep(
        u=join_blocks(u_blocks, xp) if collect_u else None,
        y=_event_major(later, xp) if collect else None,
        carry_before=join_blocks(carry_blocks, xp) if collect else None,
        final_carry=carry,
    )


def _reverse_block_loop(slices, rows, rest, carry, xp, collect_u, collect_carry=True):
    """One block of the eager reverse sweep: a Python loop whose carry ``rest`` (:math:`-s_k/L_{k,ii}`)
    keeps only the rows not yet reached (it shrinks by one each step).  The carries before each step are
    joined only with ``collect_carry`` (``None`` otherwise: the logits-only sweep of
    ``"rao_blackwell"`` needs the final carry alone)."""
    size = slices[0].shape[0]
    u_steps, y_steps, carry_steps = [None] * size, [None] * size, [None] * size
    for offset in range(size - 1, -1, -1):
        g_i, neg_eps_inv_i, responsibilities_i, a_i, share_i = (a[offset : offset + 1, ...] for a in slices)
        neg_s_i = rest[offset : offset + 1, ...]
        u, y, new_carry = _reverse_step(g_i, neg_eps_inv_i, responsibilities_i, a_i, share_i, neg_s_i, carry, xp)
        u_steps[offset], y_steps[offset], carry_steps[offset] = u, y, carry
        carry = new_carry
        if offset > 0:  # s_k[start:i] += L_k[i, start:i] y_ki (scaled by the target diagonal; rest is -s)
            rest = multiply_add(rest[:offset, ...], rows[offset, :offset, ...], y, xp, scale=-1.0)
    u = xp.concat(u_steps, axis=0) if collect_u else None
    carry_before = xp.concat(carry_steps, axis=0) if collect_carry else None
    return u, xp.concat(y_steps, axis=0), carry_before, carry


def _reverse_block_scan(slices, rows, rest, carry, xp):
    """One block of the reverse sweep as a ``lax.scan`` (JAX) whose carry holds the block's
    rows of :math:`-s_k/L_{k,ii}` from the current dimension down (``rest[j]`` is
    :math:`s_{k,i-j}` at step :math:`i`; :func:`_shifted_rows`): static slices only."""
    shifted = _shifted_rows(rows, xp, -1)  # [i, j] = L~_{k, i, i-1-j}

    def step(state, step_slices):
        carry, rest = state
        g_i, neg_eps_inv_i, responsibilities_i, a_i, share_i, row = step_slices
        u, y, new_carry = _reverse_step(g_i, neg_eps_inv_i, responsibilities_i, a_i, share_i, rest[:1, ...], carry, xp)
        return (new_carry, _shift_down(rest, xp) - row * y), (u, y, carry)

    sequences = tuple(a[:, None, ...] for a in slices) + (shifted,)
    (carry, _), (u, y, carry_before) = sequential_scan(
        step, (carry, xp.flip(rest, axis=0)), sequences, xp, reverse=True
    )
    return u[:, 0, ...], y[:, 0, ...], carry_before[:, 0, ...], carry


def _shifted_rows(rows, xp, offset_sign):
    r"""Rows of a ``(D, D, ...)`` coefficient table re-indexed for a shifting carry (JAX sweeps).

    ``offset_sign = +1`` (forward): ``out[d, j] = rows[d, d + 1 + j]``; ``-1`` (reverse):
    ``out[i, j] = rows[i, i - 1 - j]``; 0 where the index leaves ``[0, D)``.  With the carry
    stored so that the entry the next step reads is always at position 0, every step
    reads and shifts it by static slices (no gather and, once transposed, no scatter).
    """
    size_d = rows.shape[0]
    steps = xp.arange(size_d)[:, None]
    positions = xp.arange(size_d)[None, :]
    source = steps + 1 + positions if offset_sign > 0 else steps - 1 - positions
    valid = (source >= 0) & (source < size_d)
    flat_index = xp.reshape(steps * size_d + xp.clip(source, min=0, max=size_d - 1), (-1,))
    flat = xp.reshape(rows, (size_d * size_d,) + tuple(rows.shape[2:]))
    gathered = xp.reshape(xp.take(flat, flat_index, axis=0), tuple(rows.shape))
    mask = xp.reshape(xp.astype(valid, rows.dtype), (size_d, size_d) + (1,) * (rows.ndim - 2))
    return gathered * mask


def _shift_down(rest, xp):
    """``out[j] = rest[j + 1]``, ``out[D - 1] = 0`` along axis 0."""
    return xp.concat([rest[1:, ...], xp.zeros_like(rest[:1, ...])], axis=0)


def _forward_step(t_d, r_d, a_d, eps_d, inv_d, m_d, carry, xp):
    r"""One step of the forward sweep (Eq. FC6); returns ``(x_dot_d, eta_d, new_carry)``."""
    x_dot = t_d + xp.sum(r_d * m_d + a_d * carry, axis=1, keepdims=True)
    eta = (x_dot - m_d) * inv_d
    return x_dot, eta, carry + eps_d * eta


def _forward_sweep(terms, scaled_transform_tangent, xp):
    r"""Solve :math:`J\dot x = -\dot T` (Eq. FC6) given :math:`t=-\dot T/f` as ``(D, 1, P, Q)``;
    returns :math:`\dot x` ``(D, 1, P, Q)``.  Linear in ``t`` (JAX transposes and
    differentiates it)."""
    size_d = terms.eps.shape[0]
    t = xp.broadcast_to(scaled_transform_tangent, (size_d, 1) + tuple(terms.eps.shape[2:]))
    strict = xp.tril(terms.tril, k=-1)  # (K, P, D, D)
    columns = xp.permute_dims(strict, (3, 2, 0, 1))[..., None]  # [d, i] = L_{k,id}, (D, D, K, P, 1)
    if fuses_elementwise(xp):
        # XLA runs the transpose that JAX derives for the scan of the forward sweep 7-17x
        # slower than the sweep itself; as a linear solve with the reverse sweep for its
        # transpose, reverse mode costs one reverse sweep (derivatives with respect to the
        # terms: implicit differentiation through the vectorized matrix-vector product).
        import jax

        return jax.lax.custom_linear_solve(
            lambda v: _unit_jacobian_matvec(terms, v, xp),
            t,
            solve=lambda _, rhs: _forward_sweep_scan(terms, rhs, columns, xp),
            transpose_solve=lambda _, rhs: _reverse_sweep(terms, rhs, xp, collect=False, collect_u=True).u,
        )
    carry = xp.zeros_like(terms.eps[:1, ...])
    block = sweep_block_size(size_d)
    earlier = None  # eta of the dimensions already swept, (start, K, P, Q)
    x_dot_steps = [None] * size_d
    for start in range(0, size_d, block):
        stop = min(size_d, start + block)
        if earlier is None:
            rest = xp.zeros_like(terms.eps[start:stop, ...])
        else:  # m_kd for d in the block, from every earlier dimension at once
            rest = xp.permute_dims(matmul(strict[:, :, start:stop, :start], _matrices(earlier, xp), xp), (2, 0, 1, 3))
        block_eta = []
        for d in range(start, stop):
            x_dot, eta, carry = _forward_step(
                t[d : d + 1, ...],
                terms.responsibilities[d : d + 1, ...],
                terms.a_scaled[d : d + 1, ...],
                terms.eps[d : d + 1, ...],
                terms.inv_diagonal[d : d + 1, ...],
                rest[:1, ...],
                carry,
                xp,
            )
            x_dot_steps[d] = x_dot
            block_eta.append(eta)
            if d + 1 < stop:  # m_k[d+1:stop] += L_k[d+1:stop, d] eta_kd
                rest = rest[1:, ...] + columns[d, d + 1 : stop, ...] * eta
        block_eta = xp.concat(block_eta, axis=0)
        earlier = block_eta if earlier is None else xp.concat([earlier, block_eta], axis=0)
    return xp.concat(x_dot_steps, axis=0)


def _unit_jacobian_matvec(terms, v, xp):
    r""":math:`\hat J v` for :math:`\hat J = \operatorname{diag}(1/f)\,J` (unit diagonal), vectorized
    (Eq. FC6 read backwards): with :math:`\eta_k = L_k^{-1}v` and :math:`G_{kd}=\sum_{j<d}\varepsilon_{kj}\eta_{kj}`,
    :math:`(\hat Jv)_d = \sum_k r_{kd}L_{k,dd}\,\eta_{kd} - \sum_k\tilde a_{kd}G_{kd}` (since
    :math:`m_{kd} = v_d - L_{k,dd}\eta_{kd}` and :math:`\sum_kr_{kd}=1`).  :func:`_forward_sweep`
    solves :math:`\hat J\dot x = t` and the reverse sweep's :math:`u` solves :math:`\hat J^\top u = g`."""
    shape = (v.shape[0],) + tuple(terms.eps.shape[1:])
    eta = _event_major(_solve_lower_triangular(terms.tril, _matrices(xp.broadcast_to(v, shape), xp), xp), xp)
    before = _cumulative_over_event(terms.eps * eta, xp, exclusive=True)
    direct = terms.responsibilities * (eta / terms.inv_diagonal)
    return xp.sum(direct - terms.a_scaled * before, axis=1, keepdims=True)


def _forward_sweep_scan(terms, t, columns, xp):
    """:func:`_forward_sweep` for JAX: the same blocks, each one ``lax.scan`` whose carry holds
    the block's rows of :math:`m_k` stored from the current dimension on (``rest[j]`` is
    :math:`m_{k,d+j}` at step :math:`d`; :func:`_shifted_rows`), so that every step reads and
    shifts it by static slices.  A carry of all :math:`D` rows would make each step (and,
    worse, each step of the transposed scan that reverse mode runs) a pass over
    :math:`O(KD)` entries per sample."""
    size_d = terms.eps.shape[0]
    strict = xp.tril(terms.tril, k=-1)
    carry = xp.zeros_like(terms.eps[:1, ...])
    block = jax_sweep_block_size(size_d)
    earlier = None
    x_dot_blocks = []
    for start in range(0, size_d, block):
        stop = min(size_d, start + block)
        if earlier is None:
            rest = xp.zeros_like(terms.eps[start:stop, ...])
        else:
            rest = xp.permute_dims(matmul(strict[:, :, start:stop, :start], _matrices(earlier, xp), xp), (2, 0, 1, 3))
        shifted = _shifted_rows(columns[start:stop, start:stop, ...], xp, +1)  # [d, j] = L_{k, d+1+j, d}

        def step(state, slices):
            carry, rest = state
            t_d, r_d, a_d, eps_d, inv_d, column = slices
            x_dot, eta, new_carry = _forward_step(t_d, r_d, a_d, eps_d, inv_d, rest[:1, ...], carry, xp)
            return (new_carry, _shift_down(rest, xp) + column * eta), (x_dot, eta)

        sequences = tuple(
            a[start:stop, None, ...] for a in (t, terms.responsibilities, terms.a_scaled, terms.eps, terms.inv_diagonal)
        ) + (shifted,)
        (carry, _), (x_dot, eta) = sequential_scan(step, (carry, rest), sequences, xp)
        x_dot_blocks.append(x_dot[:, 0, ...])
        eta = eta[:, 0, ...]
        earlier = eta if earlier is None else xp.concat([earlier, eta], axis=0)
    return join_blocks(x_dot_blocks, xp)


def jax_sweep_block_size(event_size):
    """Dimensions per block of the JAX sweeps (one ``lax.scan`` per block)."""
    return min(event_size, JAX_SWEEP_BLOCK)


#: Block size of the JAX sweeps.  Measured (reverse mode of a draw, N = 4096, K = 8, D = 16,
#: one thread, before the sweep became a ``custom_linear_solve``): 4 dimensions per block
#: 56 ms, 8: 65 ms, 16 (one block): 105 ms; the carry update costs a pass over the block's
#: rows per step, the blocks one matrix product each.
JAX_SWEEP_BLOCK = 4


# ------------------------------------------------------------------------------------------
# Estimators.
# ------------------------------------------------------------------------------------------


def _prepare(x, locs, scale_tril, logits, extra, xp):
    xp, arrays = promote(x, locs, scale_tril, logits, *extra, xp=xp)
    x, locs, scale_tril, logits = arrays[:4]
    layout = _layout(x.shape, locs, scale_tril, logits, xp)
    return xp, layout, arrays


def _tril_gradient(y, eps, xp):
    r""":math:`\operatorname{tril}\sum_q y_{k\cdot q}\varepsilon_{k\cdot q}^\top` from ``(D, K, P, Q)``
    arrays (``eps`` may have ``1`` for ``K``), ``(K, P, D, D)``."""
    return xp.tril(matmul(_matrices(y, xp), xp.matrix_transpose(_matrices(eps, xp)), xp))


def _embed_diagonal(values, xp):
    """``(D, K, P)`` to diagonal matrices ``(K, P, D, D)``."""
    size = values.shape[0]
    eye = xp.eye(size, dtype=values.dtype, device=array_api_compat.device(values))
    return xp.permute_dims(values, (1, 2, 0))[..., None] * eye


@flushing_subnormals
def full_covariance_implicit_vjp(
    x: Array,
    locs: Array,
    scale_tril: Array,
    logits: Array,
    cotangent: Array,
    *,
    logits_gradient: bool = True,
    xp: Namespace | None = None,
) -> tuple[Array, Array, Array]:
    r"""Reverse-mode implicit gradient ``(locs_bar, scale_tril_bar, logits_bar)`` (Eqs. FC4-FC5).

    ``x`` ``(..., D)`` are draws held fixed through their distributional transform
    (Graves 2016, Eq. 6), ``cotangent`` :math:`g=\partial L/\partial x` of the same shape.
    Results have the parameters' shapes (summed over sample and broadcast dimensions); the
    strict upper triangle of ``scale_tril_bar`` is zero.  :math:`O(NKD^2)` time, :math:`O(NKD)`
    memory.  ``logits_gradient=False`` returns ``None`` for ``logits_bar`` (the same sweep is
    needed for the other two; ``"rao_blackwell"`` and ``"hybrid"`` then skip it).
    """
    xp, layout, (x, locs, scale_tril, logits, cotangent) = _prepare(x, locs, scale_tril, logits, (cotangent,), xp)
    terms = _sweep_terms(x, locs, scale_tril, logits, layout, xp)
    _, y, carry_before, final_carry = _reverse_sweep(terms, layout.point(cotangent), xp)
    diagonal_part = xp.sum(carry_before * terms.inv_diagonal, axis=3)  # E_ki / L_k,ii, (D, K, P)
    tril_bar = _tril_gradient(y, terms.eps, xp) + _embed_diagonal(diagonal_part, xp)
    return (
        layout.locs_back(xp.sum(y, axis=3), locs.shape),
        layout.scale_tril_back(tril_bar, scale_tril.shape),
        layout.logits_back(-xp.sum(final_carry, axis=(0, 3)), logits.shape) if logits_gradient else None,
    )


def _scaled_transform_tangent(terms, layout, locs_dot, scale_tril_dot, logits_dot, xp):
    r""":math:`t = -\dot T/f` at fixed :math:`x`, ``(D, 1, P, Q)`` (Eq. FC6).

    .. math::

        \frac{\dot T_d}{f_d} = \sum_k\tilde a_{kd}\Big(\dot\ell_k - \sum_{j<d}\big(\varepsilon_{kj}\dot\varepsilon_{kj}
        + \dot L_{k,jj}/L_{k,jj}\big)\Big) + \sum_k r_{kd}L_{k,dd}\dot\varepsilon_{kd},\qquad
        \dot\varepsilon_k = -L_k^{-1}(\dot\mu_k + \dot L_k\varepsilon_k).

    (The softmax's normalising term of :math:`\dot\ell` drops out: :math:`\sum_k\tilde a_{kd}=0`.)
    """
    eps = terms.eps
    log_weight_dot = None
    total = xp.zeros_like(eps[:, :1, ...])
    if locs_dot is not None or scale_tril_dot is not None:
        pushed = xp.zeros_like(_matrices(eps, xp))  # mu_dot + L_dot eps, (K, P, D, Q)
        log_det_dot = None
        if locs_dot is not None:
            pushed = pushed + _matrices(layout.locs(locs_dot), xp)
        if scale_tril_dot is not None:
            tril_dot = xp.tril(layout.scale_tril(scale_tril_dot))
            pushed = pushed + matmul(tril_dot, _matrices(eps, xp), xp)
            log_det_dot = _diagonal_event_major(tril_dot, xp) * terms.inv_diagonal
        eps_dot = -_event_major(_solve_lower_triangular(terms.tril, pushed, xp), xp)
        log_normal_dot = -(eps * eps_dot)
        if log_det_dot is not None:
            log_normal_dot = log_normal_dot - log_det_dot
        log_weight_dot = _cumulative_over_event(log_normal_dot, xp, exclusive=True)
        total = total + xp.sum(terms.responsibilities * (eps_dot / terms.inv_diagonal), axis=1, keepdims=True)
    if logits_dot is not None:
        logits_term = layout.logits(logits_dot)
        log_weight_dot = logits_term if log_weight_dot is None else log_weight_dot + logits_term
    if log_weight_dot is not None:
        total = total + xp.sum(terms.a_scaled * log_weight_dot, axis=1, keepdims=True)
    return -total


@flushing_subnormals
def full_covariance_implicit_jvp(
    x: Array,
    locs: Array,
    scale_tril: Array,
    logits: Array,
    locs_dot: Array | None = None,
    scale_tril_dot: Array | None = None,
    logits_dot: Array | None = None,
    *,
    xp: Namespace | None = None,
) -> Array:
    r"""Forward-mode implicit gradient :math:`\dot x = -J^{-1}\partial_\theta T\,\dot\theta` (Eq. FC6).

    Tangents have the parameters' shapes (``None`` means zero; only the lower triangle of
    ``scale_tril_dot`` is read); the result has the broadcast sample shape ``(..., D)``.
    """
    xp, layout, arrays = _prepare(x, locs, scale_tril, logits, (locs_dot, scale_tril_dot, logits_dot), xp)
    x, locs, scale_tril, logits, locs_dot, scale_tril_dot, logits_dot = arrays
    terms = _sweep_terms(x, locs, scale_tril, logits, layout, xp)
    scaled = _scaled_transform_tangent(terms, layout, locs_dot, scale_tril_dot, logits_dot, xp)
    return layout.point_back(_forward_sweep(terms, scaled, xp))


def _terms_and_logits_bar(x, locs, scale_tril, logits, cotangent_t, layout, logits_gradient, xp):
    r"""``(terms, logits_bar)`` for ``"hybrid"`` and ``"rao_blackwell"``, whose sweep serves the
    ``logits`` alone: with ``logits_gradient``, the sweep terms and Eq. FC5's
    :math:`\bar\ell_k = -\sum_d u_d\tilde a_{kd}` from the reverse sweep's final carry;
    without, only :math:`\varepsilon` and :math:`r_k(x)` (:func:`_final_responsibility_terms`)
    and ``None``."""
    if not logits_gradient:
        return _final_responsibility_terms(x, locs, scale_tril, logits, layout, xp), None
    terms = _sweep_terms(x, locs, scale_tril, logits, layout, xp)
    final_carry = _reverse_sweep(terms, cotangent_t, xp, collect=False).final_carry
    return terms, layout.logits_back(-xp.sum(final_carry, axis=(0, 3)), logits.shape)


@flushing_subnormals
def full_covariance_hybrid_vjp(
    x: Array,
    locs: Array,
    scale_tril: Array,
    logits: Array,
    component_one_hot: Array,
    noise: Array,
    cotangent: Array,
    *,
    logits_gradient: bool = True,
    xp: Namespace | None = None,
) -> tuple[Array, Array, Array]:
    r"""``"hybrid"``: the chosen-component gradient for ``locs``/``scale_tril``
    (:math:`\bar\mu_k=[k]\,g`, :math:`\bar L_k=[k]\operatorname{tril}(g\varepsilon^\top)`) and
    the implicit gradient for ``logits`` (Eq. FC5).  ``x`` must be
    :func:`full_covariance_sample_from_noise` of ``(component_one_hot, noise)``."""
    xp, layout, arrays = _prepare(x, locs, scale_tril, logits, (component_one_hot, noise, cotangent), xp)
    x, locs, scale_tril, logits, component_one_hot, noise, cotangent = arrays
    cotangent_t = layout.point(cotangent)
    logits_bar = None
    if logits_gradient:  # the chosen-component part needs no sweep terms
        _, logits_bar = _terms_and_logits_bar(x, locs, scale_tril, logits, cotangent_t, layout, True, xp)
    chosen = layout.per_sample_components(component_one_hot) * cotangent_t  # (D, K, P, Q)
    return (
        layout.locs_back(xp.sum(chosen, axis=3), locs.shape),
        layout.scale_tril_back(_tril_gradient(chosen, layout.point(noise), xp), scale_tril.shape),
        logits_bar,
    )


def _moved_by(layout, locs_dot, scale_tril_dot, directions, xp):
    r""":math:`\dot\mu_k + \dot L_k\,\delta_k` as ``(D, K, P, Q)`` for per-sample directions
    :math:`\delta` ``(D, K or 1, P, Q)``."""
    moved = xp.zeros_like(directions)
    if locs_dot is not None:
        moved = moved + layout.locs(locs_dot)
    if scale_tril_dot is not None:
        tril_dot = xp.tril(layout.scale_tril(scale_tril_dot))
        moved = moved + _event_major(matmul(tril_dot, _matrices(directions, xp), xp), xp)
    return moved


@flushing_subnormals
def full_covariance_hybrid_jvp(
    x: Array,
    locs: Array,
    scale_tril: Array,
    logits: Array,
    component_one_hot: Array,
    noise: Array,
    locs_dot: Array | None = None,
    scale_tril_dot: Array | None = None,
    logits_dot: Array | None = None,
    *,
    xp: Namespace | None = None,
) -> Array:
    r"""Forward mode of :func:`full_covariance_hybrid_vjp`:
    :math:`\dot x = \dot\mu_k + \dot L_k\varepsilon + \dot x^{\text{implicit}}(\dot\ell)`."""
    xp, layout, arrays = _prepare(
        x, locs, scale_tril, logits, (component_one_hot, noise, locs_dot, scale_tril_dot, logits_dot), xp
    )
    x, locs, scale_tril, logits, component_one_hot, noise, locs_dot, scale_tril_dot, logits_dot = arrays
    x_dot = xp.zeros_like(layout.point(x))
    if locs_dot is not None or scale_tril_dot is not None:
        moved = _moved_by(layout, locs_dot, scale_tril_dot, layout.point(noise), xp)
        chosen = layout.per_sample_components(component_one_hot)
        x_dot = x_dot + xp.sum(chosen * moved, axis=1, keepdims=True)
    if logits_dot is not None:
        terms = _sweep_terms(x, locs, scale_tril, logits, layout, xp)
        x_dot = x_dot + _forward_sweep(terms, _scaled_transform_tangent(terms, layout, None, None, logits_dot, xp), xp)
    return layout.point_back(x_dot)


@flushing_subnormals
def full_covariance_rao_blackwell_vjp(
    x: Array,
    locs: Array,
    scale_tril: Array,
    logits: Array,
    cotangent: Array,
    *,
    logits_gradient: bool = True,
    xp: Namespace | None = None,
) -> tuple[Array, Array, Array]:
    r"""``"rao_blackwell"`` (Eq. FC7): the chosen-component gradient averaged over the component
    given :math:`x`, :math:`\bar\mu_k = r_k(x)g`, :math:`\bar L_k = \operatorname{tril}(r_k(x)\,g\,\varepsilon_k^\top)`;
    ``logits`` implicit (Eq. FC5).  Never noisier than ``"hybrid"`` (its conditional
    expectation given :math:`x`).  ``logits_gradient=False``: ``logits_bar`` is ``None`` and
    only :math:`\varepsilon` and :math:`r_k(x)` are formed, no sweep."""
    xp, layout, (x, locs, scale_tril, logits, cotangent) = _prepare(x, locs, scale_tril, logits, (cotangent,), xp)
    cotangent_t = layout.point(cotangent)
    terms, logits_bar = _terms_and_logits_bar(x, locs, scale_tril, logits, cotangent_t, layout, logits_gradient, xp)
    weighted = terms.responsibilities[-1:, ...] * cotangent_t  # r_k(x) g, (D, K, P, Q)
    return (
        layout.locs_back(xp.sum(weighted, axis=3), locs.shape),
        layout.scale_tril_back(_tril_gradient(weighted, terms.eps, xp), scale_tril.shape),
        logits_bar,
    )


@flushing_subnormals
def full_covariance_rao_blackwell_jvp(
    x: Array,
    locs: Array,
    scale_tril: Array,
    logits: Array,
    locs_dot: Array | None = None,
    scale_tril_dot: Array | None = None,
    logits_dot: Array | None = None,
    *,
    xp: Namespace | None = None,
) -> Array:
    r"""Forward mode of :func:`full_covariance_rao_blackwell_vjp`:
    :math:`\dot x = \sum_kr_k(x)(\dot\mu_k + \dot L_k\varepsilon_k) + \dot x^{\text{implicit}}(\dot\ell)`."""
    xp, layout, arrays = _prepare(x, locs, scale_tril, logits, (locs_dot, scale_tril_dot, logits_dot), xp)
    x, locs, scale_tril, logits, locs_dot, scale_tril_dot, logits_dot = arrays
    if logits_dot is None:  # no sweep: eps and r_k(x) only
        terms = _final_responsibility_terms(x, locs, scale_tril, logits, layout, xp)
    else:
        terms = _sweep_terms(x, locs, scale_tril, logits, layout, xp)
    x_dot = xp.zeros_like(terms.eps[:, :1, ...])
    if logits_dot is not None:
        x_dot = _forward_sweep(terms, _scaled_transform_tangent(terms, layout, None, None, logits_dot, xp), xp)
    if locs_dot is not None or scale_tril_dot is not None:
        moved = _moved_by(layout, locs_dot, scale_tril_dot, terms.eps, xp)
        x_dot = x_dot + xp.sum(terms.responsibilities[-1:, ...] * moved, axis=1, keepdims=True)
    return layout.point_back(x_dot)


#: name -> ``(vjp, jvp)``, the signatures of :func:`full_covariance_implicit_vjp` /
#: :func:`full_covariance_implicit_jvp` (``"hybrid"`` takes ``component_one_hot, noise``
#: after ``logits``, see :func:`full_covariance_hybrid_vjp`).
FULL_COVARIANCE_ESTIMATORS: dict[str, tuple[Callable[..., tuple[Array, Array, Array]], Callable[..., Array]]] = {
    "implicit": (full_covariance_implicit_vjp, full_covariance_implicit_jvp),
    "hybrid": (full_covariance_hybrid_vjp, full_covariance_hybrid_jvp),
    "rao_blackwell": (full_covariance_rao_blackwell_vjp, full_covariance_rao_blackwell_jvp),
}

#: What ``estimator="auto"`` resolves to for full-covariance mixtures, at every event size.
#: Evidence (``benchmarks/full_covariance_variance.py``, ``docs/estimators.md`` "Full
#: covariance"; cos objective, K = 2, 8, D = 2..32, overlapping and separated correlated
#: components): for ``locs``/``scale_tril`` the Rao-Blackwellised gradient is the best or
#: within 1.14x of the best of the three in every configuration, with bounded per-draw
#: values; the implicit gradient is heavy-tailed (tail index 0.7-2.3, infinite variance)
#: at every D >= 4, up to 5000x noisier; ``hybrid`` is up to 3x noisier when components
#: overlap and never better (law of total variance).
FULL_COVARIANCE_AUTO_ESTIMATOR = "rao_blackwell"


def resolve_full_covariance_estimator(estimator: str) -> str:
    """The concrete estimator name for ``estimator`` (``"auto"`` or a key of :data:`FULL_COVARIANCE_ESTIMATORS`)."""
    if estimator == "auto":
        return FULL_COVARIANCE_AUTO_ESTIMATOR
    if estimator not in FULL_COVARIANCE_ESTIMATORS:
        raise ValueError(f"estimator must be one of {('auto',) + tuple(FULL_COVARIANCE_ESTIMATORS)}; got {estimator!r}")
    return estimator


def full_covariance_sample_vjp(
    estimator: str,
    x: Array,
    locs: Array,
    scale_tril: Array,
    logits: Array,
    component_one_hot: Array,
    noise: Array,
    cotangent: Array,
    *,
    logits_gradient: bool = True,
    xp: Namespace | None = None,
) -> tuple[Array, Array, Array]:
    """``(locs_bar, scale_tril_bar, logits_bar)`` of a draw under a concrete ``estimator``
    (one signature for all three; ``component_one_hot``/``noise`` are read by ``"hybrid"``).
    ``logits_gradient=False``: ``logits_bar`` is ``None``, and ``"rao_blackwell"`` and
    ``"hybrid"`` skip the sweep that only it needs (fixed mixture weights)."""
    if estimator == "hybrid":
        return full_covariance_hybrid_vjp(
            x, locs, scale_tril, logits, component_one_hot, noise, cotangent, logits_gradient=logits_gradient, xp=xp
        )
    vjp = FULL_COVARIANCE_ESTIMATORS.get(estimator, (None,))[0]
    if vjp is None:
        raise ValueError(f"estimator must be one of {tuple(FULL_COVARIANCE_ESTIMATORS)} here; got {estimator!r}")
    return vjp(x, locs, scale_tril, logits, cotangent, logits_gradient=logits_gradient, xp=xp)


def full_covariance_sample_jvp(
    estimator: str,
    x: Array,
    locs: Array,
    scale_tril: Array,
    logits: Array,
    component_one_hot: Array,
    noise: Array,
    locs_dot: Array | None = None,
    scale_tril_dot: Array | None = None,
    logits_dot: Array | None = None,
    *,
    xp: Namespace | None = None,
) -> Array:
    """Tangent of a draw under a concrete ``estimator`` (forward mode of :func:`full_covariance_sample_vjp`)."""
    if estimator == "hybrid":
        return full_covariance_hybrid_jvp(
            x, locs, scale_tril, logits, component_one_hot, noise, locs_dot, scale_tril_dot, logits_dot, xp=xp
        )
    jvp = FULL_COVARIANCE_ESTIMATORS.get(estimator, (None, None))[1]
    if jvp is None:
        raise ValueError(f"estimator must be one of {tuple(FULL_COVARIANCE_ESTIMATORS)} here; got {estimator!r}")
    return jvp(x, locs, scale_tril, logits, locs_dot, scale_tril_dot, logits_dot, xp=xp)
