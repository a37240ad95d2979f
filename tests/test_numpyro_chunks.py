"""The NumPyro tangent rules in sample chunks (``numpyro_gmm._sampling._tangent_in_chunks``).

Above ``CHUNK_ELEMENTS`` entries per sweep array the rules map over chunks of the sample axes
(padded to whole chunks, rematerialized in reverse mode).  The results must not depend on
it: with a chunk of a few samples (uneven, so the padding is exercised) every estimator's
draw, reverse-mode gradient, forward-mode derivative, second derivative and ``vmap`` equal
those of one pass to 1e-12 (float64), for diagonal, Student-t and full-covariance
components, with sample and batch shapes.
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

import numpyro_gmm
from numpyro_gmm import _sampling

SAMPLE_SHAPE = (7, 3)  # 21 samples: chunks of 4 leave one padded chunk
BATCH = 2
K, D = 3, 4


@pytest.fixture
def chunk_of_four(monkeypatch):
    """``CHUNK_ELEMENTS`` for chunks of 4 samples of a ``(BATCH, K, D)`` mixture; caches
    cleared before and after (jitted functions read the constant when traced)."""
    jax.clear_caches()
    monkeypatch.setattr(_sampling, "CHUNK_ELEMENTS", 4 * BATCH * K * D)
    monkeypatch.setattr(_sampling, "FULL_COVARIANCE_MIN_CHUNK_SAMPLES", 1)
    yield
    jax.clear_caches()


def _parameters(seed=0):
    rng = np.random.default_rng(seed)
    locs = rng.normal(size=(BATCH, K, D)) * 1.5
    scales = np.exp(0.3 * rng.normal(size=(BATCH, K, D)))
    logits = rng.normal(size=(BATCH, K))
    strict = np.tril(rng.normal(size=(BATCH, K, D, D)), -1) * 0.4
    scale_tril = strict + np.eye(D) * np.exp(0.2 * rng.normal(size=(BATCH, K, D)))[..., None]
    return tuple(jnp.asarray(a) for a in (locs, scales, logits, scale_tril))


def _mixture(kind, estimator, locs, scales, logits, scale_tril):
    if kind == "diagonal":
        return numpyro_gmm.DiagNormalMixture(locs, scales, logits, estimator=estimator)
    if kind == "student_t":
        components = dist.StudentT(jnp.full(locs.shape, 3.5), locs, scales).to_event(1)
        return numpyro_gmm.ReparamMixtureSameFamily(dist.CategoricalLogits(logits), components, estimator=estimator)
    return numpyro_gmm.MultivariateNormalMixture(locs, scale_tril, logits, estimator=estimator)


def _derivatives(kind, estimator):
    """Draw, gradient, forward-mode derivative and a Hessian-vector product of a smooth loss."""
    locs, scales, logits, scale_tril = _parameters()
    key = jax.random.PRNGKey(3)
    second = scale_tril if kind == "full_covariance" else scales

    def loss(locs, second, logits):
        args = (locs, second, logits, scale_tril) if kind != "full_covariance" else (locs, scales, logits, second)
        x = _mixture(kind, estimator, *args).sample(key, SAMPLE_SHAPE)
        return jnp.sum(jnp.sin(x) * jnp.arange(1.0, D + 1.0)), x

    def value(*params):
        return loss(*params)[0]

    params = (locs, second, logits)
    draw = jax.jit(lambda *p: loss(*p)[1])(*params)
    gradient = jax.jit(jax.grad(value, argnums=(0, 1, 2)))(*params)
    tangents = tuple(jnp.ones_like(p) * 0.1 for p in params)
    _, forward = jax.jit(lambda *p: jax.jvp(value, p, tangents))(*params)
    batched = jax.jit(jax.vmap(jax.grad(value), in_axes=(0, None, None)))(jnp.stack([locs, 0.5 * locs]), second, logits)
    results = {"draw": draw, "gradient": gradient, "forward": forward, "vmap": batched}
    if estimator == "implicit":
        results["hessian_vector"] = jax.jit(lambda *p: jax.jvp(jax.grad(value, argnums=(0, 1, 2)), p, tangents)[1])(
            *params
        )
    return results


CASES = [
    ("diagonal", "implicit"),
    ("diagonal", "rao_blackwell"),
    ("diagonal", "hybrid"),
    ("student_t", "rao_blackwell"),
    ("full_covariance", "implicit"),
    ("full_covariance", "rao_blackwell"),
    ("full_covariance", "hybrid"),
]


@pytest.mark.parametrize("kind, estimator", CASES)
def test_chunked_tangents_equal_one_pass(kind, estimator, monkeypatch):
    jax.clear_caches()
    whole = _derivatives(kind, estimator)
    chunk = 4 * BATCH * K * D
    assert 4 < np.prod(SAMPLE_SHAPE) and np.prod(SAMPLE_SHAPE) % 4 != 0
    jax.clear_caches()
    monkeypatch.setattr(_sampling, "CHUNK_ELEMENTS", chunk)
    monkeypatch.setattr(_sampling, "FULL_COVARIANCE_MIN_CHUNK_SAMPLES", 1)
    try:
        chunked = _derivatives(kind, estimator)
    finally:
        jax.clear_caches()
    assert whole.keys() == chunked.keys()
    for name in whole:
        for got, want in zip(jax.tree_util.tree_leaves(chunked[name]), jax.tree_util.tree_leaves(whole[name])):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12, err_msg=name)
        assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree_util.tree_leaves(whole[name]))


def test_chunks_are_used_above_the_threshold(chunk_of_four):
    """The chunked path runs (a ``while`` loop over chunks in the compiled gradient) once the
    sweep arrays exceed ``CHUNK_ELEMENTS``, and not below it."""
    locs, scales, logits, _ = _parameters()

    def value(locs, sample_shape):
        x = numpyro_gmm.DiagNormalMixture(locs, scales, logits).sample(jax.random.PRNGKey(0), sample_shape)
        return jnp.sum(x)

    def loops(sample_shape):
        text = jax.jit(jax.grad(value), static_argnums=1).lower(locs, sample_shape).as_text()
        return text.count("stablehlo.while")

    assert loops((4,)) < loops((21,))


def test_full_covariance_chunks_hold_at_least_the_minimum_samples(chunk_of_four, monkeypatch):
    """Full-covariance draws take chunks of at least ``FULL_COVARIANCE_MIN_CHUNK_SAMPLES``
    samples (their sweeps pay a fixed cost per step and chunk): 21 samples in chunks of 4
    add loops to the compiled gradient, with a minimum of 32 they run in one pass."""
    locs, _, logits, scale_tril = _parameters()

    def value(locs):
        x = numpyro_gmm.MultivariateNormalMixture(locs, scale_tril, logits).sample(jax.random.PRNGKey(0), (21,))
        return jnp.sum(x)

    def loops():
        jax.clear_caches()
        return jax.jit(jax.grad(value)).lower(locs).as_text().count("stablehlo.while")

    chunked = loops()
    monkeypatch.setattr(_sampling, "FULL_COVARIANCE_MIN_CHUNK_SAMPLES", 32)
    assert loops() < chunked
