"""Test-wide set-up: JAX on the CPU in float64, and the ``xp`` fixture over array backends.

Every test file relies on two global settings made here, before any test module runs:

* ``JAX_PLATFORMS=cpu`` (unless the environment already says otherwise);
* ``jax_enable_x64``: JAX arrays are float64 by default everywhere, float32 only when a
  test asks for it explicitly (exactly as in NumPy and torch tests);
* one torch intra-op thread (one pytest worker per core).

The ``xp`` fixture runs a test once per backend (NumPy, torch, JAX, array-api-strict).  It
yields a :class:`Backend`, whose :meth:`Backend.asarray` turns a NumPy array into that
backend's array and :meth:`Backend.to_numpy` brings any result back, so that references
can stay in NumPy float64.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import array_api_compat
import array_api_strict
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

jax.config.update("jax_enable_x64", True)
# One torch intra-op thread: `make test` runs one pytest worker per core, and tiny ops
# split across oversubscribed threads run orders of magnitude slower.
torch.set_num_threads(1)


class Backend:
    """One array library as seen by the tests.

    ``name``: short id used in test ids; ``xp``: the array-API-compatible namespace of its
    arrays (what ``shared_math`` sees); ``float32``/``float64``: its dtypes.
    """

    def __init__(self, name, make_array, xp, jit=None):
        self.name = name
        self._make_array = make_array
        self._jit = jit
        self.xp = xp
        self.float32 = xp.float32
        self.float64 = xp.float64

    def call(self, function, *args, static_argnums=(), **kwargs):
        """``function(*args, **kwargs)``, compiled with ``jax.jit`` on the JAX backend.

        Eager JAX compiles every primitive of a new shape separately (``log_ndtr`` alone is
        dozens: about 4 s of CPU for the first ``implicit_vjp`` of a shape, against about
        0.7 s for one ``jit`` compile), and ``jit`` is also the stricter test (no concrete
        values, no ``.device`` on tracers).  ``static_argnums``: positional arguments that are
        not arrays (shapes).
        """
        if self._jit is None:
            return function(*args, **kwargs)
        return self._jit(function, static_argnums=static_argnums)(*args, **kwargs)

    def __repr__(self):
        return f"Backend({self.name})"

    def asarray(self, array, dtype=None):
        """NumPy (or Python) ``array`` as an array of this backend, float64 unless ``dtype`` says
        otherwise (``dtype`` is ``"float32"``/``"float64"`` or a NumPy dtype); integer and bool
        arrays keep their kind."""
        array = np.asarray(array)
        if dtype is not None:
            array = array.astype(np.dtype(dtype))
        elif array.dtype.kind == "f":
            array = array.astype(np.float64)
        return self._make_array(np.ascontiguousarray(array))

    def to_numpy(self, array):
        """Any array of this backend back as a NumPy array (same dtype)."""
        return to_numpy(array)

    def owns(self, array):
        """Whether ``array`` belongs to this backend (same array namespace)."""
        try:
            return array_api_compat.array_namespace(array) == self.xp
        except TypeError:
            return False


def to_numpy(array):
    """NumPy copy of a NumPy, torch, JAX or array-api-strict array."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    if isinstance(array, array_api_strict._array_object.Array):
        return np.asarray(np.from_dlpack(array))
    return np.asarray(array)


BACKENDS = {
    "numpy": Backend("numpy", lambda a: a, array_api_compat.array_namespace(np.zeros(1))),
    "torch": Backend("torch", torch.from_numpy, array_api_compat.array_namespace(torch.zeros(1))),
    "jax": Backend("jax", jnp.asarray, array_api_compat.array_namespace(jnp.zeros(1)), jit=jax.jit),
    "strict": Backend("strict", array_api_strict.asarray, array_api_strict),
}


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def xp(request):
    """A :class:`Backend`: NumPy, torch, JAX (float64 enabled) or array-api-strict."""
    return BACKENDS[request.param]
