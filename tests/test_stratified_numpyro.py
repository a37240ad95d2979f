r"""``numpyro_gmm.Stratified_ELBO`` and the stratification members of the NumPyro mixtures.

The same checks as ``test_stratified_pyro.py``: references are quadratures of the guide
*density* (``_stratified_reference``), Monte Carlo checks are z-tests over independent
replicate estimates (seeded keys, |z| < 4 per compared entry), and the separated-mode
problem is ``examples/_separated.py``.  Replicates run as one ``jit(vmap(...))`` over keys,
which also exercises the objective under both transformations.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import _stratified_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers
from numpyro.infer import SVI, Predictive, Trace_ELBO
from numpyro.primitives import mutable

from numpyro_gmm import AutoDiagonalNormalMixture, DiagNormalMixture, ReparamMixtureSameFamily, Stratified_ELBO

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))
import _separated

Z_THRESHOLD = 4.0


def z_scores(samples, reference):
    samples = np.asarray(samples, dtype=np.float64)
    return (samples.mean(0) - reference) / (samples.std(0, ddof=1) / math.sqrt(samples.shape[0]))


def traced_loss(elbo, model, guide, *args):
    """Run the objective abstractly (``jax.eval_shape``): shape checks, errors and warnings
    happen while tracing, without compiling or computing anything."""
    return jax.eval_shape(lambda key: elbo.loss(key, {}, model, guide, *args), jax.random.PRNGKey(0))


def replicate_estimates(elbo, model, guide, reps, seed=0, params=None):
    """``reps`` independent estimates of the objective (minus the loss), one jit(vmap) call."""
    keys = jax.random.split(jax.random.PRNGKey(seed), reps)
    estimate = jax.jit(jax.vmap(lambda key: -elbo.loss(key, params or {}, model, guide)))
    return np.asarray(estimate(keys))


# ------------------------------------------------------------------ problems
def one_d_model():
    z = numpyro.sample("z", dist.Normal(ref.ONE_D["prior_loc"], 1.0).expand([1]).to_event(1))
    numpyro.sample("y", dist.Normal(z[..., 0] ** 2, ref.ONE_D["noise"]), obs=ref.ONE_D["observed"])


def one_d_guide():
    locs = numpyro.param("locs", jnp.asarray(ref.ONE_D["locs"]))
    scales = numpyro.param("scales", jnp.asarray(ref.ONE_D["scales"]))
    logits = numpyro.param("logits", jnp.asarray(ref.ONE_D["logits"]))
    numpyro.sample("z", DiagNormalMixture(locs, scales, logits))


def one_d_swap_in_guide():
    locs = numpyro.param("locs", jnp.asarray(ref.ONE_D["locs"]))
    scales = numpyro.param("scales", jnp.asarray(ref.ONE_D["scales"]))
    logits = numpyro.param("logits", jnp.asarray(ref.ONE_D["logits"]))
    components = dist.Normal(locs, scales).to_event(1)
    numpyro.sample("z", ReparamMixtureSameFamily(dist.Categorical(logits=logits), components))


def separated_problem(dims, dtype=jnp.float64):
    prior_locs = jnp.asarray(_separated.PRIOR_LOCS[:dims], dtype)
    observed = jnp.asarray(_separated.OBSERVED[:dims], dtype)
    init = [jnp.asarray(a, dtype) for a in _separated.initial_guide(dims)]

    one, noise = jnp.asarray(1.0, dtype), jnp.asarray(_separated.NOISE_SCALE, dtype)  # (x64 is on in the tests)

    def model():
        z = numpyro.sample("z", dist.Normal(prior_locs, one).to_event(1))
        numpyro.sample("y", dist.Normal(z**2, noise).to_event(1), obs=observed)

    def guide():
        locs = numpyro.param("locs", init[0])
        scales = numpyro.param("scales", init[1], constraint=dist.constraints.positive)
        logits = numpyro.param("logits", init[2])
        numpyro.sample("z", DiagNormalMixture(locs, scales, logits))

    return model, guide


def fit_separated(dims, loss, steps, seed, progress_bar=False):
    model, guide = separated_problem(dims)
    decay = (0.0025 / 0.05) ** (1.0 / steps)
    optimizer = numpyro.optim.ClippedAdam(lambda i: 0.05 * decay**i, clip_norm=10.0)
    result = SVI(model, guide, optimizer, loss).run(jax.random.PRNGKey(seed), steps, progress_bar=progress_bar)
    return _separated.weights_error(result.params["locs"], result.params["logits"], dims), result


# ------------------------------------------------------------------ the stratification members
def test_component_sample_is_one_reparameterized_draw_per_component():
    batch_shape = (3,)
    rng = np.random.default_rng(0)
    locs = jnp.asarray(rng.normal(size=batch_shape + (2, 3)))
    scales = jnp.asarray(rng.uniform(0.5, 1.5, size=batch_shape + (2, 3)))
    logits = jnp.asarray(rng.normal(size=batch_shape + (2,)))
    key = jax.random.PRNGKey(4)
    draws = DiagNormalMixture(locs, scales, logits).component_sample(key, (4,))
    assert draws.shape == (4,) + batch_shape + (2, 3)
    noise = jax.random.normal(key, (4,) + batch_shape + (2, 3))
    np.testing.assert_allclose(draws, locs + scales * noise, rtol=1e-12)
    jacobian = jax.jit(
        jax.grad(lambda l, s: DiagNormalMixture(l, s, logits).component_sample(key, (4,)).sum(), argnums=(0, 1))
    )
    locs_bar, scales_bar = jacobian(locs, scales)
    np.testing.assert_allclose(locs_bar, np.full(locs.shape, 4.0))
    np.testing.assert_allclose(scales_bar, noise.sum(0), rtol=1e-12)
    mixture = DiagNormalMixture(locs, scales, logits)
    np.testing.assert_allclose(mixture.mixture_log_weights, jax.nn.log_softmax(logits, -1), rtol=1e-12)
    expanded = mixture.expand((5,) + batch_shape)
    assert expanded.component_sample(key).shape == (5,) + batch_shape + (2, 3)
    assert expanded.mixture_log_weights.shape == (5,) + batch_shape + (2,)


@pytest.mark.parametrize("vector_event", [False, True])
def test_swap_in_component_sample_uses_the_component_sampler(vector_event):
    rng = np.random.default_rng(1)
    locs, scales = jnp.asarray(rng.normal(size=(3, 2, 4))), jnp.asarray(rng.uniform(0.1, 1, size=(3, 2, 4)))
    logits = jnp.asarray(rng.normal(size=(3, 2)))
    components = dist.Normal(locs, scales).to_event(1) if vector_event else dist.Normal(locs[..., 0], scales[..., 0])
    mixture = ReparamMixtureSameFamily(dist.Categorical(logits=logits), components)
    key = jax.random.PRNGKey(2)
    draws = mixture.component_sample(key, (6,))
    np.testing.assert_allclose(draws, components.sample(key, (6,)))
    assert draws.shape == (6, 3, 2) + ((4,) if vector_event else ())
    np.testing.assert_allclose(mixture.mixture_log_weights, jax.nn.log_softmax(logits, -1), rtol=1e-12)
    probs_mixture = ReparamMixtureSameFamily(dist.Categorical(probs=jax.nn.softmax(logits)), components)
    np.testing.assert_allclose(probs_mixture.mixture_log_weights, jax.nn.log_softmax(logits, -1), rtol=1e-12)


# ------------------------------------------------------------------ value and gradient vs quadrature
@pytest.mark.parametrize("guide", [one_d_guide, one_d_swap_in_guide], ids=["diag", "swap_in"])
def test_value_matches_quadrature_mixture_elbo(guide):
    estimates = replicate_estimates(Stratified_ELBO(num_particles=200), one_d_model, guide, 40)
    exact = ref.elbo_1d(ref.ONE_D["locs"], ref.ONE_D["scales"], ref.ONE_D["logits"])
    assert abs(z_scores(estimates, exact)) < Z_THRESHOLD
    assert abs(np.mean(estimates) - exact) < 0.05


def test_gradient_is_unbiased_against_quadrature():
    exact = ref.elbo_gradient_1d(ref.ONE_D["locs"], ref.ONE_D["scales"], ref.ONE_D["logits"])
    elbo = Stratified_ELBO(num_particles=100)
    params = {name: jnp.asarray(ref.ONE_D[name]) for name in ("locs", "scales", "logits")}
    gradient = jax.grad(lambda p, key: -elbo.loss(key, p, one_d_model, one_d_guide))
    keys = jax.random.split(jax.random.PRNGKey(1), 40)
    gradients = jax.jit(jax.vmap(gradient, in_axes=(None, 0)))(params, keys)
    names = ("locs", "scales", "logits")
    samples = np.concatenate([np.asarray(gradients[n]).reshape(40, -1) for n in names], axis=1)
    reference = np.concatenate([exact[n].ravel() for n in names])
    scores = z_scores(samples, reference)
    assert np.all(np.abs(scores) < Z_THRESHOLD), scores
    assert np.all(np.abs(reference[-2:]) > 0.1)


def test_lax_map_particles_agree():
    exact = ref.elbo_1d(ref.ONE_D["locs"], ref.ONE_D["scales"], ref.ONE_D["logits"])
    elbo = Stratified_ELBO(num_particles=20, vectorize_particles=False)
    assert abs(z_scores(replicate_estimates(elbo, one_d_model, one_d_guide, 30), exact)) < Z_THRESHOLD


# ------------------------------------------------------------------ importance weighted (SIWAE)
def test_siwae_is_tighter_than_the_elbo_and_converges_to_the_evidence():
    log_evidence = ref.log_evidence_1d()
    exact_elbo = ref.elbo_1d(ref.ONE_D["locs"], ref.ONE_D["scales"], ref.ONE_D["logits"])
    means, errors = {}, {}
    for draws, reps in ((1, 400), (64, 100)):
        elbo = Stratified_ELBO(num_particles=draws, importance_weighted=True)
        estimates = replicate_estimates(elbo, one_d_model, one_d_guide, reps)
        means[draws], errors[draws] = estimates.mean(), estimates.std(ddof=1) / math.sqrt(reps)
    for draws in means:
        assert means[draws] < log_evidence + Z_THRESHOLD * errors[draws]
    # ... equal to its 2-D quadrature at T = 1, which is 0.99 nats above the ELBO ...
    exact_one_draw = ref.siwae_one_draw_1d(ref.ONE_D["locs"], ref.ONE_D["scales"], ref.ONE_D["logits"])
    assert exact_one_draw - exact_elbo > 0.6
    assert abs(means[1] - exact_one_draw) < Z_THRESHOLD * errors[1]
    # ... and tends to log p(y): 0.3 nats below at T = 1, within 0.02 at T = 64 (0.002-0.004 measured
    # at T = 100; the bias is O(1/T)).
    assert log_evidence - exact_one_draw > 0.2
    assert log_evidence - means[64] < 0.02


def plate_problem(observed, locs, scales, logits, subsample):
    size = len(observed)

    def model():
        with numpyro.plate("data", size, subsample_size=len(subsample)) as index:
            z = numpyro.sample("z", dist.Normal(ref.ONE_D["prior_loc"], 1.0).expand([1]).to_event(1))
            numpyro.sample("y", dist.Normal(z[..., 0] ** 2, ref.ONE_D["noise"]), obs=observed[index])

    def guide():
        with numpyro.plate("data", size, subsample_size=len(subsample)) as index:
            numpyro.sample("z", DiagNormalMixture(locs[index], scales[index], logits[index]))

    fixed = {"data": jnp.asarray(subsample)}
    return handlers.substitute(model, data=fixed), handlers.substitute(guide, data=fixed)


def test_siwae_per_datapoint_in_a_plate_shared_by_every_site():
    observed = jnp.array([1.0, 0.4, 1.6, 0.9])
    locs = jnp.broadcast_to(jnp.asarray(ref.ONE_D["locs"]), (4, 2, 1))
    scales = jnp.broadcast_to(jnp.asarray(ref.ONE_D["scales"]), (4, 2, 1))
    logits = jnp.broadcast_to(jnp.asarray(ref.ONE_D["logits"]), (4, 2))
    subsample = [0, 2]
    model, guide = plate_problem(observed, locs, scales, logits, subsample)

    def log_joint(y):
        return lambda z: ref.one_d_log_joint(z, {**ref.ONE_D, "observed": y})

    exact = 2.0 * sum(ref.log_evidence_1d(log_joint(float(observed[i]))) for i in subsample)
    estimates = replicate_estimates(Stratified_ELBO(num_particles=256, importance_weighted=True), model, guide, 20)
    assert estimates.mean() < exact + Z_THRESHOLD * estimates.std(ddof=1) / math.sqrt(20)
    assert abs(estimates.mean() - exact) < 0.03


# ------------------------------------------------------------------ structures
def test_per_datapoint_mixtures_in_a_subsampled_plate():
    rng = np.random.default_rng(3)
    observed = jnp.array([1.0, 0.5, 1.5, 0.8, 1.2, 0.3])
    locs = jnp.asarray(rng.normal(size=(6, 2, 1)))
    scales = jnp.asarray(rng.uniform(0.3, 0.8, size=(6, 2, 1)))
    logits = jnp.asarray(rng.normal(size=(6, 2)))
    subsample = [0, 3, 4]
    model, guide = plate_problem(observed, locs, scales, logits, subsample)
    exact = 2.0 * sum(
        ref.elbo_1d(
            np.asarray(locs[i]),
            np.asarray(scales[i]),
            np.asarray(logits[i]),
            lambda z, y=float(observed[i]): ref.one_d_log_joint(z, {**ref.ONE_D, "observed": y}),
        )
        for i in subsample
    )
    estimates = replicate_estimates(Stratified_ELBO(num_particles=100), model, guide, 30)
    assert abs(z_scores(estimates, exact)) < Z_THRESHOLD


def two_site_model():
    z1 = numpyro.sample("z1", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
    z2 = numpyro.sample("z2", dist.Normal(z1, 1.0).to_event(1))
    numpyro.sample("y", dist.Normal((z1 + z2)[..., 0], ref.TWO_SITES["noise"]), obs=ref.TWO_SITES["observed"])


def two_site_guide():
    p = ref.TWO_SITES
    z1 = numpyro.sample(
        "z1", DiagNormalMixture(jnp.asarray(p["locs1"]), jnp.asarray(p["scales1"]), jnp.asarray(p["logits1"]))
    )
    locs2 = p["slope"] * z1[..., None, :] + jnp.asarray(p["offsets2"])[:, None]
    logits2 = p["logit_slope"] * z1 * jnp.array([1.0, -1.0])
    numpyro.sample("z2", DiagNormalMixture(locs2, jnp.asarray(p["scales2"])[:, None], logits2))


def test_two_dependent_mixture_sites_match_a_2d_quadrature():
    estimates = replicate_estimates(Stratified_ELBO(num_particles=100), two_site_model, two_site_guide, 30)
    assert abs(z_scores(estimates, ref.two_site_elbo())) < Z_THRESHOLD


def autoguide_problem():
    data = jnp.array([0.3, -0.5, 1.2, 0.8, 0.1])

    def model(data):
        loc = numpyro.sample("loc", dist.Normal(0.0, 2.0))
        scale = numpyro.sample("scale", dist.LogNormal(0.0, 0.5))
        with numpyro.plate("data", data.shape[0]):
            numpyro.sample("obs", dist.Normal(loc, scale), obs=data)

    guide = AutoDiagonalNormalMixture(model, num_components=3, init_scale=0.3)
    svi = SVI(model, guide, numpyro.optim.Adam(0.02), Stratified_ELBO())
    params = svi.get_params(svi.init(jax.random.PRNGKey(0), data))
    return model, guide, params, data


def test_autoguide_stratifies_and_predictive_works():
    """The autoguide's packed latent is one global stratified site (its Delta sites carry the
    stratum axis); Predictive samples as usual."""
    from numpyro_gmm.objectives import _stratify

    model, guide, params, data = autoguide_problem()
    # The packed latent (size 2) is drawn once per component along stratum axis -2 (one plate).
    guide_trace = handlers.trace(
        _stratify(handlers.seed(handlers.substitute(guide, data=params), 0), -2, 64)
    ).get_trace(data)
    shapes = {name: site["value"].shape for name, site in guide_trace.items() if site["type"] == "sample"}
    assert shapes == {"_auto_latent": (3, 1, 2), "loc": (3, 1), "scale": (3, 1)}
    predictive = Predictive(model, guide=guide, params=params, num_samples=7, return_sites=["loc", "scale", "obs"])
    samples = predictive(jax.random.PRNGKey(3), data)
    assert samples["loc"].shape == (7,) and samples["scale"].shape == (7,) and samples["obs"].shape == (7, 5)


@pytest.mark.slow
def test_autoguide_matches_trace_elbo_in_expectation():
    """(The Pyro twin runs in the default suite.)"""
    model, guide, params, data = autoguide_problem()
    stratified, trace = Stratified_ELBO(num_particles=64), Trace_ELBO(num_particles=192)
    keys = jax.random.split(jax.random.PRNGKey(1), 30)
    ours = np.asarray(jax.jit(jax.vmap(lambda k: -stratified.loss(k, params, model, guide, data)))(keys))
    theirs = np.asarray(jax.jit(jax.vmap(lambda k: -trace.loss(k, params, model, guide, data)))(keys))
    difference = (ours.mean() - theirs.mean()) / math.hypot(ours.std(ddof=1), theirs.std(ddof=1)) * math.sqrt(30)
    assert abs(difference) < Z_THRESHOLD


def test_jit_and_vmap_agree_and_mutable_state_passes_through():
    elbo = Stratified_ELBO(num_particles=8)
    keys = jax.random.split(jax.random.PRNGKey(5), 2)
    jitted = jax.jit(elbo.loss, static_argnums=(2, 3))
    mapped = jax.jit(jax.vmap(lambda key: elbo.loss(key, {}, one_d_model, one_d_guide)))(keys)
    for key, value in zip(keys, mapped):
        assert float(jitted(key, {}, one_d_model, one_d_guide)) == pytest.approx(float(value), rel=1e-10)

    def counting_guide():
        counter = mutable("counter", {"calls": jnp.array(0)})
        counter["calls"] = counter["calls"] + 1
        one_d_guide()

    state = jax.jit(lambda key: Stratified_ELBO().loss_with_mutable_state(key, {}, one_d_model, counting_guide))(
        keys[0]
    )
    assert int(state["mutable_state"]["counter"]["calls"]) == 1


# ------------------------------------------------------------------ separated modes
def fitted_components_guide(dims):
    roots = np.sqrt(_separated.OBSERVED[:dims])
    locs = _separated.sign_patterns(dims) * roots
    scales = np.broadcast_to(_separated.NOISE_SCALE / (2 * roots), locs.shape).copy()
    return locs, scales, np.zeros(len(locs))


def test_weight_gradient_carries_signal_where_trace_elbo_starves():
    """As in the Pyro test: components on the modes, equal weights; exact d ELBO / d logit_0 =
    -0.2.  Stratified_ELBO: per-draw SNR > 10; Trace_ELBO with twice the model evaluations:
    median batch gradient > 0.1 away from the exact value."""
    dims = 1
    locs, scales, logits = fitted_components_guide(dims)
    step, shift = 1e-5, np.array([1e-5, 0.0])
    exact = (
        _separated.mixture_elbo(locs, scales, logits + shift, dims)
        - _separated.mixture_elbo(locs, scales, logits - shift, dims)
    ) / (2 * step)
    prior_locs, observed = jnp.asarray(_separated.PRIOR_LOCS[:dims]), jnp.asarray(_separated.OBSERVED[:dims])

    def model():
        z = numpyro.sample("z", dist.Normal(prior_locs, 1.0).to_event(1))
        numpyro.sample("y", dist.Normal(z**2, _separated.NOISE_SCALE).to_event(1), obs=observed)

    def guide():
        numpyro.sample(
            "z", DiagNormalMixture(jnp.asarray(locs), jnp.asarray(scales), numpyro.param("logits", jnp.asarray(logits)))
        )

    samples = {}
    for name, loss in {"stratified": Stratified_ELBO(num_particles=10), "trace": Trace_ELBO(num_particles=40)}.items():
        gradient = jax.grad(lambda p, key: -loss.loss(key, p, model, guide))
        keys = jax.random.split(jax.random.PRNGKey(7), 20)
        samples[name] = np.asarray(
            jax.jit(jax.vmap(gradient, in_axes=(None, 0)))({"logits": jnp.asarray(logits)}, keys)["logits"][:, 0]
        )
    stratified, trace = samples["stratified"], samples["trace"]
    assert exact < -0.15
    assert abs(z_scores(stratified, exact)) < Z_THRESHOLD
    assert abs(stratified.mean()) / (stratified.std() * math.sqrt(10)) > 10.0
    assert abs(np.median(trace) - exact) > 0.1 and abs(np.median(stratified) - exact) < 0.02


def test_separated_modes_weights_learn_fast():
    """(Also: ``svi.run`` with its progress bar.)"""
    error, result = fit_separated(1, Stratified_ELBO(num_particles=4), steps=600, seed=0, progress_bar=True)
    assert error < 0.02
    assert np.all(np.isfinite(result.losses))


@pytest.mark.slow
@pytest.mark.parametrize("dims", [1, 2])
def test_separated_modes_weights_match_exact_masses_over_seeds(dims):
    num_components = 2**dims
    stratified = [fit_separated(dims, Stratified_ELBO(num_particles=8 // num_components), 1500, s)[0] for s in range(4)]
    trace = [fit_separated(dims, Trace_ELBO(num_particles=8), 1500, s)[0] for s in range(4)]
    assert max(stratified) < 0.02, stratified
    assert max(trace) > 0.05 and np.mean(trace) > 0.03, trace


# ------------------------------------------------------------------ float32, masks, errors
def test_float32_gradients_are_finite_on_separated_modes():
    model, guide = separated_problem(2, dtype=jnp.float32)
    params = {
        name: jnp.asarray(a, jnp.float32) for name, a in zip(("locs", "scales", "logits"), _separated.initial_guide(2))
    }
    objective = Stratified_ELBO(num_particles=4)
    loss, gradients = jax.jit(jax.value_and_grad(lambda p: objective.loss(jax.random.PRNGKey(0), p, model, guide)))(
        params
    )
    assert loss.dtype == jnp.float32
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in gradients.values())


def test_masked_mixture_site_is_still_stratified():
    def guide():
        with handlers.mask(mask=False):
            one_d_guide()

    grid = np.linspace(-8, 8, 32001)
    log_q = ref.mixture_log_density_1d(grid, ref.ONE_D["locs"], ref.ONE_D["scales"], ref.ONE_D["logits"])
    exact = float(np.trapezoid(np.exp(log_q) * ref.one_d_log_joint(grid), grid))
    estimates = replicate_estimates(Stratified_ELBO(num_particles=100), one_d_model, guide, 30)
    assert abs(z_scores(estimates, exact)) < Z_THRESHOLD


def pooled_model(keepdim):
    with numpyro.plate("data", 3):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
    if keepdim:
        numpyro.sample("total", dist.Normal(z.sum(-2, keepdims=True), 1.0).to_event(1), obs=jnp.array([[0.5]]))
    else:
        numpyro.sample("total", dist.Normal(z.sum((-2, -1)), 1.0), obs=0.5)


def pooled_guide():
    with numpyro.plate("data", 3):
        numpyro.sample("z", DiagNormalMixture(jnp.zeros((2, 1)), jnp.ones((2, 1)), jnp.zeros(2)))


@pytest.mark.parametrize("keepdim", [True, False])
def test_a_term_pooling_plate_elements_of_a_mixture_site_raises(keepdim):
    with pytest.raises(ValueError, match="Stratified_ELBO: the term of site 'total'") as error:
        traced_loss(Stratified_ELBO(), lambda: pooled_model(keepdim), pooled_guide)
    if keepdim:
        assert "'z'" in str(error.value) and "plate 'data'" in str(error.value)


def test_siwae_with_a_mixture_site_in_an_unshared_plate_raises():
    def model():
        loc = numpyro.sample("loc", dist.Normal(0.0, 1.0))
        with numpyro.plate("data", 3):
            z = numpyro.sample("z", dist.Normal(loc, 1.0).expand([1]).to_event(1))
            numpyro.sample("y", dist.Normal(z[..., 0], 1.0), obs=jnp.zeros(3))

    def guide():
        numpyro.sample("loc", dist.Normal(numpyro.param("m", 0.0), 1.0))
        with numpyro.plate("data", 3):
            numpyro.sample("z", DiagNormalMixture(jnp.zeros((2, 1)), jnp.ones((2, 1)), jnp.zeros(2)))

    assert traced_loss(Stratified_ELBO(), model, guide).shape == ()  # the stratified ELBO is exact here
    with pytest.raises(ValueError, match="importance_weighted=True.*'z'.*plate 'data'"):
        traced_loss(Stratified_ELBO(importance_weighted=True), model, guide)


def test_non_reparameterized_guide_site_raises():
    def model():
        numpyro.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        mixing = dist.Categorical(logits=jnp.zeros(2))
        numpyro.sample("z", dist.MixtureSameFamily(mixing, dist.Normal(jnp.zeros(2), 1.0)))

    with pytest.raises(ValueError, match="site 'z'.*has_rsample=False"):
        traced_loss(Stratified_ELBO(), model, guide)


def test_grid_size_limit_and_to_event_warning_and_arguments():
    def model():
        for i in range(3):
            numpyro.sample(f"z{i}", dist.Normal(0.0, 1.0).expand([1]).to_event(1))

    def guide():
        for i in range(3):
            numpyro.sample(f"z{i}", DiagNormalMixture(jnp.zeros((4, 1)), jnp.ones((4, 1)), jnp.zeros(4)))

    assert traced_loss(Stratified_ELBO(), model, guide).shape == ()  # 4**3 = 64 evaluations
    with pytest.raises(ValueError, match="'z0', 'z1', 'z2'.*64.*max_grid_size=16"):
        traced_loss(Stratified_ELBO(max_grid_size=16), model, guide)

    def event_model():
        numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2, 1]).to_event(2))

    def event_guide():
        numpyro.sample("z", DiagNormalMixture(jnp.zeros((2, 2, 1)), jnp.ones((2, 2, 1)), jnp.zeros((2, 2))).to_event(1))

    with pytest.warns(UserWarning, match="inside .to_event"):
        traced_loss(Stratified_ELBO(), event_model, event_guide)
    for bad in (
        {"num_particles": 0},
        {"num_particles": 1.5},
        {"importance_weighted": 1},
        {"max_grid_size": 0},
        {"max_plate_nesting": -1},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Stratified_ELBO(**bad)


def test_scale_handler_scales_the_estimate():
    key = jax.random.PRNGKey(2)
    elbo = Stratified_ELBO(num_particles=50)
    loss = jax.jit(elbo.loss, static_argnums=(2, 3))
    plain = loss(key, {}, one_d_model, one_d_guide)
    scaled = loss(key, {}, handlers.scale(one_d_model, 3.0), handlers.scale(one_d_guide, 3.0))
    assert float(scaled) == pytest.approx(3.0 * float(plain), rel=1e-10)
