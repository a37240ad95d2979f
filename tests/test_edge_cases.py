r"""Regression tests for the edge cases of issue 17 (items 2-7) and the adapter items of issue 11.

Each test failed before its fix (checked against commit 6064901):

* in-place edits of a Pyro sample before ``backward`` (the Function saved its output);
* forward-mode AD in Pyro (``torch.func.jacfwd``/``jvp``, ``forward_ad``, ``hessian``): no ``jvp``;
* ``torch.compile(fullgraph=True)`` of rsample + backward: graph breaks at ``torch.result_type``
  and ``Tensor.item()``;
* quantiles at 0/1, outside [0, 1] and NaN; one ``median`` in both adapters;
* the same ``ValueError`` naming the argument in both adapters (wrong event size in
  ``log_prob``, ``init_spread=nan``, ``init_scale=1``), keyword-only ``num_components``;
* Pyro ``infer_shapes`` of both classes;
* NumPyro ``sample_with_intermediates`` returns the component indices; NumPyro validates
  constant parameters inside ``jit``; ``probs`` and the parameter dtype rule are the same in
  both adapters.

References are float64 (``shared_math``'s own vjp/jvp on the same draws, SciPy quantiles,
closed forms); tolerances are stated at each assertion.
"""

from __future__ import annotations

import math
import os
import warnings

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
import torch

import numpyro_gmm
import pyro_gmm
import shared_math
from pyro_gmm.distribution import _MixtureSample

ESTIMATORS = ("implicit", "hybrid", "rao_blackwell")


def torch_parameters(num_components=3, event_size=2, batch_shape=(), seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    shape = tuple(batch_shape) + (num_components, event_size)
    locs = 1.5 * torch.randn(shape, generator=generator, dtype=dtype)
    scales = 0.4 + torch.rand(shape, generator=generator, dtype=dtype)
    logits = torch.randn(tuple(batch_shape) + (num_components,), generator=generator, dtype=dtype)
    return locs, scales, logits


def leaves(*tensors):
    return [t.detach().clone().requires_grad_(True) for t in tensors]


# ------------------------------------------------------------------ item 2: in-place edits


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_pyro_sample_edited_in_place_still_backpropagates(estimator):
    """``x.add_(1)`` then ``backward``: works (as for ``Normal.rsample``) and gives exactly the
    gradient of the out-of-place ``x + 1`` from the same draw."""
    gradients = []
    for in_place in (True, False):
        params = leaves(*torch_parameters(seed=1))
        torch.manual_seed(7)
        x = pyro_gmm.DiagNormalMixture(*params, estimator=estimator).rsample((6,))
        if in_place:
            x.add_(1.0)
        else:
            x = x + 1.0
        (torch.cos(x) * x).sum().backward()
        gradients.append([p.grad for p in params])
    for got, want in zip(*gradients):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_pyro_in_place_edit_keeps_second_derivatives():
    """``create_graph=True`` after an in-place edit still differentiates ``x(theta)`` through
    the Function: the Hessian-vector product equals the one without the edit (D=2, implicit)."""
    results = []
    for in_place in (True, False):
        locs, scales, logits = leaves(*torch_parameters(seed=2))
        torch.manual_seed(3)
        x = pyro_gmm.DiagNormalMixture(locs, scales, logits, estimator="implicit").rsample((5,))
        if in_place:
            x.mul_(1.0)
        (gradient,) = torch.autograd.grad(torch.sin(x).sum(), locs, create_graph=True)
        (hessian_vector,) = torch.autograd.grad(gradient.sum(), locs)
        results.append(hessian_vector)
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)
    assert results[0].abs().sum() > 0


