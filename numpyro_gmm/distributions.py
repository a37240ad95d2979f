r"""NumPyro distributions for diagonal Gaussian mixtures with reparameterized samples.

The maths (densities, moments, the implicit gradient) is in :mod:`shared_math`; the
derivative of a sample is attached in :mod:`numpyro_gmm._sampling`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from numpyro.distributions import constraints
from numpyro.distributions.continuous import Normal
from numpyro.distributions.discrete import CategoricalLogits, CategoricalProbs
from numpyro.distributions.distribution import Distribution, ExpandedDistribution, Independent
from numpyro.distributions.mixtures import MixtureSameFamily
from numpyro.distributions.util import validate_sample
from numpyro.util import not_jax_tracer

import shared_math

from . import _sampling
from ._sampling import broadcast_parameters, common_dtype, reparameterized_sample
from .full_covariance import multivariate_normal_parameters, swap_in_sample


def _is_concrete(*arrays):
    return all(not_jax_tracer(a) for a in arrays)


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

    def __init__(self, locs, scales, logits, *, estimator="auto", validate_args=None):
        locs, scales, logits = (a if hasattr(a, "dtype") else jnp.asarray(a) for a in (locs, scales, logits))
        batch_shape, num_components, event_size = shared_math.mixture_shapes(
            jnp.shape(locs), jnp.shape(scales), jnp.shape(logits)
        )
        self.resolved_estimator = shared_math.resolve_estimator(estimator, event_size)
        self.estimator = estimator
        self.locs, self.scales, self.logits = broadcast_parameters(
            locs, scales, logits, batch_shape=batch_shape, dtype=common_dtype(locs, scales, logits)
        )
        super().__init__(batch_shape=batch_shape, event_shape=(event_size,), validate_args=validate_args)

    @property
    def num_components(self):
        """Number of mixture components :math:`K`."""
        return self.locs.shape[-2]

    @property
    def mixture_probs(self):
        r"""Mixture weights :math:`\pi=\mathrm{softmax}(\ell)`, shape ``batch_shape + (K,)``."""
        return jax.nn.softmax(self.logits, axis=-1)

    def validate_args(self, strict=True):
        """``ValueError`` naming the parameter for NaN/infinite ``locs``/``logits`` or
        non-positive ``scales`` (:func:`shared_math.check_parameter_values`).  Skipped when
        the values are JAX tracers (inside ``jit``/``vmap``/``grad``), unless ``strict``."""
        if _is_concrete(self.locs, self.scales, self.logits):
            shared_math.check_parameter_values(self.locs, self.scales, self.logits)
        elif strict:
            raise RuntimeError("Cannot validate arguments inside jitted code.")

    def sample(self, key, sample_shape=()):
        """A draw of shape ``sample_shape + batch_shape + (D,)``, differentiable w.r.t. every parameter."""
        return reparameterized_sample(
            key, self.locs, self.scales, self.logits, tuple(sample_shape), self.resolved_estimator
        )

    @validate_sample
    def log_prob(self, value, intermediates=None):
        """:math:`\\log p(x)` (:func:`shared_math.log_prob`), shape ``sample_shape + batch_shape``."""
        del intermediates
        return _sampling.mixture_log_prob(jnp.asarray(value), self.locs, self.scales, self.logits)

    @property
    def mean(self):
        r""":math:`\sum_k \pi_k\mu_k`, shape ``batch_shape + (D,)``."""
        return _sampling.mixture_mean(self.locs, self.scales, self.logits)

    @property
    def variance(self):
        r"""Per-dimension variance :math:`\sum_k\pi_k(\sigma_k^2 + (\mu_k-\bar\mu)^2)`."""
        return _sampling.mixture_variance(self.locs, self.scales, self.logits)

    def marginal_quantiles(self, quantiles):
        r"""Quantiles of each coordinate's marginal (a 1-D mixture with weights :math:`\pi`).

        ``quantiles`` has shape ``(...)``; the result ``(...) + batch_shape + (D,)``.  See
        :func:`shared_math.marginal_quantiles.marginal_quantile`.
        """
        from shared_math.marginal_quantiles import marginal_quantile

        quantiles = jnp.asarray(quantiles, self.locs.dtype)
        q = jnp.reshape(quantiles, quantiles.shape + (1,) * (len(self.batch_shape) + 1))
        return marginal_quantile(q, self.locs, self.scales, self.logits)

    def expand(self, batch_shape):
        """The same mixture with parameters broadcast to ``batch_shape`` (still a ``DiagNormalMixture``)."""
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
        return DiagNormalMixture(
            jnp.broadcast_to(self.locs, batch_shape + (K, D)),
            jnp.broadcast_to(self.scales, batch_shape + (K, D)),
            jnp.broadcast_to(self.logits, batch_shape + (K,)),
            estimator=self.estimator,
            validate_args=False,
        )

    def __repr__(self):
        return (
            f"DiagNormalMixture(batch_shape={self.batch_shape}, event_shape={self.event_shape}, "
            f"num_components={self.num_components}, estimator={self.resolved_estimator!r})"
        )


def _normal_parameters(component_distribution):
    """``(loc, scale, event_size)`` of a ``Normal`` component (possibly expanded and/or
    ``to_event(1)``), broadcast to its batch (and event) shape; ``None`` if it is not one."""
    base = component_distribution
    reinterpreted = 0
    if isinstance(base, Independent):
        reinterpreted = base.reinterpreted_batch_ndims
        base = base.base_dist
    if reinterpreted > 1:
        return None
    if isinstance(base, ExpandedDistribution):
        shape = base.batch_shape
        base = base.base_dist
    elif isinstance(base, Normal):
        shape = base.batch_shape
    else:
        return None
    if type(base) is not Normal:
        return None
    loc = jnp.broadcast_to(base.loc, shape)
    scale = jnp.broadcast_to(base.scale, shape)
    if reinterpreted == 0:
        return loc[..., None], scale[..., None], None
    return loc, scale, shape[-1]


class ReparamMixtureSameFamily(MixtureSameFamily):
    r"""Drop-in for :class:`numpyro.distributions.MixtureSameFamily` with reparameterized samples.

    Same constructor, ``log_prob``, ``cdf``, ``mean``, ``variance`` and intermediates as the
    base class; :meth:`sample` is differentiable with respect to the component locations and
    scales *and* the mixing logits (or probs), and ``has_rsample`` is ``True`` (NumPyro's
    own ``MixtureSameFamily`` has ``has_rsample=False``: its samples carry a gradient only
    through the chosen component, none for the weights).  The gradient is that of
    :class:`DiagNormalMixture` (Graves 2016, Eq. 6 and Eq. 22).

    Supported: ``mixing_distribution`` a ``Categorical`` (logits or probs) and
    ``component_distribution`` a ``Normal`` with batch shape ``(..., K)`` (scalar event) or
    ``Normal(...).to_event(1)`` with batch shape ``(..., K)`` and event shape ``(D,)``
    (optionally ``expand``-ed), or ``MultivariateNormal`` with batch shape ``(..., K)`` (given by
    ``scale_tril``, ``covariance_matrix`` or ``precision_matrix``; draws through
    :class:`~numpyro_gmm.MultivariateNormalMixture`).  Anything else raises ``ValueError``.

    :param str estimator: ``"auto"``, ``"implicit"``, ``"hybrid"`` or ``"rao_blackwell"``
        (see :class:`DiagNormalMixture`).
    """

    pytree_aux_fields = ("estimator", "resolved_estimator")

    def __init__(self, mixing_distribution, component_distribution, *, estimator="auto", validate_args=None):
        if not isinstance(mixing_distribution, (CategoricalLogits, CategoricalProbs)):
            raise ValueError(
                "ReparamMixtureSameFamily needs a Categorical mixing_distribution (logits or probs); "
                f"got {type(mixing_distribution).__name__}"
            )
        if not isinstance(component_distribution, Distribution):
            raise ValueError(
                "component_distribution must be a numpyro Distribution; "
                f"got {type(component_distribution).__name__}"
            )
        full_covariance = multivariate_normal_parameters(component_distribution)
        parameters = _normal_parameters(component_distribution) if full_covariance is None else (None, None, None)
        if parameters is None:
            raise ValueError(
                "ReparamMixtureSameFamily supports only Normal components (scalar event), "
                "Normal(...).to_event(1) (vector event) or MultivariateNormal; got "
                f"{component_distribution!r} with event_shape {component_distribution.event_shape}"
            )
        num_components = jnp.shape(mixing_distribution.logits)[-1]
        component_batch = component_distribution.batch_shape
        if len(component_batch) < 1 or component_batch[-1] != num_components:
            raise ValueError(
                f"component_distribution batch shape {component_batch} must end in the number of "
                f"mixture components K={num_components} of mixing_distribution"
            )
        _, _, event_size = parameters
        shared_math.broadcast_shapes(
            ("mixing_distribution", mixing_distribution.batch_shape),
            ("component_distribution", component_batch[:-1]),
        )
        if full_covariance is not None:
            self.resolved_estimator = shared_math.resolve_full_covariance_estimator(estimator, component_distribution.event_shape[0])
        else:
            self.resolved_estimator = shared_math.resolve_estimator(estimator, 1 if event_size is None else event_size)
        self.estimator = estimator
        super().__init__(mixing_distribution, component_distribution, validate_args=validate_args)

    @property
    def has_rsample(self):
        return True

    def _mixture_parameters(self):
        """``(locs, scales, logits)`` broadcast to ``batch_shape + (K, D)`` / ``batch_shape + (K,)``."""
        locs, scales, _ = _normal_parameters(self.component_distribution)
        logits = self.mixing_distribution.logits
        batch_shape = jnp.broadcast_shapes(locs.shape[:-2], jnp.shape(logits)[:-1])
        dtype = common_dtype(locs, scales, logits)
        return broadcast_parameters(locs, scales, logits, batch_shape=batch_shape, dtype=dtype)

    def sample_with_intermediates(self, key, sample_shape=()):
        """A differentiable draw and no intermediates (``log_prob`` does not need any)."""
        return self.sample(key, sample_shape), []

    def sample(self, key, sample_shape=()):
        """A draw of shape ``sample_shape + batch_shape + event_shape``, differentiable w.r.t.
        the component locations/scales and the mixing logits."""
        full_covariance = multivariate_normal_parameters(self.component_distribution)
        if full_covariance is not None:
            return swap_in_sample(key, full_covariance, self.mixing_distribution.logits, sample_shape, self.resolved_estimator)
        locs, scales, logits = self._mixture_parameters()
        x = reparameterized_sample(key, locs, scales, logits, tuple(sample_shape), self.resolved_estimator)
        return x if self.event_shape else x[..., 0]

    def expand(self, batch_shape):
        """Expanded copy that stays a ``ReparamMixtureSameFamily``."""
        batch_shape = tuple(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        num_components = self.mixture_size
        mixing = self.mixing_distribution
        if isinstance(mixing, CategoricalProbs):
            mixing = CategoricalProbs(jnp.broadcast_to(mixing.probs, batch_shape + (num_components,)))
        else:
            mixing = CategoricalLogits(jnp.broadcast_to(mixing.logits, batch_shape + (num_components,)))
        return ReparamMixtureSameFamily(
            mixing,
            self.component_distribution.expand(batch_shape + (num_components,)),
            estimator=self.estimator,
            validate_args=False,
        )
