r"""``shared_math.full_covariance`` against the brute-force reference ``_reference_full_covariance``.

The reference conditions each Gaussian by Schur complements (no whitened residuals, no
sweeps), takes the full per-point Jacobians of the distributional transform with
``torch.func.jacrev`` and solves the triangular systems directly (Graves 2016, Eq. 6).
Criterion (``_reference.assert_close``, ``floor=1``): max-norm relative error
:math:`|a-e|\le\mathrm{rtol}(|e|+\max|e|)` with rtol = 1e-9 in float64.

NumPy runs every event size D = 1..16 (K = 3, random correlated factors); torch and
array-api-strict a spread of sizes and the broadcast shape cases; JAX (through ``jax.jit``,
one compile per shape) two sizes.  Plus: a diagonal ``scale_tril`` reproduces the diagonal
mixture's gradients to 1e-12, the strict upper triangle is never read and gets a zero
gradient, the eager sweeps do not depend on their block size, ``"rao_blackwell"`` and
``"hybrid"`` match autograd of their defining paths, every estimator's JVP is the transpose
of its VJP, float32 on factors of condition number 1e4 stays within 1e-3 of float64, and
:math:`\sum_k\bar\mu_k = g` holds per point in float32 on random hard mixtures (property-based).
"""

from __future__ import annotations

import functools

import _reference as diag_ref
import _reference_full_covariance as ref
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import shared_math
import shared_math.full_covariance as fc
from shared_math import full_covariance_implicit_jvp, full_covariance_implicit_vjp

RTOL = 1e-9
NUMPY_SIZES = tuple((3, d) for d in range(1, 17))
OTHER_SIZES = ((1, 4), (2, 1), (3, 5), (4, 9), (2, 16))
JAX_SIZES = ((3, 7),)
NUM_POINTS = 4
PARAMETERS = ("locs", "scale_tril", "logits")


@functools.cache
def case(num_components, event_size, shape="unbatched"):
    r"""Test data and reference gradients.  ``shape``: ``"unbatched"`` (x (4, D), parameters
    unbatched) or ``"broadcast"`` (locs (2, K, D), scale_tril (K, D, D), logits (1, K),
    x (3, 2, D)) or ``"shared_factor"`` (scale_tril (2, 1, D, D): one factor for all components)."""
    seed = 97 * num_components + event_size + len(shape)
    rng = np.random.default_rng(seed)
    if shape == "unbatched":
        locs, scale_tril, logits = ref.random_mixture(rng, (), num_components, event_size)
        sample_shape = (NUM_POINTS,)
    elif shape == "broadcast":
        locs, _, _ = ref.random_mixture(rng, (2,), num_components, event_size)
        _, scale_tril, _ = ref.random_mixture(rng, (), num_components, event_size)
        logits = rng.standard_normal((1, num_components))
        sample_shape = (3,)
    else:
        locs, _, logits = ref.random_mixture(rng, (2,), num_components, event_size)
        scale_tril = ref.random_scale_tril(rng, (2, 1, event_size, event_size)[:-1])
        sample_shape = ()
    x, component, noise = ref.sample_mixture(rng, locs, scale_tril, logits, sample_shape)
    data = dict(locs=locs, scale_tril=scale_tril, logits=logits, x=x, component=component, noise=noise)
    data["cotangent"] = rng.standard_normal(x.shape)
    data["locs_dot"] = rng.standard_normal(locs.shape)
    data["scale_tril_dot"] = np.tril(rng.standard_normal(scale_tril.shape))
    data["logits_dot"] = rng.standard_normal(logits.shape)
    args = (x, locs, scale_tril, logits)
    jacobians = ref.Jacobians(*args)
    # The reference checks itself: J is lower triangular with the conditional densities
    # f_d = p(x_<=d)/p(x_<d) on the diagonal (from log_prob of the marginals).
    assert np.all(np.triu(jacobians.x.numpy(), 1) == 0.0)
    marginals = [np.zeros(jacobians.sample_shape)]
    for d in range(event_size):
        marginals.append(
            np.broadcast_to(
                ref.log_prob(x[..., : d + 1], locs[..., : d + 1], scale_tril[..., : d + 1, : d + 1], logits),
                jacobians.sample_shape,
            )
        )
    densities = np.exp(np.diff(np.stack(marginals, -1), axis=-1)).reshape(-1, event_size)
    np.testing.assert_allclose(np.diagonal(jacobians.x.numpy(), axis1=-2, axis2=-1), densities, rtol=1e-10)
    data["vjp"] = ref.implicit_vjp(*args, data["cotangent"], jacobians=jacobians)
    data["jvp"] = ref.implicit_jvp(
        *args, data["locs_dot"], data["scale_tril_dot"], data["logits_dot"], jacobians=jacobians
    )
    data["one_hot"] = ref_one_hot(component, num_components)
    return data


