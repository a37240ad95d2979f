"""Shape and value checks shared by the adapters; every error names the offending parameter."""

from __future__ import annotations

import functools
import math
import operator

from ._backend import get_namespace
from ._typing import Array, Namespace, Shape


def mixture_shapes(locs_shape: Shape, scales_shape: Shape, logits_shape: Shape) -> tuple[tuple[int, ...], int, int]:
    """``(batch_shape, K, D)`` of a diagonal mixture, or a ``ValueError`` naming the bad parameter.

    ``locs``/``scales`` are ``(..., K, D)`` and ``logits`` ``(..., K)``; the leading
    dimensions must broadcast.
    """
    locs_shape, scales_shape, logits_shape = tuple(locs_shape), tuple(scales_shape), tuple(logits_shape)
    if len(locs_shape) < 2:
        raise ValueError(f"locs must have shape (..., K, D); got {locs_shape}")
    if len(scales_shape) < 2:
        raise ValueError(f"scales must have shape (..., K, D); got {scales_shape}")
    if len(logits_shape) < 1:
        raise ValueError(f"logits must have shape (..., K); got {logits_shape}")
    num_components, event_size = locs_shape[-2:]
    if event_size < 1:
        raise ValueError(f"locs must have at least one event dimension D; got shape {locs_shape}")
    if num_components < 1:
        raise ValueError(f"locs must have at least one component K; got shape {locs_shape}")
    if scales_shape[-1] != event_size and scales_shape[-1] != 1:
        raise ValueError(f"scales has event size {scales_shape[-1]} but locs has D={event_size}")
    if scales_shape[-2] != num_components and scales_shape[-2] != 1:
        raise ValueError(f"scales has {scales_shape[-2]} components but locs has K={num_components}")
    if logits_shape[-1] != num_components:
        raise ValueError(f"logits has {logits_shape[-1]} components but locs has K={num_components}")
    batch_shape = broadcast_shapes(
        ("locs", locs_shape[:-2]), ("scales", scales_shape[:-2]), ("logits", logits_shape[:-1])
    )
    return batch_shape, num_components, event_size


def broadcast_shapes(*named_shapes: tuple[str, Shape]) -> tuple[int, ...]:
    """Broadcast of ``(name, shape)`` pairs, with a ``ValueError`` naming the pair that clashes."""
    result: list[int] = []
    owner: list[str] = []
    for name, shape in named_shapes:
        shape = tuple(shape)
        pad = len(shape) - len(result)
        if pad > 0:
            result = [1] * pad + result
            owner = [name] * pad + owner
        offset = len(result) - len(shape)
        for i, size in enumerate(shape):
            j = offset + i
            if result[j] == 1:
                result[j], owner[j] = size, name
            elif size != 1 and size != result[j]:
                raise ValueError(
                    f"batch shape of {name} {shape} does not broadcast with that of {owner[j]} "
                    f"(size {size} vs {result[j]} in batch dimension {j})"
                )
    return tuple(result)


def check_parameter_values(
    locs: Array | None, scales: Array | None, logits: Array | None, *, xp: Namespace | None = None
) -> None:
    """``ValueError`` if ``locs``/``logits`` hold NaN or infinity or ``scales`` are not positive and finite.

    Needs concrete values (call outside ``jax.jit`` tracing); a parameter given as ``None``
    is skipped (the adapters pass ``None`` for one that is not concrete).
    """
    xp = get_namespace(locs, scales, logits) if xp is None else xp
    # One reduction and one read of the result when every value is fine (the common case: each
    # read of a device value is a synchronization, and each small operation costs a few us).
    checks = [xp.all(xp.isfinite(a)) for a in (locs, logits) if a is not None]
    if scales is not None:
        checks.append(xp.all((scales > 0) & (scales < math.inf)))  # False for NaN as well
    if not checks or bool(functools.reduce(operator.and_, checks)):
        return
    if locs is not None and bool(xp.any(~xp.isfinite(locs))):
        raise ValueError("locs must be finite (found NaN or infinity)")
    if logits is not None and bool(xp.any(~xp.isfinite(logits))):
        raise ValueError("logits must be finite (found NaN or infinity)")
    if scales is None:
        return
    if bool(xp.any(xp.isnan(scales))):
        raise ValueError("scales must be positive (found NaN)")
    if bool(xp.any(~(scales > 0))) or bool(xp.any(~xp.isfinite(scales))):
        raise ValueError("scales must be positive and finite (found a value <= 0 or infinity)")


