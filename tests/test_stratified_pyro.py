r"""``pyro_gmm.Stratified_ELBO`` and the stratification members of the Pyro mixtures.

References are quadratures of the guide *density* (``_stratified_reference``), never the
stratification identity under test.  Monte Carlo checks are z-tests over independent
replicate estimates (their sample standard deviation), seeded, with stated thresholds:
|z| < 4 for each compared entry (a t-statistic with 20-60 degrees of freedom exceeds 4 with
probability < 1e-3).  The separated-mode problem is ``examples/_separated.py`` (modes 180 and
320 posterior sds apart, masses 0.31/0.69 and 0.39/0.61 by quadrature).
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import _stratified_reference as ref
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Predictive, Trace_ELBO

from pyro_gmm import AutoDiagonalNormalMixture, DiagNormalMixture, ReparamMixtureSameFamily, Stratified_ELBO

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))
import _separated

Z_THRESHOLD = 4.0


@pytest.fixture(autouse=True)
def float64_and_fresh_param_store():
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    torch.set_default_dtype(dtype)


def z_scores(samples, reference):
    """``(mean - reference) / (std / sqrt(n))`` over the first axis of ``samples``."""
    samples = np.asarray(samples, dtype=np.float64)
    return (samples.mean(0) - reference) / (samples.std(0, ddof=1) / math.sqrt(samples.shape[0]))


# ------------------------------------------------------------------ problems
def one_d_model():
    z = pyro.sample("z", dist.Normal(ref.ONE_D["prior_loc"], 1.0).expand([1]).to_event(1))
    pyro.sample("y", dist.Normal(z[..., 0] ** 2, ref.ONE_D["noise"]), obs=torch.tensor(ref.ONE_D["observed"]))


def one_d_guide():
    locs = pyro.param("locs", torch.tensor(ref.ONE_D["locs"]))
    scales = pyro.param("scales", torch.tensor(ref.ONE_D["scales"]))
    logits = pyro.param("logits", torch.tensor(ref.ONE_D["logits"]))
    pyro.sample("z", DiagNormalMixture(locs, scales, logits))


def one_d_swap_in_guide():
    """The same guide as a ``ReparamMixtureSameFamily`` of ``Normal(...).to_event(1)`` components."""
    locs = pyro.param("locs", torch.tensor(ref.ONE_D["locs"]))
    scales = pyro.param("scales", torch.tensor(ref.ONE_D["scales"]))
    logits = pyro.param("logits", torch.tensor(ref.ONE_D["logits"]))
    components = dist.Normal(locs, scales).to_event(1)
    pyro.sample("z", ReparamMixtureSameFamily(dist.Categorical(logits=logits), components))


def separated_problem(dims, dtype=torch.float64):
    prior_locs = torch.tensor(_separated.PRIOR_LOCS[:dims], dtype=dtype)
    observed = torch.tensor(_separated.OBSERVED[:dims], dtype=dtype)
    init = [torch.tensor(a, dtype=dtype) for a in _separated.initial_guide(dims)]

    def model():
        z = pyro.sample("z", dist.Normal(prior_locs, 1.0).to_event(1))
        pyro.sample("y", dist.Normal(z**2, _separated.NOISE_SCALE).to_event(1), obs=observed)

    def guide():
        locs = pyro.param("locs", init[0].clone())
        scales = pyro.param("scales", init[1].clone(), constraint=dist.constraints.positive)
        logits = pyro.param("logits", init[2].clone())
        pyro.sample("z", DiagNormalMixture(locs, scales, logits))

    return model, guide


def fit_separated(dims, loss, steps, seed):
    model, guide = separated_problem(dims)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    decay = (0.0025 / 0.05) ** (1.0 / steps)
    svi = SVI(model, guide, pyro.optim.ClippedAdam({"lr": 0.05, "lrd": decay}), loss)
    for _ in range(steps):
        svi.step()
    locs, logits = pyro.param("locs").detach().numpy(), pyro.param("logits").detach().numpy()
    return _separated.weights_error(locs, logits, dims)


# ------------------------------------------------------------------ the stratification members
@pytest.mark.parametrize("batch_shape", [(), (3,)])
def test_component_rsample_is_one_reparameterized_draw_per_component(batch_shape):
    locs = torch.randn(batch_shape + (2, 3), requires_grad=True)
    scales = torch.rand(batch_shape + (2, 3), requires_grad=True)
    logits = torch.randn(batch_shape + (2,), requires_grad=True)
    mixture = DiagNormalMixture(locs, scales + 0.5, logits)
    torch.manual_seed(5)
    draws = mixture.component_rsample((4,))
    assert draws.shape == (4,) + batch_shape + (2, 3)
    torch.manual_seed(5)
    noise = torch.randn((4,) + batch_shape + (2, 3))
    torch.testing.assert_close(draws, locs + (scales + 0.5) * noise)
    locs_bar, scales_bar = torch.autograd.grad(draws.sum(), [locs, scales])
    torch.testing.assert_close(locs_bar, torch.full_like(locs, 4.0))
    torch.testing.assert_close(scales_bar, noise.sum(0))
    torch.testing.assert_close(mixture.mixture_log_weights, torch.log_softmax(logits, -1))
    expanded = mixture.expand((5,) + batch_shape)
    assert expanded.component_rsample().shape == (5,) + batch_shape + (2, 3)
    assert expanded.mixture_log_weights.shape == (5,) + batch_shape + (2,)


@pytest.mark.parametrize("vector_event", [False, True])
def test_swap_in_component_rsample_uses_the_component_sampler(vector_event):
    locs, scales = torch.randn(3, 2, 4), torch.rand(3, 2, 4) + 0.1
    logits = torch.randn(3, 2, requires_grad=True)
    components = dist.Normal(locs, scales).to_event(1) if vector_event else dist.Normal(locs[..., 0], scales[..., 0])
    mixture = ReparamMixtureSameFamily(dist.Categorical(logits=logits), components)
    torch.manual_seed(1)
    draws = mixture.component_rsample((6,))
    torch.manual_seed(1)
    torch.testing.assert_close(draws, components.rsample((6,)))
    assert draws.shape == (6, 3, 2) + ((4,) if vector_event else ())
    torch.testing.assert_close(mixture.mixture_log_weights, torch.log_softmax(logits, -1))
    (logits_bar,) = torch.autograd.grad(mixture.mixture_log_weights[:, 0].sum(), [logits])
    assert torch.all(logits_bar[:, 0] > 0) and torch.all(logits_bar[:, 1] < 0)


# ------------------------------------------------------------------ value and gradient vs quadrature
@pytest.mark.parametrize("guide", [one_d_guide, one_d_swap_in_guide], ids=["diag", "swap_in"])
def test_value_matches_quadrature_mixture_elbo(guide):
    elbo = Stratified_ELBO(num_particles=200)
    estimates = [-elbo.loss(one_d_model, guide) for _ in range(40)]
    exact = ref.elbo_1d(ref.ONE_D["locs"], ref.ONE_D["scales"], ref.ONE_D["logits"])
    assert abs(z_scores(estimates, exact)) < Z_THRESHOLD
    # Not the density of one component: the mixture ELBO differs from both per-component ELBOs by > 0.3 nats.
    assert abs(np.mean(estimates) - exact) < 0.05


def test_gradient_is_unbiased_against_quadrature():
    exact = ref.elbo_gradient_1d(ref.ONE_D["locs"], ref.ONE_D["scales"], ref.ONE_D["logits"])
    elbo = Stratified_ELBO(num_particles=100)
    one_d_guide()
    leaves = [pyro.param(name).unconstrained() for name in ("locs", "scales", "logits")]
    samples = []
    for _ in range(40):
        loss = elbo.differentiable_loss(one_d_model, one_d_guide)
        gradients = torch.autograd.grad(-loss, leaves)
        samples.append(np.concatenate([g.detach().numpy().ravel() for g in gradients]))
    reference = np.concatenate([exact[name].ravel() for name in ("locs", "scales", "logits")])
    scores = z_scores(samples, reference)
    assert np.all(np.abs(scores) < Z_THRESHOLD), scores
    # The logits entries are the ones Trace_ELBO starves; make sure they carry the signal.
    assert np.all(np.abs(reference[-2:]) > 0.1)


def test_vectorized_and_sequential_particles_agree():
    """Same expectation with ``vectorize_particles=False`` (a loop of traces), for the ELBO
    (against quadrature) and for SIWAE with T = 8 (two-sample z-test against vectorized)."""
    exact = ref.elbo_1d(ref.ONE_D["locs"], ref.ONE_D["scales"], ref.ONE_D["logits"])
    elbo = Stratified_ELBO(num_particles=20, vectorize_particles=False)
    estimates = [-elbo.loss(one_d_model, one_d_guide) for _ in range(30)]
    assert abs(z_scores(estimates, exact)) < Z_THRESHOLD
    bounds = {}
    for vectorize in (True, False):
        siwae = Stratified_ELBO(num_particles=8, vectorize_particles=vectorize, importance_weighted=True)
        bounds[vectorize] = np.array([-siwae.loss(one_d_model, one_d_guide) for _ in range(60)])
    difference = bounds[True].mean() - bounds[False].mean()
    error = math.hypot(bounds[True].std(ddof=1), bounds[False].std(ddof=1)) / math.sqrt(60)
    assert abs(difference) < Z_THRESHOLD * error
    assert bounds[False].mean() > exact + 1.0  # a bound far above the ELBO (not the ELBO itself)


# ------------------------------------------------------------------ importance weighted (SIWAE)
def test_siwae_is_tighter_than_the_elbo_and_converges_to_the_evidence():
    log_evidence = ref.log_evidence_1d()
    exact_elbo = ref.elbo_1d(ref.ONE_D["locs"], ref.ONE_D["scales"], ref.ONE_D["logits"])
    means, errors = {}, {}
    for draws, reps in ((1, 400), (64, 100)):
        elbo = Stratified_ELBO(num_particles=draws, importance_weighted=True)
        estimates = np.array([-elbo.loss(one_d_model, one_d_guide) for _ in range(reps)])
        means[draws], errors[draws] = estimates.mean(), estimates.std(ddof=1) / math.sqrt(reps)
    # A lower bound of log p(y) ...
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


def test_siwae_per_datapoint_in_a_plate_shared_by_every_site():
    """All sites inside one data plate: the bound is formed per data point and tends to
    sum_n log p(y_n) (1-D quadrature per point), with subsampling scaled by N/n."""
    observed = torch.tensor([1.0, 0.4, 1.6, 0.9])
    locs = torch.tensor(ref.ONE_D["locs"]).expand(4, 2, 1)
    scales, logits = torch.tensor(ref.ONE_D["scales"]).expand(4, 2, 1), torch.tensor(ref.ONE_D["logits"]).expand(4, 2)
    subsample = torch.tensor([0, 2])

    def model():
        with pyro.plate("data", 4, subsample=subsample) as index:
            z = pyro.sample("z", dist.Normal(ref.ONE_D["prior_loc"], 1.0).expand([1]).to_event(1))
            pyro.sample("y", dist.Normal(z[..., 0] ** 2, ref.ONE_D["noise"]), obs=observed[index])

    def guide():
        with pyro.plate("data", 4, subsample=subsample) as index:
            pyro.sample("z", DiagNormalMixture(locs[index], scales[index], logits[index]))

    def log_joint(y):
        return lambda z: ref.one_d_log_joint(z, {**ref.ONE_D, "observed": y})

    exact = 2.0 * sum(ref.log_evidence_1d(log_joint(float(observed[i]))) for i in subsample)
    elbo = Stratified_ELBO(num_particles=256, importance_weighted=True)
    estimates = np.array([-elbo.loss(model, guide) for _ in range(20)])
    error = estimates.std(ddof=1) / math.sqrt(len(estimates))
    assert estimates.mean() < exact + Z_THRESHOLD * error  # a lower bound in expectation
    assert abs(estimates.mean() - exact) < 0.03


# ------------------------------------------------------------------ structures: plates, several sites
def test_per_datapoint_mixtures_in_a_subsampled_plate():
    """Amortized-style local mixture latents, subsample of 3 of 6: E[estimate] = (6/3) sum of the
    chosen points' ELBOs (quadrature)."""
    rng = np.random.default_rng(3)
    observed = torch.tensor([1.0, 0.5, 1.5, 0.8, 1.2, 0.3])
    locs = torch.tensor(rng.normal(size=(6, 2, 1)))
    scales = torch.tensor(rng.uniform(0.3, 0.8, size=(6, 2, 1)))
    logits = torch.tensor(rng.normal(size=(6, 2)))
    subsample = torch.tensor([0, 3, 4])

    def model():
        with pyro.plate("data", 6, subsample=subsample) as index:
            z = pyro.sample("z", dist.Normal(ref.ONE_D["prior_loc"], 1.0).expand([1]).to_event(1))
            pyro.sample("y", dist.Normal(z[..., 0] ** 2, ref.ONE_D["noise"]), obs=observed[index])

    def guide():
        with pyro.plate("data", 6, subsample=subsample) as index:
            pyro.sample("z", DiagNormalMixture(locs[index], scales[index], logits[index]))

    exact = 2.0 * sum(
        ref.elbo_1d(
            locs[i].numpy(),
            scales[i].numpy(),
            logits[i].numpy(),
            lambda z, y=float(observed[i]): ref.one_d_log_joint(z, {**ref.ONE_D, "observed": y}),
        )
        for i in subsample
    )
    elbo = Stratified_ELBO(num_particles=100)
    estimates = [-elbo.loss(model, guide) for _ in range(30)]
    assert abs(z_scores(estimates, exact)) < Z_THRESHOLD


