"""The base of the mixture autoguides (private)."""

from __future__ import annotations

from typing import NoReturn

import jax
import jax.numpy as jnp
import numpyro
from jax.typing import ArrayLike
from numpyro.infer.autoguide import AutoContinuous


class _MixtureAutoContinuous(AutoContinuous):
    """What the mixture autoguides share: a mixture posterior is not an affine transform of a
    fixed base distribution (the component choice is discrete)."""

    def get_base_dist(self) -> NoReturn:
        raise NotImplementedError("A mixture posterior is not an affine transform of a fixed base distribution")

    def get_transform(self, params: dict[str, jax.Array]) -> NoReturn:
        raise NotImplementedError("A mixture posterior is not an affine transform of a fixed base distribution")

    def _logits_param(self, dtype: jnp.dtype) -> jax.Array:
        """``{prefix}_logits``, starting at zero (equal weights); with ``learn_weights=False``
        a constant zero vector, not a parameter (the weights' gradient and the sweep it needs
        are never formed)."""
        zeros = jnp.zeros(self.num_components, dtype=dtype)
        return numpyro.param(f"{self.prefix}_logits", zeros) if self.learn_weights else zeros

    def _logits_of(self, params: dict[str, jax.Array]) -> jax.Array:
        """The logits in ``params`` (zeros when the weights are not learned)."""
        if self.learn_weights:
            return params[f"{self.prefix}_logits"]
        return jnp.zeros(self.num_components, dtype=params[f"{self.prefix}_locs"].dtype)

    def median(self, params: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Per-coordinate marginal medians of the mixture, constrained to each site's support:
        ``quantiles(params, [0.5])`` without the leading dimension (the same definition in
        both adapters and for both mixture guides; the heaviest component's location is
        ``params[prefix + "_locs"][argmax(params[prefix + "_logits"])]``)."""
        latent = self.get_posterior(params).marginal_quantiles(0.5)
        return self._unpack_and_constrain(latent, params)

    def quantiles(self, params: dict[str, jax.Array], quantiles: ArrayLike) -> dict[str, jax.Array]:
        r"""Per-coordinate marginal quantiles, shape ``(len(quantiles),) + site shape`` per site
        (the posterior's ``marginal_quantiles``: 1-D mixtures, with the component variances
        :math:`\Sigma_{k,ll}` for full covariances)."""
        latent = self.get_posterior(params).marginal_quantiles(jnp.asarray(quantiles))
        return self._unpack_and_constrain(latent, params)
