"""The same parameters and the same draws give the same sample gradients in ``pyro_gmm``
and ``numpyro_gmm`` (float64), for every estimator, and the autoguides start alike.

The draws (component one-hot and standard-normal noise) are made once with NumPy and fed to
each adapter's gradient glue: ``pyro_gmm``'s ``torch.autograd.Function`` and
``numpyro_gmm``'s ``jax.custom_jvp`` rules.  Gradients of ``sum(c * x)`` for a fixed random
``c`` must agree to 1e-12 relative.
"""

from __future__ import annotations

import _reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import shared_math
from numpyro_gmm import _sampling as numpyro_glue
from pyro_gmm.distribution import _MixtureSample


def pyro_gradients(estimator, params, one_hot, noise, cotangent):
    locs, scales, logits = (torch.tensor(p, requires_grad=True) for p in params)
    one_hot_t, noise_t = torch.tensor(one_hot), torch.tensor(noise)
    with torch.no_grad():
        x0 = shared_math.sample_from_noise(locs, scales, one_hot_t, noise_t)
    x = _MixtureSample.apply(x0, locs, scales, logits, one_hot_t, noise_t, estimator)
    (x * torch.tensor(cotangent)).sum().backward()
    return x.detach().numpy(), [p.grad.numpy() for p in (locs, scales, logits)]


def numpyro_gradients(estimator, params, one_hot, noise, cotangent):
    one_hot_j, noise_j, cotangent_j = jnp.asarray(one_hot), jnp.asarray(noise), jnp.asarray(cotangent)

    def sample(locs, scales, logits):
        x_direct = shared_math.sample_from_noise(locs, scales, one_hot_j, noise_j)
        if estimator == "hybrid":
            return numpyro_glue.attach_logits_implicit("normal", x_direct, locs, scales, logits, ())
        attach = {"implicit": numpyro_glue.attach_implicit, "rao_blackwell": numpyro_glue.attach_rao_blackwell}
        return attach[estimator]("normal", jax.lax.stop_gradient(x_direct), locs, scales, logits, ())

    args = [jnp.asarray(p) for p in params]
    x = sample(*args)
    grads = jax.grad(lambda *a: jnp.sum(sample(*a) * cotangent_j), argnums=(0, 1, 2))(*args)
    return np.asarray(x), [np.asarray(g) for g in grads]


@pytest.mark.parametrize("estimator", ["implicit", "hybrid", "rao_blackwell"])
@pytest.mark.parametrize("event_size", [1, 4, 12])
def test_same_draws_same_gradients(estimator, event_size):
    rng = np.random.default_rng(event_size)
    num_components = 3
    params = ref.random_parameters(
        rng, (2, num_components, event_size), (num_components, event_size), (2, num_components)
    )
    _, component, noise = ref.sample_mixture(rng, *params, (5,))
    one_hot = ref.one_hot(component, num_components)
    cotangent = rng.standard_normal(noise.shape)
    x_pyro, grads_pyro = pyro_gradients(estimator, params, one_hot, noise, cotangent)
    x_numpyro, grads_numpyro = numpyro_gradients(estimator, params, one_hot, noise, cotangent)
    np.testing.assert_allclose(x_pyro, x_numpyro, rtol=1e-14, atol=0)
    for name, a, b, p in zip(("locs", "scales", "logits"), grads_pyro, grads_numpyro, params):
        assert a.shape == b.shape == p.shape, name
        ref.assert_close(a, b, 1e-12, what=f"{estimator} {name}")


def test_autoguides_start_from_the_same_offset_pattern():
    """Both autoguides place component k at init + init_scale * init_spread * component_offsets[k]."""
    import numpyro
    import pyro
    from numpyro.infer.initialization import init_to_value as numpyro_init_to_value
    from pyro.infer.autoguide.initialization import init_to_value as pyro_init_to_value

    import numpyro_gmm
    import pyro_gmm

    def pyro_model():
        pyro.sample("z", pyro.distributions.Normal(torch.zeros(3, dtype=torch.float64), 1.0).to_event(1))

    def numpyro_model():
        numpyro.sample("z", numpyro.distributions.Normal(jnp.zeros(3), 1.0).to_event(1))

    start = np.array([0.5, -1.0, 2.0])
    pyro.clear_param_store()
    pyro_guide = pyro_gmm.AutoDiagonalNormalMixture(
        pyro_model, num_components=4, init_loc_fn=pyro_init_to_value(values={"z": torch.tensor(start)}), init_scale=0.3
    )
    pyro_guide()
    numpyro_guide = numpyro_gmm.AutoDiagonalNormalMixture(
        numpyro_model,
        num_components=4,
        init_loc_fn=numpyro_init_to_value(values={"z": jnp.asarray(start)}),
        init_scale=0.3,
    )
    with numpyro.handlers.seed(rng_seed=0):
        numpyro_guide()
    expected = start + 0.3 * 2.0 * shared_math.component_offsets(4, 3)
    np.testing.assert_allclose(pyro_guide.locs.detach().numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(numpyro_guide._init_component_locs), expected, rtol=1e-12)
