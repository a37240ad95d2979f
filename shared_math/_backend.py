r"""The few things the Python array API standard does not provide, dispatched per namespace.

Everything else in :mod:`shared_math` is plain ``xp.*`` code.  Backends are recognised
from the namespace object that :func:`array_api_compat.array_namespace` returned; torch and
JAX are imported only when their arrays are already in use, so importing ``shared_math``
imports neither.

Dispatched here:

* **special functions** (:func:`special`), from one table (:data:`NATIVE_SPECIAL_FUNCTIONS`):
  the backend's native function first (SciPy for NumPy, ``torch.special``,
  ``jax.scipy.special``), then an array-API implementation from :mod:`shared_math._special`
  (``betainc``, which torch lacks), then SciPy on the host for any other standard namespace
  (``array-api-strict`` in tests);
* **log-sum-exp and log-softmax** (:func:`native_logsumexp`, :func:`native_log_softmax`):
  torch's and JAX's own reductions, one fused kernel each in eager torch where the
  array-API version takes about a dozen (``None`` for other namespaces);
* ``promote``: the common floating dtype of the inputs (at least float32), and
  ``parameter_dtype``: the one rule both adapters use to choose their parameters' dtype;
* ``sequential_scan``: the O(D) sweeps of the implicit gradient.  ``jax.lax.scan`` for JAX
  (one traced step instead of D unrolled ones; JAX can transpose it), a Python loop elsewhere;
* ``subnormals_flushed``: a context in which torch flushes subnormal results to zero on
  the CPU (XLA's CPU runtime already does).  Every small weight here is floored above the
  subnormal range, but products of two of them are not, and x86 CPUs take about 100x longer
  on a subnormal: at ``N=4096, K=8, D=128``, where most responsibilities are tiny, the
  sweep terms take half as long with them flushed;
* ``fuses_elementwise``: whether the namespace compiles and fuses elementwise steps (JAX), so
  that the gradients need not run them in cache-sized blocks;
* ``solve_unit_triangular``: batched unit triangular solves (the blocked sweeps);
* ``matmul``: matrix products at full float32 precision (JAX's default may use TF32 or
  bfloat16 passes on accelerators);
* ``multiply_add`` and ``divide_add``: :math:`b + lr` and :math:`b + n/d` as one pass in
  torch (``addcmul``, ``addcdiv``);
* ``leading_cumsum``: cumulative sum along axis 0.  A loop of slice additions for torch and
  NumPy, whose ``cumsum`` along a leading axis is not vectorized over the trailing ones
  (5x slower than the loop at ``(16, 8, 4096)``), except for slices of at most
  :data:`SMALL_SLICE` entries, where the loop is per-operation overhead; a ``lax.scan`` for JAX, whose CPU
  ``cumsum`` costs 7x more at ``D = 16`` and 11x at ``D = 128``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import array_api_compat
from array_api_compat import (
    is_jax_namespace,
    is_numpy_namespace,
    is_torch_namespace,
)

from ._typing import DType, Namespace

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

_F = TypeVar("_F", bound=Callable[..., Any])


def get_namespace(*arrays):
    """The array namespace shared by ``arrays`` (``None`` entries and Python scalars skipped)."""
    return array_api_compat.array_namespace(*[a for a in arrays if a is not None and not isinstance(a, (int, float))])


def promote(*arrays, xp=None):
    """Namespace and common floating dtype of ``arrays``; returns ``(xp, converted arrays)``.

    ``None`` entries pass through.  Arrays already of the common dtype are passed through
    untouched (no copy, so torch's ``requires_grad`` and JAX tracers survive).  Integer and
    boolean inputs promote to at least float32.
    """
    xp = get_namespace(*arrays) if xp is None else xp
    present = [a for a in arrays if a is not None]
    dtype = xp.result_type(*present)
    if not xp.isdtype(dtype, "real floating"):
        dtype = xp.result_type(dtype, xp.float32)
    return xp, [a if a is None or a.dtype == dtype else xp.astype(a, dtype) for a in arrays]


def parameter_dtype(values: Iterable[object], xp: Namespace) -> DType:
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


#: Native special functions: ``name -> {backend: attribute path}``, the path relative to the
#: backend's root module (:func:`_native_root`: ``scipy.special`` for NumPy, ``torch``,
#: ``jax.scipy.special``).  A name a backend lacks falls back to
#: :data:`ARRAY_API_SPECIAL_FUNCTIONS`, then to SciPy on the host.
NATIVE_SPECIAL_FUNCTIONS = {
    "erfc": {"numpy": "erfc", "torch": "special.erfc", "jax": "scipy.special.erfc"},
    "log_ndtr": {"numpy": "log_ndtr", "torch": "special.log_ndtr", "jax": "scipy.special.log_ndtr"},
    "lgamma": {"numpy": "gammaln", "torch": "lgamma", "jax": "scipy.special.gammaln"},
    "digamma": {"numpy": "digamma", "torch": "special.digamma", "jax": "scipy.special.digamma"},
    "betainc": {"numpy": "betainc", "jax": "scipy.special.betainc"},
    # Regularized incomplete gamma functions P(a, x) and Q(a, x) = 1 - P (each computed directly).
    # torch's are good to 2e-9 relative in float64 for a >= 10 (6e-14 below), measured against SciPy.
    "gammainc": {"numpy": "gammainc", "torch": "special.gammainc", "jax": "scipy.special.gammainc"},
    "gammaincc": {"numpy": "gammaincc", "torch": "special.gammaincc", "jax": "scipy.special.gammaincc"},
    # dP(a, x)/da: only JAX has it (the derivative behind its gammainc's gradient); 2e-13 relative.
    "gammainc_grad_a": {"jax": "lax.igamma_grad_a"},
}

#: Array-API implementations (:mod:`shared_math._special`) of functions a backend lacks.
#: Each takes the arrays, then ``xp=`` and the :func:`special` lookup as ``lgamma=``.
ARRAY_API_SPECIAL_FUNCTIONS = {"betainc": "betainc"}

#: SciPy names of the special functions, for namespaces with no native version.
_HOST_SCIPY_NAMES = {
    "erfc": "erfc",
    "log_ndtr": "log_ndtr",
    "lgamma": "gammaln",
    "digamma": "digamma",
    "betainc": "betainc",
    "gammainc": "gammainc",
    "gammaincc": "gammaincc",
}


def backend_name(xp):
    """``"numpy"``, ``"torch"``, ``"jax"`` or ``"other"`` for the namespace ``xp``."""
    if is_numpy_namespace(xp):
        return "numpy"
    if is_torch_namespace(xp):
        return "torch"
    if is_jax_namespace(xp):
        return "jax"
    return "other"


def _native_root(backend):
    """The module that :data:`NATIVE_SPECIAL_FUNCTIONS` paths start from (``scipy.special`` for
    NumPy, ``torch``, ``jax``; plain import statements, which ``torch.compile`` traces;
    ``importlib`` it does not)."""
    if backend == "torch":
        import torch

        return torch
    if backend == "jax":
        import jax
        import jax.scipy.special  # noqa: F401  (makes jax.scipy.special an attribute of jax)

        return jax
    import scipy.special

    return scipy.special


def special(name, xp, *, native=True):
    """The special function ``name`` for arrays of namespace ``xp`` (elementwise; arrays in,
    arrays of the same namespace out).

    Order: native (:data:`NATIVE_SPECIAL_FUNCTIONS`), array-API fallback
    (:data:`ARRAY_API_SPECIAL_FUNCTIONS`), SciPy on the host.  ``native=False`` skips the
    native version (tests compare the fallback against SciPy on every backend).
    """
    backend = backend_name(xp)
    if not has_special(name, xp):
        raise ValueError(f"no {name} for arrays of this namespace ({backend})")
    path = NATIVE_SPECIAL_FUNCTIONS[name].get(backend) if native else None
    if path is not None:
        function = _native_root(backend)
        for attribute in path.split("."):
            function = getattr(function, attribute)
        return function
    if name in ARRAY_API_SPECIAL_FUNCTIONS:
        from . import _special

        implementation = getattr(_special, ARRAY_API_SPECIAL_FUNCTIONS[name])
        lgamma = special("lgamma", xp)
        return lambda *arrays: implementation(*arrays, xp=xp, lgamma=lgamma)
    return _host_scipy(_HOST_SCIPY_NAMES[name], xp)


def native_logsumexp(xp):
    r"""The backend's own :math:`\log\sum\exp` as ``f(values, axis, keepdims)`` (``torch.logsumexp``,
    ``jax.nn.logsumexp``), or ``None`` where there is none (NumPy, other namespaces).

    Like the array-API version in :func:`shared_math.mixture.logsumexp`, both shift by the
    maximum; unlike it, both give NaN gradients where every entry is :math:`-\infty`, which
    the caller guards against.
    """
    backend = backend_name(xp)
    if backend == "torch":
        import torch

        return lambda values, axis, keepdims: torch.logsumexp(values, dim=axis, keepdim=keepdims)
    if backend == "jax":
        import jax

        return lambda values, axis, keepdims: jax.nn.logsumexp(values, axis=axis, keepdims=keepdims)
    return None


def native_log_softmax(xp):
    """The backend's own log-softmax as ``f(values, axis)`` (``torch.log_softmax``,
    ``jax.nn.log_softmax``), or ``None`` where there is none."""
    backend = backend_name(xp)
    if backend == "torch":
        import torch

        return lambda values, axis: torch.log_softmax(values, dim=axis)
    if backend == "jax":
        import jax

        return lambda values, axis: jax.nn.log_softmax(values, axis=axis)
    return None


def has_special(name, xp):
    """Whether :func:`special` has ``name`` for arrays of namespace ``xp`` (natively, as an
    array-API fallback or from SciPy on the host)."""
    return (
        NATIVE_SPECIAL_FUNCTIONS[name].get(backend_name(xp)) is not None
        or name in ARRAY_API_SPECIAL_FUNCTIONS
        or (backend_name(xp) not in ("numpy", "torch", "jax") and name in _HOST_SCIPY_NAMES)
    )


def wide_dtype(dtype, xp):
    """float64 where ``xp`` has it (JAX only with ``jax_enable_x64``), else ``dtype``: the dtype
    in which special functions of float32 arguments are evaluated, then rounded once."""
    if dtype != xp.float32:
        return dtype
    if is_jax_namespace(xp):
        import jax

        return xp.float64 if jax.config.read("jax_enable_x64") else dtype
    return xp.float64


def _host_scipy(scipy_name, xp):
    """``scipy.special.<scipy_name>`` applied on the host to arrays of namespace ``xp``."""
    import numpy as np
    import scipy.special

    function = getattr(scipy.special, scipy_name)

    def on_host(*arrays):
        hosts = [np.asarray(np.from_dlpack(a)) if hasattr(a, "__dlpack__") else np.asarray(a) for a in arrays]
        device = next(array_api_compat.device(a) for a in arrays if hasattr(a, "__dlpack__"))
        return xp.asarray(function(*hosts), device=device)

    return on_host


def flushing_subnormals(function: _F) -> _F:
    """Decorator: run ``function`` (whose positional arguments are arrays or ``None``, with an
    ``xp=`` keyword) inside :func:`subnormals_flushed` for its namespace."""

    @functools.wraps(function)
    def wrapper(*args, xp=None, **kwargs):
        namespace = get_namespace(*args, *kwargs.values()) if xp is None else xp
        with subnormals_flushed(namespace):
            return function(*args, xp=namespace, **kwargs)

    return cast(_F, wrapper)


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


#: Entries per step below which eager backends take ``cumulative_sum`` along the leading axis
#: rather than a loop of slice additions.
SMALL_SLICE = 1 << 12


def leading_cumsum(values, xp, initial=None, keep_initial=False):
    """``initial + cumsum(values, axis=0)``; ``initial`` has a leading axis of length 1 and
    broadcasts against ``values`` (``None`` for zero).  ``keep_initial``: ``initial`` itself
    (broadcast) as an extra first row (``initial`` required)."""
    if keep_initial and (is_jax_namespace(xp) or math.prod(values.shape[1:]) <= SMALL_SLICE):
        first = xp.broadcast_to(initial, (1,) + tuple(values.shape[1:]))
        return xp.concat([first, leading_cumsum(values, xp, initial=initial)], axis=0)
    if is_jax_namespace(xp):
        import jax

        # A scan: XLA's CPU cumsum along a leading axis takes 7x as long as this scan at
        # D = 16 and 11x at D = 128 (it grows with D); a scan costs one addition per element.
        def add(running, value):
            running = running + value
            return running, running

        start = xp.zeros_like(values[0, ...]) if initial is None else xp.broadcast_to(initial[0, ...], values.shape[1:])
        return jax.lax.scan(add, start, values)[1]
    if math.prod(values.shape[1:]) <= SMALL_SLICE:
        # Few entries per step: the loop would be all per-operation overhead (D of them).
        total = xp.cumulative_sum(values, axis=0)
        return total if initial is None else total + initial
    if keep_initial:  # the running sums start one row earlier, at initial itself
        running, first_added = [xp.broadcast_to(initial[0, ...], tuple(values.shape[1:]))], 0
    else:
        running, first_added = [values[0, ...] if initial is None else values[0, ...] + initial[0, ...]], 1
    for index in range(first_added, values.shape[0]):
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
    collected: list[Any] = [None] * length
    for index in order:
        carry, outputs = step(carry, tuple(seq[index, ...] for seq in sequences))
        collected[index] = outputs
    stacked = tuple(xp.stack([collected[i][j] for i in range(length)], axis=0) for j in range(len(collected[0])))
    return carry, stacked


def solve_unit_triangular(strict, rhs, xp, *, upper):
    r"""Solve :math:`(I - M)\,u = b` for a batch of unit triangular systems.

    ``strict`` is :math:`M`, shape ``(..., B, B)``, zero on and below (``upper=True``) or on
    and above (``upper=False``) the diagonal; ``rhs`` is :math:`b`, shape ``(..., B)``.
    torch and JAX use their triangular solvers (back/forward substitution, :math:`O(B^2)`
    per system); other namespaces the array API's ``linalg.solve``, which on a unit
    triangular matrix pivots nowhere and gives the same substitution.
    """
    size = strict.shape[-1]
    identity = xp.eye(size, dtype=strict.dtype, device=array_api_compat.device(strict))
    matrix = identity - strict
    if is_torch_namespace(xp):
        import torch

        return torch.linalg.solve_triangular(matrix, rhs[..., None], upper=upper, unitriangular=True)[..., 0]
    if is_jax_namespace(xp):
        import jax.scipy.linalg

        return jax.scipy.linalg.solve_triangular(matrix, rhs[..., None], lower=not upper, unit_diagonal=True)[..., 0]
    return xp.linalg.solve(matrix, rhs[..., None])[..., 0]


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


def matmul(left, right, xp):
    r"""``left @ right`` (batched, as ``xp.matmul``) at full precision.

    JAX's default precision for float32 products on accelerators may be reduced (TF32 on
    recent NVIDIA GPUs, bfloat16 passes on TPUs): about three decimal digits, which would
    shift a draw's point (:func:`shared_math.sample_from_noise` gathers by a one-hot
    product) and the full-covariance sweeps by far more than their float32 rounding.  JAX
    therefore asks for ``Precision.HIGHEST`` (on the CPU, float32 products are full
    precision either way).  torch follows its own global setting, full float32 unless the
    user lowers it (``torch.set_float32_matmul_precision``).
    """
    if is_jax_namespace(xp):
        import jax

        return jax.numpy.matmul(left, right, precision=jax.lax.Precision.HIGHEST)
    return xp.matmul(left, right)


def divide_add(base, numerator, denominator, xp):
    r""":math:`b + n/d` (broadcasting) as one operation where the backend has it (torch's
    ``addcdiv``; the same rounding as the quotient then the sum).  Used in the continued
    fractions of :mod:`shared_math._special`, whose terms are a few passes each."""
    if is_torch_namespace(xp):
        import torch

        return torch.addcdiv(base, numerator, denominator)
    return base + numerator / denominator


def multiply_add(base, left, right, xp, *, scale=1.0):
    r""":math:`b + c\,l\,r` (broadcasting) as one operation where the backend has it.

    torch's ``addcmul`` costs one elementwise pass and one dispatch where ``base + left *
    right`` costs two (10-20 us each on the slices of the sequential sweeps, where those
    passes are the whole cost); JAX fuses the two itself.  ``scale`` is a Python number.
    """
    if is_torch_namespace(xp):
        import torch

        return torch.addcmul(base, left, right, value=scale)
    product = left * right
    if scale == -1.0:
        return base - product
    return base + (product if scale == 1.0 else scale * product)
