"""Type aliases of the public signatures of :mod:`shared_math` (private; imports neither torch nor JAX).

The core is written once against the Python array API and works on the arrays of any
compliant namespace, which share no common base class (and the standard ships no
protocol that type checkers know), so arrays are typed as ``Any`` under a readable name:

* :data:`Array`: an array of any array-API namespace: NumPy, torch, JAX, array-api-strict
  (functions return arrays of the namespace, dtype and device of their inputs);
* :data:`Namespace`: the array namespace itself, the ``xp`` argument (what
  ``array_api_compat.array_namespace`` returns; ``None`` where a function infers it);
* :data:`DType`: a dtype of such a namespace (``xp.float32``, ``torch.float64``, ...);
* :data:`Shape`: a shape, a sequence of non-negative integers (a tuple, ``torch.Size``, a
  list).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

#: An array of any array-API namespace: NumPy, torch, JAX, array-api-strict.
Array: TypeAlias = Any

#: An array namespace (the ``xp`` argument), e.g. ``array_api_compat.array_namespace(x)``.
Namespace: TypeAlias = Any

#: A dtype of an array namespace (``xp.float32``, ``torch.float64``, ``jnp.float32``, ...).
DType: TypeAlias = Any

#: A shape: a sequence of non-negative integers (``tuple``, ``torch.Size``, ``list``).
Shape: TypeAlias = Sequence[int]

__all__ = ["Array", "DType", "Namespace", "Shape"]
