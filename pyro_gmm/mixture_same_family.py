r"""``ReparamMixtureSameFamily``: ``pyro.distributions.MixtureSameFamily`` with ``rsample``.

torch's ``MixtureSameFamily`` has no ``rsample`` (pytorch issue 39178).  For Gaussian
components (diagonal, so ``Normal`` or ``Normal(...).to_event(1)``) the mixture is exactly a
:class:`~pyro_gmm.DiagNormalMixture`, whose samples carry Graves' implicit gradient (Graves
2016, Eq. 6; weights via Eq. 22).  Everything else (``log_prob``, ``mean``, ``variance``,
``cdf``, shapes, ``mixture_distribution``/``component_distribution``) is inherited
unchanged.
"""

from __future__ import annotations

import torch
import pyro.distributions as dist

from .distribution import DiagNormalMixture
from .full_covariance import mixture_from_components

_SUPPORTED = (
    "ReparamMixtureSameFamily supports Categorical mixing with Normal components "
    "(scalar event), Normal(...).to_event(1) components (Independent(Normal, 1), vector event) "
    "or MultivariateNormal components"
)


def _normal_components(component_distribution):
    """``(base Normal, event_is_vector)`` of a supported component distribution, else ``ValueError``."""
    if isinstance(component_distribution, torch.distributions.Normal):
        return component_distribution, False
    if isinstance(component_distribution, torch.distributions.Independent) and isinstance(
        component_distribution.base_dist, torch.distributions.Normal
    ):
        if component_distribution.reinterpreted_batch_ndims != 1:
            raise ValueError(
                f"{_SUPPORTED}; got Independent(Normal) with reinterpreted_batch_ndims="
                f"{component_distribution.reinterpreted_batch_ndims}"
            )
        return component_distribution.base_dist, True
    raise ValueError(f"{_SUPPORTED}; got component_distribution of type {type(component_distribution).__name__}")


class ReparamMixtureSameFamily(dist.MixtureSameFamily):
    r"""Gaussian ``MixtureSameFamily`` with reparameterized, weight-differentiable samples.

    .. math::

        p(x) = \sum_k \pi_k\, N(x;\ \mu_k, \operatorname{diag}\sigma_k^2),

    with :math:`\pi` from ``mixture_distribution`` (a ``Categorical`` over the last batch
    dimension :math:`K` of the components) and :math:`\mu_k,\sigma_k` the ``loc``/``scale`` of
    ``component_distribution``.  ``rsample`` draws through :class:`~pyro_gmm.DiagNormalMixture`
    and is differentiable with respect to the component locs and scales and the mixing
    logits/probs.

    :param mixture_distribution: ``Categorical`` with ``K`` categories.
    :param component_distribution: ``Normal`` with batch shape ``(..., K)`` (scalar event) or
        ``Normal(...).to_event(1)`` with batch shape ``(..., K)`` and event shape ``(D,)``.
    :param str estimator: ``"implicit"``, ``"hybrid"`` or ``"auto"`` (see
        :class:`~pyro_gmm.DiagNormalMixture`).
    :raises ValueError: for any other mixing or component type, or mismatched ``K``.
    """

    has_rsample = True

    def __init__(self, mixture_distribution, component_distribution, *, estimator="auto", validate_args=None):
        if not isinstance(mixture_distribution, torch.distributions.Categorical):
            raise ValueError(f"{_SUPPORTED}; got mixture_distribution of type {type(mixture_distribution).__name__}")
        if not isinstance(component_distribution, torch.distributions.MultivariateNormal):  # (full covariance)
            _normal_components(component_distribution)
        num_mixing = mixture_distribution.logits.shape[-1]
        batch_shape = component_distribution.batch_shape
        if len(batch_shape) < 1 or batch_shape[-1] != num_mixing:
            raise ValueError(
                f"mixture_distribution has K={num_mixing} categories but component_distribution has batch "
                f"shape {tuple(batch_shape)}, whose last dimension must be K ({_SUPPORTED})"
            )
        self.estimator = estimator
        super().__init__(mixture_distribution, component_distribution, validate_args=validate_args)
        # Resolve "auto" now (fails early on an unknown estimator name).
        self._diag_mixture(validate_args=False)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ReparamMixtureSameFamily, _instance)
        new = super().expand(batch_shape, _instance=new)
        new.estimator = self.estimator
        return new

    def _diag_mixture(self, validate_args=None):
        """The same mixture as a :class:`~pyro_gmm.DiagNormalMixture` (event ``(D,)``; ``D=1``
        for scalar components), or a :class:`~pyro_gmm.MultivariateNormalMixture` for
        ``MultivariateNormal`` components."""
        full = mixture_from_components(
            self.mixture_distribution, self.component_distribution, self.estimator, validate_args=validate_args
        )
        if full is not None:
            return full
        normal, vector_event = _normal_components(self.component_distribution)
        locs, scales = normal.loc, normal.scale
        if not vector_event:
            locs, scales = locs[..., None], scales[..., None]
        return DiagNormalMixture(
            locs, scales, self.mixture_distribution.logits, estimator=self.estimator, validate_args=validate_args
        )

    def rsample(self, sample_shape=torch.Size()):
        """Reparameterized draw of shape ``sample_shape + batch_shape + event_shape``."""
        x = self._diag_mixture(validate_args=False).rsample(torch.Size(sample_shape))
        return x if self.event_shape else x[..., 0]

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            return self.rsample(sample_shape)
