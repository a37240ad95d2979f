"""Smoke tests of ``examples/``: each example's ``--quick`` mode, run in-process.

Each test runs an example end to end (a few dozen optimization steps), checks that it
writes its PNG, and checks its numbers against what they must be: exact references where
there is one (quadrature for the demo's evidence and KL), statistical statements with a
stated z-threshold otherwise.  All randomness is seeded, so the tests are deterministic.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


def load_example(name):
    """The module ``examples/<name>.py`` (imported under a private name)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path):
    assert path.is_file(), f"{path} was not written"
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000  # a real figure, not an empty canvas


# ------------------------------------------------------------------------------------- demo maths
def test_bimodal_log_evidence_matches_adaptive_quadrature():
    import _bimodal

    for coordinate, y_d in enumerate(_bimodal.OBSERVED):

        def integrand(z, y_d=y_d):
            return norm.pdf(z, _bimodal.PRIOR_LOC, 1.0) * norm.pdf(y_d, z**2, _bimodal.NOISE_SCALE)

        value, error = integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-13)
        assert _bimodal.log_evidence_per_coordinate()[coordinate] == pytest.approx(math.log(value), abs=1e-9)


def test_bimodal_kl_estimate_matches_grid_integral():
    """``kl_from_draws`` for a Gaussian q against KL(q || p(z|y)) by a 2-D grid integral;
    seeded, 200000 draws, tolerance 5 standard errors."""
    import _bimodal

    loc, scale = np.array([0.8, 1.0]), np.array([0.3, 0.35])
    draws = np.random.default_rng(0).normal(loc, scale, size=(200_000, 2))
    kl, standard_error = _bimodal.kl_from_draws(draws, norm.logpdf(draws, loc, scale).sum(-1))

    grid = np.linspace(-3.0, 4.0, 1401)
    step = grid[1] - grid[0]
    kl_exact = 0.0
    for d in range(2):  # q and the posterior both factorize over coordinates
        log_q = norm.logpdf(grid, loc[d], scale[d])
        log_posterior = np.log(_bimodal.posterior_marginal_density(grid, d))
        kl_exact += np.sum(np.exp(log_q) * (log_q - log_posterior)) * step
    assert 0 < standard_error < 0.01
    assert abs(kl - kl_exact) < 5 * standard_error


def test_bimodal_positive_mode_probability_is_unequal():
    import _bimodal

    weights = [_bimodal.positive_mode_probability(d) for d in range(_bimodal.NUM_COORDINATES)]
    assert weights == pytest.approx([0.688, 0.714], abs=2e-3)


# ------------------------------------------------------------------------------------------- demo
def test_demo_quick(tmp_path):
    demo = load_example("demo")
    results = demo.main(["--quick", "--no-progress", "--no-correlated", "--out", str(tmp_path)])
    assert_png(tmp_path / "demo_posterior.png")
    assert [(r.framework, r.name) for r in results] == [
        (framework, name) for framework in ("Pyro", "NumPyro") for name in demo.GUIDE_STYLES
    ]
    for r in results:
        assert np.isfinite(r.kl) and 0 < r.kl_standard_error < 0.05
        assert r.kl > -4 * r.kl_standard_error  # KL >= 0 up to Monte Carlo error (z-threshold 4)
        assert r.steps == 60 and r.seconds > 0
        assert r.weights.sum() == pytest.approx(1.0, abs=1e-5)
    by_name = {(r.framework, r.name): r for r in results}
    for framework in ("Pyro", "NumPyro"):
        gaussian = by_name[framework, "AutoDiagonalNormal"]
        mixture = by_name[framework, "DiagNormalMixture (hand-written)"]
        # A single Gaussian covers one of four modes (KL about 0.8 at convergence); the
        # hand-written mixture covers all four after a few dozen steps.
        assert gaussian.kl > 0.6
        assert mixture.kl < gaussian.kl - 0.3
        assert 0.3 < mixture.positive_mode_probability(0) < 0.9
    assert "KL = log p(y) - ELBO" in demo.format_table(results)


