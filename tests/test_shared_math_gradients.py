r"""Implicit, hybrid and chosen-component gradients of ``shared_math`` against the full-Jacobian reference.

The reference (``_reference.py``) builds :math:`J=\partial T/\partial x` and
:math:`\partial T/\partial\theta` per sample with autograd and solves the triangular
systems directly (Graves 2016, Eq. 6); ``shared_math`` does it with the O(K·D) sweeps.
Criterion (:func:`_reference.assert_close`, ``floor=1``): max-norm relative error
:math:`|a-e| \le \mathrm{rtol}(|e| + \max|e|)` with rtol = 1e-10 in float64; float32 inputs
(benign parameters) must give float32 outputs within 1e-4 of the float64 reference.

NumPy, torch and array-api-strict run every size K in {1, 2, 5} x D in {1, 2, 7, 30} with
batch, sample and broadcast dimensions; JAX (through ``jax.jit``, see ``conftest.py``) runs
one size, K=2, D=7, since each new shape costs a compile.
"""

from __future__ import annotations

import functools

import _reference as ref
import numpy as np
import pytest

import shared_math
import shared_math._sweeps
import shared_math.estimators

NUM_COMPONENTS = (1, 2, 5)
EVENT_SIZES = (1, 2, 7, 30)
#: JAX compiles each function anew per shape (``jax.jit``, about 0.7 s of CPU each): one size.
JAX_SIZES = {(2, 7)}
RTOL64 = 1e-10


@functools.cache
def case_with_jacobians(case, num_components, event_size):
    seed = 1000 * num_components + event_size + 7 * len(case)
    data = ref.mixture_case(case, num_components, event_size, seed)
    rng = np.random.default_rng(seed + 1)
    data["locs_dot"] = rng.standard_normal(data["locs"].shape)
    data["scales_dot"] = rng.standard_normal(data["scales"].shape)
    data["logits_dot"] = rng.standard_normal(data["logits"].shape)
    args = (data["x"], data["locs"], data["scales"], data["logits"])
    jac = ref.Jacobians(*args)
    # The reference checks its own structure: J is lower triangular with the conditional
    # densities f_d = p(x_<=d) / p(x_<d) (from log_prob of the marginals) on the diagonal.
    assert np.all(np.triu(jac.x.numpy(), 1) == 0.0)
    log_marginals = [np.zeros(jac.sample_shape)] + [
        np.broadcast_to(ref.log_prob(*(a[..., : d + 1] for a in args[:3]), args[3]), jac.sample_shape)
        for d in range(event_size)
    ]
    densities = np.exp(np.diff(np.stack(log_marginals, -1), axis=-1)).reshape(-1, event_size)
    np.testing.assert_allclose(np.diagonal(jac.x.numpy(), axis1=-2, axis2=-1), densities, rtol=1e-10)
    data["vjp"] = ref.implicit_vjp(*args, data["cotangent"], jacobians=jac)
    data["jvp"] = ref.implicit_jvp(*args, data["locs_dot"], data["scales_dot"], data["logits_dot"], jacobians=jac)
    zeros = [np.zeros_like(data[k]) for k in ("locs_dot", "scales_dot")]
    data["jvp_logits_only"] = ref.implicit_jvp(*args, *zeros, data["logits_dot"], jacobians=jac)
    return data


def _combos(backends=("numpy", "torch", "jax", "strict")):
    combos = []
    for backend in backends:
        for k in NUM_COMPONENTS:
            for d in EVENT_SIZES:
                if backend != "jax" or (k, d) in JAX_SIZES:
                    combos.append(pytest.param(backend, k, d, id=f"{backend}-K{k}-D{d}"))
    return combos


def _args(xp, data, keys, dtype=None):
    return [xp.asarray(data[k], dtype) for k in keys]


PARAMETERS = ("locs", "scales", "logits")
POINT_AND_PARAMETERS = ("x",) + PARAMETERS


