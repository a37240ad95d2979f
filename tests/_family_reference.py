r"""Brute-force float64 reference for mixtures of every component family, independent of ``shared_math``.

Nothing here imports ``shared_math``.  Each family is written the obvious way in torch
float64 from its textbook formulas: the log density :math:`\log g(z)` and the CDF
:math:`G(z)` (the Student-t CDF's value comes from ``scipy.stats.t.cdf``, its derivative from
the density, through a small ``torch.autograd.Function``).  The distributional transform is
built one dimension at a time, and its FULL per-sample Jacobians
:math:`\partial T/\partial x` (:math:`D\times D`) and :math:`\partial T/\partial\theta` come from
``torch.autograd.functional.jacobian``, one sample at a time; the implicit gradient then
solves the triangular systems (``torch.linalg.solve_triangular``), as in ``_reference``.

The Rao-Blackwell and chosen-component gradients are formed from the responsibilities
:math:`r_k(x) = \pi_k N_k(x)/\sum_j\pi_j N_j(x)` computed with ``torch.distributions``.

**Shape parameters** (Student-t ``df``, Gamma ``concentration``, Beta ``concentration1``,
``concentration0``; every function takes them as ``shape``, a tuple of arrays shaped like
``scales``, or the Student-t ``df`` alone as ``df``).  :math:`\log g` is differentiated in them
by autograd (``torch.distributions``); the CDF's value comes from SciPy and its derivative in a
shape parameter from a five-point central difference of SciPy's CDF (of the smaller tail,
relative step 1e-3: about 1e-11 relative), through :class:`_ShapeCDF`.  The full Jacobian of
the transform then includes the shape parameters, and :func:`implicit_vjp` returns their
gradients with ``shape_gradients=True``.  ``velocities`` replaces the CDF derivative by
:math:`\partial_\theta G = -g(z)\,v_\theta` for given standardized velocities
:math:`v_\theta` (to check an estimator's use of sampled velocities exactly).
"""

from __future__ import annotations

import math

import _reference as ref
import numpy as np
import scipy.special
import scipy.stats
import torch

FLOAT = torch.float64
FAMILY_NAMES = ("normal", "logistic", "laplace", "cauchy", "gumbel", "student_t")
#: Families on a bounded support whose shape parameters are learnable (``tests/test_shape_families.py``).
SHAPE_FAMILY_NAMES = ("gamma", "beta")
#: Shape parameter names of each family.
SHAPE_NAMES = {"student_t": ("df",), "gamma": ("concentration",), "beta": ("concentration1", "concentration0")}


def _shape(df, shape):
    if df is not None:
        return (df,)
    return tuple(shape or ())


def scipy_lower_upper(family, z, params):
    """``(G(z), 1 - G(z))`` of the standardized family from SciPy, each computed directly (NumPy float64)."""
    if family == "student_t":
        return scipy.stats.t.cdf(z, *params), scipy.stats.t.sf(z, *params)
    if family == "gamma":
        (a,) = params
        zp = np.clip(z, 0.0, None)
        return scipy.special.gammainc(a, zp), scipy.special.gammaincc(a, zp)
    if family == "beta":
        a, b = params
        zc = np.clip(z, 0.0, 1.0)
        return scipy.special.betainc(a, b, zc), scipy.special.betainc(b, a, 1.0 - zc)
    raise ValueError(family)


def scipy_shape_cdf_derivatives(family, z, params, relative_step=1e-3):
    r""":math:`\partial G(z)/\partial\theta` for every shape parameter by a five-point central
    difference of SciPy's smaller tail (:math:`\partial_\theta G = -\partial_\theta(1-G)`)."""
    params = [np.asarray(p, dtype=np.float64) for p in params]
    lower, upper = scipy_lower_upper(family, z, params)
    use_lower = lower <= upper
    derivatives = []
    for index, value in enumerate(params):
        step = relative_step * value

        def tail(shift, index=index, step=step):
            shifted = list(params)
            shifted[index] = params[index] + shift * step
            low, up = scipy_lower_upper(family, z, shifted)
            return np.where(use_lower, low, -up)

        derivative = (-tail(2) + 8 * tail(1) - 8 * tail(-1) + tail(-2)) / (12 * step)
        derivatives.append(derivative)
    return derivatives


