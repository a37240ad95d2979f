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
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ._backend import promote, subnormals_flushed
from ._sweeps import (
    event_block_shape,
    event_blocks,
    final_responsibility_terms,
    forward_sweep,
    join_event_blocks,
    make_layout,
    reverse_sweep,
    scaled_transform_tangent,
    sum_to_shape,
    sweep_terms,
)
from ._typing import Array, Namespace
from .families import LocationScaleFamily
from .mixture import family_and_shape
from .sampled import component_velocities, noise_kind, resolve_cdf_gradient, samples_location_scale


class CDFGradient(NamedTuple):
    """How an estimator differentiates the component CDFs in their parameters (resolved):
    ``method`` (``"exact"``, ``"sampled"`` or ``"rejection"``, :mod:`shared_math.sampled`), its
    inner ``noise`` (``(M, ..., K, D)`` uniforms or standardized draws; ``None`` for
    ``"exact"``) and whether the ``loc``/``scale`` velocities are sampled too
    (:func:`shared_math.sampled.samples_location_scale`)."""

    method: str
    noise: Array | None
    location_scale: bool


def _estimator_function(function: Callable[..., Any]) -> Callable[..., Any]:
    """Common front of every vjp/jvp: the array arguments (positional or by name; omitted
    tangents are ``None``), ``shape_params``, ``shape_dots`` and ``cdf_noise`` promoted to one
    namespace and floating dtype, the family looked up, ``cdf_gradient`` resolved
    (:func:`shared_math.sampled.resolve_cdf_gradient`) into a :class:`CDFGradient` (``None``
    when not asked for: shape parameters held fixed, the 3-tuple API), and subnormal results
    flushed to zero where the backend allows it
    (:func:`~shared_math._backend.subnormals_flushed`)."""
    array_names = [
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind is parameter.POSITIONAL_OR_KEYWORD
    ]
    takes_tangents = "shape_dots" in inspect.signature(function).parameters

    @functools.wraps(function)
    def wrapper(
        *args,
        family="normal",
        shape_params=(),
        cdf_gradient=None,
        cdf_noise=None,
        shape_dots=None,
        logits_gradient=True,
        xp=None,
        **named,
    ):
        unknown = set(named) - set(array_names[len(args) :])
        if unknown or len(args) > len(array_names):
            raise TypeError(
                f"{function.__name__}() got unexpected arguments {sorted(unknown) or args[len(array_names) :]}"
            )
        if shape_dots is not None and not takes_tangents:
            raise TypeError(f"{function.__name__}() got unexpected argument 'shape_dots'")
        if logits_gradient is not True and takes_tangents:
            raise TypeError(f"{function.__name__}() got unexpected argument 'logits_gradient' (pass logits_dot=None)")
        arrays = list(args) + [named.get(name) for name in array_names[len(args) :]]
        family, shape_params = family_and_shape(family, shape_params)
        shape_dots = tuple(shape_dots) if shape_dots is not None else ()
        if shape_dots and len(shape_dots) != len(shape_params):
            raise ValueError(f"shape_dots needs one tangent (or None) per shape parameter {family.shape_names}")
        xp, promoted = promote(*arrays, *shape_params, *shape_dots, cdf_noise, xp=xp)
        count = len(arrays)
        arrays = promoted[:count]
        shape_params = tuple(promoted[count : count + len(shape_params)])
        shape_dots = tuple(promoted[count + len(shape_params) : -1])
        cdf_noise = promoted[-1]
        if cdf_gradient is None and any(d is not None for d in shape_dots):
            cdf_gradient = "auto"
        cdf = None
        if cdf_gradient is not None:
            method = resolve_cdf_gradient(cdf_gradient, family, xp)
            if noise_kind(method) is not None and cdf_noise is None:
                raise ValueError(f"cdf_gradient={method!r} needs cdf_noise, shape (M, ..., K, D)")
            noise = cdf_noise if noise_kind(method) is not None else None
            cdf = CDFGradient(method, noise, samples_location_scale(cdf_gradient, family))
        options = {"family": family, "shape_params": shape_params, "cdf": cdf, "xp": xp}
        if takes_tangents:
            options["shape_dots"] = shape_dots
        else:
            options["logits_gradient"] = bool(logits_gradient)
        with subnormals_flushed(xp):
            return function(*arrays, **options)

    # functions have no declared __signature__ attribute; inspect reads it when set
    wrapper.__signature__ = _public_signature(function, takes_tangents)  # type: ignore[attr-defined]
    return wrapper


