r"""Objectives :math:`h(x)` of the study: value, cotangent :math:`g = \partial h/\partial x`, and
the exact gradient :math:`\nabla_\theta E_{q_\theta}[h]` where it has a closed form.

``value_and_grad(x)`` returns ``(h (N,), g (N, D))``; ``exact_gradient(mixture)`` returns
``(locs (K, D), scales (K, D), logits (K))`` or ``None``.  Every expectation is
:math:`E[h] = \sum_k\pi_k E_k[h]`, so :math:`\partial/\partial\ell_k = \pi_k(E_k - \sum_j\pi_jE_j)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import gammaln, kve, loggamma, psi

from .mixtures import Mixture, log_prob_and_grad


def log_characteristic_function(t: np.ndarray, family: str, shape_params: tuple = ()):
    r"""``(log φ(t), d/dt log φ(t))`` of the standardized ``family``, :math:`\varphi(t) = E[e^{it\varepsilon}]`.

    * normal: :math:`-t^2/2`;
    * laplace: :math:`\varphi = 1/(1+t^2)`;
    * student_t (:math:`\nu`, :math:`v = \nu/2`, :math:`a = \sqrt\nu|t|`):
      :math:`\varphi = a^vK_v(a)/(\Gamma(v)2^{v-1})`, and
      :math:`\tfrac{d}{dt}\log\varphi = -\sqrt\nu\,\operatorname{sign}(t)K_{v-1}(a)/K_v(a)`
      (from :math:`(a^vK_v)' = -a^vK_{v-1}`);
    * gumbel (maximum): :math:`\varphi = \Gamma(1-it)`, derivative :math:`-i\,\psi(1-it)` (complex).
    """
    if family == "normal":
        return -0.5 * t * t, -t
    if family == "laplace":
        return -np.log1p(t * t), -2.0 * t / (1.0 + t * t)
    if family == "student_t":
        (df,) = shape_params
        order = 0.5 * df
        a = math.sqrt(df) * np.abs(t)
        safe = np.where(a > 0, a, 1.0)
        log_phi = (
            order * np.log(safe) + np.log(kve(order, safe)) - safe - gammaln(order) - (order - 1.0) * math.log(2.0)
        )
        slope = -math.sqrt(df) * np.sign(t) * kve(order - 1.0, safe) / kve(order, safe)
        return np.where(a > 0, log_phi, 0.0), np.where(a > 0, slope, 0.0)
    if family == "gumbel":
        return loggamma(1.0 - 1j * t), -1j * psi(1.0 - 1j * t)
    raise ValueError(f"no characteristic function here for family {family!r} (normal, laplace, student_t, gumbel)")


@dataclass(frozen=True)
class Cosine:
    r""":math:`h(x) = \cos(\omega\cdot x)`; exact
    :math:`E_k[h] = \operatorname{Re}\big(e^{i\omega\cdot\mu_k}\prod_d\varphi(\omega_d\sigma_{kd})\big)`
    with :math:`\varphi` the standardized family's characteristic function (for the Normal
    :math:`\cos(\omega\cdot\mu_k)\,e^{-s_k^2/2}`, :math:`s_k^2 = \sum_d\omega_d^2\sigma_{kd}^2`)."""

    omega: np.ndarray
    name: str = "cosine"

    def value_and_grad(self, x):
        phase = x @ self.omega
        return np.cos(phase), -np.sin(phase)[:, None] * self.omega

    def _component_terms(self, mixture: Mixture):
        r"""``(A_k, d/dt log φ(ω_d σ_kd))`` with :math:`E_k[h] = \operatorname{Re}A_k`."""
        log_phi, slope = log_characteristic_function(self.omega * mixture.scales, mixture.family, mixture.shape_params)
        return np.exp(1j * (mixture.locs @ self.omega) + log_phi.sum(-1)), slope

    def exact_value(self, mixture: Mixture) -> float:
        return float(mixture.probs @ self._component_terms(mixture)[0].real)

    def exact_gradient(self, mixture: Mixture):
        pi = mixture.probs
        amplitude, slope = self._component_terms(mixture)
        per_component = amplitude.real
        locs = pi[:, None] * (1j * amplitude[:, None] * self.omega).real
        scales = pi[:, None] * (amplitude[:, None] * slope * self.omega).real
        logits = pi * (per_component - pi @ per_component)
        return locs, scales, logits


@dataclass(frozen=True)
class Polynomial:
    r""":math:`h(x) = a\cdot x + \tfrac12\sum_d b_d x_d^2`; exact (Normal components)
    :math:`E_k[h] = a\cdot\mu_k + \tfrac12\sum_d b_d(\mu_{kd}^2+\sigma_{kd}^2)`."""

    linear: np.ndarray
    quadratic: np.ndarray
    name: str = "polynomial"

    def value_and_grad(self, x):
        value = x @ self.linear + 0.5 * (x * x) @ self.quadratic
        return value, self.linear + self.quadratic * x

    def exact_gradient(self, mixture: Mixture):
        if mixture.family != "normal":
            raise ValueError("Polynomial.exact_gradient is written for Normal components")
        pi = mixture.probs
        per_component = mixture.locs @ self.linear + 0.5 * (mixture.locs**2 + mixture.scales**2) @ self.quadratic
        locs = pi[:, None] * (self.linear + self.quadratic * mixture.locs)
        scales = pi[:, None] * self.quadratic * mixture.scales
        logits = pi * (per_component - pi @ per_component)
        return locs, scales, logits


@dataclass(frozen=True)
class Elbo:
    r"""SVI objective :math:`h(x) = \log p(x) - \log q(x)` for a fixed target mixture :math:`p`.

    :math:`q` is held fixed inside :math:`h` (the "sticking the landing" path estimator,
    Roeder et al. 2017): the omitted term :math:`-\partial_\theta\log q_\theta(x)` has mean
    zero, so every estimator here stays unbiased for :math:`\nabla_\theta\,\mathrm{ELBO}`.
    No closed-form gradient (the mixture entropy has none).
    """

    target: Mixture
    guide: Mixture
    name: str = "elbo"

    def value_and_grad(self, x):
        log_p, grad_p = log_prob_and_grad(x, self.target)
        log_q, grad_q = log_prob_and_grad(x, self.guide)
        return log_p - log_q, grad_p - grad_q

    def exact_gradient(self, mixture: Mixture):
        return None


OBJECTIVES = ("cosine", "polynomial", "elbo")


def make_objective(name: str, mixture: Mixture, seed: int):
    r"""The objective ``name`` (one of :data:`OBJECTIVES`) for ``mixture``, seeded.

    Scaled so that :math:`\|\partial h/\partial x\|` stays of order one at every D.
    """
    rng = np.random.default_rng(seed + 7919)
    event_size = mixture.event_size
    if name == "cosine":
        return Cosine(1.5 * rng.standard_normal(event_size) / math.sqrt(event_size))
    if name == "polynomial":
        return Polynomial(
            rng.standard_normal(event_size) / math.sqrt(event_size), np.full(event_size, 1.0 / math.sqrt(event_size))
        )
    if name == "elbo":
        # Target: the guide's components moved by 0.5 (RMS), 25 % wider, weights reversed.
        shift = 0.5 * rng.standard_normal(mixture.locs.shape) / math.sqrt(2 * event_size)
        target = replace(mixture, locs=mixture.locs + shift, scales=1.25 * mixture.scales, logits=-mixture.logits)
        return Elbo(target, mixture)
    raise ValueError(f"unknown objective {name!r}")


def swapped_coordinates(mixture: Mixture, objective):
    """The same D = 2 mixture and objective with the two coordinates exchanged (only the
    implicit gradient depends on the order of the coordinates)."""

    def swap(m):
        return replace(m, locs=m.locs[:, ::-1].copy(), scales=m.scales[:, ::-1].copy())

    if isinstance(objective, Cosine):
        return swap(mixture), Cosine(objective.omega[::-1].copy())
    if isinstance(objective, Polynomial):
        return swap(mixture), Polynomial(objective.linear[::-1].copy(), objective.quadratic[::-1].copy())
    return swap(mixture), Elbo(swap(objective.target), swap(mixture))


def two_mode_problem(separation: float, guide_probs=(0.5, 0.5), target_probs=(0.8, 0.2)):
    r"""1-D, K = 2: unit-scale components at :math:`\pm\Delta/2`; guide and target differ only in
    weights.  Returns ``(guide, Elbo(target, guide))``."""
    locs = np.array([[-0.5 * separation], [0.5 * separation]])
    guide = Mixture(locs, np.ones((2, 1)), np.log(np.asarray(guide_probs, dtype=float)))
    target = Mixture(locs, np.ones((2, 1)), np.log(np.asarray(target_probs, dtype=float)))
    return guide, Elbo(target, guide)


def leading_overlap_mixture(num_components: int, separation: float = 8.0, overlap_first: bool = True):
    r"""A constructed D = 2 mixture on which ``rao_blackwell`` gains nothing over ``hybrid``.

    Unit scales, equal weights; every component has the same mean in one coordinate (the
    first if ``overlap_first``, else the second) and the components are ``separation``
    apart in the other.  The objective :math:`h = \cos(1.5\,x_o)` depends on the overlapping
    coordinate :math:`x_o` only.  Then :math:`r_k(x)` is (almost) one-hot, so rao_blackwell =
    hybrid, while, when the overlapping coordinate comes first, the implicit gradient is
    :math:`\bar\mu_{k1} = w_{k1} g_1 = \pi_k g_1` (the cotangent of the later coordinate is 0,
    so the sweep carries nothing): locs variance ratio exactly :math:`1/\sum_k\pi_k^2 = K`.
    With the overlapping coordinate last, the implicit weights of that coordinate are the
    (one-hot) conditional weights and all three agree.  Returns ``(mixture, objective)``.
    """
    shifts = separation * np.arange(num_components)
    overlapping = np.zeros(num_components)
    columns = (overlapping, shifts) if overlap_first else (shifts, overlapping)
    mixture = Mixture(np.stack(columns, axis=1), np.ones((num_components, 2)), np.zeros(num_components))
    return mixture, Cosine(np.array([1.5, 0.0]) if overlap_first else np.array([0.0, 1.5]))