# ------------------------------------------------------------------ item 3: forward mode


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_pyro_jacfwd_equals_jacrev(estimator):
    """``torch.func.jacfwd`` of a sample (the Function's ``jvp``) equals ``jacrev`` (its
    ``backward``) for every parameter, float64, to 1e-12 (same seed, ``randomness="same"``)."""
    params = torch_parameters(num_components=3, event_size=3, batch_shape=(2,), seed=4)

    def draw(locs, scales, logits):
        torch.manual_seed(11)
        return pyro_gmm.DiagNormalMixture(locs, scales, logits, estimator=estimator).rsample((4,))

    forward = torch.func.jacfwd(draw, argnums=(0, 1, 2), randomness="same")(*params)
    reverse = torch.func.jacrev(draw, argnums=(0, 1, 2))(*params)
    for got, want in zip(forward, reverse):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert all(j.abs().sum() > 0 for j in forward)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_pyro_forward_ad_matches_shared_math_jvp(estimator):
    """``torch.autograd.forward_ad``: the tangent of a sample is ``shared_math.sample_jvp`` of
    the same draw (float64, 1e-12)."""
    import torch.autograd.forward_ad as forward_ad

    locs, scales, logits = torch_parameters(seed=5)
    directions = torch_parameters(seed=6)
    mixture = pyro_gmm.DiagNormalMixture(locs, scales, logits, estimator=estimator)
    torch.manual_seed(2)
    one_hot, noise = mixture.draw_noise((7,))
    x = shared_math.sample_from_noise(locs, scales, one_hot, noise)
    want = shared_math.sample_jvp(estimator, x, locs, scales, logits, one_hot, noise, *directions)
    with forward_ad.dual_level():
        duals = [forward_ad.make_dual(p, d) for p, d in zip((locs, scales, logits), directions)]
        torch.manual_seed(2)
        sample = pyro_gmm.DiagNormalMixture(*duals, estimator=estimator).rsample((7,))
        primal, tangent = forward_ad.unpack_dual(sample)
    torch.testing.assert_close(primal, x, rtol=0, atol=0)
    torch.testing.assert_close(tangent, want, rtol=1e-12, atol=1e-12)


def test_pyro_hessian_forward_over_reverse_equals_reverse_over_reverse():
    """``torch.func.hessian`` (jacfwd of jacrev: the jvp of the backward, which re-attaches x)
    equals jacrev of jacrev for ``"implicit"``, float64, 1e-10."""
    locs, scales, logits = torch_parameters(num_components=2, event_size=2, seed=8)
    mixture = pyro_gmm.DiagNormalMixture(locs, scales, logits, estimator="implicit")
    torch.manual_seed(0)
    one_hot, noise = mixture.draw_noise((3,))
    x = shared_math.sample_from_noise(locs, scales, one_hot, noise)

    def objective(shifted_locs):
        sample = _MixtureSample.apply(x, shifted_locs, scales, logits, one_hot, noise, "implicit")
        return torch.cos(sample).sum()

    forward_over_reverse = torch.func.hessian(objective)(locs)
    reverse_over_reverse = torch.func.jacrev(torch.func.jacrev(objective))(locs)
    torch.testing.assert_close(forward_over_reverse, reverse_over_reverse, rtol=1e-10, atol=1e-10)
    assert forward_over_reverse.abs().sum() > 0


# ------------------------------------------------------------------ item 4: torch.compile


