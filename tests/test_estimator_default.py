r"""The ``estimator="auto"`` rule against measured per-sample variances (project issue 7).

Reduced, seeded versions of ``benchmarks/variance_study.py`` (results in
``docs/estimators.md``).  Variances are per-sample variances summed over the entries of a
parameter group; implicit and hybrid gradients share the same draws (common random
numbers), so their ratio is measured far more precisely than either variance.
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

#: Per-configuration sample sizes.  Across 8 draw seeds at these sizes the largest
#: default/better ratio was 1.26 (D = 2, separated configurations) and 1.11 (D = 64),
#: against the 1.5 bound tested; the D = 2 worst case of the default was 6.6 (bound 8).
SAMPLES_D2 = 4096
SAMPLES_D64 = 1024
#: Allowed ratio of the default's variance to the better estimator's (the issue's bound).
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
def rows_d2():
    return _rows(2, SAMPLES_D2)


@pytest.fixture(scope="module")
def rows_d64():
    return _rows(64, SAMPLES_D64)


def _ratio_to_best(row, estimator, group):
    return row.variance[estimator, group] / min(row.variance["implicit", group], row.variance["hybrid", group])


def _describe(row):
    return f"{row.objective}/{row.separation}/K={row.num_components}/D={row.event_size}"


# --------------------------------------------------------------------------- K = 1


@pytest.mark.parametrize("event_size", [1, 3, 16])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_single_component_is_the_reparameterization_trick(event_size, backend):
    """K = 1: implicit and hybrid both give locs_bar = g, scales_bar = g·ε, logits_bar = 0 per sample."""
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
    }
    for name, (locs_bar, scales_bar, logits_bar) in results.items():
        locs_bar, scales_bar, logits_bar = (np.asarray(a) for a in (locs_bar, scales_bar, logits_bar))
        assert locs_bar.shape == (num_samples, 1, event_size), name
        np.testing.assert_allclose(locs_bar[:, 0], cotangent, rtol=1e-12, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(scales_bar[:, 0], cotangent * draws.noise, rtol=1e-10, atol=1e-13, err_msg=name)
        np.testing.assert_allclose(logits_bar, 0.0, atol=1e-12, err_msg=name)


# --------------------------------------------------------------------------- the default rule


def test_default_resolves_from_the_constant():
    assert study.default_estimator(1) == "implicit"
    threshold = shared_math.gradients.AUTO_IMPLICIT_MAX_EVENT_SIZE
    assert study.default_estimator(threshold) == "implicit"
    assert study.default_estimator(threshold + 1) == "hybrid"


@pytest.mark.parametrize("group", ["locs", "scales"])
def test_default_is_near_best_at_d64(rows_d64, group):
    """D = 64, every configuration: default variance <= 1.5 × the better of implicit / hybrid."""
    for row in rows_d64:
        ratio = _ratio_to_best(row, study.default_estimator(64), group)
        assert ratio <= RATIO_BOUND, f"{_describe(row)} {group}: default/best = {ratio:.2f}"


@pytest.mark.parametrize("group", ["locs", "scales"])
def test_default_is_near_best_at_d2_separated(rows_d2, group):
    """D = 2, well-separated components: default variance <= 1.5 × the better estimator.

    (Implicit is 2–100× worse here and heavy-tailed, so a rule choosing it at D = 2 fails.)
    """
    for row in rows_d2:
        if row.separation == "separated":
            ratio = _ratio_to_best(row, study.default_estimator(2), group)
            assert ratio <= RATIO_BOUND, f"{_describe(row)} {group}: default/best = {ratio:.2f}"


def test_default_minimises_the_worst_case_at_d2(rows_d2):
    """D = 2: no rule on D alone is within 1.5× everywhere (well-mixed components favour
    implicit up to ~6.6×, separated ones favour hybrid up to ~100×).  The default must have
    the smaller worst case over the grid, and its cost where it loses stays at the measured
    level (at most 6.6× in this grid; bound 8)."""
    default = study.default_estimator(2)
    other = "implicit" if default == "hybrid" else "hybrid"
    worst = {
        name: max(_ratio_to_best(row, name, group) for row in rows_d2 for group in ("locs", "scales"))
        for name in (default, other)
    }
    assert worst[default] < worst[other], worst
    assert worst[default] <= 8.0, worst


def test_implicit_is_never_worse_at_d1():
    """D = 1: the implicit locs/scales gradient is E[chosen-component gradient | x]
    (r_k g and r_k z_k g), so its variance is never larger (law of total variance).
    Tolerance 2 % for the sampling noise of the difference at N = 4096."""
    for objective, separation, num_components in CONFIGURATIONS:
        row = study.run_configuration(objective, separation, num_components, 1, 4096)
        assert study.default_estimator(1) == "implicit"
        for group in ("locs", "scales"):
            assert row.variance["implicit", group] <= 1.02 * row.variance["hybrid", group], (_describe(row), group)


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


def test_rao_blackwell_is_pyros_locs_scales_gradient_and_never_noisier_than_hybrid(rows_d2, rows_d64):
    """``rao_blackwell`` (r_k g, r_k z_k g) is Pyro's locs/coord_scale gradient at fixed x (to
    1e-12), and its measured variance never exceeds ``hybrid``'s (2 % sampling tolerance)."""
    pytest.importorskip("pyro")
    rng = np.random.default_rng(11)
    mixture = study.make_mixture(4, 5, 3.0, seed=11)
    draws = study.draw(mixture, 64, rng)
    cotangent = rng.standard_normal(draws.x.shape)
    rb_locs, rb_scales, _ = study.rao_blackwell_per_sample(mixture, draws, cotangent)
    pyro_locs, pyro_scales, _ = study.pyro_gradient_at(mixture, draws.x, cotangent)
    np.testing.assert_allclose(rb_locs.sum(0), pyro_locs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rb_scales.sum(0), pyro_scales, rtol=1e-12, atol=1e-12)
    for row in rows_d2 + rows_d64:
        for group in ("locs", "scales"):
            assert row.variance["rao_blackwell", group] <= 1.02 * row.variance["hybrid", group], (_describe(row), group)


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
