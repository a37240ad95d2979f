r"""Per-sample variance (and bias) of the sample-gradient estimators of a diagonal Gaussian mixture.

Project issue 7; results and the rule behind ``estimator="auto"`` are in ``docs/estimators.md``.

For a mixture :math:`q_\theta` with ``locs`` :math:`\mu` (K, D), ``scales`` :math:`\sigma`
(K, D) and ``logits`` :math:`\ell` (K) and an objective :math:`E_{x\sim q_\theta}[h(x)]`, every
estimator below draws a component :math:`k\sim\pi` and noise :math:`\varepsilon\sim N(0, I)`,
sets :math:`x = \mu_k + \sigma_k\varepsilon` (:func:`shared_math.sample_from_noise`), takes
the cotangent :math:`g = \partial h/\partial x` in closed form, and turns it into one
gradient per sample:

* ``implicit``: Graves' implicit gradient (his Eq. 6 made multivariate; the weights by his
  Eq. 22) for all parameters, :func:`shared_math.implicit_vjp`.
* ``hybrid``: the gradient through the chosen component,
  :math:`\bar\mu_k = g,\ \bar\sigma_k = g\varepsilon` (:func:`shared_math.estimators.chosen_component_vjp`),
  for ``locs``/``scales``, and the implicit gradient for ``logits``
  (:func:`shared_math.hybrid_vjp`).
* ``rao_blackwell``: the chosen-component gradient averaged over the component given
  :math:`x`, :math:`\bar\mu_k = r_k(x) g,\ \bar\sigma_k = r_k(x) z_k g`, and the implicit
  gradient for ``logits`` (:func:`shared_math.rao_blackwell_vjp`); its ``locs``/``scales``
  part is exactly what Pyro's ``MixtureOfDiagNormals`` uses for those parameters.  This is
  what ``estimator="auto"`` resolves to at every D (``shared_math.AUTO_ESTIMATOR``).
* ``score``: for ``logits`` only, the score-function (REINFORCE) estimator of the discrete
  choice, :math:`(h(x) - b)(e_k - \pi)`, with a leave-one-out baseline :math:`b` (the mean of
  :math:`h` over the other samples of the batch, so it stays unbiased); and ``score_rb``, its
  Rao-Blackwellisation over :math:`k` given :math:`x`, :math:`(h(x) - b)(r(x) - \pi)` with the
  responsibilities :math:`r_k(x) = \pi_k q_k(x)/q(x)`.
* ``pyro``: ``pyro.distributions.MixtureOfDiagNormals`` (Jankowiak & Karaletsos 2018,
  arXiv:1806.01856), per-sample gradients through its own ``rsample`` (D >= 2 only).

Per-sample gradients come from the shared_math VJPs, which sum over sample dimensions to
the parameters' shapes: the parameters are given an explicit leading sample axis
(``np.broadcast_to(locs, (N, K, D))``), so the "sum" keeps one gradient per sample.  The
reported variance of a parameter group is the per-sample variance summed over its entries,
:math:`\sum_{\text{entries}}\mathrm{Var}_n[\hat g_n]` (as in ``DESIGN.md`` §2).  Bias is
reported as z-scores :math:`(\bar{\hat g} - \nabla_\theta E[h]) / (s/\sqrt N)` against the
exact gradient where it is known in closed form (cosine and polynomial objectives), with
heavy-tailed entries flagged (their z-scores are not normal), and, at D = 2, without Monte
Carlo error by quadrature of each estimator against the density (:func:`quadrature_bias`).
The weight-gradient signal loss with separation is measured by quadrature in 1-D
(:func:`separation_profile`) and in SVI runs (:func:`svi_weight_trajectories`).  Beyond
the main grid's one mixture per configuration, :func:`robustness_grid` draws further random
mixtures, :func:`quadrature_variances` checks its worst D = 2 case without Monte Carlo error,
and :func:`leading_overlap_case` is a constructed mixture on which ``rao_blackwell`` is no
better than ``hybrid`` while ``implicit`` is K times better.

Run ``python benchmarks/variance_study.py`` (about 4-5 CPU-minutes; ``--quick`` for a smoke
run); it rewrites the generated blocks of ``docs/estimators.md`` and the figure
``docs/estimators_variance.png``.  ``main(argv)`` is the entry point for other scripts.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import logsumexp, softmax

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import shared_math  # noqa: E402

#: Event sizes, component counts and separations of the main study.
EVENT_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
COMPONENT_COUNTS = (2, 8)
#: RMS distance between two component means, in units of the (unit) component scale.
SEPARATIONS = {"mixed": 1.0, "separated": 8.0}
#: Samples per configuration of the main study (per-sample variances; all estimators
#: share the same draws).
NUM_SAMPLES = 4096
#: Groups of parameters, in the order of the VJP results.
GROUPS = ("locs", "scales", "logits")


# --------------------------------------------------------------------------- mixtures


@dataclass(frozen=True)
class Mixture:
    """Parameters of a diagonal Gaussian mixture: ``locs``/``scales`` (K, D), ``logits`` (K)."""

    locs: np.ndarray
    scales: np.ndarray
    logits: np.ndarray

    @property
    def num_components(self) -> int:
        return self.locs.shape[0]

    @property
    def event_size(self) -> int:
        return self.locs.shape[1]

    @property
    def probs(self) -> np.ndarray:
        return softmax(self.logits, axis=-1)


def make_mixture(num_components: int, event_size: int, separation: float, seed: int) -> Mixture:
    r"""A seeded random mixture whose component means are ``separation`` apart (RMS).

    :math:`\mu_{kd} = \Delta\,\xi_{kd}/\sqrt{2D}` with :math:`\xi\sim N(0,1)`, so that
    :math:`E\|\mu_k-\mu_j\|^2 = \Delta^2` whatever the dimension;
    :math:`\sigma_{kd} = \exp(0.2\,\eta_{kd})` (scales near 1) and :math:`\ell_k = 0.5\,\zeta_k`.
    """
    rng = np.random.default_rng(seed)
    locs = separation * rng.standard_normal((num_components, event_size)) / math.sqrt(2 * event_size)
    scales = np.exp(0.2 * rng.standard_normal((num_components, event_size)))
    logits = 0.5 * rng.standard_normal(num_components)
    return Mixture(locs, scales, logits)


def component_log_densities(x: np.ndarray, mixture: Mixture) -> np.ndarray:
    r""":math:`\log \pi_k + \log q_k(x)`, shape (N, K)."""
    z = (x[:, None, :] - mixture.locs) / mixture.scales
    log_normal = -0.5 * z * z - np.log(mixture.scales) - 0.5 * math.log(2 * math.pi)
    return np.log(mixture.probs) + log_normal.sum(-1)


def responsibilities(x: np.ndarray, mixture: Mixture) -> np.ndarray:
    r""":math:`r_k(x) = \pi_k q_k(x) / q(x)`, shape (N, K)."""
    joint = component_log_densities(x, mixture)
    return np.exp(joint - logsumexp(joint, axis=-1, keepdims=True))


def mixture_log_prob_and_grad(x: np.ndarray, mixture: Mixture) -> tuple[np.ndarray, np.ndarray]:
    r"""``(log q(x), ∇_x log q(x))``; :math:`\nabla_x\log q = \sum_k r_k(x)(\mu_k - x)/\sigma_k^2`."""
    joint = component_log_densities(x, mixture)
    log_q = logsumexp(joint, axis=-1)
    resp = np.exp(joint - log_q[:, None])
    grad = np.einsum("nk,nkd->nd", resp, (mixture.locs - x[:, None, :]) / mixture.scales**2)
    return log_q, grad


# --------------------------------------------------------------------------- objectives


@dataclass(frozen=True)
class Cosine:
    r""":math:`h(x) = \cos(\omega\cdot x)`; exact :math:`E_k[h] = \cos(\omega\cdot\mu_k)\,e^{-s_k^2/2}`,
    :math:`s_k^2 = \sum_d\omega_d^2\sigma_{kd}^2`."""

    omega: np.ndarray
    name: str = "cosine"

    def value_and_grad(self, x):
        phase = x @ self.omega
        return np.cos(phase), -np.sin(phase)[:, None] * self.omega

    def exact_gradient(self, mixture: Mixture):
        pi = mixture.probs
        damping = np.exp(-0.5 * (self.omega**2 * mixture.scales**2).sum(-1))  # (K,)
        phase = mixture.locs @ self.omega
        per_component = np.cos(phase) * damping
        locs = -(pi * np.sin(phase) * damping)[:, None] * self.omega
        scales = -(pi * per_component)[:, None] * self.omega**2 * mixture.scales
        logits = pi * (per_component - pi @ per_component)
        return locs, scales, logits


@dataclass(frozen=True)
class Polynomial:
    r""":math:`h(x) = a\cdot x + \tfrac12\sum_d b_d x_d^2`; exact
    :math:`E_k[h] = a\cdot\mu_k + \tfrac12\sum_d b_d(\mu_{kd}^2+\sigma_{kd}^2)`."""

    linear: np.ndarray
    quadratic: np.ndarray
    name: str = "polynomial"

    def value_and_grad(self, x):
        value = x @ self.linear + 0.5 * (x * x) @ self.quadratic
        return value, self.linear + self.quadratic * x

    def exact_gradient(self, mixture: Mixture):
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
        log_p, grad_p = mixture_log_prob_and_grad(x, self.target)
        log_q, grad_q = mixture_log_prob_and_grad(x, self.guide)
        return log_p - log_q, grad_p - grad_q

    def exact_gradient(self, mixture: Mixture):
        return None


def make_objective(name: str, mixture: Mixture, seed: int):
    """The objective ``name`` ("cosine", "polynomial", "elbo") for ``mixture``, seeded.

    Scaled so that :math:`\\|\\partial h/\\partial x\\|` stays of order one at every D.
    """
    rng = np.random.default_rng(seed + 7919)
    event_size = mixture.event_size
    if name == "cosine":
        return Cosine(1.5 * rng.standard_normal(event_size) / math.sqrt(event_size))
    if name == "polynomial":
        return Polynomial(rng.standard_normal(event_size) / math.sqrt(event_size), np.full(event_size, 1.0 / math.sqrt(event_size)))
    if name == "elbo":
        # Target: the guide's components moved by 0.5 (RMS), 25 % wider, weights reversed.
        shift = 0.5 * rng.standard_normal(mixture.locs.shape) / math.sqrt(2 * event_size)
        target = Mixture(mixture.locs + shift, 1.25 * mixture.scales, -mixture.logits)
        return Elbo(target, mixture)
    raise ValueError(f"unknown objective {name!r}")


OBJECTIVES = ("cosine", "polynomial", "elbo")


# --------------------------------------------------------------------------- per-sample gradients


@dataclass(frozen=True)
class Draws:
    """One batch of ancestral draws: ``component`` (N,), ``one_hot`` (N, K), ``noise`` and ``x`` (N, D)."""

    component: np.ndarray
    one_hot: np.ndarray
    noise: np.ndarray
    x: np.ndarray


def draw(mixture: Mixture, num_samples: int, rng: np.random.Generator) -> Draws:
    """``num_samples`` draws :math:`x = \\mu_k + \\sigma_k\\varepsilon` via :func:`shared_math.sample_from_noise`."""
    component = rng.choice(mixture.num_components, size=num_samples, p=mixture.probs)
    one_hot = shared_math.one_hot(component, mixture.num_components, np.float64)
    noise = rng.standard_normal((num_samples, mixture.event_size))
    x = shared_math.sample_from_noise(mixture.locs, mixture.scales, one_hot, noise)
    return Draws(component, one_hot, noise, x)


def per_sample_parameters(mixture: Mixture, num_samples: int):
    """The parameters broadcast to an explicit leading sample axis (read-only views)."""
    num_components, event_size = mixture.locs.shape
    return (
        np.broadcast_to(mixture.locs, (num_samples, num_components, event_size)),
        np.broadcast_to(mixture.scales, (num_samples, num_components, event_size)),
        np.broadcast_to(mixture.logits, (num_samples, num_components)),
    )


def implicit_per_sample(mixture: Mixture, draws: Draws, cotangent: np.ndarray):
    """Per-sample ``implicit`` gradients ``(locs (N,K,D), scales (N,K,D), logits (N,K))``."""
    locs, scales, logits = per_sample_parameters(mixture, draws.x.shape[0])
    return shared_math.implicit_vjp(draws.x, locs, scales, logits, cotangent)


def hybrid_per_sample(mixture: Mixture, draws: Draws, cotangent: np.ndarray, implicit_logits=None):
    """Per-sample ``hybrid`` gradients.

    ``implicit_logits``, when given, must be the implicit logits gradient of the same draws
    (the hybrid logits gradient is that same sweep, so the study reuses it instead of
    calling :func:`shared_math.hybrid_vjp` and sweeping twice; the test checks the two agree).
    """
    locs, scales, logits = per_sample_parameters(mixture, draws.x.shape[0])
    if implicit_logits is None:
        return shared_math.hybrid_vjp(draws.x, locs, scales, logits, draws.one_hot, draws.noise, cotangent)
    locs_bar, scales_bar = shared_math.estimators.chosen_component_vjp(draws.one_hot, draws.noise, cotangent, locs.shape, scales.shape)
    return locs_bar, scales_bar, implicit_logits


def rao_blackwell_per_sample(mixture: Mixture, draws: Draws, cotangent: np.ndarray):
    r"""Per-sample ``rao_blackwell`` gradients (:func:`shared_math.rao_blackwell_vjp`).

    :math:`\bar\mu_k = r_k(x)\,g` and :math:`\bar\sigma_k = r_k(x)\,z_k(x)\,g`: the conditional
    expectation of ``hybrid``'s chosen-component gradient given :math:`x` (never noisier), and
    exactly what ``pyro.distributions.MixtureOfDiagNormals`` returns for ``locs`` and
    ``coord_scale``; ``logits`` as ``implicit``.  Returns ``(locs, scales, logits)``.
    """
    locs, scales, logits = per_sample_parameters(mixture, draws.x.shape[0])
    return shared_math.rao_blackwell_vjp(draws.x, locs, scales, logits, cotangent)


def leave_one_out_mean(values: np.ndarray) -> np.ndarray:
    """``b_n`` = mean of ``values`` without entry ``n`` (a baseline independent of sample ``n``)."""
    return (values.sum() - values) / (values.shape[0] - 1)


def score_function_logits(mixture: Mixture, draws: Draws, values: np.ndarray, rao_blackwell: bool = False):
    r"""Per-sample score-function logits gradient :math:`(h(x_n) - b_n)(e_{k_n} - \pi)`, shape (N, K).

    With ``rao_blackwell``, :math:`e_{k_n}` is replaced by its conditional expectation
    given :math:`x_n`, the responsibilities :math:`r(x_n)`.
    """
    indicator = responsibilities(draws.x, mixture) if rao_blackwell else draws.one_hot
    return (values - leave_one_out_mean(values))[:, None] * (indicator - mixture.probs)


def pyro_per_sample(mixture: Mixture, objective, num_samples: int, seed: int, chunk: int = 512):
    """Per-sample gradients of ``pyro.distributions.MixtureOfDiagNormals`` (D >= 2).

    Its parameters are given a batch axis of size N and one sample is drawn per batch
    entry, so ``.grad`` holds one gradient per sample.  Its backward pass is O(N·K²·D), so
    the batch is processed in chunks.  Returns ``(locs, scales, logits)`` gradients.
    """
    import torch
    from pyro.distributions import MixtureOfDiagNormals

    torch.manual_seed(seed)
    outputs = {group: [] for group in GROUPS}
    for start in range(0, num_samples, chunk):
        size = min(chunk, num_samples - start)
        leaves = [
            torch.tensor(array, dtype=torch.float64).expand((size,) + array.shape).clone().requires_grad_()
            for array in (mixture.locs, mixture.scales, mixture.logits)
        ]
        x = MixtureOfDiagNormals(*leaves).rsample()
        _, cotangent = objective.value_and_grad(x.detach().numpy())
        x.backward(torch.from_numpy(cotangent))
        for group, leaf in zip(GROUPS, leaves):
            outputs[group].append(leaf.grad.numpy())
    return tuple(np.concatenate(outputs[group]) for group in GROUPS)


def summed_variance(per_sample: np.ndarray) -> float:
    """Per-sample variance summed over the entries of a parameter group (``ddof=1``)."""
    return float(per_sample.reshape(per_sample.shape[0], -1).var(axis=0, ddof=1).sum())


def bias_z_scores(per_sample: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """z-scores of the Monte Carlo mean against ``exact``, one per entry (flattened)."""
    flat = per_sample.reshape(per_sample.shape[0], -1)
    standard_error = flat.std(axis=0, ddof=1) / math.sqrt(flat.shape[0])
    return (flat.mean(axis=0) - exact.reshape(-1)) / standard_error


#: An entry is "heavy-tailed" when its largest ``HEAVY_TAIL_FRACTION`` of squared deviations
#: carry more than ``HEAVY_TAIL_SHARE`` of their sum (at N = 4096, medians: 5 % for Gaussian
#: draws, 13 % for a product of two Gaussians, 24 % for Student-t(3), 37 % for a
#: lognormal(0, 1)).  Its z-score is then not approximately normal: the sample mean misses
#: rare large draws and the sample variance understates the true one, so |z| can be large
#: without any bias (see the quadrature check of ``quadrature_bias``).
HEAVY_TAIL_FRACTION = 0.005
HEAVY_TAIL_SHARE = 0.5


def tail_shares(per_sample: np.ndarray) -> np.ndarray:
    """Per entry: share of the summed squared deviations carried by the largest 0.5 % of draws."""
    flat = per_sample.reshape(per_sample.shape[0], -1)
    squared = np.sort((flat - flat.mean(axis=0)) ** 2, axis=0)
    top = max(1, int(round(HEAVY_TAIL_FRACTION * flat.shape[0])))
    total = squared.sum(axis=0)
    return np.where(total > 0, squared[-top:].sum(axis=0) / np.where(total > 0, total, 1.0), 0.0)


@dataclass(frozen=True)
class ZTest:
    """Bias z-scores of one parameter group: largest |z| over light- and over heavy-tailed entries."""

    light: float  # largest |z| among entries with a light tail (0 if none)
    heavy: float  # largest |z| among heavy-tailed entries (0 if none)
    num_heavy: int
    num_entries: int

    @property
    def threshold(self) -> float:
        return bonferroni_threshold(self.num_entries)


def z_test(per_sample: np.ndarray, exact: np.ndarray) -> ZTest:
    z = np.abs(bias_z_scores(per_sample, exact))
    heavy = tail_shares(per_sample) > HEAVY_TAIL_SHARE
    return ZTest(
        float(z[~heavy].max(initial=0.0)), float(z[heavy].max(initial=0.0)), int(heavy.sum()), int(z.size)
    )


def bonferroni_threshold(num_entries: int, family_error: float = 1e-3) -> float:
    """|z| that a family of ``num_entries`` unbiased z-scores exceeds with probability ``family_error``."""
    from scipy.special import ndtri

    return float(-ndtri(0.5 * family_error / num_entries))


def estimator_gradients(mixture: Mixture, objective, num_samples: int, seed: int, include_pyro: bool = True):
    """All estimators' per-sample gradients on one configuration.

    Returns ``{estimator: {group: array (N, ...)}}`` with estimators ``implicit``, ``hybrid``,
    ``rao_blackwell`` (locs/scales; its logits are ``implicit``'s), ``score``, ``score_rb`` (logits only) and ``pyro`` (when
    ``include_pyro`` and D >= 2).  All but ``pyro`` share the same draws.
    """
    rng = np.random.default_rng(seed)
    draws = draw(mixture, num_samples, rng)
    values, cotangent = objective.value_and_grad(draws.x)
    implicit = implicit_per_sample(mixture, draws, cotangent)
    hybrid = hybrid_per_sample(mixture, draws, cotangent, implicit_logits=implicit[2])
    results = {
        "implicit": dict(zip(GROUPS, implicit)),
        "hybrid": dict(zip(GROUPS, hybrid)),
        "rao_blackwell": dict(zip(("locs", "scales"), rao_blackwell_per_sample(mixture, draws, cotangent)[:2])),
        "score": {"logits": score_function_logits(mixture, draws, values)},
        "score_rb": {"logits": score_function_logits(mixture, draws, values, rao_blackwell=True)},
    }
    if include_pyro and mixture.event_size >= 2:
        results["pyro"] = dict(zip(GROUPS, pyro_per_sample(mixture, objective, num_samples, seed + 1)))
    return results


def default_estimator(event_size: int) -> str:
    """What ``estimator="auto"`` resolves to (:func:`shared_math.resolve_estimator`)."""
    return shared_math.resolve_estimator("auto")


def config_seed(*key) -> int:
    """A stable seed per configuration (independent of the order in which the study runs)."""
    return zlib.crc32("/".join(map(str, key)).encode())

# --------------------------------------------------------------------------- main study


@dataclass
class Row:
    """Result of one configuration: ``variance[estimator, group]`` and ``z_tests[estimator, group]``."""

    objective: str
    separation: str
    num_components: int
    event_size: int
    variance: dict = field(default_factory=dict)
    z_tests: dict = field(default_factory=dict)


def run_configuration(objective_name, separation_name, num_components, event_size, num_samples, pyro_samples=0, draw_seed=None):
    """One :class:`Row`: summed per-sample variances of every estimator and group, and the
    largest bias z-score where the exact gradient is known.  ``pyro_samples = 0`` skips Pyro.

    The mixture and objective are seeded by the configuration; the draws by ``draw_seed``
    (default: derived from the configuration too).
    """
    seed = config_seed(objective_name, separation_name, num_components, event_size)
    mixture = make_mixture(num_components, event_size, SEPARATIONS[separation_name], seed)
    objective = make_objective(objective_name, mixture, seed)
    draw_seed = seed + 1 if draw_seed is None else draw_seed
    gradients = estimator_gradients(mixture, objective, num_samples, draw_seed, include_pyro=False)
    if pyro_samples and event_size >= 2:
        gradients["pyro"] = dict(zip(GROUPS, pyro_per_sample(mixture, objective, pyro_samples, seed + 2)))
    exact = objective.exact_gradient(mixture)
    row = Row(objective_name, separation_name, num_components, event_size)
    for estimator, groups in gradients.items():
        for group, per_sample in groups.items():
            row.variance[estimator, group] = summed_variance(per_sample)
            if exact is not None:
                row.z_tests[estimator, group] = z_test(per_sample, exact[GROUPS.index(group)])
    return row


def run_study(num_samples, pyro_samples, event_sizes=EVENT_SIZES, component_counts=COMPONENT_COUNTS, objectives=OBJECTIVES, log=print):
    """The main grid: objectives × separations × K × D."""
    rows = []
    for objective_name in objectives:
        for separation_name in SEPARATIONS:
            for num_components in component_counts:
                for event_size in event_sizes:
                    start = time.perf_counter()
                    rows.append(
                        run_configuration(objective_name, separation_name, num_components, event_size, num_samples, pyro_samples)
                    )
                    log(f"  {objective_name} {separation_name} K={num_components} D={event_size}: {time.perf_counter() - start:.2f} s")
    return rows


def worst_ratio(rows, estimator, group, event_size, separation=None):
    """Largest ``variance[estimator] / min(variance[implicit], variance[hybrid])`` over ``rows`` at ``event_size``."""
    ratios = [
        row.variance[estimator, group] / min(row.variance["implicit", group], row.variance["hybrid", group])
        for row in rows
        if row.event_size == event_size and (separation is None or row.separation == separation)
    ]
    return max(ratios)


def crossover_grid(num_samples, separations=(0.5, 1, 2, 3, 4, 6, 8), event_sizes=(1, 2, 4, 8), objectives=("cosine", "elbo")):
    """``{(objective, K, D): [implicit/hybrid variance ratio of locs+scales, per separation]}``.

    Along a row only the separation changes: the same seeded mixture (means scaled by Δ),
    objective and draws.
    """
    ratios = {}
    for objective_name in objectives:
        for num_components in COMPONENT_COUNTS:
            for event_size in event_sizes:
                values = []
                for separation in separations:
                    seed = config_seed("crossover", objective_name, num_components, event_size)
                    mixture = make_mixture(num_components, event_size, separation, seed)
                    objective = make_objective(objective_name, mixture, seed)
                    gradients = estimator_gradients(mixture, objective, num_samples, seed + 1, include_pyro=False)
                    implicit = sum(summed_variance(gradients["implicit"][group]) for group in ("locs", "scales"))
                    hybrid = sum(summed_variance(gradients["hybrid"][group]) for group in ("locs", "scales"))
                    values.append(implicit / hybrid)
                ratios[objective_name, num_components, event_size] = values
    return ratios


# --------------------------------------------------------------------------- separation: weight-gradient signal


def two_mode_problem(separation: float, guide_probs=(0.5, 0.5), target_probs=(0.8, 0.2)):
    r"""1-D, K = 2: unit-scale components at :math:`\pm\Delta/2`; guide and target differ only in weights."""
    locs = np.array([[-0.5 * separation], [0.5 * separation]])
    scales = np.ones((2, 1))
    guide = Mixture(locs, scales, np.log(np.asarray(guide_probs, dtype=float)))
    target = Mixture(locs, scales, np.log(np.asarray(target_probs, dtype=float)))
    return guide, Elbo(target, guide)


@dataclass
class SeparationResult:
    separation: float
    exact: float  # d ELBO / d logits[0]
    std: dict  # estimator -> per-sample standard deviation (exact, by quadrature)
    mc_std_implicit: float  # Monte Carlo estimate of the implicit std from mc_samples draws
    signal_mass: float  # probability of the region that carries half the implicit signal


def separation_profile(separation: float, mc_samples: int = 16384, grid_points: int = 40001, seed: int = 0):
    r"""Exact (quadrature) mean and per-sample spread of the ``logits[0]`` ELBO gradient estimators.

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
    joint = component_log_densities(x, guide)  # log pi_k q_k(x)
    density = np.exp(logsumexp(joint, axis=-1))
    step = grid[1] - grid[0]
    weights = density * step  # quadrature weights of E_q[.]
    probs = guide.probs
    _, _, implicit_logits = shared_math.implicit_vjp(x, *per_sample_parameters(guide, grid_points), cotangent)
    implicit = implicit_logits[:, 0]
    exact = float(weights @ implicit)
    # The same gradient by the score identity: E[h (r_0 - pi_0)].
    resp = np.exp(joint - logsumexp(joint, axis=-1, keepdims=True))
    exact_by_score = float(weights @ (values * (resp[:, 0] - probs[0])))
    if not math.isclose(exact, exact_by_score, rel_tol=1e-4, abs_tol=1e-9):
        raise AssertionError(f"quadrature mismatch at separation {separation}: {exact} vs {exact_by_score}")
    mean_value = weights @ values
    centred = values - mean_value
    second_moments = {
        "implicit": weights @ implicit**2,
        "score_rb": weights @ (centred * (resp[:, 0] - probs[0])) ** 2,
        "score": sum(
            probs[k] * (np.exp(joint[:, k] - np.log(probs[k])) * step) @ (centred * ((k == 0) - probs[0])) ** 2
            for k in range(2)
        ),
    }
    std = {name: math.sqrt(max(moment - exact**2, 0.0)) for name, moment in second_moments.items()}
    # Probability of the region holding half the signal: largest |implicit| first.
    order = np.argsort(-np.abs(implicit))
    cumulative_signal = np.cumsum((weights * implicit)[order])
    half = np.searchsorted(np.abs(cumulative_signal) >= 0.5 * abs(exact), True) if exact != 0 else 0
    signal_mass = float(weights[order][: half + 1].sum())
    rng = np.random.default_rng(seed)
    draws = draw(guide, mc_samples, rng)
    _, mc_cotangent = objective.value_and_grad(draws.x)
    mc_implicit = implicit_per_sample(guide, draws, mc_cotangent)[2][:, 0]
    return SeparationResult(separation, exact, std, float(mc_implicit.std(ddof=1)), signal_mass)


