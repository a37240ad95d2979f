"""numpyro_gmm distributions: shapes, densities, moments, pytree/jit/vmap, validation, float32.

References are ``shared_math`` (checked elsewhere against brute force) and NumPyro's own
``MixtureSameFamily``; goodness of fit of the sampler is a Kolmogorov-Smirnov test of the
distributional transform of the samples against Uniform(0, 1).
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.optimize
import scipy.special
import scipy.stats

import shared_math
from numpyro_gmm import DiagNormalMixture, ReparamMixtureSameFamily
from shared_math.marginal_quantiles import marginal_quantile


def random_parameters(rng, batch_shape, num_components, event_size, dtype=np.float64):
    locs = rng.normal(size=batch_shape + (num_components, event_size)) * 1.5
    scales = np.exp(0.4 * rng.normal(size=batch_shape + (num_components, event_size)))
    logits = rng.normal(size=batch_shape + (num_components,))
    return tuple(jnp.asarray(a, dtype) for a in (locs, scales, logits))


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


# ------------------------------------------------------------------ shapes and basic API
def numpy_copies(*arrays):
    return [np.asarray(a, np.float64) for a in arrays]


@pytest.mark.parametrize("batch_shape, sample_shape", [((), ()), ((2,), (4,))])
def test_shapes_log_prob_and_moments(rng, batch_shape, sample_shape):
    locs, scales, logits = random_parameters(rng, batch_shape, 3, 2)
    mixture = DiagNormalMixture(locs, scales, logits)
    assert mixture.batch_shape == batch_shape and mixture.event_shape == (2,)
    assert mixture.has_rsample and mixture.resolved_estimator == shared_math.resolve_estimator("auto")
    x = mixture.sample(jax.random.key(0), sample_shape)
    assert x.shape == sample_shape + batch_shape + (2,) and x.dtype == jnp.float64
    x_np, locs_np, scales_np, logits_np = numpy_copies(x, locs, scales, logits)
    reference = shared_math.log_prob(x_np, locs_np, scales_np, logits_np)
    np.testing.assert_allclose(mixture.log_prob(x), reference, rtol=1e-13)
    np.testing.assert_allclose(mixture.mean, shared_math.mean(locs_np, scales_np, logits_np), rtol=1e-13)
    np.testing.assert_allclose(mixture.variance, shared_math.variance(locs_np, scales_np, logits_np), rtol=1e-13)


def test_broadcast_parameters(rng):
    """scales (K, 1) and batch dims of logits broadcast into the batch shape."""
    locs = rng.normal(size=(2, 1, 3, 4))
    scales = np.array([[0.5], [1.0], [2.0]])
    logits = rng.normal(size=(5, 3))
    mixture = DiagNormalMixture(locs, scales, logits)
    assert mixture.batch_shape == (2, 5) and mixture.locs.shape == (2, 5, 3, 4)
    x = mixture.sample(jax.random.key(1), (6,))
    assert x.shape == (6, 2, 5, 4)
    reference = shared_math.log_prob(np.asarray(x), locs, scales, logits)
    np.testing.assert_allclose(mixture.log_prob(x), reference, rtol=1e-13)


def test_log_prob_matches_numpyro_mixture_same_family(rng):
    locs, scales, logits = random_parameters(rng, (2,), 3, 2)
    x = jnp.asarray(rng.normal(size=(4, 2, 2)) * 2)

    @jax.jit
    def reference(x):
        base = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(locs, scales).to_event(1))
        return base.log_prob(x), base.mean, base.variance

    mixture = DiagNormalMixture(locs, scales, logits)
    for ours, theirs in zip((mixture.log_prob(x), mixture.mean, mixture.variance), reference(x)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize("event_size", [1, 2, 8, 9])
def test_estimator_resolution(event_size):
    locs, scales, logits = np.zeros((2, event_size)), np.ones((2, event_size)), np.zeros(2)
    auto = DiagNormalMixture(locs, scales, logits)
    assert auto.estimator == "auto" and auto.resolved_estimator == shared_math.resolve_estimator("auto")
    from_lists = DiagNormalMixture(locs.tolist(), scales.tolist(), logits.tolist())
    assert from_lists.event_shape == (event_size,) and from_lists.locs.dtype == jnp.float64
    for estimator in shared_math.ESTIMATORS:
        assert DiagNormalMixture(locs, scales, logits, estimator=estimator).resolved_estimator == estimator
    with pytest.raises(ValueError, match="estimator"):
        DiagNormalMixture(locs, scales, logits, estimator="score")


def test_expand(rng):
    locs, scales, logits = random_parameters(rng, (2,), 3, 2)
    mixture = DiagNormalMixture(locs, scales, logits, estimator="hybrid")
    expanded = mixture.expand((4, 2))
    assert isinstance(expanded, DiagNormalMixture) and expanded.batch_shape == (4, 2)
    assert expanded.estimator == "hybrid" and expanded.has_rsample
    assert mixture.expand_by((5,)).batch_shape == (5, 2)
    x = expanded.sample(jax.random.key(2))
    np.testing.assert_allclose(expanded.log_prob(x), mixture.log_prob(x), rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="expand"):
        mixture.expand((3,))


# ------------------------------------------------------------------ sampler goodness of fit
def _ks_uniform_pvalues(u):
    """Per-coordinate Kolmogorov-Smirnov p-values of ``u`` (N, D) against Uniform(0, 1)."""
    return np.array([scipy.stats.kstest(np.asarray(u[:, d]), "uniform").pvalue for d in range(u.shape[1])])


@pytest.mark.parametrize("estimator", ["implicit", "hybrid"])
def test_samples_follow_the_mixture(rng, estimator):
    """Distributional transform of N=20000 draws is Uniform(0,1)^D (K=3, D=3): every
    coordinate's KS p-value > 1e-4 (false-alarm rate 3e-4 per test)."""
    locs, scales, logits = random_parameters(rng, (), 3, 3)
    x = DiagNormalMixture(locs, scales, logits, estimator=estimator).sample(jax.random.key(3), (20000,))
    u = shared_math.distributional_transform(*numpy_copies(x, locs, scales, logits))
    assert np.min(_ks_uniform_pvalues(u)) > 1e-4