def _public_signature(function: Callable[..., Any], takes_tangents: bool) -> inspect.Signature:
    """The signature callers see (``inspect``, the API docs): the array arguments of
    ``function`` and the keywords of :func:`_estimator_function`'s front, not the internal
    ``family``/``cdf`` it passes on."""
    internal = inspect.signature(function)
    keyword = inspect.Parameter.KEYWORD_ONLY
    arrays = [p for p in internal.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    options = [
        inspect.Parameter("family", keyword, default="normal", annotation="str | LocationScaleFamily"),
        inspect.Parameter("shape_params", keyword, default=(), annotation="Sequence[Array]"),
        inspect.Parameter("cdf_gradient", keyword, default=None, annotation="str | None"),
        inspect.Parameter("cdf_noise", keyword, default=None, annotation="Array | None"),
    ]
    if takes_tangents:
        options.append(
            inspect.Parameter("shape_dots", keyword, default=None, annotation="Sequence[Array | None] | None")
        )
    else:
        options.append(inspect.Parameter("logits_gradient", keyword, default=True, annotation="bool"))
    options.append(inspect.Parameter("xp", keyword, default=None, annotation="Namespace | None"))
    return internal.replace(parameters=arrays + options)


def _velocity_terms(z, layout, scales, family, shape_params, cdf, xp):
    r"""``(loc, scale, shape_velocities, shape_scores)`` in the internal layout ``(D, K, ...)``:
    the standardized ``loc``/``scale`` velocities (``None``: closed forms 1 and :math:`z`), the
    velocities of the sample in each shape parameter :math:`V_\theta = \sigma v_\theta`, and the
    scores :math:`\partial_\theta\log g(z)` (:mod:`shared_math.sampled`)."""
    shape_t = tuple(layout.components(p) for p in shape_params)
    noise = None
    if cdf.noise is not None:
        noise = [layout.components(cdf.noise[m, ...]) for m in range(cdf.noise.shape[0])]
    velocities = component_velocities(
        family, z, shape_t, method=cdf.method, noise=noise, location_scale=cdf.location_scale, xp=xp
    )
    scales_t = layout.components(scales)
    shape_velocities = tuple(scales_t * v for v in velocities.shape)
    return velocities.loc, velocities.scale, shape_velocities, tuple(family.shape_scores(z, shape_t, xp))


def _with_shape(result, cdf, shape_bars):
    """The 3-tuple ``result``, plus ``shape_bars`` when ``cdf`` was asked for."""
    return tuple(result) if cdf is None else tuple(result) + (tuple(shape_bars),)


@_estimator_function
def implicit_vjp(
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    cotangent: Array,
    *,
    family: LocationScaleFamily,
    shape_params: tuple[Array, ...],
    cdf: CDFGradient | None,
    logits_gradient: bool,
    xp: Namespace,
) -> tuple[Array, ...]:
    r"""Reverse-mode implicit gradient: ``(locs_bar, scales_bar, logits_bar)``, plus
    ``shape_bars`` (a tuple, one per shape parameter) when ``cdf_gradient`` is given.

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

    **Shape parameters** (``docs/design.md`` §7).  With ``cdf_gradient`` (``"auto"``,
    ``"exact"``, ``"sampled"`` or ``"rejection"``, :func:`shared_math.sampled.resolve_cdf_gradient`)
    and, for the sampled methods, ``cdf_noise`` (``(M, ..., K, D)``: uniforms on [0, 1) for
    ``"sampled"``, standardized draws of each component for ``"rejection"``), the result has a
    fourth entry: for every shape parameter :math:`\theta`,

    .. math::

        \bar\theta_{kd} = u_d\,r_{kd}\,V_{kd} - E_{kd}\,\partial_\theta\log g(z_{kd}),

    :math:`V = \sigma v_\theta` the velocity of the component's own sample
    (:mod:`shared_math.sampled`).  With ``"sampled"``/``"rejection"`` on a family whose
    support is the real line, ``locs``/``scales`` use sampled velocities too
    (:math:`\bar\mu = u r v_\mu + E\psi/\sigma`, :math:`\bar\sigma = u r v_\sigma + E(1+z\psi)/\sigma`).
    Without ``cdf_gradient`` the shape parameters are held fixed (the 3-tuple of before).

    ``logits_gradient=False`` (in this and every other estimator) returns ``None`` for
    ``logits_bar``.  Here that saves nothing, since the ``locs``/``scales`` gradient needs
    the same sweep; :func:`rao_blackwell_vjp` and :func:`hybrid_vjp` then skip the sweep
    and every per-dimension term it reads.
    """
    layout = make_layout(x, locs, scales, logits, xp, shape_params)
    terms = sweep_terms(x, locs, scales, logits, xp, layout, family=family, shape_params=shape_params)
    cotangent_t = layout.point(cotangent)
    u, carry_before, final_carry = reverse_sweep(terms, cotangent_t, xp)
    cotangent_t = xp.broadcast_to(cotangent_t, tuple(u.shape))
    velocity = None if cdf is None else _velocity_terms(terms.z, layout, scales, family, shape_params, cdf, xp)
    locs_pieces, scales_pieces = [], []
    if velocity is not None and velocity[0] is not None:  # sampled loc/scale velocities: no exact identity
        weighted_u = xp.expand_dims(u, axis=1) * terms.responsibilities
        locs_bar = weighted_u * velocity[0] - (terms.neg_score * terms.inv_scales) * carry_before
        scales_bar = weighted_u * velocity[1] - (terms.z * terms.neg_score - 1.0) * terms.inv_scales * carry_before
        locs_pieces.append(layout.parameter(locs_bar, locs.shape))
        scales_pieces.append(layout.parameter(scales_bar, scales.shape))
        blocks = []
    else:
        blocks = event_blocks(terms.z.shape, xp)
    for start, stop in blocks:  # no full-size temporaries
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
    shape_bars = ()
    if velocity is not None:
        weighted_u = xp.expand_dims(u, axis=1) * terms.responsibilities
        shape_bars = tuple(
            layout.parameter(weighted_u * v - carry_before * score, p.shape)
            for v, score, p in zip(velocity[2], velocity[3], shape_params)
        )
    result = (
        join_event_blocks(locs_pieces, locs.shape, xp),
        join_event_blocks(scales_pieces, scales.shape, xp),
        layout.weights_parameter(-final_carry, logits.shape) if logits_gradient else None,
    )
    return _with_shape(result, cdf, shape_bars)


def _shape_tangent_terms(terms, layout, scales, family, shape_params, shape_dots, cdf, xp):
    """``(location_velocities, shape_terms)`` for :func:`~shared_math._sweeps.scaled_transform_tangent`:
    sampled ``(v_loc, v_scale)`` or ``None``, and ``[(score, velocity, dot)]`` per shape
    parameter with a tangent, all in the internal layout."""
    if cdf is None:
        return None, ()
    loc, scale, velocities, scores = _velocity_terms(terms.z, layout, scales, family, shape_params, cdf, xp)
    shape_terms = tuple(
        (score, velocity, layout.components(dot))
        for score, velocity, dot in zip(scores, velocities, shape_dots or (None,) * len(scores))
        if dot is not None
    )
    return (None if loc is None else (loc, scale)), shape_terms


@_estimator_function
def implicit_jvp(
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    locs_dot: Array | None = None,
    scales_dot: Array | None = None,
    logits_dot: Array | None = None,
    *,
    family: LocationScaleFamily,
    shape_params: tuple[Array, ...],
    shape_dots: tuple[Array | None, ...],
    cdf: CDFGradient | None,
    xp: Namespace,
) -> Array:
    r"""Forward-mode implicit gradient :math:`\dot x = -J^{-1}\,\partial_\theta T\,\dot\theta`.

    Tangents have the parameters' shapes (``None`` means zero); the result has the
    broadcast sample shape ``(..., D)``.  One forward sweep, O(N·K·D).  ``shape_dots`` (one
    tangent or ``None`` per shape parameter) with ``cdf_gradient``/``cdf_noise`` as in
    :func:`implicit_vjp` (``"auto"`` when only ``shape_dots`` is given) add

    .. math::

        \frac{\dot T_d}{f_d} \mathrel{+}= \sum_k\tilde a_{kd}\sum_{j<d}\partial_\theta\log g(z_{kj})\,\dot\theta_{kj}
        - \sum_k r_{kd}V_{kd}\dot\theta_{kd}.
    """
    layout = make_layout(x, locs, scales, logits, xp, shape_params)
    location_velocities, shape_terms = None, ()
    direct_terms = locs_dot is not None or scales_dot is not None or cdf is not None  # read r_kd at every d
    terms = sweep_terms(
        x, locs, scales, logits, xp, layout, all_responsibilities=direct_terms, family=family, shape_params=shape_params
    )
    if cdf is not None:
        location_velocities, shape_terms = _shape_tangent_terms(
            terms, layout, scales, family, shape_params, shape_dots, cdf, xp
        )
    scaled = scaled_transform_tangent(
        terms,
        layout,
        locs_dot,
        scales_dot,
        logits_dot,
        xp,
        location_velocities=location_velocities,
        shape_terms=shape_terms,
    )
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


def _weighted_velocity_bars(weights, cotangent_t, velocity, layout, locs, scales, shape_params):
    r"""``(locs_bar, scales_bar, shape_bars)`` of a velocity field ``weights_k`` :math:`\cdot V_{kd}\,e_d`:
    :math:`\bar\theta_{kd} = \text{weights}_k\,g_d\,V_{kd}` (``locs_bar``/``scales_bar`` ``None``
    where their velocities are the closed forms)."""
    weighted = weights * layout.xp.expand_dims(cotangent_t, axis=1)  # w_k g_d
    loc, scale, velocities, _ = velocity
    locs_bar = None if loc is None else layout.parameter(weighted * loc, locs.shape)
    scales_bar = None if scale is None else layout.parameter(weighted * scale, scales.shape)
    shape_bars = tuple(layout.parameter(weighted * v, p.shape) for v, p in zip(velocities, shape_params))
    return locs_bar, scales_bar, shape_bars


def _terms_and_logits_bar(x, locs, scales, logits, cotangent_t, layout, family, shape_params, logits_gradient, xp):
    r"""``(terms, logits_bar)`` for the estimators whose sweep serves the ``logits`` alone
    (``"hybrid"``, ``"rao_blackwell"``): with ``logits_gradient``, the sweep terms and
    Graves' Eq. 22 from the reverse sweep's final carry, :math:`\bar\ell_k = -\sum_d u_d\tilde a_{kd}`;
    without, only :math:`z` and :math:`r_k(x)`
    (:func:`~shared_math._sweeps.final_responsibility_terms`) and ``None``."""
    if not logits_gradient:
        return final_responsibility_terms(x, locs, scales, logits, xp, layout, family, shape_params), None
    terms = sweep_terms(
        x, locs, scales, logits, xp, layout, all_responsibilities=False, family=family, shape_params=shape_params
    )
    return terms, layout.weights_parameter(-reverse_sweep(terms, cotangent_t, xp, collect=False), logits.shape)


@_estimator_function
def hybrid_vjp(
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    component_one_hot: Array,
    noise: Array,
    cotangent: Array,
    *,
    family: LocationScaleFamily,
    shape_params: tuple[Array, ...],
    cdf: CDFGradient | None,
    logits_gradient: bool,
    xp: Namespace,
) -> tuple[Array, ...]:
    r"""The ``"hybrid"`` estimator: chosen-component gradient for ``locs``/``scales``,
    implicit gradient (Graves Eq. 22, via :func:`implicit_vjp`'s sweep) for ``logits``.

    ``x`` must be the draw ``sample_from_noise(locs, scales, component_one_hot, noise)``, with
    ``noise`` from the standardized family.  With ``cdf_gradient`` (as in :func:`implicit_vjp`)
    the shape parameters get the chosen component's own reparameterization gradient,
    :math:`\bar\theta_{kd} = [k\text{ chosen}]\,g_d V_{kd}`.
    """
    layout = make_layout(x, locs, scales, logits, xp, shape_params)
    cotangent_t = layout.point(cotangent)
    logits_bar = None
    if logits_gradient or cdf is not None:  # without either, the chosen component is all
        terms, logits_bar = _terms_and_logits_bar(
            x, locs, scales, logits, cotangent_t, layout, family, shape_params, logits_gradient, xp
        )
    locs_bar, scales_bar = chosen_component_vjp(component_one_hot, noise, cotangent, locs.shape, scales.shape, xp=xp)
    shape_bars = ()
    if cdf is not None:
        velocity = _velocity_terms(terms.z, layout, scales, family, shape_params, cdf, xp)
        chosen = layout.weights(component_one_hot)
        sampled_locs, sampled_scales, shape_bars = _weighted_velocity_bars(
            chosen, cotangent_t, velocity, layout, locs, scales, shape_params
        )
        if sampled_locs is not None:
            locs_bar, scales_bar = sampled_locs, sampled_scales
    return _with_shape((locs_bar, scales_bar, logits_bar), cdf, shape_bars)


@_estimator_function
def hybrid_jvp(
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    component_one_hot: Array,
    noise: Array,
    locs_dot: Array | None = None,
    scales_dot: Array | None = None,
    logits_dot: Array | None = None,
    *,
    family: LocationScaleFamily,
    shape_params: tuple[Array, ...],
    shape_dots: tuple[Array | None, ...],
    cdf: CDFGradient | None,
    xp: Namespace,
) -> Array:
    r"""Forward mode of :func:`hybrid_vjp`: :math:`\dot x = \dot\mu_k + \dot\sigma_k\varepsilon
    + \sum_\theta V_{k}\dot\theta_k + \dot x^{\text{implicit}}(\dot\ell)`."""
    chosen = component_one_hot[..., None]
    x_dot = xp.zeros_like(x + xp.sum(chosen * locs, axis=-2))
    velocity = None
    if cdf is not None:
        z = (x[..., None, :] - locs) / scales
        shape_b = tuple(shape_params)
        noise_m = None if cdf.noise is None else [cdf.noise[m, ...] for m in range(cdf.noise.shape[0])]
        velocity = component_velocities(
            family, z, shape_b, method=cdf.method, noise=noise_m, location_scale=cdf.location_scale, xp=xp
        )
        for v, dot in zip(velocity.shape, shape_dots or ()):
            if dot is not None:
                x_dot = x_dot + xp.sum(chosen * (scales * v * dot), axis=-2)
    location_velocity = None if velocity is None else velocity.loc
    scale_velocity = None if velocity is None else velocity.scale
    if locs_dot is not None:
        x_dot = x_dot + xp.sum(
            chosen * (locs_dot if location_velocity is None else locs_dot * location_velocity), axis=-2
        )
    if scales_dot is not None:
        if location_velocity is not None:
            x_dot = x_dot + xp.sum(chosen * (scales_dot * scale_velocity), axis=-2)
        else:
            x_dot = x_dot + xp.sum(chosen * scales_dot, axis=-2) * noise
    if logits_dot is not None:
        x_dot = x_dot + implicit_jvp(
            x, locs, scales, logits, None, None, logits_dot, family=family, shape_params=shape_params, xp=xp
        )
    return x_dot


@_estimator_function
def rao_blackwell_vjp(
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    cotangent: Array,
    *,
    family: LocationScaleFamily,
    shape_params: tuple[Array, ...],
    cdf: CDFGradient | None,
    logits_gradient: bool,
    xp: Namespace,
) -> tuple[Array, ...]:
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

    With ``cdf_gradient`` (as in :func:`implicit_vjp`) the shape parameters get
    :math:`\bar\theta_{kd} = r_k(x)\,g_d\,V_{kd}`: the velocity :math:`r_k(x)V_{kd}e_d` solves
    the continuity equation for :math:`\theta_{kd}` too, since
    :math:`\partial_d(N_{kd}V_{kd}) = -\partial_\theta N_{kd}` for the component's own velocity.

    With ``logits_gradient=False`` only :math:`z` and :math:`r_k(x)` are formed
    (:func:`~shared_math._sweeps.final_responsibility_terms`): no sweep, no tails, about the
    cost of a ``log_prob`` and its gradient.
    """
    layout = make_layout(x, locs, scales, logits, xp, shape_params)
    cotangent_t = layout.point(cotangent)
    terms, logits_bar = _terms_and_logits_bar(
        x, locs, scales, logits, cotangent_t, layout, family, shape_params, logits_gradient, xp
    )
    locs_pieces, scales_pieces = [], []
    for start, stop in event_blocks(terms.z.shape, xp):  # no full-size temporaries
        cotangent_block = xp.expand_dims(cotangent_t[start:stop, ...], axis=1)
        locs_block_shape = event_block_shape(locs.shape, start, stop)
        locs_pieces.append(
            layout.product_parameter(terms.responsibilities, cotangent_block, locs_block_shape)
        )  # r_k(x) g_d
        locs_bar = terms.responsibilities * cotangent_block
        scales_pieces.append(
            layout.parameter(locs_bar * terms.z[start:stop, ...], event_block_shape(scales.shape, start, stop))
        )
    locs_bar = join_event_blocks(locs_pieces, locs.shape, xp)
    scales_bar = join_event_blocks(scales_pieces, scales.shape, xp)
    shape_bars = ()
    if cdf is not None:
        velocity = _velocity_terms(terms.z, layout, scales, family, shape_params, cdf, xp)
        sampled_locs, sampled_scales, shape_bars = _weighted_velocity_bars(
            terms.responsibilities, cotangent_t, velocity, layout, locs, scales, shape_params
        )
        if sampled_locs is not None:
            locs_bar, scales_bar = sampled_locs, sampled_scales
    return _with_shape((locs_bar, scales_bar, logits_bar), cdf, shape_bars)


@_estimator_function
def rao_blackwell_jvp(
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    locs_dot: Array | None = None,
    scales_dot: Array | None = None,
    logits_dot: Array | None = None,
    *,
    family: LocationScaleFamily,
    shape_params: tuple[Array, ...],
    shape_dots: tuple[Array | None, ...],
    cdf: CDFGradient | None,
    xp: Namespace,
) -> Array:
    r"""Forward mode of :func:`rao_blackwell_vjp`:
    :math:`\dot x_d = \sum_k r_k(x)(\dot\mu_{kd} + z_{kd}\dot\sigma_{kd} + \sum_\theta V_{kd}\dot\theta_{kd})
    + \dot x_d^{\text{implicit}}(\dot\ell)`."""
    layout = make_layout(x, locs, scales, logits, xp, shape_params)
    if logits_dot is None:  # no sweep: z and r_k(x) only
        terms = final_responsibility_terms(x, locs, scales, logits, xp, layout, family, shape_params)
    else:
        terms = sweep_terms(
            x, locs, scales, logits, xp, layout, all_responsibilities=False, family=family, shape_params=shape_params
        )
    x_dot = xp.zeros_like(terms.z[:, 0, ...])
    if logits_dot is not None:
        x_dot = forward_sweep(terms, scaled_transform_tangent(terms, layout, None, None, logits_dot, xp), xp)
    location_velocities: Any = None
    shape_terms: Any = ()
    if cdf is not None:
        location_velocities, shape_terms = _shape_tangent_terms(
            terms, layout, scales, family, shape_params, shape_dots, cdf, xp
        )
    direct = xp.zeros_like(terms.z)
    if locs_dot is not None:
        locs_dot_t = layout.components(locs_dot)
        direct = direct + (locs_dot_t if location_velocities is None else location_velocities[0] * locs_dot_t)
    if scales_dot is not None:
        velocity = terms.z if location_velocities is None else location_velocities[1]
        direct = direct + velocity * layout.components(scales_dot)
    for _, velocity, dot in shape_terms:
        direct = direct + velocity * dot
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
    "implicit": Estimator(implicit_vjp, implicit_jvp, False, "Graves' implicit gradient (Eq. 6) for every parameter"),
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


def resolve_estimator(estimator: str) -> str:
    """The concrete estimator name (a key of :data:`ESTIMATORS`) for ``estimator``
    (``"auto"`` gives :data:`AUTO_ESTIMATOR`); ``ValueError`` naming the choices otherwise."""
    if estimator == "auto":
        return AUTO_ESTIMATOR
    if not isinstance(estimator, str) or estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATOR_CHOICES}; got {estimator!r}")
    return estimator


def sample_vjp(
    estimator: str,
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    component_one_hot: Array,
    noise: Array,
    cotangent: Array,
    *,
    family: str | LocationScaleFamily = "normal",
    shape_params: Sequence[Array] = (),
    cdf_gradient: str | None = None,
    cdf_noise: Array | None = None,
    logits_gradient: bool = True,
    xp: Namespace | None = None,
) -> tuple[Array, ...]:
    """``(locs_bar, scales_bar, logits_bar)`` of a draw ``x`` under ``estimator`` (any of
    :data:`ESTIMATOR_CHOICES`), plus ``shape_bars`` when ``cdf_gradient`` is given (see
    :func:`implicit_vjp`).

    ``component_one_hot`` and ``noise`` are the draw's random inputs (read by ``"hybrid"``).
    ``logits_gradient=False``: ``logits_bar`` is ``None``, and ``"rao_blackwell"`` and
    ``"hybrid"`` skip the sweep that only it needs (fixed mixture weights).
    """
    entry = ESTIMATORS[resolve_estimator(estimator)]
    options = {
        "family": family,
        "shape_params": shape_params,
        "cdf_gradient": cdf_gradient,
        "cdf_noise": cdf_noise,
        "logits_gradient": logits_gradient,
        "xp": xp,
    }
    if entry.uses_draw:
        return entry.vjp(x, locs, scales, logits, component_one_hot, noise, cotangent, **options)
    return entry.vjp(x, locs, scales, logits, cotangent, **options)


def sample_jvp(
    estimator: str,
    x: Array,
    locs: Array,
    scales: Array,
    logits: Array,
    component_one_hot: Array,
    noise: Array,
    locs_dot: Array | None = None,
    scales_dot: Array | None = None,
    logits_dot: Array | None = None,
    *,
    family: str | LocationScaleFamily = "normal",
    shape_params: Sequence[Array] = (),
    shape_dots: Sequence[Array | None] | None = None,
    cdf_gradient: str | None = None,
    cdf_noise: Array | None = None,
    xp: Namespace | None = None,
) -> Array:
    """Tangent of a draw ``x`` under ``estimator`` (forward mode of :func:`sample_vjp`;
    ``shape_dots`` as in :func:`implicit_jvp`)."""
    entry = ESTIMATORS[resolve_estimator(estimator)]
    options = {
        "family": family,
        "shape_params": shape_params,
        "shape_dots": shape_dots,
        "cdf_gradient": cdf_gradient,
        "cdf_noise": cdf_noise,
        "xp": xp,
    }
    if entry.uses_draw:
        return entry.jvp(x, locs, scales, logits, component_one_hot, noise, locs_dot, scales_dot, logits_dot, **options)
    return entry.jvp(x, locs, scales, logits, locs_dot, scales_dot, logits_dot, **options)
