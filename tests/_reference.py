r"""Brute-force float64 reference for the mixture maths, independent of ``shared_math``.

Nothing here imports ``shared_math``.  Everything is written the slow, obvious way, in
torch float64 (or SciPy for the 1-D CDFs), so that the tests compare two unrelated
computations:

* the distributional transform :math:`T_d(x) = \sum_k w_{kd}\,\Phi(z_{kd})` is built one
  dimension at a time with a Python loop, the conditional weights :math:`w_{kd}` as a softmax
  of :math:`\log\pi_k + \sum_{j<d}\log N_{kj}(x_j)` (``docs/design.md`` §2), and
  :math:`\Phi(z) = \tfrac12\operatorname{erfc}(-z/\sqrt2)` (accurate in both tails in float64);
* the implicit gradient (Graves 2016, Eq. 6, made multivariate) takes the FULL per-sample
  Jacobians :math:`J = \partial T/\partial x` (:math:`D\times D`) and
  :math:`\partial T/\partial\theta` with ``torch.func.jacrev``, then solves the triangular
  systems with ``torch.linalg.solve_triangular``:
  :math:`J^\top v = g,\ \bar\theta = -v^\top\,\partial T/\partial\theta` (reverse mode) and
  :math:`J\dot x = -(\partial T/\partial\theta)\,\dot\theta` (forward mode).  This costs
  :math:`O(N\cdot K\cdot D^2)` memory and :math:`O(N\cdot D^3)` time: fine for tests;
* per-sample parameter gradients are summed back to the parameters' shapes by autograd
  through ``expand`` (not by any hand-written reduction).

All public functions take and return NumPy float64 arrays.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special
import scipy.stats
import torch

FLOAT = torch.float64
SQRT2 = math.sqrt(2.0)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _t(array):
    return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=FLOAT)


def _n(tensor):
    return tensor.detach().numpy()


# ----------------------------------------------------------------------------------------
# Test data: random mixtures and ancestral draws from them.
# ----------------------------------------------------------------------------------------


def random_parameters(rng, locs_shape, scales_shape, logits_shape, *, spread=1.5):
    """Random ``(locs, scales, logits)`` (NumPy float64) of the given shapes.

    ``locs`` ~ N(0, spread²), ``scales`` = exp(N(-0.3, 0.4²)), ``logits`` ~ N(0, 1).
    """
    locs = spread * rng.standard_normal(locs_shape)
    scales = np.exp(-0.3 + 0.4 * rng.standard_normal(scales_shape))
    logits = rng.standard_normal(logits_shape)
    return locs, scales, logits


def sample_mixture(rng, locs, scales, logits, sample_shape=()):
    """Ancestral draws ``(x, component, noise)`` with ``x = locs[k] + scales[k] * noise``.

    Shapes: ``x`` and ``noise`` ``sample_shape + batch_shape + (D,)``, ``component``
    ``sample_shape + batch_shape`` (integers), with ``batch_shape`` the broadcast of the
    parameters' leading dimensions.
    """
    locs, scales, logits = (np.asarray(a, dtype=np.float64) for a in (locs, scales, logits))
    num_components, event_size = locs.shape[-2:]
    batch_shape = np.broadcast_shapes(locs.shape[:-2], scales.shape[:-2], logits.shape[:-1])
    full = tuple(sample_shape) + tuple(batch_shape)
    locs_b = np.broadcast_to(locs, full + (num_components, event_size))
    scales_b = np.broadcast_to(scales, full + (num_components, event_size))
    logits_b = np.broadcast_to(logits, full + (num_components,))
    probs = scipy.special.softmax(logits_b, axis=-1)
    cumulative = np.cumsum(probs, axis=-1)
    uniform = rng.random(full)[..., None]
    component = np.minimum(np.sum(uniform > cumulative, axis=-1), num_components - 1)
    noise = rng.standard_normal(full + (event_size,))
    index = component[..., None, None]
    chosen_locs = np.take_along_axis(locs_b, index, axis=-2)[..., 0, :]
    chosen_scales = np.take_along_axis(scales_b, index, axis=-2)[..., 0, :]
    return chosen_locs + chosen_scales * noise, component, noise


def one_hot(component, num_components):
    """``(..., K)`` float64 indicator of the integer array ``component``."""
    return (np.asarray(component)[..., None] == np.arange(num_components)).astype(np.float64)


# ----------------------------------------------------------------------------------------
# Values.
# ----------------------------------------------------------------------------------------


def log_prob(x, locs, scales, logits):
    r""":math:`\log\sum_k\pi_k\prod_d N(x_d;\mu_{kd},\sigma_{kd})` via ``torch.distributions.Normal``."""
    x, locs, scales, logits = map(_t, (x, locs, scales, logits))
    per_component = torch.distributions.Normal(locs, scales).log_prob(x[..., None, :]).sum(-1)
    return _n(torch.logsumexp(torch.log_softmax(logits, -1) + per_component, -1))


def cdf_1d(x, locs, scales, logits):
    r"""1-D mixture CDF :math:`\sum_k\pi_k\Phi((x-\mu_k)/\sigma_k)` with ``scipy.stats.norm``."""
    x = np.asarray(x, dtype=np.float64)
    probs = scipy.special.softmax(np.asarray(logits, dtype=np.float64), axis=-1)
    return np.sum(probs * scipy.stats.norm.cdf(x[..., None], loc=locs, scale=scales), axis=-1)


def log_cdf_1d(x, locs, scales, logits):
    r"""Log of :func:`cdf_1d` from ``scipy.stats.norm.logcdf`` (accurate far in the lower tail)."""
    x = np.asarray(x, dtype=np.float64)
    log_probs = scipy.special.log_softmax(np.asarray(logits, dtype=np.float64), axis=-1)
    log_phi = scipy.stats.norm.logcdf(x[..., None], loc=locs, scale=scales)
    return scipy.special.logsumexp(log_probs + log_phi, axis=-1)


def _single_log_weights(x, locs, scales, logits):
    """Conditional log weights ``(K, D)`` of one point ``x`` (D,), parameters unbatched."""
    log_pi = torch.log_softmax(logits, -1)
    z = (x - locs) / scales
    log_normal = -0.5 * z * z - torch.log(scales) - LOG_SQRT_2PI
    columns = []
    for d in range(x.shape[-1]):
        log_joint = log_pi + log_normal[:, :d].sum(-1)
        columns.append(torch.log_softmax(log_joint, -1))
    return torch.stack(columns, -1)


def _single_transform(x, locs, scales, logits):
    r""":math:`T(x)` (D,) of one point, one Python step per dimension."""
    log_w = _single_log_weights(x, locs, scales, logits)
    z = (x - locs) / scales
    phi = 0.5 * torch.special.erfc(-z / SQRT2)
    return (torch.exp(log_w) * phi).sum(0)


def _flatten_samples(x, locs, scales, logits, *extra):
    """Broadcast everything to a common sample shape S and flatten it to N = prod(S)."""
    x, locs, scales, logits = map(_t, (x, locs, scales, logits))
    num_components, event_size = locs.shape[-2:]
    sample_shape = torch.broadcast_shapes(x.shape[:-1], locs.shape[:-2], scales.shape[:-2], logits.shape[:-1])
    flat = (
        x.expand(sample_shape + (event_size,)).reshape(-1, event_size),
        locs.expand(sample_shape + (num_components, event_size)).reshape(-1, num_components, event_size),
        scales.expand(sample_shape + (num_components, event_size)).reshape(-1, num_components, event_size),
        logits.expand(sample_shape + (num_components,)).reshape(-1, num_components),
    )
    return tuple(sample_shape), flat


def conditional_log_weights(x, locs, scales, logits):
    """``(..., K, D)`` conditional log weights, one point at a time."""
    sample_shape, (x, locs, scales, logits) = _flatten_samples(x, locs, scales, logits)
    out = torch.stack([_single_log_weights(*args) for args in zip(x, locs, scales, logits)])
    return _n(out.reshape(sample_shape + out.shape[1:]))


def distributional_transform(x, locs, scales, logits):
    """``(..., D)`` distributional transform, one point at a time."""
    sample_shape, (x, locs, scales, logits) = _flatten_samples(x, locs, scales, logits)
    out = torch.stack([_single_transform(*args) for args in zip(x, locs, scales, logits)])
    return _n(out.reshape(sample_shape + out.shape[1:]))


def mean(locs, scales, logits):
    r""":math:`\sum_k\pi_k\mu_k` (einsum)."""
    locs, logits = _t(locs), _t(logits)
    locs, pi = torch.broadcast_tensors(locs, torch.softmax(logits, -1)[..., None])
    return _n(torch.einsum("...kd,...kd->...d", pi, locs))


def variance(locs, scales, logits):
    r""":math:`E[x^2]-E[x]^2 = \sum_k\pi_k(\sigma_k^2+\mu_k^2) - (\sum_k\pi_k\mu_k)^2` (another
    formula than the centred one, equal to rounding)."""
    locs, scales, logits = map(_t, (locs, scales, logits))
    pi = torch.softmax(logits, -1)[..., None]
    second = (pi * (scales**2 + locs**2)).sum(-2)
    first = (pi * locs).sum(-2)
    return _n(second - first**2)


# ----------------------------------------------------------------------------------------
# Implicit gradients from full Jacobians.
# ----------------------------------------------------------------------------------------


class Jacobians:
    r"""Full per-sample Jacobians of :math:`T` at the broadcast sample shape ``S``.

    ``x``: (N, D, D) = :math:`\partial T/\partial x`; ``locs``, ``scales``: (N, D, K, D);
    ``logits``: (N, D, K); ``sample_shape``: S (N = prod(S)).
    """

    def __init__(self, x, locs, scales, logits):
        self.sample_shape, flat = _flatten_samples(x, locs, scales, logits)
        jac = torch.func.vmap(torch.func.jacrev(_single_transform, argnums=(0, 1, 2, 3)))
        self.x, self.locs, self.scales, self.logits = jac(*flat)
        self.transform = torch.func.vmap(_single_transform)(*flat)


def _sum_to_shape(per_sample, shape):
    """Sum ``per_sample`` (broadcast shape) down to ``shape``: the adjoint of ``expand``, by autograd."""
    parameter = torch.zeros(shape, dtype=FLOAT, requires_grad=True)
    (total,) = torch.autograd.grad(parameter.expand(per_sample.shape), parameter, per_sample)
    return total


def implicit_vjp(x, locs, scales, logits, cotangent, jacobians=None):
    r"""``(locs_bar, scales_bar, logits_bar)``: solve :math:`J^\top v=g`, then
    :math:`\bar\theta=-v^\top\partial T/\partial\theta` per sample.

    Summed over sample and broadcast dimensions to the parameters' shapes.
    """
    jac = Jacobians(x, locs, scales, logits) if jacobians is None else jacobians
    sample_shape = jac.sample_shape
    num_components, event_size = np.shape(locs)[-2:]
    g = _t(cotangent).expand(sample_shape + (event_size,)).reshape(-1, event_size, 1)
    v = torch.linalg.solve_triangular(jac.x.transpose(-1, -2), g, upper=True)[..., 0]  # (N, D)
    locs_bar = -torch.einsum("nd,ndke->nke", v, jac.locs)
    scales_bar = -torch.einsum("nd,ndke->nke", v, jac.scales)
    logits_bar = -torch.einsum("nd,ndk->nk", v, jac.logits)
    full_kd = sample_shape + (num_components, event_size)
    return (
        _n(_sum_to_shape(locs_bar.reshape(full_kd), np.shape(locs))),
        _n(_sum_to_shape(scales_bar.reshape(full_kd), np.shape(scales))),
        _n(_sum_to_shape(logits_bar.reshape(sample_shape + (num_components,)), np.shape(logits))),
    )


def implicit_jvp(x, locs, scales, logits, locs_dot, scales_dot, logits_dot, jacobians=None):
    r""":math:`\dot x = -J^{-1}(\partial T/\partial\theta)\,\dot\theta` per sample, shape ``S + (D,)``.

    Tangents have the parameters' shapes (zeros for a parameter held fixed).
    """
    jac = Jacobians(x, locs, scales, logits) if jacobians is None else jacobians
    sample_shape = jac.sample_shape
    num_components, event_size = np.shape(locs)[-2:]
    full_kd = sample_shape + (num_components, event_size)
    locs_dot = _t(locs_dot).expand(full_kd).reshape(-1, num_components, event_size)
    scales_dot = _t(scales_dot).expand(full_kd).reshape(-1, num_components, event_size)
    logits_dot = _t(logits_dot).expand(sample_shape + (num_components,)).reshape(-1, num_components)
    transform_dot = (
        torch.einsum("ndke,nke->nd", jac.locs, locs_dot)
        + torch.einsum("ndke,nke->nd", jac.scales, scales_dot)
        + torch.einsum("ndk,nk->nd", jac.logits, logits_dot)
    )
    x_dot = -torch.linalg.solve_triangular(jac.x, transform_dot[..., None], upper=False)[..., 0]
    return _n(x_dot.reshape(sample_shape + (event_size,)))


def chosen_component_vjp(component, noise, cotangent, locs_shape, scales_shape):
    r"""``(locs_bar, scales_bar)`` of :math:`x=\mu_k+\sigma_k\varepsilon` (k fixed), by autograd
    through indexing of the broadcast parameters."""
    component = torch.as_tensor(np.asarray(component))
    noise, cotangent = _t(noise), _t(cotangent)
    locs = torch.zeros(locs_shape, dtype=FLOAT, requires_grad=True)
    scales = torch.ones(scales_shape, dtype=FLOAT, requires_grad=True)
    num_components, event_size = locs_shape[-2:]
    full = component.shape + (num_components, event_size)
    index = component[..., None, None].expand(component.shape + (1, event_size))
    chosen_locs = torch.gather(locs.expand(full), -2, index)[..., 0, :]
    chosen_scales = torch.gather(scales.expand(full), -2, index)[..., 0, :]
    x = chosen_locs + chosen_scales * noise
    locs_bar, scales_bar = torch.autograd.grad(x, (locs, scales), cotangent)
    return _n(locs_bar), _n(scales_bar)


def sample_from_noise(locs, scales, component, noise):
    """``locs[k] + scales[k] * noise`` by indexing (NumPy)."""
    component = np.asarray(component)
    full = component.shape + np.shape(locs)[-2:]
    index = component[..., None, None]
    chosen_locs = np.take_along_axis(np.broadcast_to(locs, full), index, axis=-2)[..., 0, :]
    chosen_scales = np.take_along_axis(np.broadcast_to(scales, full), index, axis=-2)[..., 0, :]
    return chosen_locs + chosen_scales * noise


# ----------------------------------------------------------------------------------------
# Comparison.
# ----------------------------------------------------------------------------------------


def assert_close(actual, expected, rtol, *, floor=1.0, what=""):
    r"""Assert :math:`|a - e| \le \mathrm{rtol}\,(|e| + \mathrm{floor}\cdot\max|e|)` elementwise.

    The ``floor`` term makes entries that are tiny compared with the array's largest one
    count relative to that largest one (``floor=1``: a norm-wise relative test in the max
    norm; ``floor=1e-3``: each entry relative, down to a thousandth of the largest).  Also
    checks shapes and that ``actual`` is finite wherever ``expected`` is.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual) | ~np.isfinite(expected)), f"{what}: non-finite values {actual}"
    scale = np.max(np.abs(expected)) if expected.size else 0.0
    bound = rtol * (np.abs(expected) + floor * scale)
    error = np.abs(actual - expected)
    worst = np.unravel_index(np.argmax(error - bound), error.shape) if error.size else ()
    assert np.all(error <= bound), (
        f"{what}: |actual - expected| exceeds rtol={rtol} (floor={floor}); worst at {worst}: "
        f"actual {actual[worst]!r}, expected {expected[worst]!r}, max|expected| {scale:.3g}, "
        f"max error/bound {np.max(error / np.where(bound > 0, bound, np.inf)):.3g}"
    )


