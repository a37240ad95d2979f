"""Values of ``shared_math`` on every backend against the brute-force reference (``_reference.py``).

Covered: ``log_prob``, ``cdf``, ``log_cdf``, ``conditional_log_weights``,
``distributional_transform``, ``mean``, ``variance``, ``one_hot``, ``sample_from_noise``;
output namespace, dtype (float32 in -> float32 out) and shape follow the inputs.
Tolerances (criterion of :func:`_reference.assert_close`): 1e-12 relative in float64,
1e-4 relative to the float64 value in float32 (benign parameters here; hard float32
parameters are in ``test_shared_math_float32.py``).
"""

from __future__ import annotations

import functools

import _reference as ref
import numpy as np
import pytest
import scipy.special
import scipy.stats

import shared_math

SIZES = [(1, 1), (3, 4)]  # (K, D)
#: JAX compiles every function anew for each shape and dtype (``jax.jit``, 0.1-0.7 s of CPU
#: each), so it runs the DESIGN's broadcast case only; the other backends run them all.
JAX_COMBOS = {("broadcast", (3, 4))}


def backend_case_size_combos():
    """``(backend, case, size)`` parameters for the ``xp`` fixture (indirect) and the data."""
    combos = []
    for backend in ("numpy", "torch", "jax", "strict"):
        for case in ref.SHAPE_CASES:
            for size in SIZES:
                if backend != "jax" or (case, size) in JAX_COMBOS:
                    combos.append(pytest.param(backend, case, size, id=f"{backend}-{case}-K{size[0]}D{size[1]}"))
    return combos


@functools.cache
def case_with_reference(name, num_components, event_size):
    data = ref.mixture_case(name, num_components, event_size, seed=hash((name, num_components, event_size)) % 2**32)
    args = (data["x"], data["locs"], data["scales"], data["logits"])
    data["ref"] = dict(
        log_prob=ref.log_prob(*args),
        conditional_log_weights=ref.conditional_log_weights(*args),
        distributional_transform=ref.distributional_transform(*args),
        mean=ref.mean(*args[1:]),
        variance=ref.variance(*args[1:]),
    )
    return data


def _call(xp, function, data, keys, dtype=None):
    return xp.call(function, *(xp.asarray(data[k], dtype) for k in keys))


POINT_FUNCTIONS = ["log_prob", "conditional_log_weights", "distributional_transform"]
PARAMETER_FUNCTIONS = ["mean", "variance"]


@pytest.mark.parametrize("xp,case,size", backend_case_size_combos(), indirect=["xp"])
@pytest.mark.parametrize("function", POINT_FUNCTIONS + PARAMETER_FUNCTIONS)
def test_values_match_reference(xp, function, case, size):
    data = case_with_reference(case, *size)
    keys = ("locs", "scales", "logits") if function in PARAMETER_FUNCTIONS else ("x", "locs", "scales", "logits")
    out = _call(xp, getattr(shared_math, function), data, keys)
    assert xp.owns(out), f"{function} returned {type(out)} for {xp.name} inputs"
    assert out.dtype == xp.float64
    ref.assert_close(xp.to_numpy(out), data["ref"][function], 1e-12, what=f"{function} {xp.name}")


@pytest.mark.parametrize("function", POINT_FUNCTIONS + PARAMETER_FUNCTIONS)
def test_values_float32_in_float32_out(xp, function):
    data = case_with_reference("broadcast", 3, 4)
    keys = ("locs", "scales", "logits") if function in PARAMETER_FUNCTIONS else ("x", "locs", "scales", "logits")
    out32 = _call(xp, getattr(shared_math, function), data, keys, "float32")
    assert xp.owns(out32) and out32.dtype == xp.float32
    ref.assert_close(xp.to_numpy(out32), data["ref"][function], 1e-4, what=f"{function} float32 {xp.name}")


