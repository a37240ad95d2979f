r"""Gamma and Beta families and learnable shape parameters (Student-t ``df``, Gamma
``concentration``, Beta ``concentration1``/``concentration0``) in ``shared_math``.

* the standardized functions of the Gamma and Beta against SciPy on every backend (1e-12;
  torch's native ``gammainc`` 5e-9 for concentrations >= 10, its measured accuracy), float32
  tails 1e-6, the log-space tails against mpmath (1e-12), nothing NaN outside the support;
* the shape velocities: JAX's exact Gamma velocity against mpmath (1e-10); both sampled estimators of Graves' Eq. 9 unbiased (z-tests, |z| < 5, N = 20000 per
  point) at CDF values 1e-3 .. 0.999; ours at least 5x less variance than Eq. 10's at equal
  inner draws where F(z) < 0.05;
* per-sample gradients of every estimator, shape parameters included, against the
  brute-force float64 reference of ``_family_reference`` (full Jacobian, the CDF's shape
  derivative replaced by the same sampled velocities, or by central differences where the
  backend is exact): 1e-9; forward mode against the reference and adjoint to reverse mode;
* ``cdf_gradient="sampled"`` on Normal mixtures: unbiased, equal in mean to the exact path
  (z-test over 4000 inner-noise replicates);
* option resolution and errors.
"""

from __future__ import annotations

import math

import _family_reference as fref
import _reference as ref
import mpmath
import numpy as np
import pytest
import scipy.special
import scipy.stats

import shared_math
from shared_math import families, sampled
from shared_math._backend import get_namespace, special

NUMPY = get_namespace(np.zeros(1))
Z_LIMIT = 5.0

GAMMA_CASES = [(0.3,), (1.0,), (4.5,), (80.0,)]
BETA_CASES = [(0.3, 0.7), (2.0, 5.0), (50.0, 3.0), (0.5, 40.0)]
FAMILY_CASES = [("gamma", p) for p in GAMMA_CASES] + [("beta", p) for p in BETA_CASES]


def _grid(family):
    if family == "gamma":
        return np.logspace(-6, 3, 160)
    return np.concatenate([np.logspace(-8, math.log10(0.5), 80), 1.0 - np.logspace(-12, math.log10(0.49), 80)])


def _scipy(family, params):
    return fref.scipy_distribution(family, shape=params)


# ------------------------------------------------------------------------------------------
# Standardized functions.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family, params", FAMILY_CASES)
def test_shape_family_functions_match_scipy(xp, family, params):
    """log g (1e-12), the smaller tail (1e-12 relative wherever SciPy's value exceeds 1e-290;
    torch's native ``gammainc`` 5e-9 for a >= 10), log G (1e-10 where SciPy's CDF is a
    normal number), -psi against a central difference of log g (1e-6), moments (1e-14)."""
    table = families.get_family(family)
    dist = _scipy(family, params)
    z_np = _grid(family)
    z = xp.asarray(z_np)
    shape = tuple(xp.asarray(np.full_like(z_np, p)) for p in params)
    namespace = xp.xp
    np.testing.assert_allclose(
        xp.to_numpy(table.log_density(z, shape, namespace)), dist.logpdf(z_np), rtol=1e-12, atol=1e-12
    )
    sign, tail = (xp.to_numpy(a) for a in table.smaller_tail(z, shape, namespace))
    want = np.where(sign < 0, dist.cdf(z_np), dist.sf(z_np))
    assert np.all(want <= 0.5 + 1e-12), "the tail taken must be the smaller one"
    # SciPy's betainc itself is off by 7e-11 at 5e-305 (mpmath): compare above 1e-290
    normal = want > 1e-290
    rtol = 5e-9 if (xp.name == "torch" and family == "gamma" and params[0] >= 10) else 1e-12
    np.testing.assert_allclose(tail[normal], want[normal], rtol=rtol)
    log_cdf = xp.to_numpy(table.log_cdf(z, shape, namespace))
    kept = dist.cdf(z_np) > 1e-300
    np.testing.assert_allclose(log_cdf[kept], dist.logcdf(z_np)[kept], rtol=max(rtol, 1e-10), atol=1e-14)
    assert np.all(np.isfinite(log_cdf))
    h = 1e-7 * (z_np if family == "gamma" else np.minimum(z_np, 1.0 - z_np))
    inside = z_np > 1e-5 if family == "gamma" else (z_np > 1e-5) & (1.0 - z_np > 1e-4)  # h representable
    score = -(dist.logpdf(z_np + h) - dist.logpdf(z_np - h)) / (2 * h)
    neg_score = xp.to_numpy(table.neg_score(z, shape, namespace))
    np.testing.assert_allclose(neg_score[inside], score[inside], rtol=1e-5, atol=1e-6)
    mean, variance = dist.stats(moments="mv")
    np.testing.assert_allclose(
        float(np.asarray(table.standard_mean(tuple(np.asarray(p) for p in params), NUMPY))), mean, rtol=1e-14
    )
    np.testing.assert_allclose(
        float(np.asarray(table.standard_variance(tuple(np.asarray(p) for p in params), NUMPY))), variance, rtol=1e-14
    )


