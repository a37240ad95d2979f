r"""``ReparamMixtureSameFamily`` with every component family, in both adapters.

* per-sample gradients of ``rsample``/``sample`` equal the brute-force float64 reference of
  ``_family_reference`` (full Jacobian + triangular solve) to 1e-9, scalar and vector
  events, batched parameters;
* K = 1 reduces exactly to the family's own reparameterized sample
  (:math:`\bar\mu = g`, :math:`\bar\sigma = g z`);
* Monte Carlo unbiasedness of every estimator on the bounded objective
  :math:`E[\cos(\omega\cdot x)]` (closed form from the characteristic functions; exact
  gradient by central differences of it), |z| < 5 with stated sample sizes;
* ``log_prob`` equals the framework's own ``MixtureSameFamily``; ``mean``, ``variance`` and
  ``cdf`` equal SciPy's (NaN for Cauchy); unsupported components raise ``ValueError``.
"""

from __future__ import annotations

import math

import _family_reference as fref
import _reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as ndist
import pyro.distributions as pdist
import pytest
import scipy.special
import scipy.stats
import torch

import numpyro_gmm
import pyro_gmm
import shared_math

FAMILIES = fref.FAMILY_NAMES
ESTIMATORS = tuple(shared_math.ESTIMATORS)

PYRO_CLASSES = {
    "normal": pdist.Normal,
    "logistic": pdist.Logistic,
    "laplace": pdist.Laplace,
    "cauchy": pdist.Cauchy,
    "gumbel": pdist.Gumbel,
    "student_t": pdist.StudentT,
}
NUMPYRO_CLASSES = {
    "normal": ndist.Normal,
    "logistic": ndist.Logistic,
    "laplace": ndist.Laplace,
    "cauchy": ndist.Cauchy,
    "gumbel": ndist.Gumbel,
    "student_t": ndist.StudentT,
}


def _components(classes, family, loc, scale, df, vector):
    component = classes[family](df, loc, scale) if family == "student_t" else classes[family](loc, scale)
    return component.to_event(1) if vector else component


def _parameters(family, batch_shape, num_components, event_size, seed):
    rng = np.random.default_rng(seed)
    locs = 1.5 * rng.standard_normal(batch_shape + (num_components, event_size))
    scales = np.exp(-0.3 + 0.4 * rng.standard_normal(batch_shape + (num_components, event_size)))
    logits = rng.standard_normal(batch_shape + (num_components,))
    df = np.exp(rng.uniform(0.0, math.log(30.0), locs.shape)) if family == "student_t" else None
    return locs, scales, logits, df


def pyro_mixture(family, locs, scales, logits, df, vector, estimator, requires_grad=True):
    tensors = [torch.tensor(a, requires_grad=requires_grad) for a in (locs, scales, logits)]
    loc, scale = (t if vector else t[..., 0] for t in tensors[:2])
    df_t = None if df is None else torch.tensor(df if vector else df[..., 0])
    component = _components(PYRO_CLASSES, family, loc, scale, df_t, vector)
    mixture = pyro_gmm.ReparamMixtureSameFamily(pdist.Categorical(logits=tensors[2]), component, estimator=estimator)
    return mixture, tensors


def numpyro_mixture(family, locs, scales, logits, df, vector, estimator):
    loc, scale = (jnp.asarray(a) if vector else jnp.asarray(a)[..., 0] for a in (locs, scales))
    df_j = None if df is None else jnp.asarray(df if vector else df[..., 0])
    component = _components(NUMPYRO_CLASSES, family, loc, scale, df_j, vector)
    return numpyro_gmm.ReparamMixtureSameFamily(
        ndist.CategoricalLogits(jnp.asarray(logits)), component, estimator=estimator
    )


