r"""Monte Carlo unbiasedness of numpyro_gmm sample gradients (every estimator).

For objectives with closed-form expectations under the mixture,

* :math:`E[\cos(\omega\cdot x)] = \sum_k \pi_k \cos(\omega\cdot\mu_k)\exp(-\tfrac12\sum_d\omega_d^2\sigma_{kd}^2)`,
* a polynomial mixing the coordinates, :math:`h(x) = a\cdot x + b\cdot x^2 + \sum_d c_d x_d x_{d+1} + e\,x_0^3`,
  with :math:`E = \sum_k \pi_k\,[a\cdot\mu_k + b\cdot(\mu_k^2+\sigma_k^2)
  + \sum_d c_d\mu_{kd}\mu_{k,d+1} + e(\mu_{k0}^3 + 3\mu_{k0}\sigma_{k0}^2)]`,

the exact gradient is ``jax.grad`` of the closed form, and the mean of N per-sample
pathwise gradients must match it: every entry's z-score
:math:`(\bar g - g^\star)/(s/\sqrt N)` must satisfy :math:`|z| < 5` (two objectives x all
parameter entries, at most ~100 entries, so a false alarm has probability < 1e-4; seeds are
fixed).  Default run: N = 20000, one configuration; ``slow``: N = 400000 over several
(K, D).
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from numpyro_gmm import DiagNormalMixture

Z_THRESHOLD = 5.0


def make_problem(num_components, event_size, seed):
    rng = np.random.default_rng(seed)
    params = (
        jnp.asarray(rng.normal(size=(num_components, event_size))),
        jnp.asarray(np.exp(0.3 * rng.normal(size=(num_components, event_size)))),
        jnp.asarray(0.5 * rng.normal(size=(num_components,))),
    )
    coefficients = {
        "omega": jnp.asarray(rng.normal(size=event_size) / np.sqrt(event_size)),
        "a": jnp.asarray(rng.normal(size=event_size)),
        "b": jnp.asarray(rng.normal(size=event_size) * 0.3),
        "c": jnp.asarray(rng.normal(size=max(event_size - 1, 0)) * 0.3),
        "e": 0.1,
    }
    return params, coefficients


def objectives(x, co):
    """``[cos(omega . x), polynomial(x)]`` for one point ``x`` of shape ``(D,)``."""
    polynomial = co["a"] @ x + co["b"] @ (x * x) + co["c"] @ (x[:-1] * x[1:]) + co["e"] * x[0] ** 3
    return jnp.stack([jnp.cos(co["omega"] @ x), polynomial])


def exact_expectations(locs, scales, logits, co):
    pi = jax.nn.softmax(logits)
    cosine = jnp.sum(pi * jnp.cos(locs @ co["omega"]) * jnp.exp(-0.5 * jnp.sum(co["omega"] ** 2 * scales**2, -1)))
    per_component = (
        locs @ co["a"]
        + (locs**2 + scales**2) @ co["b"]
        + (locs[:, :-1] * locs[:, 1:]) @ co["c"]
        + co["e"] * (locs[:, 0] ** 3 + 3 * locs[:, 0] * scales[:, 0] ** 2)
    )
    return jnp.stack([cosine, jnp.sum(pi * per_component)])


def gradient_moments(sample, params, co, num_samples, seed, chunk_size=20000):
    """Per-entry mean and standard error of N per-sample Jacobians of the two objectives
    (one key per draw), accumulated over chunks of ``chunk_size`` draws to bound memory."""

    def one(key):
        return jax.jacrev(lambda *p: objectives(sample(key, *p), co), (0, 1, 2))(*params)

    @jax.jit
    def chunk_sums(keys):
        jacobians = jax.vmap(one)(keys)
        return [jnp.sum(j, 0) for j in jacobians], [jnp.sum(j * j, 0) for j in jacobians]

    keys = jax.random.split(jax.random.key(seed), num_samples).reshape(-1, chunk_size)
    sums = squares = None
    for chunk in keys:
        s1, s2 = chunk_sums(chunk)
        sums = s1 if sums is None else [a + b for a, b in zip(sums, s1)]
        squares = s2 if squares is None else [a + b for a, b in zip(squares, s2)]
    means = [np.asarray(a) / num_samples for a in sums]
    variances = [(np.asarray(q) - num_samples * m * m) / (num_samples - 1) for q, m in zip(squares, means)]
    return means, [np.sqrt(np.maximum(v, 0.0) / num_samples) for v in variances]


def max_abs_z(moments, exact):
    """Largest |z| over all entries; entries with zero spread count as infinite unless exact."""
    worst = 0.0
    for mean, standard_error, target in zip(*moments, exact):
        target = np.asarray(target)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(standard_error > 0, (mean - target) / standard_error, np.where(mean == target, 0.0, np.inf))
        worst = max(worst, float(np.max(np.abs(z))))
    return worst


def check_unbiased(estimator, num_components, event_size, num_samples, seed):
    params, co = make_problem(num_components, event_size, seed)

    def sample(key, locs, scales, logits):
        return DiagNormalMixture(locs, scales, logits, estimator=estimator).sample(key)

    moments = gradient_moments(sample, params, co, num_samples, seed + 1)
    exact = jax.jacrev(exact_expectations, (0, 1, 2))(*params, co)
    z = max_abs_z(moments, exact)
    assert z < Z_THRESHOLD, f"{estimator}, K={num_components}, D={event_size}, N={num_samples}: max |z| = {z:.2f}"
    return z


@pytest.mark.parametrize("estimator", ["implicit", "hybrid"])
def test_unbiased_fast(estimator):
    """K=3, D=3, N=20000: |z| < 5 for all 2 x (9 + 9 + 3) gradient entries."""
    check_unbiased(estimator, 3, 3, 20000, seed=100)


def test_z_test_detects_a_biased_estimator():
    """Power check: NumPyro's MixtureSameFamily sample carries no gradient to the logits
    (it is differentiable only through the chosen component), which the same z-test
    rejects with N=20000."""
    params, co = make_problem(3, 3, 100)

    def sample(key, locs, scales, logits):
        base = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(locs, scales).to_event(1))
        return base.sample(key)

    moments = gradient_moments(sample, params, co, 20000, 101)
    exact = jax.jacrev(exact_expectations, (0, 1, 2))(*params, co)
    assert max_abs_z(moments, exact) > Z_THRESHOLD


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["implicit", "hybrid", "rao_blackwell"])
@pytest.mark.parametrize("num_components, event_size", [(2, 1), (3, 3), (4, 8), (3, 16)])
def test_unbiased_slow(estimator, num_components, event_size):
    """N=400000 per configuration; |z| < 5."""
    check_unbiased(estimator, num_components, event_size, 400000, seed=200 + 10 * num_components + event_size)