class _ShapeCDF(torch.autograd.Function):
    r""":math:`G(z; \theta)` of a shape family: the value from SciPy, :math:`\partial_z G = g(z)`
    (torch), :math:`\partial_\theta G` by :func:`scipy_shape_cdf_derivatives` or, where
    ``velocities`` are given, :math:`-g(z)\,v_\theta`."""

    @staticmethod
    def forward(ctx, family, velocities, z, *params):
        numpy_params = [p.detach().numpy() for p in params]
        z_np = z.detach().numpy()
        lower, upper = scipy_lower_upper(family, z_np, numpy_params)
        density = torch.exp(log_g(family, z.detach(), *(p.detach() for p in params)))
        if velocities is None:
            derivatives = [
                torch.as_tensor(d, dtype=FLOAT) for d in scipy_shape_cdf_derivatives(family, z_np, numpy_params)
            ]
        else:
            derivatives = [-density * v for v in velocities]
        ctx.save_for_backward(density, *derivatives)
        return torch.as_tensor(np.where(lower <= upper, lower, 1.0 - upper), dtype=FLOAT)

    @staticmethod
    def backward(ctx, grad):
        density, *derivatives = ctx.saved_tensors
        return (None, None, grad * density) + tuple(grad * d for d in derivatives)


def log_g(family, z, *shape):
    r""":math:`\log g(z)` of the standardized family (torch float64; differentiable in ``z`` and
    the shape parameters; :math:`-\infty` outside the support)."""
    if family == "normal":
        return -0.5 * z * z - 0.5 * math.log(2 * math.pi)
    if family == "logistic":
        return -z - 2.0 * torch.nn.functional.softplus(-z)
    if family == "laplace":
        return -torch.abs(z) - math.log(2.0)
    if family == "cauchy":
        return -torch.log1p(z * z) - math.log(math.pi)
    if family == "gumbel":
        return -z - torch.exp(-z)
    if family == "student_t":
        (df,) = shape
        return torch.distributions.StudentT(df).log_prob(z)
    if family == "gamma":
        (a,) = shape
        inside = z > 0
        safe = torch.where(inside, z, torch.ones_like(z))
        value = (a - 1.0) * torch.log(safe) - safe - torch.lgamma(a)
        return torch.where(inside, value, torch.full_like(value, -math.inf))
    if family == "beta":
        a, b = shape
        inside = (z > 0) & (z < 1)
        safe = torch.where(inside, z, torch.full_like(z, 0.5))
        value = (
            (a - 1.0) * torch.log(safe)
            + (b - 1.0) * torch.log1p(-safe)
            - (torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b))
        )
        return torch.where(inside, value, torch.full_like(value, -math.inf))
    raise ValueError(family)


def cdf_g(family, z, *shape, velocities=None):
    r""":math:`G(z)` of the standardized family (torch float64, differentiable in ``z`` and, for
    the shape families and the Student-t, in the shape parameters)."""
    if family == "normal":
        return 0.5 * torch.special.erfc(-z / math.sqrt(2.0))
    if family == "logistic":
        return torch.sigmoid(z)
    if family == "laplace":
        return torch.where(
            z < 0, 0.5 * torch.exp(torch.clamp(z, max=0.0)), 1.0 - 0.5 * torch.exp(-torch.clamp(z, min=0.0))
        )
    if family == "cauchy":
        return 0.5 + torch.atan(z) / math.pi
    if family == "gumbel":
        return torch.exp(-torch.exp(-z))
    if family in ("student_t", "gamma", "beta"):
        return _ShapeCDF.apply(family, velocities, z, *shape)
    raise ValueError(family)


def scipy_distribution(family, df=None, shape=None):
    """The standardized family in ``scipy.stats`` (for values and sampling)."""
    params = _shape(df, shape)
    if family == "student_t":
        return scipy.stats.t(*params) if params else None
    if family == "gamma":
        return scipy.stats.gamma(*params)
    if family == "beta":
        return scipy.stats.beta(*params)
    return {
        "normal": scipy.stats.norm,
        "logistic": scipy.stats.logistic,
        "laplace": scipy.stats.laplace,
        "cauchy": scipy.stats.cauchy,
        "gumbel": scipy.stats.gumbel_r,
    }[family]


