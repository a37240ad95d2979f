r"""Brute-force float64 reference for full-covariance mixtures, independent of ``shared_math``.

Nothing here imports ``shared_math`` or uses whitened residuals.  Per point and per
component, the conditional :math:`p_k(x_d\mid x_{<d})` is taken from the covariance
:math:`\Sigma_k = L_kL_k^\top` by the Gaussian conditioning (Schur complement) formulas,

.. math::

    m_{kd} = \mu_{kd} + \Sigma_{d,<d}\Sigma_{<d,<d}^{-1}(x_{<d}-\mu_{<d}),\qquad
    s_{kd}^2 = \Sigma_{dd} - \Sigma_{d,<d}\Sigma_{<d,<d}^{-1}\Sigma_{<d,d},

(``torch.linalg.solve``), and the conditional weights from the marginal densities of
:math:`x_{<d}` (``torch.distributions.MultivariateNormal`` with ``covariance_matrix``):
:math:`w_{kd}\propto\pi_k N(x_{<d};\mu_{k,<d},\Sigma_{k,<d<d})`.  Then
:math:`T_d=\sum_kw_{kd}\Phi((x_d-m_{kd})/s_{kd})`, one Python step per dimension.

The implicit gradient takes the FULL per-sample Jacobians of :math:`T` with respect to
:math:`x` (:math:`D\times D`) and the parameters with ``torch.func.jacrev``, and solves the
triangular systems with ``torch.linalg.solve_triangular`` (Graves 2016, Eq. 6):
:math:`J^\top v=g,\ \bar\theta=-v^\top\partial T/\partial\theta`.  Only the lower triangle of
``scale_tril`` is a parameter: :math:`T` reads ``tril(scale_tril)``, so autodiff gives the
upper triangle a zero gradient.  All public functions take and return NumPy float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch

FLOAT = torch.float64
SQRT2 = math.sqrt(2.0)


def _t(array):
    return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=FLOAT)


def _n(tensor):
    return tensor.detach().numpy()


# ------------------------------------------------------------------------------------------
# Test data.
# ------------------------------------------------------------------------------------------


def random_scale_tril(rng, shape, *, condition=None, off_diagonal=0.5):
    r"""Random lower-triangular factors ``shape + (D,)`` (i.e. ``(..., D, D)``) with a positive diagonal.

    Default: diagonal :math:`\exp(N(-0.3, 0.3^2))`, strictly lower part :math:`N(0, s^2)` with
    :math:`s` = ``off_diagonal`` (0.5: strongly correlated covariances).  With ``condition`` :math:`c`: the Cholesky factor of
    :math:`U\operatorname{diag}(\lambda)U^\top` with :math:`U` a random orthogonal matrix and
    eigenvalues :math:`\lambda` log-spaced over :math:`[c^{-2}, 1]`, so that
    :math:`\kappa_2(L) = c`.
    """
    size = shape[-1]
    batch = tuple(shape[:-1])
    if condition is None:
        tril = np.tril(off_diagonal * rng.standard_normal(batch + (size, size)), k=-1)
        diagonal = np.exp(-0.3 + 0.3 * rng.standard_normal(batch + (size,)))
        return tril + diagonal[..., None] * np.eye(size)
    out = np.empty(batch + (size, size))
    for index in np.ndindex(*batch):
        basis, _ = np.linalg.qr(rng.standard_normal((size, size)))
        eigenvalues = np.logspace(-2 * math.log10(condition), 0, size)
        covariance = (basis * eigenvalues) @ basis.T
        out[index] = np.linalg.cholesky(0.5 * (covariance + covariance.T))
    return out


def random_mixture(rng, batch_shape, num_components, event_size, *, spread=1.5, condition=None, off_diagonal=0.5):
    """``(locs, scale_tril, logits)`` NumPy float64 of shapes ``batch + (K, D)``, ``batch + (K, D, D)``, ``batch + (K,)``."""
    locs = spread * rng.standard_normal(tuple(batch_shape) + (num_components, event_size))
    scale_tril = random_scale_tril(
        rng, tuple(batch_shape) + (num_components, event_size), condition=condition, off_diagonal=off_diagonal
    )
    logits = rng.standard_normal(tuple(batch_shape) + (num_components,))
    return locs, scale_tril, logits


def sample_mixture(rng, locs, scale_tril, logits, sample_shape=()):
    """Ancestral draws ``(x, component, noise)``, ``x = locs[k] + scale_tril[k] @ noise``."""
    locs, scale_tril, logits = (np.asarray(a, dtype=np.float64) for a in (locs, scale_tril, logits))
    num_components, event_size = locs.shape[-2:]
    batch = np.broadcast_shapes(locs.shape[:-2], scale_tril.shape[:-3], logits.shape[:-1])
    full = tuple(sample_shape) + tuple(batch)
    locs_b = np.broadcast_to(locs, full + (num_components, event_size))
    tril_b = np.broadcast_to(np.tril(scale_tril), full + (num_components, event_size, event_size))
    logits_b = np.broadcast_to(logits, full + (num_components,))
    probs = np.exp(logits_b - logits_b.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    uniform = rng.random(full)[..., None]
    component = np.minimum(np.sum(uniform > np.cumsum(probs, -1), -1), num_components - 1)
    noise = rng.standard_normal(full + (event_size,))
    chosen_locs = np.take_along_axis(locs_b, component[..., None, None], axis=-2)[..., 0, :]
    chosen_tril = np.take_along_axis(tril_b, component[..., None, None, None], axis=-3)[..., 0, :, :]
    return chosen_locs + np.einsum("...ij,...j->...i", chosen_tril, noise), component, noise


# ------------------------------------------------------------------------------------------
# One point, unbatched parameters.
# ------------------------------------------------------------------------------------------


def _conditionals(x, locs, scale_tril):
    """Per component and dimension: conditional means, sds and marginal log densities of x_<d."""
    covariance = torch.tril(scale_tril) @ torch.tril(scale_tril).transpose(-1, -2)
    num_components, size = locs.shape
    means, sds, log_marginals = [], [], []
    for d in range(size):
        mean_d, sd_d, log_marginal_d = [], [], []
        for k in range(num_components):
            cov = covariance[k]
            if d == 0:
                mean_d.append(locs[k, 0])
                sd_d.append(torch.sqrt(cov[0, 0]))
                log_marginal_d.append(torch.zeros((), dtype=FLOAT))
                continue
            block = cov[:d, :d]
            cross = cov[d, :d]
            gain = torch.linalg.solve(block, cross)
            mean_d.append(locs[k, d] + gain @ (x[:d] - locs[k, :d]))
            sd_d.append(torch.sqrt(cov[d, d] - gain @ cross))
            marginal = torch.distributions.MultivariateNormal(locs[k, :d], covariance_matrix=block)
            log_marginal_d.append(marginal.log_prob(x[:d]))
        means.append(torch.stack(mean_d))
        sds.append(torch.stack(sd_d))
        log_marginals.append(torch.stack(log_marginal_d))
    return torch.stack(means, -1), torch.stack(sds, -1), torch.stack(log_marginals, -1)


def single_transform(x, locs, scale_tril, logits):
    r""":math:`T(x)` (D,) of one point: :math:`T_d=\sum_kw_{kd}\Phi((x_d-m_{kd})/s_{kd})`."""
    means, sds, log_marginals = _conditionals(x, locs, scale_tril)
    log_w = torch.log_softmax(torch.log_softmax(logits, -1)[:, None] + log_marginals, 0)
    phi = 0.5 * torch.special.erfc(-((x - means) / sds) / SQRT2)
    return (torch.exp(log_w) * phi).sum(0)


def single_log_weights(x, locs, scale_tril, logits):
    """``(K, D)`` conditional log weights of one point."""
    _, _, log_marginals = _conditionals(x, locs, scale_tril)
    return torch.log_softmax(torch.log_softmax(logits, -1)[:, None] + log_marginals, 0)


def single_log_prob(x, locs, scale_tril, logits):
    covariance = torch.tril(scale_tril) @ torch.tril(scale_tril).transpose(-1, -2)
    per_component = torch.distributions.MultivariateNormal(locs, covariance_matrix=covariance).log_prob(x)
    return torch.logsumexp(torch.log_softmax(logits, -1) + per_component, -1)


# ------------------------------------------------------------------------------------------
# Batched wrappers.
# ------------------------------------------------------------------------------------------


def _flatten(x, locs, scale_tril, logits):
    x, locs, scale_tril, logits = map(_t, (x, locs, scale_tril, logits))
    num_components, size = locs.shape[-2:]
    scale_tril = scale_tril.expand(scale_tril.shape[:-3] + (num_components, size, size))
    shape = torch.broadcast_shapes(x.shape[:-1], locs.shape[:-2], scale_tril.shape[:-3], logits.shape[:-1])
    flat = (
        x.expand(shape + (size,)).reshape(-1, size),
        locs.expand(shape + (num_components, size)).reshape(-1, num_components, size),
        scale_tril.expand(shape + (num_components, size, size)).reshape(-1, num_components, size, size),
        logits.expand(shape + (num_components,)).reshape(-1, num_components),
    )
    return tuple(shape), flat


def _per_point(function, x, locs, scale_tril, logits):
    shape, flat = _flatten(x, locs, scale_tril, logits)
    out = torch.stack([function(*args) for args in zip(*flat)])
    return _n(out.reshape(shape + out.shape[1:]))


def log_prob(x, locs, scale_tril, logits):
    return _per_point(single_log_prob, x, locs, scale_tril, logits)


def distributional_transform(x, locs, scale_tril, logits):
    return _per_point(single_transform, x, locs, scale_tril, logits)


def conditional_log_weights(x, locs, scale_tril, logits):
    return _per_point(single_log_weights, x, locs, scale_tril, logits)


class Jacobians:
    r"""Per-point Jacobians of :math:`T`: ``x`` (N, D, D), ``locs`` (N, D, K, D), ``scale_tril``
    (N, D, K, D, D), ``logits`` (N, D, K), at the broadcast sample shape ``sample_shape``."""

    def __init__(self, x, locs, scale_tril, logits):
        self.sample_shape, flat = _flatten(x, locs, scale_tril, logits)
        jacobian = torch.func.jacrev(single_transform, argnums=(0, 1, 2, 3))
        rows = [jacobian(*args) for args in zip(*flat)]
        self.x, self.locs, self.scale_tril, self.logits = (torch.stack([r[i] for r in rows]) for i in range(4))


def _sum_to_shape(per_sample, shape):
    parameter = torch.zeros(shape, dtype=FLOAT, requires_grad=True)
    (total,) = torch.autograd.grad(parameter.expand(per_sample.shape), parameter, per_sample)
    return total


def implicit_vjp(x, locs, scale_tril, logits, cotangent, jacobians=None):
    """``(locs_bar, scale_tril_bar, logits_bar)`` by a triangular solve with the full Jacobian."""
    jac = Jacobians(x, locs, scale_tril, logits) if jacobians is None else jacobians
    shape = jac.sample_shape
    num_components, size = np.shape(locs)[-2:]
    g = _t(cotangent).expand(shape + (size,)).reshape(-1, size, 1)
    v = torch.linalg.solve_triangular(jac.x.transpose(-1, -2), g, upper=True)[..., 0]
    locs_bar = -torch.einsum("nd,ndke->nke", v, jac.locs)
    tril_bar = -torch.einsum("nd,ndkij->nkij", v, jac.scale_tril)
    logits_bar = -torch.einsum("nd,ndk->nk", v, jac.logits)
    tril_full = shape + (num_components, size, size)
    return (
        _n(_sum_to_shape(locs_bar.reshape(shape + (num_components, size)), np.shape(locs))),
        _n(_sum_to_shape(tril_bar.reshape(tril_full), np.shape(scale_tril))),
        _n(_sum_to_shape(logits_bar.reshape(shape + (num_components,)), np.shape(logits))),
    )


def implicit_jvp(x, locs, scale_tril, logits, locs_dot, scale_tril_dot, logits_dot, jacobians=None):
    r""":math:`\dot x=-J^{-1}(\partial T/\partial\theta)\dot\theta`, shape ``sample_shape + (D,)``."""
    jac = Jacobians(x, locs, scale_tril, logits) if jacobians is None else jacobians
    shape = jac.sample_shape
    num_components, size = np.shape(locs)[-2:]
    locs_dot = _t(locs_dot).expand(shape + (num_components, size)).reshape(-1, num_components, size)
    tril_dot = _t(scale_tril_dot).expand(shape + (num_components, size, size)).reshape(-1, num_components, size, size)
    logits_dot = _t(logits_dot).expand(shape + (num_components,)).reshape(-1, num_components)
    transform_dot = (
        torch.einsum("ndke,nke->nd", jac.locs, locs_dot)
        + torch.einsum("ndkij,nkij->nd", jac.scale_tril, tril_dot)
        + torch.einsum("ndk,nk->nd", jac.logits, logits_dot)
    )
    x_dot = -torch.linalg.solve_triangular(jac.x, transform_dot[..., None], upper=False)[..., 0]
    return _n(x_dot.reshape(shape + (size,)))


def per_sample_rao_blackwell_vjp(x, locs, scale_tril, logits, cotangent):
    r"""``(locs_bar, scale_tril_bar)`` of ``"rao_blackwell"`` by autograd of
    :math:`\sum_k\mathrm{sg}[r_k(x)]\,g\cdot(\mu_k + L_k\,\mathrm{sg}[\varepsilon_k])`, with
    :math:`\varepsilon_k` from ``torch.linalg.solve`` (general, not triangular) and
    :math:`r_k` from ``MultivariateNormal(covariance_matrix=...)``."""
    x, cotangent = _t(x), _t(cotangent)
    locs = _t(locs).requires_grad_(True)
    scale_tril = _t(scale_tril).requires_grad_(True)
    logits = _t(logits)
    with torch.no_grad():
        tril = torch.tril(scale_tril)
        covariance = tril @ tril.transpose(-1, -2)
        log_joint = torch.log_softmax(logits, -1) + torch.distributions.MultivariateNormal(
            locs, covariance_matrix=covariance
        ).log_prob(x[..., None, :])
        responsibilities = torch.softmax(log_joint, -1)
        eps = torch.linalg.solve(tril, (x[..., None, :] - locs)[..., None])[..., 0]
    moved = locs + torch.einsum("...kij,...kj->...ki", torch.tril(scale_tril), eps)
    objective = (responsibilities[..., None] * cotangent[..., None, :] * moved).sum()
    locs_bar, tril_bar = torch.autograd.grad(objective, (locs, scale_tril))
    return _n(locs_bar), _n(tril_bar)


# ------------------------------------------------------------------------------------------
# Exact expectation of the cosine objective.
# ------------------------------------------------------------------------------------------


def expected_cosine(omega, locs, scale_tril, logits):
    r""":math:`E[\cos(\omega\cdot x)] = \sum_k\pi_k\cos(\omega^\top\mu_k)\exp(-\tfrac12|L_k^\top\omega|^2)` (torch, differentiable)."""
    pi = torch.softmax(logits, -1)
    projected = torch.einsum("...kij,i->...kj", torch.tril(scale_tril), omega)
    return (pi * torch.cos(locs @ omega) * torch.exp(-0.5 * (projected**2).sum(-1))).sum(-1)


def exact_cosine_gradient(omega, locs, scale_tril, logits):
    """``(value, locs_grad, scale_tril_grad, logits_grad)`` of :func:`expected_cosine` (NumPy)."""
    params = [_t(a).requires_grad_(True) for a in (locs, scale_tril, logits)]
    value = expected_cosine(_t(omega), *params).sum()
    grads = torch.autograd.grad(value, params)
    return (_n(value),) + tuple(_n(g) for g in grads)


# ------------------------------------------------------------------------------------------
# The inverse of the distributional transform (the sampling path at fixed u).
# ------------------------------------------------------------------------------------------


def inverse_transform(u, locs, scale_tril, logits, *, steps=200):
    r""":math:`x = T^{-1}(u)` for one point ``u`` (D,) in :math:`(0,1)^D`, unbatched parameters, by
    bisection on each coordinate in turn (:math:`T_d` is increasing in :math:`x_d` and depends on
    :math:`x_{\le d}` only), with :func:`single_transform` (Schur-complement conditionals).
    Float64 to about 1e-14 (``steps`` halvings of a bracket of width 200 sds)."""
    u, locs, scale_tril, logits = map(_t, (u, locs, scale_tril, logits))
    size = locs.shape[-1]
    spread = float(torch.tril(scale_tril).abs().sum(-1).max()) + float(locs.abs().max())
    x = torch.zeros(size, dtype=FLOAT)
    for d in range(size):
        low, high = -100.0 * spread, 100.0 * spread
        for _ in range(steps):
            middle = 0.5 * (low + high)
            trial = x.clone()
            trial[d] = middle
            value = single_transform(trial[: d + 1], locs[:, : d + 1], scale_tril[:, : d + 1, : d + 1], logits)[d]
            if value < u[d]:
                low = middle
            else:
                high = middle
            if high - low <= 1e-15 * max(1.0, abs(middle)):
                break
        x[d] = 0.5 * (low + high)
    return _n(x)
