r"""Mixtures of Gamma, Beta and Student-t components with learnable shape parameters, in both adapters.

* Monte Carlo unbiasedness of the gradients of closed-form objectives, for every parameter
  including the logits, scalar (D = 1) and vector (D = 2) components, both adapters:
  Gamma and Beta :math:`E[\sum_d c_d x_d + e_d\log x_d]` (:math:`E[\log x] = \psi(a) - \log b`,
  resp. :math:`\psi(a) - \psi(a+b)`), Student-t :math:`E[\sum_d c_d x_d + e_d x_d^2]`
  (:math:`E[x^2] = \sigma^2\nu/(\nu-2) + \mu^2`); the exact gradient by autodiff of the closed
  form; N = 20000 per-sample gradients, every entry |z| < 5;
* in JAX the sampled Gamma-shape gradient agrees in mean with the exact (``igamma_grad_a``)
  one on the same draws; ``cdf_gradient="sampled"``/``"rejection"`` on Normal components are
  unbiased and agree in mean with the exact path (same draws);
* per-sample: Pyro's backward and forward mode equal :func:`shared_math.sample_vjp`/``jvp``
  on the replayed draws; NumPyro's exact Gamma path equals the full-Jacobian reference;
* values (``log_prob`` as the frameworks', mean, variance and cdf as SciPy's) and bad input.
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

Z_LIMIT = 5.0
NUM_SAMPLES = 20000


def _z_scores(per_sample, exact):
    error = per_sample.std(0, ddof=1) / math.sqrt(per_sample.shape[0])
    return (per_sample.mean(0) - exact) / error


# ------------------------------------------------------------------------------------------
# Cases: parameters (K = 2, D = 1 or 2) and closed-form objectives.
# ------------------------------------------------------------------------------------------


def _case(family, event_size):
    """``(params, coefficients)``: named parameters ``(K, D)`` (logits ``(K,)``) and the
    objective's coefficients ``(c, e)`` of shape ``(D,)``."""
    rng = np.random.default_rng(31 + event_size)
    kd = (2, event_size)
    if family == "gamma":
        params = {
            "concentration": np.array([[0.6, 3.0], [4.0, 1.5]])[:, :event_size],
            "rate": np.exp(rng.uniform(-0.5, 0.5, kd)),
        }
    elif family == "beta":
        params = {
            "concentration1": np.array([[0.7, 3.0], [5.0, 1.2]])[:, :event_size],
            "concentration0": np.array([[2.0, 0.8], [1.5, 6.0]])[:, :event_size],
        }
    else:
        params = {
            "df": np.array([[5.5, 9.0], [7.0, 12.0]])[:, :event_size],
            "loc": rng.standard_normal(kd),
            "scale": np.exp(rng.uniform(-0.3, 0.3, kd)),
        }
    params["logits"] = np.array([0.3, -0.2])
    coefficients = (np.array([0.7, -0.4])[:event_size], np.array([0.5, 0.3])[:event_size])
    return params, coefficients


PARAMETER_NAMES = {
    "gamma": ("concentration", "rate"),
    "beta": ("concentration1", "concentration0"),
    "student_t": ("df", "loc", "scale"),
}


def _closed_form(family, params, coefficients, digamma, log, softmax):
    """Exact objective (works on torch tensors or JAX arrays, with their own functions)."""
    c, e = coefficients
    pi = softmax(params["logits"])
    if family == "gamma":
        a, b = params["concentration"], params["rate"]
        per = c * a / b + e * (digamma(a) - log(b))
    elif family == "beta":
        a, b = params["concentration1"], params["concentration0"]
        per = c * a / (a + b) + e * (digamma(a) - digamma(a + b))
    else:
        df, mu, sigma = params["df"], params["loc"], params["scale"]
        per = c * mu + e * (sigma * sigma * df / (df - 2.0) + mu * mu)
    return (pi * per.sum(-1)).sum()


def _objective(family, x, coefficients):
    c, e = coefficients
    second = x * x if family == "student_t" else (torch.log(x) if isinstance(x, torch.Tensor) else jnp.log(x))
    return (c * x + e * second).sum(-1)