def test_first_conditional_weights_are_mixture_weights_and_normalised(xp):
    data = case_with_reference("broadcast", 3, 4)
    log_w = xp.to_numpy(_call(xp, shared_math.conditional_log_weights, data, ("x", "locs", "scales", "logits")))
    pi = np.exp(data["logits"] - np.log(np.sum(np.exp(data["logits"]), -1, keepdims=True)))
    np.testing.assert_allclose(np.exp(log_w[..., 0]), np.broadcast_to(pi, log_w.shape[:-1]), rtol=1e-13)
    np.testing.assert_allclose(np.sum(np.exp(log_w), axis=-2), 1.0, rtol=1e-13)


def test_mixed_dtypes_promote_to_float64(xp):
    data = case_with_reference("unbatched", 3, 4)
    out = xp.call(
        shared_math.log_prob,
        xp.asarray(data["x"], "float32"),
        xp.asarray(data["locs"]),
        xp.asarray(data["scales"], "float32"),
        xp.asarray(data["logits"], "float32"),
    )
    assert out.dtype == xp.float64


# ------------------------------------------------------------------------------------------
# 1-D cdf / log_cdf against scipy.stats, including the far tails.
# ------------------------------------------------------------------------------------------


def _one_d_case():
    rng = np.random.default_rng(11)
    locs = np.array([[-1.0, 0.5, 3.0], [0.0, 0.2, -2.0]])  # batch (2,), K=3
    scales = np.array([0.3, 1.0, 2.0])  # broadcast over the batch
    logits = rng.standard_normal((1, 3))
    # x: sample dims (4,) in front of the batch (2,); values from the far lower tail
    # (z ~ -60: Phi ~ 1e-800 underflows, log Phi does not) to the far upper tail.
    x = np.stack([np.full(2, -100.0), np.full(2, -0.7), np.full(2, 2.5), np.full(2, 40.0)])
    return x, locs, scales, logits


def test_cdf_and_log_cdf_match_scipy(xp):
    x, locs, scales, logits = _one_d_case()
    args = [xp.asarray(a) for a in (x, locs, scales, logits)]
    log_cdf = xp.call(shared_math.log_cdf, *args)
    cdf = xp.call(shared_math.cdf, *args)
    assert xp.owns(log_cdf) and xp.owns(cdf) and cdf.shape == log_cdf.shape == (4, 2)
    # floor=1e-3: at x = 40, F = 1 - 1e-200 and log F rounds to 0 or to +-1.1e-16 (an ulp of 1,
    # set by how log-softmax rounds the weights); the bound there is 1e-15 absolute.
    ref.assert_close(xp.to_numpy(log_cdf), ref.log_cdf_1d(x, locs, scales, logits), 1e-12, floor=1e-3, what="log_cdf")
    ref.assert_close(xp.to_numpy(cdf), ref.cdf_1d(x, locs, scales, logits), 1e-12, floor=0.0, what="cdf")
    assert np.all(np.isfinite(xp.to_numpy(log_cdf)))

    args32 = [xp.asarray(a, "float32") for a in (x, locs, scales, logits)]
    log_cdf32 = xp.call(shared_math.log_cdf, *args32)
    assert log_cdf32.dtype == xp.float32
    # float32 log_cdf stays finite and relatively accurate even where Phi underflows float32.
    # Criterion: |a - e| <= 1e-5 |e| + 1e-6 (absolute near log F = 0, where float32 rounds F).
    np.testing.assert_allclose(
        xp.to_numpy(log_cdf32),
        ref.log_cdf_1d(*(a.astype(np.float32) for a in (x, locs, scales, logits))),
        rtol=1e-5,
        atol=1e-6,
    )