# ------------------------------------------------------------------------------------------
# Per-sample gradients against the full-Jacobian reference.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("vector", [True, False], ids=["event", "scalar"])
@pytest.mark.parametrize("estimator", ["implicit", "rao_blackwell"])
def test_pyro_gradients_match_the_reference(family, vector, estimator):
    event_size = 4 if vector else 1
    locs, scales, logits, df = _parameters(family, (2,), 3, event_size, seed=11)
    mixture, (locs_t, scales_t, logits_t) = pyro_mixture(family, locs, scales, logits, df, vector, estimator)
    torch.manual_seed(3)
    x = mixture.rsample((5,))
    cotangent = torch.randn(x.shape, dtype=x.dtype)
    (x * cotangent).sum().backward()
    x_np = x.detach().numpy() if vector else x.detach().numpy()[..., None]
    g_np = cotangent.numpy() if vector else cotangent.numpy()[..., None]
    want = fref.implicit_vjp(family, x_np, locs, scales, logits, g_np, df=df)
    if estimator == "rao_blackwell":
        want = fref.rao_blackwell_locs_scales(family, x_np, locs, scales, logits, g_np, df=df) + (want[2],)
    for name, got, expected in zip(("locs", "scales", "logits"), (locs_t.grad, scales_t.grad, logits_t.grad), want):
        ref.assert_close(got.numpy(), expected, 1e-9, floor=1e-3, what=f"pyro {family} {estimator} {name}")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("estimator", ["implicit", "rao_blackwell"])
def test_numpyro_gradients_match_the_reference(family, estimator):
    locs, scales, logits, df = _parameters(family, (2,), 3, 4, seed=12)
    key = jax.random.PRNGKey(4)
    cotangent = np.random.default_rng(5).standard_normal((5, 2, 4))

    def pullback(l, s, g):
        mixture = numpyro_mixture(family, l, s, g, df, True, estimator)
        return jnp.sum(mixture.sample(key, (5,)) * cotangent)

    args = [jnp.asarray(a) for a in (locs, scales, logits)]
    x = np.asarray(jax.jit(lambda *a: numpyro_mixture(family, *a, df, True, estimator).sample(key, (5,)))(*args))
    grads = jax.jit(jax.grad(pullback, argnums=(0, 1, 2)))(*args)
    want = fref.implicit_vjp(family, x, locs, scales, logits, cotangent, df=df)
    if estimator == "rao_blackwell":
        want = fref.rao_blackwell_locs_scales(family, x, locs, scales, logits, cotangent, df=df) + (want[2],)
    for name, got, expected in zip(("locs", "scales", "logits"), grads, want):
        ref.assert_close(np.asarray(got), expected, 1e-9, floor=1e-3, what=f"numpyro {family} {estimator} {name}")


