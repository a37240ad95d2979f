r"""``pyro_gmm.MultivariateNormalMixture``, the swap-in with ``MultivariateNormal`` components, and
``AutoMultivariateNormalMixture``.

References:

* values: ``torch.distributions.MixtureSameFamily(Categorical, MultivariateNormal)`` (1e-12) and
  NumPy moments;
* per-sample gradients: the full-Jacobian reference ``_reference_full_covariance`` (Schur
  complements, ``jacrev``, triangular solve), 1e-9, with one mixture per batch element so
  that each draw's gradient is a parameter's gradient;
* the glue: ``shared_math.full_covariance_sample_vjp`` on the same draws (recovered by
  re-seeding, ``draw_noise``), 1e-12; and a diagonal ``scale_tril`` against
  ``DiagNormalMixture`` with the same seed: same draws, same gradients (1e-12).
"""

from __future__ import annotations

import _reference as diag_ref
import _reference_full_covariance as ref
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import shared_math
from pyro_gmm import (
    AutoMultivariateNormalMixture,
    DiagNormalMixture,
    MultivariateNormalMixture,
    ReparamMixtureSameFamily,
)

ESTIMATORS = ("implicit", "hybrid", "rao_blackwell")


def mixture_parameters(batch_shape, num_components, event_size, seed, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    arrays = ref.random_mixture(rng, batch_shape, num_components, event_size)
    return [torch.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]


def stock_mixture(locs, scale_tril, logits):
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=logits),
        torch.distributions.MultivariateNormal(locs, scale_tril=scale_tril),
    )