def test_log_cdf_gradient_is_finite_in_far_lower_tail_float32():
    """``log(ndtr(z))`` has NaN gradients near z = -40 in float32; log_cdf must not (docs/design.md §1)."""
    import torch

    x = torch.tensor([-40.0, -60.0, -300.0], dtype=torch.float32, requires_grad=True)
    locs = torch.tensor([0.0, 1.0])
    scales = torch.tensor([1.0, 1.0])
    logits = torch.tensor([0.3, -0.2])
    (grad,) = torch.autograd.grad(shared_math.log_cdf(x, locs, scales, logits).sum(), x)
    assert torch.all(torch.isfinite(grad))
    # d/dx log Phi(x) ~ -x for x -> -inf (the dominant component is locs=0); within 1%.
    np.testing.assert_allclose(grad.numpy(), -x.detach().numpy(), rtol=1e-2)


# ------------------------------------------------------------------------------------------
# The distributional transform maps the mixture to Uniform(0, 1)^D (a statistical test).
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_size", [3])
def test_transform_of_mixture_draws_is_uniform(event_size):
    """N = 4000 seeded draws of a K=3 mixture; each T_d and the product of pairs are tested:
    KS p-value > 1e-4 per dimension (Bonferroni over D), and |corr(T_i, T_j)| < 4.5 sigma
    (sigma = 1/sqrt(N)) for independence."""
    rng = np.random.default_rng(5)
    locs, scales, logits = ref.random_parameters(rng, (3, event_size), (3, event_size), (3,), spread=2.0)
    x, _, _ = ref.sample_mixture(rng, locs, scales, logits, (4000,))
    u = shared_math.distributional_transform(x, locs, scales, logits)
    for d in range(event_size):
        assert scipy.stats.kstest(u[:, d], "uniform").pvalue > 1e-4 / event_size
    corr = np.corrcoef(u.T)[np.triu_indices(event_size, 1)]
    assert np.all(np.abs(corr) < 4.5 / np.sqrt(u.shape[0]))


# ------------------------------------------------------------------------------------------
# one_hot and sample_from_noise.
# ------------------------------------------------------------------------------------------


def test_one_hot(xp):
    component = np.array([[0, 2], [1, 1]])
    out = shared_math.one_hot(xp.asarray(component), 3, xp.float32)
    assert xp.owns(out) and out.dtype == xp.float32 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(xp.to_numpy(out), ref.one_hot(component, 3))


@pytest.mark.parametrize("case", list(ref.SHAPE_CASES))
def test_sample_from_noise(xp, case):
    data = case_with_reference(case, 3, 4)
    expected = ref.sample_from_noise(data["locs"], data["scales"], data["component"], data["noise"])
    np.testing.assert_allclose(expected, data["x"], rtol=1e-14)  # the reference's own draw
    for dtype in ("float64", "float32"):
        chosen = xp.asarray(ref.one_hot(data["component"], 3), dtype)
        out = xp.call(
            shared_math.sample_from_noise,
            xp.asarray(data["locs"], dtype),
            xp.asarray(data["scales"], dtype),
            chosen,
            xp.asarray(data["noise"], dtype),
        )
        assert xp.owns(out) and out.dtype == getattr(xp, dtype) and out.shape == expected.shape
        ref.assert_close(xp.to_numpy(out), expected, 1e-13 if dtype == "float64" else 1e-6, what=f"sample {dtype}")


@pytest.mark.parametrize("xp", ["numpy", "torch"], indirect=True)
@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-13)])
def test_normal_tail_matches_scipy_and_never_goes_subnormal(xp, dtype, rtol):
    """``families.normal_tail`` (Phi(-a) through erfc) against scipy's ndtr, and its clamp:
    at and beyond ``normal_tail_limit`` the result is the same normal number >= e * tiny.

    The tolerance is erfc's own: its relative error grows like a^2 eps in the tail (seen:
    2e-6 in float32 at a = 6 and 11.6, 3e-14 in float64 at a = 34)."""
    from shared_math import families

    namespace = xp.xp
    limit = families.normal_tail_limit(getattr(namespace, dtype), namespace)
    tiny = float(np.finfo(dtype).tiny)
    abs_z = np.array([0.0, 0.5, 1.0, 3.0, 6.0, 0.9 * limit, limit, 2.0 * limit, 1e3])
    got = xp.to_numpy(families.normal_tail(xp.asarray(abs_z, dtype), namespace)).astype(np.float64)
    want = scipy.stats.norm.cdf(-np.minimum(abs_z, limit))
    np.testing.assert_allclose(got, want, rtol=rtol)
    assert np.all(got[6:] >= np.e * tiny * (1 - 1e-3)) and np.all(got[6:] == got[6])
    assert scipy.stats.norm.cdf(-limit * (1 + 1e-9)) < np.e * tiny <= scipy.stats.norm.cdf(-limit)