# ------------------------------------------------------------------------------------------
# implicit_vjp
# ------------------------------------------------------------------------------------------


def _check_vjp(xp, data, dtype, rtol):
    out = xp.call(shared_math.implicit_vjp, *_args(xp, data, POINT_AND_PARAMETERS + ("cotangent",), dtype))
    assert len(out) == 3
    for name, got, expected in zip(PARAMETERS, out, data["vjp"]):
        assert xp.owns(got), f"{name}_bar is {type(got)}"
        assert got.dtype == (xp.float32 if dtype == "float32" else xp.float64)
        assert tuple(got.shape) == data[name].shape, f"{name}_bar shape {got.shape} != {data[name].shape}"
        ref.assert_close(xp.to_numpy(got), expected, rtol, what=f"{name}_bar ({xp.name}, {dtype})")


@pytest.mark.parametrize("xp,num_components,event_size", _combos(), indirect=["xp"])
def test_implicit_vjp_broadcast_batch_and_sample_dims(xp, num_components, event_size):
    """locs (3,K,D), scales (K,D), logits (1,K), x and cotangent (4,3,D); 1e-10 relative."""
    _check_vjp(xp, case_with_jacobians("broadcast", num_components, event_size), None, RTOL64)


@pytest.mark.parametrize("case", ["unbatched", "shared_scales"])
def test_implicit_vjp_other_shapes(xp, case):
    """No batch dims / scales shared over components (K axis 1) and two batch dims; 1e-10 relative."""
    _check_vjp(xp, case_with_jacobians(case, 3, 4), None, RTOL64)


def test_implicit_vjp_float32(xp):
    _check_vjp(xp, case_with_jacobians("broadcast", 2, 7), "float32", 1e-4)


def test_implicit_vjp_single_component_is_reparameterization_trick(xp):
    """K = 1: locs_bar = g, scales_bar = g·eps (to rounding), logits_bar = 0 exactly."""
    data = ref.mixture_case("unbatched", 1, 3, seed=3)
    locs_bar, scales_bar, logits_bar = xp.call(
        shared_math.implicit_vjp, *_args(xp, data, POINT_AND_PARAMETERS + ("cotangent",))
    )
    g, eps = data["cotangent"], data["noise"]
    ref.assert_close(xp.to_numpy(locs_bar), np.sum(g, 0)[None], 1e-14, floor=0.0, what="locs_bar")
    # z = ((mu + sigma·eps) - mu) / sigma equals eps up to a few rounding errors of x.
    ref.assert_close(xp.to_numpy(scales_bar), np.sum(g * eps, 0)[None], 1e-13, what="scales_bar")
    np.testing.assert_array_equal(xp.to_numpy(logits_bar), np.zeros(1))


# ------------------------------------------------------------------------------------------
# implicit_jvp
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("xp,num_components,event_size", _combos(), indirect=["xp"])
def test_implicit_jvp_matches_reference_and_vjp(xp, num_components, event_size):
    r"""x_dot = -J^{-1} dT/dtheta theta_dot (1e-10 relative), and the adjoint identity
    <g, jvp(theta_dot)> = <vjp(g), theta_dot> between shared_math's own two modes (1e-12)."""
    data = case_with_jacobians("broadcast", num_components, event_size)
    point_and_parameters = _args(xp, data, POINT_AND_PARAMETERS)
    tangents = _args(xp, data, ("locs_dot", "scales_dot", "logits_dot"))
    x_dot = xp.call(shared_math.implicit_jvp, *point_and_parameters, *tangents)
    assert xp.owns(x_dot) and x_dot.dtype == xp.float64 and tuple(x_dot.shape) == data["x"].shape
    ref.assert_close(xp.to_numpy(x_dot), data["jvp"], RTOL64, what=f"x_dot ({xp.name})")

    # Tangents left out (None) count as zero.
    x_dot_logits = xp.call(shared_math.implicit_jvp, *point_and_parameters, logits_dot=tangents[2])
    ref.assert_close(xp.to_numpy(x_dot_logits), data["jvp_logits_only"], RTOL64, what="x_dot (logits only)")

    bars = xp.call(shared_math.implicit_vjp, *point_and_parameters, xp.asarray(data["cotangent"]))
    forward = np.sum(data["cotangent"] * xp.to_numpy(x_dot))
    reverse = sum(np.sum(xp.to_numpy(b) * data[k + "_dot"]) for b, k in zip(bars, PARAMETERS))
    scale = np.sum(np.abs(data["cotangent"] * xp.to_numpy(x_dot)))
    assert abs(forward - reverse) <= 1e-12 * scale, (forward, reverse)


