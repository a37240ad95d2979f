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
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special
import scipy.stats
import torch

import _reference as ref

FLOAT = torch.float64
FAMILY_NAMES = ("normal", "logistic", "laplace", "cauchy", "gumbel", "student_t")


class _StudentTCDF(torch.autograd.Function):
    """:math:`G_\\nu(z)` with the value from SciPy and the derivative :math:`g_\\nu(z)` (df held fixed)."""

    @staticmethod
    def forward(ctx, z, df):
        ctx.save_for_backward(z, df)
        value = scipy.stats.t.cdf(z.detach().numpy(), df.detach().numpy())
        return torch.as_tensor(value, dtype=FLOAT)

    @staticmethod
    def backward(ctx, grad):
        z, df = ctx.saved_tensors
        return grad * torch.exp(torch.distributions.StudentT(df).log_prob(z)), None


def log_g(family, z, df=None):
    r""":math:`\log g(z)` of the standardized family (torch float64)."""
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
        return torch.distributions.StudentT(df).log_prob(z)
    raise ValueError(family)


def cdf_g(family, z, df=None):
    r""":math:`G(z)` of the standardized family (torch float64, differentiable in ``z``)."""
    if family == "normal":
        return 0.5 * torch.special.erfc(-z / math.sqrt(2.0))
    if family == "logistic":
        return torch.sigmoid(z)
    if family == "laplace":
        return torch.where(z < 0, 0.5 * torch.exp(torch.clamp(z, max=0.0)), 1.0 - 0.5 * torch.exp(-torch.clamp(z, min=0.0)))
    if family == "cauchy":
        return 0.5 + torch.atan(z) / math.pi
    if family == "gumbel":
        return torch.exp(-torch.exp(-z))
    if family == "student_t":
        return _StudentTCDF.apply(z, df)
    raise ValueError(family)


def scipy_distribution(family, df=None):
    """The standardized family in ``scipy.stats`` (for values and sampling)."""
    return {
        "normal": scipy.stats.norm,
        "logistic": scipy.stats.logistic,
        "laplace": scipy.stats.laplace,
        "cauchy": scipy.stats.cauchy,
        "gumbel": scipy.stats.gumbel_r,
        "student_t": scipy.stats.t(df) if df is not None else None,
    }[family]


def sample(rng, family, locs, scales, logits, df=None, sample_shape=()):
    """Ancestral draws ``(x, component, noise)``: component by inverse CDF of the weights,
    standardized noise from SciPy (``df`` broadcast like ``scales``; one value per draw used)."""
    locs, scales, logits = (np.asarray(a, dtype=np.float64) for a in (locs, scales, logits))
    num_components, event_size = locs.shape[-2:]
    batch_shape = np.broadcast_shapes(locs.shape[:-2], scales.shape[:-2], logits.shape[:-1])
    full = tuple(sample_shape) + tuple(batch_shape)
    probs = scipy.special.softmax(np.broadcast_to(logits, full + (num_components,)), axis=-1)
    uniform = rng.random(full)[..., None]
    component = np.minimum(np.sum(uniform > np.cumsum(probs, axis=-1), axis=-1), num_components - 1)
    if family == "student_t":
        chosen_df = np.take_along_axis(
            np.broadcast_to(df, full + (num_components, event_size)), component[..., None, None], axis=-2
        )[..., 0, :]
        noise = scipy.stats.t.rvs(chosen_df, random_state=rng)
    else:
        noise = scipy_distribution(family).rvs(size=full + (event_size,), random_state=rng)
    x = ref.sample_from_noise(locs, scales, component, noise)
    return x, component, noise


def _single_transform(family, x, locs, scales, logits, df):
    """:math:`T(x)` (D,) of one point: w_kd by a softmax of the earlier log densities."""
    z = (x - locs) / scales
    log_density = log_g(family, z, df) - torch.log(scales)
    log_pi = torch.log_softmax(logits, -1)
    columns = []
    for d in range(x.shape[-1]):
        weights = torch.softmax(log_pi + log_density[:, :d].sum(-1), -1)
        columns.append((weights * cdf_g(family, z[:, d], None if df is None else df[:, d])).sum(0))
    return torch.stack(columns)


def _flatten(x, locs, scales, logits, df):
    tensors = [ref._t(a) for a in (x, locs, scales, logits)]
    x, locs, scales, logits = tensors
    num_components, event_size = locs.shape[-2:]
    sample_shape = torch.broadcast_shapes(x.shape[:-1], locs.shape[:-2], scales.shape[:-2], logits.shape[:-1])
    kd = sample_shape + (num_components, event_size)
    flat = [
        x.expand(sample_shape + (event_size,)).reshape(-1, event_size),
        locs.expand(kd).reshape(-1, num_components, event_size),
        scales.expand(kd).reshape(-1, num_components, event_size),
        logits.expand(sample_shape + (num_components,)).reshape(-1, num_components),
    ]
    flat_df = None if df is None else ref._t(df).expand(kd).reshape(-1, num_components, event_size)
    return tuple(sample_shape), flat, flat_df


class Jacobians:
    """Per-sample full Jacobians of :math:`T` (``x`` (N, D, D), ``locs``/``scales`` (N, D, K, D), ``logits`` (N, D, K))."""

    def __init__(self, family, x, locs, scales, logits, df=None):
        self.sample_shape, flat, flat_df = _flatten(x, locs, scales, logits, df)
        results = [[], [], [], []]
        for index in range(flat[0].shape[0]):
            point = tuple(tensor[index] for tensor in flat)
            point_df = None if flat_df is None else flat_df[index]
            jac = torch.autograd.functional.jacobian(
                lambda *args: _single_transform(family, *args, point_df), point
            )
            for store, value in zip(results, jac):
                store.append(value)
        self.x, self.locs, self.scales, self.logits = (torch.stack(store) for store in results)