def test_subnormals_flushed_inside_the_gradient_only():
    """torch flushes subnormal results while a gradient is computed and not after; a caller
    that flushes already keeps flushing."""
    import array_api_compat
    import torch

    from shared_math import _backend

    def flushes():
        return torch.tensor(1e-40, dtype=torch.float32).item() == 0.0

    namespace = array_api_compat.array_namespace(torch.zeros(1))
    supported = torch.set_flush_denormal(False)
    assert not flushes()
    with _backend.subnormals_flushed(namespace):
        assert flushes() == supported
    assert not flushes()
    data = ref.mixture_case("unbatched", 2, 3, seed=0)
    args = [torch.as_tensor(data[k]) for k in ("x", "locs", "scales", "logits", "cotangent")]
    shared_math.rao_blackwell_vjp(*args)
    assert not flushes()
    if supported:
        torch.set_flush_denormal(True)
        try:
            with _backend.subnormals_flushed(namespace):
                pass
            assert flushes()
        finally:
            torch.set_flush_denormal(False)


@pytest.mark.parametrize(
    "locs_shape, scales_shape",
    [((3, 4), (3, 4)), ((3, 4), (1, 4)), ((3, 1), (3, 4)), ((3, 4), (3, 1)), ((1, 3, 4), (3, 4))],
)
def test_sample_from_noise_with_broadcast_parameters(xp, locs_shape, scales_shape):
    """Unbatched parameters take two matrix products with the one-hot, others the sum over
    the one-hot axis; a ``locs``/``scales`` shared by every component (K axis of size 1) or
    broadcast over D goes the general way. Against NumPy, 1e-14."""
    rng = np.random.default_rng(3)
    locs = rng.normal(size=locs_shape)
    scales = np.exp(rng.normal(size=scales_shape))
    component = rng.integers(0, 3, size=(5,))
    noise = rng.normal(size=(5, 4))
    k_locs = component if locs.shape[-2] == 3 else np.zeros_like(component)
    k_scales = component if scales.shape[-2] == 3 else np.zeros_like(component)
    want = np.reshape(locs, locs.shape[-2:])[k_locs] + np.reshape(scales, scales.shape[-2:])[k_scales] * noise
    got = xp.call(
        shared_math.sample_from_noise,
        xp.asarray(locs),
        xp.asarray(scales),
        xp.asarray(np.eye(3)[component]),
        xp.asarray(noise),
    )
    np.testing.assert_allclose(np.reshape(xp.to_numpy(got), want.shape), want, rtol=1e-14, atol=1e-14)


# ------------------------------------------------------------------------------------------
# log-sum-exp and log-softmax: native in torch and JAX, the array-API version elsewhere.
# ------------------------------------------------------------------------------------------

