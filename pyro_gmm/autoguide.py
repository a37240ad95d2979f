r"""``AutoDiagonalNormalMixture``: ``AutoDiagonalNormal`` with a K-component mixture.

The guide is a :class:`~pyro_gmm.DiagNormalMixture` over the packed unconstrained latent
vector :math:`\zeta\in\mathbb R^L`,

.. math::

    q(\zeta) = \sum_{k=1}^K \pi_k \prod_{l=1}^L N(\zeta_l;\ \mu_{kl}, \sigma_{kl}^2),

so its samples are reparameterized for the locations, scales and weights (Graves 2016,
Eq. 6 and Eq. 22) and ``Trace_ELBO`` trains all three by pathwise gradients.
"""

from __future__ import annotations

import torch
from pyro.distributions import constraints
from pyro.infer.autoguide import AutoContinuous
from pyro.infer.autoguide.initialization import init_to_median
from pyro.nn import PyroParam
from torch import nn
from torch.distributions import biject_to

import shared_math
from shared_math.marginal_quantiles import marginal_quantile

from .distribution import DiagNormalMixture


class AutoDiagonalNormalMixture(AutoContinuous):
    r"""Automatic guide: a mixture of ``num_components`` diagonal Normals over all latents.

    Usage::

        guide = AutoDiagonalNormalMixture(model, num_components=3)
        svi = SVI(model, guide, optim.Adam({"lr": 0.01}), Trace_ELBO())

    Initialization.  Every component starts at scale ``init_scale``; the weights start
    equal.  Identical components would receive identical gradients forever, so the
    locations are spread around the point given by ``init_loc_fn``: component :math:`k`
    starts at :math:`\zeta_0 + \texttt{init\_scale}\cdot\texttt{init\_spread}\cdot e_k`
    with the pattern :math:`e` of ``shared_math.component_offsets`` (standard normals from
    NumPy seeded with ``init_seed``, so the global RNG is untouched and runs are
    reproducible, centred so the mixture mean starts exactly at :math:`\zeta_0`, unit
    root-mean-square per coordinate; with two components they start at :math:`\pm1` in
    every coordinate; the same pattern as ``numpyro_gmm``).

    Known limit (of any pathwise weight gradient, ``docs/design.md`` §6): once components sit
    on modes that are many component scales apart, the signal that moves weight between
    them comes only from rare samples between the modes, so the weights learn slowly and
    optimizer noise can push them away from the balance the posterior asks for.  Measured
    on :math:`z\sim N(0,1)`, :math:`y\sim N(z^2, 0.5^2)`: with :math:`y=1` (modes ~5
    component scales apart) 300 Adam steps reach gaps of 0.057-0.074 nats against a best
    2-component gap of 0.055, weights 0.52-0.58; with :math:`y=2` (~14 scales apart) the
    weights ended between 0.73/0.27 and 0.97/0.03 over four seeds (gaps 0.13-0.57 against a
    best of 0.019).  More particles, a decaying learning rate or a warm start with
    overlapping components help.

    :param callable model: a Pyro model.
    :param int num_components: :math:`K\ge 1`.
    :param callable init_loc_fn: per-site initialization (see ``pyro.infer.autoguide``).
    :param float init_scale: initial standard deviation of every component.
    :param float init_spread: spread of the initial locations, in units of ``init_scale``.
    :param int init_seed: seed of the generator of the initial offsets.
    :param str estimator: sample-gradient estimator of the mixture (see
        :class:`~pyro_gmm.DiagNormalMixture`).
    """

    scale_constraint = constraints.softplus_positive

    def __init__(
        self,
        model,
        num_components=2,
        *,
        init_loc_fn=init_to_median,
        init_scale=0.1,
        init_spread=2.0,
        init_seed=0,
        estimator="auto",
    ):
        if not isinstance(num_components, int) or num_components < 1:
            raise ValueError(f"num_components must be a positive integer; got {num_components!r}")
        if not isinstance(init_scale, float) or not init_scale > 0:
            raise ValueError(f"init_scale must be a float > 0; got {init_scale!r}")
        if not init_spread >= 0:
            raise ValueError(f"init_spread must be >= 0; got {init_spread!r}")
        self.num_components = num_components
        self._init_scale = init_scale
        self._init_spread = float(init_spread)
        self._init_seed = int(init_seed)
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
        self.locs = nn.Parameter(center + self._init_scale * self._init_spread * offsets)
        self.scales = PyroParam(
            center.new_full((self.num_components, self.latent_dim), self._init_scale), self.scale_constraint
        )
        self.logits = nn.Parameter(center.new_zeros(self.num_components))

    def get_posterior(self, *args, **kwargs):
        """The guide over the packed unconstrained latent: a :class:`~pyro_gmm.DiagNormalMixture`."""
        return DiagNormalMixture(self.locs, self.scales, self.logits, estimator=self.estimator)

    def get_base_dist(self):
        raise NotImplementedError(
            "AutoDiagonalNormalMixture is not an invertible transform of a fixed base distribution "
            "(the component choice is discrete); use get_posterior() instead"
        )

    def get_transform(self, *args, **kwargs):
        raise NotImplementedError(
            "AutoDiagonalNormalMixture is not an invertible transform of a fixed base distribution "
            "(the component choice is discrete); use get_posterior() instead"
        )

    def _unpack_to_sites(self, latent):
        return {
            site["name"]: biject_to(site["fn"].support)(unconstrained_value)
            for site, unconstrained_value in self._unpack_latent(latent)
        }

    @torch.no_grad()
    def median(self, *args, **kwargs):
        """The location of the heaviest component (largest weight), mapped to each site.

        A mixture has no multivariate median; this is the approximate mode of the dominant
        component, which (unlike the mixture mean or the coordinate-wise median) lies in a
        high-density region even when the posterior is multimodal.  For the marginal
        medians of each coordinate use ``quantiles([0.5])``.
        """
        heaviest = int(torch.argmax(self.logits))
        return self._unpack_to_sites(self.locs[heaviest].detach())

    @torch.no_grad()
    def quantiles(self, quantiles, *args, **kwargs):
        """Marginal quantiles of each unconstrained coordinate under the mixture, mapped to each site.

        Each coordinate's marginal is the 1-D mixture :math:`\\sum_k\\pi_k N(\\mu_{kl},\\sigma_{kl}^2)`;
        its quantiles are found by bisection (:func:`shared_math.marginal_quantiles.marginal_quantile`).
        As in ``AutoDiagonalNormal.quantiles``, each site's constraining transform is applied
        to the coordinate-wise quantiles (exact for transforms that act coordinate-wise and
        monotonically, e.g. ``exp``/``sigmoid``).  Returns a dict of tensors with a leading
        dimension over ``quantiles``.
        """
        locs, scales, logits = self.locs.detach(), self.scales.detach(), self.logits.detach()
        probabilities = torch.as_tensor(quantiles, dtype=locs.dtype, device=locs.device)
        latents = marginal_quantile(probabilities[:, None], locs, scales, logits)  # (Q, L)
        result = {}
        for latent in latents:
            for name, value in self._unpack_to_sites(latent).items():
                result.setdefault(name, []).append(value)
        return {name: torch.stack(values) for name, values in result.items()}