def test_implicit_jvp_float32(xp):
    data = case_with_jacobians("broadcast", 2, 7)
    keys = POINT_AND_PARAMETERS + ("locs_dot", "scales_dot", "logits_dot")
    x_dot = xp.call(shared_math.implicit_jvp, *_args(xp, data, keys, "float32"))
    assert xp.owns(x_dot) and x_dot.dtype == xp.float32
    ref.assert_close(xp.to_numpy(x_dot), data["jvp"], 1e-4, what="x_dot float32")


@pytest.mark.parametrize("case", ["unbatched", "shared_scales"])
def test_implicit_jvp_other_shapes(xp, case):
    data = case_with_jacobians(case, 3, 4)
    keys = POINT_AND_PARAMETERS + ("locs_dot", "scales_dot", "logits_dot")
    x_dot = xp.call(shared_math.implicit_jvp, *_args(xp, data, keys))
    ref.assert_close(xp.to_numpy(x_dot), data["jvp"], RTOL64, what=f"x_dot {case}")


# ------------------------------------------------------------------------------------------
# chosen_component_vjp, hybrid_vjp, hybrid_jvp
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(ref.SHAPE_CASES))
def test_chosen_component_vjp(xp, case):
    data = case_with_jacobians(case, 3, 4)
    expected = ref.chosen_component_vjp(
        data["component"], data["noise"], data["cotangent"], data["locs"].shape, data["scales"].shape
    )
    chosen = xp.asarray(ref.one_hot(data["component"], 3))
    out = xp.call(
        shared_math.estimators.chosen_component_vjp,
        chosen,
        xp.asarray(data["noise"]),
        xp.asarray(data["cotangent"]),
        data["locs"].shape,
        data["scales"].shape,
        static_argnums=(3, 4),
    )
    for name, got, want in zip(("locs", "scales"), out, expected):
        assert xp.owns(got) and tuple(got.shape) == data[name].shape
        ref.assert_close(xp.to_numpy(got), want, 1e-13, what=f"chosen {name}_bar")


@pytest.mark.parametrize("case", ["broadcast", "shared_scales"])
def test_hybrid_vjp(xp, case):
    """locs/scales: the chosen-component path; logits: the implicit logits gradient (Eq. 22)."""
    data = case_with_jacobians(case, 3, 4)
    chosen = xp.asarray(ref.one_hot(data["component"], 3))
    out = xp.call(
        shared_math.hybrid_vjp,
        *_args(xp, data, POINT_AND_PARAMETERS),
        chosen,
        xp.asarray(data["noise"]),
        xp.asarray(data["cotangent"]),
    )
    expected_locs, expected_scales = ref.chosen_component_vjp(
        data["component"], data["noise"], data["cotangent"], data["locs"].shape, data["scales"].shape
    )
    for name, got, want in zip(PARAMETERS, out, (expected_locs, expected_scales, data["vjp"][2])):
        assert xp.owns(got) and got.dtype == xp.float64 and tuple(got.shape) == data[name].shape
        ref.assert_close(xp.to_numpy(got), want, RTOL64, what=f"hybrid {name}_bar")


