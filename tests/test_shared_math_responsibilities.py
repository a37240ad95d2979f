"""``shared_math.responsibilities`` against a brute-force float64 reference (``scipy.stats``
densities multiplied out, no log space), for every component family, on every backend.

Tolerance 1e-12 relative (float64; the reference is computed where no density underflows).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import scipy.stats

import shared_math

STANDARDIZED = {
    "normal": scipy.stats.norm(),
    "logistic": scipy.stats.logistic(),
    "laplace": scipy.stats.laplace(),
    "cauchy": scipy.stats.cauchy(),
    "gumbel": scipy.stats.gumbel_r(),
    "student_t": scipy.stats.t(3.5),
}


def _reference(x, locs, scales, logits, family):
    """``pi_k prod_d g(z_kd)/sigma_kd``, normalized over k, in plain float64 products."""
    density = STANDARDIZED[family].pdf((x[..., None, :] - locs) / scales) / scales
    joint = scipy.special.softmax(logits, axis=-1) * np.prod(density, axis=-1)
    return joint / joint.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("family", sorted(STANDARDIZED))
def test_responsibilities_match_brute_force(xp, family):
    """Sample shape (5, 2) against batch shape (2,), K = 3, D = 4; rows sum to one."""
    rng = np.random.default_rng(11)
    locs = rng.standard_normal((2, 3, 4))
    scales = np.exp(0.3 * rng.standard_normal((2, 3, 4)))
    logits = rng.standard_normal((2, 3))
    x = rng.standard_normal((5, 2, 4))

    def responsibilities(x, locs, scales, logits, *shape_params):
        return shared_math.responsibilities(x, locs, scales, logits, family=family, shape_params=shape_params)

    arrays = [x, locs, scales, logits] + ([np.array(3.5)] if family == "student_t" else [])
    result = xp.to_numpy(xp.call(responsibilities, *(xp.asarray(a) for a in arrays)))
    assert result.shape == (5, 2, 3)
    np.testing.assert_allclose(result, _reference(x, locs, scales, logits, family), rtol=1e-12, atol=0)
    np.testing.assert_allclose(result.sum(-1), 1.0, rtol=1e-14)


def test_responsibilities_far_from_every_component_stay_finite():
    """A point 60 and 61 scales from two unit Normal components (densities below 1e-780, zero
    as float64 products): the log-ratio is still exact, log r_1 - log r_0 = (61² - 60²)/2."""
    locs = np.array([[0.0], [1.0]])
    scales = np.ones((2, 1))
    result = shared_math.responsibilities(np.array([61.0]), locs, scales, np.zeros(2))
    np.testing.assert_allclose(np.log(result[1]) - np.log(result[0]), 60.5, rtol=1e-12)
    assert np.isfinite(result).all()
