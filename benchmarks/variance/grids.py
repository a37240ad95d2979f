r"""The study's experiments: each returns plain results (rows, ratios, trajectories) for :mod:`.report`.

Every configuration is seeded by its name (:func:`config_seed`), so results do not depend
on the order in which experiments run.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field

import numpy as np
from scipy.special import softmax

import shared_math

from .estimators import GROUPS, estimator_gradients, pyro_gradient_at, pyro_per_sample
from .mixtures import Mixture, draw, make_mixture, per_sample_parameters, responsibilities
from .objectives import OBJECTIVES, Elbo, leading_overlap_mixture, make_objective, swapped_coordinates, two_mode_problem
from .quadrature import implicit_and_pyro_moments, quadrature_variances
from .summaries import summed_variance, z_test

#: Event sizes, component counts and separations of the main study.
EVENT_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
COMPONENT_COUNTS = (2, 8)
#: RMS distance between two component means, in units of the (unit) component scale.
SEPARATIONS = {"mixed": 1.0, "separated": 8.0}
#: Samples per configuration of the main study (per-sample variances; the estimators share the draws).
NUM_SAMPLES = 4096
#: Component families beyond the Normal, with their shape parameters, and their event sizes.
FAMILY_CASES = {"student_t": (3.0,), "gumbel": (), "laplace": ()}
FAMILY_EVENT_SIZES = (1, 2, 8, 32)


def auto_estimator() -> str:
    """What ``estimator="auto"`` resolves to (:func:`shared_math.resolve_estimator`; it does not depend on D)."""
    return shared_math.resolve_estimator("auto")


def config_seed(*key) -> int:
    """A stable seed per configuration (independent of the order in which the study runs)."""
    return zlib.crc32("/".join(map(str, key)).encode())


# --------------------------------------------------------------------------- main grid


@dataclass
class Row:
    """Result of one configuration: ``variance[estimator, group]`` and ``z_tests[estimator, group]``."""

    objective: str
    separation: str
    num_components: int
    event_size: int
    variance: dict = field(default_factory=dict)
    z_tests: dict = field(default_factory=dict)
    family: str = "normal"


def run_configuration(
    objective_name,
    separation_name,
    num_components,
    event_size,
    num_samples,
    pyro_samples=0,
    draw_seed=None,
    family="normal",
    shape_params=(),
):
    """One :class:`Row`: summed per-sample variances of every estimator and group, and the
    largest bias z-score where the exact gradient is known.  ``pyro_samples = 0`` skips Pyro.

    The mixture and objective are seeded by the configuration (the same for every
    ``family``: only the component family changes); the draws by ``draw_seed`` (default:
    derived from the configuration too).
    """
    seed = config_seed(objective_name, separation_name, num_components, event_size)
    mixture = make_mixture(num_components, event_size, SEPARATIONS[separation_name], seed).with_family(
        family, shape_params
    )
    objective = make_objective(objective_name, mixture, seed)
    draw_seed = seed + 1 if draw_seed is None else draw_seed
    gradients = estimator_gradients(mixture, objective, num_samples, draw_seed, include_pyro=False)
    if pyro_samples and event_size >= 2 and family == "normal":
        gradients["pyro"] = dict(zip(GROUPS, pyro_per_sample(mixture, objective, pyro_samples, seed + 2)))
    exact = objective.exact_gradient(mixture)
    row = Row(objective_name, separation_name, num_components, event_size, family=family)
    for estimator, groups in gradients.items():
        for group, per_sample in groups.items():
            row.variance[estimator, group] = summed_variance(per_sample)
            if exact is not None:
                row.z_tests[estimator, group] = z_test(per_sample, exact[GROUPS.index(group)])
    return row


def run_study(
    num_samples,
    pyro_samples,
    event_sizes=EVENT_SIZES,
    component_counts=COMPONENT_COUNTS,
    objectives=OBJECTIVES,
    log=print,
):
    """The main grid: objectives × separations × K × D."""
    rows = []
    for objective_name in objectives:
        for separation_name in SEPARATIONS:
            for num_components in component_counts:
                for event_size in event_sizes:
                    start = time.perf_counter()
                    rows.append(
                        run_configuration(
                            objective_name, separation_name, num_components, event_size, num_samples, pyro_samples
                        )
                    )
                    log(
                        f"  {objective_name} {separation_name} K={num_components} D={event_size}: {time.perf_counter() - start:.2f} s"
                    )
    return rows


def family_grid(
    num_samples, families=FAMILY_CASES, event_sizes=FAMILY_EVENT_SIZES, component_counts=COMPONENT_COUNTS, log=print
):
    """The cosine objective with other component families: families × separations × K × D,
    on the main grid's mixtures and objectives (only the family changes)."""
    rows = []
    for family, shape_params in families.items():
        for separation_name in SEPARATIONS:
            for num_components in component_counts:
                for event_size in event_sizes:
                    start = time.perf_counter()
                    rows.append(
                        run_configuration(
                            "cosine",
                            separation_name,
                            num_components,
                            event_size,
                            num_samples,
                            family=family,
                            shape_params=shape_params,
                        )
                    )
                    log(
                        f"  {family} {separation_name} K={num_components} D={event_size}: {time.perf_counter() - start:.2f} s"
                    )
    return rows


def ratio_to_better(row, estimator, group) -> float:
    """``variance[estimator] / min(variance[implicit], variance[hybrid])`` of one row and group."""
    return row.variance[estimator, group] / min(row.variance["implicit", group], row.variance["hybrid", group])


