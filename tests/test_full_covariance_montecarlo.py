r"""Unbiasedness of the full-covariance sample-gradient estimators on :math:`E[\cos(\omega\cdot x)]`.

The expectation has the closed form
:math:`E[h] = \sum_k\pi_k\cos(\omega^\top\mu_k)\exp(-\tfrac12|L_k^\top\omega|^2)`; its exact
gradient with respect to ``locs``, ``scale_tril`` (lower triangle) and ``logits`` comes from
torch autograd of that formula (``_reference_full_covariance.exact_cosine_gradient``).  Each
estimator turns draws into gradients with the cotangent :math:`g = -\sin(\omega\cdot x)\,\omega`.

* **Monte Carlo** (D = 3 and 4, components overlapping, factors weakly correlated: strictly
  lower entries N(0, 0.15²)): :math:`N = 200\times100` draws; the parameters get a batch axis
  of 200, so one call returns the sums over 100 draws of 200 independent batches, and every
  gradient entry's z-score over the 200 batch means must satisfy :math:`|z| < 4.5` (about
  60 entries per estimator and mixture; seeded).  A power check: with no pathwise
  ``logits`` gradient (what NumPyro's ``MixtureSameFamily.sample`` gives) the same test
  fails by a wide margin.
* **Why weakly correlated.**  With strongly correlated factors (lower entries N(0, 0.5²))
  the *implicit* gradient is heavy-tailed even for overlapping components: Hill estimates
  of the tail index of 1.2-2.0 (infinite variance; single draws 10^4 times the median),
  so z-scores are not normal and Monte Carlo cannot test its mean.  The ``logits``
  gradient, implicit in all three estimators, shares this.  There the expectation is
  checked without Monte Carlo error:
* **Quadrature** (D = 2, K = 3, strongly correlated, separated components): the
  expectation of each estimator as an integral over a 300 x 300 grid on [-7, 7]^2 (x for
  ``implicit``/``rao_blackwell``; :math:`\varepsilon` per component for ``hybrid``), formed
  in one call each by passing the cotangent :math:`p(x)\,\Delta\,g(x)`; it must equal the
  exact gradient to 1e-5 (max-norm relative; measured 1e-7, the truncation of the box).
"""

from __future__ import annotations

import _reference_full_covariance as ref
import numpy as np
import pytest

import shared_math.full_covariance as fc

BATCHES, PER_BATCH = 200, 100
Z_THRESHOLD = 4.5
ESTIMATORS = ("implicit", "hybrid", "rao_blackwell")

MIXTURES = {
    # name: (K, D, spread of the means, seed)
    "K2-D3": (2, 3, 0.7, 3),
    "K3-D4": (3, 4, 0.7, 4),
}


def _batch_gradients(estimator, name):
    num_components, event_size, spread, seed = MIXTURES[name]
    rng = np.random.default_rng(seed)
    locs, scale_tril, logits = ref.random_mixture(rng, (), num_components, event_size, spread=spread, off_diagonal=0.15)
    omega = 1.5 * rng.standard_normal(event_size) / np.sqrt(event_size)
    x, component, noise = ref.sample_mixture(rng, locs, scale_tril, logits, (PER_BATCH, BATCHES))
    one_hot = (component[..., None] == np.arange(num_components)).astype(np.float64)
    cotangent = -np.sin(x @ omega)[..., None] * omega
    batched = [np.broadcast_to(a, (BATCHES,) + a.shape) for a in (locs, scale_tril, logits)]
    if estimator == "chosen_component_only":  # no pathwise gradient for the weights
        bars = fc.full_covariance_hybrid_vjp(x, *batched, one_hot, noise, cotangent)
        bars = (bars[0], bars[1], np.zeros_like(bars[2]))
    else:
        bars = fc.full_covariance_sample_vjp(estimator, x, *batched, one_hot, noise, cotangent)
    exact = ref.exact_cosine_gradient(omega, locs, scale_tril, logits)[1:]
    return [b / PER_BATCH for b in bars], exact