def svi_weight_trajectories(separation, estimator, num_particles, num_steps=1000, num_seeds=16, learning_rate=0.05, seed=0):
    r"""Fit the guide's logits to the target of :func:`two_mode_problem` by Adam on the ELBO.

    Only the logits are learned (locations and scales already match the target).  Returns
    the trajectories of :math:`\pi_0` (target 0.8), shape ``(num_steps, num_seeds)``.
    ``estimator``: ``"implicit"`` (pathwise; what ``"hybrid"`` uses for logits too),
    ``"score"`` or ``"score_rb"`` (leave-one-out baseline within each step's particles).
    """
    guide, objective = two_mode_problem(separation)
    target = objective.target
    rng = np.random.default_rng(seed)
    logits = np.zeros((num_seeds, 2))
    first, second = np.zeros_like(logits), np.zeros_like(logits)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    trajectory = np.empty((num_steps, num_seeds))
    rows = num_seeds * num_particles
    for step in range(num_steps):
        row_logits = np.repeat(logits, num_particles, axis=0)  # (S*N, K)
        current = Mixture(guide.locs, guide.scales, row_logits)
        probs = current.probs
        component = (rng.random(rows)[:, None] > np.cumsum(probs, axis=-1)[:, :-1]).sum(-1)
        one_hot = shared_math.one_hot(component, 2, np.float64)
        noise = rng.standard_normal((rows, 1))
        x = shared_math.sample_from_noise(guide.locs, guide.scales, one_hot, noise)
        step_objective = Elbo(target, current)
        values, cotangent = step_objective.value_and_grad(x)
        if estimator == "implicit":
            locs, scales, _ = per_sample_parameters(guide, rows)
            per_sample = shared_math.implicit_vjp(x, locs, scales, row_logits, cotangent)[2]
        else:
            indicator = responsibilities(x, current) if estimator == "score_rb" else one_hot
            grouped = values.reshape(num_seeds, num_particles)
            baseline = ((grouped.sum(1, keepdims=True) - grouped) / (num_particles - 1)).reshape(-1)
            per_sample = (values - baseline)[:, None] * (indicator - probs)
        gradient = per_sample.reshape(num_seeds, num_particles, 2).mean(1)
        # Adam, ascending the ELBO.
        first = beta1 * first + (1 - beta1) * gradient
        second = beta2 * second + (1 - beta2) * gradient**2
        update = (first / (1 - beta1 ** (step + 1))) / (np.sqrt(second / (1 - beta2 ** (step + 1))) + eps)
        logits = logits + learning_rate * update
        trajectory[step] = softmax(logits, axis=-1)[:, 0]
    return trajectory