def _compiled_against_eager(build, estimator):
    """Relative max differences (loss, then each gradient) between ``torch.compile(fullgraph=True)``
    of rsample + loss + backward and eager, float32, the same draws (``fallback_random``)."""
    import torch._dynamo
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()

    def loss(locs, scales, logits):
        x = build(locs, scales, logits, estimator).rsample((64,))
        return (x + x * x).sum()

    compiled = torch.compile(loss, fullgraph=True)
    differences = []
    with inductor_config.patch(fallback_random=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = []
        for function in (compiled, loss):
            params = leaves(*torch_parameters(num_components=3, event_size=3, seed=9, dtype=torch.float32))
            torch.manual_seed(21)
            value = function(*params)
            value.backward()
            results.append([value.detach()] + [p.grad for p in params])
    for got, want in zip(*results):
        differences.append(float((got - want).abs().max() / want.abs().max()))
    return differences


def _diag(locs, scales, logits, estimator):
    return pyro_gmm.DiagNormalMixture(locs, scales, logits, estimator=estimator)


def _swap_in(locs, scales, logits, estimator):
    components = pdist.Normal(locs, scales).to_event(1)
    return pyro_gmm.ReparamMixtureSameFamily(pdist.Categorical(logits=logits), components, estimator=estimator)


def test_torch_compile_fullgraph_rsample_backward():
    """No graph break (``fullgraph=True`` raises on one) and gradients equal eager to 1e-5
    relative in float32 (the default estimator; the others are in the slow suite)."""
    differences = _compiled_against_eager(_diag, "auto")
    assert max(differences) < 1e-5, differences


@pytest.mark.slow
@pytest.mark.parametrize("build", [_diag, _swap_in], ids=["DiagNormalMixture", "ReparamMixtureSameFamily"])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_torch_compile_fullgraph_every_estimator(build, estimator):
    differences = _compiled_against_eager(build, estimator)
    assert max(differences) < 1e-5, differences


def test_parameter_dtype_needs_no_torch_result_type():
    """The dtype rule works from dtypes alone, so dynamo traces it (``torch.result_type``
    returns a dtype and breaks the graph): float32 locs with float64 scales compile with
    ``fullgraph=True`` and promote to float64."""
    import torch._dynamo

    torch._dynamo.reset()

    @torch.compile(fullgraph=True)
    def build(locs, scales):
        return pyro_gmm.DiagNormalMixture(locs, scales, torch.zeros(locs.shape[0])).locs * 1.0

    out = build(torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.float64))
    assert out.dtype == torch.float64


# ------------------------------------------------------------------ item 5: quantiles, median


def pyro_guide(model_data):
    def model(y):
        z = pyro.sample("z", pdist.Normal(0.0, 1.0).expand([2]).to_event(1))
        s = pyro.sample("s", pdist.LogNormal(0.0, 1.0))
        pyro.sample("y", pdist.Normal(z.sum(), s), obs=y)

    guide = pyro_gmm.AutoDiagonalNormalMixture(model, num_components=3, init_scale=0.5, init_spread=3.0)
    guide(model_data)
    with torch.no_grad():
        guide.logits.copy_(torch.tensor([0.3, -0.5, 0.9], dtype=guide.logits.dtype))
    return guide


def numpyro_guide_and_params(locs, scales, logits):
    def model(y):
        z = numpyro.sample("z", ndist.Normal(0.0, 1.0).expand([2]).to_event(1))
        s = numpyro.sample("s", ndist.LogNormal(0.0, 1.0))
        numpyro.sample("y", ndist.Normal(z.sum(), s), obs=y)

    guide = numpyro_gmm.AutoDiagonalNormalMixture(model, num_components=3, init_scale=0.5, init_spread=3.0)
    with numpyro.handlers.seed(rng_seed=0):
        guide(1.0)
    params = {
        "auto_locs": jnp.asarray(locs),
        "auto_scales": jnp.asarray(scales),
        "auto_logits": jnp.asarray(logits),
    }
    return guide, params


@pytest.fixture
def float64_pyro():
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    pyro.clear_param_store()
    yield
    torch.set_default_dtype(default)
    pyro.clear_param_store()