@pytest.mark.parametrize("family, params", [("gamma", (0.7,)), ("beta", (1.5, 0.6)), ("student_t", (4.0,))])
def test_shape_scores_match_finite_differences(family, params):
    r""":math:`\partial_\theta\log g(z)` against a central difference of SciPy's log density in
    the parameter (relative step 1e-5, 1e-7)."""
    table = families.get_family(family)
    z = {"gamma": np.logspace(-4, 1.5, 40), "beta": np.linspace(0.01, 0.99, 40), "student_t": np.linspace(-30, 30, 41)}[
        family
    ]
    shape = tuple(np.full_like(z, p) for p in params)
    scores = table.shape_scores(z, shape, NUMPY)
    for index, score in enumerate(scores):
        step = 1e-5 * params[index]
        up, down = list(params), list(params)
        up[index] += step
        down[index] -= step
        want = (_scipy(family, up).logpdf(z) - _scipy(family, down).logpdf(z)) / (2 * step)
        np.testing.assert_allclose(score, want, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("xp", ["numpy", "torch", "strict"], indirect=True)
def test_outside_the_support_nothing_is_nan(xp):
    """Gamma at z <= 0 and Beta outside (0, 1): log g = -inf, tails 0 or 1 (as the floor), log G
    -inf or 0, finite scores and -psi; log_prob of a mixture -inf there."""
    namespace = xp.xp
    for family, params, z_np in (("gamma", (2.5,), [-3.0, -1e-300, 0.0]), ("beta", (0.5, 2.0), [-0.5, 0.0, 1.0, 1.5])):
        table = families.get_family(family)
        z = xp.asarray(np.asarray(z_np))
        shape = tuple(xp.asarray(np.full(len(z_np), p)) for p in params)
        assert np.all(xp.to_numpy(table.log_density(z, shape, namespace)) == -np.inf)
        _, tail = (xp.to_numpy(a) for a in table.smaller_tail(z, shape, namespace))
        assert np.all(np.isfinite(tail)) and np.all(tail <= np.finfo(np.float64).tiny * 10)
        log_cdf = xp.to_numpy(table.log_cdf(z, shape, namespace))
        below = np.asarray(z_np) <= 0
        assert np.all(log_cdf[below] == -np.inf) and np.all(log_cdf[~below] == 0.0)
        for values in (table.neg_score(z, shape, namespace), *table.shape_scores(z, shape, namespace)):
            assert np.all(np.isfinite(xp.to_numpy(values)))
    x = xp.asarray(np.array([[-1.0, 2.0], [1.0, 2.0]]))
    locs, scales, logits = xp.asarray(np.zeros((2, 2))), xp.asarray(np.ones((2, 2))), xp.asarray(np.zeros(2))
    shape = (xp.asarray(np.full((2, 2), 2.0)),)
    log_prob = xp.to_numpy(shared_math.log_prob(x, locs, scales, logits, family="gamma", shape_params=shape))
    assert log_prob[0] == -np.inf and np.isfinite(log_prob[1])


@pytest.mark.parametrize("xp", ["numpy", "torch", "jax"], indirect=True)
@pytest.mark.parametrize(
    "family, params", [("gamma", (0.4,)), ("gamma", (30.0,)), ("beta", (0.4, 6.0)), ("beta", (20.0, 2.5))]
)
def test_float32_tails(xp, family, params):
    """float32 tails within 1e-6 of SciPy's at the float32-rounded inputs (evaluated in float64
    and rounded once), wherever SciPy's tail exceeds 1e-30."""
    table = families.get_family(family)
    z32 = _grid(family).astype(np.float32)
    z32 = z32[(z32 > 0) & (z32 < 1 if family == "beta" else z32 > 0)]
    p32 = [np.float32(p) for p in params]
    shape = tuple(xp.asarray(np.full_like(z32, p), "float32") for p in p32)
    sign, tail = (
        xp.to_numpy(a).astype(np.float64) for a in table.smaller_tail(xp.asarray(z32, "float32"), shape, xp.xp)
    )
    dist = _scipy(family, [float(p) for p in p32])
    want = np.where(sign < 0, dist.cdf(z32.astype(np.float64)), dist.sf(z32.astype(np.float64)))
    kept = want > 1e-30
    ref.assert_close(tail[kept], want[kept], 1e-6, floor=0.0, what=f"{family} float32 tail")


def test_log_space_tails_match_mpmath():
    r"""The far lower tails where :math:`P` underflows float64: ``log_gammainc_series`` and
    ``log_betainc_lower`` against mpmath (50 digits), 1e-12 relative."""
    from shared_math._special import log_betainc_lower, log_gammainc_series

    mpmath.mp.dps = 50
    lgamma = special("lgamma", NUMPY)
    a = np.array([0.3, 2.0, 100.0, 1000.0, 3.0])
    x = np.array([1e-300, 1e-200, 10.0, 300.0, 1e-5])
    got = log_gammainc_series(a, x, xp=NUMPY, lgamma=lgamma)
    want = [
        float(mpmath.log(mpmath.gammainc(mpmath.mpf(ai), 0, mpmath.mpf(xi), regularized=True))) for ai, xi in zip(a, x)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    a, b = np.array([0.5, 3.0, 50.0, 80.0]), np.array([2.0, 100.0, 60.0, 5.0])
    x = np.array([1e-300, 1e-3, 0.3, 0.5])
    got = log_betainc_lower(a, b, x, xp=NUMPY, lgamma=lgamma)
    want = [
        float(mpmath.log(mpmath.betainc(mpmath.mpf(ai), mpmath.mpf(bi), 0, mpmath.mpf(xi), regularized=True)))
        for ai, bi, xi in zip(a, b, x)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_incomplete_gamma_dispatch_matches_scipy(xp):
    """``special("gammainc")``/``"gammaincc"`` on every backend against SciPy, a in [0.05, 1000],
    both tails: 1e-12 relative (torch's native: 5e-9 for a >= 10, 1e-13 below)."""
    rng = np.random.default_rng(3)
    a = np.exp(rng.uniform(math.log(0.05), math.log(1000.0), 3000))
    z = scipy.special.gammaincinv(a, rng.uniform(0, 1, a.size)) * np.exp(rng.uniform(-2, 2, a.size))
    for name in ("gammainc", "gammaincc"):
        got = xp.to_numpy(special(name, xp.xp)(xp.asarray(a), xp.asarray(z)))
        want = getattr(scipy.special, name)(a, z)
        kept = want > 1e-300
        small = kept & (a < 10)
        ref.assert_close(got[small], want[small], 1e-12 if xp.name != "torch" else 1e-13, floor=0.0, what=name)
        ref.assert_close(got[kept], want[kept], 5e-9 if xp.name == "torch" else 1e-11, floor=0.0, what=name)


# ------------------------------------------------------------------------------------------
# Velocities of the components' own samples.
# ------------------------------------------------------------------------------------------


def _exact_velocities(family, z, params):
    r"""Standardized velocities :math:`-\partial_\theta G/g` by central differences of SciPy."""
    density = _scipy(family, params).pdf(z)
    return [-d / density for d in fref.scipy_shape_cdf_derivatives(family, z, [np.full_like(z, p) for p in params])]


QUANTILES = np.array([1e-3, 0.03, 0.5, 0.97, 0.999])


@pytest.mark.parametrize("xp", ["jax"], indirect=True)
def test_exact_gamma_velocity_matches_finite_differences(xp):
    r"""JAX's exact :math:`v_a = -\partial_a P/g` (``igamma_grad_a``) against mpmath, both tails
    down to 1e-12: 1e-10."""
    for a in (0.3, 2.5, 60.0):
        z = scipy.stats.gamma(a).ppf(np.array([1e-12, 1e-3, 0.3, 0.5, 0.9, 0.999, 1 - 1e-12]))
        (got,) = families.GAMMA.exact_shape_velocities(xp.asarray(z), (xp.asarray(np.full_like(z, a)),), xp.xp)
        np.testing.assert_allclose(xp.to_numpy(got), _mpmath_gamma_velocities(a, z), rtol=1e-10)


def _mpmath_gamma_velocities(a, z):
    r""":math:`-\partial_a P(a, z)/g(z)` with mpmath (40 digits; the smaller tail differentiated)."""
    mpmath.mp.dps = 40
    values = []
    for point in z:
        point = mpmath.mpf(point)
        lower = mpmath.gammainc(mpmath.mpf(a), 0, point, regularized=True) < 0.5
        if lower:
            derivative = mpmath.diff(
                lambda s, point=point: mpmath.gammainc(s, 0, point, regularized=True), mpmath.mpf(a)
            )
        else:
            derivative = -mpmath.diff(
                lambda s, point=point: mpmath.gammainc(s, point, mpmath.inf, regularized=True), mpmath.mpf(a)
            )
        density = point ** (a - 1) * mpmath.exp(-point) / mpmath.gamma(a)
        values.append(float(-derivative / density))
    return np.array(values)


VELOCITY_CASES = [
    ("gamma", (0.3,)), ("gamma", (2.5,)), ("gamma", (60.0,)),
    ("beta", (0.4, 3.0)), ("beta", (30.0, 5.0)),
    ("student_t", (0.6,)), ("student_t", (3.0,)), ("student_t", (80.0,)),
]  # fmt: skip


@pytest.mark.parametrize("family, params", VELOCITY_CASES)
def test_sampled_velocities_are_unbiased(family, params):
    """Both estimators of Graves' Eq. 9 at CDF values 1e-3 .. 0.999: ours with M = 1 and M = 3
    (stratified), Eq. 10's with M = 1; N = 20000 replicates per point, |z| < 5 for every
    parameter (loc and scale too for the Student-t)."""
    rng = np.random.default_rng(11)
    count = 20000
    z_points = _scipy(family, params).ppf(QUANTILES)
    z = np.repeat(z_points[None, :], count, axis=0)
    shape = tuple(np.full_like(z, p) for p in params)
    location_scale = family == "student_t"
    exact = _exact_velocities(family, z_points, params)
    if location_scale:
        exact = [np.ones_like(z_points), z_points] + exact
    runs = {
        "sampled M=1": sampled.tail_velocities(
            family, z, shape, [rng.random(z.shape)], location_scale=location_scale, xp=NUMPY
        ),
        "sampled M=3": sampled.tail_velocities(
            family, z, shape, [rng.random(z.shape) for _ in range(3)], location_scale=location_scale, xp=NUMPY
        ),
        "rejection M=1": sampled.rejection_velocities(
            family,
            z,
            shape,
            [_scipy(family, params).rvs(size=z.shape, random_state=rng)],
            location_scale=location_scale,
            xp=NUMPY,
        ),
    }
    for name, estimates in runs.items():
        for index, (estimate, want) in enumerate(zip(estimates, exact)):
            spread = estimate.std(0, ddof=1) / math.sqrt(count)
            score = (estimate.mean(0) - want) / np.maximum(spread, 1e-300)
            tight = spread <= 1e-12 * np.abs(want)  # (near-)deterministic: compare directly
            assert np.all(np.abs(score[~tight]) < Z_LIMIT), (family, params, name, index, score)
            np.testing.assert_allclose(estimate.mean(0)[tight], want[tight], rtol=1e-8)


@pytest.mark.parametrize(
    "family, params",
    [("gamma", (0.5,)), ("gamma", (5.0,)), ("beta", (0.7, 4.0)), ("beta", (6.0, 2.0)), ("student_t", (4.0,))],
)
def test_tail_sampler_beats_rejection_where_the_cdf_is_small(family, params):
    """Where F(z) < 0.05 (F = 0.01 and 0.04) our estimator's variance is at least 5x smaller
    than Eq. 10's at the same number of inner draws (M = 4; equal cost in draws; the time per
    draw is measured in ``benchmarks/sampled_cdf_gradient.py``), for every shape parameter;
    N = 4000 replicates per point."""
    rng = np.random.default_rng(12)
    count, inner = 4000, 4
    z = np.repeat(_scipy(family, params).ppf(np.array([0.01, 0.04]))[None, :], count, axis=0)
    shape = tuple(np.full_like(z, p) for p in params)
    ours = sampled.tail_velocities(family, z, shape, [rng.random(z.shape) for _ in range(inner)], xp=NUMPY)
    draws = [_scipy(family, params).rvs(size=z.shape, random_state=rng) for _ in range(inner)]
    paper = sampled.rejection_velocities(family, z, shape, draws, xp=NUMPY)
    for mine, theirs in zip(ours, paper):
        ratio = theirs.var(0) / mine.var(0)
        assert np.all(ratio > 5.0), (family, params, ratio)


# ------------------------------------------------------------------------------------------
# Per-sample gradients against the reference.
# ------------------------------------------------------------------------------------------

SHAPE_FAMILIES = ("student_t", "gamma", "beta")


def _reference_velocities(family, data, noise, method):
    """Velocities the estimators use, in the public layout (``None`` for the exact path: the
    reference then differentiates SciPy's CDF by central differences)."""
    if method == "exact":
        return None
    z = (data["x"][..., None, :] - data["locs"]) / data["scales"]
    shape = tuple(np.broadcast_to(p, z.shape) for p in data["shape"])
    velocities = sampled.component_velocities(family, z, shape, method=method, noise=noise, xp=NUMPY)
    return velocities.shape


def _check_shape_gradients(xp, family, data, method_option="auto", rtol=1e-9):
    rng = np.random.default_rng(5)
    num_components, event_size = data["locs"].shape[-2:]
    noise = rng.random((2,) + data["x"].shape[:-1] + (num_components, event_size))
    point = tuple(xp.asarray(data[k]) for k in ("x", "locs", "scales", "logits"))
    shape_x = tuple(xp.asarray(p) for p in data["shape"])
    method = sampled.resolve_cdf_gradient(method_option, family, xp.xp)
    options = {"family": family, "shape_params": shape_x, "cdf_gradient": method_option, "cdf_noise": xp.asarray(noise)}
    velocities = _reference_velocities(family, data, noise, method)
    shape_rtol = rtol if velocities is not None else 1e-7  # central differences of SciPy
    args = (data["x"], data["locs"], data["scales"], data["logits"])
    want = fref.implicit_vjp(
        family, *args, data["cotangent"], shape=data["shape"], shape_gradients=True, velocities=velocities
    )
    got = shared_math.implicit_vjp(*point, xp.asarray(data["cotangent"]), **options)
    assert len(got) == 4 and len(got[3]) == len(data["shape"])
    for name, g, w in zip(("locs", "scales", "logits"), got[:3], want[:3]):
        ref.assert_close(xp.to_numpy(g), w, rtol, floor=1e-3, what=f"{family} implicit {name}")
    for index, (g, w) in enumerate(zip(got[3], want[3])):
        ref.assert_close(xp.to_numpy(g), w, shape_rtol, floor=1e-3, what=f"{family} implicit shape {index}")
    # rao_blackwell and hybrid: r_k(x) g sigma v and [k chosen] g sigma v
    if velocities is None:
        z = (data["x"][..., None, :] - data["locs"]) / data["scales"]
        velocities = _exact_velocities_array(family, z, data["shape"])
    r, _ = fref.responsibilities(family, *args, shape=data["shape"])
    shapes = [np.shape(p) for p in data["shape"]]
    one_hot = ref.one_hot(data["component"], num_components)
    for estimator, weights in (("rao_blackwell", r.numpy()), ("hybrid", one_hot)):
        extra = (xp.asarray(one_hot), xp.asarray(data["noise"])) if estimator == "hybrid" else ()
        bars = shared_math.ESTIMATORS[estimator].vjp(*point, *extra, xp.asarray(data["cotangent"]), **options)
        want_shape = fref.velocity_gradients(weights, data["cotangent"], data["scales"], velocities, shapes)
        for index, (g, w) in enumerate(zip(bars[3], want_shape)):
            ref.assert_close(xp.to_numpy(g), w, shape_rtol, floor=1e-3, what=f"{family} {estimator} shape {index}")
    # forward mode: implicit against the reference, every estimator adjoint to its reverse mode
    dots = [rng.standard_normal(np.shape(data[k])) for k in ("locs", "scales", "logits")]
    shape_dots = [rng.standard_normal(np.shape(p)) for p in data["shape"]]
    x_dot = shared_math.implicit_jvp(
        *point, *(xp.asarray(d) for d in dots), shape_dots=tuple(xp.asarray(d) for d in shape_dots), **options
    )
    want_dot = fref.implicit_jvp(
        family,
        *args,
        *dots,
        shape=data["shape"],
        shape_dots=shape_dots,
        velocities=_reference_velocities(family, data, noise, method),
    )
    ref.assert_close(xp.to_numpy(x_dot), want_dot, shape_rtol, floor=1e-3, what=f"{family} implicit jvp")
    for estimator in shared_math.ESTIMATORS:
        common = (xp.asarray(one_hot), xp.asarray(data["noise"]))
        tangent = shared_math.sample_jvp(
            estimator,
            *point,
            *common,
            *(xp.asarray(d) for d in dots),
            shape_dots=tuple(xp.asarray(d) for d in shape_dots),
            **options,
        )
        bars = shared_math.sample_vjp(estimator, *point, *common, xp.asarray(data["cotangent"]), **options)
        lhs = float(np.sum(xp.to_numpy(tangent) * data["cotangent"]))
        rhs = sum(float(np.sum(xp.to_numpy(b) * d)) for b, d in zip(bars[:3], dots))
        rhs += sum(float(np.sum(xp.to_numpy(b) * d)) for b, d in zip(bars[3], shape_dots))
        assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10), (family, estimator)


def _exact_velocities_array(family, z, params):
    full = [np.broadcast_to(p, z.shape) for p in params]
    density = np.exp(fref.log_g(family, ref._t(z), *(ref._t(p) for p in full)).numpy())
    return [-d / density for d in fref.scipy_shape_cdf_derivatives(family, z, full)]


@pytest.mark.parametrize("family", SHAPE_FAMILIES)
@pytest.mark.parametrize("xp", ["numpy", "torch", pytest.param("jax", marks=pytest.mark.slow)], indirect=True)
def test_shape_gradients_match_the_reference(xp, family):
    """K = 3, D = 3, batched parameters and samples (the "broadcast" case): every estimator's
    shape-parameter gradient (and the others) against the full-Jacobian reference with the
    same sampled velocities (1e-9), or, for the Gamma in JAX (exact), against central
    differences of SciPy's CDF (1e-7).  (Eager JAX compiles every primitive: slow.)"""
    data = fref.family_case(family, "broadcast", 3, 3, seed=17)
    _check_shape_gradients(xp, family, data)


def test_jax_exact_gamma_gradients_match_the_reference():
    """JAX (jitted), Gamma components, ``cdf_gradient="auto"`` = exact (``igamma_grad_a``): the
    implicit and Rao-Blackwell gradients of every parameter against the reference with the
    CDF's shape derivative from central differences of SciPy (1e-7; the rest 1e-9)."""
    import jax

    data = fref.family_case("gamma", "broadcast", 3, 3, seed=18)
    arrays = tuple(data[k] for k in ("x", "locs", "scales", "logits", "cotangent")) + data["shape"]

    @jax.jit
    def gradients(x, locs, scales, logits, cotangent, concentration):
        options = {"family": "gamma", "shape_params": (concentration,), "cdf_gradient": "auto"}
        return (
            shared_math.implicit_vjp(x, locs, scales, logits, cotangent, **options),
            shared_math.rao_blackwell_vjp(x, locs, scales, logits, cotangent, **options),
        )

    implicit, rao_blackwell = gradients(*arrays)
    args = (data["x"], data["locs"], data["scales"], data["logits"])
    want = fref.implicit_vjp("gamma", *args, data["cotangent"], shape=data["shape"], shape_gradients=True)
    for name, got, expected in zip(("locs", "scales", "logits"), implicit[:3], want[:3]):
        ref.assert_close(np.asarray(got), expected, 1e-9, floor=1e-3, what=f"jax gamma implicit {name}")
    ref.assert_close(np.asarray(implicit[3][0]), want[3][0], 1e-7, floor=1e-3, what="jax gamma implicit concentration")
    z = (data["x"][..., None, :] - data["locs"]) / data["scales"]
    velocities = _exact_velocities_array("gamma", z, data["shape"])
    r, _ = fref.responsibilities("gamma", *args, shape=data["shape"])
    (want_rb,) = fref.velocity_gradients(
        r.numpy(), data["cotangent"], data["scales"], velocities, [np.shape(data["shape"][0])]
    )
    ref.assert_close(
        np.asarray(rao_blackwell[3][0]), want_rb, 1e-7, floor=1e-3, what="jax gamma rao_blackwell concentration"
    )


@pytest.mark.parametrize("family", SHAPE_FAMILIES)
@pytest.mark.parametrize("event_size", [1, 5])
def test_shape_gradients_match_the_reference_d_1_and_5(family, event_size):
    data = fref.family_case(family, "unbatched", 2, event_size, seed=event_size)
    _check_shape_gradients(_numpy_backend(), family, data)


def _numpy_backend():
    from conftest import BACKENDS

    return BACKENDS["numpy"]


def test_without_cdf_gradient_the_shape_parameters_are_held_fixed():
    """No ``cdf_gradient``: the 3-tuple of before, and the same ``locs``/``scales``/``logits``
    gradients as with it (the shape part is additive)."""
    data = fref.family_case("gamma", "broadcast", 3, 2, seed=4)
    point = tuple(data[k] for k in ("x", "locs", "scales", "logits"))
    noise = np.random.default_rng(0).random((1,) + data["x"].shape[:-1] + (3, 2))
    plain = shared_math.implicit_vjp(*point, data["cotangent"], family="gamma", shape_params=data["shape"])
    full = shared_math.implicit_vjp(
        *point, data["cotangent"], family="gamma", shape_params=data["shape"], cdf_gradient="auto", cdf_noise=noise
    )
    assert len(plain) == 3 and len(full) == 4
    for a, b in zip(plain, full[:3]):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------
# cdf_gradient="sampled" on Normal components.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sampled", "rejection"])
def test_sampled_normal_agrees_in_mean_with_the_exact_path(method):
    """Normal mixture (K = 3, D = 2), 3 fixed samples, R = 4000 replicates of the inner noise
    (M = 2): the mean of every estimator's sampled ``locs``/``scales`` gradient equals the exact
    one (|z| < 5 per entry); ``logits`` unchanged exactly."""
    rng = np.random.default_rng(8)
    replicates, num_components, event_size = 4000, 3, 2
    locs, scales, logits = ref.random_parameters(
        rng, (num_components, event_size), (num_components, event_size), (num_components,)
    )
    x, component, noise = ref.sample_mixture(rng, locs, scales, logits, (3,))
    cotangent = rng.standard_normal(x.shape)
    one_hot = ref.one_hot(component, num_components)

    def batch(a):
        return np.broadcast_to(a, (replicates,) + np.shape(a)).copy()

    # parameters with a replicate dimension (R, 1, ...) so that gradients stay per replicate
    params = [batch(a)[:, None] for a in (locs, scales, logits)]
    if method == "sampled":
        inner = rng.random((2, replicates, 3, num_components, event_size))
    else:
        inner = rng.standard_normal((2, replicates, 3, num_components, event_size))
    for estimator in shared_math.ESTIMATORS:
        exact = shared_math.sample_vjp(estimator, x, locs, scales, logits, one_hot, noise, cotangent)
        got = shared_math.sample_vjp(
            estimator, x, *params, one_hot, noise, cotangent, cdf_gradient=method, cdf_noise=inner
        )
        assert got[3] == ()
        for name, g, w in zip(("locs", "scales"), got[:2], exact[:2]):
            g, w = g.reshape(replicates, -1), w.reshape(-1)
            spread = g.std(0, ddof=1) / math.sqrt(replicates)
            unused = spread == 0  # "hybrid": components no sample came from get exactly 0
            np.testing.assert_array_equal(g[:, unused], 0.0)
            np.testing.assert_array_equal(w[unused], 0.0)
            score = (g.mean(0)[~unused] - w[~unused]) / spread[~unused]
            assert np.all(np.abs(score) < Z_LIMIT), (estimator, name, score)
        np.testing.assert_allclose(got[2].sum(0)[0] / replicates, exact[2], rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------
# Options.
# ------------------------------------------------------------------------------------------


def test_cdf_gradient_resolution_and_errors():
    torch = pytest.importorskip("torch")
    import jax.numpy as jnp

    torch_namespace = get_namespace(torch.zeros(1))
    jax_namespace = get_namespace(jnp.zeros(1))
    assert shared_math.resolve_cdf_gradient("auto", "normal", NUMPY) == "exact"
    assert shared_math.resolve_cdf_gradient("auto", "gamma", jax_namespace) == "exact"
    assert shared_math.resolve_cdf_gradient("auto", "gamma", torch_namespace) == "sampled"
    assert shared_math.resolve_cdf_gradient("auto", "beta", jax_namespace) == "sampled"
    assert shared_math.resolve_cdf_gradient("rejection", "student_t", NUMPY) == "rejection"
    for family in ("beta", "student_t"):
        with pytest.raises(ValueError, match="cdf_gradient='exact'"):
            shared_math.resolve_cdf_gradient("exact", family, jax_namespace)
    with pytest.raises(ValueError, match="cdf_gradient='exact'"):
        shared_math.resolve_cdf_gradient("exact", "gamma", torch_namespace)
    with pytest.raises(ValueError, match="cdf_gradient must be one of"):
        shared_math.resolve_cdf_gradient("finite_differences", "gamma", NUMPY)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="cdf_gradient_samples"):
            shared_math.cdf_gradient_settings("auto", bad)
    assert shared_math.cdf_gradient_settings("sampled", np.int64(3)) == 3
    data = fref.family_case("beta", "unbatched", 2, 2, seed=1)
    with pytest.raises(ValueError, match="cdf_noise"):
        shared_math.implicit_vjp(
            data["x"],
            data["locs"],
            data["scales"],
            data["logits"],
            data["cotangent"],
            family="beta",
            shape_params=data["shape"],
            cdf_gradient="sampled",
        )
    with pytest.raises(ValueError, match="must be positive"):
        families.BETA.check_shape_values((np.array([1.0, 0.0]), np.ones(2)), NUMPY)
    with pytest.raises(ValueError, match="concentration must be positive"):
        families.GAMMA.check_shape_values((np.array([np.nan]),), NUMPY)


@pytest.mark.parametrize("family", SHAPE_FAMILIES)
@pytest.mark.parametrize("xp", ["numpy", "torch"], indirect=True)
def test_float32_shape_gradients_are_finite_and_close_to_float64(xp, family):
    """Rates/scales 1e-2..1e2, concentrations 0.2..50, df 0.8..50, 64 samples: every
    estimator's float32 gradients (shape parameters included, same inner uniforms) finite and
    within 1e-3 of float64 (relative per entry, down to 1e-3 of the largest entry)."""
    rng = np.random.default_rng(21)
    num_components, event_size = 3, 3
    scales = 10.0 ** rng.uniform(-2, 2, (num_components, event_size))
    locs = rng.standard_normal((num_components, event_size)) * 10 if family == "student_t" else np.zeros_like(scales)
    if family == "beta":
        scales = np.ones_like(scales)
    low, high = (0.8, 50.0) if family == "student_t" else (0.2, 50.0)
    count = 2 if family == "beta" else 1
    shape = tuple(np.exp(rng.uniform(math.log(low), math.log(high), scales.shape)) for _ in range(count))
    logits = rng.uniform(-3, 3, num_components)
    x, component, noise = fref.sample(rng, family, locs, scales, logits, sample_shape=(64,), shape=shape)
    cotangent = rng.standard_normal(x.shape)
    inner = rng.random((2, 64, num_components, event_size))
    one_hot = ref.one_hot(component, num_components)
    rounded = [
        np.asarray(a, np.float32).astype(np.float64) for a in (x, locs, scales, logits, noise, cotangent, inner, *shape)
    ]
    results = {}
    for dtype in ("float32", "float64"):
        arrays = [xp.asarray(a, dtype) for a in rounded]
        x_a, locs_a, scales_a, logits_a, noise_a, cotangent_a, inner_a, *shape_a = arrays
        results[dtype] = {
            estimator: shared_math.sample_vjp(
                estimator,
                x_a,
                locs_a,
                scales_a,
                logits_a,
                xp.asarray(one_hot, dtype),
                noise_a,
                cotangent_a,
                family=family,
                shape_params=tuple(shape_a),
                cdf_gradient="sampled",
                cdf_noise=inner_a,
            )
            for estimator in shared_math.ESTIMATORS
        }
    for estimator, single in results["float32"].items():
        double = results["float64"][estimator]
        pairs = list(zip(("locs", "scales", "logits"), single[:3], double[:3]))
        pairs += [(f"shape {i}", a, b) for i, (a, b) in enumerate(zip(single[3], double[3]))]
        for name, got, want in pairs:
            got, want = xp.to_numpy(got).astype(np.float64), xp.to_numpy(want)
            assert np.all(np.isfinite(got)), (family, estimator, name)
            ref.assert_close(got, want, 1e-3, floor=1e-3, what=f"{family} {estimator} {name} float32")


@pytest.mark.parametrize("estimator", [sampled.tail_velocities, sampled.rejection_velocities])
def test_sampled_velocities_need_at_least_one_inner_draw(estimator):
    """An empty sequence of inner draws is a ``ValueError`` naming the argument, not a crash."""
    z = np.array([0.5, 2.0])
    with pytest.raises(ValueError, match="at least one inner draw"):
        estimator("gamma", z, (np.full_like(z, 2.0),), [], xp=NUMPY)
