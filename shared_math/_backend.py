r"""The few things the Python array API standard does not provide, dispatched per namespace.

Everything else in :mod:`shared_math` is plain ``xp.*`` code.  Backends are recognised
from the namespace object that :func:`array_api_compat.array_namespace` returned; torch and
JAX are imported only when their arrays are already in use, so importing ``shared_math``
imports neither.

Dispatched here:

* ``log_ndtr``: :math:`\log\Phi(z)`, accurate in both tails (``scipy.special.log_ndtr``,
  ``torch.special.log_ndtr``, ``jax.scipy.special.log_ndtr``).  Other namespaces (e.g.
  ``array-api-strict`` in tests) go through NumPy/SciPy on the host.
* ``normal_tail``: :math:`\Phi(-a)` for :math:`a\ge0` through ``erfc`` (vectorized in every
  backend, unlike torch's ``log_ndtr``, which costs about 40 ``erfc``).
* ``sequential_scan``: the O(D) sweeps of the implicit gradient.  ``jax.lax.scan`` for JAX
  (one traced step instead of D unrolled ones; JAX can transpose it), a Python loop elsewhere.
* ``subnormals_flushed``: a context in which torch flushes subnormal results to zero on
  the CPU (XLA's CPU runtime already does).  Every small weight here is floored above the
  subnormal range, but products of two of them are not, and x86 CPUs take about 100x longer
  on a subnormal: at ``N=4096, K=8, D=128``, where most responsibilities are tiny, the
  sweep terms take half as long with them flushed.
* ``fuses_elementwise``: whether the namespace compiles and fuses elementwise steps (JAX), so
  that the gradients need not run them in cache-sized blocks.
* ``leading_cumsum``: cumulative sum along axis 0.  A loop of slice additions for torch and
  NumPy, whose ``cumsum`` along a leading axis is not vectorized over the trailing ones
  (5x slower than the loop at ``(16, 8, 4096)``); a ``lax.scan`` for JAX, whose CPU
  ``cumsum`` costs 7x more at ``D = 16`` and 11x at ``D = 128``.
"""

from __future__ import annotations

import contextlib
import functools
import math

import array_api_compat
from array_api_compat import (
    is_jax_namespace,
    is_numpy_namespace,
    is_torch_namespace,
)

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def get_namespace(*arrays):
    """The array namespace shared by ``arrays`` (``None`` entries and Python scalars skipped)."""
    return array_api_compat.array_namespace(*[a for a in arrays if a is not None and not isinstance(a, (int, float))])


def log_ndtr(z, xp):
    r"""Elementwise :math:`\log\Phi(z)` for the namespace ``xp``."""
    if is_torch_namespace(xp):
        import torch

        return torch.special.log_ndtr(z)
    if is_jax_namespace(xp):
        import jax.scipy.special

        return jax.scipy.special.log_ndtr(z)
    import numpy as np
    import scipy.special

    if is_numpy_namespace(xp):
        return scipy.special.log_ndtr(z)
    # Any other standard namespace: compute on the host and convert back.
    host = np.asarray(np.from_dlpack(z))
    return xp.asarray(scipy.special.log_ndtr(host), device=array_api_compat.device(z))


def parameter_dtype(values, xp):
    r"""The one floating dtype that distribution parameters ``values`` are converted to.

    Both adapters choose it this way:

    * arrays with a real floating dtype decide; their dtypes (not the arrays) are promoted
      with ``xp.result_type``, the array API's table, so a float64 scalar array and a
      float32 matrix give float64 in every backend (torch's own ``result_type`` would
      give float32 there, and ``torch.compile`` cannot trace it: it returns a dtype);
    * Python numbers and sequences, integer or boolean arrays and JAX's weakly typed
      arrays adopt that dtype;
    * when no array is floating, the result is ``xp``'s default floating dtype
      (``torch.get_default_dtype()``; float64 in JAX with x64 enabled, else float32;
      float64 in NumPy).
    """
    floating = [
        value.dtype
        for value in values
        if hasattr(value, "dtype")
        and not getattr(value, "weak_type", False)
        and xp.isdtype(value.dtype, "real floating")
    ]
    if not floating:
        return xp.__array_namespace_info__().default_dtypes()["real floating"]
    return xp.result_type(*floating)


_SQRT_HALF = math.sqrt(0.5)


def _erfc_function(xp):
    if is_torch_namespace(xp):
        import torch

        return torch.special.erfc
    if is_jax_namespace(xp):
        import jax.scipy.special

        return jax.scipy.special.erfc
    import scipy.special

    if is_numpy_namespace(xp):
        return scipy.special.erfc
    import numpy as np

    def host_erfc(values):
        host = np.asarray(np.from_dlpack(values))
        return xp.asarray(scipy.special.erfc(host), device=array_api_compat.device(values))

    return host_erfc


