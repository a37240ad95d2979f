r"""Per-sample implicit gradients checked by re-solving the sampler, with no reference code.

The sample :math:`x(\theta)` is *defined* by :math:`T(x(\theta);\theta) = u` with the
uniform :math:`u` fixed (Graves 2016, Eq. 6).  So: fix :math:`u = T(x;\theta)`, perturb
one parameter entry by :math:`\pm h`, solve :math:`x(\theta\pm h) = T^{-1}(u;\theta\pm h)`
numerically one dimension at a time (``scipy.optimize.brentq`` on the 1-D conditional
mixture CDF :math:`F_d(\cdot\mid x_{<d})`, written here with ``scipy.special``), and
compare the central difference :math:`(x(\theta+h)-x(\theta-h))/2h` with
``implicit_jvp`` (one-hot tangent) and, through :math:`\langle g, \cdot\rangle`, with
``implicit_vjp``.

Error budget: root tolerance ~1e-14 gives ~1e-14/h = 1e-9 in the quotient; truncation
:math:`h^2 x'''/6 \approx 1e-10`.  Criterion: :math:`|a-e| \le 10^{-8}(|e| + \max|e|)` per
entry of each block :math:`\partial x/\partial\,\mathrm{locs}` etc. (``max`` over the
block); the errors achieved are 1e-11 to 4e-10.
"""

from __future__ import annotations

import _reference as ref
import numpy as np
import pytest
import scipy.optimize
import scipy.special

import shared_math

STEP = 1e-5
RTOL = 1e-8


def conditional_cdf(value, previous, locs, scales, logits):
    r""":math:`F_d(\mathrm{value}\mid x_{<d})` for d = len(previous); parameters unbatched (K, D)."""
    d = len(previous)
    log_joint = scipy.special.log_softmax(logits) + np.sum(
        -0.5 * ((previous - locs[:, :d]) / scales[:, :d]) ** 2 - np.log(scales[:, :d]), axis=1
    )
    weights = scipy.special.softmax(log_joint)
    return float(np.sum(weights * scipy.special.ndtr((value - locs[:, d]) / scales[:, d])))


def transform(x, locs, scales, logits):
    """:math:`u = T(x)`, one conditional CDF per dimension."""
    return np.array([conditional_cdf(x[d], x[:d], locs, scales, logits) for d in range(len(x))])


def inverse_transform(u, locs, scales, logits):
    r""":math:`x = T^{-1}(u)` by ``brentq`` per dimension in ancestral order (xtol 1e-14, rtol 4 eps)."""
    x = []
    for d in range(len(u)):
        previous = np.array(x)
        low = np.min(locs[:, d] - 40.0 * scales[:, d])
        high = np.max(locs[:, d] + 40.0 * scales[:, d])
        root = scipy.optimize.brentq(
            lambda value: conditional_cdf(value, previous, locs, scales, logits) - u[d],
            low,
            high,
            xtol=1e-14,
            rtol=4 * np.finfo(float).eps,
            maxiter=500,
        )
        x.append(root)
    return np.array(x)


def finite_difference_jacobian(x, locs, scales, logits):
    """``{name: array}`` with ``array[i]`` = central difference of x w.r.t. entry i (flat) of ``name``."""
    u = transform(x, locs, scales, logits)
    # The solver inverts T: re-solving at theta itself gives x back.
    np.testing.assert_allclose(inverse_transform(u, locs, scales, logits), x, rtol=0, atol=1e-12)
    parameters = dict(locs=locs, scales=scales, logits=logits)
    columns = {}
    for name, value in parameters.items():
        rows = []
        for i in range(value.size):
            solved = []
            for sign in (1.0, -1.0):
                shifted = dict(parameters)
                moved = value.copy().reshape(-1)
                moved[i] += sign * STEP
                shifted[name] = moved.reshape(value.shape)
                solved.append(inverse_transform(u, **shifted))
            rows.append((solved[0] - solved[1]) / (2 * STEP))
        columns[name] = np.array(rows)
    return columns


@pytest.mark.parametrize("num_components,event_size,spread", [(2, 1, 1.5), (3, 3, 1.5), (2, 7, 1.5), (3, 4, 4.0)])
def test_implicit_gradients_match_resolved_sampler(num_components, event_size, spread):
    rng = np.random.default_rng(100 * num_components + event_size)
    locs, scales, logits = ref.random_parameters(
        rng, (num_components, event_size), (num_components, event_size), (num_components,), spread=spread
    )
    x, _, _ = ref.sample_mixture(rng, locs, scales, logits)
    difference = finite_difference_jacobian(x, locs, scales, logits)

    # Forward mode: one-hot tangents, one per parameter entry, stacked into the block dx/d(name).
    for name, value in dict(locs=locs, scales=scales, logits=logits).items():
        rows = []
        for i in range(value.size):
            tangent = np.zeros(value.size)
            tangent[i] = 1.0
            tangents = {f"{name}_dot": tangent.reshape(value.shape)}
            rows.append(shared_math.implicit_jvp(x, locs, scales, logits, **tangents))
        ref.assert_close(np.array(rows), difference[name], RTOL, what=f"dx/d{name}")

    # Reverse mode: <g, dx/dtheta_i> for every entry i at once.
    g = rng.standard_normal(event_size)
    bars = shared_math.implicit_vjp(x, locs, scales, logits, g)
    for name, bar in zip(("locs", "scales", "logits"), bars):
        ref.assert_close(bar.reshape(-1), difference[name] @ g, RTOL, what=f"{name}_bar")