def two_site_model():
    z1 = pyro.sample("z1", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
    z2 = pyro.sample("z2", dist.Normal(z1, 1.0).to_event(1))
    pyro.sample(
        "y", dist.Normal((z1 + z2)[..., 0], ref.TWO_SITES["noise"]), obs=torch.tensor(ref.TWO_SITES["observed"])
    )


def two_site_guide():
    p = ref.TWO_SITES
    z1 = pyro.sample(
        "z1", DiagNormalMixture(torch.tensor(p["locs1"]), torch.tensor(p["scales1"]), torch.tensor(p["logits1"]))
    )
    # The second site's locations *and weights* depend on the first site's draw.
    locs2 = p["slope"] * z1[..., None, :] + torch.tensor(p["offsets2"])[:, None]  # (..., 2, 1)
    logits2 = p["logit_slope"] * z1 * torch.tensor([1.0, -1.0])  # (..., 2)
    pyro.sample("z2", DiagNormalMixture(locs2, torch.tensor(p["scales2"])[:, None], logits2))


def test_two_dependent_mixture_sites_match_a_2d_quadrature():
    exact = ref.two_site_elbo()
    elbo = Stratified_ELBO(num_particles=100)
    estimates = [-elbo.loss(two_site_model, two_site_guide) for _ in range(30)]
    assert abs(z_scores(estimates, exact)) < Z_THRESHOLD


def test_autoguide_matches_trace_elbo_in_expectation_and_predictive_works():
    """AutoDiagonalNormalMixture on a model with a global latent and a data plate: the stratified
    estimate and Trace_ELBO's estimate of the same ELBO agree (two-sample z-test)."""
    data = torch.tensor([0.3, -0.5, 1.2, 0.8, 0.1])

    def model(data):
        loc = pyro.sample("loc", dist.Normal(0.0, 2.0))
        scale = pyro.sample("scale", dist.LogNormal(0.0, 0.5))
        with pyro.plate("data", len(data)):
            pyro.sample("obs", dist.Normal(loc, scale), obs=data)

    guide = AutoDiagonalNormalMixture(model, num_components=3, init_scale=0.3)
    stratified = Stratified_ELBO(num_particles=64)
    trace = Trace_ELBO(num_particles=192, vectorize_particles=True)
    ours = np.array([-stratified.loss(model, guide, data) for _ in range(30)])
    theirs = np.array([-trace.loss(model, guide, data) for _ in range(30)])
    difference = (ours.mean() - theirs.mean()) / math.hypot(ours.std(ddof=1), theirs.std(ddof=1)) * math.sqrt(30)
    assert abs(difference) < Z_THRESHOLD
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.02}), stratified)
    for _ in range(5):
        svi.step(data)
    samples = Predictive(model, guide=guide, num_samples=7, return_sites=["loc", "scale", "obs"])(data)
    # Pyro's Predictive keeps the guide's plate axis on global sites (the same with AutoDiagonalNormal).
    assert samples["loc"].shape == (7, 1) and samples["scale"].shape == (7, 1) and samples["obs"].shape == (7, 5)
    assert torch.all(samples["scale"] > 0)


