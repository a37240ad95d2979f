"""``sum_to_shape``, ``resolve_estimator``, the shape/value checks, and what ``import shared_math`` pulls in."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import shared_math
import shared_math._sweeps
from shared_math import AUTO_ESTIMATOR

# ------------------------------------------------------------------------------------------
# sum_to_shape: the adjoint of broadcasting.
# ------------------------------------------------------------------------------------------

SUM_CASES = [
    ((5, 3, 2, 4), (3, 2, 4)),  # sample dim added in front
    ((5, 3, 2, 4), (2, 4)),  # two leading dims added
    ((5, 3, 2, 4), (1, 2, 4)),  # a size-1 batch dim kept
    ((5, 3, 2, 4), (3, 1, 4)),  # a size-1 component axis (shared scales)
    ((6, 2), (1, 1)),
    ((2, 4), (2, 4)),  # nothing to do
]


@pytest.mark.parametrize("array_shape,shape", SUM_CASES)
def test_sum_to_shape_is_adjoint_of_broadcast(xp, array_shape, shape):
    r"""<sum_to_shape(A), B> = <A, broadcast_to(B)> for all B, and the shape is ``shape`` (1e-13)."""
    rng = np.random.default_rng(len(array_shape) + len(shape))
    array = rng.standard_normal(array_shape)
    out = shared_math._sweeps.sum_to_shape(xp.asarray(array), shape, xp.xp)
    assert xp.owns(out) and tuple(out.shape) == shape
    out = xp.to_numpy(out)
    for _ in range(3):
        probe = rng.standard_normal(shape)
        np.testing.assert_allclose(np.sum(out * probe), np.sum(array * np.broadcast_to(probe, array_shape)), rtol=1e-13)
    # And, entry by entry, against NumPy's reduction of the same broadcast.
    lead = len(array_shape) - len(shape)
    expected = array.sum(axis=tuple(range(lead)))
    kept = tuple(i for i, n in enumerate(shape) if n == 1 and expected.shape[i] != 1)
    np.testing.assert_allclose(out, expected.sum(axis=kept, keepdims=True), rtol=1e-13)


# ------------------------------------------------------------------------------------------
# resolve_estimator
# ------------------------------------------------------------------------------------------


def test_resolve_estimator():
    assert tuple(shared_math.ESTIMATORS) == ("implicit", "hybrid", "rao_blackwell")
    assert shared_math.ESTIMATOR_CHOICES == ("auto", "implicit", "hybrid", "rao_blackwell")
    # "auto" -> the measured default (benchmarks/variance/, docs/estimators.md), whatever D is.
    assert AUTO_ESTIMATOR == "rao_blackwell"
    assert shared_math.resolve_estimator("auto") == AUTO_ESTIMATOR
    for concrete in ("implicit", "hybrid", "rao_blackwell"):
        assert shared_math.resolve_estimator(concrete) == concrete
    for bad in ("Implicit", "score", None, ["implicit"]):
        with pytest.raises(ValueError, match="estimator must be one of"):
            shared_math.resolve_estimator(bad)


# ------------------------------------------------------------------------------------------
# mixture_shapes / broadcast_shapes
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "locs,scales,logits,expected",
    [
        ((3, 2), (3, 2), (3,), ((), 3, 2)),
        ((4, 3, 2), (3, 2), (1, 3), ((4,), 3, 2)),
        ((2, 1, 3, 5), (1, 5), (2, 7, 3), ((2, 7), 3, 5)),
        ((1, 1), (1, 1), (1,), ((), 1, 1)),
        ((3, 2), (1, 1), (3,), ((), 3, 2)),
    ],
)
def test_mixture_shapes(locs, scales, logits, expected):
    assert shared_math.mixture_shapes(locs, scales, logits) == expected


@pytest.mark.parametrize(
    "locs,scales,logits,name",
    [
        ((3,), (3, 2), (3,), "locs"),
        ((3, 2), (2,), (3,), "scales"),
        ((3, 2), (3, 2), (), "logits"),
        ((3, 2), (3, 4), (3,), "scales"),  # event size differs
        ((3, 2), (2, 2), (3,), "scales"),  # component count differs
        ((3, 2), (3, 2), (4,), "logits"),  # component count differs
        ((0, 2), (0, 2), (0,), "locs"),  # no components
        ((3, 0), (3, 0), (3,), "locs"),  # no event dimension
        ((4, 3, 2), (5, 3, 2), (3,), "scales"),  # batch dims clash
        ((4, 3, 2), (3, 2), (5, 3), "logits"),
    ],
)
def test_mixture_shapes_errors_name_the_parameter(locs, scales, logits, name):
    with pytest.raises(ValueError, match=name):
        shared_math.mixture_shapes(locs, scales, logits)


def test_broadcast_shapes():
    rng = np.random.default_rng(0)
    for _ in range(50):
        ndim = rng.integers(0, 4)
        target = tuple(int(n) for n in rng.integers(1, 4, ndim))
        shapes = []
        for _ in range(3):
            cut = rng.integers(0, ndim + 1)
            shapes.append(tuple(1 if rng.random() < 0.4 else n for n in target[cut:]))
        named = [(f"p{i}", s) for i, s in enumerate(shapes)]
        assert shared_math.broadcast_shapes(*named) == np.broadcast_shapes(*shapes)
    with pytest.raises(ValueError, match="beta.*alpha|alpha.*beta"):
        shared_math.broadcast_shapes(("alpha", (2, 3)), ("beta", (4, 3)))


# ------------------------------------------------------------------------------------------
# check_parameter_values
# ------------------------------------------------------------------------------------------


def _good():
    return np.zeros((2, 3)), np.ones((2, 3)), np.zeros(2)


@pytest.mark.parametrize(
    "name,index,value",
    [
        ("locs", (0, 1), np.nan),
        ("locs", (1, 2), np.inf),
        ("logits", (1,), np.nan),
        ("logits", (0,), -np.inf),
        ("scales", (0, 0), 0.0),
        ("scales", (1, 1), -1.0),
        ("scales", (1, 2), np.inf),
        ("scales", (0, 2), np.nan),
    ],
)
def test_check_parameter_values_names_the_parameter(xp, name, index, value):
    parameters = dict(zip(("locs", "scales", "logits"), _good()))
    shared_math.check_parameter_values(*(xp.asarray(parameters[k]) for k in ("locs", "scales", "logits")))
    parameters[name] = parameters[name].copy()
    parameters[name][index] = value
    with pytest.raises(ValueError, match=name):
        shared_math.check_parameter_values(*(xp.asarray(parameters[k]) for k in ("locs", "scales", "logits")))


# ------------------------------------------------------------------------------------------
# Importing shared_math imports neither torch nor JAX.
# ------------------------------------------------------------------------------------------


def test_import_pulls_in_neither_torch_nor_jax():
    code = (
        "import sys, shared_math\n"
        "loaded = sorted(m for m in ('torch', 'jax', 'jaxlib') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
        "import numpy as np\n"
        "shared_math.implicit_vjp(np.zeros((1, 2)), np.zeros((2, 2)), np.ones((2, 2)), np.zeros(2), np.ones((1, 2)))\n"
        "loaded = sorted(m for m in ('torch', 'jax', 'jaxlib') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
