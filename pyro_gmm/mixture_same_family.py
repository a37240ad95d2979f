r"""``ReparamMixtureSameFamily``: ``pyro.distributions.MixtureSameFamily`` with ``rsample``.

torch's ``MixtureSameFamily`` has no ``rsample`` (pytorch issue 39178).  For components of a
location-scale family, one per coordinate (``Normal``, ``Logistic``, ``Laplace``, ``Cauchy``,
``Gumbel``, ``StudentT``, ``Gamma`` or ``Beta``, scalar or ``.to_event(1)``), the mixture's
samples carry Graves' implicit gradient (Graves 2016, Eq. 6; weights via Eq. 22) or one of
the other estimators of :mod:`shared_math.estimators`, for every ``loc``, ``scale``, the
mixing logits and the shape parameters (``df``, ``concentration``, ``rate``,
``concentration1``, ``concentration0``; their CDF derivatives by :mod:`shared_math.sampled`).
``log_prob``, shapes and ``mixture_distribution``/``component_distribution`` are inherited
unchanged; ``mean``, ``variance`` and ``cdf`` come from :mod:`shared_math`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro.distributions as dist
import torch

import shared_math

from ._typing import SizeLike
from .distribution import _TORCH_NAMESPACE, _is_tracing, reparameterized_sample
from .full_covariance import mixture_from_components


def _location_scale(base):
    return base.loc, base.scale, ()


def _student_t(base):
    return base.loc, base.scale, (base.df,)


def _gamma(base):
    """Gamma(concentration, rate): location 0, scale 1/rate (a differentiable reciprocal, so
    the rate's gradient follows by autograd), shape (concentration,)."""
    rate = base.rate
    return torch.zeros_like(rate), rate.reciprocal(), (base.concentration,)


def _beta(base):
    c1 = base.concentration1
    return torch.zeros_like(c1), torch.ones_like(c1), (c1, base.concentration0)


#: Supported component classes: ``(class, shared_math family name, parameters)`` where
#: ``parameters(base)`` returns ``(loc, scale, shape_params)`` of the family's location-scale form.
COMPONENT_FAMILIES = (
    (torch.distributions.Normal, "normal", _location_scale),
    (dist.Logistic, "logistic", _location_scale),
    (torch.distributions.Laplace, "laplace", _location_scale),
    (torch.distributions.Cauchy, "cauchy", _location_scale),
    (torch.distributions.Gumbel, "gumbel", _location_scale),
    (torch.distributions.StudentT, "student_t", _student_t),
    (torch.distributions.Gamma, "gamma", _gamma),
    (torch.distributions.Beta, "beta", _beta),
)

_SUPPORTED = (
    "ReparamMixtureSameFamily supports Categorical mixing with components of class "
    + ", ".join(cls.__name__ for cls, _, _ in COMPONENT_FAMILIES)
    + " (scalar event, or .to_event(1) / Independent(..., 1) for a vector event), or MultivariateNormal"
)


def _full_covariance(component_distribution):
    """Whether the components are ``MultivariateNormal`` (a full-covariance mixture)."""
    return isinstance(component_distribution, torch.distributions.MultivariateNormal)


def component_family(component_distribution):
    """``(family, loc, scale, shape_params, vector_event)`` of a supported component
    distribution (parameters broadcast to its batch shape, plus the event dimension when
    ``vector_event``), else a ``ValueError`` naming what is supported."""
    base, vector_event = component_distribution, False
    if isinstance(base, torch.distributions.Independent):
        if base.reinterpreted_batch_ndims != 1:
            raise ValueError(
                f"{_SUPPORTED}; got Independent({type(base.base_dist).__name__}) with "
                f"reinterpreted_batch_ndims={base.reinterpreted_batch_ndims}"
            )
        base, vector_event = base.base_dist, True
    for cls, family, parameters in COMPONENT_FAMILIES:
        if isinstance(base, cls):
            shape = base.batch_shape
            loc, scale, shape_params = parameters(base)
            return (
                family,
                loc.expand(shape),
                scale.expand(shape),
                tuple(p.expand(shape) for p in shape_params),
                vector_event,
            )
    raise ValueError(f"{_SUPPORTED}; got component_distribution of type {type(component_distribution).__name__}")


def _check_component_values(component_distribution):
    """``ValueError`` naming the parameter for non-positive or non-finite shape parameters,
    Gamma rates and scales (concrete values; the components' own validation may be off)."""
    family, _, _, shape_params, _ = component_family(component_distribution)
    table = shared_math.get_family(family)
    table.check_shape_values(tuple(p.detach() for p in shape_params), _TORCH_NAMESPACE)
    base = component_distribution
    if isinstance(base, torch.distributions.Independent):
        base = base.base_dist
    for name in ("rate", "scale"):
        value = getattr(base, name, None) if family != "beta" else None
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if bool(torch.isnan(value).any()) or bool((~(value > 0)).any()) or bool((~torch.isfinite(value)).any()):
                raise ValueError(f"{name} must be positive and finite (found NaN, infinity or a value <= 0)")


class ReparamMixtureSameFamily(dist.MixtureSameFamily):
    r"""``MixtureSameFamily`` with reparameterized, weight-differentiable samples.

    .. math::

        p(x) = \sum_k \pi_k \prod_d \frac{1}{\sigma_{kd}}\,g\Big(\frac{x_d-\mu_{kd}}{\sigma_{kd}}\Big),

    with :math:`\pi` from ``mixture_distribution`` (a ``Categorical`` over the last batch
    dimension :math:`K` of the components), :math:`\mu,\sigma` the ``loc``/``scale`` of
    ``component_distribution`` and :math:`g` its standardized density (:data:`COMPONENT_FAMILIES`:
    ``Normal``, Pyro's ``Logistic``, ``Laplace``, ``Cauchy``, ``Gumbel``, ``StudentT``;
    ``Gamma(concentration, rate)`` as location 0, scale :math:`1/\text{rate}`, shape
    ``concentration``; ``Beta(concentration1, concentration0)`` as location 0, scale 1).
    ``rsample`` is differentiable with respect to every parameter: ``loc``, ``scale``,
    ``rate``, the mixing logits/probs, and the shape parameters ``df``, ``concentration``,
    ``concentration1``, ``concentration0`` (forward and reverse mode).

    **Shape parameters** need the derivative of the component CDF in them (Graves' Eq. 6),
    which torch has for none of them.  It is estimated by Graves' Eq. 9 (:mod:`shared_math.sampled`):
    unbiased, with ``cdf_gradient_samples`` inner draws :math:`M` per sample, component and
    coordinate, drawn from torch's generator at ``rsample`` time (after the component and the
    noise) and saved with the sample (``M`` times the memory of one sample per component),
    only when a shape parameter requires a gradient.

    ``mean`` and ``variance`` follow the components': NaN for ``Cauchy`` (it has neither) and
    for ``StudentT`` with ``df <= 1``, infinite variance for ``1 < df <= 2``, as in torch.
    ``cdf`` is defined for scalar events (1-D mixtures).

    :param mixture_distribution: ``Categorical`` with ``K`` categories.
    :param component_distribution: a supported component with batch shape ``(..., K)`` (scalar
        event), or ``.to_event(1)`` of one with batch shape ``(..., K)`` and event shape ``(D,)``.
    :param str estimator: ``"auto"``, ``"implicit"``, ``"hybrid"`` or ``"rao_blackwell"`` (see
        :class:`~pyro_gmm.DiagNormalMixture`).
    :param str cdf_gradient: how the component CDFs are differentiated in their parameters:
        ``"auto"`` (exact where torch has the derivative: ``loc``/``scale``/``rate`` always,
        no shape parameter; else ``"sampled"``), ``"exact"`` (``ValueError`` for a family with
        shape parameters), ``"sampled"`` (our stratified smaller-tail estimator of Graves'
        Eq. 9; for real-line families it replaces the closed forms of ``loc``/``scale`` too,
        to check it) or ``"rejection"`` (Eq. 9 with Eq. 10's sampler, as in the paper).
    :param int cdf_gradient_samples: inner draws :math:`M` (default 1).
    :raises ValueError: for any other mixing or component type, mismatched ``K``, a bad option,
        and (with validation on) non-positive shape parameters, rates or scales.
    """

    has_rsample = True

    def __init__(
        self,
        mixture_distribution: torch.distributions.Categorical,
        component_distribution: torch.distributions.Distribution,
        *,
        estimator: str = "auto",
        cdf_gradient: str = "auto",
        cdf_gradient_samples: int = shared_math.DEFAULT_CDF_GRADIENT_SAMPLES,
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(mixture_distribution, torch.distributions.Categorical):
            raise ValueError(f"{_SUPPORTED}; got mixture_distribution of type {type(mixture_distribution).__name__}")
        if not _full_covariance(component_distribution):
            component_family(component_distribution)
        num_mixing = mixture_distribution.logits.shape[-1]
        batch_shape = component_distribution.batch_shape
        if len(batch_shape) < 1 or batch_shape[-1] != num_mixing:
            raise ValueError(
                f"mixture_distribution has K={num_mixing} categories but component_distribution has batch "
                f"shape {tuple(batch_shape)}, whose last dimension must be K ({_SUPPORTED})"
            )
        shared_math.resolve_estimator(estimator)  # an unknown name fails here, not at the first draw
        self.cdf_gradient_samples = shared_math.cdf_gradient_settings(cdf_gradient, cdf_gradient_samples)
        if not _full_covariance(component_distribution):
            family = component_family(component_distribution)[0]
            shared_math.resolve_cdf_gradient(cdf_gradient, family, _TORCH_NAMESPACE)  # "exact" without one fails here
        self.estimator, self.cdf_gradient = estimator, cdf_gradient
        super().__init__(mixture_distribution, component_distribution, validate_args=validate_args)
        if self._validate_args and not _is_tracing() and not _full_covariance(component_distribution):
            _check_component_values(component_distribution)

    @classmethod
    def infer_shapes(
        cls,
        mixture_distribution: torch.distributions.Distribution | Sequence[int],
        component_distribution: torch.distributions.Distribution | tuple[Sequence[int], Sequence[int]],
        **other_arguments: Any,
    ) -> tuple[torch.Size, torch.Size]:
        """``(batch_shape, event_shape)`` of the mixture of these two distributions (Pyro's
        ``infer_shapes``).

        The arguments are distributions, not tensors, so each is given either as the
        distribution itself or by its shapes: ``mixture_distribution`` as its
        ``batch_shape``, ``component_distribution`` as the pair ``(batch_shape,
        event_shape)``.  The result is the broadcast of the mixing batch shape with the
        component batch shape less its last (component) dimension, and the component event
        shape.  Shapes given for other arguments (``estimator``) are ignored.
        """
        del other_arguments
        if isinstance(mixture_distribution, torch.distributions.Distribution):
            mixing_batch = mixture_distribution.batch_shape
        else:
            mixing_batch = torch.Size(mixture_distribution)
        component_batch: Sequence[int]
        event_shape: Sequence[int]
        if isinstance(component_distribution, torch.distributions.Distribution):
            component_batch, event_shape = component_distribution.batch_shape, component_distribution.event_shape
        else:
            component_batch, event_shape = component_distribution
        if len(component_batch) < 1:
            raise ValueError(
                f"component_distribution must have a batch dimension K; got batch shape {tuple(component_batch)}"
            )
        shared_math.broadcast_shapes(  # a ValueError naming the argument if they clash
            ("mixture_distribution", mixing_batch), ("component_distribution", tuple(component_batch)[:-1])
        )
        return torch.Size(tuple(component_batch)[:-1]), torch.Size(event_shape)

    def expand(
        self, batch_shape: SizeLike, _instance: ReparamMixtureSameFamily | None = None
    ) -> ReparamMixtureSameFamily:
        new = self._get_checked_instance(ReparamMixtureSameFamily, _instance)
        new = super().expand(batch_shape, _instance=new)
        new.estimator = self.estimator
        new.cdf_gradient, new.cdf_gradient_samples = self.cdf_gradient, self.cdf_gradient_samples
        return new

    def _mixture_parameters(self):
        """``(family, locs, scales, logits, shape_params)`` in the layout of :mod:`shared_math`:
        ``locs``, ``scales`` and the shape parameters ``(..., K, D)`` (``D = 1`` for scalar
        components), ``logits`` ``(..., K)``, all of one floating dtype."""
        family, loc, scale, shape_params, vector_event = component_family(self.component_distribution)
        if not vector_event:
            loc, scale, shape_params = loc[..., None], scale[..., None], tuple(p[..., None] for p in shape_params)
        return family, loc, scale, self.mixture_distribution.logits, shape_params

    @property
    def mean(self) -> torch.Tensor:
        if _full_covariance(self.component_distribution):
            return super().mean
        family, locs, scales, logits, shape_params = self._mixture_parameters()
        mean = shared_math.mean(locs, scales, logits, family=family, shape_params=shape_params)
        return (mean if self.event_shape else mean[..., 0]).expand(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        if _full_covariance(self.component_distribution):
            return super().variance
        family, locs, scales, logits, shape_params = self._mixture_parameters()
        variance = shared_math.variance(locs, scales, logits, family=family, shape_params=shape_params)
        return (variance if self.event_shape else variance[..., 0]).expand(self.batch_shape + self.event_shape)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        """CDF of a 1-D mixture (scalar-event components); :func:`shared_math.cdf`."""
        if self.event_shape:
            raise NotImplementedError(
                f"cdf is defined for scalar-event mixtures only; this one has event shape {tuple(self.event_shape)}"
            )
        if self._validate_args:
            self._validate_sample(value)
        family, locs, scales, logits, shape_params = self._mixture_parameters()
        options = {"family": family, "shape_params": tuple(p[..., 0] for p in shape_params)}
        return shared_math.cdf(value, locs[..., 0], scales[..., 0], logits, **options)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """As ``MixtureSameFamily.log_prob``, with a ``ValueError`` naming ``value`` when its
        trailing dimensions are not the event shape (the same check as in ``numpyro_gmm``)."""
        shared_math.check_value_shape(value.shape, self.event_shape)
        return super().log_prob(value)

    @property
    def mixture_log_weights(self) -> torch.Tensor:
        r"""Mixture log weights :math:`\log\pi`, shape ``batch_shape + (K,)``, differentiable in the
        mixing logits/probs (for :class:`~pyro_gmm.Stratified_ELBO`)."""
        log_weights = torch.log_softmax(self.mixture_distribution.logits, dim=-1)
        return log_weights.expand(self.batch_shape + log_weights.shape[-1:])

    def component_rsample(self, sample_shape: SizeLike = torch.Size()) -> torch.Tensor:
        r"""One reparameterized draw from *each* component, shape ``sample_shape + batch_shape + (K,) +
        event_shape``: ``component_distribution.rsample(sample_shape)``, the component family's
        own reparameterized sampler (for :class:`~pyro_gmm.Stratified_ELBO`)."""
        return self.component_distribution.rsample(torch.Size(sample_shape))

    def rsample(self, sample_shape: SizeLike = torch.Size()) -> torch.Tensor:
        """Reparameterized draw of shape ``sample_shape + batch_shape + event_shape``."""
        full = mixture_from_components(self.mixture_distribution, self.component_distribution, self.estimator)
        if full is not None:  # MultivariateNormal components: a full-covariance mixture
            return full.rsample(torch.Size(sample_shape))
        family, locs, scales, logits, shape_params = self._mixture_parameters()
        x = reparameterized_sample(
            locs,
            scales,
            logits,
            self.batch_shape,
            sample_shape,
            shared_math.resolve_estimator(self.estimator),
            family=family,
            shape_params=shape_params,
            cdf_gradient=self.cdf_gradient,
            cdf_gradient_samples=self.cdf_gradient_samples,
        )
        return x if self.event_shape else x[..., 0]

    def sample(self, sample_shape: SizeLike = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)