def test_ks_check_detects_a_wrong_sampler(rng):
    """The same check rejects draws from a slightly different mixture (locs shifted by 0.1)."""
    locs, scales, logits = random_parameters(rng, (), 3, 3)
    x = DiagNormalMixture(locs + 0.1, scales, logits, estimator="implicit").sample(jax.random.key(3), (20000,))
    u = shared_math.distributional_transform(*numpy_copies(x, locs, scales, logits))
    assert np.min(_ks_uniform_pvalues(u)) < 1e-4


# ------------------------------------------------------------------ pytree, jit, vmap
def test_pytree_flattening_and_jit_argument(rng):
    locs, scales, logits = random_parameters(rng, (2,), 3, 2)
    mixture = DiagNormalMixture(locs, scales, logits, estimator="hybrid")
    leaves, treedef = jax.tree_util.tree_flatten(mixture)
    assert len(leaves) == 3 and all(isinstance(leaf, jax.Array) for leaf in leaves)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert rebuilt.estimator == "hybrid" and rebuilt.resolved_estimator == "hybrid"
    assert rebuilt.batch_shape == (2,) and rebuilt.event_shape == (2,)
    # The estimator is static aux data: different estimators give different tree structures.
    other = DiagNormalMixture(locs, scales, logits, estimator="implicit")
    assert jax.tree_util.tree_structure(other) != treedef

    key = jax.random.key(4)

    @jax.jit
    def sample_and_score(d):
        x = d.sample(key, (4,))
        return x, d.log_prob(x)

    x, log_p = sample_and_score(mixture)
    np.testing.assert_allclose(x, mixture.sample(key, (4,)), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(log_p, mixture.log_prob(x), rtol=1e-13)


def test_vmap_over_batched_parameters(rng):
    """vmap of construction + sampling equals one call per parameter set (same key)."""
    locs, scales, logits = random_parameters(rng, (4,), 3, 2)
    key = jax.random.key(5)

    def draw(l, s, g):
        return DiagNormalMixture(l, s, g).sample(key, (2,))

    batched = jax.vmap(draw)(locs, scales, logits)
    looped = jnp.stack([draw(locs[i], scales[i], logits[i]) for i in range(4)])
    np.testing.assert_allclose(batched, looped, rtol=1e-13, atol=1e-13)


def test_vmap_over_a_distribution_pytree(rng):
    locs, scales, logits = random_parameters(rng, (4,), 3, 2)
    mixture = DiagNormalMixture(locs, scales, logits)
    x = jnp.asarray(rng.normal(size=(4, 2)))
    np.testing.assert_allclose(jax.vmap(lambda d, v: d.log_prob(v))(mixture, x), mixture.log_prob(x), rtol=1e-13)
    draws = jax.vmap(lambda d: d.sample(jax.random.key(6), (5,)))(mixture)
    assert draws.shape == (4, 5, 2) and bool(jnp.all(jnp.isfinite(draws)))


# ------------------------------------------------------------------ validation
def _set(array, index, value):
    array = np.array(array)
    array[index] = value
    return array


@pytest.mark.parametrize(
    "name, bad",
    [
        ("locs", lambda l, s, g: (_set(l, (0, 1), np.nan), s, g)),
        ("locs", lambda l, s, g: (_set(l, (1, 0), np.inf), s, g)),
        ("scales", lambda l, s, g: (l, _set(s, (0, 0), 0.0), g)),
        ("scales", lambda l, s, g: (l, _set(s, (1, 1), -1.0), g)),
        ("scales", lambda l, s, g: (l, _set(s, (1, 1), np.nan), g)),
        ("logits", lambda l, s, g: (l, s, _set(g, 0, np.inf))),
    ],
)
def test_bad_values_raise_with_validation(rng, name, bad):
    args = bad(*numpy_copies(*random_parameters(rng, (), 2, 2)))
    with pytest.raises(ValueError, match=name):
        DiagNormalMixture(*args, validate_args=True)
    DiagNormalMixture(*args, validate_args=False)  # not checked when validation is off


def test_validation_is_skipped_under_jit(rng):
    locs, scales, logits = random_parameters(rng, (), 2, 2)
    x = jnp.zeros(2)
    value = jax.jit(lambda s: DiagNormalMixture(locs, s, logits, validate_args=True).log_prob(x))(scales)
    np.testing.assert_allclose(value, shared_math.log_prob(x, locs, scales, logits), rtol=1e-13)
    with pytest.raises(RuntimeError, match="jit"):
        jax.jit(lambda s: DiagNormalMixture(locs, s, logits).validate_args(strict=True))(scales)


@pytest.mark.parametrize(
    "shapes, name",
    [
        (((2, 3), (2, 4), (2,)), "scales"),  # D mismatch
        (((2, 3), (3, 3), (2,)), "scales"),  # K mismatch
        (((2, 3), (2, 3), (3,)), "logits"),  # K mismatch
        (((3,), (2, 3), (2,)), "locs"),  # locs not (..., K, D)
        (((4, 2, 3), (5, 2, 3), (2,)), "scales"),  # batch shapes do not broadcast
    ],
)
def test_shape_mismatch_always_raises(shapes, name):
    locs_shape, scales_shape, logits_shape = shapes
    with pytest.raises(ValueError, match=name):
        DiagNormalMixture(np.zeros(locs_shape), np.ones(scales_shape), np.zeros(logits_shape), validate_args=False)


# ------------------------------------------------------------------ float32 on hard parameters
def hard_parameters(dtype):
    """K=3, D=4: components 1e3 apart, scales 1e-3..1e3, logits -30, 0, 30."""
    locs = np.array([-1e3, 0.0, 1e3])[:, None] + np.linspace(-1.0, 1.0, 4)[None, :]
    scales = np.logspace(-3, 3, 12).reshape(3, 4)
    logits = np.array([-30.0, 0.0, 30.0])
    return [jnp.asarray(a, dtype) for a in (locs, scales, logits[[2, 0, 1]])]


@pytest.mark.parametrize("estimator", ["implicit", "hybrid"])
def test_float32_hard_parameters_stay_finite(estimator):
    locs, scales, logits = hard_parameters(jnp.float32)
    key = jax.random.key(7)

    def draw(l, s, g):
        return DiagNormalMixture(l, s, g, estimator=estimator).sample(key, (2000,))

    x, pullback = jax.vjp(draw, locs, scales, logits)
    cotangent = jnp.asarray(np.random.default_rng(0).normal(size=x.shape), jnp.float32)
    grads = pullback(cotangent)
    assert x.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in grads)
    assert bool(jnp.all(jnp.isfinite(x))) and all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    log_p = DiagNormalMixture(locs, scales, logits).log_prob(x)
    assert log_p.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(log_p)))
    if estimator == "implicit":
        # Against the float64 reference at the same float32 points: relative 1e-5 for
        # locs/scales; logits gradients are ~1e-9 here (weights e^-30), absolute 1e-6.
        reference = shared_math.implicit_vjp(
            np.asarray(x, np.float64), *[np.asarray(a, np.float64) for a in (locs, scales, logits, cotangent)]
        )
        for ours, ref in zip(grads[:2], reference[:2]):
            np.testing.assert_allclose(np.asarray(ours, np.float64), ref, rtol=1e-5, atol=1e-5 * np.max(np.abs(ref)))
        np.testing.assert_allclose(np.asarray(grads[2], np.float64), reference[2], atol=1e-6)


