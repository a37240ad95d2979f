"""The few things the Python array API standard does not provide, dispatched per namespace.

Everything else in :mod:`shared_math` is plain ``xp.*`` code.  Backends are recognised
from the namespace object that :func:`array_api_compat.array_namespace` returned; torch and
JAX are imported only when their arrays are already in use, so importing ``shared_math``
imports neither.

Dispatched here:

* ``log_ndtr``: :math:`\\log\\Phi(z)`, accurate in both tails (``scipy.special.log_ndtr``,
  ``torch.special.log_ndtr``, ``jax.scipy.special.log_ndtr``).  Other namespaces (e.g.
  ``array-api-strict`` in tests) go through NumPy/SciPy on the host.
* ``sequential_scan``: the O(D) sweeps of the implicit gradient.  ``jax.lax.scan`` for JAX
  (one traced step instead of D unrolled ones; JAX can transpose it), a Python loop elsewhere.
"""

from __future__ import annotations

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
    """Elementwise :math:`\\log\\Phi(z)` for the namespace ``xp``."""
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
