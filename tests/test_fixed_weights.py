r"""Fixed mixture weights: ``logits_gradient=False`` and logits that need no gradient.

The ``logits`` gradient is the only part of ``"rao_blackwell"`` and ``"hybrid"`` that needs
the sweep over the dimensions (Graves' Eq. 22).  Without it, ``"rao_blackwell"`` forms only
:math:`z` and :math:`r_k(x)` (``shared_math._sweeps.final_responsibility_terms``) and
``"hybrid"`` nothing but the chosen component's gradient.  Checked here:

* the ``locs``/``scales`` (and shape-parameter) gradients equal the independent references
  of ``_family_reference`` / ``_reference`` and those with the logits gradient, on every
  backend and shape case, for every family and for full covariances; ``logits_bar`` is
  ``None``;
* forward mode with ``logits_dot=None`` equals forward mode with zero ``logits_dot`` (the
  full path);
* the Pyro classes ask for no logits gradient when the logits need none, and then
  ``"rao_blackwell"``/``"hybrid"`` never run the sweep; their gradients are unchanged;
* NumPyro's gradient with respect to ``locs``/``scales`` alone equals that part of the full
  gradient.
"""

from __future__ import annotations

import _family_reference as fref
import _reference as ref
import numpy as np
import pytest

import shared_math
import shared_math._sweeps
import shared_math.estimators
import shared_math.full_covariance

FAMILIES = fref.FAMILY_NAMES
BACKEND_CASES = [
    (backend, case) for backend in ("numpy", "torch") for case in ("unbatched", "broadcast", "shared_scales")
]
BACKEND_CASES += [("jax", "broadcast"), ("strict", "broadcast")]


def _shape_params(data, xp):
    return tuple(xp.asarray(p) for p in data["shape"])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("xp, case", BACKEND_CASES, indirect=["xp"])
def test_without_the_logits_gradient_locs_and_scales_match_the_references(xp, family, case):
    data = fref.family_case(family, case, 3, 4, seed=11)
    point = tuple(xp.asarray(data[k]) for k in ("x", "locs", "scales", "logits"))
    cotangent = xp.asarray(data["cotangent"])
    one_hot = xp.asarray(ref.one_hot(data["component"], data["locs"].shape[-2]))
    noise = xp.asarray(data["noise"])
    options = {"family": family, "shape_params": _shape_params(data, xp)}
    args = (data["x"], data["locs"], data["scales"], data["logits"], data["cotangent"])
    want = {
        "rao_blackwell": fref.rao_blackwell_locs_scales(family, *args, df=data["df"]),
        "hybrid": ref.chosen_component_vjp(
            data["component"], data["noise"], data["cotangent"], data["locs"].shape, data["scales"].shape
        ),
        "implicit": fref.implicit_vjp(family, *args, df=data["df"])[:2],
    }
    for estimator, (want_locs, want_scales) in want.items():
        got = shared_math.sample_vjp(estimator, *point, one_hot, noise, cotangent, logits_gradient=False, **options)
        assert got[2] is None, estimator
        for name, g, w in zip(("locs", "scales"), got[:2], (want_locs, want_scales)):
            assert xp.owns(g)
            ref.assert_close(xp.to_numpy(g), w, 1e-9, floor=1e-3, what=f"{family} {estimator} {name}")


