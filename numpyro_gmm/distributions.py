r"""NumPyro distributions for diagonal Gaussian mixtures with reparameterized samples.

The maths (densities, moments, the implicit gradient) is in :mod:`shared_math`; the
derivative of a sample is attached in :mod:`numpyro_gmm._sampling`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike
from numpyro.distributions import constraints, continuous
from numpyro.distributions.discrete import CategoricalLogits, CategoricalProbs
from numpyro.distributions.distribution import Distribution, ExpandedDistribution, Independent
from numpyro.distributions.mixtures import MixtureSameFamily
from numpyro.distributions.util import validate_sample
from numpyro.util import not_jax_tracer

import shared_math

from . import _sampling
from ._sampling import broadcast_parameters, reparameterized_sample, reparameterized_sample_with_component
from .full_covariance import multivariate_normal_parameters, swap_in_sample


def _is_concrete(*arrays):
    return all(not_jax_tracer(a) for a in arrays)


def _check_constant_parameters(locs, scales, logits):
    """:func:`shared_math.check_parameter_values` on the raw inputs, before any broadcast, for
    each one that is concrete: as NumPyro's own ``Distribution.validate_args`` does (under
    ``jax.ensure_compile_time_eval``), constants are checked even inside ``jit``, while
    traced values are skipped."""
    with jax.ensure_compile_time_eval():  # jnp.asarray of a constant stays concrete under jit
        concrete = [jnp.asarray(a) if not_jax_tracer(a) else None for a in (locs, scales, logits)]
        if any(a is not None for a in concrete):
            shared_math.check_parameter_values(*concrete)


class DiagNormalMixture(Distribution):
    r"""A finite mixture of diagonal Normal distributions with reparameterized samples.

    .. math::

        p(x) = \sum_{k=1}^K \pi_k \prod_{d=1}^D N(x_d;\,\mu_{kd},\,\sigma_{kd}),
        \qquad \pi = \mathrm{softmax}(\ell).

    :meth:`sample` is differentiable with respect to ``locs``, ``scales`` *and* ``logits``
    under ``jax.grad``, ``jit``, ``vmap``, ``jacfwd``/``jacrev`` and higher derivatives.  With
    ``estimator="implicit"`` the derivative is Graves' implicit gradient (Eq. 6, made
    multivariate): the sample is held fixed through its distributional transform
    :math:`T(x;\theta)=u`, so :math:`\mathrm{d}x = -J^{-1}\,\partial_\theta T\,\mathrm{d}\theta`
    with :math:`J=\partial T/\partial x` lower triangular, solved in O(K·D) per sample.  With
    ``estimator="hybrid"``, ``locs``/``scales`` get the gradient through the chosen
    component and ``logits`` the implicit one (Eq. 22); ``"rao_blackwell"`` averages the
    chosen-component gradient over the component given the sample.  All are unbiased.  ``"auto"``
    picks via :func:`shared_math.resolve_estimator` from the event size ``D``.  Second
    derivatives are the exact pathwise Hessian for ``"implicit"`` only (see
    :mod:`numpyro_gmm._sampling`).

    :param locs: component means :math:`\mu`, shape ``batch_shape + (K, D)``.
    :param scales: component standard deviations :math:`\sigma>0`, shape broadcastable to
        ``locs``.
    :param logits: unnormalized log mixture weights :math:`\ell`, shape ``batch_shape + (K,)``.
    :param str estimator: ``"auto"``, ``"implicit"``, ``"hybrid"`` or ``"rao_blackwell"``.
    :param validate_args: check parameter values (outside ``jit`` only; shapes are always
        checked).

    **Reference:** A. Graves, "Stochastic Backpropagation through Mixture Density
    Distributions", arXiv:1607.05690 (2016).
    """

    arg_constraints = {
        "locs": constraints.independent(constraints.real, 2),
        "scales": constraints.independent(constraints.positive, 2),
        "logits": constraints.real_vector,
    }
    support = constraints.real_vector
    reparametrized_params = ["locs", "scales", "logits"]
    pytree_data_fields = ("locs", "scales", "logits")
    pytree_aux_fields = ("estimator", "resolved_estimator")

    _validate_args: bool  # set per instance in __init__ (a pytree field, kept through jit/vmap)

    def __init__(
        self,
        locs: ArrayLike,
        scales: ArrayLike,
        logits: ArrayLike,
        *,
        estimator: str = "auto",
        validate_args: bool | None = None,
    ) -> None:
        batch_shape, num_components, event_size = shared_math.mixture_shapes(
            jnp.shape(locs), jnp.shape(scales), jnp.shape(logits)
        )
        self.resolved_estimator = shared_math.resolve_estimator(estimator)
        self.estimator = estimator
        if self._validate_args if validate_args is None else validate_args:
            _check_constant_parameters(locs, scales, logits)
        dtype = shared_math.parameter_dtype((locs, scales, logits), jnp)
        locs, scales, logits = (a if hasattr(a, "dtype") else jnp.asarray(a, dtype) for a in (locs, scales, logits))
        self.locs, self.scales, self.logits = broadcast_parameters(
            locs, scales, logits, batch_shape=batch_shape, dtype=dtype
        )
        super().__init__(batch_shape=batch_shape, event_shape=(event_size,), validate_args=validate_args)
        self._validate_args = bool(self._validate_args)  # an instance field: kept through jit/vmap (pytree)

    @property
    def num_components(self) -> int:
        """Number of mixture components :math:`K`."""
        return self.locs.shape[-2]

    @property
    def probs(self) -> jax.Array:
        r"""Mixture weights :math:`\pi=\mathrm{softmax}(\ell)`, shape ``batch_shape + (K,)`` (the
        same name in ``pyro_gmm``)."""
        return jax.nn.softmax(self.logits, axis=-1)

    @property
    def mixture_probs(self) -> jax.Array:
        """Deprecated alias of :attr:`probs` (the name both adapters share)."""
        warnings.warn("DiagNormalMixture.mixture_probs is deprecated; use .probs", DeprecationWarning, stacklevel=2)
        return self.probs

    @property
    def mixture_log_weights(self) -> jax.Array:
        r"""Mixture log weights :math:`\log\pi`, shape ``batch_shape + (K,)``, differentiable in
        ``logits`` (for :class:`~numpyro_gmm.Stratified_ELBO`)."""
        return jax.nn.log_softmax(self.logits, axis=-1)

    def component_sample(self, key: jax.Array, sample_shape: Sequence[int] = ()) -> jax.Array:
        r"""One reparameterized draw from *each* component: :math:`z_k = \mu_k + \sigma_k\varepsilon_k`.

        Shape ``sample_shape + batch_shape + (K, D)`` (the convention of
        ``MixtureSameFamily.component_distribution.sample``), with independent
        :math:`\varepsilon_k\sim N(0, I)`; differentiable in ``locs`` and ``scales`` by the
        ordinary reparameterization trick (the weights enter a stratified estimate through
        :attr:`mixture_log_weights`, ``shared_math.stratified``).
        """
        shape = tuple(sample_shape) + jnp.shape(self.locs)
        noise = jax.random.normal(key, shape, dtype=self.locs.dtype)
        return shared_math.component_draws_from_noise(self.locs, self.scales, noise)

    def validate_args(self, strict: bool = True) -> None:
        """``ValueError`` naming the parameter for NaN/infinite ``locs``/``logits`` or
        non-positive ``scales`` (:func:`shared_math.check_parameter_values`).  Skipped when
        the values are JAX tracers (inside ``jit``/``vmap``/``grad``), unless ``strict``."""
        if _is_concrete(self.locs, self.scales, self.logits):
            shared_math.check_parameter_values(self.locs, self.scales, self.logits)
        elif strict:
            raise RuntimeError("Cannot validate arguments inside jitted code.")

    def sample_with_intermediates(
        self, key: jax.Array, sample_shape: Sequence[int] = ()
    ) -> tuple[jax.Array, list[jax.Array]]:
        """``(x, [component])``: a draw as :meth:`sample` and the index of the component each
        sample came from, shape ``sample_shape + batch_shape`` (as NumPyro's
        ``MixtureSameFamily``; ``log_prob`` does not need it)."""
        x, component = reparameterized_sample_with_component(
            key, self.locs, self.scales, self.logits, tuple(sample_shape), self.resolved_estimator
        )
        return x, [component]

    def sample(self, key: jax.Array, sample_shape: Sequence[int] = ()) -> jax.Array:
        """A draw of shape ``sample_shape + batch_shape + (D,)``, differentiable w.r.t. every parameter."""
        return reparameterized_sample(
            key, self.locs, self.scales, self.logits, tuple(sample_shape), self.resolved_estimator
        )

    def log_prob(self, value: ArrayLike, intermediates: list[jax.Array] | None = None) -> jax.Array:
        r""":math:`\log p(x)` (:func:`shared_math.log_prob`), shape ``sample_shape + batch_shape``.

        A ``value`` whose last dimension is not ``D`` raises ``ValueError`` (always: shapes
        are static, also under ``jit``); with validation on, so does a value outside the
        support, as in every NumPyro distribution.
        """
        del intermediates
        value = jnp.asarray(value)
        shared_math.check_value_shape(jnp.shape(value), self.event_shape)
        return self._log_prob(value)

    @validate_sample
    def _log_prob(self, value):
        return _sampling.mixture_log_prob(value, self.locs, self.scales, self.logits)

    @property
    def mean(self) -> jax.Array:
        r""":math:`\sum_k \pi_k\mu_k`, shape ``batch_shape + (D,)``."""
        return _sampling.mixture_mean(self.locs, self.scales, self.logits)

    @property
    def variance(self) -> jax.Array:
        r"""Per-dimension variance :math:`\sum_k\pi_k(\sigma_k^2 + (\mu_k-\bar\mu)^2)`."""
        return _sampling.mixture_variance(self.locs, self.scales, self.logits)

    def marginal_quantiles(self, quantiles: ArrayLike) -> jax.Array:
        r"""Quantiles of each coordinate's marginal (a 1-D mixture with weights :math:`\pi`).

        ``quantiles`` has shape ``(...)``; the result ``(...) + batch_shape + (D,)``.  See
        :func:`shared_math.marginal_quantiles.marginal_quantile`.
        """
        from shared_math.marginal_quantiles import marginal_quantile

        quantiles = jnp.asarray(quantiles, self.locs.dtype)
        q = jnp.reshape(quantiles, quantiles.shape + (1,) * (len(self.batch_shape) + 1))
        return marginal_quantile(q, self.locs, self.scales, self.logits)

    def expand(self, batch_shape: Sequence[int]) -> DiagNormalMixture:
        """The same mixture with parameters broadcast to ``batch_shape`` (still a
        ``DiagNormalMixture``, with the same ``estimator`` and ``validate_args``)."""
        batch_shape = tuple(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        K, D = self.locs.shape[-2:]
        try:
            broadcast = jnp.broadcast_shapes(self.batch_shape, batch_shape)
        except ValueError:
            broadcast = None
        if broadcast != batch_shape:
            raise ValueError(f"Cannot expand a distribution of batch shape {self.batch_shape} to {batch_shape}")
        expanded = DiagNormalMixture(
            jnp.broadcast_to(self.locs, batch_shape + (K, D)),
            jnp.broadcast_to(self.scales, batch_shape + (K, D)),
            jnp.broadcast_to(self.logits, batch_shape + (K,)),
            estimator=self.estimator,
            validate_args=False,  # the values were checked when self was built
        )
        expanded._validate_args = self._validate_args  # log_prob keeps validating if self did
        return expanded

    def __repr__(self) -> str:
        return (
            f"DiagNormalMixture(batch_shape={self.batch_shape}, event_shape={self.event_shape}, "
            f"num_components={self.num_components}, estimator={self.resolved_estimator!r})"
        )


def _location_scale(base):
    return base.loc, base.scale, ()


def _student_t(base):
    return base.loc, base.scale, (base.df,)


def _gamma(base):
    """Gamma(concentration, rate): location 0, scale 1/rate (differentiable), shape (concentration,)."""
    rate = jnp.asarray(base.rate)
    return jnp.zeros_like(rate), 1.0 / rate, (base.concentration,)


def _beta(base):
    concentration1 = jnp.asarray(base.concentration1)
    return jnp.zeros_like(concentration1), jnp.ones_like(concentration1), (concentration1, base.concentration0)


#: Supported component classes: ``class -> (shared_math family name, parameters)`` where
#: ``parameters(base)`` returns ``(loc, scale, shape_params)`` of the family's location-scale
#: form (exact classes: a subclass may change the density).
COMPONENT_FAMILIES = {
    continuous.Normal: ("normal", _location_scale),
    continuous.Logistic: ("logistic", _location_scale),
    continuous.Laplace: ("laplace", _location_scale),
    continuous.Cauchy: ("cauchy", _location_scale),
    continuous.Gumbel: ("gumbel", _location_scale),
    continuous.StudentT: ("student_t", _student_t),
    continuous.Gamma: ("gamma", _gamma),
    continuous.Beta: ("beta", _beta),
}

_SUPPORTED = (
    "ReparamMixtureSameFamily supports Categorical mixing with components of class "
    + ", ".join(cls.__name__ for cls in COMPONENT_FAMILIES)
    + " (scalar event, or .to_event(1) / Independent(..., 1) for a vector event; optionally expanded)"
)


def _base_component(component_distribution):
    """``(base, shape, reinterpreted)``: the supported distribution inside ``Independent`` and
    ``ExpandedDistribution`` wrappers, the (expanded) batch shape and the number of
    reinterpreted dimensions."""
    base = component_distribution
    reinterpreted = 0
    if isinstance(base, Independent):
        reinterpreted = base.reinterpreted_batch_ndims
        base = base.base_dist
    shape = base.batch_shape
    if isinstance(base, ExpandedDistribution):
        base = base.base_dist
    return base, shape, reinterpreted


def component_family(component_distribution):
    """``(family, loc, scale, shape_params, event_size)`` of a supported component distribution
    (possibly expanded and/or ``to_event(1)``), parameters broadcast to its batch (and event)
    shape with a trailing event axis (``event_size`` is ``None`` for scalar components, whose
    parameters get a trailing axis of size 1); ``None`` if it is not supported."""
    base, shape, reinterpreted = _base_component(component_distribution)
    if reinterpreted > 1 or type(base) not in COMPONENT_FAMILIES:
        return None
    family, parameters_of = COMPONENT_FAMILIES[type(base)]
    loc, scale, shape_params = parameters_of(base)
    parameters = [jnp.broadcast_to(p, shape) for p in (loc, scale) + tuple(shape_params)]
    if reinterpreted == 0:
        parameters = [p[..., None] for p in parameters]
    loc, scale, *shape_params = parameters
    return family, loc, scale, tuple(shape_params), (shape[-1] if reinterpreted else None)


def _check_component_values(component_distribution):
    """``ValueError`` naming the parameter for non-positive or non-finite shape parameters,
    Gamma rates and scales, for each one that is concrete (traced values are skipped)."""
    base, _, _ = _base_component(component_distribution)
    family = COMPONENT_FAMILIES[type(base)][0]
    table = shared_math.get_family(family)
    named = [(name, getattr(base, name)) for name in table.shape_names]
    named += [(name, getattr(base, name)) for name in ("rate", "scale") if hasattr(base, name)]
    with jax.ensure_compile_time_eval():
        for name, value in named:
            if not_jax_tracer(value):
                value = jnp.asarray(value)
                if bool(jnp.any(~(value > 0))) or bool(jnp.any(~jnp.isfinite(value))):
                    raise ValueError(f"{name} must be positive and finite (found NaN, infinity or a value <= 0)")


def _check_value_in_support(support, value):
    """``ValueError`` naming ``value`` if a concrete ``value`` lies outside ``support`` (the
    components' own constraint; NumPyro itself only warns)."""
    if not not_jax_tracer(value):
        return
    with jax.ensure_compile_time_eval():
        inside = support(jnp.asarray(value))
        if not bool(jnp.all(inside)):
            raise ValueError(f"value must lie in the support {support} of the components (found a value outside it)")


class ReparamMixtureSameFamily(MixtureSameFamily):
    r"""Drop-in for :class:`numpyro.distributions.MixtureSameFamily` with reparameterized samples.

    Same constructor, ``log_prob`` and intermediates as the base class; :meth:`sample` is
    differentiable with respect to every component ``loc`` and ``scale`` *and* the mixing
    logits (or probs), and ``has_rsample`` is ``True`` (NumPyro's own ``MixtureSameFamily``
    has ``has_rsample=False``: its samples carry a gradient only through the chosen
    component, none for the weights).  The gradient is that of :class:`DiagNormalMixture`
    (Graves 2016, Eq. 6 and Eq. 22), for components of any location-scale family of
    :mod:`shared_math.families`.  ``mean``, ``variance`` and ``cdf`` (scalar events) come
    from :mod:`shared_math`: NaN for ``Cauchy`` (no mean, no variance) and for ``StudentT``
    with ``df <= 1``, infinite variance for ``1 < df <= 2``.

    Supported: ``mixing_distribution`` a ``Categorical`` (logits or probs) and
    ``component_distribution`` one of :data:`COMPONENT_FAMILIES` (``Normal``, ``Logistic``,
    ``Laplace``, ``Cauchy``, ``Gumbel``, ``StudentT``, ``Gamma(concentration, rate)`` as
    location 0 and scale :math:`1/\text{rate}`, ``Beta(concentration1, concentration0)`` as
    location 0 and scale 1) with batch shape ``(..., K)`` (scalar event) or ``.to_event(1)``
    of one with batch shape ``(..., K)`` and event shape ``(D,)`` (optionally ``expand``-ed).
    Anything else raises ``ValueError``.

    **Shape parameters** (``df``, ``concentration``, ``concentration1``, ``concentration0``)
    are differentiable too: the derivative of the component CDF in them is exact where JAX
    has it (the Gamma's, ``jax.lax.igamma_grad_a``) and otherwise estimated by Graves' Eq. 9
    (:mod:`shared_math.sampled`; unbiased, ``cdf_gradient_samples`` inner draws per sample,
    component and coordinate from a key split off the sample's key, drawn inside the
    derivative rule only when a shape parameter is differentiated).

    :param str estimator: ``"auto"``, ``"implicit"``, ``"hybrid"`` or ``"rao_blackwell"``
        (see :class:`DiagNormalMixture`).
    :param str cdf_gradient: ``"auto"`` (exact where JAX has the derivative, else
        ``"sampled"``), ``"exact"`` (``ValueError`` for the Beta and Student-t, which have
        none), ``"sampled"`` (our stratified smaller-tail estimator; on real-line families it
        replaces the closed forms of ``loc``/``scale`` too) or ``"rejection"`` (Graves' Eq. 9
        with Eq. 10's sampler).
    :param int cdf_gradient_samples: inner draws :math:`M` (default 1).
    :param validate_args: as NumPyro's; with it on, non-positive shape parameters, rates and
        scales, and (in ``log_prob``) values outside the support raise ``ValueError`` naming
        them (concrete values only).
    """

    pytree_aux_fields = ("estimator", "resolved_estimator", "cdf_gradient", "cdf_gradient_samples", "resolved_cdf")

    _validate_args: bool  # set per instance in __init__ (a pytree field, kept through jit/vmap)

    def __init__(
        self,
        mixing_distribution: CategoricalLogits | CategoricalProbs,
        component_distribution: Distribution,
        *,
        estimator: str = "auto",
        cdf_gradient: str = "auto",
        cdf_gradient_samples: int = shared_math.DEFAULT_CDF_GRADIENT_SAMPLES,
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(mixing_distribution, (CategoricalLogits, CategoricalProbs)):
            raise ValueError(
                "ReparamMixtureSameFamily needs a Categorical mixing_distribution (logits or probs); "
                f"got {type(mixing_distribution).__name__}"
            )
        if not isinstance(component_distribution, Distribution):
            raise ValueError(
                f"component_distribution must be a numpyro Distribution; got {type(component_distribution).__name__}"
            )
        full_covariance = multivariate_normal_parameters(component_distribution) is not None
        if not full_covariance and component_family(component_distribution) is None:
            raise ValueError(
                f"{_SUPPORTED}; got {component_distribution!r} with event_shape {component_distribution.event_shape}"
            )
        num_components = jnp.shape(mixing_distribution.logits)[-1]
        component_batch = component_distribution.batch_shape
        if len(component_batch) < 1 or component_batch[-1] != num_components:
            raise ValueError(
                f"component_distribution batch shape {component_batch} must end in the number of "
                f"mixture components K={num_components} of mixing_distribution"
            )
        shared_math.broadcast_shapes(
            ("mixing_distribution", mixing_distribution.batch_shape),
            ("component_distribution", component_batch[:-1]),
        )
        self.estimator = estimator
        self.cdf_gradient_samples = shared_math.cdf_gradient_settings(cdf_gradient, cdf_gradient_samples)
        self.cdf_gradient = cdf_gradient
        if full_covariance:  # MultivariateNormal components: draws through MultivariateNormalMixture's glue
            self.resolved_estimator = shared_math.resolve_full_covariance_estimator(estimator)
            self.resolved_cdf = None
        else:
            self.resolved_estimator = shared_math.resolve_estimator(estimator)
            family = component_family(component_distribution)[0]
            shared_math.resolve_cdf_gradient(cdf_gradient, family, jnp)  # "exact" without one fails here
            # None: nothing to estimate (closed-form loc/scale velocities, no shape parameter)
            needed = shared_math.get_family(family).shape_names or shared_math.sampled.samples_location_scale(
                cdf_gradient, family
            )
            self.resolved_cdf = (cdf_gradient, self.cdf_gradient_samples) if needed else None
        super().__init__(mixing_distribution, component_distribution, validate_args=validate_args)
        if self._validate_args and not full_covariance:
            _check_component_values(component_distribution)
        self._validate_args = bool(self._validate_args)  # an instance field: kept through jit/vmap (pytree)

    @property
    def has_rsample(self) -> bool:
        return True

    def _mixture_parameters(self):
        """``(family, locs, scales, logits, shape_params)``: ``locs``, ``scales`` and the shape
        parameters broadcast to ``batch_shape + (K, D)`` (``D = 1`` for scalar components),
        ``logits`` to ``batch_shape + (K,)``, all of one floating dtype."""
        family, locs, scales, shape_params, _ = component_family(self.component_distribution)
        logits = self.mixing_distribution.logits
        batch_shape = jnp.broadcast_shapes(locs.shape[:-2], jnp.shape(logits)[:-1])
        dtype = shared_math.parameter_dtype((locs, scales, logits), jnp)
        locs, scales, logits = broadcast_parameters(locs, scales, logits, batch_shape=batch_shape, dtype=dtype)
        shape_params = tuple(jnp.broadcast_to(jnp.asarray(p, dtype), locs.shape) for p in shape_params)
        return family, locs, scales, logits, shape_params

    def _full_covariance(self):
        """``(loc, scale_tril)`` of ``MultivariateNormal`` components, else ``None``."""
        return multivariate_normal_parameters(self.component_distribution)

    @property
    def mean(self) -> jax.Array:
        if self._full_covariance() is not None:
            return super().mean
        family, locs, scales, logits, shape_params = self._mixture_parameters()
        mean = _sampling.mixture_mean(locs, scales, logits, family=family, shape_params=shape_params)
        return mean if self.event_shape else mean[..., 0]

    @property
    def variance(self) -> jax.Array:
        if self._full_covariance() is not None:
            return super().variance
        family, locs, scales, logits, shape_params = self._mixture_parameters()
        variance = _sampling.mixture_variance(locs, scales, logits, family=family, shape_params=shape_params)
        return variance if self.event_shape else variance[..., 0]

    def cdf(self, value: ArrayLike) -> jax.Array:
        """CDF of a 1-D mixture (scalar-event components); :func:`shared_math.cdf`."""
        if self.event_shape:
            raise NotImplementedError(
                f"cdf is defined for scalar-event mixtures only; this one has event shape {self.event_shape}"
            )
        family, locs, scales, logits, shape_params = self._mixture_parameters()
        shape_params = tuple(p[..., 0] for p in shape_params)
        return _sampling.mixture_cdf(
            jnp.asarray(value), locs[..., 0], scales[..., 0], logits, family=family, shape_params=shape_params
        )

    @property
    def mixture_log_weights(self) -> jax.Array:
        r"""Mixture log weights :math:`\log\pi`, shape ``batch_shape + (K,)``, differentiable in the
        mixing logits/probs (for :class:`~numpyro_gmm.Stratified_ELBO`)."""
        log_weights = jax.nn.log_softmax(self.mixing_distribution.logits, axis=-1)
        return jnp.broadcast_to(log_weights, self.batch_shape + jnp.shape(log_weights)[-1:])

    def component_sample(self, key: jax.Array, sample_shape: Sequence[int] = ()) -> jax.Array:
        r"""One reparameterized draw from *each* component, shape ``sample_shape + batch_shape + (K,) +
        event_shape``: ``component_distribution.sample(key, sample_shape)``, the component
        family's own reparameterized sampler (for :class:`~numpyro_gmm.Stratified_ELBO`)."""
        return self.component_distribution.sample(key, tuple(sample_shape))

    def sample_with_intermediates(
        self, key: jax.Array, sample_shape: Sequence[int] = ()
    ) -> tuple[jax.Array, list[jax.Array]]:
        """``(x, [component])``: a draw as :meth:`sample` and the index of the component each
        sample came from, shape ``sample_shape + batch_shape`` (integer), as NumPyro's
        ``MixtureSameFamily.sample_with_intermediates`` returns them."""
        if self._full_covariance() is not None:
            x, component = swap_in_sample(
                key,
                self._full_covariance(),
                self.mixing_distribution.logits,
                sample_shape,
                self.resolved_estimator,
                with_component=True,
            )
            return x, [component]
        family, locs, scales, logits, shape_params = self._mixture_parameters()
        x, component = reparameterized_sample_with_component(
            key,
            locs,
            scales,
            logits,
            tuple(sample_shape),
            self.resolved_estimator,
            family,
            shape_params,
            self.resolved_cdf,
        )
        return (x if self.event_shape else x[..., 0]), [component]

    def log_prob(self, value: ArrayLike, intermediates: list[jax.Array] | None = None) -> jax.Array:
        """As ``MixtureSameFamily.log_prob`` (``intermediates`` unused), with a ``ValueError``
        naming ``value`` when its trailing dimensions are not the event shape."""
        shared_math.check_value_shape(jnp.shape(value), self.event_shape)
        if self._validate_args:
            _check_value_in_support(self.component_distribution.support, value)
        return super().log_prob(value, intermediates)

    def sample(self, key: jax.Array, sample_shape: Sequence[int] = ()) -> jax.Array:
        """A draw of shape ``sample_shape + batch_shape + event_shape``, differentiable w.r.t.
        the component locations/scales and the mixing logits."""
        if self._full_covariance() is not None:
            return swap_in_sample(
                key, self._full_covariance(), self.mixing_distribution.logits, sample_shape, self.resolved_estimator
            )
        family, locs, scales, logits, shape_params = self._mixture_parameters()
        x = reparameterized_sample(
            key,
            locs,
            scales,
            logits,
            tuple(sample_shape),
            self.resolved_estimator,
            family,
            shape_params,
            self.resolved_cdf,
        )
        return x if self.event_shape else x[..., 0]

    def expand(self, batch_shape: Sequence[int]) -> ReparamMixtureSameFamily:
        """Expanded copy that stays a ``ReparamMixtureSameFamily``, with the same ``estimator``
        and ``validate_args``."""
        batch_shape = tuple(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        num_components = self.mixture_size
        mixing = self.mixing_distribution
        validate = mixing._validate_args
        if isinstance(mixing, CategoricalProbs):
            mixing = CategoricalProbs(
                jnp.broadcast_to(mixing.probs, batch_shape + (num_components,)), validate_args=validate
            )
        else:
            mixing = CategoricalLogits(
                jnp.broadcast_to(mixing.logits, batch_shape + (num_components,)), validate_args=validate
            )
        expanded = ReparamMixtureSameFamily(
            mixing,
            self.component_distribution.expand(batch_shape + (num_components,)),
            estimator=self.estimator,
            cdf_gradient=self.cdf_gradient,
            cdf_gradient_samples=self.cdf_gradient_samples,
            validate_args=False,  # the values were checked when self was built
        )
        expanded._validate_args = self._validate_args  # log_prob keeps validating if self did
        return expanded