def test_quantiles_edges_and_median_agree_in_both_adapters(float64_pyro):
    """``quantiles([0, 1])`` is -inf/+inf in the unconstrained space (0/+inf for the positive
    site), values outside [0, 1] and NaN give NaN, the median is ``quantiles([0.5])`` in both
    adapters, and both adapters give the same numbers for the same parameters (1e-12)."""
    guide = pyro_guide(torch.tensor(1.0))
    locs, scales, logits = (p.detach().numpy() for p in (guide.locs, guide.scales, guide.logits))
    numpyro_guide, params = numpyro_guide_and_params(locs, scales, logits)
    probabilities = [0.0, 1.0, -0.1, 1.5, math.nan, 0.5, 0.2]
    pyro_quantiles = guide.quantiles(probabilities)
    numpyro_quantiles = numpyro_guide.quantiles(params, probabilities)
    for site in ("z", "s"):
        got = pyro_quantiles[site].numpy()
        np.testing.assert_allclose(got, np.asarray(numpyro_quantiles[site]), rtol=1e-12, equal_nan=True)
        lowest = -np.inf if site == "z" else 0.0
        assert np.all(got[0] == lowest) and np.all(got[1] == np.inf)
        assert np.all(np.isnan(got[2:5]))
        assert np.all(np.isfinite(got[5:]))
    pyro_median = guide.median()
    numpyro_median = numpyro_guide.median(params)
    for site in ("z", "s"):
        np.testing.assert_array_equal(pyro_median[site].numpy(), pyro_quantiles[site][5].numpy())
        np.testing.assert_allclose(np.asarray(numpyro_median[site]), pyro_median[site].numpy(), rtol=1e-12)


def test_marginal_quantiles_method_in_both_adapters():
    """``DiagNormalMixture.marginal_quantiles`` exists in both, agrees (1e-12), has the edge
    values, and inverts the marginal CDF (``shared_math.cdf``, 1e-10) for a batched mixture."""
    locs, scales, logits = torch_parameters(num_components=3, event_size=2, batch_shape=(2,), seed=12)
    q = [0.0, 0.25, 0.9, 1.0, 2.0]
    pyro_values = pyro_gmm.DiagNormalMixture(locs, scales, logits).marginal_quantiles(q)
    numpyro_values = numpyro_gmm.DiagNormalMixture(
        *(jnp.asarray(t.numpy()) for t in (locs, scales, logits))
    ).marginal_quantiles(q)
    assert pyro_values.shape == (5, 2, 2)
    np.testing.assert_allclose(pyro_values.numpy(), np.asarray(numpyro_values), rtol=1e-12, equal_nan=True)
    assert torch.all(pyro_values[0] == -math.inf) and torch.all(pyro_values[3] == math.inf)
    assert torch.all(torch.isnan(pyro_values[4]))
    for row, probability in ((1, 0.25), (2, 0.9)):
        for batch in range(2):
            cdf = shared_math.cdf(pyro_values[row, batch], locs[batch].T, scales[batch].T, logits[batch])
            torch.testing.assert_close(cdf, torch.full((2,), probability, dtype=cdf.dtype), rtol=0, atol=1e-10)


# ------------------------------------------------------------------ item 6: error messages


def test_log_prob_wrong_event_size_raises_the_same_value_error():
    """A value whose last dimension is not D: the same ``ValueError`` naming ``value`` in both
    adapters and both classes, with validation on or off, and inside ``jax.jit``."""
    locs, scales, logits = torch_parameters(num_components=2, event_size=3, seed=13)
    arrays = [jnp.asarray(t.numpy()) for t in (locs, scales, logits)]
    bad_torch, bad_jax = torch.zeros(5, 2, dtype=torch.float64), jnp.zeros((5, 2))
    messages = []
    for validate in (True, False):
        candidates = [
            lambda: pyro_gmm.DiagNormalMixture(locs, scales, logits, validate_args=validate).log_prob(bad_torch),
            lambda: pyro_gmm.ReparamMixtureSameFamily(
                pdist.Categorical(logits=logits), pdist.Normal(locs, scales).to_event(1), validate_args=validate
            ).log_prob(bad_torch),
            lambda: numpyro_gmm.DiagNormalMixture(*arrays, validate_args=validate).log_prob(bad_jax),
            lambda: numpyro_gmm.ReparamMixtureSameFamily(
                ndist.CategoricalLogits(arrays[2]),
                ndist.Normal(arrays[0], arrays[1]).to_event(1),
                validate_args=validate,
            ).log_prob(bad_jax),
            lambda: jax.jit(lambda v: numpyro_gmm.DiagNormalMixture(*arrays, validate_args=validate).log_prob(v))(
                bad_jax
            ),
        ]
        for candidate in candidates:
            with pytest.raises(ValueError, match=r"value has shape \(5, 2\).*event shape \(3,\)") as error:
                candidate()
            messages.append(str(error.value))
    assert len(set(messages)) == 1


