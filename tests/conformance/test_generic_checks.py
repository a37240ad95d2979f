r"""The generic distribution checks, over every case of :mod:`conformance.registry`.

Statistical checks are seeded and state their thresholds:

* mean and variance against samples: :math:`N = 20000` draws per case, :math:`|z| < 5` per
  coordinate with the standard error of the mean :math:`\sqrt{\mathrm{Var}/N}` and of the
  sample variance :math:`\sqrt{(m_4 - s^4)/N}` (:math:`m_4` the sample fourth central moment);
* pathwise gradient of :math:`\sum E[x + x^2]`: ``REPEATS`` = 32 independent estimates of
  ``SAMPLES`` = 1000 draws each; the tolerance is the measured standard error of their mean,
  :math:`|\bar g - g| < 6\,\mathrm{se}` per entry (Student-t with 31 degrees of freedom:
  :math:`P(|t| > 6) \approx 10^{-6}`), and the check must have power: every standard error
  is below 5 % of the largest exact gradient entry.

The default run checks one case per entry and framework, the batch shapes ((), (2,), (2, 3))
and estimators taken in turn so that each framework sees all of them (and the settings
checks every estimator); ``-m slow`` runs every batch shape with every estimator.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conformance.registry import ESTIMATORS, cases, guide_cases

#: The default run: one case per (entry, framework), batch shapes and estimators in turn.
FAST = cases(estimators=ESTIMATORS, rotate=True)
#: ``-m slow``: every other batch shape and estimator.
SLOW = [case for case in cases(estimators=ESTIMATORS) if case.id not in {fast.id for fast in FAST}]
#: The settings checks are cheap: every estimator at the default run's batch shape.
SETTINGS_CASES = [dataclasses.replace(case, estimator=estimator) for case in FAST for estimator in ESTIMATORS]


def fast_and_slow():
    """``FAST`` cases as they are, ``SLOW`` ones marked slow."""
    return [pytest.param(case, id=case.id) for case in FAST] + [
        pytest.param(case, id=case.id, marks=pytest.mark.slow) for case in SLOW
    ]


NUM_MOMENT_SAMPLES = 20000
REPEATS, SAMPLES = 32, 1000


# --------------------------------------------------------------------------- cheap checks


@pytest.mark.parametrize("case", fast_and_slow())
def test_shapes_log_prob_mean_variance(case):
    """Shapes and attributes; ``log_prob`` at points spread over the support (NumPy normals,
    scale 3) and the mean and variance against the family's float64 references (1e-12)."""
    distribution = case.build()
    framework = case.framework
    assert distribution.has_rsample
    assert tuple(distribution.batch_shape) == case.batch_shape
    assert tuple(distribution.event_shape) == case.event_shape
    assert distribution.support.event_dim == len(case.event_shape)
    rng = np.random.default_rng(5)
    points = 3.0 * rng.standard_normal((7,) + case.batch_shape + case.event_shape)
    got = framework.log_prob(distribution, framework.asarray(points))
    assert got.shape == (7,) + case.batch_shape
    want = case.entry.family.log_prob(case.to_family_points(points), case.family_parameters())
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    mean, variance = case.entry.family.moments(case.family_parameters(), np)
    if case.entry.scalar_event:
        mean, variance = mean[..., 0], variance[..., 0]
    for got, want in ((framework.mean(distribution), mean), (framework.variance(distribution), variance)):
        assert got.shape == case.batch_shape + case.event_shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", fast_and_slow())
def test_expand(case):
    """``expand`` to ``(4,) + batch_shape``: the same class, the new batch shape, ``log_prob``
    broadcast exactly, and every setting kept."""
    distribution = case.build()
    new_batch = (4,) + case.batch_shape
    expanded = distribution.expand(new_batch)
    assert type(expanded) is type(distribution)
    assert tuple(expanded.batch_shape) == new_batch and tuple(expanded.event_shape) == case.event_shape
    rng = np.random.default_rng(6)
    points = case.framework.asarray(rng.standard_normal((3,) + new_batch + case.event_shape))
    got = case.framework.log_prob(expanded, points)
    want = case.framework.log_prob(distribution, points)
    np.testing.assert_array_equal(got, want)
    assert case.framework.settings(expanded) == case.framework.settings(distribution)


# --------------------------------------------------------------------------- settings


def _wrapped(case, distribution):
    """``{how: distribution}``: the distribution after each operation that rebuilds or wraps it."""
    framework = case.framework
    size = 4
    value = framework.asarray(np.zeros((size,) + case.batch_shape + case.event_shape))
    return {
        "expand": distribution.expand((size,) + case.batch_shape),
        "to_event.expand": (
            distribution.to_event(1).expand((size,) + case.batch_shape[:-1])
            if case.batch_shape
            else distribution.expand((size,))
        ),
        "plate": framework.plate_site(distribution, size, value),
    }