def sample(rng, family, locs, scales, logits, df=None, sample_shape=(), shape=None):
    """Ancestral draws ``(x, component, noise)``: component by inverse CDF of the weights,
    standardized noise from SciPy (shape parameters broadcast like ``scales``; the chosen
    component's used for each draw)."""
    params = _shape(df, shape)
    locs, scales, logits = (np.asarray(a, dtype=np.float64) for a in (locs, scales, logits))
    num_components, event_size = locs.shape[-2:]
    batch_shape = np.broadcast_shapes(locs.shape[:-2], scales.shape[:-2], logits.shape[:-1])
    full = tuple(sample_shape) + tuple(batch_shape)
    probs = scipy.special.softmax(np.broadcast_to(logits, full + (num_components,)), axis=-1)
    uniform = rng.random(full)[..., None]
    component = np.minimum(np.sum(uniform > np.cumsum(probs, axis=-1), axis=-1), num_components - 1)
    if params:
        chosen = [
            np.take_along_axis(
                np.broadcast_to(p, full + (num_components, event_size)), component[..., None, None], axis=-2
            )[..., 0, :]
            for p in params
        ]
        noise = scipy_distribution(family, shape=chosen).rvs(random_state=rng)
        if family == "gamma":
            noise = np.clip(noise, np.finfo(np.float64).tiny, None)
        if family == "beta":
            noise = np.clip(noise, np.finfo(np.float64).tiny, 1.0 - np.finfo(np.float64).eps)
    else:
        noise = scipy_distribution(family).rvs(size=full + (event_size,), random_state=rng)
    x = ref.sample_from_noise(locs, scales, component, noise)
    return x, component, noise


def _single_transform(family, x, locs, scales, logits, shape, velocities=None):
    """:math:`T(x)` (D,) of one point: w_kd by a softmax of the earlier log densities."""
    z = (x - locs) / scales
    log_density = log_g(family, z, *shape) - torch.log(scales)
    log_pi = torch.log_softmax(logits, -1)
    columns = []
    for d in range(x.shape[-1]):
        weights = torch.softmax(log_pi + log_density[:, :d].sum(-1), -1)
        column_velocities = None if velocities is None else [v[:, d] for v in velocities]
        cdf = cdf_g(family, z[:, d], *(p[:, d] for p in shape), velocities=column_velocities)
        columns.append((weights * cdf).sum(0))
    return torch.stack(columns)


def _flatten(x, locs, scales, logits, shape, velocities=None):
    tensors = [ref._t(a) for a in (x, locs, scales, logits)]
    x, locs, scales, logits = tensors
    num_components, event_size = locs.shape[-2:]
    shape_t = [ref._t(p) for p in shape]
    sample_shape = torch.broadcast_shapes(
        x.shape[:-1], locs.shape[:-2], scales.shape[:-2], logits.shape[:-1], *(p.shape[:-2] for p in shape_t)
    )
    kd = sample_shape + (num_components, event_size)
    flat = [
        x.expand(sample_shape + (event_size,)).reshape(-1, event_size),
        locs.expand(kd).reshape(-1, num_components, event_size),
        scales.expand(kd).reshape(-1, num_components, event_size),
        logits.expand(sample_shape + (num_components,)).reshape(-1, num_components),
    ]
    flat_shape = [p.expand(kd).reshape(-1, num_components, event_size) for p in shape_t]
    flat_velocities = None
    if velocities is not None:
        flat_velocities = [ref._t(v).expand(kd).reshape(-1, num_components, event_size) for v in velocities]
    return tuple(sample_shape), flat, flat_shape, flat_velocities


