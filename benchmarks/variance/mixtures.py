r"""The study's mixtures and their draws; every density and responsibility comes from ``shared_math``.

A :class:`Mixture` holds ``locs`` :math:`\mu` (K, D), ``scales`` :math:`\sigma` (K, D),
``logits`` :math:`\ell` (K) and a component family of :data:`shared_math.FAMILIES` with its
(scalar) shape parameters.  Draws are ancestral: :math:`k\sim\pi`, :math:`\varepsilon` from
the standardized family in ``scipy.stats``, :math:`x = \mu_k + \sigma_k\varepsilon`
(:func:`shared_math.sample_from_noise`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import scipy.stats
from scipy.special import softmax

import shared_math

#: The standardized family of each :data:`shared_math.FAMILIES` name in ``scipy.stats``
#: (called with the shape parameters), for the noise :math:`\varepsilon`.
SCIPY_FAMILIES = {
    "normal": scipy.stats.norm,
    "logistic": scipy.stats.logistic,
    "laplace": scipy.stats.laplace,
    "cauchy": scipy.stats.cauchy,
    "gumbel": scipy.stats.gumbel_r,
    "student_t": scipy.stats.t,
}


@dataclass(frozen=True)
class Mixture:
    """``locs``/``scales`` (K, D), ``logits`` (K); ``family`` and its scalar ``shape_params`` (e.g. ``(3.0,)`` for ``student_t``)."""

    locs: np.ndarray
    scales: np.ndarray
    logits: np.ndarray
    family: str = "normal"
    shape_params: tuple = ()

    @property
    def num_components(self) -> int:
        return self.locs.shape[0]

    @property
    def event_size(self) -> int:
        return self.locs.shape[1]

    @property
    def probs(self) -> np.ndarray:
        return softmax(self.logits, axis=-1)

    @property
    def options(self) -> dict:
        """The ``family=``/``shape_params=`` keywords of every ``shared_math`` call."""
        return {
            "family": self.family,
            "shape_params": tuple(np.asarray(value, dtype=np.float64) for value in self.shape_params),
        }

    def with_family(self, family: str, shape_params: tuple = ()) -> Mixture:
        return replace(self, family=family, shape_params=tuple(shape_params))

    def noise_distribution(self):
        """The standardized family as a frozen ``scipy.stats`` distribution."""
        return SCIPY_FAMILIES[self.family](*self.shape_params)


def make_mixture(num_components: int, event_size: int, separation: float, seed: int) -> Mixture:
    r"""A seeded random Normal mixture whose component means are ``separation`` apart (RMS).

    :math:`\mu_{kd} = \Delta\,\xi_{kd}/\sqrt{2D}` with :math:`\xi\sim N(0,1)`, so that
    :math:`E\|\mu_k-\mu_j\|^2 = \Delta^2` whatever the dimension;
    :math:`\sigma_{kd} = \exp(0.2\,\eta_{kd})` (scales near 1) and :math:`\ell_k = 0.5\,\zeta_k`.
    Other families: :meth:`Mixture.with_family` (same parameters).
    """
    rng = np.random.default_rng(seed)
    locs = separation * rng.standard_normal((num_components, event_size)) / math.sqrt(2 * event_size)
    scales = np.exp(0.2 * rng.standard_normal((num_components, event_size)))
    logits = 0.5 * rng.standard_normal(num_components)
    return Mixture(locs, scales, logits)


def log_prob(x: np.ndarray, mixture: Mixture) -> np.ndarray:
    r""":math:`\log q(x)`, shape (N,) (:func:`shared_math.log_prob`)."""
    return shared_math.log_prob(x, mixture.locs, mixture.scales, mixture.logits, **mixture.options)


def responsibilities(x: np.ndarray, mixture: Mixture) -> np.ndarray:
    r""":math:`r_k(x) = \pi_k q_k(x) / q(x)`, shape (N, K) (:func:`shared_math.responsibilities`)."""
    return shared_math.responsibilities(x, mixture.locs, mixture.scales, mixture.logits, **mixture.options)


def log_prob_and_grad(x: np.ndarray, mixture: Mixture) -> tuple[np.ndarray, np.ndarray]:
    r"""``(log q(x), ∇_x log q(x))``, with :math:`\nabla_x\log q = -\sum_k r_k(x)\,(-\psi(z_k))/\sigma_k`,
    :math:`-\psi` the family's ``neg_score`` (for the Normal :math:`\sum_k r_k(\mu_k-x)/\sigma_k^2`)."""
    options = mixture.options
    z = (x[:, None, :] - mixture.locs) / mixture.scales
    neg_score = shared_math.get_family(mixture.family).neg_score(z, options["shape_params"], np)
    grad = -np.einsum("nk,nkd->nd", responsibilities(x, mixture), neg_score / mixture.scales)
    return log_prob(x, mixture), grad


@dataclass(frozen=True)
class Draws:
    """One batch of ancestral draws: ``component`` (N,), ``one_hot`` (N, K), ``noise`` and ``x`` (N, D)."""

    component: np.ndarray
    one_hot: np.ndarray
    noise: np.ndarray
    x: np.ndarray


def draw(mixture: Mixture, num_samples: int, rng: np.random.Generator) -> Draws:
    r"""``num_samples`` draws :math:`x = \mu_k + \sigma_k\varepsilon` via :func:`shared_math.sample_from_noise`
    (for the Normal, ``scipy.stats.norm.rvs`` returns ``rng.standard_normal`` exactly)."""
    component = rng.choice(mixture.num_components, size=num_samples, p=mixture.probs)
    one_hot = shared_math.one_hot(component, mixture.num_components, np.float64)
    noise = mixture.noise_distribution().rvs(size=(num_samples, mixture.event_size), random_state=rng)
    x = shared_math.sample_from_noise(mixture.locs, mixture.scales, one_hot, noise)
    return Draws(component, one_hot, noise, x)


def per_sample_parameters(mixture: Mixture, num_samples: int):
    """The parameters broadcast to an explicit leading sample axis (read-only views): a
    ``shared_math`` VJP sums to the parameters' shapes, so this keeps one gradient per sample."""
    num_components, event_size = mixture.locs.shape
    return (
        np.broadcast_to(mixture.locs, (num_samples, num_components, event_size)),
        np.broadcast_to(mixture.scales, (num_samples, num_components, event_size)),
        np.broadcast_to(mixture.logits, (num_samples, num_components)),
    )