def crossover_grid(
    num_samples, separations=(0.5, 1, 2, 3, 4, 6, 8), event_sizes=(1, 2, 4, 8), objectives=("cosine", "elbo")
):
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
                    rows.append(
                        BiasRow(objective_name, separation_name, num_components, event_size, num_samples, z_tests)
                    )
                    log(
                        f"  bias {objective_name} {separation_name} K={num_components} D={event_size}: {time.perf_counter() - start:.2f} s"
                    )
    return rows


@dataclass
class QuadratureBiasRow:
    objective: str
    separation: str
    num_components: int
    relative_error: dict  # (estimator, group) -> ||E[g_hat] - grad|| / ||grad||
    cosine_logits: float  # cosine of the angle between Pyro's expected logits gradient and the exact one
    implicit_variance: dict  # group -> exact per-sample variance (summed over entries) by quadrature
    implicit_mc_variance: dict  # group -> the Monte Carlo estimate the main table reports


def quadrature_bias(objective_name, separation_name, num_components, grid_points=601, mc_samples=NUM_SAMPLES):
    r"""Exact mean of ``implicit`` and ``pyro`` (and variance of ``implicit``) at D = 2 by quadrature
    (:func:`~benchmarks.variance.quadrature.implicit_and_pyro_moments`, a grid covering every
    component to 11 scales): what is left is the estimator's bias (and quadrature error
    ~1e-14).  The configuration is the main grid's D = 2 one, and ``implicit_mc_variance``
    repeats its Monte Carlo estimate from ``mc_samples`` draws.
    """
    seed = config_seed(objective_name, separation_name, num_components, 2)
    mixture = make_mixture(num_components, 2, SEPARATIONS[separation_name], seed)
    objective = make_objective(objective_name, mixture, seed)
    first, second = implicit_and_pyro_moments(mixture, objective, grid_points)
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
    mc = shared_math.implicit_vjp(draws.x, *per_sample_parameters(mixture, mc_samples), mc_cotangent)
    implicit_mc_variance = {group: summed_variance(mc[i]) for i, group in enumerate(GROUPS)}
    return QuadratureBiasRow(
        objective_name, separation_name, num_components, relative_error, cosine, implicit_variance, implicit_mc_variance
    )


def pyro_rao_blackwell_difference(num_draws=256, seeds=range(4)):
    """Largest relative difference between Pyro's ``MixtureOfDiagNormals`` locs/scales gradient
    and :func:`shared_math.rao_blackwell_vjp` at the same points (random mixtures, K = 2..5,
    D = 2..5, summed over ``num_draws`` draws)."""
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


# --------------------------------------------------------------------------- robustness: other mixtures


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
    """Locs/scales variances of every registry estimator on ``num_mixtures`` further random
    mixtures per (objective, separation, K, D): the main grid has one mixture per
    configuration, and the ratio of two estimators' variances depends on the mixture, not
    only on D, K and the separation.  Returns a list of :class:`RobustnessCase`."""
    cases = []
    for event_size in event_sizes:
        start = time.perf_counter()
        for index in range(num_mixtures):
            for objective_name in OBJECTIVES:
                for separation_name in SEPARATIONS:
                    for num_components in COMPONENT_COUNTS:
                        mixture, objective, seed = robustness_mixture(
                            objective_name, separation_name, num_components, event_size, index
                        )
                        gradients = estimator_gradients(mixture, objective, num_samples, seed + 1, include_pyro=False)
                        for group in ("locs", "scales"):
                            variance = {
                                name: summed_variance(gradients[name][group]) for name in shared_math.ESTIMATORS
                            }
                            cases.append(
                                RobustnessCase(
                                    objective_name, separation_name, num_components, event_size, index, group, variance
                                )
                            )
        log(f"  robustness D={event_size}: {time.perf_counter() - start:.2f} s")
    return cases


def worst_robustness_quadrature(cases, grid_points=601):
    """The D = 2 robustness case where the default is furthest from the better estimator,
    with its exact (quadrature) variances, as drawn and with its coordinates swapped:
    ``(case, {(estimator, group): variance}, same for the swapped problem)``."""
    worst = max((case for case in cases if case.event_size == 2), key=lambda case: case.ratio(auto_estimator()))
    mixture, objective, _ = robustness_mixture(
        worst.objective, worst.separation, worst.num_components, 2, worst.mixture_index
    )
    return (
        worst,
        quadrature_variances(mixture, objective, grid_points),
        quadrature_variances(*swapped_coordinates(mixture, objective), grid_points),
    )


def leading_overlap_cases(component_counts=COMPONENT_COUNTS, grid_points=601):
    """``{(K, overlap_first): exact variances}`` of :func:`leading_overlap_mixture`, by quadrature."""
    return {
        (num_components, overlap_first): quadrature_variances(
            *leading_overlap_mixture(num_components, overlap_first=overlap_first), grid_points
        )
        for num_components in component_counts
        for overlap_first in (True, False)
    }


# --------------------------------------------------------------------------- separation: SVI on the weights


def svi_weight_trajectories(
    separation, estimator, num_particles, num_steps=1000, num_seeds=16, learning_rate=0.05, seed=0
):
    r"""Fit the guide's logits to the target of :func:`two_mode_problem` by Adam on the ELBO.

    Only the logits are learned (locations and scales already match the target).  Returns
    the trajectories of :math:`\pi_0` (target 0.8), shape ``(num_steps, num_seeds)``.
    ``estimator``: ``"implicit"`` (pathwise; what every registry estimator uses for logits),
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
        values, cotangent = Elbo(target, current).value_and_grad(x)
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