def _exact_gradients(family, params, coefficients):
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    c = tuple(torch.tensor(a) for a in coefficients)
    value = _closed_form(family, tensors, c, torch.special.digamma, torch.log, lambda w: torch.softmax(w, -1))
    names = PARAMETER_NAMES[family] + ("logits",)
    grads = torch.autograd.grad(value, [tensors[n] for n in names])
    return {n: g.numpy() for n, g in zip(names, grads)}


def _pyro_component(family, tensors, vector):
    def last(t):
        return t if vector else t[..., 0]

    if family == "gamma":
        component = pdist.Gamma(last(tensors["concentration"]), last(tensors["rate"]))
    elif family == "beta":
        component = pdist.Beta(last(tensors["concentration1"]), last(tensors["concentration0"]))
    else:
        component = pdist.StudentT(last(tensors["df"]), last(tensors["loc"]), last(tensors["scale"]))
    return component.to_event(1) if vector else component


def _numpyro_component(family, arrays, vector):
    def last(a):
        return a if vector else a[..., 0]

    if family == "gamma":
        component = ndist.Gamma(last(arrays["concentration"]), last(arrays["rate"]))
    elif family == "beta":
        component = ndist.Beta(last(arrays["concentration1"]), last(arrays["concentration0"]))
    else:
        component = ndist.StudentT(last(arrays["df"]), last(arrays["loc"]), last(arrays["scale"]))
    return component.to_event(1) if vector else component


def pyro_per_sample(family, params, coefficients, vector, num_samples, seed, **options):
    """Per-sample gradients ``{name: (N, ...)}`` from a batch of ``num_samples`` parameter copies."""
    tensors = {
        k: torch.tensor(np.broadcast_to(v, (num_samples,) + v.shape).copy(), requires_grad=True)
        for k, v in params.items()
    }
    mixture = pyro_gmm.ReparamMixtureSameFamily(
        pdist.Categorical(logits=tensors["logits"]), _pyro_component(family, tensors, vector), **options
    )
    torch.manual_seed(seed)
    x = mixture.rsample()
    x = x if vector else x[..., None]
    _objective(family, x, tuple(torch.tensor(a) for a in coefficients)).sum().backward()
    return {k: t.grad.numpy().reshape(num_samples, -1) for k, t in tensors.items()}, x.detach().numpy()


def numpyro_per_sample(family, params, coefficients, vector, num_samples, seed, **options):
    names = tuple(params)
    arrays = tuple(jnp.asarray(params[n]) for n in names)
    c = tuple(jnp.asarray(a) for a in coefficients)

    def one(key):
        def value(*values):
            named = dict(zip(names, values))
            mixture = numpyro_gmm.ReparamMixtureSameFamily(
                ndist.CategoricalLogits(named["logits"]), _numpyro_component(family, named, vector), **options
            )
            x = mixture.sample(key)
            return _objective(family, x if vector else x[..., None], c)

        return jax.grad(value, argnums=tuple(range(len(names))))(*arrays)

    keys = jax.random.split(jax.random.PRNGKey(seed), num_samples)
    grads = jax.jit(jax.vmap(one))(keys)
    return {n: np.asarray(g).reshape(num_samples, -1) for n, g in zip(names, grads)}


def _assert_unbiased(per_sample, exact, what):
    for name, want in exact.items():
        z = _z_scores(per_sample[name], want.reshape(-1))
        assert np.all(np.abs(z) < Z_LIMIT), (what, name, z)


@pytest.mark.parametrize("family", ["gamma", "beta", "student_t"])
@pytest.mark.parametrize("event_size", [1, 2])
def test_pyro_shape_gradients_are_unbiased(family, event_size):
    """Default estimator and ``cdf_gradient``; N = 20000; every parameter |z| < 5."""
    params, coefficients = _case(family, event_size)
    per_sample, _ = pyro_per_sample(family, params, coefficients, event_size == 2, NUM_SAMPLES, seed=3)
    _assert_unbiased(per_sample, _exact_gradients(family, params, coefficients), f"pyro {family} D={event_size}")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gamma", "beta", "student_t"])
