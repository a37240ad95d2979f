r"""The ``estimator="auto"`` default (``"rao_blackwell"``) against measured per-sample variances
(project issue 7).

Reduced, seeded versions of the variance study ``benchmarks/variance/`` (results in
``docs/estimators.md``); only its computation is imported (``benchmarks.variance``, not its
report or plot).  The estimators are read from the registry ``shared_math.ESTIMATORS``.  Variances are per-sample variances summed over the entries of a
parameter group; implicit, hybrid and rao_blackwell gradients share the same draws (common
random numbers), so their ratios are measured far more precisely than the variances.

The issue's requirement: for ``locs`` and ``scales``, the default's variance is at most
1.5× that of the better of implicit and hybrid at D = 2 and D = 64, for overlapping and
for separated components.  It is tested on the study's grid (3 objectives × 2
separations × K ∈ {2, 8}, one seeded random mixture each).  It does not hold for every
mixture at D = 2: :func:`test_rao_blackwell_loses_to_implicit_when_components_overlap_in_the_first_coordinate`
pins the documented counterexample (ratio K).  :func:`test_rao_blackwell_is_never_noisier_than_hybrid_for_student_t`
extends the law-of-total-variance check to a non-Normal family.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchmarks.variance as study
import shared_math

#: Per-configuration sample sizes (draws seeded by the configuration, as in the study).
#: Measured with 8 other draw seeds (1000..1007) at these sizes, the largest
#: rao_blackwell / better-of-implicit-and-hybrid ratio was, for locs and scales:
#: D = 2: 1.21 with overlapping components (elbo, K = 8, scales) and 1.04 with separated
#: ones; D = 64: 1.03 (overlapping; cosine, K = 2, locs) and 1.00 (separated).
#: Margin to the 1.5 bound: at least 0.29.
SAMPLES_D2 = 4096
SAMPLES_D64 = 512
#: Allowed ratio of the default's variance to the better of implicit / hybrid (the issue's bound).
RATIO_BOUND = 1.5
CONFIGURATIONS = [
    (objective, separation, num_components)
    for objective in study.OBJECTIVES
    for separation in study.SEPARATIONS
    for num_components in study.COMPONENT_COUNTS
]


def _rows(event_size, num_samples):
    return [
        study.run_configuration(objective, separation, num_components, event_size, num_samples)
        for objective, separation, num_components in CONFIGURATIONS
    ]


@pytest.fixture(scope="module")
def rows_by_event_size():
    return {2: _rows(2, SAMPLES_D2), 64: _rows(64, SAMPLES_D64)}


def _describe(row):
    return f"{row.objective}/{row.separation}/K={row.num_components}/D={row.event_size}"


# --------------------------------------------------------------------------- K = 1


@pytest.mark.parametrize("event_size", [1, 3, 16])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_single_component_is_the_reparameterization_trick(event_size, backend):
    """K = 1: every estimator of the registry (implicit, hybrid, rao_blackwell) gives
    locs_bar = g, scales_bar = g·ε, logits_bar = 0 per sample (r_1(x) = 1 and z_1 = ε)."""
    rng = np.random.default_rng(event_size)
    num_samples = 64
    mixture = study.Mixture(
        rng.standard_normal((1, event_size)), np.exp(rng.standard_normal((1, event_size))), np.array([0.3])
    )
    draws = study.draw(mixture, num_samples, rng)
    cotangent = rng.standard_normal((num_samples, event_size))
    locs, scales, logits = study.per_sample_parameters(mixture, num_samples)
    arrays = (draws.x, locs, scales, logits, draws.one_hot, draws.noise, cotangent)
    if backend == "torch":
        torch = pytest.importorskip("torch")
        arrays = tuple(torch.asarray(np.ascontiguousarray(a), dtype=torch.float64) for a in arrays)
    x, locs, scales, logits, one_hot, noise, g = arrays
    results = {
        name: shared_math.sample_vjp(name, x, locs, scales, logits, one_hot, noise, g)
        for name in shared_math.ESTIMATORS
    }
    assert len(results) >= 3
    for name, (locs_bar, scales_bar, logits_bar) in results.items():
        locs_bar, scales_bar, logits_bar = (np.asarray(a) for a in (locs_bar, scales_bar, logits_bar))
        assert locs_bar.shape == (num_samples, 1, event_size), name
        np.testing.assert_allclose(locs_bar[:, 0], cotangent, rtol=1e-12, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(scales_bar[:, 0], cotangent * draws.noise, rtol=1e-10, atol=1e-13, err_msg=name)
        np.testing.assert_allclose(logits_bar, 0.0, atol=1e-12, err_msg=name)


# --------------------------------------------------------------------------- the default


def test_default_is_rao_blackwell_at_every_event_size():
    """The rule has no event-size argument; the study reads it from shared_math."""
    assert shared_math.AUTO_ESTIMATOR == "rao_blackwell"
    assert shared_math.resolve_estimator("auto") == study.auto_estimator() == shared_math.AUTO_ESTIMATOR


@pytest.mark.parametrize("group", ["locs", "scales"])
@pytest.mark.parametrize("separation", ["mixed", "separated"])
@pytest.mark.parametrize("event_size", [2, 64])
def test_default_is_within_the_bound_of_the_better_estimator(rows_by_event_size, event_size, separation, group):
    """D ∈ {2, 64}, overlapping (Δ = 1) and separated (Δ = 8) components, K ∈ {2, 8}, three
    objectives: default variance <= 1.5 × min(implicit, hybrid) at N = 4096 (D = 2) / 512
    (D = 64).  Measured worst over 8 other draw seeds: 1.21 / 1.04 (D = 2, mixed /
    separated), 1.03 / 1.00 (D = 64)."""
    default = study.auto_estimator()
    for row in rows_by_event_size[event_size]:
        if row.separation == separation:
            ratio = study.ratio_to_better(row, default, group)
            assert ratio <= RATIO_BOUND, f"{_describe(row)} {group}: default/better = {ratio:.3f}"


def test_neither_implicit_nor_hybrid_alone_meets_the_bound_at_d2(rows_by_event_size):
    """Why the default is neither: at D = 2 overlapping components favour implicit (hybrid up to
    ~6.6× worse in the study) and separated ones favour hybrid (implicit 5–100× worse,
    heavy-tailed): each exceeds the 1.5 bound somewhere on the grid; asserted > 3 (twice the
    bound), measured 6.6 and 85 on these draws."""
    rows = rows_by_event_size[2]
    for estimator, separation in (("hybrid", "mixed"), ("implicit", "separated")):
        worst = max(
            study.ratio_to_better(row, estimator, group)
            for row in rows
            if row.separation == separation
            for group in ("locs", "scales")
        )
        assert worst > 3.0, (estimator, separation, worst)


def test_rao_blackwell_is_never_noisier_than_hybrid(rows_by_event_size):
    """rao_blackwell's locs/scales gradient is E[hybrid's | x] (law of total variance): its
    measured variance never exceeds hybrid's on the same draws (2 % sampling tolerance;
    measured worst 1.0024 over 8 draw seeds at D = 64, N = 512)."""
    for rows in rows_by_event_size.values():
        for row in rows:
            for group in ("locs", "scales"):
                assert row.variance["rao_blackwell", group] <= 1.02 * row.variance["hybrid", group], (
                    _describe(row),
                    group,
                )


def test_rao_blackwell_is_the_implicit_gradient_at_d1():
    """D = 1: the implicit locs/scales gradient is r_k(x) g and r_k(x) z_k g, i.e. the
    rao_blackwell one, per sample (to 1e-12); on the D = 1 grid its variance is at most
    hybrid's (2 % tolerance for the sampling noise of the difference at N = 4096)."""
    rng = np.random.default_rng(5)
    mixture = study.make_mixture(4, 1, 3.0, seed=5)
    draws = study.draw(mixture, 256, rng)
    cotangent = rng.standard_normal(draws.x.shape)
    gradients = study.registry_per_sample(mixture, draws, cotangent, names=("implicit", "rao_blackwell"))
    for ours, theirs in zip(gradients["rao_blackwell"], gradients["implicit"]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    for objective, separation, num_components in CONFIGURATIONS:
        row = study.run_configuration(objective, separation, num_components, 1, 4096)
        for group in ("locs", "scales"):
            assert row.variance["rao_blackwell", group] <= 1.02 * row.variance["hybrid", group], (_describe(row), group)


def test_rao_blackwell_loses_to_implicit_when_components_overlap_in_the_first_coordinate():
    """The documented limit of the default (docs/estimators.md).  D = 2, K = 8 equal-weight unit
    components with a common mean in x_1, 8σ apart in x_2, h = cos(1.5 x_1): r_k(x) is
    one-hot (up to e^{-8}-small overlaps), so rao_blackwell = hybrid, while the implicit locs
    gradient is π_k g_1; its variance is 1/Σπ_k² = K = 8 times smaller (exact, by quadrature
    on a 101² grid: 7.9993, within 3e-6 of a 201² grid; scales: 13.4×; tolerance 0.1 %).  With the overlapping
    coordinate second, all three agree (ratio 1)."""
    first = study.quadrature_variances(*study.leading_overlap_mixture(8, overlap_first=True), grid_points=101)
    assert first["rao_blackwell", "locs"] / first["implicit", "locs"] == pytest.approx(8.0, rel=1e-3)
    assert first["rao_blackwell", "scales"] / first["implicit", "scales"] > 10.0
    assert first["rao_blackwell", "locs"] == pytest.approx(first["hybrid", "locs"], rel=1e-3)
    second = study.quadrature_variances(*study.leading_overlap_mixture(8, overlap_first=False), grid_points=101)
    for group in ("locs", "scales"):
        assert second["rao_blackwell", group] / second["implicit", group] == pytest.approx(1.0, rel=1e-3)


# --------------------------------------------------------------------------- the study's machinery


@pytest.mark.parametrize("family", ["normal", "student_t"])
def test_per_sample_gradients_sum_to_the_batch_vjp(family):
    """For every estimator of the registry, parameters with an explicit sample axis give
    per-sample gradients that sum to the batch VJP; every estimator's logits gradient is
    the implicit one, per sample (what the study's tables and figure assume)."""
    rng = np.random.default_rng(3)
    mixture = study.make_mixture(3, 5, 2.0, seed=3).with_family(family, (3.0,) if family == "student_t" else ())
    draws = study.draw(mixture, 200, rng)
    cotangent = rng.standard_normal(draws.x.shape)
    per_sample = study.registry_per_sample(mixture, draws, cotangent)
    assert set(per_sample) == set(shared_math.ESTIMATORS)
    for name, gradients in per_sample.items():
        batch = shared_math.sample_vjp(
            name,
            draws.x,
            mixture.locs,
            mixture.scales,
            mixture.logits,
            draws.one_hot,
            draws.noise,
            cotangent,
            **mixture.options,
        )
        for one, total in zip(gradients, batch):
            assert one.shape[0] == 200
            np.testing.assert_allclose(one.sum(0), total, rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(gradients[2], per_sample["implicit"][2], rtol=1e-12, atol=1e-14, err_msg=name)


def test_quadrature_variances_match_monte_carlo():
    """The study's exact D = 2 variances (quadrature, 101² grid, within 1e-13 of a 201² grid) of
    every registry estimator against 32768 Monte Carlo draws of an overlapping mixture (light tails):
    relative difference < 5 % (measured at most 2.2 % over 8 draw seeds)."""
    mixture, objective, seed = study.robustness_mixture("elbo", "mixed", 8, 2, 3)
    exact = study.quadrature_variances(mixture, objective, grid_points=101)
    gradients = study.estimator_gradients(mixture, objective, 32768, seed + 1, include_pyro=False)
    for (estimator, group), value in exact.items():
        assert study.summed_variance(gradients[estimator][group]) == pytest.approx(value, rel=0.05), (estimator, group)


def test_rao_blackwell_is_pyros_locs_scales_gradient():
    """``rao_blackwell`` (r_k g, r_k z_k g) is Pyro's MixtureOfDiagNormals locs/coord_scale
    gradient at fixed x (measured 1.4e-15 relative; tested to 1e-12)."""
    pytest.importorskip("pyro")
    assert study.pyro_rao_blackwell_difference(num_draws=64, seeds=range(2)) < 1e-12


def test_pyro_logits_gradient_is_biased_by_quadrature():
    """D = 2, cosine objective: the expectation of Pyro's MixtureOfDiagNormals logits gradient
    (by quadrature on a 201² grid, no Monte Carlo error) misses the exact gradient by more
    than 100 % (it points the opposite way); its locs/scales and the implicit gradient agree
    to quadrature accuracy (< 1e-6 relative)."""
    pytest.importorskip("pyro")
    row = study.quadrature_bias("cosine", "mixed", 2, grid_points=201)
    assert row.relative_error["pyro", "logits"] > 1.0
    assert row.cosine_logits < -0.9
    for group in ("locs", "scales"):
        assert row.relative_error["pyro", group] < 1e-6
    for group in study.GROUPS:
        assert row.relative_error["implicit", group] < 1e-6


def test_weight_gradient_signal_vanishes_with_separation():
    """1-D, K = 2 ELBO (exact by quadrature): the pathwise logits gradient's per-sample SNR
    falls from > 2 at Δ = 1σ to < 0.02 at Δ = 8σ, while the score-function estimator's rises > 50."""
    close = study.separation_profile(1.0, mc_samples=256)
    far = study.separation_profile(8.0, mc_samples=256)
    assert abs(close.exact) / close.std["implicit"] > 2.0
    assert abs(far.exact) / far.std["implicit"] < 0.02
    assert abs(far.exact) / far.std["score"] > 50.0
    assert far.signal_mass < 1e-3  # half the signal comes from a region of probability < 0.1 %


# --------------------------------------------------------------------------- other component families


@pytest.mark.parametrize("num_components", [2, 8])
def test_rao_blackwell_is_never_noisier_than_hybrid_for_student_t(num_components):
    """Student-t (df = 3) components, D = 4, cosine objective, overlapping and separated:
    rao_blackwell's locs/scales gradient is hybrid's conditional expectation given x, exactly
    per sample (sum over k of r_k(x) · hybrid(x, k, ε = z_k), to 1e-12), so its variance is
    at most hybrid's (law of total variance; N = 2048 common draws, 2 % sampling tolerance;
    measured worst ratio 0.990 over 8 draw seeds)."""
    options = {"family": "student_t", "shape_params": (3.0,)}
    for separation in study.SEPARATIONS:
        row = study.run_configuration("cosine", separation, num_components, 4, 2048, **options)
        for group in ("locs", "scales"):
            assert row.variance["rao_blackwell", group] <= 1.02 * row.variance["hybrid", group], (_describe(row), group)
    rng = np.random.default_rng(17)
    mixture = study.make_mixture(num_components, 4, 3.0, seed=17).with_family(**options)
    draws = study.draw(mixture, 256, rng)
    cotangent = rng.standard_normal(draws.x.shape)
    parameters = study.per_sample_parameters(mixture, 256)
    resp = study.responsibilities(draws.x, mixture)
    z = (draws.x[:, None, :] - mixture.locs) / mixture.scales
    conditional_mean = [0.0, 0.0]
    for k in range(num_components):
        one_hot = np.broadcast_to(np.eye(num_components)[k], resp.shape)
        hybrid = shared_math.hybrid_vjp(draws.x, *parameters, one_hot, z[:, k, :], cotangent, **mixture.options)
        for i in range(2):
            conditional_mean[i] = conditional_mean[i] + resp[:, k, None, None] * hybrid[i]
    rao_blackwell = study.registry_per_sample(mixture, draws, cotangent, names=("rao_blackwell",))["rao_blackwell"]
    for i in range(2):
        np.testing.assert_allclose(conditional_mean[i], rao_blackwell[i], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(
    "family, shape_params", [("normal", ()), ("student_t", (3.0,)), ("gumbel", ()), ("laplace", ())]
)
def test_cosine_exact_gradient_for_families(family, shape_params):
    """The study's closed-form E[cos(ω·x)] (characteristic functions) against numerical
    integration over the standardized density g (D = 1, K = 2; 1e-7 absolute), and its
    gradient against central differences of the closed form (D = 3, K = 2; 1e-6 relative).

    E[cos(a + bε)] = cos a ∫₀^∞ cos(bε)(g(ε) + g(-ε)) dε − sin a ∫₀^∞ sin(bε)(g(ε) − g(-ε)) dε,
    each a Fourier integral (``scipy.integrate.quad`` with a cos/sin weight; the second is
    zero for the symmetric families)."""
    import scipy.integrate

    density = study.mixtures.SCIPY_FAMILIES[family](*shape_params).pdf

    def expected_cosine(a, b):
        even = scipy.integrate.quad(lambda e: density(e) + density(-e), 0, np.inf, weight="cos", wvar=b)[0]
        if family == "gumbel":  # the only asymmetric one here
            odd = scipy.integrate.quad(lambda e: density(e) - density(-e), 0, np.inf, weight="sin", wvar=b)[0]
            return np.cos(a) * even - np.sin(a) * odd
        return np.cos(a) * even

    one_d = study.make_mixture(2, 1, 2.0, seed=1).with_family(family, shape_params)
    objective = study.Cosine(np.array([1.3]))
    integral = sum(
        p * expected_cosine(1.3 * mu, 1.3 * sigma)
        for p, mu, sigma in zip(one_d.probs, one_d.locs[:, 0], one_d.scales[:, 0])
    )
    assert objective.exact_value(one_d) == pytest.approx(integral, abs=1e-7)
    mixture = study.make_mixture(2, 3, 2.0, seed=2).with_family(family, shape_params)
    objective = study.Cosine(np.array([0.9, -0.4, 1.2]))
    exact = objective.exact_gradient(mixture)
    step = 1e-5
    for i, name in enumerate(("locs", "scales", "logits")):
        numeric = np.zeros_like(exact[i])
        for index in np.ndindex(exact[i].shape):
            shifted = []
            for sign in (1.0, -1.0):
                value = getattr(mixture, name).copy()
                value[index] += sign * step
                shifted.append(objective.exact_value(study.mixtures.replace(mixture, **{name: value})))
            numeric[index] = (shifted[0] - shifted[1]) / (2 * step)
        np.testing.assert_allclose(exact[i], numeric, rtol=1e-6, atol=1e-9, err_msg=name)