# --------------------------------------------------------------------------- bias of Pyro's estimator


@dataclass
class BiasRow:
    objective: str
    separation: str
    num_components: int
    event_size: int
    num_samples: int
    z_tests: dict  # (estimator, group) -> ZTest


def run_bias(num_samples, event_sizes=(2, 8), component_counts=COMPONENT_COUNTS, log=print):
    """Bias z-scores of ``pyro``, ``implicit`` and ``hybrid`` against the closed-form gradients."""
    rows = []
    for objective_name in ("cosine", "polynomial"):
        for separation_name in SEPARATIONS:
            for num_components in component_counts:
                for event_size in event_sizes:
                    start = time.perf_counter()
                    seed = config_seed("bias", objective_name, separation_name, num_components, event_size)
                    mixture = make_mixture(num_components, event_size, SEPARATIONS[separation_name], seed)
                    objective = make_objective(objective_name, mixture, seed)
                    gradients = estimator_gradients(mixture, objective, num_samples, seed + 1, include_pyro=False)
                    gradients["pyro"] = dict(zip(GROUPS, pyro_per_sample(mixture, objective, num_samples, seed + 2)))
                    exact = objective.exact_gradient(mixture)
                    z_tests = {
                        (estimator, group): z_test(per_sample, exact[GROUPS.index(group)])
                        for estimator in ("implicit", "hybrid", "pyro")
                        for group, per_sample in gradients[estimator].items()
                    }
                    rows.append(BiasRow(objective_name, separation_name, num_components, event_size, num_samples, z_tests))
                    log(f"  bias {objective_name} {separation_name} K={num_components} D={event_size}: {time.perf_counter() - start:.2f} s")
    return rows