def test_hybrid_jvp(xp):
    r"""x_dot = locs_dot[k] + scales_dot[k]·eps + implicit x_dot(logits_dot), and adjoint to hybrid_vjp."""
    data = case_with_jacobians("broadcast", 3, 4)
    chosen = ref.one_hot(data["component"], 3)
    # locs_dot[k] + scales_dot[k]·eps is sample_from_noise applied to the tangents.
    expected = (
        ref.sample_from_noise(data["locs_dot"], data["scales_dot"], data["component"], data["noise"])
        + data["jvp_logits_only"]
    )
    args = _args(xp, data, POINT_AND_PARAMETERS) + [xp.asarray(chosen), xp.asarray(data["noise"])]
    tangents = _args(xp, data, ("locs_dot", "scales_dot", "logits_dot"))
    x_dot = xp.call(shared_math.hybrid_jvp, *args, *tangents)
    assert xp.owns(x_dot) and tuple(x_dot.shape) == data["x"].shape
    ref.assert_close(xp.to_numpy(x_dot), expected, RTOL64, what="hybrid x_dot")
    # Each tangent alone (the others None).
    for position, name in enumerate(("locs_dot", "scales_dot", "logits_dot")):
        only = [None, None, None]
        only[position] = tangents[position]
        x_dot_one = xp.to_numpy(xp.call(shared_math.hybrid_jvp, *args, *only))
        single = {k: (data[k] if k == name else np.zeros_like(data[k])) for k in ("locs_dot", "scales_dot")}
        want = ref.sample_from_noise(single["locs_dot"], single["scales_dot"], data["component"], data["noise"])
        if name == "logits_dot":
            want = data["jvp_logits_only"]
        ref.assert_close(x_dot_one, want, RTOL64, what=f"hybrid x_dot, {name} only")
    # Adjoint identity with hybrid_vjp.
    bars = xp.call(shared_math.hybrid_vjp, *args, xp.asarray(data["cotangent"]))
    forward = np.sum(data["cotangent"] * xp.to_numpy(x_dot))
    reverse = sum(np.sum(xp.to_numpy(b) * data[k + "_dot"]) for b, k in zip(bars, PARAMETERS))
    assert abs(forward - reverse) <= 1e-12 * np.sum(np.abs(data["cotangent"] * xp.to_numpy(x_dot)))


def test_implicit_gradients_balanced_components(xp):
    r"""Equal logits (K=2: both weights 1/2 up to rounding, e.g. -26 and 3.7 where they round
    to just above 1/2), vjp and jvp against the reference to 1e-10.  Symmetric starts like
    this are common (uniform mixture initialisation)."""
    rng = np.random.default_rng(42)
    logits = np.array([[-26.0, -26.0], [3.7, 3.7], [0.0, 0.0]])  # batch of 3 mixtures, K = 2
    locs, scales, _ = ref.random_parameters(rng, (3, 2, 3), (3, 2, 3), (3, 2))
    x, _, _ = ref.sample_mixture(rng, locs, scales, logits, (4,))
    g = rng.standard_normal(x.shape)
    logits_dot = rng.standard_normal(logits.shape)
    jac = ref.Jacobians(x, locs, scales, logits)
    expected_bars = ref.implicit_vjp(x, locs, scales, logits, g, jacobians=jac)
    zeros = (np.zeros_like(locs), np.zeros_like(scales))
    expected_x_dot = ref.implicit_jvp(x, locs, scales, logits, *zeros, logits_dot, jacobians=jac)

    args = [xp.asarray(a) for a in (x, locs, scales, logits)]
    bars = xp.call(shared_math.implicit_vjp, *args, xp.asarray(g))
    for name, got, want in zip(PARAMETERS, bars, expected_bars):
        ref.assert_close(xp.to_numpy(got), want, RTOL64, what=f"balanced {name}_bar")
    x_dot = xp.call(shared_math.implicit_jvp, *args, logits_dot=xp.asarray(logits_dot))
    ref.assert_close(xp.to_numpy(x_dot), expected_x_dot, RTOL64, what="balanced x_dot (logits)")
