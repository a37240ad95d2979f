r"""Exact means and variances of the estimators by quadrature (no Monte Carlo error).

An estimator that is a function of :math:`x` alone has mean :math:`\int q\,\hat g` and second
moment :math:`\int q\,\hat g^2`; one that also reads the draw (``uses_draw`` in
:data:`shared_math.ESTIMATORS`: the chosen component :math:`k` and its noise) is averaged
over :math:`k` given :math:`x`, which has probabilities :math:`r_k(x)` and noise
:math:`\varepsilon = z_k = (x-\mu_k)/\sigma_k`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import shared_math

from .estimators import pyro_gradient_at
from .mixtures import Mixture, draw, log_prob, per_sample_parameters, responsibilities
from .objectives import two_mode_problem


def quadrature_points(mixture: Mixture, grid_points: int):
    """``(points (grid_points², 2), cell area)``: a D = 2 grid covering every component to 11 scales."""
    axes = [
        np.linspace(
            (mixture.locs[:, d] - 11 * mixture.scales[:, d]).min(),
            (mixture.locs[:, d] + 11 * mixture.scales[:, d]).max(),
            grid_points,
        )
        for d in range(2)
    ]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    return points, (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])


#: A draw of component :math:`k` at a grid point where :math:`P(k\mid x) = r_k(x)` is below this is
#: left out: the locs/scales gradient of a draw-reading estimator (``hybrid``: :math:`g` and
#: :math:`g\,z_k`) is bounded by the cotangent times :math:`z_k`, so such a draw changes a
#: moment by less than 1e-16 of the same point's contribution through its likeliest component.
NEGLIGIBLE_PROBABILITY = 1e-20


def _conditional_draws(entry, mixture: Mixture, x: np.ndarray):
    """``[(selected points, P(k | x) there, one_hot, noise)]``: the draws consistent with ``x``
    that ``entry`` reads (one entry of probability 1 if it reads none)."""
    if not entry.uses_draw:
        return [(slice(None), 1.0, None, None)]
    resp = responsibilities(x, mixture)
    z = (x[:, None, :] - mixture.locs) / mixture.scales
    eye = np.eye(mixture.num_components)
    draws = []
    for k in range(mixture.num_components):
        selected = resp[:, k] >= NEGLIGIBLE_PROBABILITY
        if selected.any():
            draws.append(
                (
                    selected,
                    resp[selected, k],
                    np.broadcast_to(eye[k], (int(selected.sum()), eye.shape[0])),
                    z[selected, k, :],
                )
            )
    return draws


def quadrature_variances(mixture: Mixture, objective, grid_points: int = 601, chunk: int = 20000) -> dict:
    """Exact per-sample variances ``{(estimator, group): value}`` (summed over the group's
    entries) of every estimator of :data:`shared_math.ESTIMATORS` for locs and scales, at D = 2."""
    points, cell = quadrature_points(mixture, grid_points)
    first = {name: [0.0, 0.0] for name in shared_math.ESTIMATORS}
    second = {name: [0.0, 0.0] for name in shared_math.ESTIMATORS}
    for start in range(0, points.shape[0], chunk):
        x = points[start : start + chunk]
        weights = np.exp(log_prob(x, mixture)) * cell
        _, cotangent = objective.value_and_grad(x)
        for name, entry in shared_math.ESTIMATORS.items():
            for selected, probability, one_hot, noise in _conditional_draws(entry, mixture, x):
                weighted = weights[selected] * probability
                parameters = per_sample_parameters(mixture, weighted.shape[0])
                gradients = shared_math.sample_vjp(
                    name, x[selected], *parameters, one_hot, noise, cotangent[selected], **mixture.options
                )
                for i in range(2):
                    first[name][i] = first[name][i] + np.tensordot(weighted, gradients[i], axes=(0, 0))
                    second[name][i] += float(weighted @ (gradients[i] ** 2).reshape(weighted.shape[0], -1).sum(-1))
    return {
        (name, group): float(second[name][i] - (first[name][i] ** 2).sum())
        for name in shared_math.ESTIMATORS
        for i, group in enumerate(("locs", "scales"))
    }


def implicit_and_pyro_moments(mixture: Mixture, objective, grid_points: int = 601, chunk: int = 20000):
    r"""``(means, implicit second moments)`` at D = 2: ``means[name][i]`` for ``implicit`` and
    ``pyro`` and each group :math:`i`; both estimators are functions of :math:`x` alone.
    Pyro's is linear in the cotangent, so its grid sum is folded into the cotangent
    :math:`g(x)\,q(x)\,\Delta A`."""
    points, cell = quadrature_points(mixture, grid_points)
    first = {"implicit": [0.0, 0.0, 0.0], "pyro": [0.0, 0.0, 0.0]}
    second = [0.0, 0.0, 0.0]
    for start in range(0, points.shape[0], chunk):
        x = points[start : start + chunk]
        weights = np.exp(log_prob(x, mixture)) * cell
        _, cotangent = objective.value_and_grad(x)
        implicit = shared_math.implicit_vjp(x, *per_sample_parameters(mixture, x.shape[0]), cotangent)
        pyro = pyro_gradient_at(mixture, x, cotangent * weights[:, None])
        for i in range(3):
            first["implicit"][i] = first["implicit"][i] + np.tensordot(weights, implicit[i], axes=(0, 0))
            second[i] = second[i] + np.tensordot(weights, implicit[i] ** 2, axes=(0, 0))
            first["pyro"][i] = first["pyro"][i] + pyro[i]
    return first, second


@dataclass
class SeparationResult:
    separation: float
    exact: float  # d ELBO / d logits[0]
    std: dict  # estimator -> per-sample standard deviation (exact, by quadrature)
    mc_std_implicit: float  # Monte Carlo estimate of the implicit std from mc_samples draws
    signal_mass: float  # probability of the region that carries half the implicit signal


def separation_profile(separation: float, mc_samples: int = 16384, grid_points: int = 40001, seed: int = 0):
    r"""Exact (quadrature) mean and per-sample spread of the ``logits[0]`` ELBO gradient estimators
    on :func:`~benchmarks.variance.objectives.two_mode_problem`.

    In 1-D every estimator except the plain score function is a function of :math:`x`
    alone, so its mean and variance are integrals against :math:`q(x)`, done on a grid of
    ``grid_points`` points over :math:`[-\Delta/2-12, \Delta/2+12]`; the plain score
    function adds the sum over the component :math:`k`.  Baseline: :math:`E[h]`, the limit
    of the leave-one-out baseline.  ``mc_std_implicit`` is what a Monte Carlo estimate from
    ``mc_samples`` draws reports instead (heavy tails make it too small).
    """
    guide, objective = two_mode_problem(separation)
    grid = np.linspace(-0.5 * separation - 12.0, 0.5 * separation + 12.0, grid_points)
    x = grid[:, None]
    values, cotangent = objective.value_and_grad(x)
    step = grid[1] - grid[0]
    weights = np.exp(log_prob(x, guide)) * step  # quadrature weights of E_q[.]
    probs = guide.probs
    _, _, implicit_logits = shared_math.implicit_vjp(x, *per_sample_parameters(guide, grid_points), cotangent)
    implicit = implicit_logits[:, 0]
    exact = float(weights @ implicit)
    # The same gradient by the score identity: E[h (r_0 - pi_0)].
    resp = responsibilities(x, guide)
    exact_by_score = float(weights @ (values * (resp[:, 0] - probs[0])))
    if not math.isclose(exact, exact_by_score, rel_tol=1e-4, abs_tol=1e-9):
        raise AssertionError(f"quadrature mismatch at separation {separation}: {exact} vs {exact_by_score}")
    centred = values - weights @ values
    component_weights = [  # q_k(x) dx, from the component alone
        np.exp(shared_math.log_prob(x, guide.locs[k : k + 1], guide.scales[k : k + 1], np.zeros(1))) * step
        for k in range(2)
    ]
    second_moments = {
        "implicit": weights @ implicit**2,
        "score_rb": weights @ (centred * (resp[:, 0] - probs[0])) ** 2,
        "score": sum(probs[k] * component_weights[k] @ (centred * ((k == 0) - probs[0])) ** 2 for k in range(2)),
    }
    std = {name: math.sqrt(max(moment - exact**2, 0.0)) for name, moment in second_moments.items()}
    # Probability of the region holding half the signal: largest |implicit| first.
    order = np.argsort(-np.abs(implicit))
    cumulative_signal = np.cumsum((weights * implicit)[order])
    half = np.searchsorted(np.abs(cumulative_signal) >= 0.5 * abs(exact), True) if exact != 0 else 0
    signal_mass = float(weights[order][: half + 1].sum())
    draws = draw(guide, mc_samples, np.random.default_rng(seed))
    _, mc_cotangent = objective.value_and_grad(draws.x)
    mc_implicit = shared_math.implicit_vjp(draws.x, *per_sample_parameters(guide, mc_samples), mc_cotangent)[2][:, 0]
    return SeparationResult(separation, exact, std, float(mc_implicit.std(ddof=1)), signal_mass)