def pyro_gradient_at(mixture: Mixture, x: np.ndarray, cotangent: np.ndarray):
    """Pyro's ``MixtureOfDiagNormals`` gradient at given points ``x`` (N, D), summed over them.

    Its ``rsample`` draws the noise internally, so to integrate its estimator against the
    density we call the backward pass of its private ``_MixDiagNormalSample`` directly; that
    pass depends on the sample only through ``x`` (not on the chosen component).
    """
    import types

    import torch
    from pyro.distributions.diag_normal_mixture import _MixDiagNormalSample

    locs, scales, logits = (torch.tensor(a, dtype=torch.float64) for a in (mixture.locs, mixture.scales, mixture.logits))
    context = types.SimpleNamespace(saved_tensors=(torch.tensor(x), scales, locs, logits, torch.softmax(logits, -1)))
    context.needs_input_grad = (True,) * 6
    grads = _MixDiagNormalSample.backward(context, torch.tensor(cotangent))
    return tuple(grad.numpy() for grad in grads[:3])


@dataclass
class QuadratureBiasRow:
    objective: str
    separation: str
    num_components: int
    relative_error: dict  # (estimator, group) -> ||E[g_hat] - grad|| / ||grad||
    cosine_logits: float  # cosine of the angle between Pyro's expected logits gradient and the exact one
    implicit_variance: dict  # group -> exact per-sample variance (summed over entries) by quadrature
    implicit_mc_variance: dict  # group -> the Monte Carlo estimate the main table reports