def test_jit_loss_is_the_stratified_elbo_and_trains():
    """``jit=True``: compiled once, deterministic given the seed, and the same expectation as
    the quadrature ELBO."""
    compiled = Stratified_ELBO(num_particles=100, jit=True, ignore_jit_warnings=True)
    estimates = [-compiled.loss(one_d_model, one_d_guide) for _ in range(30)]
    exact = ref.elbo_1d(ref.ONE_D["locs"], ref.ONE_D["scales"], ref.ONE_D["logits"])
    assert abs(z_scores(estimates, exact)) < Z_THRESHOLD
    repeated = []
    for _ in range(2):
        pyro.set_rng_seed(11)
        repeated.append(compiled.loss(one_d_model, one_d_guide))
    assert repeated[0] == repeated[1]
    assert len(compiled._compiled) == 1
    svi = SVI(one_d_model, one_d_guide, pyro.optim.Adam({"lr": 0.01}), compiled)
    for _ in range(3):
        assert math.isfinite(svi.step())


# ------------------------------------------------------------------ separated modes
def fitted_components_guide(dims):
    """Components on the modes with the posterior sds (the Laplace approximation), equal weights:
    where SVI's components end up, and where Trace_ELBO's weight gradient starves."""
    roots = np.sqrt(_separated.OBSERVED[:dims])
    locs = _separated.sign_patterns(dims) * roots
    scales = np.broadcast_to(_separated.NOISE_SCALE / (2 * roots), locs.shape).copy()
    return locs, scales, np.zeros(len(locs))