class Jacobians:
    """Per-sample full Jacobians of :math:`T` (``x`` (N, D, D), ``locs``/``scales`` and each
    shape parameter (N, D, K, D), ``logits`` (N, D, K)); shape parameters only where
    ``shape_gradients``."""

    def __init__(self, family, x, locs, scales, logits, df=None, *, shape=None, shape_gradients=False, velocities=None):
        params = _shape(df, shape)
        self.sample_shape, flat, flat_shape, flat_velocities = _flatten(x, locs, scales, logits, params, velocities)
        count = 4 + (len(flat_shape) if shape_gradients else 0)
        results = [[] for _ in range(count)]
        for index in range(flat[0].shape[0]):
            point = tuple(tensor[index] for tensor in flat)
            point_shape = tuple(p[index] for p in flat_shape)
            point_velocities = None if flat_velocities is None else [v[index] for v in flat_velocities]
            if shape_gradients:
                jac = torch.autograd.functional.jacobian(
                    lambda *args: _single_transform(family, *args[:4], args[4:], point_velocities),
                    point + point_shape,
                )
            else:
                jac = torch.autograd.functional.jacobian(
                    lambda *args: _single_transform(family, *args, point_shape, point_velocities), point
                )
            for store, value in zip(results, jac):
                store.append(value)
        self.x, self.locs, self.scales, self.logits = (torch.stack(store) for store in results[:4])
        self.shape = tuple(torch.stack(store) for store in results[4:])


def distributional_transform(family, x, locs, scales, logits, df=None, *, shape=None):
    """``(..., D)`` distributional transform, one point at a time."""
    params = _shape(df, shape)
    sample_shape, flat, flat_shape, _ = _flatten(x, locs, scales, logits, params)
    values = [
        _single_transform(family, *(t[i] for t in flat), tuple(p[i] for p in flat_shape))
        for i in range(flat[0].shape[0])
    ]
    return ref._n(torch.stack(values).reshape(sample_shape + (flat[0].shape[-1],)))


def implicit_vjp(
    family, x, locs, scales, logits, cotangent, df=None, *, shape=None, shape_gradients=False, velocities=None
):
    r"""``(locs_bar, scales_bar, logits_bar)`` by the triangular solve :math:`J^\top v = g`, plus
    the tuple of shape-parameter gradients with ``shape_gradients``."""
    params = _shape(df, shape)
    jac = Jacobians(
        family, x, locs, scales, logits, shape=params, shape_gradients=shape_gradients, velocities=velocities
    )
    num_components, event_size = np.shape(locs)[-2:]
    g = ref._t(cotangent).expand(jac.sample_shape + (event_size,)).reshape(-1, event_size, 1)
    v = torch.linalg.solve_triangular(jac.x.transpose(-1, -2), g, upper=True)[..., 0]
    full_kd = jac.sample_shape + (num_components, event_size)
    locs_bar = -torch.einsum("nd,ndke->nke", v, jac.locs).reshape(full_kd)
    scales_bar = -torch.einsum("nd,ndke->nke", v, jac.scales).reshape(full_kd)
    logits_bar = -torch.einsum("nd,ndk->nk", v, jac.logits).reshape(jac.sample_shape + (num_components,))
    result = (
        ref._n(ref._sum_to_shape(locs_bar, np.shape(locs))),
        ref._n(ref._sum_to_shape(scales_bar, np.shape(scales))),
        ref._n(ref._sum_to_shape(logits_bar, np.shape(logits))),
    )
    if not shape_gradients:
        return result
    shape_bars = tuple(
        ref._n(ref._sum_to_shape(-torch.einsum("nd,ndke->nke", v, j).reshape(full_kd), np.shape(p)))
        for j, p in zip(jac.shape, params)
    )
    return result + (shape_bars,)


def implicit_jvp(
    family,
    x,
    locs,
    scales,
    logits,
    locs_dot,
    scales_dot,
    logits_dot,
    df=None,
    *,
    shape=None,
    shape_dots=None,
    velocities=None,
):
    r""":math:`\dot x = -J^{-1}(\partial T/\partial\theta)\dot\theta` per sample (``shape_dots``: one
    tangent per shape parameter)."""
    params = _shape(df, shape)
    with_shape = shape_dots is not None
    jac = Jacobians(family, x, locs, scales, logits, shape=params, shape_gradients=with_shape, velocities=velocities)
    num_components, event_size = np.shape(locs)[-2:]
    full_kd = jac.sample_shape + (num_components, event_size)
    dots = [
        ref._t(a).expand(s).reshape((-1,) + s[len(jac.sample_shape) :])
        for a, s in ((locs_dot, full_kd), (scales_dot, full_kd), (logits_dot, jac.sample_shape + (num_components,)))
    ]
    transform_dot = (
        torch.einsum("ndke,nke->nd", jac.locs, dots[0])
        + torch.einsum("ndke,nke->nd", jac.scales, dots[1])
        + torch.einsum("ndk,nk->nd", jac.logits, dots[2])
    )
    for j, dot in zip(jac.shape, shape_dots or ()):
        transform_dot = transform_dot + torch.einsum(
            "ndke,nke->nd", j, ref._t(dot).expand(full_kd).reshape((-1, num_components, event_size))
        )
    x_dot = -torch.linalg.solve_triangular(jac.x, transform_dot[..., None], upper=False)[..., 0]
    return ref._n(x_dot.reshape(jac.sample_shape + (event_size,)))


