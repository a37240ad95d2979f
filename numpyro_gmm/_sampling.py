r"""Differentiable draws from a diagonal Gaussian mixture in JAX: the gradient glue.

The random draw stays outside every custom-derivative function.  A component
:math:`k \sim \mathrm{Categorical}(\pi)` and noise :math:`\varepsilon \sim N(0, I)` are drawn
with ``jax.random``; the point :math:`x_0 = \mu_k + \sigma_k\varepsilon` is computed without
gradient; then an identity-valued :func:`jax.custom_jvp` function of
:math:`(x_0, \mu, \sigma, \ell)` attaches the derivative of the sample with respect to the
parameters:

* ``"implicit"`` (:func:`attach_implicit`): the tangent is Graves' implicit gradient
  (Graves 2016, Eq. 6, made multivariate: :math:`J\,\dot x = -\partial_\theta T\,\dot\theta`
  with :math:`T` the distributional transform), computed by
  :func:`shared_math.implicit_jvp` in one O(K·D) forward sweep per sample.  JAX transposes
  this linear rule for reverse mode.
* ``"rao_blackwell"`` (:func:`attach_rao_blackwell`): like ``"implicit"`` with the tangent
  of :func:`shared_math.rao_blackwell_jvp` (the chosen-component derivative averaged over
  the component given :math:`x`, responsibilities :math:`r_k(x)`; implicit for ``logits``).
* ``"hybrid"`` (:func:`attach_logits_implicit`): :math:`x = \mu_k + \sigma_k\varepsilon`
  keeps its ordinary autodiff for ``locs``/``scales`` (the gradient through the chosen
  component) and the rule adds only the implicit tangent of the ``logits`` (Graves Eq. 22,
  through :func:`shared_math.implicit_jvp` with ``logits_dot`` alone).

**Second derivatives.**  Inside each rule the primal output is computed by calling the
custom function itself, and the tangent is evaluated at *that* output.  When JAX
differentiates the rule (``jacfwd(jacrev(...))``, Hessian-vector products), the
dependence of the tangent on :math:`x(\theta)` is then differentiated through the same
rule, so for ``"implicit"`` the second derivative is the exact pathwise Hessian of the
sample, :math:`\mathrm{d}^2 x/\mathrm{d}\theta^2` at fixed uniform noise :math:`u = T(x;\theta)`.
For ``"hybrid"`` and ``"rao_blackwell"`` it is the derivative of a sum of two different
first-order estimators (chosen-component or its average for ``locs``/``scales``, implicit
for ``logits``), which is *not* the Hessian of any single sampling path (not even
symmetric); use ``"implicit"`` when second derivatives matter.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp

import shared_math


def _identity_with_tangent(tangent, doc):
    """A ``jax.custom_jvp`` identity ``(x0, locs, scales, logits) -> x0`` whose tangent is
    ``tangent(x, locs, scales, logits, locs_dot, scales_dot, logits_dot)``.

    ``x0`` (shape ``(..., D)``) must be a draw from the mixture with these parameters,
    carried without gradient; ``x0`` itself gets no tangent (the noise is held fixed).  The
    rule computes its primal through the custom function itself and evaluates the tangent
    at that primal, so when JAX differentiates the rule, d(tangent)/dx is chained through
    the same rule (correct higher derivatives).
    """

    @jax.custom_jvp
    def attach(x0, locs, scales, logits):
        return x0

    @attach.defjvp
    def _attach_jvp(primals, tangents):
        x0, locs, scales, logits = primals
        _, locs_dot, scales_dot, logits_dot = tangents
        x = attach(x0, locs, scales, logits)
        return x, tangent(x, locs, scales, logits, locs_dot, scales_dot, logits_dot)

    attach.__doc__ = doc
    return attach


attach_implicit = _identity_with_tangent(
    shared_math.implicit_jvp,
    "Identity in ``x0`` whose derivative w.r.t. the parameters is the implicit gradient "
    "(:func:`shared_math.implicit_jvp`).",
)
attach_rao_blackwell = _identity_with_tangent(
    shared_math.rao_blackwell_jvp,
    "Identity in ``x0`` whose derivative is the ``\"rao_blackwell\"`` estimator "
    "(:func:`shared_math.rao_blackwell_jvp`: the chosen-component derivative averaged over the "
    "component given ``x``, plus the implicit ``logits`` derivative).",
)


def _identity_adding_logits_tangent(implicit_jvp, doc):
    """A ``jax.custom_jvp`` identity ``(x, locs, scales, logits) -> x`` that passes ``x``'s own
    tangent through and adds ``implicit_jvp(x, locs, scales, logits, None, None, logits_dot)``
    (the implicit tangent of the weights alone).  ``implicit_jvp``: the family's implicit JVP
    (:func:`shared_math.implicit_jvp`, :func:`shared_math.full_covariance_implicit_jvp`)."""

    @jax.custom_jvp
    def attach(x, locs, scales, logits):
        return x

    @attach.defjvp
    def _attach_jvp(primals, tangents):
        x, locs, scales, logits = primals
        x_dot, _, _, logits_dot = tangents
        x_out = attach(x, locs, scales, logits)
        return x_out, x_dot + implicit_jvp(x_out, locs, scales, logits, None, None, logits_dot)

    attach.__doc__ = doc
    return attach


attach_logits_implicit = _identity_adding_logits_tangent(
    shared_math.implicit_jvp,
    """Identity in ``x`` that adds the implicit gradient with respect to ``logits`` only.

    ``x = sample_from_noise(locs, scales, one_hot, noise)`` keeps its own (chosen-component)
    derivative with respect to ``locs`` and ``scales``; this rule passes it through and adds
    :math:`\\dot x^{\\text{implicit}}(\\dot\\ell)` (Graves Eq. 22 in forward mode).
    """,
)


def draw_component_and_noise(key, logits, sample_batch_shape, event_size, dtype):
    """The random part of an ancestral draw, with no gradient.

    Returns ``(component_one_hot, noise)`` of shapes ``sample_batch_shape + (K,)`` and
    ``sample_batch_shape + (D,)``: the component is :math:`\arg\max_k(\ell_k + g_k)` with
    Gumbel noise :math:`g` (what ``jax.random.categorical`` does), the noise is standard
    normal.  Both are drawn as flat vectors and reshaped: XLA on CPU compiles the
    threefry generator for a flat shape several times faster than for a many-dimensional one.
    """
    key_component, key_noise = jax.random.split(key)
    sample_batch_shape = tuple(sample_batch_shape)
    num_components = logits.shape[-1]
    size = math.prod(sample_batch_shape)
    gumbel = jax.random.gumbel(key_component, (size * num_components,), dtype)
    gumbel = jnp.reshape(gumbel, sample_batch_shape + (num_components,))
    component = jnp.argmax(jax.lax.stop_gradient(logits) + gumbel, axis=-1)
    component_one_hot = shared_math.one_hot(component, num_components, dtype)
    noise = jax.random.normal(key_noise, (size * event_size,), dtype)
    return component_one_hot, jnp.reshape(noise, sample_batch_shape + (event_size,))


@partial(jax.jit, static_argnames=("sample_shape", "estimator"))
def reparameterized_sample(key, locs, scales, logits, sample_shape, estimator):
    """A differentiable draw of shape ``sample_shape + batch_shape + (D,)``.

    ``locs``/``scales`` have shape ``batch_shape + (K, D)`` and ``logits``
    ``batch_shape + (K,)`` (already broadcast, one floating dtype); ``sample_shape`` is a
    tuple and ``estimator`` is ``"implicit"``, ``"hybrid"`` or ``"rao_blackwell"`` (already
    resolved).  Jitted
    as a whole (one compilation per shape instead of one per primitive when called eagerly);
    inside ``jit``/``grad``/``vmap`` it is traced through like any other function.
    """
    batch_shape = locs.shape[:-2]
    event_size = locs.shape[-1]
    sample_batch_shape = tuple(sample_shape) + tuple(batch_shape)
    component_one_hot, noise = draw_component_and_noise(key, logits, sample_batch_shape, event_size, locs.dtype)
    if estimator == "hybrid":
        x_direct = shared_math.sample_from_noise(locs, scales, component_one_hot, noise)
        return attach_logits_implicit(x_direct, locs, scales, logits)
    attach = {"implicit": attach_implicit, "rao_blackwell": attach_rao_blackwell}.get(estimator)
    if attach is None:
        raise ValueError(f"estimator must be 'implicit', 'hybrid' or 'rao_blackwell' here; got {estimator!r}")
    x0 = jax.lax.stop_gradient(shared_math.sample_from_noise(locs, scales, component_one_hot, noise))
    return attach(x0, locs, scales, logits)


#: :func:`shared_math.log_prob`, :func:`shared_math.mean` and :func:`shared_math.variance`,
#: jitted as wholes (see :func:`reparameterized_sample`).
mixture_log_prob = jax.jit(shared_math.log_prob)
mixture_mean = jax.jit(shared_math.mean)
mixture_variance = jax.jit(shared_math.variance)


@partial(jax.jit, static_argnames=("batch_shape", "dtype"))
def broadcast_parameters(locs, scales, logits, batch_shape, dtype):
    """``(locs, scales, logits)`` as ``dtype``, broadcast to ``batch_shape + (K, D)`` and
    ``batch_shape + (K,)`` (shapes already checked by :func:`shared_math.mixture_shapes`)."""
    num_components, event_size = locs.shape[-2:]
    component_shape = tuple(batch_shape) + (num_components, event_size)
    return (
        jnp.broadcast_to(jnp.asarray(locs, dtype), component_shape),
        jnp.broadcast_to(jnp.asarray(scales, dtype), component_shape),
        jnp.broadcast_to(jnp.asarray(logits, dtype), tuple(batch_shape) + (num_components,)),
    )


def common_dtype(*arrays):
    """The floating dtype shared by ``arrays`` (JAX's promotion, at least float32)."""
    dtype = jnp.result_type(*arrays)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(dtype, jnp.float32)
    return dtype