def test_weight_gradient_carries_signal_where_trace_elbo_starves():
    """Components fitted to the two modes of the 1-D separated problem, equal weights: the exact
    d ELBO / d logit_0 (Gauss-Hermite quadrature per component, finite differences) is
    -0.18 (weight must move to the heavier mode).  Stratified_ELBO estimates it with per-draw
    SNR > 10; Trace_ELBO's draws, unbiased in theory, carry almost none of it: with twice the
    model evaluations, its median batch gradient is > 0.1 away from the exact value."""
    dims = 1
    locs, scales, logits = fitted_components_guide(dims)
    step = 1e-5
    shift = np.array([step, 0.0])
    exact = (
        _separated.mixture_elbo(locs, scales, logits + shift, dims)
        - _separated.mixture_elbo(locs, scales, logits - shift, dims)
    ) / (2 * step)

    def model():
        z = pyro.sample("z", dist.Normal(torch.tensor(_separated.PRIOR_LOCS[:dims]), 1.0).to_event(1))
        observed = torch.tensor(_separated.OBSERVED[:dims])
        pyro.sample("y", dist.Normal(z**2, _separated.NOISE_SCALE).to_event(1), obs=observed)

    logits_leaf = torch.tensor(logits, requires_grad=True)

    def guide():
        pyro.sample("z", DiagNormalMixture(torch.tensor(locs), torch.tensor(scales), logits_leaf))

    losses = {
        "stratified": Stratified_ELBO(num_particles=10),
        "trace": Trace_ELBO(num_particles=40, vectorize_particles=True),  # twice the model evaluations
    }
    samples = {}
    for name, loss in losses.items():  # 20 replicate batch means each
        samples[name] = np.array(
            [
                torch.autograd.grad(-loss.differentiable_loss(model, guide), [logits_leaf])[0][0].item()
                for _ in range(20)
            ]
        )
    stratified, trace = samples["stratified"], samples["trace"]
    assert exact < -0.15
    assert abs(z_scores(stratified, exact)) < Z_THRESHOLD
    assert abs(stratified.mean()) / (stratified.std() * math.sqrt(10)) > 10.0  # per-draw SNR
    # Trace_ELBO's typical batch gradient is ~0: its (unbiased) mean lives in rare, huge draws
    # between the modes (docs/estimators.md), so the median batch misses the exact value.
    assert abs(np.median(trace) - exact) > 0.1 and abs(np.median(stratified) - exact) < 0.02


