r"""Summaries of per-sample gradients: summed variance and bias z-tests.

The variance of a parameter group is the per-sample variance summed over its entries,
:math:`\sum_{\text{entries}}\mathrm{Var}_n[\hat g_n]`.  Bias is a z-score
:math:`(\bar{\hat g} - \nabla_\theta E[h]) / (s/\sqrt N)` per entry, against a Bonferroni
threshold; heavy-tailed entries are set apart, since their z-scores are not normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri


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


def bonferroni_threshold(num_entries: int, family_error: float = 1e-3) -> float:
    """|z| that a family of ``num_entries`` unbiased z-scores exceeds with probability ``family_error``."""
    return float(-ndtri(0.5 * family_error / num_entries))


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
    return ZTest(float(z[~heavy].max(initial=0.0)), float(z[heavy].max(initial=0.0)), int(heavy.sum()), int(z.size))
