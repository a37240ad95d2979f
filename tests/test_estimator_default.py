r"""The ``estimator="auto"`` default (``"rao_blackwell"``) against measured per-sample variances
(project issue 7).

Reduced, seeded versions of ``benchmarks/variance_study.py`` (results in
``docs/estimators.md``).  Variances are per-sample variances summed over the entries of a
parameter group; implicit, hybrid and rao_blackwell gradients share the same draws (common
random numbers), so their ratios are measured far more precisely than the variances.

The issue's requirement: for ``locs`` and ``scales``, the default's variance is at most
1.5× that of the better of implicit and hybrid at D = 2 and D = 64, for overlapping and
for separated components.  It is tested on the study's grid (3 objectives × 2
separations × K ∈ {2, 8}, one seeded random mixture each).  It does not hold for every
mixture at D = 2: :func:`test_rao_blackwell_loses_to_implicit_when_components_overlap_in_the_first_coordinate`
pins the documented counterexample (ratio K).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import shared_math  # noqa: E402
import variance_study as study  # noqa: E402

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


def _ratio_to_better(row, estimator, group):
    return row.variance[estimator, group] / min(row.variance["implicit", group], row.variance["hybrid", group])


def _describe(row):
    return f"{row.objective}/{row.separation}/K={row.num_components}/D={row.event_size}"


# --------------------------------------------------------------------------- K = 1


@pytest.mark.parametrize("event_size", [1, 3, 16])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_single_component_is_the_reparameterization_trick(event_size, backend):
    """K = 1: implicit, hybrid and rao_blackwell all give locs_bar = g, scales_bar = g·ε,
    logits_bar = 0 per sample (r_1(x) = 1 and z_1 = ε)."""
    rng = np.random.default_rng(event_size)
    num_samples = 64
    mixture = study.Mixture(rng.standard_normal((1, event_size)), np.exp(rng.standard_normal((1, event_size))), np.array([0.3]))
    draws = study.draw(mixture, num_samples, rng)
    cotangent = rng.standard_normal((num_samples, event_size))
    locs, scales, logits = study.per_sample_parameters(mixture, num_samples)
    arrays = (draws.x, locs, scales, logits, draws.one_hot, draws.noise, cotangent)
    if backend == "torch":
        torch = pytest.importorskip("torch")
        arrays = tuple(torch.asarray(np.ascontiguousarray(a), dtype=torch.float64) for a in arrays)
    x, locs, scales, logits, one_hot, noise, g = arrays
    results = {
        "implicit": shared_math.implicit_vjp(x, locs, scales, logits, g),
        "hybrid": shared_math.hybrid_vjp(x, locs, scales, logits, one_hot, noise, g),
        "rao_blackwell": shared_math.rao_blackwell_vjp(x, locs, scales, logits, g),
    }
    for name, (locs_bar, scales_bar, logits_bar) in results.items():
        locs_bar, scales_bar, logits_bar = (np.asarray(a) for a in (locs_bar, scales_bar, logits_bar))
        assert locs_bar.shape == (num_samples, 1, event_size), name
        np.testing.assert_allclose(locs_bar[:, 0], cotangent, rtol=1e-12, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(scales_bar[:, 0], cotangent * draws.noise, rtol=1e-10, atol=1e-13, err_msg=name)
        np.testing.assert_allclose(logits_bar, 0.0, atol=1e-12, err_msg=name)


# --------------------------------------------------------------------------- the default


def test_default_is_rao_blackwell_at_every_event_size():
    assert shared_math.AUTO_ESTIMATOR == "rao_blackwell"
    for event_size in (1, 2, 8, 64, 128):
        assert study.default_estimator(event_size) == shared_math.AUTO_ESTIMATOR


@pytest.mark.parametrize("group", ["locs", "scales"])
@pytest.mark.parametrize("separation", ["mixed", "separated"])
@pytest.mark.parametrize("event_size", [2, 64])
def test_default_is_within_the_bound_of_the_better_estimator(rows_by_event_size, event_size, separation, group):
    """D ∈ {2, 64}, overlapping (Δ = 1) and separated (Δ = 8) components, K ∈ {2, 8}, three
    objectives: default variance <= 1.5 × min(implicit, hybrid) at N = 4096 (D = 2) / 512
    (D = 64).  Measured worst over 8 other draw seeds: 1.21 / 1.04 (D = 2, mixed /
    separated), 1.03 / 1.00 (D = 64)."""
    default = study.default_estimator(event_size)
    for row in rows_by_event_size[event_size]:
        if row.separation == separation:
            ratio = _ratio_to_better(row, default, group)
            assert ratio <= RATIO_BOUND, f"{_describe(row)} {group}: default/better = {ratio:.3f}"


def test_neither_implicit_nor_hybrid_alone_meets_the_bound_at_d2(rows_by_event_size):
    """Why the default is neither: at D = 2 overlapping components favour implicit (hybrid up to
    ~6.6× worse in the study) and separated ones favour hybrid (implicit 5–100× worse,
    heavy-tailed): each exceeds the 1.5 bound somewhere on the grid; asserted > 3 (twice the
    bound), measured 6.6 and 85 on these draws."""
    rows = rows_by_event_size[2]
    for estimator, separation in (("hybrid", "mixed"), ("implicit", "separated")):
        worst = max(_ratio_to_better(row, estimator, group) for row in rows if row.separation == separation for group in ("locs", "scales"))
        assert worst > 3.0, (estimator, separation, worst)


def test_rao_blackwell_is_never_noisier_than_hybrid(rows_by_event_size):
    """rao_blackwell's locs/scales gradient is E[hybrid's | x] (law of total variance): its
    measured variance never exceeds hybrid's on the same draws (2 % sampling tolerance;
    measured worst 1.0024 over 8 draw seeds at D = 64, N = 512)."""
    for rows in rows_by_event_size.values():
        for row in rows:
            for group in ("locs", "scales"):
                assert row.variance["rao_blackwell", group] <= 1.02 * row.variance["hybrid", group], (_describe(row), group)


def test_rao_blackwell_is_the_implicit_gradient_at_d1():
    """D = 1: the implicit locs/scales gradient is r_k(x) g and r_k(x) z_k g, i.e. the
    rao_blackwell one, per sample (to 1e-12); on the D = 1 grid its variance is at most
    hybrid's (2 % tolerance for the sampling noise of the difference at N = 4096)."""
    rng = np.random.default_rng(5)
    mixture = study.make_mixture(4, 1, 3.0, seed=5)
    draws = study.draw(mixture, 256, rng)
    cotangent = rng.standard_normal(draws.x.shape)
    implicit = study.implicit_per_sample(mixture, draws, cotangent)
    rao_blackwell = study.rao_blackwell_per_sample(mixture, draws, cotangent)
    for ours, theirs in zip(rao_blackwell, implicit):
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
    on a 201² grid: 7.9993; scales: 13.4×; tolerance 0.1 %).  With the overlapping
    coordinate second, all three agree (ratio 1)."""
    first = study.quadrature_variances(*study.leading_overlap_mixture(8, overlap_first=True), grid_points=201)
    assert first["rao_blackwell", "locs"] / first["implicit", "locs"] == pytest.approx(8.0, rel=1e-3)
    assert first["rao_blackwell", "scales"] / first["implicit", "scales"] > 10.0
    assert first["rao_blackwell", "locs"] == pytest.approx(first["hybrid", "locs"], rel=1e-3)
    second = study.quadrature_variances(*study.leading_overlap_mixture(8, overlap_first=False), grid_points=201)
    for group in ("locs", "scales"):
        assert second["rao_blackwell", group] / second["implicit", group] == pytest.approx(1.0, rel=1e-3)


# --------------------------------------------------------------------------- the study's machinery


def test_per_sample_gradients_sum_to_the_batch_vjp():
    """Parameters with an explicit sample axis give per-sample gradients that sum to the batch VJP."""
    rng = np.random.default_rng(3)
    mixture = study.make_mixture(3, 5, 2.0, seed=3)
    draws = study.draw(mixture, 200, rng)
    cotangent = rng.standard_normal(draws.x.shape)
    per_sample = study.implicit_per_sample(mixture, draws, cotangent)
    batch = shared_math.implicit_vjp(draws.x, mixture.locs, mixture.scales, mixture.logits, cotangent)
    for one, total in zip(per_sample, batch):
        assert one.shape[0] == 200
        np.testing.assert_allclose(one.sum(0), total, rtol=1e-10, atol=1e-12)
    # The study reuses the implicit logits sweep for hybrid: identical to shared_math.hybrid_vjp.
    reused = study.hybrid_per_sample(mixture, draws, cotangent, implicit_logits=per_sample[2])
    direct = study.hybrid_per_sample(mixture, draws, cotangent)
    for a, b in zip(reused, direct):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_quadrature_variances_match_monte_carlo():
    """The study's exact D = 2 variances (quadrature, 201² grid) of implicit, hybrid and
    rao_blackwell against 32768 Monte Carlo draws of an overlapping mixture (light tails):
    relative difference < 5 % (measured at most 2.2 % over 8 draw seeds)."""
    mixture, objective, seed = study.robustness_mixture("elbo", "mixed", 8, 2, 3)
    exact = study.quadrature_variances(mixture, objective, grid_points=201)
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


def test_generated_blocks_are_replaced_in_place(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text("intro\n<!-- generated:a -->\nold\n<!-- /generated:a -->\noutro\n")
    study.update_generated_blocks(path, {"a": "new", "b": "added"})
    text = path.read_text()
    assert "old" not in text and "new" in text and text.index("outro") < text.index("added")
    assert text.startswith("intro\n")