def responsibilities(family, x, locs, scales, logits, df=None, *, shape=None):
    r""":math:`r_k(x)`, shape ``S + (K,)``, and :math:`z`, shape ``S + (K, D)``."""
    params = [ref._t(p) for p in _shape(df, shape)]
    x, locs, scales, logits = (ref._t(a) for a in (x, locs, scales, logits))
    z = (x[..., None, :] - locs) / scales
    log_density = (log_g(family, z, *params) - torch.log(scales)).sum(-1)
    return torch.softmax(torch.log_softmax(logits, -1) + log_density, -1), z


def rao_blackwell_locs_scales(family, x, locs, scales, logits, cotangent, df=None, *, shape=None):
    r""":math:`\bar\mu_k = r_k g`, :math:`\bar\sigma_k = r_k z_k g`, summed to the parameters' shapes."""
    r, z = responsibilities(family, x, locs, scales, logits, df, shape=shape)
    g = ref._t(cotangent)[..., None, :]
    locs_bar = r[..., None] * g
    return ref._n(ref._sum_to_shape(locs_bar, np.shape(locs))), ref._n(
        ref._sum_to_shape(locs_bar * z, np.shape(scales))
    )


def velocity_gradients(weights, cotangent, scales, velocities, shapes):
    r""":math:`\bar\theta_{kd} = w_k\,g_d\,\sigma_{kd} v_{kd}` summed to ``shapes`` (``weights``
    ``S + (K,)``: :math:`r_k(x)` for Rao-Blackwell, the one-hot of the chosen component for
    the hybrid estimator; ``velocities`` standardized, ``S + (K, D)``)."""
    weights = ref._t(weights)
    g = ref._t(cotangent)[..., None, :]
    return tuple(
        ref._n(ref._sum_to_shape(weights[..., None] * g * ref._t(scales) * ref._t(v), s))
        for v, s in zip(velocities, shapes)
    )


def log_prob(family, x, locs, scales, logits, df=None, *, shape=None):
    r""":math:`\log\sum_k\pi_k\prod_d N_{kd}(x_d)` in torch float64."""
    params = [ref._t(p) for p in _shape(df, shape)]
    x, locs, scales, logits = (ref._t(a) for a in (x, locs, scales, logits))
    z = (x[..., None, :] - locs) / scales
    log_density = (log_g(family, z, *params) - torch.log(scales)).sum(-1)
    return ref._n(torch.logsumexp(torch.log_softmax(logits, -1) + log_density, -1))


def family_case(family, name, num_components, event_size, seed):
    """Test data for one family and shape case of ``_reference.SHAPE_CASES``; ``df`` (Student-t)
    is drawn in [1, 30], shaped like ``scales``.  Gamma: ``locs`` 0, ``concentration`` in
    [0.3, 20]; Beta: ``locs`` 0, ``scales`` 1, both concentrations in [0.3, 10]; ``shape`` is
    the tuple of shape parameters (``df`` alone for the Student-t)."""
    rng = np.random.default_rng(seed)
    locs_batch, scales_kd, logits_batch, sample_shape = ref.SHAPE_CASES[name]
    fill = {"K": num_components, "D": event_size}
    scales_shape = tuple(fill.get(s, s) for s in scales_kd)
    locs, scales, logits = ref.random_parameters(
        rng, locs_batch + (num_components, event_size), scales_shape, logits_batch + (num_components,)
    )
    df = np.exp(rng.uniform(0.0, math.log(30.0), scales_shape)) if family == "student_t" else None
    shape = (df,) if df is not None else ()
    if family == "gamma":
        locs = np.zeros_like(locs)
        shape = (np.exp(rng.uniform(math.log(0.3), math.log(20.0), scales_shape)),)
    if family == "beta":
        locs, scales = np.zeros_like(locs), np.ones_like(scales)
        shape = tuple(np.exp(rng.uniform(math.log(0.3), math.log(10.0), scales_shape)) for _ in range(2))
    x, component, noise = sample(rng, family, locs, scales, logits, sample_shape=sample_shape, shape=shape)
    cotangent = rng.standard_normal(x.shape)
    return dict(
        locs=locs,
        scales=scales,
        logits=logits,
        df=df,
        shape=shape,
        x=x,
        component=component,
        noise=noise,
        cotangent=cotangent,
    )


