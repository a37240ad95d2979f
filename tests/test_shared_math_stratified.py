r"""``shared_math.stratified``: the grid weighting behind ``Stratified_ELBO``, on every backend.

Discrete checks against brute-force sums written as explicit loops over the grid: two
stratified sites, the second's weights depending on the first's component (so a term of the
second site alone needs the first site's weights too), plus a plate.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

import shared_math
from shared_math import Stratum

RNG = np.random.default_rng(0)
K1, K2, N = 2, 3, 4
# Site 1: global, stratum axis -3 (plates at -1: data of size N; nothing at -2 in this layout).
LOG_PI1 = np.log(RNG.dirichlet(np.ones(K1)))  # (K1,)
# Site 2: inside the data plate, stratum axis -4, weights depend on site 1's component.
LOG_PI2 = np.log(RNG.dirichlet(np.ones(K2), size=(K1, N)))  # (K1, N, K2)


def strata(backend):
    log_pi1 = LOG_PI1.reshape(K1, 1, 1)  # axes (-3, -2, -1)
    log_pi2 = np.moveaxis(LOG_PI2, -1, 0).reshape(K2, K1, 1, N)  # axes (-4, -3, -2, -1)
    return [
        Stratum("a", -3, backend.asarray(log_pi1), {-1: "data"}),
        Stratum("b", -4, backend.asarray(log_pi2), {-1: "data"}),
    ]


def brute_force_expectation(values):
    r""":math:`\sum_{k_1,k_2}\pi_1[k_1]\sum_n\pi_2[k_1,n,k_2]\,T[k_2,k_1,n]` for ``values`` ``(K2, K1, N)``."""
    total = 0.0
    for k1, k2, n in itertools.product(range(K1), range(K2), range(N)):
        total += np.exp(LOG_PI1[k1] + LOG_PI2[k1, n, k2]) * values[k2, k1, n]
    return total


def test_terms_of_either_site_get_their_expectation(xp):
    term_b = RNG.normal(size=(K2, 1, 1, N))  # varies along site b's axis only (not a's)
    term_a = RNG.normal(size=(K1, 1, N))  # varies along a's axis and the plate
    weights_b = shared_math.term_log_weights(term_b.shape, strata(xp), "b_term")
    weights_a = shared_math.term_log_weights(term_a.shape, strata(xp), "a_term")
    got_b = float(xp.to_numpy(shared_math.stratified_sum(xp.asarray(term_b), weights_b)))
    got_a = float(xp.to_numpy(shared_math.stratified_sum(xp.asarray(term_a), weights_a)))
    expected_b = brute_force_expectation(np.broadcast_to(term_b[:, :, 0, :], (K2, K1, N)))
    expected_a = brute_force_expectation(np.broadcast_to(term_a[None, :, 0, :], (K2, K1, N)))
    assert got_b == pytest.approx(expected_b, rel=1e-12)  # needs pi_1 through pi_2's dependence
    assert got_a == pytest.approx(expected_a, rel=1e-12)
    constant = RNG.normal(size=(N,))
    assert shared_math.term_log_weights(constant.shape, strata(xp), "c") is None


def test_a_term_pooling_the_plate_raises(xp):
    pooled = RNG.normal(size=(K2, 1, 1, 1))  # depends on b, lacks the data plate along which b varies
    with pytest.raises(ValueError, match="site 'pooled'.*'b'.*batch axis -1 \\(plate 'data'\\)"):
        shared_math.term_log_weights(pooled.shape, strata(xp), "pooled")


def test_term_axes_must_be_plates_or_strata():
    layers = strata(BACKEND_NUMPY)
    plates = {-1: {N}}
    shared_math.check_term_axes((K2, K1, 1, N), layers, plates, "fine")
    with pytest.raises(ValueError, match="site 'shifted'.*size 3 along batch axis -1, which is a plate axis of size 4"):
        shared_math.check_term_axes((K1, 1, K2), layers, plates, "shifted")
    with pytest.raises(ValueError, match="size 5 along batch axis -4, which is the stratum axis of site 'b'"):
        shared_math.check_term_axes((5, 1, 1, 1), layers, plates, "wrong")
    with pytest.raises(ValueError, match="which is no plate or stratum axis"):
        shared_math.check_term_axes((2, 1, 1, 1, 1), layers, plates, "left")


def test_stratified_log_weight_is_the_grid_log_sum(xp):
    log_ratio = RNG.normal(size=(K2, K1, 1, N))
    got = xp.to_numpy(shared_math.stratified_log_weight(xp.asarray(log_ratio), strata(xp), independent_dims=(-1,)))
    assert got.shape == (1, 1, 1, N)
    for n in range(N):
        terms = [
            LOG_PI1[k1] + LOG_PI2[k1, n, k2] + log_ratio[k2, k1, 0, n]
            for k1, k2 in itertools.product(range(K1), range(K2))
        ]
        assert got[0, 0, 0, n] == pytest.approx(logsumexp(terms), rel=1e-12)
    with pytest.raises(ValueError, match="importance_weighted=True.*'b'.*plate 'data'"):
        shared_math.stratified_log_weight(xp.asarray(log_ratio), strata(xp), independent_dims=())


class _NumpyBackend:
    @staticmethod
    def asarray(array):
        return np.asarray(array, dtype=np.float64)


BACKEND_NUMPY = _NumpyBackend()
