r"""``numpyro_gmm.MultivariateNormalMixture``, the swap-in with ``MultivariateNormal`` components, and
``AutoMultivariateNormalMixture``.

References: NumPyro's own ``MixtureSameFamily(Categorical, MultivariateNormal)`` for values
(1e-12); the full-Jacobian reference ``_reference_full_covariance`` for per-draw gradients
(1e-9; one mixture per batch element); ``shared_math`` on the same draws for the glue
(1e-12); ``DiagNormalMixture`` with the same key for a diagonal factor (1e-12); and for the
exact second derivatives of ``"implicit"``, central differences of the reference's first
derivative along the path :math:`x(\theta) = T_\theta^{-1}(u)` at fixed :math:`u`, with
:math:`T^{-1}` by bisection (``_reference_full_covariance.inverse_transform``).

Every function is ``jax.jit``-ed once per shape (JAX compiles each new function, about 1 s
of CPU each), so the shapes here are few.
"""

from __future__ import annotations

import _reference as diag_ref
import _reference_full_covariance as ref
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import shared_math
from numpyro_gmm import (
    AutoMultivariateNormalMixture,
    DiagNormalMixture,
    MultivariateNormalMixture,
    ReparamMixtureSameFamily,
)
from numpyro_gmm._sampling import draw_component_and_noise

ESTIMATORS = ("implicit", "hybrid", "rao_blackwell")
KEY = jax.random.PRNGKey(3)


def mixture_parameters(batch_shape, num_components, event_size, seed):
    return [
        jnp.asarray(a) for a in ref.random_mixture(np.random.default_rng(seed), batch_shape, num_components, event_size)
    ]


def test_shapes_values_pytree_and_vmap():
    """Shapes, ``log_prob``/moments against NumPyro's ``MixtureSameFamily(MultivariateNormal)``
    (1e-12); ``expand``; a flatten/unflatten round trip; ``jit`` with the distribution as an
    argument; ``vmap`` over a batch of mixtures equal to the batched distribution."""
    locs, scale_tril, logits = mixture_parameters((2,), 3, 4, 1)
    mixture = MultivariateNormalMixture(locs, scale_tril, logits, validate_args=True)
    assert mixture.batch_shape == (2,) and mixture.event_shape == (4,) and mixture.has_rsample
    x = mixture.sample(KEY, (5,))
    assert x.shape == (5, 2, 4)

    @jax.jit
    def values(d, x):
        stock = dist.MixtureSameFamily(
            dist.Categorical(logits=d.logits), dist.MultivariateNormal(d.locs, scale_tril=d.scale_tril)
        )
        ours = (d.log_prob(x), d.mean, d.variance, jnp.diagonal(d.covariance_matrix, axis1=-2, axis2=-1))
        mapped = jax.vmap(lambda l, s, g: MultivariateNormalMixture(l, s, g).log_prob(x[:, 0]))(
            d.locs, d.scale_tril, d.logits
        )
        return ours, (stock.log_prob(x), stock.mean, stock.variance, stock.variance), mapped, d.log_prob(x[:, :1])

    ours, stock, mapped, first = values(mixture, x)
    for a, b in zip(ours, stock):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mapped, jnp.swapaxes(first, 0, 1), atol=1e-12)
    leaves, tree = jax.tree_util.tree_flatten(mixture)
    np.testing.assert_array_equal(jax.tree_util.tree_unflatten(tree, leaves).sample(KEY, (5,)), x)
    np.testing.assert_allclose(jnp.exp(mixture.mixture_log_weights), mixture.mixture_probs, rtol=1e-12)
    assert mixture.component_sample(KEY, (5,)).shape == (5, 2, 3, 4)
    expanded = mixture.expand((6, 2))
    assert expanded.batch_shape == (6, 2) and expanded.scale_tril.shape == (6, 2, 3, 4, 4)


def test_per_draw_gradients_match_full_jacobian():
    """One draw per mixture of a batch of 4 (K = 3, D = 6): the ``implicit`` VJP of the draw
    equals the reference (1e-9) for every parameter."""
    locs, scale_tril, logits = mixture_parameters((4,), 3, 6, 7)

    def draw(l, s, g):
        return MultivariateNormalMixture(l, s, g, estimator="implicit").sample(KEY)

    x, pullback = jax.vjp(draw, locs, scale_tril, logits)
    cotangent = jnp.cos(x)
    grads = pullback(cotangent)
    expected = ref.implicit_vjp(
        np.asarray(x), *(np.asarray(a) for a in (locs, scale_tril, logits)), np.asarray(cotangent)
    )
    for name, actual, target in zip(("locs", "scale_tril", "logits"), grads, expected):
        diag_ref.assert_close(np.asarray(actual), target, 1e-9, what=name)