def quadrature_bias(objective_name, separation_name, num_components, grid_points=601, chunk=20000, mc_samples=NUM_SAMPLES):
    r"""Exact mean of ``implicit`` and ``pyro`` (and variance of ``implicit``) at D = 2 by quadrature.

    :math:`E[\hat g] = \int q(x)\,\hat g(x)\,dx` on a ``grid_points``² grid covering every
    component to 11 scales (both estimators are functions of :math:`x` alone); Pyro's is
    linear in the cotangent, so its grid sum is folded into the cotangent
    :math:`g(x)\,q(x)\,\Delta A`.  No Monte Carlo error: what is left is the estimator's bias
    (and quadrature error ~1e-14).  The configuration is the main grid's D = 2 one, and
    ``implicit_mc_variance`` repeats its Monte Carlo estimate from ``mc_samples`` draws.
    """
    seed = config_seed(objective_name, separation_name, num_components, 2)
    mixture = make_mixture(num_components, 2, SEPARATIONS[separation_name], seed)
    objective = make_objective(objective_name, mixture, seed)
    points, cell = quadrature_points(mixture, grid_points)
    first = {"implicit": [0.0, 0.0, 0.0], "pyro": [0.0, 0.0, 0.0]}
    second = [0.0, 0.0, 0.0]
    for start in range(0, points.shape[0], chunk):
        x = points[start : start + chunk]
        weights = np.exp(logsumexp(component_log_densities(x, mixture), axis=-1)) * cell
        _, cotangent = objective.value_and_grad(x)
        implicit = shared_math.implicit_vjp(x, *per_sample_parameters(mixture, x.shape[0]), cotangent)
        pyro = pyro_gradient_at(mixture, x, cotangent * weights[:, None])
        for i in range(3):
            first["implicit"][i] = first["implicit"][i] + np.tensordot(weights, implicit[i], axes=(0, 0))
            second[i] = second[i] + np.tensordot(weights, implicit[i] ** 2, axes=(0, 0))
            first["pyro"][i] = first["pyro"][i] + pyro[i]
    exact = objective.exact_gradient(mixture)
    relative_error = {
        (name, group): float(np.linalg.norm(first[name][i] - exact[i]) / np.linalg.norm(exact[i]))
        for name in first
        for i, group in enumerate(GROUPS)
    }
    pyro_logits = first["pyro"][2]
    cosine = float(pyro_logits @ exact[2] / (np.linalg.norm(pyro_logits) * np.linalg.norm(exact[2])))
    implicit_variance = {group: float((second[i] - first["implicit"][i] ** 2).sum()) for i, group in enumerate(GROUPS)}
    draws = draw(mixture, mc_samples, np.random.default_rng(seed + 1))  # the main grid's draws
    _, mc_cotangent = objective.value_and_grad(draws.x)
    mc = implicit_per_sample(mixture, draws, mc_cotangent)
    implicit_mc_variance = {group: summed_variance(mc[i]) for i, group in enumerate(GROUPS)}
    return QuadratureBiasRow(
        objective_name, separation_name, num_components, relative_error, cosine, implicit_variance, implicit_mc_variance
    )


# --------------------------------------------------------------------------- robustness: other mixtures

#: The estimators compared on the robustness grid (locs and scales).
ROBUSTNESS_ESTIMATORS = ("implicit", "hybrid", "rao_blackwell")


@dataclass(frozen=True)
class RobustnessCase:
    """One (random mixture, objective, group) of :func:`robustness_grid`: ``variance[estimator]``."""

    objective: str
    separation: str
    num_components: int
    event_size: int
    mixture_index: int
    group: str
    variance: dict

    def ratio(self, estimator: str) -> float:
        """``variance[estimator]`` over the better of implicit / hybrid."""
        return self.variance[estimator] / min(self.variance["implicit"], self.variance["hybrid"])


def robustness_mixture(objective_name, separation_name, num_components, event_size, index):
    """``(mixture, objective, seed)`` of the ``index``-th further random mixture of a configuration
    (seeded apart from the main grid's, same construction as :func:`make_mixture`)."""
    seed = config_seed("robustness", index, objective_name, separation_name, num_components, event_size)
    mixture = make_mixture(num_components, event_size, SEPARATIONS[separation_name], seed)
    return mixture, make_objective(objective_name, mixture, seed), seed


def robustness_grid(num_mixtures, num_samples, event_sizes=(2, 4, 8, 64), log=print):
    """Locs/scales variances of implicit, hybrid and rao_blackwell on ``num_mixtures`` further
    random mixtures per (objective, separation, K, D): the main grid has one mixture per
    configuration, and the ratio of two estimators' variances depends on the mixture, not
    only on D, K and the separation.  Returns a list of :class:`RobustnessCase`."""
    cases = []
    for event_size in event_sizes:
        start = time.perf_counter()
        for index in range(num_mixtures):
            for objective_name in OBJECTIVES:
                for separation_name in SEPARATIONS:
                    for num_components in COMPONENT_COUNTS:
                        mixture, objective, seed = robustness_mixture(objective_name, separation_name, num_components, event_size, index)
                        gradients = estimator_gradients(mixture, objective, num_samples, seed + 1, include_pyro=False)
                        for group in ("locs", "scales"):
                            variance = {name: summed_variance(gradients[name][group]) for name in ROBUSTNESS_ESTIMATORS}
                            cases.append(RobustnessCase(objective_name, separation_name, num_components, event_size, index, group, variance))
        log(f"  robustness D={event_size}: {time.perf_counter() - start:.2f} s")
    return cases


def quadrature_points(mixture: Mixture, grid_points: int):
    """``(points (grid_points², 2), cell area)``: a D = 2 grid covering every component to 11 scales."""
    axes = [
        np.linspace((mixture.locs[:, d] - 11 * mixture.scales[:, d]).min(), (mixture.locs[:, d] + 11 * mixture.scales[:, d]).max(), grid_points)
        for d in range(2)
    ]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    return points, (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])


def quadrature_variances(mixture: Mixture, objective, grid_points: int = 601, chunk: int = 20000) -> dict:
    r"""Exact per-sample variances ``{(estimator, group): value}`` of implicit, hybrid and
    rao_blackwell for locs and scales at D = 2, by quadrature (no Monte Carlo error).

    Implicit and rao_blackwell are functions of :math:`x`: :math:`\mathrm{Var} = \int q\,\hat g^2 -
    (\int q\,\hat g)^2`.  Hybrid also depends on the component :math:`k`, which given :math:`x`
    has probabilities :math:`r_k(x)`; its mean is rao_blackwell's, and its second moment
    summed over a group's entries is :math:`\int q\,\|g\|^2` for locs and
    :math:`\int q\sum_k r_k\sum_d g_d^2 z_{kd}^2` for scales (:math:`\varepsilon = z_k` when
    :math:`k` was chosen).
    """
    points, cell = quadrature_points(mixture, grid_points)
    first = {name: [0.0, 0.0] for name in ("implicit", "rao_blackwell")}
    second = {name: [0.0, 0.0] for name in ROBUSTNESS_ESTIMATORS}
    for start in range(0, points.shape[0], chunk):
        x = points[start : start + chunk]
        joint = component_log_densities(x, mixture)
        log_q = logsumexp(joint, axis=-1)
        weights = np.exp(log_q) * cell
        resp = np.exp(joint - log_q[:, None])
        _, cotangent = objective.value_and_grad(x)
        parameters = per_sample_parameters(mixture, x.shape[0])
        for name, vjp in (("implicit", shared_math.implicit_vjp), ("rao_blackwell", shared_math.rao_blackwell_vjp)):
            gradients = vjp(x, *parameters, cotangent)
            for i in range(2):
                first[name][i] = first[name][i] + np.tensordot(weights, gradients[i], axes=(0, 0))
                second[name][i] = second[name][i] + float(weights @ (gradients[i] ** 2).reshape(x.shape[0], -1).sum(-1))
        z = (x[:, None, :] - mixture.locs) / mixture.scales
        second["hybrid"][0] += float(weights @ (cotangent**2).sum(-1))
        second["hybrid"][1] += float(weights @ np.einsum("nk,nd,nkd->n", resp, cotangent**2, z**2))
    first["hybrid"] = first["rao_blackwell"]
    return {
        (name, group): float(second[name][i] - (first[name][i] ** 2).sum())
        for name in ROBUSTNESS_ESTIMATORS
        for i, group in enumerate(("locs", "scales"))
    }


