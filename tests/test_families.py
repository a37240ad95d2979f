r"""Component families in ``shared_math``: their standardized functions against SciPy, and every
estimator's per-sample gradients against the brute-force float64 reference of
``_family_reference`` (full Jacobian of the distributional transform + triangular solve).

Tolerances: gradients 1e-9 relative per entry (down to 1e-3 of the largest entry);
standardized functions 1e-12 (float64) against SciPy; float32 on hard parameters finite and
within 1e-3 of float64.
"""

from __future__ import annotations

import math

import _family_reference as fref
import _reference as ref
import numpy as np
import pytest
import scipy.special
import scipy.stats

import shared_math
import shared_math.estimators
from shared_math import families

FAMILIES = fref.FAMILY_NAMES


def _shape_params(data, xp, dtype=None):
    return () if data["df"] is None else (xp.asarray(data["df"], dtype),)


# ------------------------------------------------------------------------------------------
# Standardized functions against SciPy.
# ------------------------------------------------------------------------------------------

Z_GRID = np.concatenate([-np.logspace(-3, 2.5, 120)[::-1], [0.0], np.logspace(-3, 2.5, 120)])


FAMILY_AND_DF = [(name, None) for name in FAMILIES if name != "student_t"] + [
    ("student_t", df) for df in (0.7, 1.0, 3.5, 30.0)
]


@pytest.mark.parametrize("family, df", FAMILY_AND_DF)
def test_standardized_functions_match_scipy(xp, family, df):
    """log g, the smaller tail, log G and the score against ``scipy.stats`` (1e-12; the tails
    relative, wherever SciPy's value is a normal number; log G 1e-10, the accuracy of JAX's
    own ``log_ndtr``), on every backend."""
    table = families.get_family(family)
    dist = fref.scipy_distribution(family, df)
    shape = (xp.asarray(np.full_like(Z_GRID, df)),) if family == "student_t" else ()
    z = xp.asarray(Z_GRID)
    namespace = xp.xp
    log_density = xp.to_numpy(table.log_density(z, shape, namespace))
    np.testing.assert_allclose(log_density, dist.logpdf(Z_GRID), rtol=1e-12, atol=1e-12)
    sign, tail = (xp.to_numpy(a) for a in table.smaller_tail(z, shape, namespace))
    lower = sign < 0
    want_tail = np.where(lower, dist.cdf(Z_GRID), dist.sf(Z_GRID))
    assert np.all(want_tail <= 0.5 + 1e-15), "the tail taken must be the smaller one"
    normal = want_tail > np.finfo(np.float64).tiny * 10
    np.testing.assert_allclose(tail[normal], want_tail[normal], rtol=1e-12)
    log_cdf = xp.to_numpy(table.log_cdf(z, shape, namespace))
    np.testing.assert_allclose(log_cdf, dist.logcdf(Z_GRID), rtol=1e-10, atol=1e-14)
    # -psi(z) against a central difference of log g (h = 1e-6; away from Laplace's kink)
    h = 1e-6
    smooth = np.abs(Z_GRID) > 1e-4
    score = -(dist.logpdf(Z_GRID + h) - dist.logpdf(Z_GRID - h)) / (2 * h)
    neg_score = xp.to_numpy(table.neg_score(z, shape, namespace))
    np.testing.assert_allclose(neg_score[smooth], score[smooth], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("family", FAMILIES)
def test_standard_moments_match_scipy(family):
    namespace = shared_math._backend.get_namespace(np.zeros(1))
    table = families.get_family(family)
    for df in (0.8, 1.5, 2.0, 2.5, 30.0) if family == "student_t" else (None,):
        dist = fref.scipy_distribution(family, df)
        shape = () if df is None else (np.asarray(df),)
        mean, variance = dist.stats(moments="mv")
        got_mean = np.asarray(table.standard_mean(shape, namespace), dtype=float)
        got_variance = np.asarray(table.standard_variance(shape, namespace), dtype=float)
        if family == "cauchy" or (df is not None and df <= 1):
            assert np.isnan(got_mean)
        else:
            np.testing.assert_allclose(got_mean, mean, atol=1e-15)
        if family == "cauchy":
            assert np.isinf(got_variance)  # as torch and NumPyro: mixture moments come out NaN
        elif df is not None and df <= 2:
            assert np.isinf(got_variance) if df > 1 else np.isnan(got_variance)
        else:
            np.testing.assert_allclose(got_variance, variance, rtol=1e-14)


def test_get_family_names_and_errors():
    assert sorted(shared_math.FAMILIES) == sorted(FAMILIES + fref.SHAPE_FAMILY_NAMES)
    assert shared_math.get_family("gumbel") is families.GUMBEL
    assert shared_math.get_family(families.StudentT()) == families.STUDENT_T
    with pytest.raises(ValueError, match="family must be one of"):
        shared_math.get_family("weibull")
    with pytest.raises(ValueError, match="shape parameters"):
        shared_math.log_prob(np.zeros(2), np.zeros((1, 2)), np.ones((1, 2)), np.zeros(1), family="student_t")


@pytest.mark.parametrize("df", [0.3, 1.0, 4.0, 30.0])
def test_polar_student_t_draws_follow_the_t_distribution(df):
    """Bailey's polar method (``student_t_from_disk``), points inside the unit disk kept:
    Kolmogorov-Smirnov against SciPy's t (p > 1e-4; 200,000 draws detect a CDF error of
    about 0.005), and draws 10% too wide are detected."""
    rng = np.random.default_rng(int(df * 10))
    u, v = rng.uniform(-1.0, 1.0, (2, 260_000))
    keep = families.inside_unit_disk(u, v, np)
    assert abs(keep.mean() - math.pi / 4) < 0.005
    draws = families.student_t_from_disk(u[keep], v[keep], np.full(int(keep.sum()), df), np)[:200_000]
    assert np.all(np.isfinite(draws))
    assert scipy.stats.kstest(draws, scipy.stats.t(df).cdf).pvalue > 1e-4
    assert scipy.stats.kstest(1.1 * draws, scipy.stats.t(df).cdf).pvalue < 1e-6


def test_polar_student_t_extreme_points_stay_finite():
    """Points next to the centre of the disk (|t| beyond every float for small ``df``) and next
    to its edge (t near 0) give finite draws of the right sign, float32 and float64."""
    for dtype in (np.float32, np.float64):
        small = np.sqrt(np.finfo(dtype).smallest_normal)  # w = 2 small^2: the smallest normal w
        u = np.array([small, -small, 0.6, -0.6, 1e-3], dtype)
        v = np.array([small, small, 0.8 - 1e-7, 0.8 - 1e-7, 0.0], dtype)
        assert np.all(families.inside_unit_disk(u, v, np))
        for df in (0.05, 1.0, 1e6):
            draws = families.student_t_from_disk(u, v, np.asarray(df, dtype), np)
            assert draws.dtype == dtype
            assert np.all(np.isfinite(draws)) and np.all(np.sign(draws) == np.sign(u)), (dtype, df, draws)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-15), ("float32", 4e-7)])
