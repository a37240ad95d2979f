r"""The demo's inference problem: a posterior with four modes and an exact evidence.

Model (the same in Pyro and NumPyro; :math:`D=2` coordinates, independent a priori):

.. math::

    z_d \sim N(m, 1), \qquad y_d \mid z \sim N(z_d^2, s^2), \qquad d = 1, \dots, D,

with prior mean :math:`m=0.5`, noise scale :math:`s=0.5` and data :math:`y=(1, 1.2)`.  The
likelihood only sees :math:`z_d^2`, so each coordinate's posterior has two modes near
:math:`\pm\sqrt{y_d}`; the prior mean :math:`m>0` makes the positive mode heavier
(:math:`p(z_d>0\mid y)\approx 0.69` and :math:`0.71`), so a guide must learn *unequal*
mixture weights.  The joint posterior is the product of the two coordinates' posteriors and
has :math:`2^D=4` modes.

Because the coordinates are independent a priori and each :math:`y_d` depends on
:math:`z_d` only, the evidence factorizes,

.. math::

    \log p(y) = \sum_d \log \int N(z; m, 1)\, N(y_d; z^2, s^2)\, \mathrm dz,

and each factor is a 1-D integral, computed here by the trapezoid rule on a fine grid (the
integrand is smooth and negligible beyond :math:`|z|=10`).  For any guide :math:`q`,

.. math::

    \mathrm{KL}(q \,\|\, p(\cdot\mid y)) = \log p(y) - \mathrm{ELBO}(q),
    \qquad \mathrm{ELBO}(q) = E_q[\log p(y, z) - \log q(z)],

and the ELBO is estimated with many independent draws from :math:`q` (its standard error is
reported with it).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm

PRIOR_LOC = 0.5
NOISE_SCALE = 0.5
OBSERVED = np.array([1.0, 1.2])
NUM_COORDINATES = OBSERVED.shape[0]
NUM_MODES = 2**NUM_COORDINATES

_GRID = np.linspace(-10.0, 10.0, 40001)


def log_joint(z, y=OBSERVED):
    r""":math:`\log p(y, z)` for draws ``z`` of shape ``(..., D)`` (float64 NumPy)."""
    z = np.asarray(z, dtype=np.float64)
    per_coordinate = norm.logpdf(z, PRIOR_LOC, 1.0) + norm.logpdf(y, z**2, NOISE_SCALE)
    return per_coordinate.sum(axis=-1)


def _log_unnormalized_posterior(z, y_d):
    """``log N(z; m, 1) + log N(y_d; z², s²)`` of one coordinate on the points ``z``."""
    return norm.logpdf(z, PRIOR_LOC, 1.0) + norm.logpdf(y_d, z**2, NOISE_SCALE)


def log_evidence_per_coordinate(y=OBSERVED):
    r""":math:`\log\int N(z;m,1)N(y_d;z^2,s^2)\,\mathrm dz` for each ``d`` (trapezoid rule on
    :math:`[-10, 10]` with 40001 points)."""
    step = _GRID[1] - _GRID[0]
    result = []
    for y_d in np.atleast_1d(y):
        values = _log_unnormalized_posterior(_GRID, y_d)
        # Trapezoid rule in log space: half weight at both end points.
        log_weights = np.full_like(_GRID, math.log(step))
        log_weights[[0, -1]] += math.log(0.5)
        result.append(logsumexp(values + log_weights))
    return np.array(result)


def log_evidence(y=OBSERVED):
    r"""Exact :math:`\log p(y)` (the sum of :func:`log_evidence_per_coordinate`)."""
    return float(log_evidence_per_coordinate(y).sum())


def posterior_marginal_density(points, coordinate, y=OBSERVED):
    r"""Exact posterior density :math:`p(z_d\mid y)` of coordinate ``coordinate`` at ``points``."""
    y_d = y[coordinate]
    return np.exp(_log_unnormalized_posterior(np.asarray(points), y_d) - log_evidence_per_coordinate([y_d])[0])


def positive_mode_probability(coordinate, y=OBSERVED):
    r""":math:`p(z_d > 0 \mid y)`: the exact weight of the heavier (positive) mode."""
    positive = _GRID > 0
    density = posterior_marginal_density(_GRID, coordinate, y)
    step = _GRID[1] - _GRID[0]
    return float(density[positive].sum() * step)


def mode_locations(y=OBSERVED):
    r"""The :math:`2^D` sign patterns :math:`(\pm\sqrt{y_1}, \dots, \pm\sqrt{y_D})`, shape ``(2^D, D)``."""
    roots = np.sqrt(np.asarray(y, dtype=np.float64))
    signs = np.array(
        [
            [1.0 if (pattern >> d) & 1 == 0 else -1.0 for d in range(roots.shape[0])]
            for pattern in range(2 ** roots.shape[0])
        ]
    )
    return signs * roots


def mixture_marginal_density(points, locs, scales, weights, coordinate):
    r"""Density of coordinate ``coordinate`` under :math:`\sum_k \pi_k N(\mu_k, \operatorname{diag}\sigma_k^2)`:
    the 1-D mixture :math:`\sum_k \pi_k N(z; \mu_{kd}, \sigma_{kd}^2)` (``locs``/``scales`` ``(K, D)``)."""
    points = np.asarray(points)[:, None]
    densities = norm.pdf(points, locs[:, coordinate], scales[:, coordinate])
    return densities @ np.asarray(weights)


def kl_from_draws(draws, log_q):
    r"""``(KL estimate, standard error)`` from draws of :math:`q` and their :math:`\log q`.

    :math:`\mathrm{KL} = \log p(y) - \frac1M\sum_m [\log p(y, z_m) - \log q(z_m)]`; the standard
    error is the sample standard deviation of the bracket over :math:`\sqrt M`.
    """
    elbo_terms = log_joint(draws) - np.asarray(log_q, dtype=np.float64)
    kl = log_evidence() - float(elbo_terms.mean())
    standard_error = float(elbo_terms.std(ddof=1) / math.sqrt(elbo_terms.shape[0]))
    return kl, standard_error


class FittedGuide:
    """One fitted guide, as the demo's table and plot see it.

    ``locs``/``scales`` ``(K, D)`` and ``weights`` ``(K,)`` describe the guide as a diagonal
    Gaussian mixture (``K = 1`` for a Gaussian guide), in float64 NumPy.
    """

    def __init__(self, framework, name, steps, seconds, kl, kl_standard_error, locs, scales, weights):
        self.framework = framework
        self.name = name
        self.steps = steps
        self.seconds = seconds
        self.kl = kl
        self.kl_standard_error = kl_standard_error
        self.locs = np.asarray(locs, dtype=np.float64).reshape(-1, NUM_COORDINATES)
        self.scales = np.asarray(scales, dtype=np.float64).reshape(-1, NUM_COORDINATES)
        self.weights = np.asarray(weights, dtype=np.float64).reshape(-1)

    @property
    def num_components(self):
        return self.weights.shape[0]

    def positive_mode_probability(self, coordinate):
        r""":math:`q(z_d > 0) = \sum_k \pi_k \Phi(\mu_{kd}/\sigma_{kd})`."""
        return float(self.weights @ norm.cdf(self.locs[:, coordinate] / self.scales[:, coordinate]))

    def marginal_density(self, points, coordinate):
        return mixture_marginal_density(points, self.locs, self.scales, self.weights, coordinate)
