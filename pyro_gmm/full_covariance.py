r"""Full-covariance Gaussian mixtures for Pyro: ``MultivariateNormalMixture`` and its autoguide.

A thin adapter over :mod:`shared_math.full_covariance` (the maths, derived in
``docs/design.md``, "Full covariance").  A sample is drawn ancestrally (component
:math:`k\sim\mathrm{Categorical}(\pi)`, noise :math:`\varepsilon\sim N(0,I)`,
:math:`x=\mu_k+L_k\varepsilon`) and its gradient is attached by the same
:class:`torch.autograd.Function` as :class:`~pyro_gmm.DiagNormalMixture`'s, with the
full-covariance VJP of the chosen estimator as its backward:

* ``"implicit"``: Graves' implicit gradient for every parameter (Graves 2016, Eq. 6 made
  multivariate with Cholesky-conditioned components; weights via Eq. 22), one
  :math:`O(KD^2)` reverse sweep per sample;
* ``"hybrid"``: the gradient through the chosen component for ``locs``/``scale_tril``,
  implicit for ``logits``;
* ``"rao_blackwell"``: the chosen-component gradient averaged over the component given
  :math:`x` (:math:`r_k(x)g` and :math:`r_k(x)g\varepsilon_k^\top`), implicit for ``logits``.

Reference: A. Graves, "Stochastic Backpropagation through Mixture Density Distributions",
arXiv:1607.05690 (2016).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution
from pyro.infer.autoguide.initialization import init_to_median
from pyro.nn import PyroParam
from torch import nn

import shared_math

from ._typing import SizeLike, TensorLike
from .autoguide import _MixtureAutoContinuous, _read_tensor
from .distribution import (
    FULL_COVARIANCE,
    DiagNormalMixture,
    _as_parameter_tensors,
    _expanded_to_batch,
    _init_distribution,
    _is_tracing,
    _sample_function,
)


class MultivariateNormalMixture(TorchDistribution):
    r"""Mixture of :math:`K` full-covariance Gaussians in :math:`\mathbb R^D` with pathwise gradients.

    .. math::

        p(x) = \sum_{k=1}^K \pi_k\,N(x;\ \mu_k,\ L_kL_k^\top),\qquad \pi=\mathrm{softmax}(\ell).

    ``rsample`` is differentiable with respect to ``locs``, ``scale_tril`` **and** ``logits``
    (estimators above; :math:`O(NKD^2)`, the cost of ``log_prob``).

    :param torch.Tensor locs: component means :math:`\mu`, shape ``(..., K, D)``.
    :param torch.Tensor scale_tril: lower-triangular Cholesky factors :math:`L_k` with a
        positive diagonal, shape ``(..., K, D, D)`` (``K`` may be 1: one factor for all).  Only
        the lower triangle is read; the gradient of the strict upper triangle is zero.
    :param torch.Tensor logits: unnormalized log weights :math:`\ell`, shape ``(..., K)``.
    :param str estimator: ``"implicit"``, ``"hybrid"``, ``"rao_blackwell"`` or ``"auto"``
        (``shared_math.FULL_COVARIANCE_AUTO_ESTIMATOR``; evidence in ``docs/estimators.md``).
    :param bool validate_args: check parameter values (``ValueError`` naming the parameter;
        ``scale_tril`` must be lower triangular with a positive diagonal, nothing is
        symmetrized or repaired).  Shape mismatches always raise.
    """

    arg_constraints = {
        "locs": constraints.independent(constraints.real, 2),
        "scale_tril": constraints.independent(constraints.lower_cholesky, 1),
        "logits": constraints.real_vector,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self,
        locs: TensorLike,
        scale_tril: TensorLike,
        logits: TensorLike,
        *,
        estimator: str = "auto",
        validate_args: bool | None = None,
    ) -> None:
        locs, scale_tril, logits = _as_parameter_tensors(locs, scale_tril, logits)
        batch_shape, num_components, event_size = shared_math.full_covariance_shapes(
            locs.shape, scale_tril.shape, logits.shape
        )
        self.locs, self.scale_tril, self.logits = locs, scale_tril, logits
        self.num_components = num_components
        self.estimator = shared_math.resolve_full_covariance_estimator(estimator)
        validate = self._validate_args if validate_args is None else validate_args
        if validate and not _is_tracing():
            shared_math.check_full_covariance_values(locs, scale_tril, logits)
        _init_distribution(self, MultivariateNormalMixture, batch_shape, event_size, validate_args)

    def expand(
        self, batch_shape: SizeLike, _instance: MultivariateNormalMixture | None = None
    ) -> MultivariateNormalMixture:
        """The same mixture with batch shape ``batch_shape``.  The parameters are kept as they are
        (they broadcast against it): a dimension in which no parameter varies then stays a
        sample dimension of the sweeps (one triangular solve with many right-hand sides rather
        than one solve per copy), which is what ``Trace_ELBO(vectorize_particles=True)`` needs."""
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(MultivariateNormalMixture, _instance)
        event_size = self.event_shape[0]
        torch.broadcast_shapes(batch_shape, self.batch_shape)  # raises if they do not broadcast
        if (
            len(batch_shape) < len(self.batch_shape)
            or torch.broadcast_shapes(batch_shape, self.batch_shape) != batch_shape
        ):
            raise ValueError(f"cannot expand batch shape {tuple(self.batch_shape)} to {tuple(batch_shape)}")
        new.locs, new.scale_tril, new.logits = self.locs, self.scale_tril, self.logits
        new.num_components = self.num_components
        new.estimator = self.estimator
        super(MultivariateNormalMixture, new).__init__(batch_shape, torch.Size((event_size,)), validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        mean = shared_math.full_covariance_mean(self.locs, self.scale_tril, self.logits)
        return mean.expand(self.batch_shape + self.event_shape)

    @property
    def covariance_matrix(self) -> torch.Tensor:
        r""":math:`\sum_k\pi_k(L_kL_k^\top + (\mu_k-\bar\mu)(\mu_k-\bar\mu)^\top)`, ``batch_shape + (D, D)``."""
        covariance = shared_math.full_covariance_covariance(self.locs, self.scale_tril, self.logits)
        return covariance.expand(self.batch_shape + self.event_shape + self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        variance = shared_math.full_covariance_variance(self.locs, self.scale_tril, self.logits)
        return variance.expand(self.batch_shape + self.event_shape)

    def marginal_quantiles(self, quantiles: Any) -> torch.Tensor:
        r"""Quantiles of each coordinate's marginal, the 1-D mixture
        :math:`\sum_k\pi_kN(\mu_{ki}, \Sigma_{k,ii})`.

        ``quantiles`` has shape ``(...)``; the result ``(...) + batch_shape + (D,)``.  0 and 1
        give :math:`\mp\infty`, values outside :math:`[0, 1]` and NaN give NaN.  As
        :meth:`pyro_gmm.DiagNormalMixture.marginal_quantiles`, with the scales of
        :func:`shared_math.full_covariance_component_scales`; the same method in ``numpyro_gmm``.
        """
        from shared_math.marginal_quantiles import marginal_quantile

        quantiles = torch.as_tensor(quantiles, dtype=self.locs.dtype, device=self.locs.device)
        q = quantiles.reshape(quantiles.shape + (1,) * (len(self.batch_shape) + 1))
        scales = shared_math.full_covariance_component_scales(self.scale_tril)
        return marginal_quantile(q, self.locs, scales, self.logits).expand(
            quantiles.shape + self.batch_shape + self.event_shape
        )

    @property
    def probs(self) -> torch.Tensor:
        r"""Mixture weights :math:`\pi = \mathrm{softmax}(\ell)`, shape ``batch_shape + (K,)``."""
        return torch.softmax(self.logits, dim=-1).expand(self.batch_shape + (self.num_components,))

    @property
    def mixture_log_weights(self) -> torch.Tensor:
        r""":math:`\log\pi_k`, shape ``batch_shape + (K,)`` (differentiable in ``logits``)."""
        return torch.log_softmax(self.logits, dim=-1).expand(self.batch_shape + (self.num_components,))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        log_prob = shared_math.full_covariance_log_prob(value, self.locs, self.scale_tril, self.logits)
        return _expanded_to_batch(log_prob, self.batch_shape)

    #: The random inputs of one draw, ``(component_one_hot, noise)``: the same generator calls
    #: as :meth:`pyro_gmm.DiagNormalMixture.draw_noise` (so a diagonal ``scale_tril`` and the
    #: same seed give the same draws as ``DiagNormalMixture``).
    draw_noise = DiagNormalMixture.draw_noise

    def rsample(self, sample_shape: SizeLike = torch.Size()) -> torch.Tensor:
        """Reparameterized draw of shape ``sample_shape + batch_shape + (D,)``, differentiable
        with respect to ``locs``, ``scale_tril`` and ``logits`` (estimator ``self.estimator``)."""
        component_one_hot, noise = self.draw_noise(sample_shape)
        with torch.no_grad():
            x = shared_math.full_covariance_sample_from_noise(self.locs, self.scale_tril, component_one_hot, noise)
        return _sample_function().apply(
            x, self.locs, self.scale_tril, self.logits, component_one_hot, noise, self.estimator, FULL_COVARIANCE
        )

    def sample(self, sample_shape: SizeLike = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def component_rsample(self, sample_shape: SizeLike = torch.Size()) -> torch.Tensor:
        r"""One reparameterized draw from every component, :math:`x_k=\mu_k+L_k\varepsilon_k`,
        shape ``sample_shape + batch_shape + (K, D)`` (ordinary autograd: the gradient of a
        single Gaussian).  With :attr:`mixture_log_weights` this gives stratified estimators
        :math:`\sum_k\pi_k E_\varepsilon[h(x_k)]`."""
        shape = torch.Size(sample_shape) + self.batch_shape + (self.num_components,) + self.event_shape
        noise = torch.randn(shape, dtype=self.locs.dtype, device=self.locs.device)
        return shared_math.full_covariance_component_samples(self.locs, self.scale_tril, noise)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(K={self.num_components}, D={self.event_shape[0]}, "
            f"batch_shape={tuple(self.batch_shape)}, estimator={self.estimator!r})"
        )


def mixture_from_components(mixture_distribution, component_distribution, estimator, validate_args=None):
    """The :class:`MultivariateNormalMixture` of ``Categorical`` mixing and ``MultivariateNormal``
    components (however given: ``scale_tril``, ``covariance_matrix`` or ``precision_matrix``;
    torch converts the latter two by one Cholesky factorization when the components are built),
    or ``None`` if the components are not ``MultivariateNormal``."""
    if not isinstance(component_distribution, torch.distributions.MultivariateNormal):
        return None
    return MultivariateNormalMixture(
        component_distribution.loc,
        component_distribution.scale_tril,
        mixture_distribution.logits,
        estimator=estimator,
        validate_args=validate_args,
    )


class AutoMultivariateNormalMixture(_MixtureAutoContinuous):
    r"""Automatic guide: a mixture of ``num_components`` full-covariance Normals over all latents.

    Like :class:`pyro.infer.autoguide.AutoMultivariateNormal` (each component's factor is a
    positive scale vector times a unit lower-triangular matrix,
    :math:`L_k = \operatorname{diag}(s_k)\,U_k`, with the same constraints:
    ``softplus_positive`` and ``unit_lower_cholesky``), with a :class:`MultivariateNormalMixture`
    over the packed unconstrained latent vector :math:`\zeta`:

    .. math::

        q(\zeta) = \sum_{k=1}^K\pi_k\,N(\zeta;\ \mu_k,\ L_kL_k^\top).

    Initialization as :class:`~pyro_gmm.AutoDiagonalNormalMixture`: every component starts
    at scale ``init_scale`` (:math:`U_k=I`), equal weights, locations
    :math:`\zeta_0 + \texttt{init\_scale}\cdot\texttt{init\_spread}\cdot e_k` with the pattern
    :math:`e` of ``shared_math.component_offsets`` (seed ``init_seed``; the same numbers as
    ``numpyro_gmm``).  Parameters: ``locs`` ``(K, L)``, ``scales`` ``(K, L)``, ``scale_tril``
    (unit lower triangular) ``(K, L, L)``, ``logits`` ``(K,)``.

    :param callable model: a Pyro model.
    :param int num_components: :math:`K\ge 1`.
    :param callable init_loc_fn: per-site initialization (see ``pyro.infer.autoguide``).
    :param float init_scale: initial standard deviation of every component.
    :param float init_spread: spread of the initial locations, in units of ``init_scale``.
    :param int init_seed: seed of the initial offsets.
    :param str estimator: sample-gradient estimator (see :class:`MultivariateNormalMixture`).
    :param bool learn_weights: ``False`` keeps the weights equal (``logits`` a buffer of
        zeros); the weights' gradient and its sweep are then never formed.
    """

    scale_constraint = constraints.softplus_positive
    scale_tril_constraint = constraints.unit_lower_cholesky

    def __init__(
        self,
        model: Callable[..., Any],
        num_components: int = 2,
        *,
        init_loc_fn: Callable[[dict[str, Any]], torch.Tensor] = init_to_median,
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
        super().__init__(model, init_loc_fn=init_loc_fn)

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        center = self._init_loc()
        offsets = torch.as_tensor(
            shared_math.component_offsets(self.num_components, self.latent_dim, self._init_seed),
            dtype=center.dtype,
            device=center.device,
        )
        shape = (self.num_components, self.latent_dim)
        self.locs = nn.Parameter(center + self._init_scale * self._init_spread * offsets)
        self.scales = PyroParam(center.new_full(shape, self._init_scale), self.scale_constraint)
        eye = torch.eye(self.latent_dim, dtype=center.dtype, device=center.device)
        self.scale_tril = PyroParam(eye.expand(shape + (self.latent_dim,)).clone(), self.scale_tril_constraint)
        self._init_logits(center)

    def get_posterior(self, *args: Any, **kwargs: Any) -> MultivariateNormalMixture:
        """The guide over the packed unconstrained latent: a :class:`MultivariateNormalMixture`."""
        scale_tril = _read_tensor(self, "scales")[..., None] * _read_tensor(self, "scale_tril")
        return MultivariateNormalMixture(self.locs, scale_tril, self.logits, estimator=self.estimator)