def test_arctan_of_reciprocal_matches_numpy(xp, dtype, rtol):
    """The arithmetic arctan(1/a) behind the Cauchy tail under JAX, on every backend, against
    NumPy's arctan2 in float64: relative error within a few ulp from a = 0 (pi/2) to the
    largest floats (about 1/a), including the reduction points tan(pi/12) and 1."""
    from shared_math._special import arctan_of_reciprocal

    finfo = np.finfo(dtype)
    grid = np.concatenate(
        [
            [0.0, 1.0, 2.0 - math.sqrt(3.0), 1.0 / (2.0 - math.sqrt(3.0)), float(finfo.max), np.inf],
            np.logspace(math.log10(finfo.tiny), math.log10(finfo.max) - 1, 20001),
        ]
    ).astype(dtype)
    got = xp.to_numpy(arctan_of_reciprocal(xp.asarray(grid, dtype), xp.xp)).astype(np.float64)
    want = np.arctan2(1.0, grid.astype(np.float64))
    normal = want > finfo.tiny
    np.testing.assert_allclose(got[normal], want[normal], rtol=rtol, atol=0)
    assert got[5] == 0.0 and got[0] == np.float64(np.asarray(math.pi / 2, dtype))  # a = inf, a = 0


# ------------------------------------------------------------------------------------------
# The incomplete beta function (torch has none): array-API fallback against SciPy.
# ------------------------------------------------------------------------------------------


