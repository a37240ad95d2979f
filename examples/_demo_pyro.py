r"""The demo in Pyro: three guides for the four-mode posterior of :mod:`_bimodal`.

* ``AutoDiagonalNormal``: one Gaussian; it can cover one mode only.
* A hand-written guide with :class:`pyro_gmm.DiagNormalMixture`: :math:`K=4` components
  started on the corners of the square :math:`(\pm0.5, \pm0.5)` with equal weights; the
  locations, scales **and weights** are learnt by ``Trace_ELBO`` through reparameterized
  samples (Graves 2016, Eq. 6; weights via Eq. 22).
* :class:`pyro_gmm.AutoDiagonalNormalMixture` with ``num_components=4``: the same family,
  built automatically, started around the prior median.
"""

from __future__ import annotations

import time

import numpy as np
import pyro
import pyro.distributions as dist
import torch
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
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoDiagonalNormal
from pyro.infer.autoguide.initialization import init_to_median
from tqdm.auto import tqdm

import pyro_gmm


def model(y):
    z = pyro.sample("z", dist.Normal(PRIOR_LOC, 1.0).expand([NUM_COORDINATES]).to_event(1))
    pyro.sample("y", dist.Normal(z**2, NOISE_SCALE).to_event(1), obs=y)


def mixture_guide(y):
    """Hand-written guide: a 4-component diagonal Gaussian mixture over ``z``."""
    initial_locs = torch.tensor(0.5 * np.sign(mode_locations()), dtype=torch.get_default_dtype())
    locs = pyro.param("locs", initial_locs)
    scales = pyro.param("scales", torch.full((NUM_MODES, NUM_COORDINATES), 0.3), constraint=dist.constraints.positive)
    logits = pyro.param("logits", torch.zeros(NUM_MODES))
    pyro.sample("z", pyro_gmm.DiagNormalMixture(locs, scales, logits))


def _fit(name, guide, *, steps, num_particles, learning_rate, progress_bar):
    """Adam on ``Trace_ELBO`` (vectorized particles), the learning rate decaying exponentially
    to a tenth of ``learning_rate`` over the run; returns the wall time in seconds."""
    y = torch.tensor(OBSERVED, dtype=torch.get_default_dtype())
    elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1)
    optimizer = pyro.optim.ClippedAdam({"lr": learning_rate, "lrd": 0.1 ** (1 / steps)})
    svi = SVI(model, guide, optimizer, elbo)
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc=f"Pyro    {name:<27}", disable=not progress_bar, mininterval=0.5):
        svi.step(y)
    return time.perf_counter() - start


@torch.no_grad()
def _evaluate(name, posterior, steps, seconds, num_draws, locs, scales, weights):
    draws = posterior.sample((num_draws,))
    kl, kl_standard_error = kl_from_draws(draws.double().numpy(), posterior.log_prob(draws).double().numpy())
    return FittedGuide("Pyro", name, steps, seconds, kl, kl_standard_error, locs, scales, weights)


def fit_all(*, steps, num_particles, learning_rate, num_eval_draws, seed, progress_bar=True):
    """Fit the three guides; returns a list of :class:`_bimodal.FittedGuide`."""
    # Tensors here have a few dozen entries: one thread is fastest (with two threads, torch
    # spent ~10 ms per softmax of a stride-0 expanded (16, 4) tensor on a busy 2-core machine).
    torch.set_num_threads(1)
    options = dict(steps=steps, num_particles=num_particles, learning_rate=learning_rate, progress_bar=progress_bar)
    results = []

    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    name = "AutoDiagonalNormal"
    guide = AutoDiagonalNormal(model, init_loc_fn=init_to_median)
    seconds = _fit(name, guide, **options)
    with torch.no_grad():
        loc, scale = guide.loc.detach(), guide.scale.detach()
    results.append(
        _evaluate(name, guide.get_posterior(), steps, seconds, num_eval_draws, loc.numpy(), scale.numpy(), [1.0])
    )

    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    name = "DiagNormalMixture (hand-written)"
    seconds = _fit(name, mixture_guide, **options)
    locs, scales, logits = (pyro.param(n).detach() for n in ("locs", "scales", "logits"))
    posterior = pyro_gmm.DiagNormalMixture(locs, scales, logits)
    results.append(
        _evaluate(
            name, posterior, steps, seconds, num_eval_draws, locs.numpy(), scales.numpy(), posterior.probs.numpy()
        )
    )

    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    name = "AutoDiagonalNormalMixture"
    guide = pyro_gmm.AutoDiagonalNormalMixture(model, num_components=NUM_MODES, init_scale=0.3, init_spread=2.0)
    seconds = _fit(name, guide, **options)
    posterior = guide.get_posterior()
    with torch.no_grad():
        locs, scales, probs = posterior.locs.detach(), posterior.scales.detach(), posterior.probs.detach()
    results.append(
        _evaluate(name, posterior, steps, seconds, num_eval_draws, locs.numpy(), scales.numpy(), probs.numpy())
    )
    return results
