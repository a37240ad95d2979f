r"""The ``"rao_blackwell"`` estimator and the estimator dispatch of ``shared_math``.

``rao_blackwell_vjp`` gives :math:`\bar\mu_{kd} = r_k(x) g_d`, :math:`\bar\sigma_{kd} =
r_k(x) z_{kd} g_d` (responsibilities over the whole point) and the implicit ``logits_bar``.
Checked on every backend against

* an independent NumPy/SciPy formula for the responsibilities (float64, 1e-12);
* the identity that defines it: the chosen-component (``hybrid``) gradient averaged over the
  component given :math:`x`, i.e. :math:`\sum_k r_k(x)\,\mathrm{hybrid}(x, k, \varepsilon_k)`
  with :math:`\varepsilon_k = (x-\mu_k)/\sigma_k` (the noise that gives the same ``x``);
* the implicit gradient when :math:`D = 1` (where the two coincide) and the
  reparameterization trick when :math:`K = 1`;
* adjointness of ``rao_blackwell_jvp`` and ``rao_blackwell_vjp``.
"""

from __future__ import annotations

import _reference as ref
import numpy as np
import pytest
import scipy.special

import shared_math
import shared_math._sweeps
import shared_math.estimators


def responsibilities(x, locs, scales, logits):
    """:math:`r_k(x)` for every point, ``(..., K)``, by SciPy."""
    z = (x[..., None, :] - locs) / scales
    log_normal = np.sum(-0.5 * z * z - np.log(scales) - 0.5 * np.log(2 * np.pi), axis=-1)
    return scipy.special.softmax(scipy.special.log_softmax(logits, axis=-1) + log_normal, axis=-1)


@pytest.mark.parametrize("case", list(ref.SHAPE_CASES))
@pytest.mark.parametrize("num_components,event_size", [(1, 3), (2, 1), (3, 4), (5, 7)])
def test_rao_blackwell_vjp_matches_independent_formula(xp, case, num_components, event_size):
    data = ref.mixture_case(case, num_components, event_size, seed=100 + 10 * num_components + event_size)
    x, locs, scales, logits, g = (data[k] for k in ("x", "locs", "scales", "logits", "cotangent"))
    args = [xp.asarray(a) for a in (x, locs, scales, logits, g)]
    got = [xp.to_numpy(a) for a in xp.call(shared_math.rao_blackwell_vjp, *args)]
    r = responsibilities(x, locs, scales, logits)
    z = (x[..., None, :] - locs) / scales
    per_point_locs = r[..., None] * g[..., None, :]
    want_locs = shared_math._sweeps.sum_to_shape(per_point_locs, locs.shape, np)
    want_scales = shared_math._sweeps.sum_to_shape(per_point_locs * z, scales.shape, np)
    want_logits = ref.implicit_vjp(x, locs, scales, logits, g)[2]
    for name, a, b in zip(("locs_bar", "scales_bar", "logits_bar"), got, (want_locs, want_scales, want_logits)):
        ref.assert_close(a, b, 1e-12, what=name)


@pytest.mark.parametrize("num_components,event_size", [(2, 2), (4, 5)])
def test_rao_blackwell_is_hybrid_averaged_over_the_component_given_x(num_components, event_size):
    rng = np.random.default_rng(7)
    locs, scales, logits = ref.random_parameters(
        rng, (num_components, event_size), (num_components, event_size), (num_components,)
    )
    x, _, _ = ref.sample_mixture(rng, locs, scales, logits, (6,))
    g = rng.standard_normal(x.shape)
    r = responsibilities(x, locs, scales, logits)
    averaged = [np.zeros_like(locs), np.zeros_like(scales)]
    for k in range(num_components):
        one_hot = ref.one_hot(np.full(x.shape[:-1], k), num_components)
        noise = (x - locs[k]) / scales[k]  # the noise that draws the same x from component k
        for n in range(x.shape[0]):
            parts = shared_math.hybrid_vjp(x[n], locs, scales, logits, one_hot[n], noise[n], g[n])
            averaged[0] += r[n, k] * parts[0]
            averaged[1] += r[n, k] * parts[1]
    got = shared_math.rao_blackwell_vjp(x, locs, scales, logits, g)
    ref.assert_close(got[0], averaged[0], 1e-12, what="locs_bar")
    ref.assert_close(got[1], averaged[1], 1e-12, what="scales_bar")


