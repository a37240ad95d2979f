r"""Sample-gradient estimators of factorized mixtures, and their registry.

A draw :math:`x` of the mixture is a function of the parameters :math:`\theta` (``locs``
:math:`\mu`, ``scales`` :math:`\sigma`, ``logits`` :math:`\ell`) and of fixed randomness.
Each estimator gives the derivative of that draw in reverse mode (``*_vjp``: cotangent
:math:`g = \partial L/\partial x` in, :math:`(\bar\mu,\bar\sigma,\bar\ell)` out, summed to the
parameters' shapes) and in forward mode (``*_jvp``: tangents in, :math:`\dot x` out).  All
three are unbiased for :math:`\nabla_\theta E[h(x)]`, for every component family of
:mod:`shared_math.families`, and all take the ``logits`` gradient from Graves' implicit
gradient (his Eq. 22):

* ``"implicit"``: Graves (2016) Eq. 6 made multivariate, for every parameter
  (:func:`implicit_vjp`): the draw is held fixed through its distributional transform;
* ``"hybrid"``: the gradient through the chosen component, :math:`x = \mu_k + \sigma_k\varepsilon`
  (:func:`hybrid_vjp`);
* ``"rao_blackwell"``: that gradient averaged over the component given :math:`x`
  (:func:`rao_blackwell_vjp`), the default.

:data:`ESTIMATORS` is the registry the adapters, benchmarks and tests read;
:data:`AUTO_ESTIMATOR` is what ``"auto"`` means, with its evidence.  The sweeps behind
them are in :mod:`shared_math._sweeps`; the derivation is in ``docs/design.md``.

Reference: A. Graves, "Stochastic Backpropagation through Mixture Density Distributions",
arXiv:1607.05690 (2016).
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable, NamedTuple

from ._backend import promote, subnormals_flushed
from ._sweeps import (
    event_block_shape,
    event_blocks,
    forward_sweep,
    join_event_blocks,
    make_layout,
    reverse_sweep,
    scaled_transform_tangent,
    sum_to_shape,
    sweep_terms,
)
from .mixture import family_and_shape


def _estimator_function(function):
    """Common front of every vjp/jvp: the array arguments (positional or by name; omitted
    tangents are ``None``) and ``shape_params`` promoted to one namespace and floating dtype,
    the family looked up, and subnormal results flushed to zero where the backend allows it
    (:func:`~shared_math._backend.subnormals_flushed`)."""
    array_names = [
        name for name, parameter in inspect.signature(function).parameters.items() if parameter.kind is parameter.POSITIONAL_OR_KEYWORD
    ]

    @functools.wraps(function)
    def wrapper(*args, family="normal", shape_params=(), xp=None, **named):
        unknown = set(named) - set(array_names[len(args) :])
        if unknown or len(args) > len(array_names):
            raise TypeError(f"{function.__name__}() got unexpected arguments {sorted(unknown) or args[len(array_names):]}")
        arrays = list(args) + [named.get(name) for name in array_names[len(args) :]]
        family, shape_params = family_and_shape(family, shape_params)
        xp, promoted = promote(*arrays, *shape_params, xp=xp)
        arrays, shape_params = promoted[: len(arrays)], tuple(promoted[len(arrays) :])
        with subnormals_flushed(xp):
            return function(*arrays, family=family, shape_params=shape_params, xp=xp)

    return wrapper


@_estimator_function
def implicit_vjp(x, locs, scales, logits, cotangent, *, family, shape_params, xp):
    r"""Reverse-mode implicit gradient: ``(locs_bar, scales_bar, logits_bar)``.

    :math:`\bar\theta = (\partial L/\partial x)\,\mathrm{d}x/\mathrm{d}\theta` for samples
    ``x`` (shape ``(..., D)``) held fixed through their distributional transform, with
    ``cotangent`` :math:`\partial L/\partial x` of the same shape.  Results have the
    parameters' shapes (summed over sample and broadcast dimensions).  O(N·K·D) time and
    memory; formulas in :mod:`shared_math._sweeps`.  :math:`\bar\mu` of the most
    responsible component is taken from :math:`\sum_k\bar\mu_{kd} = g_d` (moving every
    component by :math:`\delta` moves the sample by :math:`\delta`), since its two
    :math:`\gamma_kE_k` terms cancel in float32.

    ``family`` (a :mod:`~shared_math.families` name or instance, default ``"normal"``) and
    ``shape_params`` (its shape parameters, ``(..., K, D)``-broadcastable arrays) select the
    component family, in this and every other estimator.
    """
    layout = make_layout(x, locs, scales, logits, xp, shape_params)
    terms = sweep_terms(x, locs, scales, logits, xp, layout, family=family, shape_params=shape_params)
    cotangent_t = layout.point(cotangent)
    u, carry_before, final_carry = reverse_sweep(terms, cotangent_t, xp)
    cotangent_t = xp.broadcast_to(cotangent_t, tuple(u.shape))
    locs_pieces, scales_pieces = [], []
    for start, stop in event_blocks(terms.z.shape, xp):  # no full-size temporaries
        z = terms.z[start:stop, ...]
        neg_score = terms.neg_score[start:stop, ...]
        inv_scales = terms.inv_scales[start:stop, ...]
        responsibilities = terms.responsibilities[start:stop, ...]
        carry = carry_before[start:stop, ...]
        locs_bar = xp.expand_dims(u[start:stop, ...], axis=1) * responsibilities - (neg_score * inv_scales) * carry
        # For the most responsible component the two gamma_k E_k terms (one inside u) cancel;
        # there mu_bar is replaced through sum_k mu_bar_kd = g_d (ties share the correction).
        largest = xp.astype(responsibilities == xp.max(responsibilities, axis=1, keepdims=True), z.dtype)
        correction = (cotangent_t[start:stop, ...] - xp.sum(locs_bar, axis=1)) / xp.sum(largest, axis=1)
        locs_bar = locs_bar + largest * xp.expand_dims(correction, axis=1)
        # sigma_bar = u r z + E (1 + z psi)/sigma = z mu_bar + E / sigma.
        scales_bar = z * locs_bar + carry * inv_scales
        locs_pieces.append(layout.parameter(locs_bar, event_block_shape(locs.shape, start, stop)))
        scales_pieces.append(layout.parameter(scales_bar, event_block_shape(scales.shape, start, stop)))
    return (
        join_event_blocks(locs_pieces, locs.shape, xp),
        join_event_blocks(scales_pieces, scales.shape, xp),
        layout.weights_parameter(-final_carry, logits.shape),
    )


@_estimator_function
def implicit_jvp(x, locs, scales, logits, locs_dot=None, scales_dot=None, logits_dot=None, *, family, shape_params, xp):
    r"""Forward-mode implicit gradient :math:`\dot x = -J^{-1}\,\partial_\theta T\,\dot\theta`.

    Tangents have the parameters' shapes (``None`` means zero); the result has the
    broadcast sample shape ``(..., D)``.  One forward sweep, O(N·K·D).
    """
    layout = make_layout(x, locs, scales, logits, xp, shape_params)
    direct_terms = locs_dot is not None or scales_dot is not None  # read r_kd at every d
    terms = sweep_terms(
        x, locs, scales, logits, xp, layout, all_responsibilities=direct_terms, family=family, shape_params=shape_params
    )
    scaled = scaled_transform_tangent(terms, layout, locs_dot, scales_dot, logits_dot, xp)
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


@_estimator_function
def hybrid_vjp(x, locs, scales, logits, component_one_hot, noise, cotangent, *, family, shape_params, xp):
    r"""The ``"hybrid"`` estimator: chosen-component gradient for ``locs``/``scales``,
    implicit gradient (Graves Eq. 22, via :func:`implicit_vjp`'s sweep) for ``logits``.

    ``x`` must be the draw ``sample_from_noise(locs, scales, component_one_hot, noise)``, with
    ``noise`` from the standardized family.
    """
    layout = make_layout(x, locs, scales, logits, xp, shape_params)
    terms = sweep_terms(
        x, locs, scales, logits, xp, layout, all_responsibilities=False, family=family, shape_params=shape_params
    )
    final_carry = reverse_sweep(terms, layout.point(cotangent), xp, collect=False)
    locs_bar, scales_bar = chosen_component_vjp(component_one_hot, noise, cotangent, locs.shape, scales.shape, xp=xp)
    return locs_bar, scales_bar, layout.weights_parameter(-final_carry, logits.shape)


@_estimator_function
def hybrid_jvp(
    x, locs, scales, logits, component_one_hot, noise, locs_dot=None, scales_dot=None, logits_dot=None, *, family, shape_params, xp
):
    r"""Forward mode of :func:`hybrid_vjp`: :math:`\dot x = \dot\mu_k + \dot\sigma_k\varepsilon + \dot x^{\text{implicit}}(\dot\ell)`."""
    chosen = component_one_hot[..., None]
    x_dot = xp.zeros_like(x + xp.sum(chosen * locs, axis=-2))
    if locs_dot is not None:
        x_dot = x_dot + xp.sum(chosen * locs_dot, axis=-2)
    if scales_dot is not None:
        x_dot = x_dot + xp.sum(chosen * scales_dot, axis=-2) * noise
    if logits_dot is not None:
        x_dot = x_dot + implicit_jvp(
            x, locs, scales, logits, None, None, logits_dot, family=family, shape_params=shape_params, xp=xp
        )
    return x_dot


@_estimator_function
def rao_blackwell_vjp(x, locs, scales, logits, cotangent, *, family, shape_params, xp):
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
    the implicit gradient.  ``logits_bar`` as in :func:`implicit_vjp` (Graves Eq. 22).  The
    same velocities hold for every location-scale family (with :math:`N` the component
    density and :math:`z` its standardized point).
    """
    layout = make_layout(x, locs, scales, logits, xp, shape_params)
    terms = sweep_terms(
        x, locs, scales, logits, xp, layout, all_responsibilities=False, family=family, shape_params=shape_params
    )
    cotangent_t = layout.point(cotangent)
    final_carry = reverse_sweep(terms, cotangent_t, xp, collect=False)
    locs_pieces, scales_pieces = [], []
    for start, stop in event_blocks(terms.z.shape, xp):  # no full-size temporaries
        locs_bar = terms.responsibilities * xp.expand_dims(cotangent_t[start:stop, ...], axis=1)  # r_k(x) g_d
        locs_pieces.append(layout.parameter(locs_bar, event_block_shape(locs.shape, start, stop)))
        scales_pieces.append(layout.parameter(locs_bar * terms.z[start:stop, ...], event_block_shape(scales.shape, start, stop)))
    return (
        join_event_blocks(locs_pieces, locs.shape, xp),
        join_event_blocks(scales_pieces, scales.shape, xp),
        layout.weights_parameter(-final_carry, logits.shape),
    )


@_estimator_function
def rao_blackwell_jvp(x, locs, scales, logits, locs_dot=None, scales_dot=None, logits_dot=None, *, family, shape_params, xp):
    r"""Forward mode of :func:`rao_blackwell_vjp`:
    :math:`\dot x_d = \sum_k r_k(x)(\dot\mu_{kd} + z_{kd}\dot\sigma_{kd}) + \dot x_d^{\text{implicit}}(\dot\ell)`."""
    layout = make_layout(x, locs, scales, logits, xp, shape_params)
    terms = sweep_terms(
        x, locs, scales, logits, xp, layout, all_responsibilities=False, family=family, shape_params=shape_params
    )
    x_dot = xp.zeros_like(terms.z[:, 0, ...])
    if logits_dot is not None:
        x_dot = forward_sweep(terms, scaled_transform_tangent(terms, layout, None, None, logits_dot, xp), xp)
    direct = xp.zeros_like(terms.z)
    if locs_dot is not None:
        direct = direct + layout.components(locs_dot)
    if scales_dot is not None:
        direct = direct + terms.z * layout.components(scales_dot)
    x_dot = x_dot + xp.sum(terms.responsibilities[-1:, ...] * direct, axis=1)
    return layout.point_back(x_dot)


class Estimator(NamedTuple):
    """One sample-gradient estimator: its reverse and forward mode, whether it reads the
    draw's random inputs (``component_one_hot``, ``noise``), and a one-line summary."""

    vjp: Callable
    jvp: Callable
    uses_draw: bool
    summary: str


#: The registry of estimators, by name (what ``estimator=`` accepts besides ``"auto"``).
ESTIMATORS = {
    "implicit": Estimator(
        implicit_vjp, implicit_jvp, False, "Graves' implicit gradient (Eq. 6) for every parameter"
    ),
    "hybrid": Estimator(
        hybrid_vjp, hybrid_jvp, True, "through the chosen component for locs/scales; implicit for logits"
    ),
    "rao_blackwell": Estimator(
        rao_blackwell_vjp,
        rao_blackwell_jvp,
        False,
        "the chosen-component gradient averaged over the component given x; implicit for logits",
    ),
}

#: Every accepted value of ``estimator=``.
ESTIMATOR_CHOICES = ("auto",) + tuple(ESTIMATORS)

#: What ``estimator="auto"`` resolves to, for every event size, component family and
#: parameter.  Evidence (``benchmarks/variance/``, written up in ``docs/estimators.md``):
#: for locs/scales the Rao-Blackwellised chosen-component gradient is never noisier than
#: ``"hybrid"`` (it is its conditional expectation given x), equals ``"implicit"`` at D = 1,
#: and stays within about 1.2x of the better of the two everywhere measured (D = 1..128,
#: K = 2, 8, overlapping and separated components; worst 2x on a random D = 2 mixture),
#: while the implicit locs/scales gradient is up to ~10^3x noisier (and heavy-tailed) for
#: separated components and ``"hybrid"`` up to ~7x noisier for overlapping ones.  For
#: Student-t (df = 3), Gumbel and Laplace components (cosine objective, D = 1..32) it is
#: within 1.04x of the better of the two, as for the Normal ("Other component families").
AUTO_ESTIMATOR = "rao_blackwell"


def resolve_estimator(estimator):
    """The concrete estimator name (a key of :data:`ESTIMATORS`) for ``estimator``
    (``"auto"`` gives :data:`AUTO_ESTIMATOR`); ``ValueError`` naming the choices otherwise."""
    if estimator == "auto":
        return AUTO_ESTIMATOR
    if not isinstance(estimator, str) or estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATOR_CHOICES}; got {estimator!r}")
    return estimator