@pytest.mark.parametrize("validate_args", [True, False])
@pytest.mark.parametrize("case", SETTINGS_CASES, ids=lambda case: case.id)
def test_settings_survive_expand_to_event_and_plates(case, validate_args):
    """Estimator, validation, dtype, device and class are kept by ``expand``,
    ``to_event(1).expand`` and a plate (which expands the site's distribution), for every
    estimator; and validation still *acts* (checked for one estimator, it does not depend on
    it): ``log_prob`` of NaN is rejected exactly when ``validate_args`` is on (Pyro raises
    ``ValueError``, NumPyro masks it to -inf)."""
    distribution = case.build(validate_args=validate_args)
    framework = case.framework
    expected = framework.settings(distribution)
    assert expected["estimator"] == case.estimator and expected["validate_args"] == validate_args
    behaviour = case.estimator == ESTIMATORS[0]
    if behaviour:
        assert framework.rejects_invalid_value(distribution) == validate_args
    for how, derived in _wrapped(case, distribution).items():
        assert framework.settings(derived) == expected, how
        if behaviour:
            assert framework.rejects_invalid_value(derived) == validate_args, how


@pytest.mark.parametrize("guide, framework_name, estimator", guide_cases(), ids=lambda v: getattr(v, "name", str(v)))
def test_autoguide_posterior_keeps_settings(guide, framework_name, estimator):
    """``get_posterior`` of each autoguide built with ``estimator=...`` uses that estimator
    (and float64 here, where the model is float64)."""
    from conformance.registry import FRAMEWORKS

    if framework_name == "pyro":
        import torch

        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            posterior = guide.pyro(estimator)
        finally:
            torch.set_default_dtype(default)
    else:
        posterior = guide.numpyro(estimator)
    settings = FRAMEWORKS[framework_name].settings(posterior)
    assert settings["estimator"] == estimator
    assert "float64" in settings["dtype"]


# --------------------------------------------------------------------------- NumPyro pytree


@pytest.mark.parametrize("case", [p for p in fast_and_slow() if p.values[0].framework_name == "numpyro"])
def test_numpyro_pytree_jit_and_vmap(case):
    """A distribution passes through ``jax.jit`` as a pytree (same class, settings, values);
    ``vmap`` over a leading axis of the parameters gives the batched distribution's
    ``log_prob`` and ``mean`` (1e-12)."""
    import jax

    from conformance.registry import Case

    distribution = case.build()
    through_jit = jax.jit(lambda d: d)(distribution)
    assert type(through_jit) is type(distribution)
    assert case.framework.settings(through_jit) == case.framework.settings(distribution)
    for leaf, other in zip(jax.tree_util.tree_leaves(distribution), jax.tree_util.tree_leaves(through_jit)):
        np.testing.assert_array_equal(np.asarray(leaf), np.asarray(other))

    stacked_case = Case(case.entry, case.framework_name, (3,) + case.batch_shape, case.estimator)
    parameters = case.framework.parameters(stacked_case.family_parameters(seed=1))
    builder = case.entry.numpyro
    rng = np.random.default_rng(7)
    points = case.framework.asarray(rng.standard_normal((2, 3) + case.batch_shape + case.event_shape))

    def per_slice(p, x):
        d = builder(p, estimator=case.estimator)
        return d.log_prob(x), d.mean

    mapped_log_prob, mapped_mean = jax.jit(jax.vmap(per_slice, in_axes=(0, 1), out_axes=(1, 0)))(parameters, points)
    batched = builder(parameters, estimator=case.estimator)
    np.testing.assert_allclose(np.asarray(mapped_log_prob), case.framework.log_prob(batched, points), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(mapped_mean), case.framework.mean(batched), rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- sampling checks


def _check_samples(case):
    distribution = case.build()
    framework = case.framework
    x = framework.sample(distribution, (NUM_MOMENT_SAMPLES,), seed=3)
    assert tuple(x.shape) == (NUM_MOMENT_SAMPLES,) + case.batch_shape + case.event_shape
    assert framework.in_support(distribution, x)
    x = framework.to_numpy(x)
    mean, variance = framework.mean(distribution), framework.variance(distribution)
    sample_mean = x.mean(0)
    centred = x - sample_mean
    sample_variance = (centred**2).mean(0)
    fourth = (centred**4).mean(0)
    z_mean = (sample_mean - mean) / np.sqrt(variance / NUM_MOMENT_SAMPLES)
    z_variance = (sample_variance - variance) / np.sqrt((fourth - sample_variance**2) / NUM_MOMENT_SAMPLES)
    assert np.abs(z_mean).max() < 5, z_mean
    assert np.abs(z_variance).max() < 5, z_variance


def _check_pathwise_gradient(case):
    estimates, exact = case.framework.pathwise_gradients(
        case.entry, case.family_parameters(seed=2), case.estimator, SAMPLES, REPEATS, seed=11
    )
    scale = max(np.abs(value).max() for value in exact.values())
    for name, values in estimates.items():
        assert values.shape == (REPEATS,) + exact[name].shape
        mean = values.mean(0)
        standard_error = values.std(0, ddof=1) / np.sqrt(REPEATS)
        assert standard_error.max() < 0.05 * scale, (name, standard_error.max(), scale)
        z = (mean - exact[name]) / np.maximum(standard_error, 1e-12 * scale)
        assert np.abs(z).max() < 6, (name, z, mean, exact[name])


@pytest.mark.parametrize("case", fast_and_slow())
def test_samples_support_mean_variance(case):
    _check_samples(case)


@pytest.mark.parametrize("case", fast_and_slow())
def test_pathwise_gradient_of_x_plus_x_squared(case):
    _check_pathwise_gradient(case)