def _z_scores(batch_means, exact):
    mean = batch_means.mean(0)
    standard_error = batch_means.std(0, ddof=1) / np.sqrt(batch_means.shape[0])
    error = mean - exact
    # Entries without noise (the upper triangle of scale_tril; a missing gradient) must be exact.
    exact_entries = np.where(np.abs(error) < 1e-12, 0.0, np.inf)
    return np.where(standard_error > 0, error / np.where(standard_error > 0, standard_error, 1.0), exact_entries)


@pytest.mark.parametrize("name", list(MIXTURES))
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_estimators_are_unbiased_monte_carlo(estimator, name):
    """Every entry of every parameter's gradient: |z| < 4.5 against the closed-form gradient."""
    batch_means, exact = _batch_gradients(estimator, name)
    for parameter, means, target in zip(("locs", "scale_tril", "logits"), batch_means, exact):
        z = _z_scores(means, target)
        assert np.max(np.abs(z)) < Z_THRESHOLD, f"{estimator} {parameter}: max |z| = {np.max(np.abs(z)):.2f}"


def test_the_monte_carlo_test_detects_a_missing_weight_gradient():
    """Power: with no pathwise ``logits`` gradient the logits z-scores are infinite (locs/scale_tril still pass)."""
    batch_means, exact = _batch_gradients("chosen_component_only", "K3-D4")
    assert np.max(np.abs(_z_scores(batch_means[0], exact[0]))) < Z_THRESHOLD
    assert np.max(np.abs(_z_scores(batch_means[2], exact[2]))) > 10.0


QUADRATURE_MIXTURE = dict(
    locs=np.array([[-2.0, 0.5], [1.5, -1.0], [0.5, 2.0]]),
    scale_tril=np.array([[[0.6, 0.0], [0.9, 0.4]], [[0.8, 0.0], [-0.7, 0.5]], [[0.5, 0.0], [0.0, 0.9]]]),
    logits=np.array([0.3, -0.2, 0.0]),
)
OMEGA = np.array([0.9, -0.6])


def _quadrature_expectation(estimator, points=300, half_width=7.0):
    locs, scale_tril, logits = (QUADRATURE_MIXTURE[k] for k in ("locs", "scale_tril", "logits"))
    grid = np.linspace(-half_width, half_width, points)
    cell = (grid[1] - grid[0]) ** 2
    nodes = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)

    def cotangent(x, weights):
        return -np.sin(x @ OMEGA)[:, None] * OMEGA * weights[:, None]

    if estimator != "hybrid":  # integral over x of p(x) times the per-point gradient
        density = np.exp(fc.full_covariance_log_prob(nodes, locs, scale_tril, logits))
        return fc.full_covariance_sample_vjp(
            estimator, nodes, locs, scale_tril, logits, None, None, cotangent(nodes, density * cell)
        )
    # sum_k pi_k times the integral over eps of N(eps) times the gradient at x = mu_k + L_k eps
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    normal = np.exp(-0.5 * np.sum(nodes**2, -1)) / (2 * np.pi)
    total = None
    for k in range(len(logits)):
        x = locs[k] + nodes @ scale_tril[k].T
        one_hot = np.zeros((len(nodes), len(logits)))
        one_hot[:, k] = 1.0
        bars = fc.full_covariance_hybrid_vjp(
            x, locs, scale_tril, logits, one_hot, nodes, cotangent(x, probs[k] * normal * cell)
        )
        total = bars if total is None else [a + b for a, b in zip(total, bars)]
    return total


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_estimators_are_unbiased_by_quadrature(estimator):
    """D = 2, strongly correlated and separated components: E[estimator] = exact gradient to 1e-5."""
    import _reference as diag_ref

    exact = ref.exact_cosine_gradient(OMEGA, *(QUADRATURE_MIXTURE[k] for k in ("locs", "scale_tril", "logits")))[1:]
    for name, expectation, target in zip(("locs", "scale_tril", "logits"), _quadrature_expectation(estimator), exact):
        diag_ref.assert_close(expectation, target, 1e-5, what=f"{estimator} {name}")