@pytest.mark.parametrize("estimator", ["implicit", "hybrid", "rao_blackwell"])
@pytest.mark.parametrize("cdf_gradient", ["auto", "rejection"])
def test_pyro_shape_gradients_are_unbiased_every_estimator_slow(family, estimator, cdf_gradient):
    """Every estimator, ours and Eq. 10's sampler, D = 2; N = 100000; |z| < 5."""
    params, coefficients = _case(family, 2)
    per_sample, _ = pyro_per_sample(
        family, params, coefficients, True, 100000, seed=4, estimator=estimator, cdf_gradient=cdf_gradient
    )
    _assert_unbiased(
        per_sample, _exact_gradients(family, params, coefficients), f"pyro {family} {estimator} {cdf_gradient}"
    )


@pytest.mark.parametrize(
    "family, event_size",
    [pytest.param("gamma", 2, marks=pytest.mark.slow), ("beta", 2), ("student_t", 2), pytest.param("gamma", 1, marks=pytest.mark.slow),
     pytest.param("beta", 1, marks=pytest.mark.slow), pytest.param("student_t", 1, marks=pytest.mark.slow)],
)  # fmt: skip
def test_numpyro_shape_gradients_are_unbiased(family, event_size):
    """Default estimator and ``cdf_gradient`` (exact for the Gamma in JAX); N = 20000; every
    parameter |z| < 5.  (D = 1 in the slow set: each case is one XLA compilation; the Gamma
    with D = 2 is checked by default in the next test, both paths.)"""
    params, coefficients = _case(family, event_size)
    per_sample = numpyro_per_sample(family, params, coefficients, event_size == 2, NUM_SAMPLES, seed=5)
    _assert_unbiased(per_sample, _exact_gradients(family, params, coefficients), f"numpyro {family} D={event_size}")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gamma", "beta", "student_t"])
@pytest.mark.parametrize("estimator", ["implicit", "hybrid"])
@pytest.mark.parametrize("cdf_gradient", ["sampled", "rejection"])
def test_numpyro_shape_gradients_are_unbiased_every_estimator_slow(family, estimator, cdf_gradient):
    """The other estimators with ours and Eq. 10's sampler (for the Student-t these sample the
    loc/scale velocities too), D = 2; N = 50000; |z| < 5."""
    params, coefficients = _case(family, 2)
    per_sample = numpyro_per_sample(
        family, params, coefficients, True, 50000, seed=7, estimator=estimator, cdf_gradient=cdf_gradient
    )
    _assert_unbiased(
        per_sample, _exact_gradients(family, params, coefficients), f"numpyro {family} {estimator} {cdf_gradient}"
    )


def test_numpyro_sampled_gamma_shape_gradient_agrees_with_the_exact_one():
    """Same keys (so the same draws), D = 2: the per-sample difference between the sampled
    (``cdf_gradient="sampled"``, M = 1) and the exact (``igamma_grad_a``) concentration
    gradients has mean zero (|z| < 5, N = 20000), and both are unbiased; the other
    parameters' gradients are identical."""
    params, coefficients = _case("gamma", 2)
    exact = numpyro_per_sample("gamma", params, coefficients, True, NUM_SAMPLES, seed=6, cdf_gradient="exact")
    sampled = numpyro_per_sample("gamma", params, coefficients, True, NUM_SAMPLES, seed=6, cdf_gradient="sampled")
    difference = sampled["concentration"] - exact["concentration"]
    assert np.all(np.abs(_z_scores(difference, 0.0)) < Z_LIMIT)
    assert np.any(np.abs(difference) > 1e-3)  # really sampled
    for name in ("rate", "logits"):
        np.testing.assert_allclose(sampled[name], exact[name], rtol=1e-12, atol=1e-12)
    _assert_unbiased(sampled, _exact_gradients("gamma", params, coefficients), "numpyro gamma sampled")


def _normal_case():
    params, coefficients = _case("student_t", 2)
    return {k: params[k] for k in ("loc", "scale", "logits")}, coefficients


def _normal_exact(params, coefficients):
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    c, e = (torch.tensor(a) for a in coefficients)
    mu, sigma = tensors["loc"], tensors["scale"]
    value = (torch.softmax(tensors["logits"], -1) * (c * mu + e * (sigma * sigma + mu * mu)).sum(-1)).sum()
    grads = torch.autograd.grad(value, [tensors[k] for k in ("loc", "scale", "logits")])
    return dict(zip(("loc", "scale", "logits"), (g.numpy() for g in grads)))