# ------------------------------------------------------------------ ReparamMixtureSameFamily
def test_reparam_mixture_same_family_is_a_drop_in(rng):
    locs, scales, logits = random_parameters(rng, (2,), 3, 4)
    mixing = dist.Categorical(logits=logits)
    components = dist.Normal(locs, scales).to_event(1)
    ours = ReparamMixtureSameFamily(mixing, components)
    base = dist.MixtureSameFamily(mixing, components)
    assert isinstance(ours, dist.MixtureSameFamily)
    assert ours.has_rsample and not base.has_rsample
    assert ours.batch_shape == base.batch_shape == (2,) and ours.event_shape == (4,)
    key = jax.random.key(9)

    @jax.jit
    def evaluate(d):
        x = d.sample(key, (5,))
        return x, d.log_prob(x), d.mean, d.variance

    x, *ours_values = evaluate(ours)
    assert x.shape == (5, 2, 4)
    base_values = jax.jit(lambda d, x: (d.log_prob(x), d.mean, d.variance))(base, x)
    for mine, theirs in zip(ours_values, base_values):
        np.testing.assert_allclose(mine, theirs, rtol=1e-13)
    # Same draws as DiagNormalMixture with the same key.
    np.testing.assert_allclose(x, DiagNormalMixture(locs, scales, logits).sample(key, (5,)), rtol=1e-13, atol=1e-13)
    # Called as a sample-site function (the sample_intermediates=True path that models use).
    value, _ = ours(rng_key=key, sample_shape=(5,), sample_intermediates=True)
    np.testing.assert_allclose(value, x, rtol=1e-13, atol=1e-13)
    expanded = ours.expand((3, 2))
    assert isinstance(expanded, ReparamMixtureSameFamily) and expanded.batch_shape == (3, 2)
    assert expanded.has_rsample and expanded.component_distribution.batch_shape == (3, 2, 3)