# ----------------------------------------------------------------------------------------
# A bounded objective with a closed-form expectation: E[cos(omega . x)].
# ----------------------------------------------------------------------------------------


def characteristic_function(family, t, df=None):
    r""":math:`E[e^{itZ}]` of the standardized family (complex NumPy array), from the textbook
    formulas: Normal :math:`e^{-t^2/2}`, logistic :math:`\pi t/\sinh(\pi t)`, Laplace
    :math:`1/(1+t^2)`, Cauchy :math:`e^{-|t|}`, Gumbel :math:`\Gamma(1-it)`, Student-t
    :math:`K_{\nu/2}(\sqrt\nu|t|)(\sqrt\nu|t|)^{\nu/2}/(\Gamma(\nu/2)2^{\nu/2-1})`."""
    t = np.asarray(t, dtype=np.float64)
    if family == "normal":
        return np.exp(-0.5 * t * t) + 0j
    if family == "logistic":
        a = math.pi * np.abs(t)
        return np.where(a > 0, a / np.sinh(np.where(a > 0, a, 1.0)), 1.0) + 0j
    if family == "laplace":
        return 1.0 / (1.0 + t * t) + 0j
    if family == "cauchy":
        return np.exp(-np.abs(t)) + 0j
    if family == "gumbel":
        return scipy.special.gamma(1.0 - 1j * t)
    if family == "student_t":
        a = np.sqrt(df) * np.abs(t)
        safe = np.where(a > 0, a, 1.0)
        value = scipy.special.kv(df / 2, safe) * safe ** (df / 2) / (scipy.special.gamma(df / 2) * 2 ** (df / 2 - 1))
        return np.where(a > 0, value, 1.0) + 0j
    raise ValueError(family)


def expected_cosine(family, omega, locs, scales, logits, df=None):
    r""":math:`E[\cos(\omega\cdot x)] = \mathrm{Re}\sum_k\pi_k\prod_d e^{i\omega_d\mu_{kd}}\varphi(\sigma_{kd}\omega_d)`."""
    locs, scales, logits = (np.asarray(a, dtype=np.float64) for a in (locs, scales, logits))
    scales = np.broadcast_to(scales, locs.shape)
    dfs = None if df is None else np.broadcast_to(df, locs.shape)
    phi = characteristic_function(family, scales * omega, dfs)
    per_component = np.prod(np.exp(1j * omega * locs) * phi, axis=-1)
    return float(np.real(np.sum(scipy.special.softmax(logits) * per_component)))


def expected_cosine_gradient(family, omega, locs, scales, logits, df=None, step=1e-6):
    """Central differences of :func:`expected_cosine` in every entry of ``locs``, ``scales``, ``logits``."""
    parameters = [np.array(a, dtype=np.float64) for a in (locs, np.broadcast_to(scales, np.shape(locs)), logits)]
    gradients = []
    for index, parameter in enumerate(parameters):
        gradient = np.zeros_like(parameter)
        for entry in np.ndindex(parameter.shape):
            shifted = [p.copy() for p in parameters]
            shifted[index][entry] += step
            up = expected_cosine(family, omega, *shifted, df=df)
            shifted[index][entry] -= 2 * step
            down = expected_cosine(family, omega, *shifted, df=df)
            gradient[entry] = (up - down) / (2 * step)
        gradients.append(gradient)
    return gradients
