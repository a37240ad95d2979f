r"""Per-sample variance (and bias) of the sample-gradient estimators of factorized mixtures.

Project issues 7 and 11; results and the evidence behind ``estimator="auto"`` are in
``docs/estimators.md``.  Run ``python -m benchmarks.variance`` (``--quick`` for a smoke run).

For a mixture :math:`q_\theta` with ``locs`` :math:`\mu` (K, D), ``scales`` :math:`\sigma`
(K, D), ``logits`` :math:`\ell` (K) and a component family, and an objective
:math:`E_{x\sim q_\theta}[h(x)]`, every estimator draws :math:`k\sim\pi` and standardized
noise :math:`\varepsilon`, sets :math:`x = \mu_k + \sigma_k\varepsilon`, takes the cotangent
:math:`g = \partial h/\partial x` in closed form, and turns it into one gradient per sample:
every estimator of the registry :data:`shared_math.ESTIMATORS`, the score-function
estimators of the weights, and Pyro's ``MixtureOfDiagNormals``.  All maths of the mixture
(densities, responsibilities, the estimators) is ``shared_math``'s.

Modules (this package exports the computation; :mod:`.report` and :mod:`.__main__` only
format and write):

* :mod:`.mixtures`: :class:`Mixture`, seeded random mixtures, draws;
* :mod:`.objectives`: cosine, polynomial and ELBO objectives with their exact gradients;
* :mod:`.estimators`: per-sample gradients of every estimator;
* :mod:`.summaries`: summed variances and bias z-tests;
* :mod:`.quadrature`: exact means and variances at D = 1, 2;
* :mod:`.grids`: the experiments (main grid, families, crossover, bias, robustness, SVI);
* :mod:`.report`: tables, figure, generated blocks of ``docs/estimators.md``.
"""

from .estimators import GROUPS, estimator_gradients, pyro_gradient_at, registry_per_sample, score_function_logits
from .grids import (
    COMPONENT_COUNTS,
    EVENT_SIZES,
    FAMILY_CASES,
    FAMILY_EVENT_SIZES,
    SEPARATIONS,
    Row,
    auto_estimator,
    config_seed,
    crossover_grid,
    family_grid,
    leading_overlap_cases,
    pyro_rao_blackwell_difference,
    quadrature_bias,
    ratio_to_better,
    robustness_grid,
    robustness_mixture,
    run_bias,
    run_configuration,
    run_study,
    svi_weight_trajectories,
    worst_robustness_quadrature,
)
from .mixtures import Draws, Mixture, draw, log_prob_and_grad, make_mixture, per_sample_parameters, responsibilities
from .objectives import (
    OBJECTIVES,
    Cosine,
    Elbo,
    Polynomial,
    leading_overlap_mixture,
    make_objective,
    swapped_coordinates,
    two_mode_problem,
)
from .quadrature import quadrature_variances, separation_profile
from .summaries import summed_variance, z_test

__all__ = [
    "COMPONENT_COUNTS",
    "Cosine",
    "Draws",
    "EVENT_SIZES",
    "Elbo",
    "FAMILY_CASES",
    "FAMILY_EVENT_SIZES",
    "GROUPS",
    "Mixture",
    "OBJECTIVES",
    "Polynomial",
    "Row",
    "SEPARATIONS",
    "auto_estimator",
    "config_seed",
    "crossover_grid",
    "draw",
    "estimator_gradients",
    "family_grid",
    "leading_overlap_cases",
    "leading_overlap_mixture",
    "log_prob_and_grad",
    "make_mixture",
    "make_objective",
    "per_sample_parameters",
    "pyro_gradient_at",
    "pyro_rao_blackwell_difference",
    "quadrature_bias",
    "quadrature_variances",
    "ratio_to_better",
    "registry_per_sample",
    "responsibilities",
    "robustness_grid",
    "robustness_mixture",
    "run_bias",
    "run_configuration",
    "run_study",
    "score_function_logits",
    "separation_profile",
    "summed_variance",
    "svi_weight_trajectories",
    "swapped_coordinates",
    "two_mode_problem",
    "worst_robustness_quadrature",
    "z_test",
]
