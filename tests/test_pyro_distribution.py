"""``pyro_gmm.DiagNormalMixture``: shapes, values, per-sample gradients, validation, float32.

References:

* densities/moments: a brute-force torch computation (``Normal`` log densities and
  ``logsumexp``), tolerance 1e-12 in float64;
* per-sample gradients: ``shared_math.implicit_vjp`` / ``shared_math.hybrid_vjp`` on the
  same draws (float64, tolerance 1e-12, for D = 1..30, batched parameters, sample shapes);
* independently of ``shared_math``'s gradient code: central finite differences of the
  sample at fixed ``u = T(x; theta)``, with ``x(theta)`` recovered by inverting the
  distributional transform coordinate by coordinate (bisection), tolerance 1e-6 relative.
"""

from __future__ import annotations

import math

import pytest
import torch

import shared_math
import shared_math._sweeps
import shared_math.estimators
from pyro_gmm import DiagNormalMixture
from pyro_gmm.distribution import _MixtureSample


def random_parameters(batch_shape, num_components, event_size, *, seed=0, dtype=torch.float64, spread=1.5):
    generator = torch.Generator().manual_seed(seed)
    shape = tuple(batch_shape) + (num_components, event_size)
    locs = spread * torch.randn(shape, generator=generator, dtype=dtype)
    scales = 0.3 + torch.rand(shape, generator=generator, dtype=dtype)
    logits = torch.randn(tuple(batch_shape) + (num_components,), generator=generator, dtype=dtype)
    return locs, scales, logits


def leaves(*tensors):
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def brute_force_log_prob(x, locs, scales, logits):
    component = torch.distributions.Normal(locs, scales).log_prob(x[..., None, :]).sum(-1)
    return torch.logsumexp(torch.log_softmax(logits, -1) + component, -1)


# --------------------------------------------------------------------------------------
# Shapes and values
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "locs_batch, scales_batch, logits_batch, expected_batch",
    [((), (), (), ()), ((2,), (), (), (2,)), ((), (3, 1), (2,), (3, 2)), ((4, 1), (1, 5), (5,), (4, 5))],
)
@pytest.mark.parametrize("sample_shape", [(), (3,), torch.Size([2, 4])])
def test_shapes_and_values(locs_batch, scales_batch, logits_batch, expected_batch, sample_shape):
    num_components, event_size = 3, 2
    locs, _, _ = random_parameters(locs_batch, num_components, event_size, seed=1)
    _, scales, _ = random_parameters(scales_batch, num_components, event_size, seed=2)
    _, _, logits = random_parameters(logits_batch, num_components, event_size, seed=3)
    mixture = DiagNormalMixture(locs, scales, logits)
    assert mixture.has_rsample
    assert mixture.batch_shape == torch.Size(expected_batch)
    assert mixture.event_shape == torch.Size([event_size])
    expected = torch.Size(sample_shape) + torch.Size(expected_batch) + (event_size,)
    x = mixture.rsample(sample_shape)
    assert x.shape == expected
    assert mixture.sample(sample_shape).shape == expected
    assert mixture.shape(torch.Size(sample_shape)) == expected
    assert mixture.log_prob(x).shape == expected[:-1]
    torch.testing.assert_close(mixture.log_prob(x), brute_force_log_prob(x, locs, scales, logits), rtol=0, atol=1e-12)
    pi = torch.softmax(logits, -1)[..., None]
    mean = (pi * locs).sum(-2)
    variance = (pi * (scales**2 + locs**2)).sum(-2) - mean**2
    torch.testing.assert_close(mixture.mean, mean.expand(mixture.batch_shape + (event_size,)), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        mixture.variance, variance.expand(mixture.batch_shape + (event_size,)), rtol=0, atol=1e-12
    )
    assert mixture.support is torch.distributions.constraints.real_vector or mixture.support.event_dim == 1