def test_separated_modes_weights_learn_fast():
    error = fit_separated(1, Stratified_ELBO(num_particles=4), steps=600, seed=0)
    assert error < 0.02


@pytest.mark.slow
@pytest.mark.parametrize("dims", [1, 2])
def test_separated_modes_weights_match_exact_masses_over_seeds(dims):
    """Both objectives at equal model evaluations (8 per step), 1500 steps, 4 seeds: the
    stratified weights are within 0.02 of the exact masses for every seed, Trace_ELBO's are not."""
    num_components = 2**dims
    stratified = [fit_separated(dims, Stratified_ELBO(num_particles=8 // num_components), 1500, s) for s in range(4)]
    trace = [fit_separated(dims, Trace_ELBO(num_particles=8, vectorize_particles=True), 1500, s) for s in range(4)]
    assert max(stratified) < 0.02, stratified
    assert max(trace) > 0.05 and np.mean(trace) > 0.03, trace


# ------------------------------------------------------------------ float32, masks, errors
def test_float32_gradients_are_finite_on_separated_modes():
    torch.set_default_dtype(torch.float32)
    model, guide = separated_problem(2, dtype=torch.float32)
    guide()
    leaves = [pyro.param(name).unconstrained() for name in ("locs", "scales", "logits")]
    loss = Stratified_ELBO(num_particles=4).differentiable_loss(model, guide)
    gradients = torch.autograd.grad(loss, leaves)
    assert loss.dtype == torch.float32
    assert all(torch.isfinite(g).all() for g in gradients)


def test_masked_mixture_site_is_still_stratified():
    """``.mask(False)`` removes the guide's log q term; the remaining estimate is E_q[log p]."""

    def guide():
        locs = pyro.param("locs", torch.tensor(ref.ONE_D["locs"]))
        scales = pyro.param("scales", torch.tensor(ref.ONE_D["scales"]))
        logits = pyro.param("logits", torch.tensor(ref.ONE_D["logits"]))
        pyro.sample("z", DiagNormalMixture(locs, scales, logits).mask(False))

    grid = np.linspace(-8, 8, 32001)
    log_q = ref.mixture_log_density_1d(grid, ref.ONE_D["locs"], ref.ONE_D["scales"], ref.ONE_D["logits"])
    exact = float(np.trapezoid(np.exp(log_q) * ref.one_d_log_joint(grid), grid))
    elbo = Stratified_ELBO(num_particles=100)
    estimates = [-elbo.loss(one_d_model, guide) for _ in range(30)]
    assert abs(z_scores(estimates, exact)) < Z_THRESHOLD


def pooled_model(keepdim):
    """An observation outside the plate that sums the plate's mixture latents."""
    with pyro.plate("data", 3):
        z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
    if keepdim:  # the plate axis kept at size 1: the stratum axis stays in place
        pyro.sample("total", dist.Normal(z.sum(-2, keepdim=True), 1.0).to_event(1), obs=torch.tensor([[0.5]]))
    else:  # the plate axis dropped: the stratum axis shifts into the plate axes
        pyro.sample("total", dist.Normal(z.sum((-2, -1)), 1.0), obs=torch.tensor(0.5))


def pooled_guide():
    with pyro.plate("data", 3):
        pyro.sample("z", DiagNormalMixture(torch.zeros(2, 1), torch.ones(2, 1), torch.zeros(2)))


@pytest.mark.parametrize("keepdim", [True, False])
def test_a_term_pooling_plate_elements_of_a_mixture_site_raises(keepdim):
    """Both with Pyro's validation on (its shape check may speak first) and off (ours must)."""
    for validation in (True, False):
        with pyro.validation_enabled(validation):
            with pytest.raises(ValueError, match="site .?total") as error:
                Stratified_ELBO(num_particles=1).loss(lambda: pooled_model(keepdim), pooled_guide)
        if keepdim or not validation:
            assert "Stratified_ELBO: the term of site 'total'" in str(error.value)
        if keepdim:
            assert "'z'" in str(error.value) and "plate 'data'" in str(error.value)


def test_siwae_with_a_mixture_site_in_an_unshared_plate_raises():
    def model():
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 3):
            z = pyro.sample("z", dist.Normal(loc, 1.0).expand([1]).to_event(1))
            pyro.sample("y", dist.Normal(z[..., 0], 1.0), obs=torch.zeros(3))

    def guide():
        pyro.sample("loc", dist.Normal(pyro.param("m", torch.tensor(0.0)), 1.0))
        with pyro.plate("data", 3):
            pyro.sample("z", DiagNormalMixture(torch.zeros(2, 1), torch.ones(2, 1), torch.zeros(2)))

    assert math.isfinite(Stratified_ELBO().loss(model, guide))  # the stratified ELBO is exact here
    with pytest.raises(ValueError, match="importance_weighted=True.*'z'.*plate 'data'"):
        Stratified_ELBO(importance_weighted=True).loss(model, guide)


def test_non_reparameterized_guide_site_raises():
    def model():
        pyro.sample("c", dist.Categorical(logits=torch.zeros(3)))

    def guide():
        pyro.sample("c", dist.Categorical(logits=pyro.param("l", torch.zeros(3))))

    with pytest.raises(ValueError, match="site 'c'.*rsample"):
        Stratified_ELBO().loss(model, guide)


def test_grid_size_limit_and_to_event_warning_and_arguments():
    def model():
        for i in range(3):
            pyro.sample(f"z{i}", dist.Normal(0.0, 1.0).expand([1]).to_event(1))

    def guide():
        for i in range(3):
            pyro.sample(f"z{i}", DiagNormalMixture(torch.zeros(4, 1), torch.ones(4, 1), torch.zeros(4)))

    assert math.isfinite(Stratified_ELBO().loss(model, guide))  # 4**3 = 64 evaluations
    with pytest.raises(ValueError, match="'z0', 'z1', 'z2'.*64.*max_grid_size=16"):
        Stratified_ELBO(max_grid_size=16).loss(model, guide)

    def event_guide():
        with warnings.catch_warnings():
            pyro.sample(
                "z", DiagNormalMixture(torch.zeros(2, 2, 1), torch.ones(2, 2, 1), torch.zeros(2, 2)).to_event(1)
            )

    def event_model():
        pyro.sample("z", dist.Normal(0.0, 1.0).expand([2, 1]).to_event(2))

    with pytest.warns(UserWarning, match="inside .to_event"):
        Stratified_ELBO().loss(event_model, event_guide)
    for bad in ({"num_particles": 0}, {"num_particles": 1.5}, {"importance_weighted": 1}, {"max_grid_size": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Stratified_ELBO(**bad)


def test_handlers_compose():
    """poutine.scale scales every term; the estimate scales with it."""
    elbo = Stratified_ELBO(num_particles=50, max_plate_nesting=0)
    pyro.set_rng_seed(2)
    plain = elbo.loss(one_d_model, one_d_guide)
    pyro.set_rng_seed(2)
    scaled = elbo.loss(poutine.scale(one_d_model, scale=3.0), poutine.scale(one_d_guide, scale=3.0))
    assert scaled == pytest.approx(3.0 * plain, rel=1e-10)