# ----------------------------------------------------------------------------------------
# Shape cases shared by the tests.
# ----------------------------------------------------------------------------------------

#: name -> (locs batch shape, scales shape without (K, D) replaced, logits batch shape, sample shape).
#: ``scales`` entries of ``"K"``/``"D"`` are filled with the case's K/D; a literal 1 broadcasts.
SHAPE_CASES = {
    # no batch dimensions, a sample dimension in front
    "unbatched": ((), ("K", "D"), (), (5,)),
    # the DESIGN example: locs (3,K,D), scales (K,D), logits (1,K), x (4,3,D)
    "broadcast": ((3,), ("K", "D"), (1,), (4,)),
    # scales shared by all components (K axis of size 1), two batch dims, no sample dims
    "shared_scales": ((2, 1), (1, "D"), (2, 3), ()),
}


def mixture_case(name, num_components, event_size, seed):
    """NumPy float64 test data for one shape case: ``dict(locs, scales, logits, x, component,
    noise, cotangent)``, ``x`` drawn from the mixture (so the Jacobian is well conditioned)."""
    rng = np.random.default_rng(seed)
    locs_batch, scales_kd, logits_batch, sample_shape = SHAPE_CASES[name]
    fill = {"K": num_components, "D": event_size}
    scales_shape = tuple(fill.get(s, s) for s in scales_kd)
    locs, scales, logits = random_parameters(
        rng, locs_batch + (num_components, event_size), scales_shape, logits_batch + (num_components,)
    )
    x, component, noise = sample_mixture(rng, locs, scales, logits, sample_shape)
    cotangent = rng.standard_normal(x.shape)
    return dict(locs=locs, scales=scales, logits=logits, x=x, component=component, noise=noise, cotangent=cotangent)