def test_expand_keeps_values_and_gradients():
    locs, scales, logits = leaves(*random_parameters((), 3, 2, seed=4))
    mixture = DiagNormalMixture(locs, scales, logits, estimator="implicit")
    expanded = mixture.expand((5, 2))
    assert expanded.batch_shape == (5, 2) and expanded.event_shape == (2,)
    assert expanded.estimator == "implicit"
    torch.manual_seed(0)
    x = expanded.rsample((3,))
    assert x.shape == (3, 5, 2, 2)
    torch.testing.assert_close(expanded.log_prob(x), mixture.log_prob(x), rtol=0, atol=1e-12)
    cotangent = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1))
    (x * cotangent).sum().backward()
    reference = shared_math.implicit_vjp(x.detach(), locs.detach(), scales.detach(), logits.detach(), cotangent)
    for got, want in zip((locs.grad, scales.grad, logits.grad), reference):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_sample_moments_match_mean_and_variance():
    """Goodness of fit of ``rsample``: sample mean/variance within 5 standard errors (N=40000)."""
    locs, scales, logits = random_parameters((), 3, 2, seed=5)
    mixture = DiagNormalMixture(locs, scales, logits)
    torch.manual_seed(2)
    x = mixture.sample((40000,))
    n = x.shape[0]
    mean_error = (x.mean(0) - mixture.mean) / (x.std(0) / math.sqrt(n))
    assert mean_error.abs().max() < 5
    centred = (x - mixture.mean) ** 2
    variance_error = (centred.mean(0) - mixture.variance) / (centred.std(0) / math.sqrt(n))
    assert variance_error.abs().max() < 5
    # The weights too: fraction of samples closest to each component's mean vs pi (separated case).
    separated = DiagNormalMixture(torch.tensor([[-10.0], [0.0], [10.0]]), torch.ones(3, 1), logits)
    y = separated.sample((40000,))
    counts = torch.stack([(y[:, 0] < -5).sum(), ((y[:, 0] > -5) & (y[:, 0] < 5)).sum(), (y[:, 0] > 5).sum()])
    pi = torch.softmax(logits, -1)
    z = (counts / n - pi) / torch.sqrt(pi * (1 - pi) / n)
    assert z.abs().max() < 5


def test_sample_has_no_gradient_and_rsample_has():
    locs, scales, logits = leaves(*random_parameters((), 2, 3, seed=6))
    mixture = DiagNormalMixture(locs, scales, logits)
    assert not mixture.sample((4,)).requires_grad
    assert mixture.rsample((4,)).requires_grad
    assert mixture.rsample((4,)).grad_fn is not None


@pytest.mark.parametrize("event_size", [1, 2, 8, 9, 30])
def test_auto_estimator(event_size):
    """``"auto"`` is ``shared_math.resolve_estimator`` (the measured threshold lives there)."""
    locs, scales, logits = random_parameters((), 2, event_size)
    assert DiagNormalMixture(locs, scales, logits).estimator == shared_math.resolve_estimator("auto")
    assert DiagNormalMixture(locs, scales, logits, estimator="implicit").estimator == "implicit"
    assert DiagNormalMixture(locs, scales, logits, estimator="hybrid").estimator == "hybrid"