def normal_tail_limit(dtype, xp):
    r"""The largest :math:`a` whose :math:`\Phi(-a)` is at least :math:`e\cdot` the smallest
    normal number of ``dtype`` (13.0 for float32, 37.4 for float64), by bisection in float64.

    :func:`normal_tail` clamps its argument there: below that bound results would be
    subnormal, which is off the CPU's fast path (100x slower in torch) and below the floor
    that :func:`shared_math.mixture.exp_of_log` puts on every other weight.
    """
    return _normal_tail_limit(float(xp.finfo(dtype).smallest_normal))


@functools.lru_cache(maxsize=None)
def _normal_tail_limit(smallest_normal):
    floor = math.e * smallest_normal
    low, high = 0.0, 40.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        if 0.5 * math.erfc(middle * _SQRT_HALF) >= floor:
            low = middle
        else:
            high = middle
    return low


def normal_tail(abs_z, xp):
    r""":math:`\Phi(-a) = \tfrac12\operatorname{erfc}(a/\sqrt2)` for ``abs_z`` :math:`=a\ge0`,
    with :math:`a` clamped at :func:`normal_tail_limit` (results never subnormal)."""
    clamped = xp.clip(abs_z, max=normal_tail_limit(abs_z.dtype, xp))
    return 0.5 * _erfc_function(xp)(clamped * _SQRT_HALF)


@contextlib.contextmanager
def subnormals_flushed(xp):
    """Within the context, torch flushes subnormal float results to zero (calling thread);
    the previous setting is restored on exit.  Other namespaces, and torch while
    ``torch.compile`` traces: no effect."""
    if not is_torch_namespace(xp):
        yield
        return
    import torch

    if getattr(torch.compiler, "is_compiling", lambda: False)():
        # torch.compile cannot trace .item() or the global flag; compiled code runs as it is.
        yield
        return
    already = torch.tensor(1e-40, dtype=torch.float32).item() == 0.0
    if already or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def leading_cumsum(values, xp, initial=None):
    """``initial + cumsum(values, axis=0)``; ``initial`` has a leading axis of length 1 and
    broadcasts against ``values`` (``None`` for zero)."""
    if is_jax_namespace(xp):
        import jax

        # A scan: XLA's CPU cumsum along a leading axis takes 7x as long as this scan at
        # D = 16 and 11x at D = 128 (it grows with D); a scan costs one addition per element.
        def add(running, value):
            running = running + value
            return running, running

        start = xp.zeros_like(values[0, ...]) if initial is None else xp.broadcast_to(initial[0, ...], values.shape[1:])
        return jax.lax.scan(add, start, values)[1]
    running = [values[0, ...] if initial is None else values[0, ...] + initial[0, ...]]
    for index in range(1, values.shape[0]):
        running.append(running[-1] + values[index, ...])
    return xp.stack(running, axis=0)


def fuses_elementwise(xp):
    """Whether ``xp`` compiles whole computations and fuses elementwise steps itself (JAX):
    then splitting work into cache-sized blocks gains nothing and only adds traced code."""
    return is_jax_namespace(xp)


def sequential_scan(step, carry, sequences, xp, *, reverse=False):
    """``jax.lax.scan`` semantics over axis 0 of each array in ``sequences``.

    ``step(carry, slices) -> (carry, outputs)`` with ``slices`` and ``outputs`` tuples of
    arrays.  Returns ``(final_carry, stacked_outputs)``, outputs stacked along axis 0 in the
    order of ``sequences`` (also when ``reverse=True``).
    """
    if is_jax_namespace(xp):
        import jax

        return jax.lax.scan(step, carry, tuple(sequences), reverse=reverse)
    length = sequences[0].shape[0]
    order = range(length - 1, -1, -1) if reverse else range(length)
    collected = [None] * length
    for index in order:
        carry, outputs = step(carry, tuple(seq[index, ...] for seq in sequences))
        collected[index] = outputs
    stacked = tuple(xp.stack([collected[i][j] for i in range(length)], axis=0) for j in range(len(collected[0])))
    return carry, stacked


def contiguous(array, xp):
    """``array`` laid out C-contiguously (a copy only if it is a strided view; NumPy, torch).

    torch's elementwise ops give outputs the memory layout of their inputs, so the
    dimension-major inputs of the sweeps are made contiguous once, up front.
    """
    if is_torch_namespace(xp):
        return array.contiguous()
    if is_numpy_namespace(xp):
        import numpy as np

        return np.ascontiguousarray(array)
    return array