@pytest.mark.parametrize("estimator", [pytest.param("implicit", marks=pytest.mark.slow), "hybrid", "rao_blackwell"])
def test_gradients_are_shared_math_on_the_same_draws(estimator):
    """``jax.grad`` through ``sample`` is ``shared_math.full_covariance_sample_vjp`` (run on NumPy)
    at the same draws, recovered from the key by ``draw_component_and_noise`` (1e-12)."""
    locs, scale_tril, logits = mixture_parameters((2,), 3, 4, 11)
    sample_shape = (5,)

    def total(l, s, g):
        x = MultivariateNormalMixture(l, s, g, estimator=estimator).sample(KEY, sample_shape)
        return jnp.sum(jnp.sin(x)), x

    (_, x), grads = jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2), has_aux=True))(locs, scale_tril, logits)
    one_hot, noise = (np.asarray(a) for a in draw_component_and_noise(KEY, logits, sample_shape + (2,), 4, locs.dtype))
    raw = [np.asarray(a) for a in (locs, scale_tril, logits)]
    x = np.asarray(x)
    np.testing.assert_allclose(
        x, shared_math.full_covariance_sample_from_noise(raw[0], raw[1], one_hot, noise), atol=1e-12
    )
    expected = shared_math.full_covariance_sample_vjp(estimator, x, *raw, one_hot, noise, np.cos(x))
    for actual, target in zip(grads, expected):
        diag_ref.assert_close(np.asarray(actual), target, 1e-12)


@pytest.mark.slow
def test_diagonal_factor_reproduces_diag_normal_mixture():
    """``scale_tril = diag(sigma)`` and the same key: the draws and the ``implicit`` gradients for
    ``locs``, ``logits`` and ``sigma`` equal ``DiagNormalMixture``'s (1e-12).  (The other
    estimators: ``test_full_covariance_shared_math`` and the Pyro adapter.)"""
    locs, _, logits = mixture_parameters((2,), 3, 4, 11)
    scales = jnp.exp(0.3 * jnp.asarray(np.random.default_rng(12).standard_normal(locs.shape)))

    def full_total(l, sigma, g):
        x = MultivariateNormalMixture(l, sigma[..., None] * jnp.eye(4), g, estimator="implicit").sample(KEY, (5,))
        return jnp.sum(jnp.sin(x)), x

    def diagonal_total(l, sigma, g):
        x = DiagNormalMixture(l, sigma, g, estimator="implicit").sample(KEY, (5,))
        return jnp.sum(jnp.sin(x)), x

    (_, x_full), full = jax.jit(jax.value_and_grad(full_total, argnums=(0, 1, 2), has_aux=True))(locs, scales, logits)
    (_, x_diag), diagonal = jax.jit(jax.value_and_grad(diagonal_total, argnums=(0, 1, 2), has_aux=True))(
        locs, scales, logits
    )
    np.testing.assert_allclose(x_full, x_diag, rtol=0, atol=1e-12)
    for actual, target in zip(full, diagonal):
        diag_ref.assert_close(np.asarray(actual), np.asarray(target), 1e-12)


@pytest.mark.parametrize("given", ["scale_tril", "covariance_matrix", "precision_matrix"])
def test_swap_in_accepts_multivariate_normal(given):
    """``ReparamMixtureSameFamily(Categorical, MultivariateNormal(...))``: ``log_prob`` as NumPyro's,
    the same draws as ``MultivariateNormalMixture``; per-draw ``locs``/``logits`` gradients equal
    the reference (1e-9) whichever matrix the components were given by."""
    locs, scale_tril, logits = mixture_parameters((4,), 3, 5, 31)
    matrix = {
        "scale_tril": scale_tril,
        "covariance_matrix": scale_tril @ jnp.swapaxes(scale_tril, -1, -2),
        "precision_matrix": jnp.linalg.inv(scale_tril @ jnp.swapaxes(scale_tril, -1, -2)),
    }[given]

    def draw(l, g):
        components = dist.MultivariateNormal(l, **{given: matrix})
        return ReparamMixtureSameFamily(dist.Categorical(logits=g), components, estimator="implicit").sample(KEY)

    x, pullback = jax.vjp(draw, locs, logits)
    direct = MultivariateNormalMixture(locs, scale_tril, logits, estimator="implicit").sample(KEY)
    np.testing.assert_allclose(x, direct, rtol=0, atol=1e-9)
    mixture = ReparamMixtureSameFamily(
        dist.Categorical(logits=logits), dist.MultivariateNormal(locs, **{given: matrix})
    )
    assert mixture.has_rsample
    stock = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.MultivariateNormal(locs, **{given: matrix}))
    np.testing.assert_allclose(mixture.log_prob(x), stock.log_prob(x), atol=1e-12)
    cotangent = jnp.cos(x)
    locs_bar, logits_bar = pullback(cotangent)
    expected = ref.implicit_vjp(
        np.asarray(x), np.asarray(locs), np.asarray(scale_tril), np.asarray(logits), np.asarray(cotangent)
    )
    diag_ref.assert_close(np.asarray(locs_bar), expected[0], 1e-9, what="locs")
    diag_ref.assert_close(np.asarray(logits_bar), expected[2], 1e-9, what="logits")


