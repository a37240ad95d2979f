"""Sample gradients of numpyro_gmm: per-sample agreement with shared_math, composition with
jit / vmap / jacfwd / jacrev, and second derivatives against finite differences.

References are the NumPy float64 ``shared_math`` functions (checked elsewhere against a
brute-force reference): ``implicit_vjp`` for ``"implicit"``, ``hybrid_vjp`` for ``"hybrid"``.
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

import shared_math
from numpyro_gmm import DiagNormalMixture, ReparamMixtureSameFamily
from numpyro_gmm._sampling import draw_component_and_noise
from shared_math.marginal_quantiles import marginal_quantile


def random_parameters(rng, locs_shape, scales_shape, logits_shape):
    return (
        rng.normal(size=locs_shape) * 1.5,
        np.exp(0.4 * rng.normal(size=scales_shape)),
        rng.normal(size=logits_shape),
    )


# (locs shape, scales shape, logits shape, sample shape): D = 1, 5, 30; batched and
# broadcast parameters; with and without sample dimensions.
CONFIGS = {
    "D1": ((2, 1), (2, 1), (2,), (7,)),
    "D5-batched": ((2, 3, 5), (2, 3, 5), (2, 3), (3,)),
    "D30-broadcast": ((2, 1, 4, 30), (4, 1), (3, 4), ()),
}


@pytest.mark.parametrize(
    "config, estimator",
    [
        ("D1", "implicit"),
        ("D5-batched", "implicit"),
        ("D30-broadcast", "implicit"),
        ("D30-broadcast", "hybrid"),
        ("D5-batched", "rao_blackwell"),
    ],
)
def test_per_sample_vjp_matches_shared_math(config, estimator):
    """jax.vjp of theta -> sample(key, theta) with a random cotangent equals the shared_math
    reference at the drawn x (float64, max relative difference 1e-10)."""
    locs_shape, scales_shape, logits_shape, sample_shape = CONFIGS[config]
    rng = np.random.default_rng(abs(hash(config)) % 2**32)
    params = random_parameters(rng, locs_shape, scales_shape, logits_shape)
    key = jax.random.key(11)

    def draw(locs, scales, logits):
        return DiagNormalMixture(locs, scales, logits, estimator=estimator).sample(key, sample_shape)

    @jax.jit
    def sample_and_pullback(params, cotangent):
        x, pullback = jax.vjp(draw, *params)
        return x, pullback(cotangent)

    mixture = DiagNormalMixture(*params)
    cotangent = rng.normal(size=sample_shape + mixture.batch_shape + mixture.event_shape)
    x, ours = sample_and_pullback(tuple(map(jnp.asarray, params)), jnp.asarray(cotangent))
    x = np.asarray(x)
    if estimator == "implicit":
        reference = shared_math.implicit_vjp(x, *params, cotangent)
    elif estimator == "rao_blackwell":
        reference = shared_math.rao_blackwell_vjp(x, *params, cotangent)
    else:
        batch_logits = np.broadcast_to(params[2], mixture.batch_shape + params[2].shape[-1:])
        one_hot, noise = draw_component_and_noise(
            key, jnp.asarray(batch_logits), sample_shape + mixture.batch_shape, mixture.event_shape[0], jnp.float64
        )
        one_hot, noise = np.asarray(one_hot), np.asarray(noise)
        direct = shared_math.sample_from_noise(params[0], params[1], one_hot, noise)
        np.testing.assert_allclose(x, direct, rtol=1e-13, atol=1e-13)
        reference = shared_math.hybrid_vjp(x, *params, one_hot, noise, cotangent)
    for name, mine, ref, param in zip(("locs", "scales", "logits"), ours, reference, params):
        assert mine.shape == param.shape, name
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-12 * np.max(np.abs(ref)), err_msg=name)


@pytest.mark.parametrize("event", ["vector-logits", "scalar-probs"])
def test_swap_in_vjp_matches_shared_math(event):
    """ReparamMixtureSameFamily: the same per-sample gradients, for Normal(...).to_event(1)
    with logits and for a scalar Normal with probs (chain rule through log(probs))."""
    rng = np.random.default_rng(5)
    if event == "vector-logits":
        locs, scales, logits = random_parameters(rng, (2, 3, 4), (2, 3, 4), (2, 3))
        weights = logits

        def make(locs, scales, weights):
            return ReparamMixtureSameFamily(
                dist.Categorical(logits=weights), dist.Normal(locs, scales).to_event(1), estimator="implicit"
            )

    else:
        locs, scales, _ = random_parameters(rng, (3,), (3,), (3,))
        weights = np.array([0.2, 0.5, 0.3])

        def make(locs, scales, weights):
            return ReparamMixtureSameFamily(
                dist.Categorical(probs=weights), dist.Normal(locs, scales), estimator="implicit"
            )

    key = jax.random.key(12)

    @jax.jit
    def sample_and_pullback(params, cotangent):
        x, pullback = jax.vjp(lambda *p: make(*p).sample(key, (6,)), *params)
        return x, pullback(cotangent)

    mixture = make(locs, scales, weights)
    cotangent = rng.normal(size=(6,) + mixture.batch_shape + mixture.event_shape)
    x, (locs_bar, scales_bar, weights_bar) = sample_and_pullback(
        tuple(map(jnp.asarray, (locs, scales, weights))), jnp.asarray(cotangent)
    )
    if event == "vector-logits":
        reference = shared_math.implicit_vjp(np.asarray(x), locs, scales, logits, cotangent)
        expected_weights_bar = reference[2]
    else:
        reference = shared_math.implicit_vjp(
            np.asarray(x)[..., None], locs[:, None], scales[:, None], np.log(weights), cotangent[..., None]
        )
        reference = (reference[0][:, 0], reference[1][:, 0], reference[2])
        expected_weights_bar = reference[2] / weights  # d logits / d probs = 1 / probs
    np.testing.assert_allclose(locs_bar, reference[0], rtol=1e-10)
    np.testing.assert_allclose(scales_bar, reference[1], rtol=1e-10)
    np.testing.assert_allclose(weights_bar, expected_weights_bar, rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------------ jit / vmap / jacfwd / jacrev
@pytest.mark.parametrize("estimator", ["implicit", "hybrid"])
def test_grad_jit_vmap_jacfwd_jacrev_agree(estimator):
    """Under one jit: grad == jacfwd == jacrev (1e-12), and vmap(grad) over a batch of
    parameter sets == grad of the summed vmapped objective (hybrid: grad == jacfwd)."""
    rng = np.random.default_rng(6)
    params = tuple(map(jnp.asarray, random_parameters(rng, (3, 2, 2), (3, 2, 2), (3, 2))))
    omega = jnp.asarray([0.7, -1.3])
    key = jax.random.key(13)
    argnums = (0, 1, 2)

    def objective(locs, scales, logits):
        x = DiagNormalMixture(locs, scales, logits, estimator=estimator).sample(key, (16,))
        return jnp.mean(jnp.cos(x @ omega) + x[..., 0] * x[..., 1])

    @jax.jit
    def all_ways(params):
        grad = jax.grad(objective, argnums)(*params)
        forward = jax.jacfwd(objective, argnums)(*params)
        if estimator == "hybrid":  # forward vs reverse only (kept short: compile time)
            return grad, forward, grad, grad, grad
        reverse = jax.jacrev(objective, argnums)(*params)
        # One parameter set per leading entry: vmap(grad) vs grad of the sum of vmap.
        per_set = jax.vmap(jax.grad(objective, argnums))(*params)
        of_sum = jax.grad(lambda *p: jnp.sum(jax.vmap(objective)(*p)), argnums)(*params)
        return grad, forward, reverse, per_set, of_sum

    grad, forward, reverse, per_set, of_sum = all_ways(params)
    for name, g, f, r, v, s in zip(("locs", "scales", "logits"), grad, forward, reverse, per_set, of_sum):
        assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.max(jnp.abs(g))) > 0, name
        np.testing.assert_allclose(f, g, rtol=1e-12, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(r, g, rtol=1e-12, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(v, s, rtol=1e-12, atol=1e-14, err_msg=name)


# ------------------------------------------------------------------ second derivatives
def _inverse_transform(u, locs, scales, logits):
    """The sample with distributional transform ``u`` (NumPy float64): dimension by
    dimension, the quantile of the conditional 1-D mixture given the earlier coordinates."""
    x = np.zeros_like(u)
    for d in range(u.shape[-1]):
        log_w = shared_math.conditional_log_weights(x, locs, scales, logits)[..., d]
        x[:, d] = marginal_quantile(u[:, d : d + 1], locs[:, d : d + 1], scales[:, d : d + 1], log_w)[:, 0]
    return x


OMEGA = np.array([0.9, -0.6])


def _objective(x, xp):
    """h(x) = cos(omega . x) + 0.1 |x|^2 + x_0 x_1, averaged over samples."""
    return xp.mean(xp.cos(x @ xp.asarray(OMEGA)) + 0.1 * xp.sum(x * x, axis=-1) + x[..., 0] * x[..., 1])


def _objective_gradient_x(x):
    n = x.shape[0]
    grad = -np.sin(x @ OMEGA)[:, None] * OMEGA + 0.2 * x + x[:, ::-1]
    return grad / n


def test_hessian_vector_product_matches_finite_differences():
    """Implicit estimator: H v of theta -> mean_n h(x_n(theta)) (fixed key) equals central
    finite differences (step 1e-5) of the gradient along the same sampling path, i.e. with
    the uniform noise u = T(x; theta) held fixed and x(theta') = T^{-1}(u; theta') recomputed
    by root finding; the gradient there is shared_math.implicit_vjp.  Tolerance 1e-6
    relative to |H v|.  Also checks that the Hessian is symmetric.

    (Finite differences of the *library's* gradient with a fixed key would not do: the
    ancestral draw x = mu_k + sigma_k eps with fixed (k, eps) is a different path through
    the same distribution.)"""
    rng = np.random.default_rng(7)
    K, D, N = 3, 2, 16
    locs, scales, logits = random_parameters(rng, (K, D), (K, D), (K,))
    sizes = (K * D, K * D, K)
    key = jax.random.key(14)

    def unpack(theta):
        return theta[: K * D].reshape(K, D), theta[K * D : 2 * K * D].reshape(K, D), theta[2 * K * D :]

    def objective(theta):
        x = DiagNormalMixture(*unpack(theta), estimator="implicit").sample(key, (N,))
        return _objective(x, jnp)

    theta = np.concatenate([locs.ravel(), scales.ravel(), logits])

    @jax.jit
    def sample_and_hessian(theta):
        return DiagNormalMixture(*unpack(theta), estimator="implicit").sample(key, (N,)), jax.hessian(objective)(theta)

    x0, hessian = sample_and_hessian(jnp.asarray(theta))
    x0, hessian = np.asarray(x0), np.asarray(hessian)
    assert hessian.shape == (sum(sizes),) * 2
    np.testing.assert_allclose(hessian, hessian.T, rtol=1e-10, atol=1e-12 * np.max(np.abs(hessian)))

    u = shared_math.distributional_transform(x0, locs, scales, logits)
    np.testing.assert_allclose(_inverse_transform(u, locs, scales, logits), x0, rtol=1e-10, atol=1e-12)

    def gradient_on_path(theta):
        params = unpack(theta)
        x = _inverse_transform(u, *params)
        return np.concatenate([g.ravel() for g in shared_math.implicit_vjp(x, *params, _objective_gradient_x(x))])

    np.testing.assert_allclose(
        gradient_on_path(theta), np.asarray(jax.grad(objective)(jnp.asarray(theta))), rtol=1e-9, atol=1e-12
    )
    for _ in range(2):
        direction = rng.normal(size=theta.shape)
        direction /= np.linalg.norm(direction)
        step = 1e-5
        forward, backward = gradient_on_path(theta + step * direction), gradient_on_path(theta - step * direction)
        finite_difference = (forward - backward) / (2 * step)
        hvp = hessian @ direction
        np.testing.assert_allclose(hvp, finite_difference, rtol=0, atol=1e-6 * np.max(np.abs(hvp)))