# --------------------------------------------------------------------------------------
# Per-sample gradients against the shared_math reference
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["implicit", "hybrid", "rao_blackwell"])
@pytest.mark.parametrize("event_size", [1, 2, 3, 5, 8, 9, 16, 30])
def test_gradients_equal_shared_math_reference(estimator, event_size):
    """Fix the RNG, rsample, backprop a random linear functional of x and compare with
    ``shared_math`` on the same draws (recovered by re-seeding ``draw_noise``).

    Batched parameters (locs (2, K, D), scales broadcast (K, D), logits (3, 1, K)) and a
    sample shape (4,): every gradient is summed back to its parameter's shape.
    """
    num_components = 3
    locs, _, _ = random_parameters((2,), num_components, event_size, seed=10 + event_size)
    _, scales, _ = random_parameters((), num_components, event_size, seed=20 + event_size)
    _, _, logits = random_parameters((3, 1), num_components, event_size, seed=30 + event_size)
    locs, scales, logits = leaves(locs, scales, logits)
    mixture = DiagNormalMixture(locs, scales, logits, estimator=estimator)
    assert mixture.batch_shape == (3, 2)
    sample_shape = (4,)
    torch.manual_seed(123)
    x = mixture.rsample(sample_shape)
    torch.manual_seed(123)
    component_one_hot, noise = mixture.draw_noise(sample_shape)
    plain = [t.detach() for t in (locs, scales, logits)]
    torch.testing.assert_close(x.detach(), shared_math.sample_from_noise(plain[0], plain[1], component_one_hot, noise))
    cotangent = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(7))
    (x * cotangent).sum().backward()
    if estimator == "implicit":
        reference = shared_math.implicit_vjp(x.detach(), *plain, cotangent)
    elif estimator == "hybrid":
        reference = shared_math.hybrid_vjp(x.detach(), *plain, component_one_hot, noise, cotangent)
    else:
        reference = shared_math.rao_blackwell_vjp(x.detach(), *plain, cotangent)
    for name, got, want, parameter in zip(
        ("locs", "scales", "logits"), (locs.grad, scales.grad, logits.grad), reference, (locs, scales, logits)
    ):
        assert got.shape == parameter.shape, name
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=name)
    if estimator == "hybrid":
        # Chosen-component gradient: locs_bar = sum over draws of one_hot * g (summed to locs' shape).
        chosen = component_one_hot[..., None] * cotangent[..., None, :]
        torch.testing.assert_close(locs.grad, shared_math._sweeps.sum_to_shape(chosen, locs.shape, torch))


def test_gradient_flows_only_to_parameters_that_require_it():
    locs, scales, logits = random_parameters((), 2, 3, seed=8)
    (locs,) = leaves(locs)
    x = DiagNormalMixture(locs, scales, logits).rsample((5,))
    x.sum().backward()
    assert locs.grad is not None and torch.isfinite(locs.grad).all()


def invert_transform(u, locs, scales, logits, *, steps=110, bound=60.0):
    """``x`` with ``distributional_transform(x) = u`` by bisection, one coordinate at a time.

    ``T_d`` depends on ``x_0..x_d`` only and increases in ``x_d`` (it is the conditional
    CDF), so the coordinates are solved in ancestral order.
    """
    x = torch.zeros_like(u)
    for d in range(u.shape[-1]):
        lower = torch.full(u.shape[:-1], -bound, dtype=u.dtype)
        upper = torch.full(u.shape[:-1], bound, dtype=u.dtype)
        for _ in range(steps):
            middle = 0.5 * (lower + upper)
            trial = x.clone()
            trial[..., d] = middle
            below = shared_math.distributional_transform(trial, locs, scales, logits)[..., d] < u[..., d]
            lower = torch.where(below, middle, lower)
            upper = torch.where(below, upper, middle)
        x[..., d] = 0.5 * (lower + upper)
    return x


@pytest.mark.parametrize("event_size", [1, 2, 3])
def test_implicit_gradient_matches_finite_differences_at_fixed_u(event_size):
    """Directional derivative <c, dx/dtheta v> from autograd vs central differences of
    x(theta +- h v) at fixed u (h = 1e-5, float64; tolerance 1e-6 relative + 1e-7)."""
    num_components = 3
    locs, scales, logits = random_parameters((), num_components, event_size, seed=40 + event_size, spread=1.0)
    params = leaves(locs, scales, logits)
    torch.manual_seed(5)
    x = DiagNormalMixture(*params, estimator="implicit").rsample((6,))
    generator = torch.Generator().manual_seed(9)
    cotangent = torch.randn(x.shape, dtype=x.dtype, generator=generator)
    directions = [torch.randn(p.shape, dtype=p.dtype, generator=generator) for p in params]
    (x * cotangent).sum().backward()
    autograd_value = sum((p.grad * v).sum() for p, v in zip(params, directions))

    u = shared_math.distributional_transform(x.detach(), locs, scales, logits)
    torch.testing.assert_close(invert_transform(u, locs, scales, logits), x.detach(), rtol=0, atol=1e-10)
    step = 1e-5
    plus = invert_transform(u, *(t + step * v for t, v in zip((locs, scales, logits), directions)))
    minus = invert_transform(u, *(t - step * v for t, v in zip((locs, scales, logits), directions)))
    finite_difference = ((plus - minus) / (2 * step) * cotangent).sum()
    assert abs(autograd_value - finite_difference) <= 1e-6 * abs(finite_difference) + 1e-7


