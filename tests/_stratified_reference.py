r"""Quadrature references for the ``Stratified_ELBO`` tests (NumPy/SciPy float64, no ``shared_math``).

Everything here integrates against the *density* of the guide on a uniform grid (the
trapezoid rule), never through the stratification identity that the code under test uses:

* ``elbo_1d``: :math:`\int q(z)\,[\log p(y, z) - \log q(z)]\,dz` for a 1-D mixture guide;
* ``elbo_gradient_1d``: its gradient with respect to ``locs``, ``scales`` and ``logits`` by
  central finite differences of ``elbo_1d`` (step :math:`10^{-5}`; the quadrature is smooth
  in the parameters, so the error is :math:`O(10^{-9})`);
* ``two_site_elbo``: the ELBO of a guide with two *dependent* mixture sites,
  :math:`q(z_1)\,q(z_2\mid z_1)`, on a 2-D grid;
* ``log_evidence_1d``: :math:`\log\int p(y, z)\,dz`;
* ``siwae_one_draw_1d``: the SIWAE bound with one draw per component of a :math:`K = 2`
  guide, :math:`E_{z_1\sim q_1, z_2\sim q_2}[\log\sum_k\pi_k p(y,z_k)/q(z_k)]`, on a 2-D grid.

Test problems:

* ``ONE_D``: :math:`z\sim N(0.2, 1)`, :math:`y\sim N(z^2, 0.3^2)`, :math:`y = 1`: two overlapping
  posterior modes near :math:`\pm1`; guide :math:`K = 2`.
* ``TWO_SITES``: :math:`z_1\sim N(0,1)`, :math:`z_2\mid z_1\sim N(z_1, 1)`,
  :math:`y\sim N(z_1 + z_2, 0.5^2)`, :math:`y = 0.7`; guide :math:`z_1\sim` mixture,
  :math:`z_2\mid z_1\sim` mixture with locations :math:`a z_1 + b_k` and logits
  :math:`c z_1 (1, -1)`, so the second site's weights depend on the first site's draw.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm

ONE_D = {
    "prior_loc": 0.2,
    "noise": 0.3,
    "observed": 1.0,
    "locs": np.array([[-1.0], [1.1]]),
    "scales": np.array([[0.3], [0.25]]),
    "logits": np.array([0.3, -0.2]),
}

TWO_SITES = {
    "observed": 0.7,
    "noise": 0.5,
    "locs1": np.array([[-0.6], [0.5]]),
    "scales1": np.array([[0.5], [0.6]]),
    "logits1": np.array([0.4, -0.1]),
    "slope": 0.4,
    "offsets2": np.array([-0.3, 0.5]),
    "scales2": np.array([0.7, 0.5]),
    "logit_slope": 0.8,
}

_GRID = np.linspace(-8.0, 8.0, 32001)


def _trapezoid(values, grid, axis=-1):
    return np.trapezoid(values, grid, axis=axis)


def one_d_log_joint(z, problem=ONE_D):
    return norm.logpdf(z, problem["prior_loc"], 1.0) + norm.logpdf(problem["observed"], z**2, problem["noise"])


def mixture_log_density_1d(z, locs, scales, logits):
    r""":math:`\log\sum_k\pi_k N(z; \mu_k, \sigma_k^2)` on 1-D points ``z``."""
    log_weights = logits - logsumexp(logits)
    return logsumexp(log_weights[:, None] + norm.logpdf(z[None, :], locs[:, 0, None], scales[:, 0, None]), axis=0)


def elbo_1d(locs, scales, logits, log_joint=one_d_log_joint):
    log_q = mixture_log_density_1d(_GRID, locs, scales, logits)
    return float(_trapezoid(np.exp(log_q) * (log_joint(_GRID) - log_q), _GRID))


def log_evidence_1d(log_joint=one_d_log_joint):
    values = log_joint(_GRID)
    peak = values.max()
    return float(peak + np.log(_trapezoid(np.exp(values - peak), _GRID)))


def elbo_gradient_1d(locs, scales, logits, log_joint=one_d_log_joint, step=1e-5):
    """``{"locs", "scales", "logits"}`` gradients of :func:`elbo_1d` by central differences."""
    params = {"locs": np.array(locs, float), "scales": np.array(scales, float), "logits": np.array(logits, float)}
    gradients = {}
    for name, value in params.items():
        gradient = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = {}
            for sign in (1.0, -1.0):
                moved = {key: array.copy() for key, array in params.items()}
                moved[name][index] += sign * step
                shifted[sign] = elbo_1d(moved["locs"], moved["scales"], moved["logits"], log_joint)
            gradient[index] = (shifted[1.0] - shifted[-1.0]) / (2 * step)
        gradients[name] = gradient
    return gradients


def two_site_elbo(problem=TWO_SITES, points=801):
    r""":math:`E_{q(z_1)q(z_2|z_1)}[\log p(y,z_1,z_2) - \log q(z_1) - \log q(z_2\mid z_1)]` on a 2-D grid."""
    grid = np.linspace(-7.0, 7.0, points)
    z1, z2 = grid[:, None], grid[None, :]
    log_q1 = mixture_log_density_1d(grid, problem["locs1"], problem["scales1"], problem["logits1"])[:, None]
    logits2 = problem["logit_slope"] * z1[..., None] * np.array([1.0, -1.0])  # (G, 1, 2)
    log_weights2 = logits2 - logsumexp(logits2, axis=-1, keepdims=True)
    locs2 = problem["slope"] * z1[..., None] + problem["offsets2"]  # (G, 1, 2)
    log_q2 = logsumexp(log_weights2 + norm.logpdf(z2[..., None], locs2, problem["scales2"]), axis=-1)
    log_p = (
        norm.logpdf(z1, 0.0, 1.0)
        + norm.logpdf(z2, z1, 1.0)
        + norm.logpdf(problem["observed"], z1 + z2, problem["noise"])
    )
    log_q = log_q1 + log_q2
    integrand = np.exp(log_q) * (log_p - log_q)
    return float(_trapezoid(_trapezoid(integrand, grid, axis=1), grid))


def siwae_one_draw_1d(locs, scales, logits, log_joint=one_d_log_joint, points=2001):
    r""":math:`E[\log(\pi_1 w(z_1) + \pi_2 w(z_2))]`, :math:`z_k\sim N(\mu_k,\sigma_k^2)` independent,
    :math:`w = p(y, z)/q(z)` with :math:`q` the mixture (2-D trapezoid rule, :math:`K = 2` only)."""
    log_weights = logits - logsumexp(logits)
    grids, log_densities, log_terms = [], [], []
    for k in range(2):
        grid = np.linspace(locs[k, 0] - 10 * scales[k, 0], locs[k, 0] + 10 * scales[k, 0], points)
        grids.append(grid)
        log_densities.append(norm.logpdf(grid, locs[k, 0], scales[k, 0]))
        log_terms.append(log_weights[k] + log_joint(grid) - mixture_log_density_1d(grid, locs, scales, logits))
    integrand = np.exp(log_densities[0][:, None] + log_densities[1][None, :]) * np.logaddexp(
        log_terms[0][:, None], log_terms[1][None, :]
    )
    return float(_trapezoid(_trapezoid(integrand, grids[1], axis=1), grids[0]))