def _models():
    def pyro_model():
        pyro.sample("z", pdist.Normal(0.0, 1.0).expand([2]).to_event(1))

    def numpyro_model():
        numpyro.sample("z", ndist.Normal(0.0, 1.0).expand([2]).to_event(1))

    return (pyro_gmm.AutoDiagonalNormalMixture, pyro_model), (numpyro_gmm.AutoDiagonalNormalMixture, numpyro_model)


@pytest.mark.parametrize(
    "arguments, name",
    [
        ({"init_spread": math.nan}, "init_spread"),
        ({"init_spread": -1.0}, "init_spread"),
        ({"init_spread": math.inf}, "init_spread"),
        ({"init_scale": math.nan}, "init_scale"),
        ({"init_scale": 0}, "init_scale"),
        ({"init_scale": "0.1"}, "init_scale"),
        ({"num_components": 0}, "num_components"),
        ({"num_components": 2.5}, "num_components"),
        ({"num_components": True}, "num_components"),
        ({"init_seed": 0.5}, "init_seed"),
        ({"estimator": "implict"}, "estimator"),
    ],
)
def test_autoguide_bad_arguments_same_error_in_both(arguments, name):
    messages = []
    for guide_class, model in _models():
        with pytest.raises(ValueError, match=name) as error:
            guide_class(model, **arguments)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    if name == "estimator":  # the full-covariance guides have their own estimators
        return
    (pyro_class, pyro_model), (numpyro_class, numpyro_model) = _models()
    for guide_class, model in (
        (pyro_gmm.AutoMultivariateNormalMixture, pyro_model),
        (numpyro_gmm.AutoMultivariateNormalMixture, numpyro_model),
    ):
        with pytest.raises(ValueError, match=name) as error:
            guide_class(model, **arguments)
        assert str(error.value) == messages[0], guide_class


def test_autoguide_integer_init_scale_and_keyword_only_num_components(float64_pyro):
    """``init_scale=1`` (an int) is accepted by both and gives scales of exactly 1.0;
    ``num_components`` is keyword-only in both (a positional one is a ``TypeError``)."""
    (pyro_class, pyro_model), (numpyro_class, numpyro_model) = _models()
    guide = pyro_class(pyro_model, num_components=2, init_scale=1)
    guide()
    assert torch.all(guide.scales == 1.0)
    numpyro_guide = numpyro_class(numpyro_model, num_components=2, init_scale=1)
    with numpyro.handlers.seed(rng_seed=0):
        trace = numpyro.handlers.trace(numpyro_guide).get_trace()
    assert np.all(np.asarray(trace["auto_scales"]["value"]) == 1.0)
    for guide_class, model in _models():
        with pytest.raises(TypeError):
            guide_class(model, 3)


# ------------------------------------------------------------------ item 7: infer_shapes