def check_value_shape(value_shape: Shape, event_shape: Shape) -> None:
    """``ValueError`` naming ``value`` unless its trailing dimensions equal ``event_shape``.

    Shapes are static in every framework (also inside ``jax.jit``), so both adapters check
    this always, whether or not argument validation is on.
    """
    value_shape, event_shape = tuple(value_shape), tuple(event_shape)
    if event_shape and value_shape[-len(event_shape) :] != event_shape:
        raise ValueError(
            f"value has shape {value_shape}, but its last dimensions must be the event shape "
            f"{event_shape} of the mixture"
        )


def guide_settings(
    num_components: int, init_scale: float, init_spread: float, init_seed: int
) -> tuple[int, float, float, int]:
    """The autoguides' shared arguments, checked and normalised:
    ``(int num_components, float init_scale, float init_spread, int init_seed)``.

    ``num_components`` a positive integer; ``init_scale`` a finite real number > 0 (an
    integer such as ``1`` is accepted); ``init_spread`` a finite real number >= 0;
    ``init_seed`` an integer.  Python, NumPy and 0-d array numbers are accepted, booleans
    and strings are not.  Anything else raises ``ValueError`` naming the argument.  Both
    adapters call this, so they accept and reject the same values with the same messages.
    """
    components = _as_integer(num_components)
    if components is None or components < 1:
        raise ValueError(f"num_components must be a positive integer; got {num_components!r}")
    scale = _as_real(init_scale)
    if scale is None or not math.isfinite(scale) or not scale > 0:
        raise ValueError(f"init_scale must be a finite number > 0; got {init_scale!r}")
    spread = _as_real(init_spread)
    if spread is None or not math.isfinite(spread) or not spread >= 0:
        raise ValueError(f"init_spread must be a finite number >= 0; got {init_spread!r}")
    seed = _as_integer(init_seed)
    if seed is None:
        raise ValueError(f"init_seed must be an integer; got {init_seed!r}")
    return components, scale, spread, seed


def learn_weights_setting(learn_weights: bool) -> bool:
    """The autoguides' ``learn_weights`` checked: ``True`` or ``False`` (NumPy booleans
    accepted); anything else raises ``ValueError`` naming the argument, in both adapters."""
    kind = type(learn_weights)
    if isinstance(learn_weights, bool) or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")):
        return bool(learn_weights)
    raise ValueError(f"learn_weights must be True or False; got {learn_weights!r}")


def cdf_gradient_settings(cdf_gradient: str, cdf_gradient_samples: int) -> int:
    """The distributions' ``cdf_gradient`` and ``cdf_gradient_samples`` options checked: a
    ``ValueError`` naming the option for a ``cdf_gradient`` not in
    :data:`shared_math.sampled.CDF_GRADIENT_CHOICES` or a ``cdf_gradient_samples`` that is not a
    positive integer; returns ``cdf_gradient_samples`` as an ``int``.  Both adapters call this."""
    from .sampled import CDF_GRADIENT_CHOICES

    if not isinstance(cdf_gradient, str) or cdf_gradient not in CDF_GRADIENT_CHOICES:
        raise ValueError(f"cdf_gradient must be one of {CDF_GRADIENT_CHOICES}; got {cdf_gradient!r}")
    samples = _as_integer(cdf_gradient_samples)
    if samples is None or samples < 1:
        raise ValueError(f"cdf_gradient_samples must be a positive integer; got {cdf_gradient_samples!r}")
    return samples


def _as_integer(value):
    """``value`` as an ``int`` if it is an integer (``operator.index``), else ``None``."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _as_real(value):
    """``value`` as a ``float`` if it is a real number (not a bool or a string), else ``None``."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
