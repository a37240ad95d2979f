r"""Property-based float32 accuracy of ``shared_math`` on hard mixtures (hypothesis).

Parameters: K in 1..4, D in 1..5, scales log-uniform in [1e-3, 1e3], locs uniform in
[-500, 500] (components up to 1e3 apart), logits uniform in [-30, 30]; N = 6 points drawn
from the mixture itself (component, then noise) in float64 and cast to float32, with float32
cotangents and tangents.  Every output of ``log_prob``, ``distributional_transform``,
``implicit_vjp`` and ``implicit_jvp`` on the float32 inputs must be finite, float32, and
within 1e-3 of the float64 value computed from the *same* float32-cast inputs, entry by
entry, under the per-array criterion

.. math::

    |a_{32} - a_{64}| \le 10^{-3}\,\big(|a_{64}| + 10^{-3}\max|a_{64}|\big).

**Known failure (open).**  ``implicit_vjp`` in float32 loses accuracy when one component
dominates a conditional mixture (:math:`w_{kd}\approx1`): :math:`\tilde a_{kd} =
(w_{kd}/f_d)(\Phi_{kd}-F_d)` is formed as a difference of two nearly equal numbers, so its
error is absolute (about float32 eps / :math:`f_d`) instead of relative to the minor weights;
``logits_bar`` of the dominant component is then wrong by up to 100 %, and through the
:math:`1/\sigma` factor of the carry term the error reaches ``locs_bar``/``scales_bar`` when a
scale is tiny (6 % in :func:`test_float32_vjp_dominant_component_reproducers`).  Writing
:math:`\Phi_k - F = \sum_{j\ne k} w_j(t_k - t_j)` with exclusive (prefix + suffix) sums over
the other components removes it (prototype: errors 1.6e-2 -> 3e-7 and 6e-2 -> 2e-6).
The vjp checks are therefore ``xfail(strict=True)``: they fail today, and turn into an
error (XPASS) as soon as ``shared_math`` is fixed, so the marks must then be removed.

Runs on NumPy and torch (JAX compiles each new shape, far too slow for hundreds of random
shapes; its float32 path is covered on fixed shapes in the other test files).  The default
run draws 50 derandomized examples per backend and test; the ``slow`` variants draw 1000.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import _reference as ref
import shared_math

NUM_POINTS = 6
RTOL = 1e-3
FLOOR = 1e-3


@st.composite
def hard_mixtures(draw):
    """Float32-representable float64 arrays: ``dict(x, locs, scales, logits, cotangent, *_dot)``."""
    num_components = draw(st.integers(1, 4))
    event_size = draw(st.integers(1, 5))
    kd = (num_components, event_size)
    floats = dict(allow_nan=False, allow_infinity=False)
    log10_scales = draw(arrays(np.float64, kd, elements=st.floats(-3.0, 3.0, **floats)))
    locs = draw(arrays(np.float64, kd, elements=st.floats(-500.0, 500.0, **floats)))
    logits = draw(arrays(np.float64, (num_components,), elements=st.floats(-30.0, 30.0, **floats)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scales = 10.0**log10_scales
    x, _, _ = ref.sample_mixture(rng, locs, scales, logits, (NUM_POINTS,))
    data = dict(
        x=x, locs=locs, scales=scales, logits=logits,
        cotangent=rng.standard_normal(x.shape),
        locs_dot=rng.standard_normal(kd), scales_dot=rng.standard_normal(kd) * scales,
        logits_dot=rng.standard_normal(num_components),
    )
    # Cast once to float32; the float64 comparison value starts from these same numbers.
    return {k: v.astype(np.float32).astype(np.float64) for k, v in data.items()}


VALUE_OUTPUTS = ("log_prob", "distributional_transform", "implicit_jvp")
VJP_OUTPUTS = ("locs_bar", "scales_bar", "logits_bar")


def outputs(xp, data, dtype, which):
    """The outputs named in ``which``, as NumPy arrays, for inputs of ``dtype`` on backend ``xp``."""
    a = {k: xp.asarray(v, dtype) for k, v in data.items()}
    point = (a["x"], a["locs"], a["scales"], a["logits"])
    results = {}
    if "log_prob" in which:
        results["log_prob"] = shared_math.log_prob(*point)
    if "distributional_transform" in which:
        results["distributional_transform"] = shared_math.distributional_transform(*point)
    if "implicit_jvp" in which:
        results["implicit_jvp"] = shared_math.implicit_jvp(*point, a["locs_dot"], a["scales_dot"], a["logits_dot"])
    if "locs_bar" in which:
        results.update(zip(VJP_OUTPUTS, shared_math.implicit_vjp(*point, a["cotangent"])))
    for name, value in results.items():
        assert value.dtype == getattr(xp, dtype), f"{name}: dtype {value.dtype} for {dtype} inputs"
    return {k: xp.to_numpy(v) for k, v in results.items()}


def check_float32_matches_float64(xp, data, which):
    single = outputs(xp, data, "float32", which)
    double = outputs(xp, data, "float64", which)
    for name in which:
        assert np.all(np.isfinite(double[name])), f"{name}: float64 value not finite"
        assert np.all(np.isfinite(single[name])), f"{name}: float32 value not finite: {single[name]}"
        ref.assert_close(single[name], double[name], RTOL, floor=FLOOR, what=f"{name} float32 vs float64 ({xp.name})")


FLOAT32_BACKENDS = ["numpy", "torch"]
_common = dict(derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
#: An expected failure needs no shrinking: stop at the first counterexample.
_no_shrink = dict(_common, phases=[Phase.explicit, Phase.generate])
KNOWN_VJP_FAILURE = pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="shared_math: float32 a~ = (w/f)(Phi_k - F) cancels when one component dominates (see module docstring)",
)


@pytest.mark.parametrize("xp", FLOAT32_BACKENDS, indirect=True)
@settings(max_examples=50, **_common)
@given(data=hard_mixtures())
def test_float32_values_and_jvp_on_hard_mixtures(xp, data):
    check_float32_matches_float64(xp, data, VALUE_OUTPUTS)


@KNOWN_VJP_FAILURE
@pytest.mark.parametrize("xp", FLOAT32_BACKENDS, indirect=True)
@settings(max_examples=50, **_no_shrink)
@given(data=hard_mixtures())
def test_float32_vjp_on_hard_mixtures(xp, data):
    check_float32_matches_float64(xp, data, VJP_OUTPUTS)


@pytest.mark.slow
@pytest.mark.parametrize("xp", FLOAT32_BACKENDS, indirect=True)
@settings(max_examples=1000, **_common)
@given(data=hard_mixtures())
def test_float32_values_and_jvp_on_hard_mixtures_many(xp, data):
    check_float32_matches_float64(xp, data, VALUE_OUTPUTS)


@pytest.mark.slow
@KNOWN_VJP_FAILURE
@pytest.mark.parametrize("xp", FLOAT32_BACKENDS, indirect=True)
@settings(max_examples=1000, **_no_shrink)
@given(data=hard_mixtures())
def test_float32_vjp_on_hard_mixtures_many(xp, data):
    check_float32_matches_float64(xp, data, VJP_OUTPUTS)


# Minimal reproducers of the known failure, as (x, locs, scales, logits, cotangent).
DOMINANT_COMPONENT_CASES = {
    # K=2, D=1: pi_2 = e^-12 ~ 6e-6.  float64 logits_bar = [-6.0565e-06, 6.0565e-06];
    # float32 gives [-5.96e-06, 6.0565e-06]: the dominant entry is 1.6 % off (and the
    # entries no longer sum to zero).  As pi_2 -> 0 the error grows like eps / pi_2.
    "logits_K2_D1": ([[0.3]], [[0.0], [1.0]], [[1.0], [1.0]], [0.0, -12.0], [[1.0]]),
    # K=2, D=2: after x_0 (scale 1e-5 in component 0) component 0 dominates dimension 1;
    # the absolute error of a~ in dimension 1 is multiplied by 1/sigma = 1e5 in
    # scales_bar[0, 0]: float32 49.59 vs float64 52.74 (6 %).
    "scales_K2_D2": ([[2e-6, 30.0]], [[0.0, 0.0], [0.0, 50.0]], [[1e-5, 100.0], [1.0, 100.0]], [0.0, 0.0], [[0.0, 1.0]]),
}


@KNOWN_VJP_FAILURE
@pytest.mark.parametrize("xp", FLOAT32_BACKENDS, indirect=True)
@pytest.mark.parametrize("case", list(DOMINANT_COMPONENT_CASES))
def test_float32_vjp_dominant_component_reproducers(xp, case):
    """float32 implicit_vjp within 1e-3 (same criterion) of float64 on the two minimal cases."""
    x, locs, scales, logits, cotangent = (np.array(a, dtype=np.float64) for a in DOMINANT_COMPONENT_CASES[case])
    data = dict(x=x, locs=locs, scales=scales, logits=logits, cotangent=cotangent)
    check_float32_matches_float64(xp, data, VJP_OUTPUTS)