@pytest.mark.parametrize(
    "locs_shape, scales_shape, logits_shape",
    [((3, 2), (3, 2), (3,)), ((4, 3, 2), (1, 1), (5, 1, 3)), ((3, 1), (2, 3, 1), (3,))],
)
def test_pyro_infer_shapes(locs_shape, scales_shape, logits_shape):
    """As Pyro's own generic test does: non-tensor arguments get shape ``()``; the inferred
    shapes equal those of the constructed distribution, for both classes."""
    batch_shape, event_shape = pyro_gmm.DiagNormalMixture.infer_shapes(
        locs=locs_shape, scales=scales_shape, logits=logits_shape, estimator=()
    )
    mixture = pyro_gmm.DiagNormalMixture(torch.zeros(locs_shape), torch.ones(scales_shape), torch.zeros(logits_shape))
    assert (batch_shape, event_shape) == (mixture.batch_shape, mixture.event_shape)
    swap_in = pyro_gmm.ReparamMixtureSameFamily(
        pdist.Categorical(logits=torch.zeros(logits_shape)),
        pdist.Normal(torch.zeros(locs_shape), 1.0).to_event(1),
    )
    for arguments in (
        (swap_in.mixture_distribution, swap_in.component_distribution),
        (
            swap_in.mixture_distribution.batch_shape,
            (swap_in.component_distribution.batch_shape, swap_in.component_distribution.event_shape),
        ),
    ):
        assert pyro_gmm.ReparamMixtureSameFamily.infer_shapes(*arguments) == (swap_in.batch_shape, swap_in.event_shape)


def test_pyro_infer_shapes_rejects_bad_shapes_like_the_constructor():
    with pytest.raises(ValueError, match="logits"):
        pyro_gmm.DiagNormalMixture.infer_shapes(locs=(3, 2), scales=(3, 2), logits=(4,))


# ------------------------------------------------------------------ issue 11: adapter items


@pytest.mark.parametrize("event, estimator", [("scalar", "implicit"), ("vector", "hybrid")])
def test_numpyro_sample_with_intermediates_returns_component_indices(event, estimator):
    """As NumPyro's ``MixtureSameFamily``: one intermediate, the indices, of shape
    ``sample_shape + batch_shape``, integer; the draw equals ``sample`` with the same key; each
    index is the component the draw came from (components 100 scales apart, so the nearest
    location identifies it); ``log_prob`` accepts the intermediates."""
    batch, num_components = (2,), 3
    spacing = jnp.arange(num_components) * 100.0
    if event == "vector":
        locs = jnp.broadcast_to(spacing[:, None], batch + (num_components, 2))
        components = ndist.Normal(locs, 1.0).to_event(1)
    else:
        locs = jnp.broadcast_to(spacing, batch + (num_components,))
        components = ndist.Normal(locs, 1.0)
    mixing = ndist.CategoricalLogits(jnp.zeros(batch + (num_components,)))
    mixture = numpyro_gmm.ReparamMixtureSameFamily(mixing, components, estimator=estimator)
    key = jax.random.PRNGKey(3)
    x, intermediates = mixture.sample_with_intermediates(key, (50,))
    assert len(intermediates) == 1
    (indices,) = intermediates
    assert indices.shape == (50,) + batch
    assert jnp.issubdtype(indices.dtype, jnp.integer)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(mixture.sample(key, (50,))))
    first = x[..., 0] if event == "vector" else x
    np.testing.assert_array_equal(np.asarray(indices), np.rint(np.asarray(first) / 100.0))
    assert len(np.unique(np.asarray(indices))) == num_components
    np.testing.assert_array_equal(np.asarray(mixture.log_prob(x, intermediates)), np.asarray(mixture.log_prob(x)))