# -------------------------------------------------------------------------------------------- VAE
@pytest.mark.parametrize("name", ["vae_digits_pyro", "vae_digits_numpyro"])
def test_vae_quick(tmp_path, name):
    example = load_example(name)
    history = example.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    assert_png(tmp_path / f"{name}.png")
    uniform_pixels = -64 * math.log(2.0)  # log-likelihood of a coin flip per pixel
    for posterior in ("gaussian", "mixture"):
        (run,) = history[posterior]
        assert run["epoch"] == [1, 2, 3]
        elbo, iwae = np.array(run["elbo"]), np.array(run["iwae"])
        assert np.all(np.isfinite(elbo)) and np.all(np.isfinite(iwae))
        assert np.all(iwae >= elbo - 0.05)  # IWAE >= ELBO (up to sampling noise at S=32)
        assert elbo[-1] > elbo[0] + 1.0  # training makes progress
        assert uniform_pixels < elbo[-1] < -20.0


@pytest.mark.parametrize(
    "framework",
    ["pyro", pytest.param("numpyro", marks=pytest.mark.slow)],  # NumPyro: 3 x 2 compilations
)
def test_vae_missing_digits_quick(tmp_path, framework):
    example = load_example("vae_missing_digits")
    masks = example.pixel_masks(50, 0)
    assert np.all(masks.sum(1) == 32) and not np.all(masks == masks[0])  # half of each image, varying
    history = example.main(["--quick", "--no-progress", "--framework", framework, "--out", str(tmp_path)])
    assert_png(tmp_path / f"vae_missing_digits_{framework}.png")
    coin_flips = -32 * math.log(2.0)  # a coin flip per *observed* pixel (64 pixels would be twice that)
    for configuration in example.CONFIGURATIONS:
        (run,) = history[configuration]
        assert run["epoch"] == [1, 2, 3]
        elbo, iwae = np.array(run["elbo"]), np.array(run["iwae"])
        assert np.all(np.isfinite(elbo)) and np.all(iwae >= elbo - 0.05)
        assert elbo[-1] > elbo[0] + 1.0  # training makes progress
        assert coin_flips < iwae[-1] < -10.0  # only the 32 observed pixels are scored
        top_weight = run["top_weight"][-1]
        if configuration == "gaussian":
            assert math.isnan(top_weight)
        else:
            assert 1.0 / 4 <= top_weight <= 1.0


# ---------------------------------------------------------------------------------------- swap-in
def test_swap_in_quick(tmp_path):
    swap_in = load_example("swap_in")
    results, exact = swap_in.main(["--quick", "--out", str(tmp_path)])
    assert_png(tmp_path / "swap_in.png")

    def z_score(framework, label, name):
        draws = results[framework][label]["gradients"][name][:, 0]
        return (draws.mean() - exact[name][0]) / (draws.std(ddof=1) / math.sqrt(draws.shape[0]))

    # 300 one-particle estimates each; |z| < 4 means consistent with the exact gradient.
    for framework in ("NumPyro", "Pyro"):
        for name in ("logits", "locs"):
            assert abs(z_score(framework, "ReparamMixtureSameFamily", name)) < 4
    # Pyro's stock class uses the (unbiased) score-function estimator.
    assert abs(z_score("Pyro", "stock MixtureSameFamily", "logits")) < 4
    # NumPyro's stock class gives the logits a zero-mean gradient: far from the exact one,
    # and consistent with zero.
    assert z_score("NumPyro", "stock MixtureSameFamily", "logits") > 4
    stock = results["NumPyro"]["stock MixtureSameFamily"]["gradients"]["logits"][:, 0]
    assert abs(stock.mean()) < 4 * stock.std(ddof=1) / math.sqrt(stock.shape[0])
    # With the swap, the first weight moves toward its target 0.7 within 150 steps.
    weights = results["NumPyro"]["ReparamMixtureSameFamily"]["runs"][0]["weights"]
    assert weights[-1] > 0.55