def test_rao_blackwell_equals_implicit_in_one_dimension(xp):
    data = ref.mixture_case("broadcast", 4, 1, seed=3)
    args = [xp.asarray(data[k]) for k in ("x", "locs", "scales", "logits", "cotangent")]
    rb = xp.call(shared_math.rao_blackwell_vjp, *args)
    implicit = xp.call(shared_math.implicit_vjp, *args)
    for a, b in zip(rb, implicit):
        ref.assert_close(xp.to_numpy(a), xp.to_numpy(b), 1e-12)


def test_rao_blackwell_is_the_reparameterization_trick_for_one_component():
    rng = np.random.default_rng(4)
    locs, scales, logits = ref.random_parameters(rng, (1, 3), (1, 3), (1,))
    noise = rng.standard_normal((5, 3))
    x = locs[0] + scales[0] * noise
    g = rng.standard_normal(x.shape)
    locs_bar, scales_bar, logits_bar = shared_math.rao_blackwell_vjp(x, locs, scales, logits, g)
    ref.assert_close(locs_bar, g.sum(0, keepdims=True), 1e-13)
    ref.assert_close(scales_bar, (g * noise).sum(0, keepdims=True), 1e-12)
    assert np.all(logits_bar == 0.0)


@pytest.mark.parametrize("estimator", ["implicit", "hybrid", "rao_blackwell"])
def test_sample_jvp_is_adjoint_of_sample_vjp(xp, estimator):
    data = ref.mixture_case("broadcast", 3, 4, seed=9)
    rng = np.random.default_rng(10)
    tangents = [rng.standard_normal(np.shape(data[k])) for k in ("locs", "scales", "logits")]
    one_hot = ref.one_hot(data["component"], 3)
    primal = [xp.asarray(data[k]) for k in ("x", "locs", "scales", "logits")] + [
        xp.asarray(one_hot),
        xp.asarray(data["noise"]),
    ]

    def vjp(*args):
        return shared_math.sample_vjp(estimator, *args)

    def jvp(*args):
        return shared_math.sample_jvp(estimator, *args)

    bars = [xp.to_numpy(a) for a in xp.call(vjp, *primal, xp.asarray(data["cotangent"]))]
    x_dot = xp.to_numpy(xp.call(jvp, *primal, *[xp.asarray(t) for t in tangents]))
    assert x_dot.shape == data["x"].shape
    forward = np.sum(x_dot * data["cotangent"])
    reverse = sum(np.sum(b * t) for b, t in zip(bars, tangents))
    np.testing.assert_allclose(forward, reverse, rtol=1e-12)


def test_dispatch_matches_named_functions_and_rejects_unknown():
    data = ref.mixture_case("unbatched", 3, 2, seed=11)
    x, locs, scales, logits, g = (data[k] for k in ("x", "locs", "scales", "logits", "cotangent"))
    one_hot = ref.one_hot(data["component"], 3)
    named = {
        "implicit": shared_math.implicit_vjp(x, locs, scales, logits, g),
        "hybrid": shared_math.hybrid_vjp(x, locs, scales, logits, one_hot, data["noise"], g),
        "rao_blackwell": shared_math.rao_blackwell_vjp(x, locs, scales, logits, g),
    }
    for estimator, want in named.items():
        got = shared_math.sample_vjp(estimator, x, locs, scales, logits, one_hot, data["noise"], g)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    auto = shared_math.sample_vjp("auto", x, locs, scales, logits, one_hot, data["noise"], g)
    for a, b in zip(auto, named[shared_math.AUTO_ESTIMATOR]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="estimator must be one of"):
        shared_math.sample_jvp("reinforce", x, locs, scales, logits, one_hot, data["noise"])