def test_implicit_second_derivatives_are_exact():
    r"""``jax.jacfwd(jax.jacrev(sample))`` with respect to ``logits`` (K = 3, D = 3) equals central
    differences (h = 1e-4) of the reference's :math:`\mathrm{d}x/\mathrm{d}\ell` along
    :math:`x(\ell)=T_\ell^{-1}(u)`, :math:`u = T(x_0)` (1e-6 relative in the max norm; symmetric)."""
    locs, scale_tril, logits = mixture_parameters((), 3, 3, 41)

    def draw(g):
        return MultivariateNormalMixture(locs, scale_tril, g, estimator="implicit").sample(KEY)

    hessian = np.asarray(jax.jit(jax.jacfwd(jax.jacrev(draw)))(logits))  # (D, K, K)
    np.testing.assert_allclose(hessian, np.swapaxes(hessian, 1, 2), atol=1e-10)
    x0, jacobian = jax.jit(lambda g: (draw(g), jax.jacrev(draw)(g)))(logits)
    x0 = np.asarray(x0)
    raw = [np.asarray(a) for a in (locs, scale_tril, logits)]
    u = ref.distributional_transform(x0, *raw)

    def first_derivative(logits_value):
        x = ref.inverse_transform(u, raw[0], raw[1], logits_value)
        jacobians = ref.Jacobians(x, raw[0], raw[1], logits_value)
        zeros = (np.zeros_like(raw[0]), np.zeros_like(raw[1]))
        columns = [ref.implicit_jvp(x, raw[0], raw[1], logits_value, *zeros, e, jacobians=jacobians) for e in np.eye(3)]
        return np.stack(columns, -1)  # (D, K)

    np.testing.assert_allclose(first_derivative(raw[2]), np.asarray(jacobian), rtol=1e-9, atol=1e-12)
    step = 1e-4
    difference = np.stack(
        [
            (first_derivative(raw[2] + step * np.eye(3)[i]) - first_derivative(raw[2] - step * np.eye(3)[i]))
            / (2 * step)
            for i in range(3)
        ],
        -1,
    )
    diag_ref.assert_close(hessian, difference, 1e-6, what="d2x/dlogits2")


def test_validation_names_scale_tril():
    locs, scale_tril, logits = mixture_parameters((), 2, 3, 51)
    with pytest.raises(ValueError, match="scale_tril"):
        MultivariateNormalMixture(locs, scale_tril.at[0, 1, 1].set(-1.0), logits, validate_args=True)
    with pytest.raises(ValueError, match="scale_tril"):
        MultivariateNormalMixture(locs, scale_tril @ jnp.swapaxes(scale_tril, -1, -2), logits, validate_args=True)
    with pytest.raises(ValueError, match="scale_tril"):
        MultivariateNormalMixture(locs, scale_tril.at[1, 2, 0].set(jnp.nan), logits, validate_args=True)
    with pytest.raises(ValueError, match="scale_tril"):
        MultivariateNormalMixture(locs, scale_tril[..., :2], logits)
    with pytest.raises(ValueError, match="estimator"):
        MultivariateNormalMixture(locs, scale_tril, logits, estimator="nope")


def test_autoguide_initialization():
    """Parameter shapes; factors start at ``init_scale * I``; locations spread by
    ``shared_math.component_offsets`` (SVI fits: ``test_full_covariance_svi.py``)."""

    def model():
        z = numpyro.sample("z", dist.Normal(jnp.zeros(3), 1.0).to_event(1))
        numpyro.sample("y", dist.Normal(z[0] * z[1], 0.5), obs=1.0)

    guide = AutoMultivariateNormalMixture(model, num_components=3, init_scale=0.2)
    svi = numpyro.infer.SVI(model, guide, numpyro.optim.Adam(0.05), numpyro.infer.Trace_ELBO())
    initial = svi.get_params(svi.init(jax.random.PRNGKey(0)))
    posterior = guide.get_posterior(initial)
    assert isinstance(posterior, MultivariateNormalMixture) and posterior.scale_tril.shape == (3, 3, 3)
    np.testing.assert_allclose(posterior.scale_tril, 0.2 * np.broadcast_to(np.eye(3), (3, 3, 3)), rtol=1e-6, atol=1e-7)
    offsets = shared_math.component_offsets(3, 3, 0)
    np.testing.assert_allclose(posterior.locs - posterior.locs.mean(0), 0.4 * offsets, rtol=1e-6, atol=1e-7)
    assert set(guide.median(initial)) == {"z"}


@pytest.mark.parametrize("estimator", ("implicit", "hybrid"))
def test_autoguide_draws_with_its_estimator(estimator):
    """The estimator given to the guide is that of the latent draw the ELBO differentiates (the
    guide's auxiliary sample site) and of ``get_posterior(params)``, not the default."""

    def model():
        numpyro.sample("z", dist.Normal(jnp.zeros(2), 1.0).to_event(1))

    guide = AutoMultivariateNormalMixture(model, num_components=2, estimator=estimator)
    trace = numpyro.handlers.trace(numpyro.handlers.seed(guide, 0)).get_trace()
    latent = [site["fn"] for site in trace.values() if isinstance(site.get("fn"), MultivariateNormalMixture)]
    assert len(latent) == 1 and latent[0].resolved_estimator == estimator
    params = {name: site["value"] for name, site in trace.items() if site["type"] == "param"}
    assert guide.get_posterior(params).resolved_estimator == estimator