def swapped_coordinates(mixture: Mixture, objective):
    """The same mixture and objective with the two coordinates of a D = 2 problem exchanged
    (only the implicit gradient depends on the order of the coordinates)."""
    swapped = Mixture(mixture.locs[:, ::-1].copy(), mixture.scales[:, ::-1].copy(), mixture.logits)
    if isinstance(objective, Cosine):
        return swapped, Cosine(objective.omega[::-1].copy())
    if isinstance(objective, Polynomial):
        return swapped, Polynomial(objective.linear[::-1].copy(), objective.quadratic[::-1].copy())
    target = objective.target
    return swapped, Elbo(Mixture(target.locs[:, ::-1].copy(), target.scales[:, ::-1].copy(), target.logits), swapped)


def worst_robustness_quadrature(cases, grid_points=601):
    """The D = 2 robustness case where the default is furthest from the better estimator,
    with its exact (quadrature) variances, as drawn and with its coordinates swapped:
    ``(case, {(estimator, group): variance}, same for the swapped problem)``."""
    auto = default_estimator(2)
    worst = max((case for case in cases if case.event_size == 2), key=lambda case: case.ratio(auto))
    mixture, objective, _ = robustness_mixture(worst.objective, worst.separation, worst.num_components, 2, worst.mixture_index)
    return worst, quadrature_variances(mixture, objective, grid_points), quadrature_variances(*swapped_coordinates(mixture, objective), grid_points)


def leading_overlap_mixture(num_components: int, separation: float = 8.0, overlap_first: bool = True):
    r"""A constructed D = 2 mixture on which ``rao_blackwell`` gains nothing over ``hybrid``.

    Unit scales, equal weights; every component has the same mean in one coordinate (the
    first if ``overlap_first``, else the second) and the components are ``separation``
    apart in the other.  The objective :math:`h = \cos(1.5\,x_o)` depends on the overlapping
    coordinate :math:`x_o` only.  Then :math:`r_k(x)` is (almost) one-hot, so rao_blackwell =
    hybrid, while, when the overlapping coordinate comes first, the implicit gradient is
    :math:`\bar\mu_{k1} = w_{k1} g_1 = \pi_k g_1` (the cotangent of the later coordinate is 0,
    so the sweep carries nothing): locs variance ratio exactly
    :math:`1/\sum_k\pi_k^2 = K`.  With the overlapping coordinate last, the implicit weights
    of that coordinate are the (one-hot) conditional weights and all three agree.
    Returns ``(mixture, objective)``.
    """
    shifts = separation * np.arange(num_components)
    overlapping = np.zeros(num_components)
    columns = (overlapping, shifts) if overlap_first else (shifts, overlapping)
    mixture = Mixture(np.stack(columns, axis=1), np.ones((num_components, 2)), np.zeros(num_components))
    omega = np.array([1.5, 0.0]) if overlap_first else np.array([0.0, 1.5])
    return mixture, Cosine(omega)


def leading_overlap_cases(component_counts=COMPONENT_COUNTS, grid_points=601):
    """``{(K, overlap_first): exact variances}`` of :func:`leading_overlap_mixture`, by quadrature."""
    return {
        (num_components, overlap_first): quadrature_variances(*leading_overlap_mixture(num_components, overlap_first=overlap_first), grid_points)
        for num_components in component_counts
        for overlap_first in (True, False)
    }


def pyro_rao_blackwell_difference(num_draws=256, seeds=range(4)):
    """Largest relative difference between Pyro's ``MixtureOfDiagNormals`` locs/scales gradient
    and :func:`shared_math.rao_blackwell_vjp` at the same points (random mixtures, K = 2..5,
    D = 2..6, summed over ``num_draws`` draws)."""
    largest = 0.0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        mixture = make_mixture(2 + seed, 2 + seed, 1.0 + 2.0 * seed, seed=1000 + seed)
        draws = draw(mixture, num_draws, rng)
        cotangent = rng.standard_normal(draws.x.shape)
        ours = shared_math.rao_blackwell_vjp(draws.x, mixture.locs, mixture.scales, mixture.logits, cotangent)
        pyro = pyro_gradient_at(mixture, draws.x, cotangent)
        for i in range(2):
            largest = max(largest, float(np.abs(ours[i] - pyro[i]).max() / np.abs(ours[i]).max()))
    return largest



# --------------------------------------------------------------------------- output


def format_number(value: float) -> str:
    """``3.2e-3`` style (two significant digits) outside [0.01, 1000), three digits inside."""
    if value != value:  # NaN
        return "nan"
    if value == 0 or 1e-2 <= abs(value) < 1e3:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def variance_tables(rows) -> str:
    """One Markdown table per objective; the better of implicit/hybrid in bold."""
    header = [
        "components",
        "K",
        "D",
        "auto",
        "locs: implicit",
        "hybrid",
        "rao_blackwell",
        "scales: implicit",
        "hybrid",
        "rao_blackwell",
        "logits: implicit",
        "score",
        "score-RB",
        "Pyro",
    ]
    parts = []
    for objective_name in OBJECTIVES:
        body = []
        for row in (r for r in rows if r.objective == objective_name):
            cells = [row.separation, row.num_components, row.event_size, default_estimator(row.event_size)]
            for group in ("locs", "scales"):
                implicit, hybrid = row.variance["implicit", group], row.variance["hybrid", group]
                cells += [
                    f"**{format_number(implicit)}**" if implicit <= hybrid else format_number(implicit),
                    f"**{format_number(hybrid)}**" if hybrid < implicit else format_number(hybrid),
                    format_number(row.variance["rao_blackwell", group]),
                ]
            cells += [format_number(row.variance[estimator, "logits"]) for estimator in ("implicit", "score", "score_rb")]
            cells.append(format_number(row.variance["pyro", "logits"]) if ("pyro", "logits") in row.variance else "—")
            body.append(cells)
        parts.append(f"**Objective: {objective_name}**\n\n" + _markdown_table(header, body))
    return "\n\n".join(parts)


def rule_table(rows) -> str:
    """Per D, over all objectives, separations and K, for locs and scales: the worst ratio of
    the default's (``auto``) variance to the better of implicit / hybrid, split by
    separation, its best (smallest) ratio, and the worst ratios of implicit and hybrid
    themselves (what a rule choosing only between those two would pay)."""
    header = [
        "D",
        "auto",
        "auto / better, mixed (worst)",
        "auto / better, separated (worst)",
        "auto / better (best)",
        "implicit / better (worst)",
        "hybrid / better (worst)",
    ]
    body = []
    for event_size in sorted({row.event_size for row in rows}):
        auto = default_estimator(event_size)
        cells = [event_size, auto]
        for separation in ("mixed", "separated"):
            cells.append(format_number(max(worst_ratio(rows, auto, group, event_size, separation) for group in ("locs", "scales"))))
        auto_ratios = [
            row.variance[auto, group] / min(row.variance["implicit", group], row.variance["hybrid", group])
            for row in rows
            if row.event_size == event_size
            for group in ("locs", "scales")
        ]
        cells.append(format_number(min(auto_ratios)))
        for estimator in ("implicit", "hybrid"):
            cells.append(format_number(max(worst_ratio(rows, estimator, group, event_size) for group in ("locs", "scales"))))
        body.append(cells)
    return _markdown_table(header, body)


#: The issue's target: the default within this factor of the better of implicit / hybrid.
RATIO_BOUND = 1.5


def robustness_table(cases) -> str:
    """Per D, over the further random mixtures: worst ratios to the better of implicit / hybrid
    (locs and scales) of the default, of implicit and of hybrid, how many (mixture, objective,
    K, group) cases exceed :data:`RATIO_BOUND`, and where the default's worst was."""
    auto_of = {event_size: default_estimator(event_size) for event_size in {case.event_size for case in cases}}
    header = [
        "D",
        "mixtures per configuration",
        "auto / better, mixed (worst)",
        "auto / better, separated (worst)",
        "auto / better (median)",
        f"auto > {RATIO_BOUND:g} × better",
        "implicit / better (worst)",
        "hybrid / better (worst)",
        "auto's worst case",
    ]
    body = []
    for event_size in sorted(auto_of):
        selected = [case for case in cases if case.event_size == event_size]
        auto = auto_of[event_size]
        worst = max(selected, key=lambda case: case.ratio(auto))
        body.append(
            [
                event_size,
                len({case.mixture_index for case in selected}),
                format_number(max(case.ratio(auto) for case in selected if case.separation == "mixed")),
                format_number(max(case.ratio(auto) for case in selected if case.separation == "separated")),
                format_number(float(np.median([case.ratio(auto) for case in selected]))),
                f"{sum(case.ratio(auto) > RATIO_BOUND for case in selected)} of {len(selected)}",
                format_number(max(case.ratio("implicit") for case in selected)),
                format_number(max(case.ratio("hybrid") for case in selected)),
                f"{worst.objective}, {worst.separation}, K={worst.num_components}, {worst.group}",
            ]
        )
    return _markdown_table(header, body)