def ref_one_hot(component, num_components):
    return (np.asarray(component)[..., None] == np.arange(num_components)).astype(np.float64)


def _arrays(xp, data, keys, dtype=None):
    return [xp.asarray(data[k], dtype) for k in keys]


def _combos():
    out = [pytest.param("numpy", k, d, id=f"numpy-K{k}-D{d}") for k, d in NUMPY_SIZES]
    out += [pytest.param(b, k, d, id=f"{b}-K{k}-D{d}") for b in ("torch", "strict") for k, d in OTHER_SIZES]
    out += [pytest.param("jax", k, d, id=f"jax-K{k}-D{d}") for k, d in JAX_SIZES]
    return out


@pytest.fixture
def backend(request):
    from conftest import BACKENDS

    return BACKENDS[request.param]


#: JAX compiles every new function and shape (about 1 s of CPU each, more under load), so
#: the checks that run on every backend run on JAX for the default estimator only.
EAGER = ("numpy", "torch", "strict")


def _backend_estimator_combos():
    combos = [pytest.param(b, e, id=f"{b}-{e}") for b in EAGER for e in ("implicit", "hybrid", "rao_blackwell")]
    return combos + [pytest.param("jax", "implicit", id="jax-implicit", marks=pytest.mark.slow)]


@pytest.mark.parametrize("backend,num_components,event_size", _combos(), indirect=["backend"])
def test_implicit_vjp_and_jvp_match_full_jacobian(backend, num_components, event_size):
    """Per-point implicit gradients equal the full-Jacobian reference to 1e-9 (reverse and forward mode)."""
    data = case(num_components, event_size)
    args = _arrays(backend, data, ("x", "locs", "scale_tril", "logits"))
    bars = backend.call(full_covariance_implicit_vjp, *args, backend.asarray(data["cotangent"]))
    for name, actual, expected in zip(PARAMETERS, bars, data["vjp"]):
        assert backend.owns(actual)
        diag_ref.assert_close(backend.to_numpy(actual), expected, RTOL, what=f"{name}_bar")
    x_dot = backend.call(
        full_covariance_implicit_jvp, *args, *_arrays(backend, data, ("locs_dot", "scale_tril_dot", "logits_dot"))
    )
    diag_ref.assert_close(backend.to_numpy(x_dot), data["jvp"], RTOL, what="x_dot")


