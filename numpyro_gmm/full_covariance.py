r"""Full-covariance Gaussian mixtures for NumPyro: ``MultivariateNormalMixture`` and its autoguide.

The maths is in :mod:`shared_math.full_covariance` (derived in ``docs/design.md``, "Full
covariance"); the derivative of a draw is attached by the identity-valued ``jax.custom_jvp``
factories of :mod:`numpyro_gmm._sampling`, with the full-covariance JVPs as tangents:

* ``"implicit"``: Graves' implicit gradient, :func:`shared_math.full_covariance_implicit_jvp`
  (one :math:`O(KD^2)` forward sweep per sample, a ``lax.scan``; JAX transposes it for reverse
  mode).  The tangent is evaluated at the primal the rule itself returns, so second
  derivatives are the exact pathwise Hessian at fixed :math:`u=T(x;\theta)`.
* ``"rao_blackwell"``: :func:`shared_math.full_covariance_rao_blackwell_jvp`.
* ``"hybrid"``: :math:`x=\mu_k+L_k\varepsilon` keeps its own autodiff for ``locs``/``scale_tril``
  and the rule adds the implicit tangent of ``logits``.

Reference: A. Graves, "Stochastic Backpropagation through Mixture Density Distributions",
arXiv:1607.05690 (2016).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpyro
from jax.typing import ArrayLike
from numpyro.distributions import constraints
from numpyro.distributions.continuous import MultivariateNormal
from numpyro.distributions.distribution import Distribution, ExpandedDistribution
from numpyro.distributions.util import validate_sample
from numpyro.infer.initialization import init_to_median
from numpyro.util import not_jax_tracer

import shared_math

from ._guides import _MixtureAutoContinuous
from ._sampling import (
    FULL_COVARIANCE,
    _full_covariance_tangent,
    _identity_with_tangent,
    attach_logits_implicit,
    draw_component_and_noise,
)

attach_full_covariance_implicit = _identity_with_tangent(
    _full_covariance_tangent(shared_math.full_covariance_implicit_jvp),
    "Identity in ``x0`` whose derivative is the implicit gradient (:func:`shared_math.full_covariance_implicit_jvp`).",
)
attach_full_covariance_rao_blackwell = _identity_with_tangent(
    _full_covariance_tangent(shared_math.full_covariance_rao_blackwell_jvp),
    'Identity in ``x0`` whose derivative is ``"rao_blackwell"`` (:func:`shared_math.full_covariance_rao_blackwell_jvp`).',
)


@partial(jax.jit, static_argnames=("sample_shape", "estimator"))
def full_covariance_sample_with_component(key, locs, scale_tril, logits, sample_shape, estimator):
    """``(x, component)``: a differentiable draw of shape ``sample_shape + batch_shape + (D,)``
    and the index of its component (parameters already broadcast to ``batch_shape``;
    ``estimator`` resolved)."""
    batch_shape = locs.shape[:-2]
    sample_batch_shape = tuple(sample_shape) + tuple(batch_shape)
    component_one_hot, noise = draw_component_and_noise(key, logits, sample_batch_shape, locs.shape[-1], locs.dtype)
    component = jnp.argmax(component_one_hot, axis=-1)
    x = shared_math.full_covariance_sample_from_noise(locs, scale_tril, component_one_hot, noise)
    if estimator == "hybrid":  # x keeps its chosen-component derivative; the glue adds the logits'
        return attach_logits_implicit(FULL_COVARIANCE, x, locs, scale_tril, logits, ()), component
    attach = {"implicit": attach_full_covariance_implicit, "rao_blackwell": attach_full_covariance_rao_blackwell}[
        estimator
    ]
    return attach(FULL_COVARIANCE, jax.lax.stop_gradient(x), locs, scale_tril, logits, ()), component


def full_covariance_reparameterized_sample(key, locs, scale_tril, logits, sample_shape, estimator):
    """The draw of :func:`full_covariance_sample_with_component` alone."""
    return full_covariance_sample_with_component(key, locs, scale_tril, logits, sample_shape, estimator)[0]


@partial(jax.jit, static_argnames=("batch_shape", "dtype"))
def _broadcast_parameters(locs, scale_tril, logits, batch_shape, dtype):
    num_components, event_size = locs.shape[-2:]
    batch_shape = tuple(batch_shape)
    return (
        jnp.broadcast_to(jnp.asarray(locs, dtype), batch_shape + (num_components, event_size)),
        jnp.broadcast_to(jnp.asarray(scale_tril, dtype), batch_shape + (num_components, event_size, event_size)),
        jnp.broadcast_to(jnp.asarray(logits, dtype), batch_shape + (num_components,)),
    )


_log_prob = jax.jit(shared_math.full_covariance_log_prob)
_mean = jax.jit(shared_math.full_covariance_mean)
_covariance = jax.jit(shared_math.full_covariance_covariance)
_variance = jax.jit(shared_math.full_covariance_variance)
_component_samples = jax.jit(shared_math.full_covariance_component_samples)


class MultivariateNormalMixture(Distribution):
    r"""A finite mixture of full-covariance Normals with reparameterized samples.

    .. math::

        p(x) = \sum_{k=1}^K\pi_k\,N(x;\ \mu_k,\ L_kL_k^\top),\qquad \pi=\mathrm{softmax}(\ell).

    :meth:`sample` is differentiable with respect to ``locs``, ``scale_tril`` *and* ``logits``
    under ``grad``, ``jit``, ``vmap`` and higher derivatives (exact second derivatives for
    ``"implicit"``; see :mod:`numpyro_gmm.full_covariance`).  :math:`O(NKD^2)`, the cost of
    ``log_prob``.

    :param locs: component means, ``batch_shape + (K, D)``.
    :param scale_tril: lower-triangular Cholesky factors with a positive diagonal,
        ``batch_shape + (K, D, D)`` (``K`` may be 1); only the lower triangle is read.
    :param logits: unnormalized log weights, ``batch_shape + (K,)``.
    :param str estimator: ``"auto"``, ``"implicit"``, ``"hybrid"`` or ``"rao_blackwell"``.
    :param validate_args: check values (outside ``jit``; ``ValueError`` naming the parameter).

    **Reference:** A. Graves, arXiv:1607.05690 (2016).
    """

    arg_constraints = {
        "locs": constraints.independent(constraints.real, 2),
        "scale_tril": constraints.independent(constraints.lower_cholesky, 1),
        "logits": constraints.real_vector,
    }
    support = constraints.real_vector
    reparametrized_params = ["locs", "scale_tril", "logits"]
    pytree_data_fields = ("locs", "scale_tril", "logits")
    pytree_aux_fields = ("estimator", "resolved_estimator")

    _validate_args: bool  # set per instance in __init__ (a pytree field, kept through jit/vmap)

    def __init__(
        self,
        locs: ArrayLike,
        scale_tril: ArrayLike,
        logits: ArrayLike,
        *,
        estimator: str = "auto",
        validate_args: bool | None = None,
    ) -> None:
        locs, scale_tril, logits = (a if hasattr(a, "dtype") else jnp.asarray(a) for a in (locs, scale_tril, logits))
        batch_shape, num_components, event_size = shared_math.full_covariance_shapes(
            jnp.shape(locs), jnp.shape(scale_tril), jnp.shape(logits)
        )
        self.resolved_estimator = shared_math.resolve_full_covariance_estimator(estimator)
        self.estimator = estimator
        self.locs, self.scale_tril, self.logits = _broadcast_parameters(
            locs,
            scale_tril,
            logits,
            batch_shape=batch_shape,
            dtype=shared_math.parameter_dtype((locs, scale_tril, logits), jnp),
        )
        super().__init__(batch_shape=batch_shape, event_shape=(event_size,), validate_args=validate_args)
        self._validate_args = bool(self._validate_args)  # an instance field: kept through jit/vmap (pytree)

    @property
    def num_components(self) -> int:
        return self.locs.shape[-2]

    @property
    def mixture_probs(self) -> jax.Array:
        r""":math:`\pi`, shape ``batch_shape + (K,)``."""
        return jax.nn.softmax(self.logits, axis=-1)

    @property
    def mixture_log_weights(self) -> jax.Array:
        r""":math:`\log\pi_k`, shape ``batch_shape + (K,)``."""
        return jax.nn.log_softmax(self.logits, axis=-1)

    def validate_args(self, strict: bool = True) -> None:
        """``ValueError`` naming the parameter (:func:`shared_math.check_full_covariance_values`);
        skipped for JAX tracers unless ``strict``."""
        if all(not_jax_tracer(a) for a in (self.locs, self.scale_tril, self.logits)):
            shared_math.check_full_covariance_values(self.locs, self.scale_tril, self.logits)
        elif strict:
            raise RuntimeError("Cannot validate arguments inside jitted code.")

    def sample(self, key: jax.Array, sample_shape: Sequence[int] = ()) -> jax.Array:
        """A draw of shape ``sample_shape + batch_shape + (D,)``, differentiable w.r.t. every parameter."""
        return full_covariance_reparameterized_sample(
            key, self.locs, self.scale_tril, self.logits, tuple(sample_shape), self.resolved_estimator
        )

    def component_sample(self, key: jax.Array, sample_shape: Sequence[int] = ()) -> jax.Array:
        r"""One draw from every component, :math:`x_k=\mu_k+L_k\varepsilon_k`, shape
        ``sample_shape + batch_shape + (K, D)``, differentiable by ordinary autodiff."""
        shape = tuple(sample_shape) + tuple(self.batch_shape) + self.locs.shape[-2:]
        noise = jnp.reshape(jax.random.normal(key, (math.prod(shape),), self.locs.dtype), shape)
        return _component_samples(self.locs, self.scale_tril, noise)

    @validate_sample
    def log_prob(self, value: ArrayLike) -> jax.Array:
        return _log_prob(jnp.asarray(value), self.locs, self.scale_tril, self.logits)

    @property
    def mean(self) -> jax.Array:
        return _mean(self.locs, self.scale_tril, self.logits)

    @property
    def covariance_matrix(self) -> jax.Array:
        r""":math:`\sum_k\pi_k(L_kL_k^\top+(\mu_k-\bar\mu)(\mu_k-\bar\mu)^\top)`, ``batch_shape + (D, D)``."""
        return _covariance(self.locs, self.scale_tril, self.logits)

    @property
    def variance(self) -> jax.Array:
        return _variance(self.locs, self.scale_tril, self.logits)

    def marginal_quantiles(self, quantiles: ArrayLike) -> jax.Array:
        r"""Quantiles of each coordinate's marginal, the 1-D mixture
        :math:`\sum_k\pi_kN(\mu_{ki}, \Sigma_{k,ii})`; ``quantiles`` ``(...)``, the result
        ``(...) + batch_shape + (D,)``.  The same method as in ``pyro_gmm``
        (:func:`shared_math.full_covariance_component_scales`,
        :func:`shared_math.marginal_quantiles.marginal_quantile`)."""
        from shared_math.marginal_quantiles import marginal_quantile

        quantiles = jnp.asarray(quantiles, self.locs.dtype)
        q = jnp.reshape(quantiles, quantiles.shape + (1,) * (len(self.batch_shape) + 1))
        scales = shared_math.full_covariance_component_scales(self.scale_tril)
        result = marginal_quantile(q, self.locs, scales, self.logits)
        return jnp.broadcast_to(result, quantiles.shape + self.batch_shape + self.event_shape)

    def expand(self, batch_shape: Sequence[int]) -> MultivariateNormalMixture:
        """The same mixture with parameters broadcast to ``batch_shape`` (still a
        ``MultivariateNormalMixture``, with the same ``estimator`` and ``validate_args``)."""
        batch_shape = tuple(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        try:
            broadcast = jnp.broadcast_shapes(self.batch_shape, batch_shape)
        except ValueError:
            broadcast = None
        if broadcast != batch_shape:
            raise ValueError(f"Cannot expand a distribution of batch shape {self.batch_shape} to {batch_shape}")
        expanded = MultivariateNormalMixture(
            jnp.broadcast_to(self.locs, batch_shape + self.locs.shape[-2:]),
            jnp.broadcast_to(self.scale_tril, batch_shape + self.scale_tril.shape[-3:]),
            jnp.broadcast_to(self.logits, batch_shape + self.logits.shape[-1:]),
            estimator=self.estimator,
            validate_args=False,  # the values were checked when self was built
        )
        expanded._validate_args = self._validate_args  # log_prob keeps validating if self did
        return expanded

    def __repr__(self) -> str:
        return (
            f"MultivariateNormalMixture(batch_shape={self.batch_shape}, event_shape={self.event_shape}, "
            f"num_components={self.num_components}, estimator={self.resolved_estimator!r})"
        )


def multivariate_normal_parameters(component_distribution):
    """``(loc, scale_tril)`` of ``MultivariateNormal`` components (possibly ``expand``-ed),
    broadcast to their batch shape, or ``None``.  NumPyro converts ``covariance_matrix`` /
    ``precision_matrix`` to ``scale_tril`` by one Cholesky factorization when the components
    are built."""
    base, shape = component_distribution, component_distribution.batch_shape
    if isinstance(base, ExpandedDistribution):
        base = base.base_dist
    if not isinstance(base, MultivariateNormal):
        return None
    event_size = base.event_shape[0]
    loc = jnp.broadcast_to(base.loc, tuple(shape) + (event_size,))
    scale_tril = jnp.broadcast_to(base.scale_tril, tuple(shape) + (event_size, event_size))
    return loc, scale_tril


def swap_in_sample(key, parameters, logits, sample_shape, estimator, with_component=False):
    """The differentiable draw of a ``ReparamMixtureSameFamily`` with ``MultivariateNormal``
    components: ``parameters`` from :func:`multivariate_normal_parameters`; with
    ``with_component``, ``(x, component index)``."""
    loc, scale_tril = parameters
    batch_shape = jnp.broadcast_shapes(loc.shape[:-2], jnp.shape(logits)[:-1])
    locs, scale_tril, logits = _broadcast_parameters(
        loc,
        scale_tril,
        logits,
        batch_shape=tuple(batch_shape),
        dtype=shared_math.parameter_dtype((loc, scale_tril, logits), jnp),
    )
    x, component = full_covariance_sample_with_component(key, locs, scale_tril, logits, tuple(sample_shape), estimator)
    return (x, component) if with_component else x


class AutoMultivariateNormalMixture(_MixtureAutoContinuous):
    r"""Like :class:`numpyro.infer.autoguide.AutoMultivariateNormal`, with a mixture of
    ``num_components`` full-covariance Normals over the unconstrained latent vector :math:`z`:

    .. math::

        q(z) = \sum_{k=1}^K\pi_k\,N(z;\ \mu_k,\ L_kL_k^\top),\qquad\pi=\mathrm{softmax}(\ell).

    Parameters: ``{prefix}_locs`` ``(K, latent_dim)``, ``{prefix}_scale_tril``
    ``(K, latent_dim, latent_dim)`` with ``AutoMultivariateNormal``'s constraint
    (``scaled_unit_lower_cholesky``: a positive scale vector times a unit lower-triangular
    matrix), initialized to ``init_scale`` times the identity, and ``{prefix}_logits`` ``(K,)``.
    Symmetry breaking as :class:`~numpyro_gmm.AutoDiagonalNormalMixture`: component :math:`k`
    starts at the ``init_loc_fn`` point plus ``init_spread * init_scale`` times the offsets of
    ``shared_math.component_offsets`` (seed ``init_seed``; the same numbers as ``pyro_gmm``).
    Samples are reparameterized for all of :math:`\mu, L, \ell`
    (:class:`~numpyro_gmm.MultivariateNormalMixture`).

    :param str estimator: ``"auto"``, ``"implicit"``, ``"hybrid"`` or ``"rao_blackwell"``.
    :param bool learn_weights: ``False`` keeps the weights equal: ``{prefix}_logits`` is then
        a constant, not a parameter, and the weights' gradient and the sweep it needs are
        never formed.
    """

    scale_tril_constraint = constraints.scaled_unit_lower_cholesky

    def __init__(
        self,
        model: Callable[..., Any],
        *,
        num_components: int = 2,
        prefix: str = "auto",
        init_loc_fn: Callable[[dict[str, Any]], jax.Array | None] = init_to_median,
        init_scale: float = 0.1,
        init_spread: float = 2.0,
        init_seed: int = 0,
        estimator: str = "auto",
        learn_weights: bool = True,
    ) -> None:
        settings = shared_math.guide_settings(num_components, init_scale, init_spread, init_seed)
        self.num_components, self._init_scale, self._init_spread, self._init_seed = settings
        self.learn_weights = shared_math.learn_weights_setting(learn_weights)
        shared_math.resolve_full_covariance_estimator(estimator)  # fail early on a bad name
        self.estimator = estimator
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn)

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        offsets = shared_math.component_offsets(self.num_components, self.latent_dim, self._init_seed)
        self._init_component_locs = self._init_latent + self._init_spread * self._init_scale * jnp.asarray(
            offsets, jnp.result_type(self._init_latent)
        )

    def _get_posterior(self):
        dtype = self._init_component_locs.dtype
        locs = numpyro.param(f"{self.prefix}_locs", self._init_component_locs)
        eye = jnp.eye(self.latent_dim, dtype=dtype) * self._init_scale
        scale_tril = numpyro.param(
            f"{self.prefix}_scale_tril",
            jnp.broadcast_to(eye, (self.num_components, self.latent_dim, self.latent_dim)),
            constraint=self.scale_tril_constraint,
        )
        logits = self._logits_param(dtype)
        return MultivariateNormalMixture(locs, scale_tril, logits, estimator=self.estimator)

    def get_posterior(self, params: dict[str, jax.Array]) -> MultivariateNormalMixture:
        """The mixture posterior over the unconstrained latent vector (a :class:`MultivariateNormalMixture`)."""
        return MultivariateNormalMixture(
            params[f"{self.prefix}_locs"],
            params[f"{self.prefix}_scale_tril"],
            self._logits_of(params),
            estimator=self.estimator,
        )