@pytest.mark.parametrize("cdf_gradient", ["sampled", "rejection"])
def test_pyro_sampled_normal_is_unbiased_and_agrees_with_the_exact_path(cdf_gradient):
    r"""Normal components, :math:`E[\sum_d c_dx_d + e_dx_d^2]`: with ``cdf_gradient`` forcing
    Eq. 9 for ``loc``/``scale`` the gradient is unbiased (N = 20000, |z| < 5), and its
    per-sample difference to the exact path on the same draws has mean zero."""
    params, coefficients = _normal_case()

    def tensors_of():
        return {
            k: torch.tensor(np.broadcast_to(v, (NUM_SAMPLES,) + v.shape).copy(), requires_grad=True)
            for k, v in params.items()
        }

    results = {}
    for option in ("exact", cdf_gradient):
        tensors = tensors_of()
        mixture = pyro_gmm.ReparamMixtureSameFamily(
            pdist.Categorical(logits=tensors["logits"]),
            pdist.Normal(tensors["loc"], tensors["scale"]).to_event(1),
            cdf_gradient=option,
        )
        torch.manual_seed(9)
        x = mixture.rsample()
        _objective("student_t", x, tuple(torch.tensor(a) for a in coefficients)).sum().backward()
        results[option] = {k: t.grad.numpy().reshape(NUM_SAMPLES, -1) for k, t in tensors.items()}
    exact = _normal_exact(params, coefficients)
    _assert_unbiased(results[cdf_gradient], exact, f"pyro normal {cdf_gradient}")
    for name in ("loc", "scale"):
        difference = results[cdf_gradient][name] - results["exact"][name]
        assert np.all(np.abs(_z_scores(difference, 0.0)) < Z_LIMIT), name
        assert np.any(np.abs(difference) > 1e-6)
    np.testing.assert_allclose(results[cdf_gradient]["logits"], results["exact"]["logits"], rtol=1e-12, atol=1e-12)


def test_numpyro_sampled_normal_is_unbiased():
    """The same in NumPyro (``cdf_gradient="sampled"``, default estimator), N = 20000."""
    params, coefficients = _normal_case()
    names = ("loc", "scale", "logits")
    arrays = tuple(jnp.asarray(params[n]) for n in names)

    def one(key):
        def value(loc, scale, logits):
            mixture = numpyro_gmm.ReparamMixtureSameFamily(
                ndist.CategoricalLogits(logits), ndist.Normal(loc, scale).to_event(1), cdf_gradient="sampled"
            )
            return _objective("student_t", mixture.sample(key), tuple(jnp.asarray(a) for a in coefficients))

        return jax.grad(value, argnums=(0, 1, 2))(*arrays)

    grads = jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(10), NUM_SAMPLES))
    per_sample = {n: np.asarray(g).reshape(NUM_SAMPLES, -1) for n, g in zip(names, grads)}
    _assert_unbiased(per_sample, _normal_exact(params, coefficients), "numpyro normal sampled")


def test_the_z_test_detects_a_biased_shape_gradient():
    """Power check: 1.05 times the Gamma concentration gradient fails the same test."""
    params, coefficients = _case("gamma", 2)
    per_sample, _ = pyro_per_sample("gamma", params, coefficients, True, NUM_SAMPLES, seed=3)
    exact = _exact_gradients("gamma", params, coefficients)["concentration"].reshape(-1)
    assert np.max(np.abs(_z_scores(1.05 * per_sample["concentration"], exact))) > Z_LIMIT