@pytest.mark.parametrize(
    "backend,shape",
    [pytest.param(b, shape, id=f"{b}-{shape}") for b in EAGER for shape in ("broadcast", "shared_factor")]
    + [pytest.param("jax", "broadcast", id="jax-broadcast", marks=pytest.mark.slow)],
    indirect=["backend"],
)
def test_broadcast_shapes(backend, shape):
    """Batch, sample and broadcast dimensions (incl. one factor shared by all components) sum to
    the parameters' shapes; values and gradients match the reference (1e-9)."""
    data = case(3, 5, shape)
    args = _arrays(backend, data, ("x", "locs", "scale_tril", "logits"))
    bars = backend.call(full_covariance_implicit_vjp, *args, backend.asarray(data["cotangent"]))
    for name, actual, expected in zip(PARAMETERS, bars, data["vjp"]):
        assert tuple(actual.shape) == data[name].shape
        diag_ref.assert_close(backend.to_numpy(actual), expected, RTOL, what=f"{name}_bar")
    x_dot = backend.call(
        full_covariance_implicit_jvp, *args, *_arrays(backend, data, ("locs_dot", "scale_tril_dot", "logits_dot"))
    )
    diag_ref.assert_close(backend.to_numpy(x_dot), data["jvp"], RTOL, what="x_dot")
    reference = dict(
        log_prob=ref.log_prob, transform=ref.distributional_transform, log_weights=ref.conditional_log_weights
    )
    ours = dict(
        log_prob=fc.full_covariance_log_prob,
        transform=fc.full_covariance_distributional_transform,
        log_weights=fc.full_covariance_conditional_log_weights,
    )
    raw = [data[k] for k in ("x", "locs", "scale_tril", "logits")]
    for name in reference:
        expected = reference[name](*raw)
        actual = backend.to_numpy(backend.call(ours[name], *args))
        np.testing.assert_allclose(actual, expected, rtol=1e-11, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("backend", [*EAGER, pytest.param("jax", marks=pytest.mark.slow)], indirect=True)
def test_values_match_reference(backend):
    """log_prob, T and the conditional log weights (1e-11), mean/covariance/variance against NumPy moments."""
    data = case(3, 6)
    args = _arrays(backend, data, ("x", "locs", "scale_tril", "logits"))
    raw = [data[k] for k in ("x", "locs", "scale_tril", "logits")]
    np.testing.assert_allclose(
        backend.to_numpy(backend.call(fc.full_covariance_log_prob, *args)), ref.log_prob(*raw), rtol=1e-12
    )
    np.testing.assert_allclose(
        backend.to_numpy(backend.call(fc.full_covariance_distributional_transform, *args)),
        ref.distributional_transform(*raw),
        rtol=1e-11,
    )
    np.testing.assert_allclose(
        backend.to_numpy(backend.call(fc.full_covariance_conditional_log_weights, *args)),
        ref.conditional_log_weights(*raw),
        rtol=1e-11,
        atol=1e-12,
    )
    locs, tril, logits = data["locs"], data["scale_tril"], data["logits"]
    pi = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    mean = pi @ locs
    covariance = sum(p * (t @ t.T + np.outer(m - mean, m - mean)) for p, t, m in zip(pi, tril, locs))
    params = args[1:]
    np.testing.assert_allclose(backend.to_numpy(fc.full_covariance_mean(*params)), mean, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(fc.full_covariance_covariance(*params)), covariance, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(fc.full_covariance_variance(*params)), np.diag(covariance), rtol=1e-12)


def test_upper_triangle_is_not_read_and_gets_zero_gradient():
    """Garbage above the diagonal changes no value or gradient; its gradient is exactly 0 for every estimator."""
    data = case(3, 6)
    rng = np.random.default_rng(5)
    garbage = data["scale_tril"] + np.triu(rng.standard_normal(data["scale_tril"].shape), 1)
    common = (data["x"], data["locs"])
    for estimator in fc.FULL_COVARIANCE_ESTIMATORS:
        clean = fc.full_covariance_sample_vjp(
            estimator, *common, data["scale_tril"], data["logits"], data["one_hot"], data["noise"], data["cotangent"]
        )
        dirty = fc.full_covariance_sample_vjp(
            estimator, *common, garbage, data["logits"], data["one_hot"], data["noise"], data["cotangent"]
        )
        for a, b in zip(clean, dirty):
            np.testing.assert_array_equal(a, b)
        assert np.all(np.triu(clean[1], 1) == 0.0)
        assert np.any(np.tril(clean[1], -1) != 0.0)
    np.testing.assert_array_equal(
        fc.full_covariance_log_prob(data["x"], data["locs"], garbage, data["logits"]),
        fc.full_covariance_log_prob(data["x"], data["locs"], data["scale_tril"], data["logits"]),
    )


@pytest.mark.parametrize("backend,estimator", _backend_estimator_combos(), indirect=["backend"])
def test_diagonal_factor_gives_diagonal_mixture_gradients(backend, estimator):
    """With diagonal ``scale_tril`` = diag(sigma), ``locs_bar``, the diagonal of ``scale_tril_bar`` and
    ``logits_bar`` equal the diagonal mixture's (``shared_math.sample_vjp``) to 1e-12, and the forward
    modes agree for diagonal tangents."""
    rng = np.random.default_rng(11)
    locs, scales, logits = diag_ref.random_parameters(rng, (4, 6), (4, 6), (4,))
    x, component, noise = diag_ref.sample_mixture(rng, locs, scales, logits, (7,))
    one_hot = ref_one_hot(component, 4)
    cotangent = rng.standard_normal(x.shape)
    tril = scales[..., None] * np.eye(6)
    arrays = [backend.asarray(a) for a in (x, locs, tril, logits, one_hot, noise, cotangent)]
    full = backend.call(fc.full_covariance_sample_vjp, estimator, *arrays, static_argnums=(0,))
    diagonal = backend.call(
        shared_math.sample_vjp,
        estimator,
        *[backend.asarray(a) for a in (x, locs, scales, logits, one_hot, noise, cotangent)],
        static_argnums=(0,),
    )
    full = [backend.to_numpy(a) for a in full]
    diagonal = [backend.to_numpy(a) for a in diagonal]
    diag_ref.assert_close(full[0], diagonal[0], 1e-12, what="locs_bar")
    diag_ref.assert_close(np.diagonal(full[1], axis1=-2, axis2=-1), diagonal[1], 1e-12, what="scales_bar")
    diag_ref.assert_close(full[2], diagonal[2], 1e-12, what="logits_bar")
    locs_dot, scales_dot, logits_dot = (rng.standard_normal(a.shape) for a in (locs, scales, logits))
    tangents = [backend.asarray(a) for a in (locs_dot, scales_dot[..., None] * np.eye(6), logits_dot)]
    full_dot = backend.call(fc.full_covariance_sample_jvp, estimator, *arrays[:6], *tangents, static_argnums=(0,))
    diagonal_dot = backend.call(
        shared_math.sample_jvp,
        estimator,
        *[backend.asarray(a) for a in (x, locs, scales, logits, one_hot, noise, locs_dot, scales_dot, logits_dot)],
        static_argnums=(0,),
    )
    diag_ref.assert_close(backend.to_numpy(full_dot), backend.to_numpy(diagonal_dot), 1e-12, what="x_dot")


def test_single_component_is_the_reparameterization_trick():
    r"""K = 1: every estimator gives :math:`\bar\mu = g`, :math:`\bar L = \mathrm{tril}(g\varepsilon^\top)`, :math:`\bar\ell=0` (1e-12)."""
    data = case(1, 5)
    noise = np.linalg.solve(data["scale_tril"][0], (data["x"] - data["locs"][0]).T).T
    for estimator in fc.FULL_COVARIANCE_ESTIMATORS:
        locs_bar, tril_bar, logits_bar = fc.full_covariance_sample_vjp(
            estimator,
            data["x"],
            data["locs"],
            data["scale_tril"],
            data["logits"],
            data["one_hot"],
            noise,
            data["cotangent"],
        )
        diag_ref.assert_close(locs_bar[0], data["cotangent"].sum(0), 1e-12, what=estimator)
        diag_ref.assert_close(tril_bar[0], np.tril(data["cotangent"].T @ noise), 1e-12, what=estimator)
        assert np.abs(logits_bar).max() < 1e-12


def test_locs_gradients_sum_to_the_cotangent_per_point():
    r""":math:`\sum_k\bar\mu_k = g` for every point (moving every component moves the sample), 1e-12."""
    data = case(4, 9)
    n = data["x"].shape[0]
    per_point = [np.broadcast_to(data[k], (n,) + data[k].shape).copy() for k in ("locs", "scale_tril", "logits")]
    locs_bar, _, _ = full_covariance_implicit_vjp(data["x"], *per_point, data["cotangent"])
    diag_ref.assert_close(locs_bar.sum(-2), data["cotangent"], 1e-12)


def test_rao_blackwell_and_hybrid_follow_their_paths():
    """``rao_blackwell`` per point equals autograd of sum_k sg[r_k] g.(mu_k + L_k sg[eps_k]); ``hybrid``
    equals autograd through ``full_covariance_sample_from_noise`` (1e-12); both take ``logits_bar``
    from the implicit gradient."""
    import torch

    data = case(3, 6)
    n = data["x"].shape[0]
    per_point = {k: np.broadcast_to(data[k], (n,) + data[k].shape).copy() for k in ("locs", "scale_tril", "logits")}
    args = (data["x"], per_point["locs"], per_point["scale_tril"], per_point["logits"])
    rb = fc.full_covariance_rao_blackwell_vjp(*args, data["cotangent"])
    expected = ref.per_sample_rao_blackwell_vjp(*args, data["cotangent"])
    diag_ref.assert_close(rb[0], expected[0], 1e-12, what="locs_bar")
    diag_ref.assert_close(rb[1], expected[1], 1e-12, what="scale_tril_bar")
    implicit = full_covariance_implicit_vjp(*args, data["cotangent"])
    diag_ref.assert_close(rb[2], implicit[2], 1e-12, what="logits_bar")
    hybrid = fc.full_covariance_hybrid_vjp(*args, data["one_hot"], data["noise"], data["cotangent"])
    locs_t = torch.tensor(per_point["locs"], requires_grad=True)
    tril_t = torch.tensor(per_point["scale_tril"], requires_grad=True)
    x = fc.full_covariance_sample_from_noise(locs_t, tril_t, torch.tensor(data["one_hot"]), torch.tensor(data["noise"]))
    np.testing.assert_allclose(x.detach().numpy(), data["x"], rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(x, (locs_t, tril_t), torch.tensor(data["cotangent"]))
    diag_ref.assert_close(hybrid[0], grads[0].numpy(), 1e-12, what="hybrid locs_bar")
    diag_ref.assert_close(hybrid[1], grads[1].numpy(), 1e-12, what="hybrid scale_tril_bar")
    diag_ref.assert_close(hybrid[2], implicit[2], 1e-12, what="hybrid logits_bar")


@pytest.mark.parametrize("backend,estimator", _backend_estimator_combos(), indirect=["backend"])
def test_jvp_is_transpose_of_vjp(backend, estimator):
    r""":math:`\langle g, \dot x\rangle = \langle\bar\theta, \dot\theta\rangle` per estimator (1e-11), on every backend."""
    data = case(3, 7, "broadcast")
    arrays = _arrays(backend, data, ("x", "locs", "scale_tril", "logits", "one_hot", "noise"))
    bars = backend.call(
        fc.full_covariance_sample_vjp, estimator, *arrays, backend.asarray(data["cotangent"]), static_argnums=(0,)
    )
    tangents = _arrays(backend, data, ("locs_dot", "scale_tril_dot", "logits_dot"))
    x_dot = backend.call(fc.full_covariance_sample_jvp, estimator, *arrays, *tangents, static_argnums=(0,))
    lhs = np.sum(backend.to_numpy(x_dot) * data["cotangent"])
    rhs = sum(np.sum(backend.to_numpy(b) * data[k + "_dot"]) for b, k in zip(bars, PARAMETERS))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-11)


@pytest.mark.parametrize("block", [1, 2, 5, 16])
def test_sweeps_do_not_depend_on_block_size(monkeypatch, block):
    """The blocked eager sweeps give the same gradients for every block size (1e-12), D = 11."""
    data = case(3, 11, "broadcast")
    args = [data[k] for k in ("x", "locs", "scale_tril", "logits")]
    reference_bars = full_covariance_implicit_vjp(*args, data["cotangent"])
    tangents = [data[k] for k in ("locs_dot", "scale_tril_dot", "logits_dot")]
    reference_dot = full_covariance_implicit_jvp(*args, *tangents)
    monkeypatch.setattr(fc, "sweep_block_size", lambda event_size: block)
    for a, b in zip(full_covariance_implicit_vjp(*args, data["cotangent"]), reference_bars):
        diag_ref.assert_close(a, b, 1e-12)
    diag_ref.assert_close(full_covariance_implicit_jvp(*args, *tangents), reference_dot, 1e-12)


# ------------------------------------------------------------------------------------------
# float32 on ill-conditioned factors.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend_name,separation,estimators",
    [
        pytest.param(name, separation, ("implicit", "hybrid", "rao_blackwell"), id=f"{name}-spread{separation:g}")
        for name in ("numpy", "torch")
        for separation in (1.0, 6.0)
    ]
    + [pytest.param("jax", 6.0, ("implicit",), id="jax-spread6-implicit")],  # (vjp and jvp: 4 compiles)
)
def test_float32_ill_conditioned_within_1e3_of_float64(backend_name, separation, estimators):
    r"""Factors of condition number 1e4 (eigenvalues of :math:`\Sigma` over [1e-8, 1]), K = 3, D = 6,
    64 points drawn from the mixture, overlapping (spread 1) or separated (spread 6) components:
    every output of ``log_prob``, ``distributional_transform`` and the three estimators' VJPs
    and JVPs on float32 inputs is finite, float32, and within 1e-3 of float64 on the same
    float32-cast inputs in the max norm of each array,
    :math:`\max|a_{32}-a_{64}|\le 10^{-3}\max|a_{64}|`.

    Measured: at most 3.4e-4 (``distributional_transform``), 2.1e-4 (``scale_tril_bar``),
    1e-4 (JVPs), 3e-6 (``locs_bar``, ``logits_bar``).  Entry by entry the error is bounded
    below by the whitening itself: a backward-stable triangular solve gives
    :math:`\varepsilon = L^{-1}(x-\mu)` to about :math:`\kappa(L)\,u_{32}\approx 6\cdot10^{-4}`
    relative, so single entries of :math:`T` and of :math:`\bar L` (through
    :math:`y\varepsilon^\top`) are up to 2e-3 off relative to themselves, as in any float32
    computation with such a factor (``torch.distributions.MultivariateNormal`` included).
    """
    from conftest import BACKENDS

    backend = BACKENDS[backend_name]
    rng = np.random.default_rng(int(10 * separation))
    locs, scale_tril, logits = ref.random_mixture(rng, (), 3, 6, spread=separation, condition=1e4)
    x, component, noise = ref.sample_mixture(rng, locs, scale_tril, logits, (64,))
    raw = dict(
        x=x,
        locs=locs,
        scale_tril=scale_tril,
        logits=logits,
        one_hot=ref_one_hot(component, 3),
        noise=noise,
        cotangent=rng.standard_normal(x.shape),
        locs_dot=rng.standard_normal(locs.shape),
        scale_tril_dot=np.tril(rng.standard_normal(scale_tril.shape)),
        logits_dot=rng.standard_normal(logits.shape),
    )
    cast = {k: v.astype(np.float32).astype(np.float64) for k, v in raw.items()}
    outputs = {}
    for dtype in ("float32", "float64"):
        a = {k: backend.asarray(v, dtype) for k, v in cast.items()}
        params = (a["x"], a["locs"], a["scale_tril"], a["logits"])
        results = {}
        if backend_name != "jax":  # (JAX: one compile per function and dtype; the estimators suffice)
            results["log_prob"] = backend.call(fc.full_covariance_log_prob, *params)
            results["transform"] = backend.call(fc.full_covariance_distributional_transform, *params)
        for estimator in estimators:
            bars = backend.call(
                fc.full_covariance_sample_vjp,
                estimator,
                *params,
                a["one_hot"],
                a["noise"],
                a["cotangent"],
                static_argnums=(0,),
            )
            for name, bar in zip(PARAMETERS, bars):
                results[f"{estimator}_{name}_bar"] = bar
            results[f"{estimator}_x_dot"] = backend.call(
                fc.full_covariance_sample_jvp,
                estimator,
                *params,
                a["one_hot"],
                a["noise"],
                a["locs_dot"],
                a["scale_tril_dot"],
                a["logits_dot"],
                static_argnums=(0,),
            )
        outputs[dtype] = results
    for name, value32 in outputs["float32"].items():
        assert str(value32.dtype).endswith("float32"), name
        single = backend.to_numpy(value32).astype(np.float64)
        double = backend.to_numpy(outputs["float64"][name])
        assert np.all(np.isfinite(single)), name
        diag_ref.assert_close(single, double, 1e-3, floor=1.0, what=name)