def test_second_derivative_matches_finite_differences_1d():
    """create_graph=True: the backward reads the output sample, so the Hessian-vector product of
    E-style objectives sees x move with theta.  Checked against central differences of the
    implicit gradient at fixed u (D=1, x(theta) by bisection); tolerance 1e-6."""
    locs, scales, logits = random_parameters((), 3, 1, seed=50, spread=1.0)
    (locs_leaf,) = leaves(locs)
    torch.manual_seed(6)
    mixture = DiagNormalMixture(locs_leaf, scales, logits, estimator="implicit")
    x = mixture.rsample((5,))
    (gradient,) = torch.autograd.grad(torch.cos(x).sum(), locs_leaf, create_graph=True)
    direction = torch.randn(locs.shape, dtype=locs.dtype, generator=torch.Generator().manual_seed(3))
    (hessian_vector,) = torch.autograd.grad((gradient * direction).sum(), locs_leaf)

    u = shared_math.distributional_transform(x.detach(), locs, scales, logits)

    def gradient_at(shifted_locs):
        moved = invert_transform(u, shifted_locs, scales, logits)
        return shared_math.implicit_vjp(moved, shifted_locs, scales, logits, -torch.sin(moved))[0]

    step = 1e-5
    finite_difference = (gradient_at(locs + step * direction) - gradient_at(locs - step * direction)) / (2 * step)
    torch.testing.assert_close(hessian_vector, finite_difference, rtol=1e-6, atol=1e-7)