@pytest.mark.parametrize(
    "locs_batch,tril_batch,logits_batch,expected",
    [((), (), (), ()), ((2,), (), (), (2,)), ((), (3, 1), (2,), (3, 2)), ((4, 1), (1, 5), (5,), (4, 5))],
)
@pytest.mark.parametrize("sample_shape", [(), (3,)])
def test_shapes_and_values(locs_batch, tril_batch, logits_batch, expected, sample_shape):
    """Batch/event shapes, ``log_prob`` against torch's ``MixtureSameFamily(MultivariateNormal)``,
    moments against NumPy, component draws, log weights, ``expand``."""
    num_components, event_size = 3, 2
    locs = mixture_parameters(locs_batch, num_components, event_size, 1)[0]
    scale_tril = mixture_parameters(tril_batch, num_components, event_size, 2)[1]
    logits = mixture_parameters(logits_batch, num_components, event_size, 3)[2]
    mixture = MultivariateNormalMixture(locs, scale_tril, logits, validate_args=True)
    assert mixture.has_rsample and mixture.batch_shape == expected and mixture.event_shape == (event_size,)
    x = mixture.rsample(sample_shape)
    assert x.shape == torch.Size(sample_shape) + expected + (event_size,)
    torch.testing.assert_close(
        mixture.log_prob(x), stock_mixture(locs, scale_tril, logits).log_prob(x), rtol=0, atol=1e-12
    )
    stock = stock_mixture(
        *(
            a.detach().expand(expected + a.shape[len(a.shape) - n :])
            for a, n in ((locs, 2), (scale_tril, 3), (logits, 1))
        )
    )
    torch.testing.assert_close(mixture.mean, stock.mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(mixture.variance, stock.variance, rtol=0, atol=1e-12)
    pi = torch.softmax(logits, -1)[..., None, None]
    second = (pi * (scale_tril @ scale_tril.mT + locs[..., :, None] * locs[..., None, :])).sum(-3)
    covariance = second - mixture.mean[..., :, None] * mixture.mean[..., None, :]
    torch.testing.assert_close(mixture.covariance_matrix, covariance.expand(expected + (2, 2)), rtol=0, atol=1e-12)
    assert mixture.component_rsample(sample_shape).shape == torch.Size(sample_shape) + expected + (
        num_components,
        event_size,
    )
    torch.testing.assert_close(mixture.mixture_log_weights.exp(), mixture.probs)
    expanded = mixture.expand((7,) + tuple(expected))
    assert expanded.batch_shape == (7,) + tuple(expected) and expanded.rsample().shape == (7,) + tuple(expected) + (2,)


@pytest.mark.parametrize("event_size", [1, 3, 8, 16])
def test_per_sample_gradients_match_full_jacobian(event_size):
    """One draw per mixture of a batch of 4: the ``implicit`` gradient of each equals the reference (1e-9)."""
    locs, scale_tril, logits = mixture_parameters((4,), 3, event_size, 10 + event_size)
    mixture = MultivariateNormalMixture(locs, scale_tril, logits, estimator="implicit")
    x = mixture.rsample()
    cotangent = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(event_size))
    grads = torch.autograd.grad(x, (locs, scale_tril, logits), cotangent)
    expected = ref.implicit_vjp(
        x.detach().numpy(), *(a.detach().numpy() for a in (locs, scale_tril, logits)), cotangent.numpy()
    )
    for name, actual, target in zip(("locs", "scale_tril", "logits"), grads, expected):
        diag_ref.assert_close(actual.numpy(), target, 1e-9, what=name)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_rsample_gradients_are_shared_math_on_the_same_draws(estimator):
    """The backward of ``rsample`` is ``shared_math.full_covariance_sample_vjp`` at the draws (1e-12);
    a second ``backward`` through ``create_graph=True`` runs and gives finite values."""
    locs, scale_tril, logits = mixture_parameters((2,), 3, 4, 21)
    mixture = MultivariateNormalMixture(locs, scale_tril, logits, estimator=estimator)
    torch.manual_seed(5)
    x = mixture.rsample((6,))
    torch.manual_seed(5)
    one_hot, noise = mixture.draw_noise((6,))
    torch.testing.assert_close(
        x, shared_math.full_covariance_sample_from_noise(locs, scale_tril, one_hot, noise), rtol=0, atol=1e-12
    )
    cotangent = torch.cos(x.detach())
    grads = torch.autograd.grad(x, (locs, scale_tril, logits), cotangent, create_graph=True)
    expected = shared_math.full_covariance_sample_vjp(
        estimator, x.detach(), *(a.detach() for a in (locs, scale_tril, logits)), one_hot, noise, cotangent
    )
    for actual, target in zip(grads, expected):
        diag_ref.assert_close(actual.detach().numpy(), target.numpy(), 1e-12)
    second = torch.autograd.grad(grads[2].sum(), logits)[0]
    assert torch.all(torch.isfinite(second))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_diagonal_factor_reproduces_diag_normal_mixture(estimator):
    """``scale_tril = diag(sigma)`` and the same seed: the same draws as ``DiagNormalMixture`` and the
    same gradients for ``locs``, ``logits`` and the diagonal of ``scale_tril`` (1e-12)."""
    generator = torch.Generator().manual_seed(3)
    locs = torch.randn(2, 4, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    scales = (0.5 + torch.rand(2, 4, 5, generator=generator, dtype=torch.float64)).requires_grad_(True)
    logits = torch.randn(2, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    tril = torch.diag_embed(scales)
    torch.manual_seed(9)
    x_full = MultivariateNormalMixture(locs, tril, logits, estimator=estimator).rsample((3,))
    torch.manual_seed(9)
    x_diag = DiagNormalMixture(locs, scales, logits, estimator=estimator).rsample((3,))
    torch.testing.assert_close(x_full, x_diag, rtol=0, atol=1e-12)
    cotangent = torch.sin(x_full.detach())
    full = torch.autograd.grad(x_full, (locs, scales, logits), cotangent)  # scales through diag_embed
    diagonal = torch.autograd.grad(x_diag, (locs, scales, logits), cotangent)
    for actual, target in zip(full, diagonal):
        diag_ref.assert_close(actual.numpy(), target.numpy(), 1e-12)


@pytest.mark.parametrize("given", ["scale_tril", "covariance_matrix", "precision_matrix"])
def test_swap_in_accepts_multivariate_normal(given):
    """``ReparamMixtureSameFamily(Categorical, MultivariateNormal(...))``: log_prob as the stock class,
    draws as ``MultivariateNormalMixture`` with the same seed; per-draw gradients equal the reference
    (1e-9), chained through torch's single Cholesky conversion for covariance/precision."""
    locs, scale_tril, logits = mixture_parameters((4,), 3, 5, 31)
    leaf = {
        "scale_tril": scale_tril,
        "covariance_matrix": (scale_tril @ scale_tril.mT).detach().requires_grad_(True),
        "precision_matrix": torch.linalg.inv(scale_tril @ scale_tril.mT).detach().requires_grad_(True),
    }[given]
    components = dist.MultivariateNormal(locs, **{given: leaf})
    mixture = ReparamMixtureSameFamily(dist.Categorical(logits=logits), components, estimator="implicit")
    assert mixture.has_rsample
    torch.manual_seed(2)
    x = mixture.rsample((1,))
    torch.manual_seed(2)
    direct = MultivariateNormalMixture(locs, components.scale_tril, logits, estimator="implicit").rsample((1,))
    torch.testing.assert_close(x, direct, rtol=0, atol=1e-10)
    stock = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(logits=logits), components)
    torch.testing.assert_close(mixture.log_prob(x), stock.log_prob(x), rtol=0, atol=1e-12)
    cotangent = torch.cos(x.detach())
    grads = torch.autograd.grad(x, (locs, leaf, logits), cotangent, retain_graph=True)
    tril_value = components.scale_tril.detach().numpy()
    expected = ref.implicit_vjp(
        x.detach().numpy()[0], locs.detach().numpy(), tril_value, logits.detach().numpy(), cotangent.numpy()[0]
    )
    diag_ref.assert_close(grads[0].numpy(), expected[0], 1e-9, what="locs")
    diag_ref.assert_close(grads[2].numpy(), expected[2], 1e-9, what="logits")
    if given == "scale_tril":
        diag_ref.assert_close(grads[1].numpy(), expected[1], 1e-9, what="scale_tril")
    else:  # chain rule through the Cholesky factor: <scale_tril_bar, dL/d(matrix)>
        probe = torch.autograd.grad(components.scale_tril, leaf, torch.tensor(expected[1]))[0]
        diag_ref.assert_close(grads[1].numpy(), probe.numpy(), 1e-9, what=given)


def test_swap_in_rejects_other_components():
    with pytest.raises(ValueError, match="MultivariateNormal"):
        ReparamMixtureSameFamily(dist.Categorical(logits=torch.zeros(2)), dist.Exponential(torch.ones(2)))


def test_validation_names_scale_tril():
    locs, scale_tril, logits = (a.detach() for a in mixture_parameters((), 2, 3, 41))
    bad_diagonal = scale_tril.clone()
    bad_diagonal[0, 1, 1] = -0.5
    with pytest.raises(ValueError, match="scale_tril"):
        MultivariateNormalMixture(locs, bad_diagonal, logits, validate_args=True)
    with pytest.raises(ValueError, match="scale_tril"):
        MultivariateNormalMixture(locs, scale_tril @ scale_tril.mT, logits, validate_args=True)
    nan = scale_tril.clone()
    nan[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="scale_tril"):
        MultivariateNormalMixture(locs, nan, logits, validate_args=True)
    with pytest.raises(ValueError, match="scale_tril"):  # shapes: always
        MultivariateNormalMixture(locs, scale_tril[..., :2], logits, validate_args=False)
    with pytest.raises(ValueError, match="estimator"):
        MultivariateNormalMixture(locs, scale_tril, logits, estimator="nope")


@pytest.mark.parametrize("full_covariance", [False, True], ids=["DiagNormalMixture", "MultivariateNormalMixture"])
def test_default_validation_follows_pyro_enable_validation(full_covariance):
    """``validate_args=None`` follows ``pyro.enable_validation`` (the constructors skip
    torch's own constraint pass, so this is the only thing keeping the class-wide setting
    in force): invalid parameters and values raise with validation on, pass with it off, and
    an instance built with it on follows a later switch, as torch's distributions do."""
    locs, scale_tril, logits = (a.detach() for a in mixture_parameters((), 2, 3, 43))
    scales = torch.diagonal(scale_tril, dim1=-2, dim2=-1).clone()

    def build(bad=False):
        if full_covariance:
            tril = scale_tril.clone()
            if bad:
                tril[0, 1, 1] = -0.5
            return MultivariateNormalMixture(locs, tril, logits)
        chosen = scales.clone()
        if bad:
            chosen[0, 1] = -0.5
        return DiagNormalMixture(locs, chosen, logits)

    nan_point = torch.full((3,), float("nan"), dtype=locs.dtype)
    with pyro.validation_enabled(True):
        mixture = build()
        with pytest.raises(ValueError):
            build(bad=True)
        with pytest.raises(ValueError):
            mixture.log_prob(nan_point)
    with pyro.validation_enabled(False):
        build(bad=True)
        assert torch.isnan(mixture.log_prob(nan_point))  # the instance follows the switch


def test_component_rsample_is_reparameterized():
    r""":math:`x_k = \mu_k + L_k\varepsilon_k`: gradients of :math:`\sum a\cdot x_k` are :math:`a` for
    every :math:`\mu_k` (times the number of draws) and :math:`\mathrm{tril}(a\varepsilon_k^\top)`."""
    locs, scale_tril, logits = mixture_parameters((), 3, 4, 51)
    mixture = MultivariateNormalMixture(locs, scale_tril, logits)
    torch.manual_seed(0)
    draws = mixture.component_rsample((5,))
    torch.manual_seed(0)
    noise = torch.randn(5, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(draws, locs + (scale_tril @ noise[..., None])[..., 0], rtol=0, atol=1e-12)
    weights = torch.arange(4, dtype=torch.float64)
    locs_grad, tril_grad = torch.autograd.grad((draws * weights).sum(), (locs, scale_tril))
    torch.testing.assert_close(locs_grad, 5 * weights.expand(3, 4))
    torch.testing.assert_close(tril_grad, torch.tril((weights[:, None] * noise[..., None, :]).sum(0)))


def test_float32_draws_and_gradients():
    locs, scale_tril, logits = mixture_parameters((), 4, 6, 61, dtype=torch.float32)
    x = MultivariateNormalMixture(locs, scale_tril, logits).rsample((256,))
    assert x.dtype == torch.float32
    torch.cos(x).sum().backward()
    for parameter in (locs, scale_tril, logits):
        assert parameter.grad.dtype == torch.float32 and torch.all(torch.isfinite(parameter.grad))


def test_autoguide_initialization_and_step():
    """Parameter shapes; initial factors ``init_scale * I``; initial locations spread by
    ``shared_math.component_offsets``; one SVI step runs and changes every parameter."""
    pyro.clear_param_store()

    def model():
        z = pyro.sample("z", dist.Normal(torch.zeros(3), 1.0).to_event(1))
        pyro.sample("y", dist.Normal(z[0] * z[1], 0.5), obs=torch.tensor(1.0))

    guide = AutoMultivariateNormalMixture(
        model, num_components=3, init_scale=0.2, init_loc_fn=pyro.infer.autoguide.init_to_sample
    )
    guide()
    posterior = guide.get_posterior()
    assert isinstance(posterior, MultivariateNormalMixture) and posterior.batch_shape == ()
    assert posterior.locs.shape == (3, 3) and posterior.scale_tril.shape == (3, 3, 3)
    torch.testing.assert_close(posterior.scale_tril.detach(), 0.2 * torch.eye(3).expand(3, 3, 3), rtol=1e-6, atol=1e-7)
    offsets = torch.as_tensor(shared_math.component_offsets(3, 3, 0), dtype=posterior.locs.dtype)
    centre = posterior.locs.detach().mean(0)
    torch.testing.assert_close(posterior.locs.detach() - centre, 0.2 * 2.0 * offsets, rtol=1e-5, atol=1e-6)
    before = {name: value.detach().clone() for name, value in guide.named_parameters()}
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), pyro.infer.Trace_ELBO())
    svi.step()
    for name, value in guide.named_parameters():
        assert not torch.equal(before[name], value.detach()), name
    assert set(guide.median()) == {"z"}


@pytest.mark.parametrize("estimator", ("implicit", "hybrid"))
def test_autoguide_draws_with_its_estimator(estimator):
    """The estimator given to the guide is that of the latent draw the ELBO differentiates (the
    guide's auxiliary sample site) and of ``get_posterior()``, not the default."""
    pyro.clear_param_store()

    def model():
        pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))

    guide = AutoMultivariateNormalMixture(model, num_components=2, estimator=estimator)
    trace = pyro.poutine.trace(guide).get_trace()
    latent = [site["fn"] for site in trace.nodes.values() if isinstance(site.get("fn"), MultivariateNormalMixture)]
    assert len(latent) == 1 and latent[0].estimator == estimator
    assert guide.get_posterior().estimator == estimator