def sample_vjp(
    estimator, x, locs, scales, logits, component_one_hot, noise, cotangent, *, family="normal", shape_params=(), xp=None
):
    """``(locs_bar, scales_bar, logits_bar)`` of a draw ``x`` under ``estimator`` (any of
    :data:`ESTIMATOR_CHOICES`).

    ``component_one_hot`` and ``noise`` are the draw's random inputs (read by ``"hybrid"``).
    """
    entry = ESTIMATORS[resolve_estimator(estimator)]
    options = {"family": family, "shape_params": shape_params, "xp": xp}
    if entry.uses_draw:
        return entry.vjp(x, locs, scales, logits, component_one_hot, noise, cotangent, **options)
    return entry.vjp(x, locs, scales, logits, cotangent, **options)


def sample_jvp(
    estimator,
    x,
    locs,
    scales,
    logits,
    component_one_hot,
    noise,
    locs_dot=None,
    scales_dot=None,
    logits_dot=None,
    *,
    family="normal",
    shape_params=(),
    xp=None,
):
    """Tangent of a draw ``x`` under ``estimator`` (forward mode of :func:`sample_vjp`)."""
    entry = ESTIMATORS[resolve_estimator(estimator)]
    options = {"family": family, "shape_params": shape_params, "xp": xp}
    if entry.uses_draw:
        return entry.jvp(x, locs, scales, logits, component_one_hot, noise, locs_dot, scales_dot, logits_dot, **options)
    return entry.jvp(x, locs, scales, logits, locs_dot, scales_dot, logits_dot, **options)