@st.composite
def hard_full_covariance_mixtures(draw):
    r"""K in 1..4, D in 1..5, factors :math:`L_k = \operatorname{diag}(s_k)\,U_k` with scales
    :math:`s` log-uniform in [1e-3, 1e3] and :math:`U_k` unit lower triangular (strictly lower
    entries :math:`N(0, 0.5^2)`), locs in [-500, 500], logits in [-30, 30], a quarter of the
    mixtures with two identical components; 6 points drawn from the mixture; everything
    float32-representable (as ``hard_mixtures`` of ``test_float32_identities``)."""
    num_components, event_size = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    kd = (num_components, event_size)
    floats = dict(allow_nan=False, allow_infinity=False)
    scales = 10.0 ** draw(arrays(np.float64, kd, elements=st.floats(-3.0, 3.0, **floats)))
    locs = draw(arrays(np.float64, kd, elements=st.floats(-500.0, 500.0, **floats)))
    logits = draw(arrays(np.float64, (num_components,), elements=st.floats(-30.0, 30.0, **floats)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    unit = np.tril(0.5 * rng.standard_normal(kd + (event_size,)), k=-1) + np.eye(event_size)
    scale_tril = scales[..., None] * unit
    if num_components > 1 and draw(st.integers(0, 3)) == 0:
        locs[1], scale_tril[1], logits[1] = locs[0], scale_tril[0], logits[0]
    x, _, _ = ref.sample_mixture(rng, locs, scale_tril, logits, (6,))
    case = dict(x=x, locs=locs, scale_tril=scale_tril, logits=logits, cotangent=rng.standard_normal(x.shape))
    return {k: np.asarray(v).astype(np.float32).astype(np.float64) for k, v in case.items()}


@pytest.mark.parametrize("backend", ["numpy", "torch"], indirect=True)
@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=hard_full_covariance_mixtures())
def test_float32_locs_identity_on_random_hard_factors(backend, case):
    r""":math:`\sum_k\bar\mu_{kd} = g_d` per point in float32 (``full_covariance_implicit_vjp``,
    parameters broadcast over the points so that nothing is summed), within 4 float32 eps of
    :math:`|g_d| + \sum_k|\bar\mu_{kd}|` (measured: at most 0.5 eps over 800 draws).  The
    reverse sweep takes :math:`y` of the most responsible component from this identity,
    because its two :math:`h` terms cancel in float32 when :math:`r_{ki}\to1`; without that
    correction about half of these draws break it, some by 100 % (mutant
    ``fc-reverse-no-largest-correction``)."""
    num_points = case["x"].shape[0]
    per_point = [np.broadcast_to(case[k], (num_points,) + case[k].shape) for k in ("locs", "scale_tril", "logits")]
    inputs = [backend.asarray(a, "float32") for a in (case["x"], *per_point, case["cotangent"])]
    locs_bar = backend.to_numpy(backend.call(full_covariance_implicit_vjp, *inputs)[0])
    assert str(locs_bar.dtype) == "float32"
    locs_bar = locs_bar.astype(np.float64)
    assert np.all(np.isfinite(locs_bar))
    cotangent = case["cotangent"]
    error = np.abs(locs_bar.sum(-2) - cotangent) / (np.abs(cotangent) + np.abs(locs_bar).sum(-2))
    assert error.max() <= 4 * float(np.finfo(np.float32).eps)


# ------------------------------------------------------------------------------------------
# Validation.
# ------------------------------------------------------------------------------------------


def test_shape_errors_name_the_parameter():
    shapes = fc.full_covariance_shapes
    assert shapes((2, 3, 4), (3, 4, 4), (2, 3)) == ((2,), 3, 4)
    assert shapes((3, 4), (1, 4, 4), (3,)) == ((), 3, 4)
    with pytest.raises(ValueError, match="scale_tril"):
        shapes((3, 4), (3, 4), (3,))
    with pytest.raises(ValueError, match="scale_tril"):
        shapes((3, 4), (3, 4, 5), (3,))
    with pytest.raises(ValueError, match="scale_tril"):
        shapes((3, 4), (2, 4, 4), (3,))
    with pytest.raises(ValueError, match="scale_tril"):
        shapes((2, 3, 4), (5, 3, 4, 4), (3,))
    with pytest.raises(ValueError, match="locs"):
        shapes((4,), (3, 4, 4), (3,))
    with pytest.raises(ValueError, match="logits"):
        shapes((3, 4), (3, 4, 4), (2,))


@pytest.mark.parametrize(
    "corrupt,message",
    [
        (lambda t: np.where(np.eye(t.shape[-1], dtype=bool), -t, t), "positive diagonal"),
        (lambda t: t * (1 - np.eye(t.shape[-1])), "positive diagonal"),
        (lambda t: np.where(np.eye(t.shape[-1], k=-1, dtype=bool), np.nan, t), "NaN"),
        (lambda t: np.where(np.eye(t.shape[-1], k=-1, dtype=bool), np.inf, t), "finite"),
        (lambda t: t + np.triu(np.ones_like(t), 1), "lower triangular"),
        (lambda t: t @ np.swapaxes(t, -1, -2), "lower triangular"),
    ],
    ids=["negative_diagonal", "zero_diagonal", "nan", "inf", "upper", "covariance_passed"],
)
def test_value_errors_name_scale_tril(xp, corrupt, message):
    """A bad ``scale_tril`` raises ``ValueError`` naming it; the matrix is not modified."""
    data = case(3, 4)
    bad = corrupt(data["scale_tril"].copy())
    before = bad.copy()
    with pytest.raises(ValueError) as error:
        fc.check_full_covariance_values(xp.asarray(data["locs"]), xp.asarray(bad), xp.asarray(data["logits"]))
    assert "scale_tril" in str(error.value) and message in str(error.value)
    np.testing.assert_array_equal(bad, before)
    fc.check_full_covariance_values(*(xp.asarray(data[k]) for k in ("locs", "scale_tril", "logits")))


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "strict"], indirect=True)
def test_sample_from_noise_unbatched_and_batched_paths_agree(backend):
    """``full_covariance_sample_from_noise`` takes one matrix product for unbatched parameters
    and the internal layout otherwise (batched, or one factor shared by all components): each
    gives mu_k + L_k eps of the chosen component (against NumPy, 1e-12), sample shapes (4, 3)
    included; the upper triangle is not read."""
    rng = np.random.default_rng(5)
    num_components, event_size = 3, 4
    locs = rng.normal(size=(num_components, event_size))
    scale_tril = rng.normal(size=(num_components, event_size, event_size))  # upper triangle: garbage
    component = rng.integers(0, num_components, size=(4, 3))
    one_hot = np.eye(num_components)[component]
    noise = rng.normal(size=(4, 3, event_size))
    want = locs[component] + np.einsum("...ij,...j->...i", np.tril(scale_tril)[component], noise)
    for batch in ((), (1,)):  # () takes the matrix product, (1,) the internal layout
        got = backend.call(
            fc.full_covariance_sample_from_noise,
            backend.asarray(np.reshape(locs, batch + locs.shape)),
            backend.asarray(np.reshape(scale_tril, batch + scale_tril.shape)),
            backend.asarray(one_hot),
            backend.asarray(noise),
        )
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-12, atol=1e-12, err_msg=str(batch))
    # one factor shared by every component (K axis of size 1): the internal layout
    shared = scale_tril[:1]
    want_shared = locs[component] + np.einsum("ij,...j->...i", np.tril(shared[0]), noise)
    got = backend.call(
        fc.full_covariance_sample_from_noise,
        backend.asarray(locs),
        backend.asarray(shared),
        backend.asarray(one_hot),
        backend.asarray(noise),
    )
    np.testing.assert_allclose(backend.to_numpy(got), want_shared, rtol=1e-12, atol=1e-12, err_msg="shared factor")
