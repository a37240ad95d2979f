"""``pyro_gmm.ReparamMixtureSameFamily``: a drop-in for ``pyro.distributions.MixtureSameFamily``.

Everything inherited must agree with Pyro's ``MixtureSameFamily`` on the same arguments
(tolerance 1e-12, float64); ``rsample`` must agree, draw for draw and gradient for gradient,
with ``DiagNormalMixture`` on the same parameters (whose gradients are tested against
``shared_math`` and by Monte Carlo in the other ``test_pyro_*`` files).
"""

from __future__ import annotations

import pyro.distributions as dist
import pytest
import torch

from pyro_gmm import DiagNormalMixture, ReparamMixtureSameFamily


def components(batch_shape, num_components, event_size, seed=0):
    """``(mixing logits, locs, scales)``; ``event_size=None`` for scalar components."""
    generator = torch.Generator().manual_seed(seed)
    tail = (num_components,) if event_size is None else (num_components, event_size)
    locs = torch.randn(tuple(batch_shape) + tail, generator=generator, dtype=torch.float64)
    scales = 0.4 + torch.rand(tuple(batch_shape) + tail, generator=generator, dtype=torch.float64)
    logits = torch.randn(tuple(batch_shape) + (num_components,), generator=generator, dtype=torch.float64)
    return logits, locs, scales


def build(cls, logits, locs, scales, vector, **kwargs):
    normal = dist.Normal(locs, scales)
    return cls(dist.Categorical(logits=logits), normal.to_event(1) if vector else normal, **kwargs)


CASES = [((), 3, None), ((2,), 3, None), ((), 2, 1), ((4,), 3, 5)]


@pytest.mark.parametrize("batch_shape, num_components, event_size", CASES)
def test_inherited_behaviour_matches_pyro(batch_shape, num_components, event_size):
    logits, locs, scales = components(batch_shape, num_components, event_size)
    vector = event_size is not None
    ours = build(ReparamMixtureSameFamily, logits, locs, scales, vector)
    reference = build(dist.MixtureSameFamily, logits, locs, scales, vector)
    assert ours.has_rsample and not reference.has_rsample
    assert isinstance(ours, dist.MixtureSameFamily)
    assert ours.batch_shape == reference.batch_shape and ours.event_shape == reference.event_shape
    assert ours.mixture_distribution is not None and ours.component_distribution is not None
    torch.manual_seed(0)
    x = ours.sample((6,))
    assert x.shape == (6,) + tuple(reference.batch_shape) + tuple(reference.event_shape)
    torch.testing.assert_close(ours.log_prob(x), reference.log_prob(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.mean, reference.mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.variance, reference.variance, rtol=0, atol=1e-12)
    if not vector:
        torch.testing.assert_close(ours.cdf(x), reference.cdf(x), rtol=0, atol=1e-12)
    expanded = ours.expand((3,) + tuple(batch_shape))
    assert isinstance(expanded, ReparamMixtureSameFamily) and expanded.has_rsample
    assert expanded.batch_shape == (3,) + tuple(batch_shape)
    assert expanded.rsample((2,)).shape == (2, 3) + tuple(batch_shape) + tuple(reference.event_shape)
    torch.testing.assert_close(expanded.log_prob(x[:1]), reference.log_prob(x[:1]).expand(expanded.batch_shape))


@pytest.mark.parametrize("estimator", ["implicit", "hybrid", "rao_blackwell"])
@pytest.mark.parametrize("batch_shape, num_components, event_size", CASES)
def test_rsample_matches_diag_normal_mixture(batch_shape, num_components, event_size, estimator):
    logits, locs, scales = components(batch_shape, num_components, event_size, seed=1)
    vector = event_size is not None
    results = []
    for which in ("family", "diag"):
        params = [t.clone().requires_grad_(True) for t in (logits, locs, scales)]
        if which == "family":
            mixture = build(ReparamMixtureSameFamily, *params, vector, estimator=estimator)
        else:
            tail = (lambda t: t) if vector else (lambda t: t[..., None])
            mixture = DiagNormalMixture(tail(params[1]), tail(params[2]), params[0], estimator=estimator)
        torch.manual_seed(3)
        x = mixture.rsample((5,))
        x_vector = x if vector else x[..., None]
        torch.cos(x_vector * torch.arange(1.0, x_vector.shape[-1] + 1, dtype=x.dtype)).sum().backward()
        results.append((x.detach(), [p.grad for p in params]))
    (x_family, grads_family), (x_diag, grads_diag) = results
    torch.testing.assert_close(x_family, x_diag if vector else x_diag[..., 0], rtol=0, atol=0)
    for got, want in zip(grads_family, grads_diag):
        assert torch.isfinite(got).all() and got.abs().sum() > 0
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_probs_parameterized_mixing_gets_gradient():
    _, locs, scales = components((), 3, None, seed=2)
    probs = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64, requires_grad=True)
    mixture = ReparamMixtureSameFamily(dist.Categorical(probs=probs), dist.Normal(locs, scales))
    torch.manual_seed(0)
    torch.sin(mixture.rsample((100,))).sum().backward()
    assert torch.isfinite(probs.grad).all() and probs.grad.abs().sum() > 0


def test_broadcast_mixing_over_component_batch():
    """Mixing weights shared across a component batch (Categorical batch () vs components (2, K))."""
    logits, _, _ = components((), 3, None, seed=3)
    _, locs, scales = components((2,), 3, 4, seed=4)
    mixture = ReparamMixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(locs, scales).to_event(1))
    assert mixture.batch_shape == (2,) and mixture.event_shape == (4,)
    x = mixture.rsample((7,))
    assert x.shape == (7, 2, 4)
    reference = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(locs, scales).to_event(1))
    torch.testing.assert_close(mixture.log_prob(x), reference.log_prob(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: (dist.Categorical(logits=torch.zeros(2)), dist.Exponential(torch.ones(2))), "Exponential"),
        (
            lambda: (dist.Categorical(logits=torch.zeros(2)), dist.Normal(torch.zeros(2, 3, 4), 1.0).to_event(2)),
            "reinterpreted_batch_ndims=2",
        ),
        (lambda: (dist.Categorical(logits=torch.zeros(3)), dist.Normal(torch.zeros(2), 1.0)), "K=3"),
        (lambda: (dist.Categorical(logits=torch.zeros(3)), dist.Normal(torch.zeros(2, 4), 1.0).to_event(1)), "K=3"),
        (
            lambda: (dist.OneHotCategorical(logits=torch.zeros(2)), dist.Normal(torch.zeros(2), 1.0)),
            "OneHotCategorical",
        ),
    ],
)
def test_unsupported_inputs_raise(make, pattern):
    mixing, component = make()
    with pytest.raises(ValueError, match=pattern) as error:
        ReparamMixtureSameFamily(mixing, component)
    named = "supports Categorical mixing with components of class Normal, Logistic, Laplace, Cauchy, Gumbel, StudentT"
    assert named in str(error.value) or "K=" in str(error.value)


def test_bad_estimator_raises():
    with pytest.raises(ValueError, match="estimator"):
        ReparamMixtureSameFamily(
            dist.Categorical(logits=torch.zeros(2)), dist.Normal(torch.zeros(2), 1.0), estimator="x"
        )
