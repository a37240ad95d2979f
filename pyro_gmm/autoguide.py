r"""``AutoDiagonalNormalMixture``: ``AutoDiagonalNormal`` with a K-component mixture.

The guide is a :class:`~pyro_gmm.DiagNormalMixture` over the packed unconstrained latent
vector :math:`\zeta\in\mathbb R^L`,

.. math::

    q(\zeta) = \sum_{k=1}^K \pi_k \prod_{l=1}^L N(\zeta_l;\ \mu_{kl}, \sigma_{kl}^2),

so its samples are reparameterized for the locations, scales and weights (Graves 2016,
Eq. 6 and Eq. 22) and ``Trace_ELBO`` trains all three by pathwise gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import torch
from pyro.distributions import constraints
from pyro.infer.autoguide import AutoContinuous
from pyro.infer.autoguide.initialization import init_to_median
from pyro.nn import PyroParam
from torch import nn
from torch.distributions import biject_to

import shared_math

from .distribution import DiagNormalMixture


def _read_tensor(module: nn.Module, name: str) -> torch.Tensor:
    """The tensor a ``PyroModule`` attribute reads as: an attribute assigned a ``PyroParam``
    returns its constrained tensor (type checkers see the ``PyroParam`` it was assigned)."""
    value = getattr(module, name)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(value).__name__}")
    return value


class _MixtureAutoContinuous(AutoContinuous):
    """What the mixture autoguides share: a mixture posterior over the packed unconstrained
    latent has no fixed base distribution or invertible transform (the component choice is
    discrete), and a latent vector unpacks to constrained site values."""

    def get_base_dist(self) -> NoReturn:
        raise NotImplementedError(
            f"{type(self).__name__} is not an invertible transform of a fixed base distribution "
            "(the component choice is discrete); use get_posterior() instead"
        )

    def get_transform(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError(
            f"{type(self).__name__} is not an invertible transform of a fixed base distribution "
            "(the component choice is discrete); use get_posterior() instead"
        )

    def _init_logits(self, center: torch.Tensor) -> None:
        """Equal initial weights: a parameter, or with ``learn_weights=False`` a buffer (no
        gradient, so the sampler skips the sweep that only the weights' gradient needs)."""
        zeros = center.new_zeros(self.num_components)
        if self.learn_weights:
            self.logits = nn.Parameter(zeros)
        else:
            self.register_buffer("logits", zeros)

    def _unpack_to_sites(self, latent):
        return {
            site["name"]: biject_to(site["fn"].support)(unconstrained_value)
            for site, unconstrained_value in self._unpack_latent(latent)
        }

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Marginal median of each unconstrained coordinate, mapped to each site: ``quantiles([0.5])``.

        The same definition in both adapters and for both mixture guides (and as
        ``AutoDiagonalNormal``, whose median is its ``quantiles([0.5])``).  For a multimodal
        posterior it can lie between the modes; the heaviest component's location is
        ``guide.locs[guide.logits.argmax()]`` (unconstrained).
        """
        return {name: value[0] for name, value in self.quantiles([0.5], *args, **kwargs).items()}

    @torch.no_grad()
    def quantiles(
        self, quantiles: Sequence[float] | torch.Tensor, *args: Any, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        r"""Marginal quantiles of each unconstrained coordinate under the mixture, mapped to each site.

        Each coordinate's marginal is a 1-D mixture :math:`\sum_k\pi_k N(\mu_{kl},\sigma_{kl}^2)`
        (for full covariances :math:`\sigma_{kl}^2 = \Sigma_{k,ll}`); its quantiles are found by
        bisection (the posterior's ``marginal_quantiles``,
        :func:`shared_math.marginal_quantiles.marginal_quantile`); 0 and 1 give :math:`\mp\infty`,
        values outside :math:`[0, 1]` and NaN give NaN (as ``AutoDiagonalNormal.quantiles``), in
        both adapters.  As in ``AutoDiagonalNormal.quantiles``, each site's constraining
        transform is applied to the coordinate-wise quantiles (exact for transforms that act
        coordinate-wise and monotonically, e.g. ``exp``/``sigmoid``).  Returns a dict of
        tensors with a leading dimension over ``quantiles``.
        """
        latents = self.get_posterior().marginal_quantiles(quantiles).detach()  # (Q, L)
        result: dict[str, list[torch.Tensor]] = {}
        for latent in latents:
            for name, value in self._unpack_to_sites(latent).items():
                result.setdefault(name, []).append(value)
        return {name: torch.stack(values) for name, values in result.items()}


class AutoDiagonalNormalMixture(_MixtureAutoContinuous):
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

    ``median`` and ``quantiles`` are those of each coordinate's marginal (a 1-D mixture),
    mapped through the sites' transforms, exactly as in ``numpyro_gmm``:
    ``median()`` equals ``quantiles([0.5])`` (as for ``AutoDiagonalNormal``).  For a
    multimodal posterior the marginal median can lie between the modes; the location of
    the heaviest component is ``guide.locs[guide.logits.argmax()]`` (unconstrained).

    :param callable model: a Pyro model.
    :param int num_components: :math:`K\ge 1` (keyword-only, as in ``numpyro_gmm``).
    :param callable init_loc_fn: per-site initialization (see ``pyro.infer.autoguide``).
    :param float init_scale: initial standard deviation of every component (any finite
        number > 0; integers accepted).
    :param float init_spread: spread of the initial locations, in units of ``init_scale``.
    :param int init_seed: seed of the generator of the initial offsets.
    :param str estimator: sample-gradient estimator of the mixture (see
        :class:`~pyro_gmm.DiagNormalMixture`).
    :param bool learn_weights: ``False`` keeps the weights equal (``logits`` a buffer of
        zeros). The weights' gradient is then never formed, so a step costs about a
        ``log_prob`` instead of a sweep over the latent dimensions.
    """

    scale_constraint = constraints.softplus_positive

    def __init__(
        self,
        model: Callable[..., Any],
        *,
        num_components: int = 2,
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
        shared_math.resolve_estimator(estimator)  # an unknown name fails here, not at the first step
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
        self._init_logits(center)

    def get_posterior(self, *args: Any, **kwargs: Any) -> DiagNormalMixture:
        """The guide over the packed unconstrained latent: a :class:`~pyro_gmm.DiagNormalMixture`."""
        scales = _read_tensor(self, "scales")
        return DiagNormalMixture(self.locs, scales, self.logits, estimator=self.estimator)
