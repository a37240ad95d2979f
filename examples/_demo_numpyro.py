r"""The demo in NumPyro: the same three guides as :mod:`_demo_pyro`.

* ``AutoDiagonalNormal`` (one Gaussian);
* a hand-written guide with :class:`numpyro_gmm.DiagNormalMixture` (:math:`K=4`, started on
  the corners of :math:`(\pm0.5, \pm0.5)` with equal weights);
* :class:`numpyro_gmm.AutoDiagonalNormalMixture` with ``num_components=4``.

NumPyro's own ``MixtureSameFamily`` would give the mixing weights no gradient at all in
``Trace_ELBO`` (see ``examples/swap_in.py``); ``numpyro_gmm`` samples are differentiable with
respect to the weights (Graves 2016, Eq. 22).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from _bimodal import (
    NOISE_SCALE,
    NUM_COORDINATES,
    NUM_MODES,
    OBSERVED,
    PRIOR_LOC,
    FittedGuide,
    kl_from_draws,
    mode_locations,
)
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDiagonalNormal
from numpyro.infer.initialization import init_to_median

import numpyro_gmm


def model(y):
    z = numpyro.sample("z", dist.Normal(PRIOR_LOC, 1.0).expand([NUM_COORDINATES]).to_event(1))
    numpyro.sample("y", dist.Normal(z**2, NOISE_SCALE).to_event(1), obs=y)


def mixture_guide(y):
    """Hand-written guide: a 4-component diagonal Gaussian mixture over ``z``."""
    locs = numpyro.param("locs", jnp.asarray(0.5 * np.sign(mode_locations())))
    scales = numpyro.param("scales", jnp.full((NUM_MODES, NUM_COORDINATES), 0.3), constraint=dist.constraints.positive)
    logits = numpyro.param("logits", jnp.zeros(NUM_MODES))
    numpyro.sample("z", numpyro_gmm.DiagNormalMixture(locs, scales, logits))


def _fit(guide, key, *, steps, num_particles, learning_rate, progress_bar):
    """Adam on ``Trace_ELBO``, the learning rate decaying exponentially to a tenth of
    ``learning_rate`` over the run; returns ``(params, seconds)`` (the time includes compilation)."""

    def schedule(step):
        return learning_rate * 0.1 ** (step / steps)

    svi = SVI(model, guide, numpyro.optim.Adam(schedule), Trace_ELBO(num_particles=num_particles))
    start = time.perf_counter()
    result = svi.run(key, steps, jnp.asarray(OBSERVED), progress_bar=progress_bar)
    params = jax.block_until_ready(result.params)
    return params, time.perf_counter() - start


def _evaluate(name, posterior, key, steps, seconds, num_draws, locs, scales, weights):
    draws = posterior.sample(key, (num_draws,))
    log_q = posterior.log_prob(draws)
    kl, kl_standard_error = kl_from_draws(np.asarray(draws, np.float64), np.asarray(log_q, np.float64))
    return FittedGuide("NumPyro", name, steps, seconds, kl, kl_standard_error, locs, scales, weights)


def fit_all(*, steps, num_particles, learning_rate, num_eval_draws, seed, progress_bar=True):
    """Fit the three guides; returns a list of :class:`_bimodal.FittedGuide`."""
    options = dict(steps=steps, num_particles=num_particles, learning_rate=learning_rate, progress_bar=progress_bar)
    fit_key, eval_key = jax.random.split(jax.random.PRNGKey(seed))
    results = []

    name = "AutoDiagonalNormal"
    guide = AutoDiagonalNormal(model, init_loc_fn=init_to_median)
    params, seconds = _fit(guide, fit_key, **options)
    loc, scale = np.asarray(params["auto_loc"]), np.asarray(params["auto_scale"])
    posterior = dist.Normal(params["auto_loc"], params["auto_scale"]).to_event(1)
    results.append(_evaluate(name, posterior, eval_key, steps, seconds, num_eval_draws, loc, scale, [1.0]))

    name = "DiagNormalMixture (hand-written)"
    params, seconds = _fit(mixture_guide, fit_key, **options)
    posterior = numpyro_gmm.DiagNormalMixture(params["locs"], params["scales"], params["logits"])
    results.append(
        _evaluate(
            name,
            posterior,
            eval_key,
            steps,
            seconds,
            num_eval_draws,
            np.asarray(params["locs"]),
            np.asarray(params["scales"]),
            np.asarray(posterior.probs),
        )
    )

    name = "AutoDiagonalNormalMixture"
    guide = numpyro_gmm.AutoDiagonalNormalMixture(model, num_components=NUM_MODES, init_scale=0.3, init_spread=2.0)
    params, seconds = _fit(guide, fit_key, **options)
    posterior = guide.get_posterior(params)
    results.append(
        _evaluate(
            name,
            posterior,
            eval_key,
            steps,
            seconds,
            num_eval_draws,
            np.asarray(posterior.locs),
            np.asarray(posterior.scales),
            np.asarray(posterior.probs),
        )
    )
    return results