def test_reparam_mixture_same_family_scalar_event_with_probs():
    probs = jnp.asarray([0.2, 0.5, 0.3])
    locs, scales = jnp.asarray([-2.0, 0.0, 3.0]), jnp.asarray([0.5, 1.0, 0.7])
    ours = ReparamMixtureSameFamily(dist.Categorical(probs=probs), dist.Normal(locs, scales))
    base = dist.MixtureSameFamily(dist.Categorical(probs=probs), dist.Normal(locs, scales))
    x = ours.sample(jax.random.key(10), (20000,))
    assert ours.event_shape == () and x.shape == (20000,)
    evaluate = jax.jit(lambda d, x: (d.log_prob(x), d.cdf(x)))
    for mine, theirs in zip(evaluate(ours, x[:10]), evaluate(base, x[:10])):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12)
    # KS test of the draws against the mixture CDF (p > 1e-4).
    u = shared_math.cdf(*numpy_copies(x, locs, scales, jnp.log(probs)))
    assert scipy.stats.kstest(u, "uniform").pvalue > 1e-4
    # Pytree round trip keeps the estimator and the reparameterized sampler.
    leaves, treedef = jax.tree_util.tree_flatten(ours)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert rebuilt.has_rsample and rebuilt.resolved_estimator == ours.resolved_estimator
    jitted = jax.jit(lambda d: d.sample(jax.random.key(10), (20000,)))(ours)
    np.testing.assert_allclose(jitted, x, rtol=1e-13, atol=1e-13)


def test_reparam_mixture_same_family_expanded_normal(rng):
    components = dist.Normal(jnp.asarray([0.0, 1.0]), 1.0).expand([3, 2]).to_event(1)
    mixing = dist.Categorical(logits=jnp.zeros(3))
    mixture = ReparamMixtureSameFamily(mixing, components)
    assert mixture.batch_shape == () and mixture.event_shape == (2,)
    x = mixture.sample(jax.random.key(11), (4,))
    locs = np.broadcast_to([0.0, 1.0], (3, 2))
    reference = shared_math.log_prob(np.asarray(x), locs, np.ones((3, 2)), np.zeros(3))
    np.testing.assert_allclose(mixture.log_prob(x), reference, rtol=1e-13)