def robustness_quadrature_text(worst, exact, swapped) -> str:
    """One paragraph: the worst D = 2 robustness case, Monte Carlo against quadrature, and the
    same problem with its coordinates swapped."""
    auto = default_estimator(2)
    group = worst.group
    mixture, objective, _ = robustness_mixture(worst.objective, worst.separation, worst.num_components, 2, worst.mixture_index)
    better = min(exact["implicit", group], exact["hybrid", group])
    omega = f"; ω = {np.array2string(objective.omega, precision=2, separator=', ')}" if isinstance(objective, Cosine) else ""
    return (
        f"Worst D = 2 case ({worst.objective}, {worst.separation}, K = {worst.num_components}, {group}): "
        f"Monte Carlo auto / better = {format_number(worst.ratio(auto))}; exact by quadrature: implicit "
        f"{format_number(exact['implicit', group])}, hybrid {format_number(exact['hybrid', group])}, "
        f"rao_blackwell {format_number(exact['rao_blackwell', group])}, so auto / better = "
        f"{format_number(exact[auto, group] / better)}.  Its means (rows: components): "
        f"{np.array2string(mixture.locs, precision=2, separator=', ').replace(chr(10), '')}; "
        f"scales {format_number(mixture.scales.min())}–{format_number(mixture.scales.max())}; "
        f"weights {np.array2string(mixture.probs, precision=2, separator=', ')}{omega}.  With its two coordinates "
        f"swapped (exactly the same problem in another order): implicit {format_number(swapped['implicit', group])}, "
        f"hybrid {format_number(swapped['hybrid', group])}, rao_blackwell {format_number(swapped['rao_blackwell', group])}."
    )


def leading_overlap_table(results) -> str:
    header = [
        "K",
        "overlapping coordinate",
        "locs: implicit",
        "hybrid",
        "rao_blackwell",
        "scales: implicit",
        "hybrid",
        "rao_blackwell",
        "rao_blackwell / implicit (locs; scales)",
    ]
    body = []
    for (num_components, overlap_first), exact in results.items():
        cells = [num_components, "first" if overlap_first else "second"]
        for group in ("locs", "scales"):
            cells += [format_number(exact[name, group]) for name in ROBUSTNESS_ESTIMATORS]
        cells.append(
            "; ".join(format_number(exact["rao_blackwell", group] / exact["implicit", group]) for group in ("locs", "scales"))
        )
        body.append(cells)
    return _markdown_table(header, body)


def unbiasedness_summary(rows) -> str:
    """Bias z-tests of the unbiased estimators over the main grid (objectives with a closed form)."""
    lines = []
    for estimator in ("implicit", "hybrid", "rao_blackwell", "score", "score_rb"):
        tests = [(row, group, test) for row in rows for (name, group), test in row.z_tests.items() if name == estimator]
        failed = [(row, group, test) for row, group, test in tests if test.light > test.threshold]
        worst_row, worst_group, worst = max(tests, key=lambda item: item[2].light / item[2].threshold)
        heavy = [(row, group, test) for row, group, test in tests if test.num_heavy]
        line = (
            f"- `{estimator}`: {len(failed)} of {len(tests)} (configuration, group) tests above the Bonferroni threshold "
            f"on light-tailed entries; largest |z| = {worst.light:.2f} (threshold {worst.threshold:.2f}; {worst_group}, "
            f"{worst_row.objective}, {worst_row.separation}, K={worst_row.num_components}, D={worst_row.event_size})"
        )
        if heavy:
            largest = max(test.heavy for _, _, test in heavy)
            line += f"; heavy-tailed entries in {len(heavy)} tests (largest |z| there {largest:.1f}, not a valid test)"
        lines.append(line)
    return "\n".join(lines)


def _z_cell(tests) -> str:
    """Largest light-tailed |z| (bold above its threshold), then ``†`` and the largest
    heavy-tailed |z| when some entries are heavy-tailed (``—`` when no entry is light-tailed)."""
    light_tests = [test for test in tests if test.num_heavy < test.num_entries]
    if light_tests:
        light = max(test.light for test in light_tests)
        cell = f"**{light:.1f}**" if any(test.light > test.threshold for test in light_tests) else f"{light:.1f}"
    else:
        cell = "—"
    if any(test.num_heavy for test in tests):
        cell += f" †{max(test.heavy for test in tests):.1f}"
    return cell


def bias_table(rows) -> str:
    header = ["objective", "components", "K", "D", "Pyro locs", "Pyro scales", "Pyro logits", "implicit (all groups)", "hybrid (all groups)", "thresholds (K·D / K entries)"]
    body = []
    for row in rows:
        cells = [row.objective, row.separation, row.num_components, row.event_size]
        cells += [_z_cell([row.z_tests["pyro", group]]) for group in GROUPS]
        cells += [_z_cell([row.z_tests[estimator, group] for group in GROUPS]) for estimator in ("implicit", "hybrid")]
        cells.append(f"{row.z_tests['pyro', 'locs'].threshold:.1f} / {row.z_tests['pyro', 'logits'].threshold:.1f}")
        body.append(cells)
    return _markdown_table(header, body)


def quadrature_bias_table(rows) -> str:
    header = [
        "objective",
        "components",
        "K",
        "Pyro locs",
        "Pyro scales",
        "Pyro logits",
        "cos∠(Pyro logits, exact)",
        "implicit (worst group)",
        "implicit variance, locs: exact / MC",
        "logits: exact / MC",
    ]
    body = [
        [row.objective, row.separation, row.num_components]
        + [format_number(row.relative_error["pyro", group]) for group in GROUPS]
        + [f"{row.cosine_logits:.2f}", format_number(max(row.relative_error["implicit", group] for group in GROUPS))]
        + [
            f"{format_number(row.implicit_variance[group])} / {format_number(row.implicit_mc_variance[group])}"
            for group in ("locs", "logits")
        ]
        for row in rows
    ]
    return _markdown_table(header, body)


def crossover_table(ratios, separations) -> str:
    header = ["objective", "K", "D"] + [f"Δ = {separation:g}" for separation in separations]
    body = [
        [objective_name, num_components, event_size] + [format_number(value) for value in values]
        for (objective_name, num_components, event_size), values in ratios.items()
    ]
    return _markdown_table(header, body)


def separation_table(results) -> str:
    header = [
        "Δ/σ",
        "exact ∂ELBO/∂ℓ₀",
        "SNR implicit",
        "SNR score",
        "SNR score-RB",
        "draws for batch SNR 1 (implicit)",
        "P(region with half the implicit signal)",
        "implicit std: exact / MC estimate",
    ]
    body = []
    for result in results:
        snr = {name: abs(result.exact) / std for name, std in result.std.items()}
        body.append(
            [
                f"{result.separation:g}",
                format_number(result.exact),
                format_number(snr["implicit"]),
                format_number(snr["score"]),
                format_number(snr["score_rb"]),
                format_number(max(1.0, (result.std["implicit"] / abs(result.exact)) ** 2)),
                format_number(result.signal_mass),
                f"{format_number(result.std['implicit'])} / {format_number(result.mc_std_implicit)}",
            ]
        )
    return _markdown_table(header, body)