# ------------------------------------------------------------------------------------------
# Per-sample gradients.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gamma", "beta", "student_t"])
@pytest.mark.parametrize("cdf_gradient", ["auto", "rejection"])
def test_pyro_backward_and_forward_equal_shared_math_on_the_replayed_draws(family, cdf_gradient):
    """Re-seeding torch's generator replays the component, the noise and the inner noise of a
    draw (drawn in that order): ``backward`` equals :func:`shared_math.sample_vjp` there (1e-12),
    and ``torch.func.jvp`` in the shape parameters equals the gradient's inner product (adjoint)."""
    params, _ = _case(family, 2)
    names = PARAMETER_NAMES[family]
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    mixture = pyro_gmm.ReparamMixtureSameFamily(
        pdist.Categorical(logits=tensors["logits"]),
        _pyro_component(family, tensors, True),
        cdf_gradient=cdf_gradient,
        cdf_gradient_samples=2,
    )
    torch.manual_seed(12)
    x = mixture.rsample((7,))
    cotangent = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(2))
    (x * cotangent).sum().backward()
    family_name, locs, scales, logits, shape_params = mixture._mixture_parameters()
    from pyro_gmm.distribution import draw_cdf_noise, draw_component_and_noise

    torch.manual_seed(12)
    one_hot, noise = draw_component_and_noise(logits, (), (7,), 2, family=family_name, shape_params=shape_params)
    method = shared_math.resolve_cdf_gradient(cdf_gradient, family_name, shared_math._backend.get_namespace(locs))
    inner = draw_cdf_noise(method, 2, family_name, (7,), (), locs, shape_params)
    detached = [t.detach() for t in (locs, scales, logits)]
    shape_detached = tuple(p.detach() for p in shape_params)
    bars = shared_math.sample_vjp(
        "auto",
        x.detach(),
        *detached,
        one_hot,
        noise,
        cotangent,
        family=family_name,
        shape_params=shape_detached,
        cdf_gradient=cdf_gradient,
        cdf_noise=inner,
    )
    want = dict(zip(shape_params_names(family), bars[3]))
    want["logits"] = bars[2]
    if family == "gamma":
        want["rate"] = -bars[1] / tensors["rate"].detach() ** 2  # scale = 1/rate
    if family == "student_t":
        want["loc"], want["scale"] = bars[0], bars[1]
    for name in names + ("logits",):
        torch.testing.assert_close(tensors[name].grad, want[name], rtol=1e-12, atol=1e-12)

    first = names[0]
    direction = torch.randn(params[first].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def pulled(value):
        local = dict(tensors)
        local[first] = value
        m = pyro_gmm.ReparamMixtureSameFamily(
            pdist.Categorical(logits=local["logits"].detach()),
            _pyro_component(family, {k: v if k == first else v.detach() for k, v in local.items()}, True),
            cdf_gradient=cdf_gradient,
            cdf_gradient_samples=2,
        )
        torch.manual_seed(12)
        return (m.rsample((7,)) * cotangent).sum()

    _, tangent = torch.func.jvp(pulled, (tensors[first].detach(),), (direction,))
    gradient = torch.func.grad(pulled)(tensors[first].detach())
    torch.testing.assert_close(tangent, (gradient * direction).sum(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gradient, tensors[first].grad, rtol=1e-12, atol=1e-12)


def shape_params_names(family):
    return shared_math.get_family(family).shape_names


@pytest.mark.slow
def test_numpyro_exact_gamma_gradients_match_the_reference():
    """Exact path (JAX): per-sample gradients of every parameter of a Gamma mixture's
    ``sample`` against the full-Jacobian reference (1e-9; concentration 1e-7: central
    differences of SciPy's CDF), rates through the reciprocal scale."""
    params, _ = _case("gamma", 2)
    key = jax.random.PRNGKey(13)
    cotangent = np.random.default_rng(1).standard_normal((5, 2))

    def mixture(concentration, rate, logits):
        return numpyro_gmm.ReparamMixtureSameFamily(
            ndist.CategoricalLogits(logits), ndist.Gamma(concentration, rate).to_event(1), estimator="implicit"
        )

    args = [jnp.asarray(params[k]) for k in ("concentration", "rate", "logits")]
    x = np.asarray(jax.jit(lambda *a: mixture(*a).sample(key, (5,)))(*args))
    grads = jax.jit(jax.grad(lambda *a: jnp.sum(mixture(*a).sample(key, (5,)) * cotangent), argnums=(0, 1, 2)))(*args)
    scales = 1.0 / params["rate"]
    want = fref.implicit_vjp(
        "gamma",
        x,
        np.zeros_like(scales),
        scales,
        params["logits"],
        cotangent,
        shape=(params["concentration"],),
        shape_gradients=True,
    )
    ref.assert_close(np.asarray(grads[0]), want[3][0], 1e-7, floor=1e-3, what="concentration")
    ref.assert_close(np.asarray(grads[1]), -want[1] / params["rate"] ** 2, 1e-9, floor=1e-3, what="rate")
    ref.assert_close(np.asarray(grads[2]), want[2], 1e-9, floor=1e-3, what="logits")


# ------------------------------------------------------------------------------------------
# Values and errors.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gamma", pytest.param("beta", marks=pytest.mark.slow)])
def test_values_match_the_frameworks_and_scipy(family):
    """Scalar components: log_prob as the frameworks' own MixtureSameFamily (1e-12); mean,
    variance and cdf as SciPy's (1e-12, 1e-10, 1e-11)."""
    params, _ = _case(family, 1)
    tensors = {k: torch.tensor(v) for k, v in params.items()}
    arrays = {k: jnp.asarray(v) for k, v in params.items()}
    mixture = pyro_gmm.ReparamMixtureSameFamily(
        pdist.Categorical(logits=tensors["logits"]), _pyro_component(family, tensors, False)
    )
    n_mixture = numpyro_gmm.ReparamMixtureSameFamily(
        ndist.CategoricalLogits(arrays["logits"]), _numpyro_component(family, arrays, False)
    )
    torch.manual_seed(0)
    x = mixture.sample((9,))
    stock = pdist.MixtureSameFamily(mixture.mixture_distribution, mixture.component_distribution)
    torch.testing.assert_close(mixture.log_prob(x), stock.log_prob(x), rtol=1e-12, atol=1e-12)
    n_stock = ndist.MixtureSameFamily(n_mixture.mixing_distribution, n_mixture.component_distribution)
    np.testing.assert_allclose(
        n_mixture.log_prob(jnp.asarray(x.numpy())), n_stock.log_prob(jnp.asarray(x.numpy())), rtol=1e-12
    )
    if family == "gamma":
        a, rate = params["concentration"][:, 0], params["rate"][:, 0]
        dist = scipy.stats.gamma(a, scale=1.0 / rate)
    else:
        dist = scipy.stats.beta(params["concentration1"][:, 0], params["concentration0"][:, 0])
    probs = scipy.special.softmax(params["logits"])
    component_mean, component_variance = dist.stats(moments="mv")
    want_mean = np.sum(probs * component_mean)
    want_variance = np.sum(probs * (component_variance + component_mean**2)) - want_mean**2
    grid = np.linspace(0.01, 0.99, 9)[:, None] * (1.0 if family == "beta" else 8.0)
    want_cdf = np.sum(probs * dist.cdf(grid), -1)
    n_values = jax.jit(lambda m, g: (m.mean, m.variance, m.cdf(g)))(n_mixture, jnp.asarray(grid[:, 0]))
    for got_mean, got_variance, got_cdf in (
        (mixture.mean.numpy(), mixture.variance.numpy(), mixture.cdf(torch.tensor(grid[:, 0])).numpy()),
        tuple(np.asarray(v) for v in n_values),
    ):
        np.testing.assert_allclose(got_mean, want_mean, rtol=1e-12)
        np.testing.assert_allclose(got_variance, want_variance, rtol=1e-10)
        np.testing.assert_allclose(got_cdf, want_cdf, rtol=1e-11)


BAD_COMPONENTS = [
    ("gamma", {"concentration": [0.0, 1.0], "rate": [1.0, 1.0]}, "concentration"),
    ("gamma", {"concentration": [1.0, 1.0], "rate": [1.0, -2.0]}, "rate"),
    ("beta", {"concentration1": [1.0, 1.0], "concentration0": [-1.0, 1.0]}, "concentration0"),
    ("beta", {"concentration1": [np.nan, 1.0], "concentration0": [1.0, 1.0]}, "concentration1"),
    ("student_t", {"df": [0.0, 3.0], "loc": [0.0, 0.0], "scale": [1.0, 1.0]}, "df"),
]


@pytest.mark.parametrize("family, values, name", BAD_COMPONENTS)
def test_bad_parameters_raise_naming_them(family, values, name):
    """Validation on (components' own validation off): a ``ValueError`` naming the parameter,
    in both adapters; with the components' validation on, the framework's own names it."""
    tensors = {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}
    arrays = {k: jnp.asarray(v) for k, v in values.items()}
    with pdist.validation_enabled(False):
        component = _pyro_component(family, {k: v[:, None] for k, v in tensors.items()}, False)
    with pytest.raises(ValueError, match=name):
        pyro_gmm.ReparamMixtureSameFamily(pdist.Categorical(logits=torch.zeros(2)), component, validate_args=True)
    # torch's Beta validates through its Dirichlet, whose message names "concentration"
    with pytest.raises(ValueError, match="concentration" if family == "beta" else name), pdist.validation_enabled(True):
        pyro_gmm.ReparamMixtureSameFamily(
            pdist.Categorical(logits=torch.zeros(2)),
            _pyro_component(family, {k: v[:, None] for k, v in tensors.items()}, False),
        )
    with pytest.raises(ValueError, match=name):
        numpyro_gmm.ReparamMixtureSameFamily(
            ndist.CategoricalLogits(jnp.zeros(2)),
            _numpyro_component(family, {k: v[:, None] for k, v in arrays.items()}, False),
            validate_args=True,
        )


@pytest.mark.parametrize("family, value", [("gamma", -1.0), ("gamma", np.nan), ("beta", 1.5), ("beta", -0.25)])
def test_log_prob_outside_the_support_raises_naming_value(family, value):
    """Validation on: a value outside the components' support (the frameworks' own constraint:
    torch's Gamma includes 0, NumPyro's does not) raises ``ValueError`` naming ``value`` in
    both adapters (NumPyro alone would only warn)."""
    params, _ = _case(family, 1)
    tensors = {k: torch.tensor(v) for k, v in params.items()}
    arrays = {k: jnp.asarray(v) for k, v in params.items()}
    with pdist.validation_enabled(True):
        mixture = pyro_gmm.ReparamMixtureSameFamily(
            pdist.Categorical(logits=tensors["logits"]), _pyro_component(family, tensors, False), validate_args=True
        )
        with pytest.raises(ValueError, match="value"):
            mixture.log_prob(torch.tensor([0.5, value], dtype=torch.float64))
    n_mixture = numpyro_gmm.ReparamMixtureSameFamily(
        ndist.CategoricalLogits(arrays["logits"]), _numpyro_component(family, arrays, False), validate_args=True
    )
    with pytest.raises(ValueError, match="value"):
        n_mixture.log_prob(jnp.asarray([0.5, value]))
    assert np.all(np.isfinite(np.asarray(n_mixture.log_prob(jnp.asarray([0.5, 0.25])))))


def test_bad_cdf_gradient_options_raise():
    params, _ = _case("beta", 1)
    tensors = {k: torch.tensor(v) for k, v in params.items()}
    arrays = {k: jnp.asarray(v) for k, v in params.items()}
    pyro_parts = (pdist.Categorical(logits=tensors["logits"]), _pyro_component("beta", tensors, False))
    numpyro_parts = (ndist.CategoricalLogits(arrays["logits"]), _numpyro_component("beta", arrays, False))
    for make, parts in (
        (pyro_gmm.ReparamMixtureSameFamily, pyro_parts),
        (numpyro_gmm.ReparamMixtureSameFamily, numpyro_parts),
    ):
        with pytest.raises(ValueError, match="cdf_gradient='exact'"):
            make(*parts, cdf_gradient="exact")
        with pytest.raises(ValueError, match="cdf_gradient must be one of"):
            make(*parts, cdf_gradient="numerical")
        with pytest.raises(ValueError, match="cdf_gradient_samples"):
            make(*parts, cdf_gradient_samples=0)
    gamma_params, _ = _case("gamma", 1)
    with pytest.raises(ValueError, match="cdf_gradient='exact'"):  # torch has no dP/da
        pyro_gmm.ReparamMixtureSameFamily(
            pdist.Categorical(logits=torch.zeros(2)),
            pdist.Gamma(torch.tensor(gamma_params["concentration"][:, 0]), 1.0),
            cdf_gradient="exact",
        )
    exact = numpyro_gmm.ReparamMixtureSameFamily(  # JAX has it
        ndist.CategoricalLogits(jnp.zeros(2)),
        ndist.Gamma(jnp.asarray(gamma_params["concentration"][:, 0]), 1.0),
        cdf_gradient="exact",
    )
    assert exact.resolved_cdf == ("exact", 1)