@pytest.mark.parametrize("family", FAMILIES)
def test_hybrid_is_the_chosen_component_gradient_in_both_adapters(family):
    r"""With one component the chosen one is known: ``hybrid`` gives :math:`g` and
    :math:`g\,(x-\mu)/\sigma`, in both adapters (every estimator does, as the family's own
    reparameterized sample)."""
    locs, scales, logits, df = _parameters(family, (), 1, 3, seed=13)
    for estimator in ESTIMATORS:
        mixture, (locs_t, scales_t, logits_t) = pyro_mixture(family, locs, scales, logits, df, True, estimator)
        x = mixture.rsample((6,))
        g = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1))
        (x * g).sum().backward()
        z = (x.detach() - torch.tensor(locs)) / torch.tensor(scales)
        torch.testing.assert_close(locs_t.grad, g.sum(0, keepdim=True), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(scales_t.grad, (g * z).sum(0, keepdim=True), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(logits_t.grad, torch.zeros(1, dtype=x.dtype), rtol=0, atol=1e-12)

        key = jax.random.PRNGKey(2)
        g_j = jnp.asarray(g.numpy())

        def pullback(l, s, w):
            return jnp.sum(numpyro_mixture(family, l, s, w, df, True, estimator).sample(key, (6,)) * g_j)

        args = [jnp.asarray(a) for a in (locs, scales, logits)]
        x_j, grads = jax.jit(
            lambda *a: (
                numpyro_mixture(family, *a, df, True, estimator).sample(key, (6,)),
                jax.grad(pullback, (0, 1, 2))(*a),
            )
        )(*args)
        z_j = (x_j - args[0]) / args[1]
        np.testing.assert_allclose(grads[0], np.sum(g_j, 0, keepdims=True), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grads[1], np.sum(g_j * z_j, 0, keepdims=True), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(grads[2], 0.0, atol=1e-12)


# ------------------------------------------------------------------------------------------
# Monte Carlo unbiasedness on E[cos(omega . x)].
# ------------------------------------------------------------------------------------------

OMEGA = np.array([0.9, -0.6])
Z_LIMIT = 5.0


def _mc_case(family):
    rng = np.random.default_rng(21)
    locs = rng.standard_normal((2, 2))
    scales = np.exp(-0.2 + 0.3 * rng.standard_normal((2, 2)))
    logits = np.array([0.3, -0.2])
    df = np.array([[3.5, 6.0], [2.5, 12.0]]) if family == "student_t" else None
    return locs, scales, logits, df


def _z_scores(per_sample, exact):
    mean = per_sample.mean(0)
    error = per_sample.std(0, ddof=1) / math.sqrt(per_sample.shape[0])
    return (mean - exact) / error


def pyro_per_sample_gradients(family, estimator, num_samples, seed):
    """Per-sample gradients of cos(omega . x) from a batch of ``num_samples`` parameter copies."""
    locs, scales, logits, df = _mc_case(family)

    def batch(a):
        return None if a is None else np.broadcast_to(a, (num_samples,) + a.shape).copy()

    mixture, tensors = pyro_mixture(family, batch(locs), batch(scales), batch(logits), batch(df), True, estimator)
    torch.manual_seed(seed)
    x = mixture.rsample()
    torch.cos(x @ torch.tensor(OMEGA)).sum().backward()
    return [t.grad.numpy().reshape(num_samples, -1) for t in tensors]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_pyro_estimators_are_unbiased(family, estimator):
    """N = 20000 draws (K = 2, D = 2), every entry |z| < 5."""
    locs, scales, logits, df = _mc_case(family)
    exact = fref.expected_cosine_gradient(family, OMEGA, locs, scales, logits, df=df)
    per_sample = pyro_per_sample_gradients(family, estimator, 20000, seed=7)
    for name, samples, want in zip(("locs", "scales", "logits"), per_sample, exact):
        z = _z_scores(samples, want.reshape(-1))
        assert np.all(np.abs(z) < Z_LIMIT), (family, estimator, name, z)


def test_the_z_test_detects_a_wrong_gradient():
    """Power check: scaling the scales gradient by 1.1 fails the same test for some family."""
    locs, scales, logits, df = _mc_case("logistic")
    exact = fref.expected_cosine_gradient("logistic", OMEGA, locs, scales, logits, df=df)
    per_sample = pyro_per_sample_gradients("logistic", "rao_blackwell", 20000, seed=7)
    z = _z_scores(1.1 * per_sample[1], exact[1].reshape(-1))
    assert np.max(np.abs(z)) > Z_LIMIT


def _numpyro_per_sample(family, estimator, num_samples, seed):
    locs, scales, logits, df = _mc_case(family)
    args = [jnp.asarray(a) for a in (locs, scales, logits)]

    def one(key):
        def value(l, s, g):
            return jnp.cos(jnp.dot(numpyro_mixture(family, l, s, g, df, True, estimator).sample(key), OMEGA))

        return jax.grad(value, argnums=(0, 1, 2))(*args)

    keys = jax.random.split(jax.random.PRNGKey(seed), num_samples)
    grads = jax.jit(jax.vmap(one))(keys)
    return [np.asarray(g).reshape(num_samples, -1) for g in grads]


@pytest.mark.parametrize("family", FAMILIES)
def test_numpyro_default_estimator_is_unbiased(family):
    """N = 20000 draws of the default estimator (K = 2, D = 2), every entry |z| < 5."""
    locs, scales, logits, df = _mc_case(family)
    exact = fref.expected_cosine_gradient(family, OMEGA, locs, scales, logits, df=df)
    for name, samples, want in zip(("locs", "scales", "logits"), _numpyro_per_sample(family, "auto", 20000, 8), exact):
        z = _z_scores(samples, want.reshape(-1))
        assert np.all(np.abs(z) < Z_LIMIT), (family, name, z)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_numpyro_estimators_are_unbiased_slow(family, estimator):
    """N = 100000 draws of every estimator (K = 2, D = 2), every entry |z| < 5."""
    locs, scales, logits, df = _mc_case(family)
    exact = fref.expected_cosine_gradient(family, OMEGA, locs, scales, logits, df=df)
    per_sample = _numpyro_per_sample(family, estimator, 100000, 9)
    for name, samples, want in zip(("locs", "scales", "logits"), per_sample, exact):
        z = _z_scores(samples, want.reshape(-1))
        assert np.all(np.abs(z) < Z_LIMIT), (family, estimator, name, z)


# ------------------------------------------------------------------------------------------
# Values and errors.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_values_match_the_frameworks_and_scipy(family):
    """log_prob equals the framework's own MixtureSameFamily; mean, variance and the 1-D cdf
    equal SciPy's; Cauchy mixtures have NaN mean and variance in both adapters."""
    locs, scales, logits, df = _parameters(family, (2,), 3, 1, seed=14)
    if df is not None:
        df = df + 2.5  # finite variances
    mixture, _ = pyro_mixture(family, locs, scales, logits, df, False, "auto", requires_grad=False)
    n_mixture = numpyro_mixture(family, locs, scales, logits, df, False, "auto")
    n_values = jax.jit(lambda m, grid: (m.mean, m.variance, m.cdf(grid)))
    torch.manual_seed(0)
    x = mixture.sample((7,))
    stock = pdist.MixtureSameFamily(mixture.mixture_distribution, mixture.component_distribution)
    torch.testing.assert_close(mixture.log_prob(x), stock.log_prob(x), rtol=1e-12, atol=1e-12)
    n_stock = ndist.MixtureSameFamily(n_mixture.mixing_distribution, n_mixture.component_distribution)
    np.testing.assert_allclose(
        n_mixture.log_prob(jnp.asarray(x.numpy())), n_stock.log_prob(jnp.asarray(x.numpy())), rtol=1e-12
    )
    dist = fref.scipy_distribution(family, None if df is None else df[..., 0])
    probs = scipy.special.softmax(logits, -1)
    component_mean, component_variance = dist.stats(moments="mv")
    means = locs[..., 0] + scales[..., 0] * component_mean
    want_mean = np.sum(probs * means, -1)
    want_variance = np.sum(probs * (scales[..., 0] ** 2 * component_variance + means**2), -1) - want_mean**2
    grid = np.linspace(-6.0, 6.0, 13)[:, None]
    want_cdf = np.sum(probs * dist.cdf((grid[..., None] - locs[..., 0]) / scales[..., 0]), -1)
    for got_mean, got_variance, got_cdf in (
        (mixture.mean.numpy(), mixture.variance.numpy(), mixture.cdf(torch.tensor(grid)).numpy()),
        tuple(np.asarray(v) for v in n_values(n_mixture, jnp.asarray(grid))),
    ):
        if family == "cauchy":
            assert np.all(np.isnan(got_mean)) and np.all(np.isnan(got_variance))
        else:
            np.testing.assert_allclose(got_mean, want_mean, rtol=1e-12)
            np.testing.assert_allclose(got_variance, want_variance, rtol=1e-10)
        np.testing.assert_allclose(got_cdf, want_cdf, rtol=1e-11)


def test_unsupported_components_name_what_is_supported():
    message = "Normal, Logistic, Laplace, Cauchy, Gumbel, StudentT, Gamma, Beta"
    with pytest.raises(ValueError, match=message):
        pyro_gmm.ReparamMixtureSameFamily(pdist.Categorical(logits=torch.zeros(2)), pdist.Exponential(torch.ones(2)))
    with pytest.raises(ValueError, match=message):
        numpyro_gmm.ReparamMixtureSameFamily(ndist.CategoricalLogits(jnp.zeros(2)), ndist.LogNormal(jnp.zeros(2), 1.0))
    with pytest.raises(NotImplementedError, match="scalar-event"):
        mixture, _ = pyro_mixture("laplace", *_parameters("laplace", (), 2, 3, 0), True, "auto")
        mixture.cdf(torch.zeros(3))


@pytest.mark.parametrize("df", [0.5, 4.0, 50.0])
def test_numpyro_student_t_noise_follows_the_t_distribution(df):
    """The NumPyro adapter's Student-t noise (Bailey's polar method in a ``lax.while_loop``),
    per-component ``df`` and under ``jit``: Kolmogorov-Smirnov against SciPy (p > 1e-4) for
    each of two ``df`` values drawn side by side, float32."""
    from numpyro_gmm._sampling import standard_noise

    shape = (100_000, 2)
    dfs = jnp.broadcast_to(jnp.asarray([df, 2.0 * df], jnp.float32), shape)
    draws = np.asarray(
        jax.jit(lambda key: standard_noise(key, "student_t", shape, (dfs,), jnp.float32))(jax.random.PRNGKey(7))
    )
    assert draws.dtype == np.float32 and np.all(np.isfinite(draws))
    for column, value in enumerate((df, 2.0 * df)):
        assert scipy.stats.kstest(draws[:, column], scipy.stats.t(value).cdf).pvalue > 1e-4


@pytest.mark.parametrize("df", [0.5, 4.0, 50.0])
@pytest.mark.parametrize("candidates_per_draw", [None, 0.5])
def test_pyro_student_t_noise_follows_the_t_distribution(df, candidates_per_draw, monkeypatch):
    """The Pyro adapter's Student-t noise (Bailey's polar method, as in NumPyro), per-draw
    ``df``, float32: Kolmogorov-Smirnov against SciPy (p > 1e-4), also when half the
    candidate points it needs are drawn at first (the shortfall drawn again)."""
    from pyro_gmm.distribution import _standard_noise

    if candidates_per_draw is not None:
        monkeypatch.setattr(
            shared_math.families, "polar_candidates", lambda draws: max(1, int(candidates_per_draw * draws))
        )
    shape = (50_000, 2)
    dfs = torch.tensor([df, 2.0 * df], dtype=torch.float32).expand(shape)
    torch.manual_seed(8)
    draws = _standard_noise("student_t", torch.Size(shape), (dfs,), torch.float32, torch.device("cpu")).numpy()
    assert draws.shape == shape and draws.dtype == np.float32 and np.all(np.isfinite(draws))
    for column, value in enumerate((df, 2.0 * df)):
        assert scipy.stats.kstest(draws[:, column], scipy.stats.t(value).cdf).pvalue > 1e-4


@pytest.mark.parametrize("candidates_per_draw", [0.5, 1.0])
def test_numpyro_student_t_noise_redraws_a_shortfall(candidates_per_draw, monkeypatch):
    """With too few candidate points for the draws (half of them, or one per draw, where
    about 21% fall outside the disk), the slots left empty are redrawn in the while loop:
    still finite, still Student-t (Kolmogorov-Smirnov against SciPy, p > 1e-4)."""
    from numpyro_gmm._sampling import standard_noise

    monkeypatch.setattr(
        shared_math.families, "polar_candidates", lambda draws: max(1, int(candidates_per_draw * draws))
    )
    shape = (50_000,)
    draws = np.asarray(standard_noise(jax.random.PRNGKey(3), "student_t", shape, (jnp.full(shape, 3.0),), jnp.float32))
    assert draws.shape == shape and np.all(np.isfinite(draws))
    assert scipy.stats.kstest(draws, scipy.stats.t(3.0).cdf).pvalue > 1e-4