_INF = np.inf
_LOGSUMEXP_ROWS = np.array(
    [
        [0.0, -1.0, 2.0],  # ordinary
        [-_INF, -_INF, -_INF],  # every entry -inf: -inf (not NaN)
        [-_INF, 1.0, -_INF],  # -inf entries drop out
        [_INF, 0.0, 1.0],  # +inf wins
        [np.nan, 0.0, 1.0],  # NaN propagates
        [-800.0, -801.0, -1000.0],  # far below exp's range
        [-3e38, -3e38, 0.0],  # near the lowest float32
    ]
)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logsumexp_and_log_softmax_edge_values(xp, dtype):
    from shared_math.mixture import log_softmax, logsumexp

    values = xp.asarray(_LOGSUMEXP_ROWS, dtype)
    got = xp.to_numpy(logsumexp(values, -1, xp.xp))
    kept = xp.to_numpy(logsumexp(values, -1, xp.xp, keepdims=True))
    with np.errstate(all="ignore"):
        want = scipy.special.logsumexp(_LOGSUMEXP_ROWS.astype(dtype), axis=-1)
    assert got.dtype == np.dtype(dtype) and kept.shape == (7, 1)
    np.testing.assert_array_equal(kept[:, 0], got)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-6 if dtype == "float32" else 1e-14)

    logits = xp.asarray([[0.5, -_INF, 2.0], [1.0, 1.0, 1.0]], dtype)  # a component switched off by -inf
    log_weights = xp.to_numpy(log_softmax(logits, xp.xp))
    want_weights = scipy.special.log_softmax(np.array([[0.5, -_INF, 2.0], [1.0, 1.0, 1.0]]), axis=-1)
    assert log_weights[0, 1] == -_INF
    np.testing.assert_allclose(log_weights[:, [0, 2]], want_weights[:, [0, 2]], rtol=1e-6)


def test_logsumexp_gradients_are_finite_where_every_entry_is_minus_infinity():
    """The native reductions (torch.logsumexp, jax.nn.logsumexp) give NaN gradients for a row
    of -inf; shared_math's wrapper gives zeros there and the softmax weights elsewhere."""
    import jax
    import jax.numpy as jnp
    import torch

    from shared_math._backend import get_namespace
    from shared_math.mixture import logsumexp

    rows = np.array([[-_INF, -_INF, -_INF], [0.0, -_INF, np.log(3.0)]])
    want = np.array([[0.0, 0.0, 0.0], [0.25, 0.0, 0.75]])
    values = torch.tensor(rows, requires_grad=True)
    logsumexp(values, -1, get_namespace(values)).sum().backward()
    np.testing.assert_allclose(values.grad.numpy(), want, rtol=1e-14, atol=0)

    grad = jax.grad(lambda v: jnp.sum(logsumexp(v, -1, get_namespace(v))))(jnp.asarray(rows))
    np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-14, atol=0)


def test_jax_matrix_products_ask_for_full_precision():
    """Every matrix product shared_math traces under JAX asks for ``Precision.HIGHEST``: on
    GPUs JAX's default for float32 may be TF32 (about three decimal digits), which would move
    the drawn points (a one-hot product gathers each draw's parameters) and the
    full-covariance sweeps.  Checked on the jaxprs of a diagonal draw and of a
    full-covariance draw's gradient (CPU products are full precision either way)."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    locs = jnp.asarray(rng.standard_normal((3, 4)), jnp.float32)
    scales = jnp.asarray(rng.uniform(0.5, 1.5, (3, 4)), jnp.float32)
    one_hot = jnp.asarray(np.eye(3)[[0, 2, 1, 1]], jnp.float32)
    noise = jnp.asarray(rng.standard_normal((4, 4)), jnp.float32)
    tril = jnp.asarray(np.tril(rng.standard_normal((3, 4, 4))) * 0.2 + np.eye(4), jnp.float32)
    logits = jnp.zeros(3, jnp.float32)
    x = jnp.asarray(rng.standard_normal((5, 4)), jnp.float32)

    def full_covariance_loss(locs, tril, logits):
        return jnp.sum(shared_math.full_covariance_implicit_vjp(x, locs, tril, logits, x)[1])

    jaxprs = [
        jax.make_jaxpr(shared_math.sample_from_noise)(locs, scales, one_hot, noise),
        jax.make_jaxpr(jax.grad(full_covariance_loss, argnums=(0, 1, 2)))(locs, tril, logits),
    ]
    for jaxpr in jaxprs:
        text = str(jaxpr)
        products = text.count("dot_general[")
        assert products > 0
        assert text.count("Precision.HIGHEST") >= products, text