def test_torch_func_grad_and_vmap():
    """The Function works under ``torch.func.grad`` and ``vmap(grad)`` (generated vmap rule)."""
    locs, scales, logits = random_parameters((), 3, 2, seed=60)
    mixture = DiagNormalMixture(locs, scales, logits)
    torch.manual_seed(0)
    component_one_hot, noise = mixture.draw_noise((4,))
    x = shared_math.sample_from_noise(locs, scales, component_one_hot, noise)

    def objective(l, s, g):
        sample = _MixtureSample.apply(x, l, s, g, component_one_hot, noise, "implicit")
        return torch.cos(sample).sum()

    grads = torch.func.grad(objective, argnums=(0, 1, 2))(locs, scales, logits)
    reference = shared_math.implicit_vjp(x, locs, scales, logits, -torch.sin(x))
    for got, want in zip(grads, reference):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    batch_of_locs = locs + torch.randn((5,) + locs.shape, dtype=locs.dtype, generator=torch.Generator().manual_seed(1))
    batched = torch.func.vmap(torch.func.grad(lambda l: objective(l, scales, logits)))(batch_of_locs)
    for i in range(5):
        want = shared_math.implicit_vjp(x, batch_of_locs[i], scales, logits, -torch.sin(x))[0]
        torch.testing.assert_close(batched[i], want, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def _good():
    return random_parameters((), 2, 3, seed=70)


@pytest.mark.parametrize(
    "which, value, pattern",
    [
        ("scales", 0.0, "scales"),
        ("scales", -1.0, "scales"),
        ("scales", math.nan, "scales"),
        ("scales", math.inf, "scales"),
        ("locs", math.nan, "locs"),
        ("locs", math.inf, "locs"),
        ("logits", math.nan, "logits"),
    ],
)
def test_bad_values_raise_naming_the_parameter(which, value, pattern):
    locs, scales, logits = _good()
    params = {"locs": locs, "scales": scales, "logits": logits}
    params[which] = params[which].clone()
    params[which].view(-1)[0] = value
    with pytest.raises(ValueError, match=pattern):
        DiagNormalMixture(params["locs"], params["scales"], params["logits"], validate_args=True)
    # Without validation construction does not inspect values.
    DiagNormalMixture(params["locs"], params["scales"], params["logits"], validate_args=False)


@pytest.mark.parametrize("validate_args", [True, False])
@pytest.mark.parametrize(
    "shapes, pattern",
    [
        (((2, 3), (2, 3), (3,)), "logits"),  # K mismatch between logits and locs
        (((2, 3), (2, 4), (2,)), "scales"),  # D mismatch
        (((2, 3), (3, 3), (2,)), "scales"),  # K mismatch between scales and locs
        (((4, 2, 3), (5, 2, 3), (2,)), "scales"),  # batch shapes do not broadcast
        (((3,), (3,), (1,)), "locs"),  # locs not (..., K, D)
        (((2, 3), (2, 3), ()), "logits"),
    ],
)
def test_shape_mismatches_always_raise(validate_args, shapes, pattern):
    locs, scales, logits = (torch.zeros(shape) + (1.0 if i == 1 else 0.0) for i, shape in enumerate(shapes))
    with pytest.raises(ValueError, match=pattern):
        DiagNormalMixture(locs, scales, logits, validate_args=validate_args)


def test_bad_estimator_and_sample_outside_support():
    locs, scales, logits = _good()
    with pytest.raises(ValueError, match="estimator"):
        DiagNormalMixture(locs, scales, logits, estimator="score")
    mixture = DiagNormalMixture(locs, scales, logits, validate_args=True)
    with pytest.raises(ValueError):
        mixture.log_prob(torch.tensor([0.0, math.nan, 1.0], dtype=locs.dtype))


# --------------------------------------------------------------------------------------
# float32 on hard parameters
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["implicit", "hybrid", "rao_blackwell"])
def test_float32_hard_parameters_stay_finite(estimator):
    """Scales 1e-3..1e3, components 1e3 apart, logits of size 30 (three components drawn,
    one with weight e^-60): float32 samples, log densities and gradients are finite and
    match the float64 ``shared_math`` gradient at the same (float32) draws to 1e-3 relative
    (entries above 1e-5 of the largest; the rest to 1e-5 of the largest)."""
    event_size = 4
    locs = torch.tensor([[0.0] * event_size, [1e3] * event_size, [-1e3] * event_size, [2e3] * event_size])
    scales = torch.tensor([[1e-3] * event_size, [1e3] * event_size, [1.0] * event_size, [1e-2, 1e2, 1e-3, 1e3]])
    logits = torch.tensor([30.0, -30.0, 29.0, 29.5])
    params = leaves(locs, scales, logits)
    mixture = DiagNormalMixture(*params, estimator=estimator, validate_args=True)
    sample_shape = (3000,)
    torch.manual_seed(11)
    x = mixture.rsample(sample_shape)
    torch.manual_seed(11)
    component_one_hot, noise = mixture.draw_noise(sample_shape)
    assert (component_one_hot.sum(0)[[0, 2, 3]] > 100).all()
    assert x.dtype == torch.float32
    assert torch.isfinite(x).all() and torch.isfinite(mixture.log_prob(x)).all()
    (torch.sin(x / 100.0).sum() + mixture.log_prob(x.detach()).sum()).backward()
    cotangent = torch.cos(x.detach().double() / 100.0) / 100.0
    wide = [t.double() for t in (locs, scales, logits)]
    reference = shared_math.sample_vjp(
        estimator, x.detach().double(), *wide, component_one_hot.double(), noise.double(), cotangent
    )
    x64 = x.detach().double()
    log_prob_parts = torch.autograd.grad(
        DiagNormalMixture(*[t.requires_grad_() for t in wide]).log_prob(x64).sum(), wide
    )
    names = ("locs", "scales", "logits")
    for name, parameter, sample_part, density_part in zip(names, params, reference, log_prob_parts):
        assert torch.isfinite(parameter.grad).all(), name
        want = sample_part + density_part
        scale = float(want.abs().max())
        torch.testing.assert_close(parameter.grad.double(), want, rtol=1e-3, atol=1e-5 * scale, msg=name)


def test_clear_import_error_without_torch_or_pyro():
    """Without torch (or Pyro) importable, ``import pyro_gmm`` names the extra to install."""
    import subprocess
    import sys
    from pathlib import Path

    for missing in ("torch", "pyro"):
        code = (
            f"import sys; sys.modules[{missing!r}] = None\n"
            "try:\n    import pyro_gmm\nexcept ImportError as error:\n    print(error)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert "pip install gmm-reparam[pyro]" in result.stdout, (missing, result.stdout, result.stderr)