def _betainc_grid():
    rng = np.random.default_rng(0)
    a = np.exp(rng.uniform(math.log(0.05), math.log(100.0), 4000))
    b = np.exp(rng.uniform(math.log(0.05), math.log(100.0), 4000))
    x = np.concatenate(
        [rng.uniform(0, 1, 3000), 10.0 ** rng.uniform(-30, -1, 500), 1 - 10.0 ** rng.uniform(-15, -1, 500)]
    )
    return a, b, x


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-6)])
def test_array_api_betainc_matches_scipy(xp, dtype, rtol):
    """The fallback of ``_backend.special("betainc")`` on every backend (torch's only one),
    a, b in [0.05, 100], x uniform and in both tails: relative error below ``rtol`` wherever
    SciPy's value is a normal number of ``dtype``."""
    a, b, x = (v.astype(dtype) for v in _betainc_grid())
    betainc = shared_math._backend.special("betainc", xp.xp, native=False)
    got = xp.to_numpy(betainc(xp.asarray(a, dtype), xp.asarray(b, dtype), xp.asarray(x, dtype))).astype(np.float64)
    want = scipy.special.betainc(a.astype(np.float64), b.astype(np.float64), x.astype(np.float64))
    kept = want > 10 * np.finfo(dtype).tiny
    ref.assert_close(got[kept], want[kept], rtol, floor=0.0, what=f"betainc {dtype}")
    assert np.all(got[x == 0] == 0.0) if np.any(x == 0) else True


def test_special_dispatch_native_first():
    torch = pytest.importorskip("torch")
    namespace = shared_math._backend.get_namespace(torch.zeros(1))
    assert shared_math._backend.special("erfc", namespace) is torch.special.erfc
    assert shared_math._backend.special("lgamma", namespace) is torch.lgamma
    numpy_namespace = shared_math._backend.get_namespace(np.zeros(1))
    assert shared_math._backend.special("betainc", numpy_namespace) is scipy.special.betainc


# ------------------------------------------------------------------------------------------
# Per-sample gradients against the full-Jacobian reference.
# ------------------------------------------------------------------------------------------


def _point(xp, data, dtype=None):
    return tuple(xp.asarray(data[k], dtype) for k in ("x", "locs", "scales", "logits"))


def _check_all_estimators(xp, family, data, rtol=1e-9):
    point = _point(xp, data)
    options = {"family": family, "shape_params": _shape_params(data, xp)}
    args = (data["x"], data["locs"], data["scales"], data["logits"])
    want = fref.implicit_vjp(family, *args, data["cotangent"], df=data["df"])
    got = shared_math.implicit_vjp(*point, xp.asarray(data["cotangent"]), **options)
    for name, g, w in zip(("locs", "scales", "logits"), got, want):
        assert xp.owns(g)
        ref.assert_close(xp.to_numpy(g), w, rtol, floor=1e-3, what=f"{family} implicit {name}")
    # rao_blackwell: r_k g and r_k z g for locs/scales, the implicit logits gradient
    rb = shared_math.rao_blackwell_vjp(*point, xp.asarray(data["cotangent"]), **options)
    want_locs, want_scales = fref.rao_blackwell_locs_scales(family, *args, data["cotangent"], df=data["df"])
    for name, g, w in zip(("locs", "scales", "logits"), rb, (want_locs, want_scales, want[2])):
        ref.assert_close(xp.to_numpy(g), w, rtol, floor=1e-3, what=f"{family} rao_blackwell {name}")
    # hybrid: through the chosen component, implicit logits
    one_hot = xp.asarray(ref.one_hot(data["component"], data["locs"].shape[-2]))
    hybrid = shared_math.hybrid_vjp(
        *point, one_hot, xp.asarray(data["noise"]), xp.asarray(data["cotangent"]), **options
    )
    chosen = ref.chosen_component_vjp(
        data["component"], data["noise"], data["cotangent"], data["locs"].shape, data["scales"].shape
    )
    for name, g, w in zip(("locs", "scales", "logits"), hybrid, (*chosen, want[2])):
        ref.assert_close(xp.to_numpy(g), w, rtol, floor=1e-3, what=f"{family} hybrid {name}")
    # forward mode of every estimator: <jvp(theta_dot), g> = <theta_dot, vjp(g)> and implicit against the reference
    rng = np.random.default_rng(1)
    dots = [rng.standard_normal(np.shape(data[k])) for k in ("locs", "scales", "logits")]
    x_dot = shared_math.implicit_jvp(*point, *(xp.asarray(d) for d in dots), **options)
    want_dot = fref.implicit_jvp(family, *args, *dots, df=data["df"])
    ref.assert_close(xp.to_numpy(x_dot), want_dot, rtol, floor=1e-3, what=f"{family} implicit jvp")
    for estimator in shared_math.ESTIMATORS:
        tangent = shared_math.sample_jvp(
            estimator, *point, one_hot, xp.asarray(data["noise"]), *(xp.asarray(d) for d in dots), **options
        )
        bars = shared_math.sample_vjp(
            estimator, *point, one_hot, xp.asarray(data["noise"]), xp.asarray(data["cotangent"]), **options
        )
        lhs = float(np.sum(xp.to_numpy(tangent) * data["cotangent"]))
        rhs = sum(float(np.sum(xp.to_numpy(b) * d)) for b, d in zip(bars, dots))
        assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10), (family, estimator)