@pytest.mark.parametrize("estimator", ["rao_blackwell", "hybrid", "implicit"])
@pytest.mark.parametrize("family", ["gamma", "student_t"])
def test_shape_parameter_gradients_do_not_need_the_logits_gradient(estimator, family):
    """Gamma and Student-t components (K = 3, D = 4), ``cdf_gradient="sampled"``: the
    ``locs``/``scales`` and shape-parameter gradients are those of the full call (float64,
    1e-12)."""
    rng = np.random.default_rng(5)
    data = fref.family_case(family, "unbatched", 3, 4, seed=3)
    x, locs, scales, logits = (data[k] for k in ("x", "locs", "scales", "logits"))
    one_hot = ref.one_hot(data["component"], 3)
    inner = rng.random((2,) + x.shape[:-1] + (3, 4))
    options = {"family": family, "shape_params": data["shape"], "cdf_gradient": "sampled", "cdf_noise": inner}
    full = shared_math.sample_vjp(
        estimator, x, locs, scales, logits, one_hot, data["noise"], data["cotangent"], **options
    )
    fixed = shared_math.sample_vjp(
        estimator, x, locs, scales, logits, one_hot, data["noise"], data["cotangent"], logits_gradient=False, **options
    )
    assert fixed[2] is None
    for name, g, w in zip(("locs", "scales"), fixed[:2], full[:2]):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=name)
    assert len(fixed[3]) == len(full[3]) == 1
    np.testing.assert_allclose(fixed[3][0], full[3][0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("family", ["normal", "gumbel", "student_t"])
@pytest.mark.parametrize("xp", ["numpy", "torch", "jax"], indirect=True)
def test_forward_mode_without_logits_tangent_equals_the_full_path(xp, family):
    data = fref.family_case(family, "broadcast", 3, 5, seed=2)
    point = tuple(xp.asarray(data[k]) for k in ("x", "locs", "scales", "logits"))
    options = {"family": family, "shape_params": _shape_params(data, xp)}
    rng = np.random.default_rng(4)
    locs_dot, scales_dot = (xp.asarray(rng.standard_normal(np.shape(data[k]))) for k in ("locs", "scales"))
    zero_logits = xp.asarray(np.zeros(np.shape(data["logits"])))
    fast = shared_math.rao_blackwell_jvp(*point, locs_dot, scales_dot, None, **options)
    full = shared_math.rao_blackwell_jvp(*point, locs_dot, scales_dot, zero_logits, **options)
    ref.assert_close(xp.to_numpy(fast), xp.to_numpy(full), 1e-12, what=f"{family} rao_blackwell jvp")


def test_forward_mode_rejects_logits_gradient():
    data = ref.mixture_case("unbatched", 2, 3, seed=1)
    with pytest.raises(TypeError, match="logits_gradient"):
        shared_math.rao_blackwell_jvp(
            data["x"], data["locs"], data["scales"], data["logits"], data["locs"], None, None, logits_gradient=False
        )


def test_final_responsibility_terms_are_the_last_row_of_the_sweep_terms():
    """Every block size: the responsibilities of the last dimension, and z, equal those of the
    full sweep terms (blocks forced small so that the event sum runs over several)."""
    data = fref.family_case("student_t", "broadcast", 4, 9, seed=8)
    args = tuple(data[k] for k in ("x", "locs", "scales", "logits"))
    xp = shared_math._backend.get_namespace(data["x"])
    family = shared_math.families.get_family("student_t")
    full = shared_math._sweeps.sweep_terms(
        *args, xp, all_responsibilities=False, family=family, shape_params=data["shape"]
    )
    saved = shared_math._sweeps.BLOCK_ELEMENTS, shared_math._sweeps.MIN_BLOCK_ELEMENTS
    try:
        shared_math._sweeps.BLOCK_ELEMENTS = shared_math._sweeps.MIN_BLOCK_ELEMENTS = 8
        fast = shared_math._sweeps.final_responsibility_terms(*args, xp, family=family, shape_params=data["shape"])
    finally:
        shared_math._sweeps.BLOCK_ELEMENTS, shared_math._sweeps.MIN_BLOCK_ELEMENTS = saved
    assert fast.a_scaled is None and fast.neg_score is None
    np.testing.assert_allclose(fast.responsibilities, full.responsibilities, rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(fast.z, full.z)


# ------------------------------------------------------------------------------------------
# Full covariance.
# ------------------------------------------------------------------------------------------


def _full_covariance_case(seed, sample_shape=(7,), num_components=3, event_size=4):
    rng = np.random.default_rng(seed)
    locs = rng.standard_normal((num_components, event_size))
    strict = np.tril(rng.standard_normal((num_components, event_size, event_size)), -1) / 2.0
    scale_tril = strict + np.exp(0.3 * rng.standard_normal((num_components, event_size)))[..., None] * np.eye(
        event_size
    )
    logits = rng.standard_normal(num_components)
    component = rng.integers(0, num_components, sample_shape)
    one_hot = ref.one_hot(component, num_components)
    noise = rng.standard_normal(sample_shape + (event_size,))
    x = shared_math.full_covariance_sample_from_noise(locs, scale_tril, one_hot, noise)
    return x, locs, scale_tril, logits, one_hot, noise, rng.standard_normal(x.shape)


@pytest.mark.parametrize("estimator", ["rao_blackwell", "hybrid", "implicit"])
@pytest.mark.parametrize("xp", ["numpy", "torch"], indirect=True)
def test_full_covariance_without_the_logits_gradient(xp, estimator):
    x, locs, scale_tril, logits, one_hot, noise, cotangent = (xp.asarray(a) for a in _full_covariance_case(3))
    args = (estimator, x, locs, scale_tril, logits, one_hot, noise, cotangent)
    full = shared_math.full_covariance_sample_vjp(*args)
    fixed = shared_math.full_covariance_sample_vjp(*args, logits_gradient=False)
    assert fixed[2] is None
    for name, g, w in zip(("locs", "scale_tril"), fixed[:2], full[:2]):
        ref.assert_close(xp.to_numpy(g), xp.to_numpy(w), 1e-12, what=f"{estimator} {name}")


def test_full_covariance_rao_blackwell_without_logits_matches_the_formula():
    r""":math:`\bar\mu_k = \sum_n r_k(x_n) g_n`, :math:`\bar L_k = \operatorname{tril}\sum_n
    r_k(x_n)\,g_n\varepsilon_{kn}^\top` with :math:`r` and :math:`\varepsilon` by NumPy/SciPy."""
    import scipy.special

    x, locs, scale_tril, logits, _, _, g = _full_covariance_case(9, sample_shape=(5, 2))
    eps = np.linalg.solve(scale_tril, (x[..., None, :] - locs)[..., None])[..., 0]  # (5, 2, K, D)
    log_normal = -0.5 * np.sum(eps**2, -1) - np.sum(np.log(np.diagonal(scale_tril, axis1=-2, axis2=-1)), -1)
    r = scipy.special.softmax(scipy.special.log_softmax(logits) + log_normal, axis=-1)  # (5, 2, K)
    want_locs = np.einsum("abk,abd->kd", r, g)
    want_tril = np.tril(np.einsum("abk,abi,abkj->kij", r, g, eps))
    got = shared_math.full_covariance_rao_blackwell_vjp(x, locs, scale_tril, logits, g, logits_gradient=False)
    ref.assert_close(got[0], want_locs, 1e-12, what="locs_bar")
    ref.assert_close(got[1], want_tril, 1e-12, what="scale_tril_bar")
    assert got[2] is None


def test_full_covariance_forward_mode_without_logits_tangent():
    x, locs, scale_tril, logits, _, _, _ = _full_covariance_case(4)
    rng = np.random.default_rng(2)
    locs_dot, tril_dot = rng.standard_normal(locs.shape), np.tril(rng.standard_normal(scale_tril.shape))
    fast = shared_math.full_covariance_rao_blackwell_jvp(x, locs, scale_tril, logits, locs_dot, tril_dot, None)
    full = shared_math.full_covariance_rao_blackwell_jvp(x, locs, scale_tril, logits, locs_dot, tril_dot, 0 * logits)
    ref.assert_close(fast, full, 1e-12, what="rao_blackwell jvp")


# ------------------------------------------------------------------------------------------
# Adapters.
# ------------------------------------------------------------------------------------------


def _no_sweep(*args, **kwargs):
    raise AssertionError("the sweep ran although no logits gradient was asked for")


@pytest.mark.parametrize("full_covariance", [False, True])
@pytest.mark.parametrize("estimator", ["rao_blackwell", "hybrid", "implicit"])
def test_pyro_fixed_logits_skip_the_sweep_and_keep_the_gradients(monkeypatch, estimator, full_covariance):
    torch = pytest.importorskip("torch")
    import pyro_gmm

    x, locs, scale_tril, logits, *_ = _full_covariance_case(6)
    locs_t = torch.tensor(locs, requires_grad=True)
    if full_covariance:
        second = torch.tensor(scale_tril, requires_grad=True)
        make = pyro_gmm.MultivariateNormalMixture
    else:
        second = torch.tensor(np.exp(0.2 * np.random.default_rng(1).standard_normal(locs.shape)), requires_grad=True)
        make = pyro_gmm.DiagNormalMixture

    def gradients(logits_t):
        torch.manual_seed(3)
        draw = make(locs_t, second, logits_t, estimator=estimator).rsample((9,))
        wanted = (locs_t, second) + ((logits_t,) if logits_t.requires_grad else ())
        return torch.autograd.grad(torch.cos(draw).sum(), wanted)

    full = gradients(torch.tensor(logits, requires_grad=True))
    if estimator != "implicit":  # implicit needs the sweep for locs/scales too
        target = shared_math.full_covariance if full_covariance else shared_math.estimators
        monkeypatch.setattr(target, "_reverse_sweep" if full_covariance else "reverse_sweep", _no_sweep)
    fixed = gradients(torch.tensor(logits))
    for name, g, w in zip(("locs", "scales"), fixed, full[:2]):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("estimator", ["rao_blackwell", "hybrid", "implicit"])
def test_numpyro_gradient_of_locs_and_scales_alone(estimator):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    import numpyro_gmm

    data = ref.mixture_case("unbatched", 3, 5, seed=12)
    params = tuple(jnp.asarray(data[k]) for k in ("locs", "scales", "logits"))

    def loss(locs, scales, logits):
        draw = numpyro_gmm.DiagNormalMixture(locs, scales, logits, estimator=estimator).sample(
            jax.random.PRNGKey(0), (11,)
        )
        return jnp.sum(jnp.cos(draw))

    full = jax.grad(loss, argnums=(0, 1, 2))(*params)
    alone = jax.grad(loss, argnums=(0, 1))(*params)
    for name, g, w in zip(("locs", "scales"), alone, full[:2]):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-12, err_msg=name)


# ------------------------------------------------------------------------------------------
# Autoguides with learn_weights=False.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("full_covariance", [False, True])
def test_pyro_autoguide_with_fixed_weights(monkeypatch, full_covariance):
    """Five ``Trace_ELBO`` steps: the weights stay equal (``logits`` a zero buffer, not in the
    parameter store), the locations move, the sweep never runs; with the default the
    logits are a parameter and move."""
    torch = pytest.importorskip("torch")
    import pyro
    import pyro.distributions as dist
    from pyro.infer import SVI, Trace_ELBO
    from pyro.optim import Adam

    import pyro_gmm

    guide_class = pyro_gmm.AutoMultivariateNormalMixture if full_covariance else pyro_gmm.AutoDiagonalNormalMixture
    data = torch.tensor([0.8, 1.3, -0.4])

    def model():
        z = pyro.sample("z", dist.Normal(torch.zeros(3), 1.0).to_event(1))
        pyro.sample("y", dist.Normal(z, 0.5).to_event(1), obs=data)

    def train(learn_weights):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        guide = guide_class(model, num_components=3, learn_weights=learn_weights)
        svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
        svi.step()
        start = guide.locs.detach().clone()
        for _ in range(4):
            svi.step()
        return guide, start

    learned, _ = train(True)
    assert isinstance(learned.logits, torch.nn.Parameter)
    assert torch.any(learned.logits.detach() != 0)
    if full_covariance:
        monkeypatch.setattr(shared_math.full_covariance, "_reverse_sweep", _no_sweep)
    else:
        monkeypatch.setattr(shared_math.estimators, "reverse_sweep", _no_sweep)
    fixed, start = train(False)
    assert not any("logits" in name for name in pyro.get_param_store().keys())
    assert not fixed.logits.requires_grad
    torch.testing.assert_close(fixed.logits, torch.zeros(3))
    assert torch.all(torch.isfinite(fixed.locs)) and torch.any(fixed.locs.detach() != start)
    assert set(fixed.median()) == {"z"}
    if not full_covariance:
        assert fixed.quantiles([0.25, 0.75])["z"].shape == (2, 3)


@pytest.mark.parametrize("full_covariance", [False, True])
def test_numpyro_autoguide_with_fixed_weights(full_covariance):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.optim import Adam

    import numpyro_gmm

    guide_class = (
        numpyro_gmm.AutoMultivariateNormalMixture if full_covariance else numpyro_gmm.AutoDiagonalNormalMixture
    )
    data = jnp.array([0.8, 1.3, -0.4])

    def model():
        z = numpyro.sample("z", dist.Normal(jnp.zeros(3), 1.0).to_event(1))
        numpyro.sample("y", dist.Normal(z, 0.5).to_event(1), obs=data)

    def train(learn_weights):
        guide = guide_class(model, num_components=3, learn_weights=learn_weights)
        svi = SVI(model, guide, Adam(0.05), Trace_ELBO())
        state = svi.init(jax.random.PRNGKey(0))
        start = svi.get_params(state)["auto_locs"]
        for _ in range(5):
            state, loss = svi.update(state)
        assert np.isfinite(float(loss))
        return guide, svi.get_params(state), start

    _, learned, _ = train(True)
    assert np.any(np.asarray(learned["auto_logits"]) != 0)
    guide, params, start = train(False)
    assert "auto_logits" not in params
    assert np.any(np.asarray(params["auto_locs"]) != np.asarray(start))
    posterior = guide.get_posterior(params)
    np.testing.assert_array_equal(np.asarray(posterior.logits), np.zeros(3))
    assert guide.median(params)["z"].shape == (3,)


@pytest.mark.parametrize("value", ["yes", 1, None, np.array([True, False])])
def test_learn_weights_must_be_a_boolean(value):
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    import numpyro_gmm
    import pyro_gmm

    def model():
        pass

    guides = (
        pyro_gmm.AutoDiagonalNormalMixture,
        pyro_gmm.AutoMultivariateNormalMixture,
        numpyro_gmm.AutoDiagonalNormalMixture,
        numpyro_gmm.AutoMultivariateNormalMixture,
    )
    for guide_class in guides:
        with pytest.raises(ValueError, match="learn_weights"):
            guide_class(model, num_components=2, learn_weights=value)
    assert shared_math.learn_weights_setting(np.bool_(False)) is False
