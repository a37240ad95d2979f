r"""The registry of our distribution classes and what the generic checks need to know about them.

* A :class:`Family` is the maths of one kind of mixture, independent of any adapter: how to
  draw test parameters (NumPy float64), a brute-force float64 ``log_prob`` reference (SciPy),
  and the mixture's mean and variance written once against the array API (evaluated in NumPy
  for values, and differentiated in torch and JAX for the closed-form pathwise gradient).
* An :class:`Entry` is one class of ours: a name, its family, and how each adapter builds it
  from the family's parameters and the settings (``estimator``, ``validate_args``).
* A :class:`GuideEntry` is one autoguide: how each adapter builds it and returns its posterior.
* :data:`FRAMEWORKS` holds what differs between Pyro and NumPyro (arrays, sampling, plates,
  settings, validation behaviour, pathwise gradients), so the checks are written once.

To check a new class, add one :class:`Entry` to :data:`ENTRIES` (and, if its maths is new, a
:class:`Family`; a location-scale family of ``scipy.stats`` is one call of
:func:`location_scale_family`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import array_api_compat
import numpy as np
import scipy.special
import scipy.stats

import shared_math

#: The concrete estimators, from the one list in ``shared_math`` ("auto" resolves to one of them).
ESTIMATORS = tuple(name for name in shared_math.ESTIMATORS if name != "auto")
NUM_COMPONENTS = 3


# ------------------------------------------------------------------------------ families


@dataclasses.dataclass(frozen=True)
class Family:
    """The maths of one kind of mixture (no adapter code).

    ``parameters(batch_shape, seed)``: ``{name: NumPy float64 array}``;
    ``log_prob(x, parameters)``: float64 reference for points ``x`` of shape ``(..., D)``;
    ``moments(parameters, xp)``: ``(mean, variance)``, shape ``batch_shape + (D,)``, written
    with the array-API namespace ``xp`` (NumPy, torch through ``array_api_compat``, JAX);
    ``event_size``: ``D``.
    """

    name: str
    parameters: Callable
    log_prob: Callable
    moments: Callable
    event_size: int


def _softmax(logits, xp):
    shifted = xp.exp(logits - xp.max(logits, axis=-1, keepdims=True))
    return shifted / xp.sum(shifted, axis=-1, keepdims=True)


def location_scale_family(name, standard, standard_mean, standard_variance, *, event_size=2):
    r"""A mixture of products of ``standard`` (a ``scipy.stats`` distribution with ``logpdf``),
    shifted by ``locs`` and scaled by ``scales``: component mean
    :math:`\mu + m\sigma`, variance :math:`v\sigma^2` with ``standard_mean`` :math:`m` and
    ``standard_variance`` :math:`v`.  Parameters: ``locs`` ~ 1.5 N(0, 1), ``scales`` ~
    U(0.5, 1.5), ``logits`` ~ N(0, 1), shapes ``batch + (K, D)``, ``batch + (K, D)``,
    ``batch + (K,)`` with K = 3."""

    def parameters(batch_shape, seed):
        rng = np.random.default_rng(seed)
        shape = tuple(batch_shape) + (NUM_COMPONENTS, event_size)
        return {
            "locs": 1.5 * rng.standard_normal(shape),
            "scales": rng.uniform(0.5, 1.5, shape),
            "logits": rng.standard_normal(tuple(batch_shape) + (NUM_COMPONENTS,)),
        }

    def log_prob(x, p):
        z = (np.asarray(x)[..., None, :] - p["locs"]) / p["scales"]
        component = np.sum(standard.logpdf(z) - np.log(p["scales"]), axis=-1)
        return scipy.special.logsumexp(scipy.special.log_softmax(p["logits"], axis=-1) + component, axis=-1)

    def moments(p, xp):
        weights = _softmax(p["logits"], xp)[..., None]
        component_mean = p["locs"] + standard_mean * p["scales"]
        mean = xp.sum(weights * component_mean, axis=-2)
        second = xp.sum(weights * (standard_variance * p["scales"] ** 2 + component_mean**2), axis=-2)
        return mean, second - mean**2

    return Family(name, parameters, log_prob, moments, event_size)


NORMAL = location_scale_family("Normal", scipy.stats.norm, 0.0, 1.0)
NORMAL_1D = location_scale_family("Normal", scipy.stats.norm, 0.0, 1.0, event_size=1)
#: Other component families of ``ReparamMixtureSameFamily`` (Cauchy has no moments, so the
#: moment and E[x + x^2] checks do not apply to it; it is checked in tests/test_families*.py).
STUDENT_T_DF = 6.0
OTHER_FAMILIES = {
    "Logistic": location_scale_family("Logistic", scipy.stats.logistic, 0.0, np.pi**2 / 3),
    "Laplace": location_scale_family("Laplace", scipy.stats.laplace, 0.0, 2.0),
    "Gumbel": location_scale_family("Gumbel", scipy.stats.gumbel_r, np.euler_gamma, np.pi**2 / 6),
    "StudentT": location_scale_family(
        "StudentT", scipy.stats.t(STUDENT_T_DF), 0.0, STUDENT_T_DF / (STUDENT_T_DF - 2.0)
    ),
}


def full_covariance_family(*, event_size=2):
    r"""A mixture of full-covariance Gaussians :math:`N(\mu_k, L_kL_k^\top)`: ``locs`` ~
    1.5 N(0, 1), ``scale_tril`` lower triangular with diagonal ~ U(0.5, 1.5) and strict lower
    triangle ~ 0.5 N(0, 1) (correlated components), ``logits`` ~ N(0, 1); K = 3.  The
    reference ``log_prob`` is SciPy's ``multivariate_normal`` per component; the variance is
    the diagonal of the mixture covariance, with :math:`\mathrm{diag}(L L^\top)_d = \sum_j L_{dj}^2`."""

    def parameters(batch_shape, seed):
        rng = np.random.default_rng(seed)
        shape = tuple(batch_shape) + (NUM_COMPONENTS, event_size)
        strict = np.tril(0.5 * rng.standard_normal(shape + (event_size,)), -1)
        diagonal = rng.uniform(0.5, 1.5, shape)
        return {
            "locs": 1.5 * rng.standard_normal(shape),
            "scale_tril": strict + diagonal[..., None] * np.eye(event_size),
            "logits": rng.standard_normal(tuple(batch_shape) + (NUM_COMPONENTS,)),
        }

    def log_prob(x, p):
        x = np.asarray(x)
        batch = np.broadcast_shapes(x.shape[:-1], p["logits"].shape[:-1])
        x = np.broadcast_to(x, batch + (event_size,))
        locs = np.broadcast_to(p["locs"], batch + p["locs"].shape[-2:])
        tril = np.broadcast_to(p["scale_tril"], batch + p["scale_tril"].shape[-3:])
        log_weights = np.broadcast_to(scipy.special.log_softmax(p["logits"], axis=-1), batch + (NUM_COMPONENTS,))
        out = np.empty(batch)
        for index in np.ndindex(*batch):
            component = [
                scipy.stats.multivariate_normal(locs[index][k], tril[index][k] @ tril[index][k].T).logpdf(x[index])
                for k in range(NUM_COMPONENTS)
            ]
            out[index] = scipy.special.logsumexp(log_weights[index] + np.array(component))
        return out

    def moments(p, xp):
        weights = _softmax(p["logits"], xp)[..., None]
        mean = xp.sum(weights * p["locs"], axis=-2)
        component_variance = xp.sum(p["scale_tril"] ** 2, axis=-1)
        second = xp.sum(weights * (component_variance + p["locs"] ** 2), axis=-2)
        return mean, second - mean**2

    return Family("MultivariateNormal", parameters, log_prob, moments, event_size)


FULL_COVARIANCE = full_covariance_family()


# ------------------------------------------------------------------------------ entries


@dataclasses.dataclass(frozen=True)
class Entry:
    """One distribution class of ours.

    ``pyro``/``numpyro``: ``build(parameters, *, estimator, validate_args)`` with the family's
    parameters as framework arrays; ``None`` where the adapter lacks the class.
    ``scalar_event``: samples have event shape ``()`` (the family's ``D`` is 1 and dropped).
    """

    name: str
    family: Family
    pyro: Callable | None = None
    numpyro: Callable | None = None
    scalar_event: bool = False


def _pyro_diag(p, **settings):
    import pyro_gmm

    return pyro_gmm.DiagNormalMixture(p["locs"], p["scales"], p["logits"], **settings)


def _numpyro_diag(p, **settings):
    import numpyro_gmm

    return numpyro_gmm.DiagNormalMixture(p["locs"], p["scales"], p["logits"], **settings)


def _pyro_swap_in(p, *, validate_args=None, **settings):
    import pyro.distributions as dist

    import pyro_gmm

    mixing = dist.Categorical(logits=p["logits"], validate_args=validate_args)
    components = dist.Normal(p["locs"], p["scales"], validate_args=validate_args).to_event(1)
    return pyro_gmm.ReparamMixtureSameFamily(mixing, components, validate_args=validate_args, **settings)


def _numpyro_swap_in(p, *, validate_args=None, **settings):
    import numpyro.distributions as dist

    import numpyro_gmm

    mixing = dist.CategoricalLogits(p["logits"], validate_args=validate_args)
    components = dist.Normal(p["locs"], p["scales"], validate_args=validate_args).to_event(1)
    return numpyro_gmm.ReparamMixtureSameFamily(mixing, components, validate_args=validate_args, **settings)


def _pyro_swap_in_scalar(p, *, validate_args=None, **settings):
    import pyro.distributions as dist

    import pyro_gmm

    mixing = dist.Categorical(logits=p["logits"], validate_args=validate_args)
    components = dist.Normal(p["locs"][..., 0], p["scales"][..., 0], validate_args=validate_args)
    return pyro_gmm.ReparamMixtureSameFamily(mixing, components, validate_args=validate_args, **settings)


def _numpyro_swap_in_scalar(p, *, validate_args=None, **settings):
    import numpyro.distributions as dist

    import numpyro_gmm

    mixing = dist.CategoricalLogits(p["logits"], validate_args=validate_args)
    components = dist.Normal(p["locs"][..., 0], p["scales"][..., 0], validate_args=validate_args)
    return numpyro_gmm.ReparamMixtureSameFamily(mixing, components, validate_args=validate_args, **settings)


def _components(module, name, loc, scale, validate_args):
    cls = getattr(module, name)
    if name == "StudentT":
        return cls(STUDENT_T_DF, loc, scale, validate_args=validate_args)
    return cls(loc, scale, validate_args=validate_args)


def _pyro_family_swap_in(name, p, *, validate_args=None, **settings):
    import pyro.distributions as dist

    import pyro_gmm

    mixing = dist.Categorical(logits=p["logits"], validate_args=validate_args)
    components = _components(dist, name, p["locs"], p["scales"], validate_args).to_event(1)
    return pyro_gmm.ReparamMixtureSameFamily(mixing, components, validate_args=validate_args, **settings)


def _numpyro_family_swap_in(name, p, *, validate_args=None, **settings):
    import numpyro.distributions as dist

    import numpyro_gmm

    mixing = dist.CategoricalLogits(p["logits"], validate_args=validate_args)
    components = _components(dist, name, p["locs"], p["scales"], validate_args).to_event(1)
    return numpyro_gmm.ReparamMixtureSameFamily(mixing, components, validate_args=validate_args, **settings)


def _pyro_full_covariance(p, **settings):
    import pyro_gmm

    return pyro_gmm.MultivariateNormalMixture(p["locs"], p["scale_tril"], p["logits"], **settings)


def _numpyro_full_covariance(p, **settings):
    import numpyro_gmm

    return numpyro_gmm.MultivariateNormalMixture(p["locs"], p["scale_tril"], p["logits"], **settings)


def _pyro_full_covariance_swap_in(p, *, validate_args=None, **settings):
    import pyro.distributions as dist

    import pyro_gmm

    mixing = dist.Categorical(logits=p["logits"], validate_args=validate_args)
    components = dist.MultivariateNormal(p["locs"], scale_tril=p["scale_tril"], validate_args=validate_args)
    return pyro_gmm.ReparamMixtureSameFamily(mixing, components, validate_args=validate_args, **settings)


def _numpyro_full_covariance_swap_in(p, *, validate_args=None, **settings):
    import numpyro.distributions as dist

    import numpyro_gmm

    mixing = dist.CategoricalLogits(p["logits"], validate_args=validate_args)
    components = dist.MultivariateNormal(p["locs"], scale_tril=p["scale_tril"], validate_args=validate_args)
    return numpyro_gmm.ReparamMixtureSameFamily(mixing, components, validate_args=validate_args, **settings)


ENTRIES = [
    Entry("DiagNormalMixture", NORMAL, pyro=_pyro_diag, numpyro=_numpyro_diag),
    Entry(
        "MultivariateNormalMixture",
        FULL_COVARIANCE,
        pyro=_pyro_full_covariance,
        numpyro=_numpyro_full_covariance,
    ),
    Entry(
        "ReparamMixtureSameFamily[MultivariateNormal]",
        FULL_COVARIANCE,
        pyro=_pyro_full_covariance_swap_in,
        numpyro=_numpyro_full_covariance_swap_in,
    ),
    Entry("ReparamMixtureSameFamily[Normal.to_event(1)]", NORMAL, pyro=_pyro_swap_in, numpyro=_numpyro_swap_in),
    Entry(
        "ReparamMixtureSameFamily[Normal]",
        NORMAL_1D,
        pyro=_pyro_swap_in_scalar,
        numpyro=_numpyro_swap_in_scalar,
        scalar_event=True,
    ),
] + [
    Entry(
        f"ReparamMixtureSameFamily[{name}.to_event(1)]",
        family,
        pyro=functools.partial(_pyro_family_swap_in, name),
        numpyro=functools.partial(_numpyro_family_swap_in, name),
    )
    for name, family in OTHER_FAMILIES.items()
]


@dataclasses.dataclass(frozen=True)
class GuideEntry:
    """One autoguide: ``pyro``/``numpyro`` are ``posterior(estimator) -> distribution``, the
    guide's ``get_posterior`` after building it with that estimator on a small model."""

    name: str
    pyro: Callable | None = None
    numpyro: Callable | None = None


def _pyro_guide_posterior(estimator, guide_name="AutoDiagonalNormalMixture"):
    import pyro
    import pyro.distributions as dist

    import pyro_gmm

    def model():
        pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        pyro.sample("s", dist.LogNormal(0.0, 1.0))

    pyro.clear_param_store()
    guide = getattr(pyro_gmm, guide_name)(model, num_components=2, estimator=estimator)
    guide()
    return guide.get_posterior()


def _numpyro_guide_posterior(estimator, guide_name="AutoDiagonalNormalMixture"):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro import handlers

    import numpyro_gmm

    def model():
        numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        numpyro.sample("s", dist.LogNormal(0.0, 1.0))

    guide = getattr(numpyro_gmm, guide_name)(model, num_components=2, estimator=estimator)

    # Substitute the latent draw (zeros): the trace records the parameters without sampling.
    def zeros(site):
        return jnp.zeros(site["fn"].shape()) if site["type"] == "sample" else None

    trace = handlers.trace(handlers.seed(handlers.substitute(guide, substitute_fn=zeros), rng_seed=0)).get_trace()
    params = {name: site["value"] for name, site in trace.items() if site["type"] == "param"}
    return guide.get_posterior(params)


GUIDES = [
    GuideEntry(
        name,
        pyro=functools.partial(_pyro_guide_posterior, guide_name=name),
        numpyro=functools.partial(_numpyro_guide_posterior, guide_name=name),
    )
    for name in ("AutoDiagonalNormalMixture", "AutoMultivariateNormalMixture")
]


# ------------------------------------------------------------------------------ frameworks


class PyroFramework:
    """What the checks need from torch/Pyro."""

    name = "pyro"

    def asarray(self, array):
        import torch

        return torch.as_tensor(np.asarray(array, dtype=np.float64))

    def to_numpy(self, array):
        return array.detach().cpu().numpy()

    def parameters(self, family_parameters):
        return {name: self.asarray(value) for name, value in family_parameters.items()}

    def sample(self, distribution, sample_shape, seed):
        import torch

        torch.manual_seed(seed)
        return distribution.sample(tuple(sample_shape))

    def in_support(self, distribution, x):
        return bool(distribution.support.check(x).all())

    def log_prob(self, distribution, x):
        return self.to_numpy(distribution.log_prob(x))

    def mean(self, distribution):
        return self.to_numpy(distribution.mean)

    def variance(self, distribution):
        return self.to_numpy(distribution.variance)

    def settings(self, distribution):
        """``estimator`` (resolved), ``validate_args``, ``dtype``, ``device`` and ``class`` of
        the mixture itself (unwrapped from ``Independent``)."""
        import torch

        while isinstance(distribution, torch.distributions.Independent):
            distribution = distribution.base_dist
        mean = distribution.mean
        estimator = getattr(distribution, "estimator", None)
        return {
            "class": type(distribution).__name__,
            "estimator": None if estimator is None else shared_math.resolve_estimator(estimator),
            "validate_args": bool(distribution._validate_args),
            "dtype": str([str(mean.dtype)]),
            "device": str([str(mean.device)]),
        }

    def rejects_invalid_value(self, distribution):
        """Whether ``log_prob`` of an all-NaN value raises (Pyro's validation)."""
        value = self.asarray(np.full(tuple(distribution.batch_shape) + tuple(distribution.event_shape), np.nan))
        try:
            distribution.log_prob(value)
        except ValueError:
            return True
        return False

    def plate_site(self, distribution, size, value):
        """The distribution that a sample site inside a plate of ``size`` (left of the batch
        dimensions) holds, with ``obs=value``."""
        import pyro
        from pyro import poutine

        def model():
            with pyro.plate("plate", size, dim=-len(distribution.batch_shape) - 1):
                pyro.sample("x", distribution, obs=value)

        return poutine.trace(model).get_trace().nodes["x"]["fn"]

    def pathwise_gradients(self, entry, family_parameters, estimator, num_samples, repeats, seed):
        r"""``(estimates, exact)``: ``repeats`` independent estimates (``num_samples`` draws each)
        of the gradient of :math:`\sum E[x + x^2]` (summed over batch and event) by ``rsample``
        + backward, and its closed form (autograd of the family's moments), per parameter."""
        import torch

        estimates = {name: [] for name in family_parameters}
        for repeat in range(repeats):
            params = {name: t.clone().requires_grad_(True) for name, t in self.parameters(family_parameters).items()}
            torch.manual_seed(seed + repeat)
            x = entry.pyro(params, estimator=estimator, validate_args=False).rsample((num_samples,))
            objective = (x + x * x).mean(0).sum()
            for name, gradient in zip(params, torch.autograd.grad(objective, list(params.values()))):
                estimates[name].append(self.to_numpy(gradient))
        params = {name: t.clone().requires_grad_(True) for name, t in self.parameters(family_parameters).items()}
        mean, variance = entry.family.moments(params, array_api_compat.array_namespace(params["locs"]))
        exact = torch.autograd.grad((mean + variance + mean * mean).sum(), list(params.values()))
        return {name: np.stack(values) for name, values in estimates.items()}, {
            name: self.to_numpy(gradient) for name, gradient in zip(params, exact)
        }


def _devices(leaf):
    """The devices of a pytree leaf: a JAX array's own, the host CPU for NumPy arrays (a
    component built from Python numbers, e.g. a Student-t ``df``, keeps NumPy leaves)."""
    if hasattr(leaf, "devices"):
        return leaf.devices()
    import jax

    return {jax.devices("cpu")[0]}


class NumPyroFramework:
    """What the checks need from JAX/NumPyro (float64: ``tests/conftest.py`` enables x64)."""

    name = "numpyro"

    def asarray(self, array):
        import jax.numpy as jnp

        return jnp.asarray(np.asarray(array, dtype=np.float64))

    def to_numpy(self, array):
        return np.asarray(array)

    def parameters(self, family_parameters):
        return {name: self.asarray(value) for name, value in family_parameters.items()}

    def sample(self, distribution, sample_shape, seed):
        import jax

        return distribution.sample(jax.random.PRNGKey(seed), tuple(sample_shape))

    def in_support(self, distribution, x):
        return bool(np.all(np.asarray(distribution.support(x))))

    # Evaluated under jax.jit (the distribution is a pytree): one compilation per shape
    # instead of one per primitive, and the stricter mode (no concrete values).
    def log_prob(self, distribution, x):
        import jax

        return np.asarray(jax.jit(lambda d, v: d.log_prob(v))(distribution, x))

    def mean(self, distribution):
        import jax

        return np.asarray(jax.jit(lambda d: d.mean)(distribution))

    def variance(self, distribution):
        import jax

        return np.asarray(jax.jit(lambda d: d.variance)(distribution))

    def settings(self, distribution):
        import jax
        from numpyro.distributions import Independent

        while isinstance(distribution, Independent):
            distribution = distribution.base_dist
        leaves = jax.tree_util.tree_leaves(distribution)
        return {
            "class": type(distribution).__name__,
            "estimator": getattr(distribution, "resolved_estimator", None),
            "validate_args": bool(distribution._validate_args),
            "dtype": str(sorted({str(leaf.dtype) for leaf in leaves})),
            "device": str(sorted({str(device) for leaf in leaves for device in _devices(leaf)})),
        }

    def rejects_invalid_value(self, distribution):
        """Whether ``log_prob`` of an all-NaN value is masked to -inf (NumPyro's validation,
        which also warns outside ``jit``; evaluated under ``jit``, where it only masks; without
        validation the result is NaN)."""
        value = self.asarray(np.full(tuple(distribution.batch_shape) + tuple(distribution.event_shape), np.nan))
        return bool(np.all(self.log_prob(distribution, value) == -np.inf))

    def plate_site(self, distribution, size, value):
        import numpyro
        from numpyro import handlers

        def model():
            with numpyro.plate("plate", size, dim=-len(distribution.batch_shape) - 1):
                numpyro.sample("x", distribution, obs=value)

        return handlers.trace(model).get_trace()["x"]["fn"]

    def pathwise_gradients(self, entry, family_parameters, estimator, num_samples, repeats, seed):
        """As :meth:`PyroFramework.pathwise_gradients`, with ``jax.vmap`` of ``jax.grad`` over
        ``repeats`` independent keys (one compilation)."""
        import jax
        import jax.numpy as jnp

        params = self.parameters(family_parameters)

        def objective(p, key):
            x = entry.numpyro(p, estimator=estimator, validate_args=False).sample(key, (num_samples,))
            return jnp.sum(jnp.mean(x + x * x, axis=0))

        keys = jax.random.split(jax.random.PRNGKey(seed), repeats)
        estimates = jax.jit(jax.vmap(jax.grad(objective), in_axes=(None, 0)))(params, keys)

        def closed_form(p):
            mean, variance = entry.family.moments(p, jnp)
            return jnp.sum(mean + variance + mean * mean)

        exact = jax.grad(closed_form)(params)
        return {name: np.asarray(value) for name, value in estimates.items()}, {
            name: np.asarray(value) for name, value in exact.items()
        }


FRAMEWORKS = {"pyro": PyroFramework(), "numpyro": NumPyroFramework()}


# ------------------------------------------------------------------------------ cases


@dataclasses.dataclass(frozen=True)
class Case:
    """One entry in one framework at one batch shape (and, for estimator checks, one estimator)."""

    entry: Entry
    framework_name: str
    batch_shape: tuple
    estimator: str = "implicit"

    @property
    def framework(self):
        return FRAMEWORKS[self.framework_name]

    @property
    def id(self):
        batch = "x".join(map(str, self.batch_shape)) or "scalar"
        return f"{self.framework_name}-{self.entry.name}-batch{batch}-{self.estimator}"

    def family_parameters(self, seed=0):
        return self.entry.family.parameters(self.batch_shape, seed)

    def build(self, seed=0, **settings):
        settings.setdefault("estimator", self.estimator)
        builder = getattr(self.entry, self.framework_name)
        return builder(self.framework.parameters(self.family_parameters(seed)), **settings)

    @property
    def event_shape(self):
        return () if self.entry.scalar_event else (self.entry.family.event_size,)

    def to_family_points(self, x):
        """Points of this case's event shape as NumPy ``(..., D)`` for the family's references."""
        x = np.asarray(x)
        return x[..., None] if self.entry.scalar_event else x


BATCH_SHAPES = [(), (2,), (2, 3)]


def cases(*, batch_shapes=BATCH_SHAPES, estimators=("implicit",), rotate=False):
    """Every (entry, framework, batch shape, estimator) that exists.  With ``rotate`` each
    (entry, framework) gets one batch shape and one estimator, taken in turn from
    ``batch_shapes`` and ``estimators``, so a short run still covers every batch shape and
    every estimator in each framework."""
    result = []
    combinations = [
        (entry, framework_name)
        for entry in ENTRIES
        for framework_name in FRAMEWORKS
        if getattr(entry, framework_name) is not None
    ]
    for index, (entry, framework_name) in enumerate(combinations):
        if rotate:
            chosen = [(batch_shapes[index % len(batch_shapes)], estimators[index % len(estimators)])]
        else:
            chosen = [(batch_shape, estimator) for batch_shape in batch_shapes for estimator in estimators]
        result += [Case(entry, framework_name, tuple(batch), estimator) for batch, estimator in chosen]
    return result


def guide_cases(estimators=ESTIMATORS):
    return [
        (guide, framework_name, estimator)
        for guide in GUIDES
        for framework_name in FRAMEWORKS
        if getattr(guide, framework_name) is not None
        for estimator in estimators
    ]


__all__ = [
    "BATCH_SHAPES",
    "Case",
    "ENTRIES",
    "ESTIMATORS",
    "Entry",
    "FRAMEWORKS",
    "Family",
    "GUIDES",
    "GuideEntry",
    "cases",
    "guide_cases",
    "location_scale_family",
]