BACKEND_CASES = [
    (backend, case) for backend in ("numpy", "torch") for case in ("unbatched", "broadcast", "shared_scales")
]
BACKEND_CASES += [("jax", "broadcast"), ("strict", "broadcast")]  # eager JAX compiles every primitive: one case


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("xp, case", BACKEND_CASES, indirect=["xp"])
def test_every_estimator_matches_the_reference_on_every_backend(xp, family, case):
    """K = 3, D = 3, the three shape cases (sample, batch and broadcast dimensions, scales
    shared by the components) on NumPy and torch, the broadcast case on JAX and
    array-api-strict."""
    data = fref.family_case(family, case, 3, 3, seed=7)
    _check_all_estimators(xp, family, data)


@pytest.mark.parametrize("xp", ["numpy"], indirect=True)
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("event_size", [1, 2, 16])
def test_every_estimator_matches_the_reference_for_d_1_to_16(xp, family, event_size):
    data = fref.family_case(family, "broadcast", 4, event_size, seed=event_size)
    _check_all_estimators(xp, family, data)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("xp", ["numpy", "torch"], indirect=True)
def test_single_component_is_the_reparameterization_trick(xp, family):
    r"""K = 1: every estimator gives :math:`\bar\mu = g`, :math:`\bar\sigma = g\,\varepsilon` exactly
    (the family's own reparameterized sample :math:`x = \mu + \sigma\varepsilon`), logits 0."""
    data = fref.family_case(family, "unbatched", 1, 4, seed=3)
    point = _point(xp, data)
    one_hot = xp.asarray(np.ones(data["x"].shape[:-1] + (1,)))
    for estimator in shared_math.ESTIMATORS:
        locs_bar, scales_bar, logits_bar = shared_math.sample_vjp(
            estimator,
            *point,
            one_hot,
            xp.asarray(data["noise"]),
            xp.asarray(data["cotangent"]),
            family=family,
            shape_params=_shape_params(data, xp),
        )
        g = data["cotangent"]
        np.testing.assert_allclose(xp.to_numpy(locs_bar), g.sum(0)[None], rtol=1e-12)
        np.testing.assert_allclose(xp.to_numpy(scales_bar), (g * data["noise"]).sum(0)[None], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(xp.to_numpy(logits_bar), 0.0, atol=1e-12)


# ------------------------------------------------------------------------------------------
# Values: log_prob, distributional transform, 1-D cdf, moments.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_values_match_the_reference(xp, family):
    data = fref.family_case(family, "broadcast", 3, 4, seed=5)
    point = _point(xp, data)
    options = {"family": family, "shape_params": _shape_params(data, xp)}
    args = (data["x"], data["locs"], data["scales"], data["logits"])
    np.testing.assert_allclose(
        xp.to_numpy(shared_math.log_prob(*point, **options)), fref.log_prob(family, *args, df=data["df"]), rtol=1e-12
    )
    transform = xp.to_numpy(shared_math.distributional_transform(*point, **options))
    np.testing.assert_allclose(transform, fref.distributional_transform(family, *args, df=data["df"]), rtol=1e-11)
    # 1-D cdf: a mixture of the first coordinate's components against SciPy
    locs1, scales1 = data["locs"][..., 0], np.broadcast_to(data["scales"], data["locs"].shape)[..., 0]
    df1 = None if data["df"] is None else np.broadcast_to(data["df"], data["locs"].shape)[..., 0]
    grid = np.linspace(-30, 30, 61)[:, None]
    probs = scipy.special.softmax(data["logits"], -1)
    dist = fref.scipy_distribution(family, df1) if family == "student_t" else fref.scipy_distribution(family)
    want = np.sum(probs * dist.cdf((grid[..., None] - locs1) / scales1), -1)
    shape1 = () if df1 is None else (xp.asarray(df1),)
    got = shared_math.cdf(
        xp.asarray(grid),
        xp.asarray(locs1),
        xp.asarray(scales1),
        xp.asarray(data["logits"]),
        family=family,
        shape_params=shape1,
    )
    # 1e-8: values down to 1e-159 come from exp(log G); JAX's log_ndtr is good to 1e-12 absolute there.
    np.testing.assert_allclose(xp.to_numpy(got), want, rtol=1e-8, atol=1e-300)


@pytest.mark.parametrize("family", FAMILIES)
def test_moments_match_component_moments(family):
    """Mixture mean and variance from each component's SciPy moments (NaN for Cauchy)."""
    data = fref.family_case(family, "broadcast", 3, 4, seed=9)
    locs, scales, logits = data["locs"], np.broadcast_to(data["scales"], data["locs"].shape), data["logits"]
    if family == "student_t":
        data["df"] = np.broadcast_to(data["df"], scales.shape) + 2.5  # variance defined
    df = data["df"]
    dist = fref.scipy_distribution(family, df) if family == "student_t" else fref.scipy_distribution(family)
    component_mean, component_variance = dist.stats(moments="mv")
    pi = scipy.special.softmax(logits, -1)[..., None]
    means = locs + scales * component_mean
    want_mean = np.sum(pi * means, -2)
    want_variance = np.sum(pi * (scales**2 * component_variance + means**2), -2) - want_mean**2
    options = {"family": family, "shape_params": () if df is None else (df,)}
    got_mean = shared_math.mean(locs, scales, logits, **options)
    got_variance = shared_math.variance(locs, scales, logits, **options)
    if family == "cauchy":
        assert np.all(np.isnan(got_mean)) and np.all(np.isnan(got_variance))
        return
    np.testing.assert_allclose(got_mean, want_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_variance, want_variance, rtol=1e-10)


# ------------------------------------------------------------------------------------------
# float32 on hard parameters.
# ------------------------------------------------------------------------------------------


def hard_case(family, seed):
    """Scales 1e-3..1e3, locations up to 1e3 apart, logits in [-30, 30], Student-t df in [1, 30]."""
    rng = np.random.default_rng(seed)
    num_components, event_size = 4, 5
    locs = rng.choice([-1e3, -30.0, 0.0, 2.0, 1e3], size=(num_components, event_size)) + rng.standard_normal(
        (num_components, event_size)
    )
    scales = 10.0 ** rng.uniform(-3, 3, (num_components, event_size))
    logits = rng.uniform(-30, 30, num_components)
    df = np.exp(rng.uniform(0, math.log(30.0), (num_components, event_size))) if family == "student_t" else None
    x, component, noise = fref.sample(rng, family, locs, scales, logits, df, (64,))
    return dict(
        locs=locs,
        scales=scales,
        logits=logits,
        df=df,
        x=x,
        component=component,
        noise=noise,
        cotangent=rng.standard_normal(x.shape),
    )


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "xp, seed", [("numpy", 0), ("numpy", 1), ("torch", 2), ("torch", 3), ("jax", 4)], indirect=["xp"]
)
def test_float32_hard_parameters_finite_and_close_to_float64(xp, family, seed):
    """Every estimator's float32 vjp is finite and within 1e-3 of float64 (relative per entry,
    down to 1e-3 of the largest entry of each gradient), from the same float32-rounded inputs."""
    data = hard_case(family, seed)
    for key in ("x", "locs", "scales", "logits", "noise", "cotangent", "df"):
        if data[key] is not None:
            data[key] = data[key].astype(np.float32).astype(np.float64)
    one_hot = ref.one_hot(data["component"], 4)
    results = {}
    for dtype in ("float32", "float64"):
        options = {"family": family, "shape_params": _shape_params(data, xp, dtype)}
        point = _point(xp, data, dtype)
        extra = (xp.asarray(one_hot, dtype), xp.asarray(data["noise"], dtype), xp.asarray(data["cotangent"], dtype))
        results[dtype] = {
            estimator: [
                xp.to_numpy(a).astype(np.float64) for a in shared_math.sample_vjp(estimator, *point, *extra, **options)
            ]
            for estimator in shared_math.ESTIMATORS
        }
    for estimator, single in results["float32"].items():
        for name, got, want in zip(("locs", "scales", "logits"), single, results["float64"][estimator]):
            assert np.all(np.isfinite(got)), (family, estimator, name)
            ref.assert_close(got, want, 1e-3, floor=1e-3, what=f"{family} {estimator} {name} float32")