def distributional_transform(family, x, locs, scales, logits, df=None):
    """``(..., D)`` distributional transform, one point at a time."""
    sample_shape, flat, flat_df = _flatten(x, locs, scales, logits, df)
    values = [
        _single_transform(family, *(t[i] for t in flat), None if flat_df is None else flat_df[i])
        for i in range(flat[0].shape[0])
    ]
    return ref._n(torch.stack(values).reshape(sample_shape + (flat[0].shape[-1],)))


def implicit_vjp(family, x, locs, scales, logits, cotangent, df=None):
    """``(locs_bar, scales_bar, logits_bar)`` by the triangular solve :math:`J^\\top v = g`."""
    jac = Jacobians(family, x, locs, scales, logits, df)
    num_components, event_size = np.shape(locs)[-2:]
    g = ref._t(cotangent).expand(jac.sample_shape + (event_size,)).reshape(-1, event_size, 1)
    v = torch.linalg.solve_triangular(jac.x.transpose(-1, -2), g, upper=True)[..., 0]
    full_kd = jac.sample_shape + (num_components, event_size)
    locs_bar = -torch.einsum("nd,ndke->nke", v, jac.locs).reshape(full_kd)
    scales_bar = -torch.einsum("nd,ndke->nke", v, jac.scales).reshape(full_kd)
    logits_bar = -torch.einsum("nd,ndk->nk", v, jac.logits).reshape(jac.sample_shape + (num_components,))
    return (
        ref._n(ref._sum_to_shape(locs_bar, np.shape(locs))),
        ref._n(ref._sum_to_shape(scales_bar, np.shape(scales))),
        ref._n(ref._sum_to_shape(logits_bar, np.shape(logits))),
    )


def implicit_jvp(family, x, locs, scales, logits, locs_dot, scales_dot, logits_dot, df=None):
    r""":math:`\dot x = -J^{-1}(\partial T/\partial\theta)\dot\theta` per sample."""
    jac = Jacobians(family, x, locs, scales, logits, df)
    num_components, event_size = np.shape(locs)[-2:]
    full_kd = jac.sample_shape + (num_components, event_size)
    dots = [ref._t(a).expand(s).reshape((-1,) + s[len(jac.sample_shape) :]) for a, s in (
        (locs_dot, full_kd), (scales_dot, full_kd), (logits_dot, jac.sample_shape + (num_components,))
    )]
    transform_dot = (
        torch.einsum("ndke,nke->nd", jac.locs, dots[0])
        + torch.einsum("ndke,nke->nd", jac.scales, dots[1])
        + torch.einsum("ndk,nk->nd", jac.logits, dots[2])
    )
    x_dot = -torch.linalg.solve_triangular(jac.x, transform_dot[..., None], upper=False)[..., 0]
    return ref._n(x_dot.reshape(jac.sample_shape + (event_size,)))


def responsibilities(family, x, locs, scales, logits, df=None):
    r""":math:`r_k(x)`, shape ``S + (K,)``, and :math:`z`, shape ``S + (K, D)``."""
    x, locs, scales, logits = (ref._t(a) for a in (x, locs, scales, logits))
    z = (x[..., None, :] - locs) / scales
    log_density = (log_g(family, z, None if df is None else ref._t(df)) - torch.log(scales)).sum(-1)
    return torch.softmax(torch.log_softmax(logits, -1) + log_density, -1), z


def rao_blackwell_locs_scales(family, x, locs, scales, logits, cotangent, df=None):
    r""":math:`\bar\mu_k = r_k g`, :math:`\bar\sigma_k = r_k z_k g`, summed to the parameters' shapes."""
    r, z = responsibilities(family, x, locs, scales, logits, df)
    g = ref._t(cotangent)[..., None, :]
    locs_bar = r[..., None] * g
    return ref._n(ref._sum_to_shape(locs_bar, np.shape(locs))), ref._n(ref._sum_to_shape(locs_bar * z, np.shape(scales)))


def log_prob(family, x, locs, scales, logits, df=None):
    r""":math:`\log\sum_k\pi_k\prod_d N_{kd}(x_d)` in torch float64."""
    x, locs, scales, logits = (ref._t(a) for a in (x, locs, scales, logits))
    z = (x[..., None, :] - locs) / scales
    log_density = (log_g(family, z, None if df is None else ref._t(df)) - torch.log(scales)).sum(-1)
    return ref._n(torch.logsumexp(torch.log_softmax(logits, -1) + log_density, -1))


def family_case(family, name, num_components, event_size, seed):
    """Test data for one family and shape case of ``_reference.SHAPE_CASES``; ``df`` (Student-t)
    is drawn in [1, 30], shaped like ``scales``."""
    rng = np.random.default_rng(seed)
    locs_batch, scales_kd, logits_batch, sample_shape = ref.SHAPE_CASES[name]
    fill = {"K": num_components, "D": event_size}
    scales_shape = tuple(fill.get(s, s) for s in scales_kd)
    locs, scales, logits = ref.random_parameters(
        rng, locs_batch + (num_components, event_size), scales_shape, logits_batch + (num_components,)
    )
    df = np.exp(rng.uniform(0.0, math.log(30.0), scales_shape)) if family == "student_t" else None
    x, component, noise = sample(rng, family, locs, scales, logits, df, sample_shape)
    cotangent = rng.standard_normal(x.shape)
    return dict(locs=locs, scales=scales, logits=logits, df=df, x=x, component=component, noise=noise, cotangent=cotangent)


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