def svi_table(results) -> str:
    header = ["Δ/σ", "estimator (logits)", "particles", "π₀ at step 100", "final π₀ (mean ± sd over seeds)", "RMS error of π₀, second half"]
    body = []
    for (separation, estimator, particles), trajectory in results.items():
        second_half = trajectory[trajectory.shape[0] // 2 :]
        body.append(
            [
                f"{separation:g}",
                estimator,
                particles,
                f"{trajectory[99].mean():.3f}",
                f"{trajectory[-1].mean():.3f} ± {trajectory[-1].std():.3f}",
                f"{np.sqrt(((second_half - 0.8) ** 2).mean()):.3f}",
            ]
        )
    return _markdown_table(header, body)


ESTIMATOR_STYLE = {
    "implicit": ("implicit", "tab:blue"),
    "hybrid": ("hybrid (chosen component)", "tab:orange"),
    "rao_blackwell": ("rao_blackwell (= Pyro's locs/scales)", "tab:brown"),
    "pyro": ("Pyro MixtureOfDiagNormals (logits)", "tab:green"),
    "score": ("score function + baseline", "tab:red"),
    "score_rb": ("score function, Rao-Blackwellised", "tab:purple"),
}


def plot_variance(rows, path, num_components=8):
    """Variance vs D (log-log): rows objectives, columns parameter groups; solid mixed, dashed separated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(OBJECTIVES), len(GROUPS), figsize=(13, 10), sharex=True)
    for i, objective_name in enumerate(OBJECTIVES):
        for j, group in enumerate(GROUPS):
            axis = axes[i, j]
            for separation_name, linestyle in (("mixed", "-"), ("separated", "--")):
                selected = sorted(
                    (r for r in rows if r.objective == objective_name and r.separation == separation_name and r.num_components == num_components),
                    key=lambda r: r.event_size,
                )
                for estimator, (label, color) in ESTIMATOR_STYLE.items():
                    if estimator == shared_math.AUTO_ESTIMATOR:
                        label = f"{label} = auto"
                    if (estimator in ("hybrid", "rao_blackwell") and group == "logits") or (estimator == "pyro" and group != "logits"):
                        continue  # hybrid logits = implicit; Pyro locs/scales = rao_blackwell
                    points = [(r.event_size, r.variance[estimator, group]) for r in selected if (estimator, group) in r.variance]
                    if points:
                        xs, ys = zip(*points)
                        axis.plot(xs, ys, linestyle, color=color, marker="o", markersize=3, label=f"{label}, {separation_name}")
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.set_title(f"{objective_name}: {group}")
            axis.grid(True, which="major", alpha=0.3)
            if i == len(OBJECTIVES) - 1:
                axis.set_xlabel("event size D")
    legend = {}
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    figure.legend(legend.values(), legend.keys(), loc="lower center", ncol=3, fontsize=8)
    figure.supylabel("per-sample variance, summed over the group's entries (Monte Carlo)")
    figure.suptitle(
        f"Per-sample gradient variance vs D (K = {num_components}; solid: well-mixed, dashed: well-separated; "
        "one seeded random mixture per point)"
    )
    figure.tight_layout(rect=(0, 0.08, 1, 0.97))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def update_generated_blocks(path: Path, blocks: dict) -> None:
    """Replace ``<!-- generated:NAME -->…<!-- /generated:NAME -->`` blocks of ``path`` (appending missing ones)."""
    text = path.read_text() if path.exists() else "# Sample-gradient estimators\n"
    for name, content in blocks.items():
        begin, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
        block = f"{begin}\n{content.strip()}\n{end}"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text)
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


# --------------------------------------------------------------------------- entry point


@dataclass(frozen=True)
class Settings:
    num_samples: int = NUM_SAMPLES  # main grid, our estimators
    pyro_samples: int = 1024  # main grid, Pyro (its backward is O(N·K²·D))
    bias_samples: int = 16384  # bias table, all estimators
    bias_event_sizes: tuple = (2, 8)
    separations: tuple = (0.5, 1, 2, 3, 4, 5, 6, 8, 10)
    svi_separations: tuple = (4, 6, 8, 10)
    svi_steps: int = 600
    svi_seeds: int = 16
    event_sizes: tuple = EVENT_SIZES
    quadrature_points: int = 601
    crossover_separations: tuple = (0.5, 1, 2, 3, 4, 6, 8)
    crossover_event_sizes: tuple = (1, 2, 4, 8)
    robustness_mixtures: int = 16
    robustness_samples: int = 1024
    robustness_event_sizes: tuple = (2, 4, 8, 64)


QUICK = Settings(
    num_samples=512,
    pyro_samples=128,
    bias_samples=1024,
    bias_event_sizes=(2,),
    separations=(1, 8),
    svi_separations=(8,),
    svi_steps=120,
    svi_seeds=4,
    event_sizes=(1, 2, 8, 64),
    quadrature_points=201,
    crossover_separations=(1, 8),
    crossover_event_sizes=(2,),
    robustness_mixtures=2,
    robustness_samples=256,
    robustness_event_sizes=(2, 64),
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sample sizes (does not touch docs/ unless --output-dir is given)")
    parser.add_argument("--output-dir", type=Path, default=None, help="where estimators.md and estimators_variance.png go (default: docs/)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    output_dir = args.output_dir or (None if args.quick else REPO_ROOT / "docs")
    started = time.perf_counter()
    print(f"variance study: {settings}")

    print("main grid")
    rows = run_study(settings.num_samples, settings.pyro_samples, event_sizes=settings.event_sizes)
    print("implicit / hybrid crossover in separation")
    crossover = crossover_grid(settings.num_samples, settings.crossover_separations, settings.crossover_event_sizes)
    print("bias of Pyro's estimator")
    bias_rows = run_bias(settings.bias_samples, event_sizes=settings.bias_event_sizes)
    print("bias by quadrature (D = 2)")
    quadrature_rows = [
        quadrature_bias(objective_name, separation_name, num_components, grid_points=settings.quadrature_points)
        for objective_name in ("cosine", "polynomial")
        for separation_name in SEPARATIONS
        for num_components in COMPONENT_COUNTS
    ]
    print("robustness: further random mixtures")
    robustness = robustness_grid(settings.robustness_mixtures, settings.robustness_samples, settings.robustness_event_sizes)
    robustness_worst, robustness_exact, robustness_swapped = worst_robustness_quadrature(robustness, settings.quadrature_points)
    leading_overlap = leading_overlap_cases(grid_points=settings.quadrature_points)
    pyro_difference = pyro_rao_blackwell_difference()
    print("separation profile")
    separation_results = [separation_profile(separation) for separation in settings.separations]
    print("SVI weights")
    svi_results = {}
    for separation in settings.svi_separations:
        for estimator, particles in (("implicit", 8), ("implicit", 128), ("score", 8), ("score_rb", 8)):
            svi_results[separation, estimator, particles] = svi_weight_trajectories(
                separation, estimator, particles, num_steps=settings.svi_steps, num_seeds=settings.svi_seeds
            )
    elapsed = time.perf_counter() - started

    blocks = {
        "settings": (
            f"Generated by `benchmarks/variance_study.py` in {elapsed:.0f} s: N = {settings.num_samples} draws per "
            f"configuration for implicit / hybrid / rao_blackwell / score-function (shared draws), N = {settings.pyro_samples} for Pyro "
            f"(D ≥ 2); bias table N = {settings.bias_samples} for every estimator; separation profile by quadrature "
            f"(40001 points) plus 16384 Monte Carlo draws; SVI: {settings.svi_seeds} seeds × {settings.svi_steps} Adam "
            f"steps (learning rate 0.05); robustness: {settings.robustness_mixtures} further random mixtures per "
            f"configuration at D ∈ {{{', '.join(map(str, settings.robustness_event_sizes))}}}, N = {settings.robustness_samples}; "
            f"exact D = 2 variances by quadrature on a {settings.quadrature_points}² grid. float64 throughout; `shared_math.AUTO_ESTIMATOR = {shared_math.AUTO_ESTIMATOR!r}`."
        ),
        "rule": rule_table(rows),
        "variance": variance_tables(rows),
        "crossover": crossover_table(crossover, settings.crossover_separations),
        "unbiased": unbiasedness_summary(rows),
        "bias": bias_table(bias_rows),
        "quadrature": quadrature_bias_table(quadrature_rows),
        "robustness": robustness_table(robustness) + "\n\n" + robustness_quadrature_text(robustness_worst, robustness_exact, robustness_swapped),
        "leading_overlap": leading_overlap_table(leading_overlap),
        "pyro_rao_blackwell": (
            f"Largest relative difference between Pyro's `MixtureOfDiagNormals` locs/coord_scale gradient and "
            f"`shared_math.rao_blackwell_vjp` at the same points (4 random mixtures, K = 2–5, D = 2–5, 256 points "
            f"each): {pyro_difference:.1e}."
        ),
        "separation": separation_table(separation_results),
        "svi": svi_table(svi_results),
    }
    if output_dir is None:
        for name, content in blocks.items():
            print(f"\n## {name}\n{content}")
    else:
        output_dir.mkdir(parents=True, exist_ok=True)
        update_generated_blocks(output_dir / "estimators.md", blocks)
        plot_variance(rows, output_dir / "estimators_variance.png")
        print(f"wrote {output_dir / 'estimators.md'} and {output_dir / 'estimators_variance.png'}")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