@pytest.mark.parametrize(
    "make",
    [
        lambda: (dist.Categorical(logits=np.zeros(2)), dist.Exponential(np.ones(2))),
        lambda: (dist.Categorical(logits=np.zeros(2)), dist.LogNormal(np.zeros(2), 1.0)),
        lambda: (dist.Categorical(logits=np.zeros(2)), dist.Normal(np.zeros((2, 3, 4)), 1.0).to_event(2)),
        lambda: (dist.Categorical(logits=np.zeros(3)), dist.Normal(np.zeros(2), 1.0)),
        lambda: (dist.Normal(0.0, 1.0), dist.Normal(np.zeros(2), 1.0)),
    ],
)
def test_reparam_mixture_same_family_rejects_unsupported(make):
    with pytest.raises(ValueError, match="Normal|Categorical|components"):
        ReparamMixtureSameFamily(*make())


# ------------------------------------------------------------------ marginal quantiles
def test_marginal_quantile_against_brentq(rng):
    locs, scales, logits = (np.asarray(a) for a in random_parameters(rng, (2,), 3, 2))
    q = np.array([1e-6, 0.05, 0.5, 0.9, 1 - 1e-6])
    ours = np.asarray(DiagNormalMixture(*map(jnp.asarray, (locs, scales, logits))).marginal_quantiles(q))
    assert ours.shape == (5, 2, 2)
    log_pi = logits - scipy.special.logsumexp(logits, axis=-1, keepdims=True)
    for i, qi in enumerate(q):
        for b in range(2):
            for d in range(2):

                def cdf_minus_q(t):
                    return np.sum(np.exp(log_pi[b]) * scipy.stats.norm.cdf(t, locs[b, :, d], scales[b, :, d])) - qi

                root = scipy.optimize.brentq(cdf_minus_q, -100, 100, xtol=1e-14, rtol=1e-14)
                np.testing.assert_allclose(ours[i, b, d], root, rtol=1e-9, atol=1e-11)
    # NumPy arrays in, NumPy out.
    np.testing.assert_allclose(marginal_quantile(q[:, None, None], locs, scales, logits), ours, rtol=1e-10)


# ------------------------------------------------------------------ optional dependency
def test_import_error_names_the_extra(monkeypatch):
    saved = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "numpyro_gmm"}
    for name in saved:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "numpyro", None)
    try:
        with pytest.raises(ImportError, match=r"pip install gmm-reparam\[numpyro\]"):
            importlib.import_module("numpyro_gmm")
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "numpyro_gmm"]:
            del sys.modules[name]
    # monkeypatch restores the original modules afterwards.


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_component_draws_follow_the_weights(dtype):
    """The components of a draw (inversion of the cumulative weights, one uniform per draw)
    follow softmax(logits) per batch row: chi-square p > 1e-4 over 200,000 draws; a component
    of weight zero (logit -inf) is never drawn; indices stay in [0, K)."""
    from numpyro_gmm._sampling import draw_component_and_noise

    logits = jnp.asarray([[0.0, 1.0, -jnp.inf, 2.0], [3.0, -1.0, 0.5, -jnp.inf]], dtype)
    one_hot, _ = jax.jit(lambda key: draw_component_and_noise(key, logits, (200_000, 2), 3, dtype))(
        jax.random.PRNGKey(11)
    )
    one_hot = np.asarray(one_hot)
    assert np.all(one_hot.sum(-1) == 1)
    probabilities = np.asarray(jax.nn.softmax(logits.astype(jnp.float64), axis=-1))
    for row in range(2):
        counts = one_hot[:, row, :].sum(0)
        drawn = probabilities[row] > 0
        assert np.all(counts[~drawn] == 0)
        expected = probabilities[row, drawn] * counts.sum()
        assert scipy.stats.chisquare(counts[drawn], expected).pvalue > 1e-4
    # a swap of two weights is detected
    swapped = probabilities[0][[1, 0, 2, 3]]
    counts = one_hot[:, 0, :].sum(0)
    assert scipy.stats.chisquare(counts[[0, 1, 3]], swapped[[0, 1, 3]] * counts.sum()).pvalue < 1e-6
