r"""SVI with numpyro_gmm guides on a bimodal posterior, and the autoguide's interface.

Model: :math:`z \sim N(0.25, 1)`, :math:`y \sim N(z^2, 0.5)`, observed :math:`y = 1`: the
posterior has modes near :math:`z = \pm 0.8` (separated by a valley 1.8 nats deep) with
masses 0.60 / 0.40.  The evidence :math:`\log p(y)` and every ELBO are computed by
quadrature on a 40001-point grid over [-8, 8] (the guides are 1-D), so the gap
:math:`\log p(y) - \mathrm{ELBO} = \mathrm{KL}(q\,\|\,p(z|y))` carries no Monte Carlo error.

Reference optima of the gap, found by deterministic optimisation of the quadrature ELBO
(L-BFGS): best single Gaussian 0.560, best 2-component mixture 0.054 (weights 0.59 / 0.41).
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import scipy.optimize
import scipy.special
import scipy.stats
from numpyro import handlers
from numpyro.infer import SVI, Predictive, Trace_ELBO
from numpyro.infer.autoguide import AutoDiagonalNormal
from numpyro.optim import Adam

import shared_math
from numpyro_gmm import AutoDiagonalNormalMixture, DiagNormalMixture
from shared_math import component_offsets

OBSERVED, NOISE_SCALE, PRIOR_MEAN = 1.0, 0.5, 0.25
GRID = np.linspace(-8.0, 8.0, 40001)
GRID_STEP = GRID[1] - GRID[0]


def model(y):
    z = numpyro.sample("z", dist.Normal(PRIOR_MEAN, 1.0).expand([1]).to_event(1))
    numpyro.sample("y", dist.Normal(z[0] ** 2, NOISE_SCALE), obs=y)


def log_joint_on_grid():
    return scipy.stats.norm.logpdf(GRID, PRIOR_MEAN, 1.0) + scipy.stats.norm.logpdf(OBSERVED, GRID**2, NOISE_SCALE)


def log_evidence():
    return scipy.special.logsumexp(log_joint_on_grid()) + np.log(GRID_STEP)


def gap_by_quadrature(log_q):
    """log p(y) - ELBO = integral of q (log q - log p(y, z)) dz + log p(y), on the grid."""
    q = np.exp(log_q)
    elbo = np.sum(q * (log_joint_on_grid() - log_q)) * GRID_STEP
    return log_evidence() - elbo


def mixture_summary(locs, scales, logits):
    locs, scales, logits = (np.asarray(a, np.float64) for a in (locs, scales, logits))
    gap = gap_by_quadrature(shared_math.log_prob(GRID[:, None], locs, scales, logits))
    weights = np.exp(logits - scipy.special.logsumexp(logits))
    positive = int(np.argmax(locs[:, 0]))
    return gap, locs[:, 0], weights[positive]


def hand_written_guide(estimator):
    def guide(y):
        locs = numpyro.param("locs", jnp.array([[-0.1], [0.1]]))
        scales = numpyro.param("scales", jnp.full((2, 1), 0.5), constraint=dist.constraints.positive)
        logits = numpyro.param("logits", jnp.zeros(2))
        numpyro.sample("z", DiagNormalMixture(locs, scales, logits, estimator=estimator))

    return guide


def fit(guide, steps, learning_rate=0.01, particles=8, seed=0, progress_bar=False):
    svi = SVI(model, guide, Adam(learning_rate), Trace_ELBO(num_particles=particles))
    return svi.run(jax.random.key(seed), steps, OBSERVED, progress_bar=progress_bar).params


def test_quadrature_reference():
    """The evidence and the quoted optimum of a single Gaussian (0.560), re-derived."""
    assert abs(log_evidence() - (-1.20449)) < 1e-4

    def gaussian_gap(p):
        return gap_by_quadrature(scipy.stats.norm.logpdf(GRID, p[0], np.exp(p[1])))

    best = min(
        (scipy.optimize.minimize(gaussian_gap, [start, np.log(0.3)], method="Nelder-Mead") for start in (-0.8, 0.8)),
        key=lambda r: r.fun,
    )
    assert abs(best.fun - 0.5596) < 2e-3


def test_svi_bimodal_gap_fast():
    """2000 Adam steps (lr 0.01, 8 particles).  Measured (seed 0): hand-written
    DiagNormalMixture guide 0.073, AutoDiagonalNormalMixture(K=2) 0.057.  Asserted: gap < 0.12
    with one component in each mode, far below what any single Gaussian (AutoDiagonalNormal)
    can reach, 0.560 (test_quadrature_reference; a fitted AutoDiagonalNormal is in the slow test)."""
    params = fit(hand_written_guide("auto"), 2000)
    hand_gap, hand_locs, _ = mixture_summary(params["locs"], params["scales"], params["logits"])

    auto_guide = AutoDiagonalNormalMixture(model, num_components=2, init_spread=5.0)
    params = fit(auto_guide, 2000)
    auto_gap, auto_locs, _ = mixture_summary(params["auto_locs"], params["auto_scales"], params["auto_logits"])
    print(f"gap: hand-written {hand_gap:.4f}, AutoDiagonalNormalMixture {auto_gap:.4f}")
    for gap, locs in ((hand_gap, hand_locs), (auto_gap, auto_locs)):
        assert gap < 0.12
        assert np.min(locs) < -0.5 and np.max(locs) > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["implicit", "hybrid", "rao_blackwell"])
def test_svi_bimodal_gap_long(estimator):
    """10000 steps (lr 0.005, 16 particles) reach within 0.02 of the best mixture (0.054) and
    learn the weights: the heavier mode's weight within 0.07 of the optimum 0.59.  Measured
    (seeds 1, 2): implicit 0.0555 / 0.0543, weights 0.622 / 0.583; hybrid 0.0555 / 0.0544,
    0.623 / 0.582.  AutoDiagonalNormal, same settings: 0.56-0.60 (one mode)."""
    params = fit(hand_written_guide(estimator), 10000, learning_rate=0.005, particles=16, seed=1)
    gap, locs, positive_weight = mixture_summary(params["locs"], params["scales"], params["logits"])
    guide = AutoDiagonalNormalMixture(model, num_components=2, init_spread=5.0, estimator=estimator)
    params = fit(guide, 10000, learning_rate=0.005, particles=16, seed=2)
    auto_gap, _, auto_weight = mixture_summary(params["auto_locs"], params["auto_scales"], params["auto_logits"])
    params = fit(AutoDiagonalNormal(model), 10000, learning_rate=0.005, particles=16, seed=2)
    diagonal_gap = gap_by_quadrature(
        scipy.stats.norm.logpdf(GRID, float(params["auto_loc"][0]), float(params["auto_scale"][0]))
    )
    print(
        f"{estimator}: gap {gap:.4f} / {auto_gap:.4f} (AutoDiagonalNormal {diagonal_gap:.4f}), "
        f"heavier-mode weight {positive_weight:.3f} / {auto_weight:.3f}"
    )
    for g, w in ((gap, positive_weight), (auto_gap, auto_weight)):
        assert g < 0.074
        assert abs(w - 0.59) < 0.07
    assert diagonal_gap > 0.559


# ------------------------------------------------------------------ autoguide interface
def two_site_model():
    numpyro.sample("z", dist.Normal(jnp.zeros(2), 1.0).to_event(1))
    numpyro.sample("s", dist.LogNormal(0.0, 1.0))


def test_component_offsets():
    offsets = np.asarray(component_offsets(4, 3))
    np.testing.assert_allclose(np.mean(offsets, axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.sqrt(np.mean(offsets**2, axis=0)), 1.0, rtol=1e-12)
    assert len({tuple(np.round(row, 12)) for row in offsets}) == 4
    np.testing.assert_allclose(np.abs(np.asarray(component_offsets(2, 5))), 1.0, rtol=1e-12)
    np.testing.assert_allclose(component_offsets(1, 3), 0.0)
    with pytest.raises(ValueError, match="num_components"):
        AutoDiagonalNormalMixture(two_site_model, num_components=0)
    with pytest.raises(ValueError, match="init_scale"):
        AutoDiagonalNormalMixture(two_site_model, init_scale=0.0)


def test_autoguide_init_run_predictive_median_quantiles():
    guide = AutoDiagonalNormalMixture(two_site_model, num_components=3, init_scale=0.2, init_spread=2.0)
    svi = SVI(two_site_model, guide, Adam(0.02), Trace_ELBO())
    state = svi.init(jax.random.key(0))
    params = svi.get_params(state)
    locs, scales, logits = params["auto_locs"], params["auto_scales"], params["auto_logits"]
    assert locs.shape == (3, 3) and scales.shape == (3, 3) and logits.shape == (3,)
    np.testing.assert_allclose(scales, 0.2, rtol=1e-12)
    np.testing.assert_allclose(logits, 0.0)
    # Symmetry broken around the init_loc_fn point: offsets 2.0 * 0.2 * component_offsets.
    expected = np.asarray(guide._init_latent) + 0.4 * np.asarray(component_offsets(3, 3))
    np.testing.assert_allclose(locs, expected, rtol=1e-12, atol=1e-12)
    posterior = guide.get_posterior(params)
    assert isinstance(posterior, DiagNormalMixture) and posterior.event_shape == (3,)

    result = svi.run(jax.random.key(1), 30, progress_bar=True, init_state=state)
    assert result.losses.shape == (30,) and bool(jnp.all(jnp.isfinite(result.losses)))
    params = result.params
    # Every guide parameter moved, the weights included (they get a pathwise gradient).
    for name in ("auto_locs", "auto_scales", "auto_logits"):
        assert float(jnp.max(jnp.abs(params[name] - svi.get_params(state)[name]))) > 1e-4, name

    samples = Predictive(two_site_model, guide=guide, params=params, num_samples=50, return_sites=["z", "s"])(
        jax.random.key(3)
    )
    assert samples["z"].shape == (50, 2) and samples["s"].shape == (50,) and bool(jnp.all(samples["s"] > 0))
    posterior_samples = guide.sample_posterior(jax.random.key(4), params, sample_shape=(7,))
    assert posterior_samples["z"].shape == (7, 2) and posterior_samples["s"].shape == (7,)

    # median / quantiles: per-coordinate marginal quantiles of the latent mixture, mapped
    # through each site's transform (exp for the LogNormal site).
    latent_median = np.asarray(guide.get_posterior(params).marginal_quantiles(0.5))
    median = guide.median(params)
    np.testing.assert_allclose(median["z"], latent_median[:2], rtol=1e-10)
    np.testing.assert_allclose(median["s"], np.exp(latent_median[2]), rtol=1e-10)
    quantiles = guide.quantiles(params, [0.1, 0.5, 0.9])
    assert quantiles["z"].shape == (3, 2) and quantiles["s"].shape == (3,)
    np.testing.assert_allclose(quantiles["s"][1], median["s"], rtol=1e-10)
    assert bool(jnp.all(jnp.diff(quantiles["s"]) > 0)) and bool(jnp.all(jnp.diff(quantiles["z"], axis=0) > 0))
    # The 0.1 quantile really is one: the mixture marginal CDF there is 0.1.
    locs, scales, logits = (np.asarray(params[f"auto_{n}"]) for n in ("locs", "scales", "logits"))
    cdf = shared_math.cdf(np.log(np.asarray(quantiles["s"][0])), locs[:, 2], scales[:, 2], logits)
    np.testing.assert_allclose(cdf, 0.1, rtol=1e-9)


def test_autoguide_works_inside_seeded_guide_call():
    """Calling the guide directly under handlers (as Predictive/SVI do) returns the sites."""
    guide = AutoDiagonalNormalMixture(two_site_model, num_components=2)
    with handlers.seed(rng_seed=0):
        values = guide()
    assert set(values) == {"z", "s"} and values["z"].shape == (2,) and float(values["s"]) > 0


@pytest.mark.slow
def test_svi_well_separated_modes_known_limit():
    """Known limit of any pathwise weight gradient (docs/estimators.md): with y = 2 the modes
    (z = +-1.33, sd 0.19) are separated by a valley 7 nats deep, log p - log q is flat inside
    each mode, and the weight signal comes only from rare draws between the modes, so the
    per-draw logits gradient is extremely heavy-tailed.  The locations and scales still
    converge to the modes (asserted); the weights wander around the optimum (0.66 on the
    heavier mode; best mixture gap 0.018), so the gap is printed, not asserted.  Measured
    with these settings (lr 0.005, 16 particles, 10^4 steps), seeds 3-6: heavier-mode weight
    0.62-0.82 (implicit) / 0.56-0.77 (hybrid), gap 0.020-0.087 / 0.023-0.046; with lr 0.01,
    8 particles, 3000 steps: weight 0.52-0.92, gap 0.025-0.27."""
    global OBSERVED
    saved = OBSERVED
    OBSERVED = 2.0
    try:
        params = fit(hand_written_guide("implicit"), 10000, learning_rate=0.005, particles=16, seed=3)
        gap, locs, positive_weight = mixture_summary(params["locs"], params["scales"], params["logits"])
    finally:
        OBSERVED = saved
    print(f"separated modes: gap {gap:.4f}, heavier-mode weight {positive_weight:.3f} (optimum 0.66)")
    np.testing.assert_allclose(np.sort(locs), [-1.32, 1.34], atol=0.08)
    np.testing.assert_allclose(np.asarray(params["scales"])[:, 0], 0.19, atol=0.04)
