r"""``AutoDiagonalNormalMixture``: a K-component diagonal Gaussian mixture over the packed latent vector."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpyro
from numpyro.distributions import constraints
from numpyro.infer.initialization import init_to_median

import shared_math

from ._guides import _MixtureAutoContinuous
from .distributions import DiagNormalMixture


class AutoDiagonalNormalMixture(_MixtureAutoContinuous):
    r"""Like :class:`numpyro.infer.autoguide.AutoDiagonalNormal`, with a mixture of
    ``num_components`` diagonal Normals over the unconstrained latent vector :math:`z`:

    .. math::

        q(z) = \sum_{k=1}^K \pi_k \prod_d N(z_d;\,\mu_{kd},\,\sigma_{kd}),
        \qquad \pi = \mathrm{softmax}(\ell).

    Samples are reparameterized with respect to all of :math:`\mu, \sigma, \ell` (Graves
    2016; :class:`~numpyro_gmm.DiagNormalMixture`), so ``Trace_ELBO`` gets pathwise gradients
    for the mixture weights too.  Parameters: ``{prefix}_locs`` ``(K, latent_dim)``,
    ``{prefix}_scales`` ``(K, latent_dim)`` (``softplus_positive``) and ``{prefix}_logits``
    ``(K,)``.

    **Symmetry breaking.**  Components that start identical receive identical gradients and
    never separate, so the initial locations are the ``init_loc_fn`` point plus a fixed
    deterministic offset per component, ``shared_math.component_offsets`` (standard normals
    from NumPy with seed ``init_seed``, centred over the components so the mixture mean
    starts at the initial point, unit root-mean-square per coordinate; the same pattern as
    ``pyro_gmm``), times ``init_spread * init_scale``.  For K = 2 the two components start at
    :math:`\pm`\ ``init_spread * init_scale`` from the initial point in every coordinate.

    ``median`` and ``quantiles`` are those of each coordinate's marginal (a 1-D mixture),
    mapped through the sites' transforms, exactly as in ``pyro_gmm``: ``median(params)``
    equals ``quantiles(params, [0.5])`` (as for ``AutoDiagonalNormal``).  For a multimodal
    posterior the marginal median can lie between the modes; the location of the heaviest
    component is ``params[prefix + "_locs"][argmax(params[prefix + "_logits"])]``
    (unconstrained).  ``quantiles`` of 0 and 1 are :math:`\mp\infty`, values outside
    :math:`[0, 1]` and NaN give NaN (as ``AutoDiagonalNormal``), in both adapters.

    :param callable model: a NumPyro model.
    :param int num_components: number of mixture components :math:`K`.
    :param str prefix: prefix of the parameter names.
    :param callable init_loc_fn: per-site initialization (default ``init_to_median``).
    :param float init_scale: initial :math:`\sigma` of every component (any finite number
        > 0; integers accepted).
    :param float init_spread: size of the deterministic initial offsets, in units of
        ``init_scale``.
    :param int init_seed: seed of the offset pattern.
    :param str estimator: ``"auto"``, ``"implicit"``, ``"hybrid"`` or ``"rao_blackwell"`` (see
        :class:`~numpyro_gmm.DiagNormalMixture`).
    :param bool learn_weights: ``False`` keeps the weights equal: ``{prefix}_logits`` is then
        a constant, not a parameter, and the weights' gradient and the sweep it needs are
        never formed.
    """

    scale_constraint = constraints.softplus_positive

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
        shared_math.resolve_estimator(estimator)  # an unknown name fails here, not at the first step
        self.estimator = estimator
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn)

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        offsets = shared_math.component_offsets(self.num_components, self.latent_dim, self._init_seed)
        self._init_component_locs = self._init_latent + self._init_spread * self._init_scale * jnp.asarray(
            offsets, jnp.result_type(self._init_latent)
        )

    def _get_posterior(self):
        locs = numpyro.param(f"{self.prefix}_locs", self._init_component_locs)
        scales = numpyro.param(
            f"{self.prefix}_scales",
            jnp.full((self.num_components, self.latent_dim), self._init_scale, dtype=self._init_component_locs.dtype),
            constraint=self.scale_constraint,
        )
        logits = self._logits_param(self._init_component_locs.dtype)
        return DiagNormalMixture(locs, scales, logits, estimator=self.estimator)

    def get_posterior(self, params: dict[str, jax.Array]) -> DiagNormalMixture:
        """The mixture posterior over the unconstrained latent vector (a :class:`DiagNormalMixture`)."""
        return DiagNormalMixture(
            params[f"{self.prefix}_locs"],
            params[f"{self.prefix}_scales"],
            self._logits_of(params),
            estimator=self.estimator,
        )
