r"""Marginal quantiles of full-covariance mixtures, and the full-covariance autoguides'
``median``/``quantiles``.

Coordinate :math:`i` of :math:`\sum_k\pi_kN(\mu_k, L_kL_k^\top)` has the 1-D marginal
:math:`\sum_k\pi_kN(\mu_{ki}, \Sigma_{k,ii})`.  Checked: the component scales against
:math:`\sqrt{\operatorname{diag}(LL^\top)}` by NumPy; SciPy's CDF of that marginal at each
returned quantile equals the quantile level, in both adapters and with a batch shape; the
autoguides' ``median`` is ``quantiles([0.5])``, both are finite, constrained to each site's
support, and agree between the adapters for the same parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import scipy.stats

import shared_math

LEVELS = np.array([1e-4, 0.1, 0.5, 0.9, 0.9999])


def _parameters(seed, batch=(), num_components=3, event_size=4):
    rng = np.random.default_rng(seed)
    locs = 2.0 * rng.standard_normal(batch + (num_components, event_size))
    strict = np.tril(rng.standard_normal(batch + (num_components, event_size, event_size)), -1)
    diagonal = np.exp(0.5 * rng.standard_normal(batch + (num_components, event_size)))
    scale_tril = strict + diagonal[..., None] * np.eye(event_size)
    return locs, scale_tril, rng.standard_normal(batch + (num_components,))


def _marginal_cdf(t, locs, scale_tril, logits):
    """SciPy: sum_k pi_k Phi((t_i - mu_ki) / sqrt(Sigma_k,ii)) for ``t`` ``(..., D)``."""
    sigma = np.sqrt(np.diagonal(scale_tril @ np.swapaxes(scale_tril, -1, -2), axis1=-2, axis2=-1))
    pi = scipy.special.softmax(logits, axis=-1)[..., None]
    return np.sum(pi * scipy.stats.norm.cdf((t[..., None, :] - locs) / sigma), axis=-2)


def test_component_scales_are_the_roots_of_the_covariance_diagonal():
    _, scale_tril, _ = _parameters(0, batch=(2,))
    want = np.sqrt(np.diagonal(scale_tril @ np.swapaxes(scale_tril, -1, -2), axis1=-2, axis2=-1))
    np.testing.assert_allclose(shared_math.full_covariance_component_scales(scale_tril), want, rtol=1e-14)
    # only the lower triangle is read
    noisy = scale_tril + np.triu(np.ones_like(scale_tril), 1)
    np.testing.assert_allclose(shared_math.full_covariance_component_scales(noisy), want, rtol=1e-14)


def _check_quantiles(got, locs, scale_tril, logits):
    got = np.asarray(got)
    assert got.shape == LEVELS.shape + locs.shape[:-2] + locs.shape[-1:]
    for level, t in zip(LEVELS, got):
        np.testing.assert_allclose(_marginal_cdf(t, locs, scale_tril, logits), level, rtol=1e-9, atol=0)


def test_pyro_marginal_quantiles():
    torch = pytest.importorskip("torch")
    import pyro_gmm

    params = _parameters(1, batch=(2,))
    mixture = pyro_gmm.MultivariateNormalMixture(*(torch.tensor(a) for a in params))
    _check_quantiles(mixture.marginal_quantiles(LEVELS), *params)


def test_numpyro_marginal_quantiles():
    pytest.importorskip("jax")
    import jax.numpy as jnp

    import numpyro_gmm

    params = _parameters(2, batch=(2,))
    mixture = numpyro_gmm.MultivariateNormalMixture(*(jnp.asarray(a) for a in params))
    _check_quantiles(mixture.marginal_quantiles(LEVELS), *params)


def test_autoguide_median_and_quantiles_agree_between_adapters():
    """One positive site (``LogNormal``, so the transform is ``exp``) and one real site; the
    guides' parameters set to the same values in both adapters."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as ndist
    import pyro
    import pyro.distributions as pdist

    import numpyro_gmm
    import pyro_gmm

    locs, scale_tril, logits = _parameters(3, num_components=2, event_size=3)
    scales = np.diagonal(scale_tril, axis1=-2, axis2=-1)  # Pyro's L = diag(scales) @ unit lower triangular
    unit = np.tril(scale_tril) / scales[..., None]

    def pyro_model():
        pyro.sample("a", pdist.LogNormal(0.0, 1.0))
        pyro.sample("b", pdist.Normal(torch.zeros(2), 1.0).to_event(1))

    def numpyro_model():
        numpyro.sample("a", ndist.LogNormal(0.0, 1.0))
        numpyro.sample("b", ndist.Normal(jnp.zeros(2), 1.0).to_event(1))

    pyro.clear_param_store()
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        pyro_guide = pyro_gmm.AutoMultivariateNormalMixture(pyro_model, num_components=2)
        pyro_guide()  # set up the prototype
        with torch.no_grad():
            pyro_guide.locs.copy_(torch.tensor(locs))
            pyro_guide.scales = torch.tensor(scales)
            pyro_guide.scale_tril = torch.tensor(unit)
            pyro_guide.logits.copy_(torch.tensor(logits))
        pyro_quantiles = pyro_guide.quantiles([0.25, 0.5, 0.75])
        pyro_median = pyro_guide.median()
    finally:
        torch.set_default_dtype(default_dtype)

    numpyro_guide = numpyro_gmm.AutoMultivariateNormalMixture(numpyro_model, num_components=2)
    with numpyro.handlers.seed(rng_seed=0):
        numpyro_guide()
    params = {
        "auto_locs": jnp.asarray(locs),
        "auto_scale_tril": jnp.asarray(np.tril(scale_tril)),
        "auto_logits": jnp.asarray(logits),
    }
    numpyro_quantiles = numpyro_guide.quantiles(params, [0.25, 0.5, 0.75])
    numpyro_median = numpyro_guide.median(params)

    assert set(pyro_quantiles) == set(numpyro_quantiles) == {"a", "b"}
    assert pyro_quantiles["a"].shape == (3,) and pyro_quantiles["b"].shape == (3, 2)
    for name in ("a", "b"):
        p, n = pyro_quantiles[name].numpy(), np.asarray(numpyro_quantiles[name])
        np.testing.assert_allclose(p, n, rtol=1e-9)
        np.testing.assert_allclose(pyro_median[name].numpy(), p[1], rtol=1e-12)
        np.testing.assert_allclose(np.asarray(numpyro_median[name]), n[1], rtol=1e-12)
        assert np.all(np.diff(p, axis=0) > 0)
    assert np.all(pyro_quantiles["a"].numpy() > 0)  # constrained to the positive support
    # the unconstrained latent's quantiles are those of the marginal mixtures
    latent = np.log(pyro_quantiles["a"].numpy())[:, None]
    latent = np.concatenate([latent, pyro_quantiles["b"].numpy()], axis=1)
    levels = _marginal_cdf(latent, locs, np.tril(scale_tril), logits)
    np.testing.assert_allclose(levels, np.array([[0.25], [0.5], [0.75]]) * np.ones((1, 3)), rtol=1e-9)