def test_numpyro_diag_mixture_sample_with_intermediates():
    mixture = numpyro_gmm.DiagNormalMixture(jnp.array([[0.0], [100.0]]), jnp.ones((2, 1)), jnp.zeros(2))
    x, (indices,) = mixture.sample_with_intermediates(jax.random.PRNGKey(0), (40,))
    assert indices.shape == (40,)
    np.testing.assert_array_equal(np.asarray(indices), np.rint(np.asarray(x[:, 0]) / 100.0))


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"scales": -1.0}, "scales"),
        ({"scales": 0.0}, "scales"),
        ({"locs": math.nan}, "locs"),
        ({"logits": math.inf}, "logits"),
    ],
)
@pytest.mark.parametrize("container", ["python", "numpy"])
def test_numpyro_validates_constant_parameters_inside_jit(bad, name, container):
    """Like ``numpyro.distributions.Normal(0., -1., validate_args=True)`` inside ``jit``: constant
    (Python or NumPy) parameters are checked before any broadcast, ``ValueError`` naming the
    parameter; traced parameters are not checked (they have no value yet)."""
    values = {"locs": [[0.0, 1.0], [2.0, 3.0]], "scales": [[1.0, 1.0], [1.0, 1.0]], "logits": [0.0, 0.0]}
    values[name] = np.full(np.shape(values[name]), bad[name]).tolist()
    if container == "numpy":
        values = {key: np.asarray(value) for key, value in values.items()}

    @jax.jit
    def log_density(x):
        return numpyro_gmm.DiagNormalMixture(**values, validate_args=True).log_prob(x)

    with pytest.raises(ValueError, match=name):
        log_density(jnp.zeros(2))

    @jax.jit
    def traced(scale, x):
        return numpyro_gmm.DiagNormalMixture(
            jnp.zeros((2, 2)), scale * jnp.ones((2, 2)), jnp.zeros(2), validate_args=True
        ).log_prob(x)

    assert np.isnan(traced(-1.0, jnp.zeros(2)))  # traced: not checked, log(scale) is NaN
    with pytest.raises(ValueError, match="Normal distribution got invalid scale"):
        jax.jit(lambda x: ndist.Normal(0.0, -1.0, validate_args=True).log_prob(x))(0.0)


def test_probs_is_the_shared_name():
    """``probs`` = softmax(logits) in both adapters (1e-15); NumPyro's old ``mixture_probs``
    still works with a ``DeprecationWarning``."""
    locs, scales, logits = torch_parameters(seed=14)
    pyro_probs = pyro_gmm.DiagNormalMixture(locs, scales, logits).probs
    numpyro_mixture = numpyro_gmm.DiagNormalMixture(*(jnp.asarray(t.numpy()) for t in (locs, scales, logits)))
    np.testing.assert_allclose(np.asarray(numpyro_mixture.probs), pyro_probs.numpy(), rtol=1e-15)
    with pytest.warns(DeprecationWarning, match="probs"):
        alias = numpyro_mixture.mixture_probs
    np.testing.assert_array_equal(np.asarray(alias), np.asarray(numpyro_mixture.probs))


PARAMETER_DTYPE_CASES = {
    "float32 array, lists": ((np.zeros((2, 1), np.float32), [[1.0]], [0.0, 0.0]), "float32"),
    "lists only": (([[0.0], [1.0]], [[1.0]], [0.0, 0.0]), "default"),
    "integer arrays only": ((np.zeros((2, 1), np.int64), np.ones((1, 1), np.int32), np.zeros(2, np.int64)), "default"),
    "float32 and float64 arrays": ((np.zeros((2, 1), np.float32), np.ones((1, 1)), np.zeros(2, np.float32)), "float64"),
}


@pytest.mark.parametrize("case", list(PARAMETER_DTYPE_CASES))
def test_parameter_dtype_is_the_same_rule_in_both_adapters(case):
    """One dtype rule (:func:`shared_math.parameter_dtype`) in both adapters, for NumPy arrays
    and Python lists; "default" is the framework's default floating dtype (torch's default
    dtype; float64 in JAX with x64, as the tests run)."""
    values, expected = PARAMETER_DTYPE_CASES[case]
    torch_dtype = pyro_gmm.DiagNormalMixture(*values).locs.dtype
    jax_dtype = numpyro_gmm.DiagNormalMixture(*values).locs.dtype
    assert torch_dtype == (torch.get_default_dtype() if expected == "default" else getattr(torch, expected))
    assert jax_dtype == (jnp.float64 if expected == "default" else getattr(jnp, expected))
