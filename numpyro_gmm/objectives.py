r"""``Stratified_ELBO``: the ELBO of a mixture guide, stratified over the mixture component.

For a guide site :math:`z\sim q(z)=\sum_k\pi_k q_k(z)` (Morningstar et al. 2021,
"Automatic Differentiation Variational Inference with Mixtures", arXiv:2003.01687, Eq. 6)

.. math::

    \mathrm{ELBO} = E_q\big[\log p(x, z) - \log q(z)\big]
                  = \sum_k \pi_k\, E_{\varepsilon}\big[\log p(x, z_k) - \log q(z_k)\big],
    \qquad z_k = \mu_k + \sigma_k\varepsilon,

with :math:`\log q` the *full* mixture density.  :class:`Stratified_ELBO` draws one
reparameterized sample from every component (per particle) and weights each term by
:math:`\pi_k`, so the logits get :math:`\sum_k\partial\pi_k/\partial\ell\;(\dots)(z_k)`: every
component brings its own estimate and the weights learn even when the modes are far apart,
where every pathwise weight gradient starves (``docs/estimators.md``).  The price is
:math:`K` model evaluations per particle.  The weighting is :mod:`shared_math.stratified`;
measurements are in ``docs/stratified.md``.

**Which sites are stratified.**  Every guide sample site whose distribution (after
unwrapping masks) has the two members of the stratification protocol:

* ``component_sample(key, sample_shape=())``: one reparameterized draw per component, shape
  ``sample_shape + batch_shape + (K,) + event_shape``;
* ``mixture_log_weights``: :math:`\log\pi`, shape ``batch_shape + (K,)``.

:class:`~numpyro_gmm.DiagNormalMixture`, :class:`~numpyro_gmm.ReparamMixtureSameFamily` (any
component family with a reparameterized ``sample``) and therefore
:class:`~numpyro_gmm.AutoDiagonalNormalMixture` have them.  Every other guide site must be
reparameterized and is treated as in ``Trace_ELBO``.

**When it is exact** (the estimate's expectation is the ELBO of the mixture guide, and its
gradient's is the ELBO's gradient).  Each stratified site gets its own batch axis to the
left of all plates (like parallel enumeration) holding its :math:`K` component draws; with
several stratified sites every combination is evaluated (:math:`\prod_s K_s` model
evaluations per particle; their weights may depend on earlier sites).  A site inside a
plate draws one component index for all its plate elements at once.  The weighting is
exact if and only if every log-density term (model or guide) that depends on a stratified
site is indexed by every plate along which that site has more than one element.  That
covers global mixture sites (any number; e.g. the mixture autoguides) and per-datapoint
mixture latents inside a plate whose model factors separate per data point (amortized
encoders, with subsampling).  A term that pools elements of a plated mixture site raises
``ValueError`` naming the sites.  The check reads batch shapes (static under ``jit``),
relying on the plate semantics of parallel enumeration.

**Importance-weighted** (``importance_weighted=True``): the SIWAE bound (Morningstar et al.
2021, Eq. 9) with :math:`T` = ``num_particles`` draws per component,

.. math::

    \mathcal L_T = E\Big[\log\frac1T\sum_{t=1}^T\sum_k\pi_k\,\frac{p(x,z_{kt})}{q(z_{kt})}\Big]
    \;\ge\; \mathrm{ELBO},\qquad \mathcal L_T\uparrow\log p(x)\ (T\to\infty),

formed separately for each element of the plates shared by every sample site (as
``RenyiELBO``); mixture sites must be global or vary only along those plates, else
``ValueError``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import random
from jax.scipy.special import logsumexp
from numpyro.distributions import Independent
from numpyro.distributions.distribution import MaskedDistribution
from numpyro.distributions.util import scale_and_mask
from numpyro.handlers import replay, seed, substitute, trace
from numpyro.infer.elbo import ELBO
from numpyro.primitives import Messenger

import shared_math


def stratifiable_mixture(fn):
    """The mixture behind a site's distribution if it follows the stratification protocol
    (``component_sample`` and ``mixture_log_weights``, possibly under a mask), else ``None``."""
    while isinstance(fn, MaskedDistribution):
        fn = fn.base_dist
    if hasattr(fn, "component_sample") and hasattr(fn, "mixture_log_weights"):
        return fn
    return None


class _stratify(Messenger):
    r"""Replaces the draw at every stratifiable guide site by one draw per component.

    The :math:`K` draws of the :math:`i`-th stratified site lie along batch axis
    ``first_dim - i`` (left of every plate); the site's other batch axes keep their places.
    Must sit outside ``seed`` (it uses the key that ``seed`` puts on the site).  ``strata``
    collects one :class:`shared_math.Stratum` per site, in guide order.
    """

    def __init__(self, fn, first_dim, max_grid_size):
        super().__init__(fn)
        self.first_dim = first_dim
        self.max_grid_size = max_grid_size
        self.strata = []
        self.grid_size = 1

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["is_observed"] or msg["value"] is not None:
            return
        fn = msg["fn"]
        mixture = stratifiable_mixture(fn)
        if mixture is None:
            if isinstance(fn, Independent) and stratifiable_mixture(fn.base_dist) is not None:
                warnings.warn(
                    f"Stratified_ELBO: site '{msg['name']}' is a mixture inside .to_event(): its elements would "
                    "share one component index within one log-density, so it is sampled as in Trace_ELBO "
                    "(not stratified). Use a plate instead of .to_event() to stratify it.",
                    stacklevel=2,
                )
            return
        name = msg["name"]
        key = msg["kwargs"].get("rng_key")
        if key is None:
            raise ValueError(f"Stratified_ELBO: site '{name}' has no random key (run the guide under `seed`)")
        sample_shape = tuple(msg["kwargs"].get("sample_shape", ()))
        dim = self.first_dim - len(self.strata)
        batch_shape = sample_shape + tuple(mixture.batch_shape)
        event_shape = tuple(mixture.event_shape)
        if len(batch_shape) >= -dim:
            raise ValueError(
                f"Stratified_ELBO: site '{name}' has batch shape {batch_shape}, which reaches the stratum axis "
                f"{dim} (max_plate_nesting={-self.first_dim - 1} plus earlier stratified sites); set "
                "max_plate_nesting to the number of nested plates, or declare the site's batch axes with plates."
            )
        draws = mixture.component_sample(key, sample_shape)
        num_components = draws.shape[len(batch_shape)]
        self.grid_size *= num_components
        if self.grid_size > self.max_grid_size:
            names = ", ".join(f"'{s.name}'" for s in self.strata) + f", '{name}'"
            raise ValueError(
                f"Stratified_ELBO: the stratified sites {names.lstrip(', ')} need {self.grid_size} model "
                f"evaluations per particle (the product of their numbers of components), over "
                f"max_grid_size={self.max_grid_size}. Vectorize repeated mixture sites with a plate (one "
                "stratum axis for all elements), or raise max_grid_size."
            )
        pad = (1,) * (-dim - 1 - len(batch_shape))
        value = jnp.moveaxis(draws, len(batch_shape), 0).reshape((num_components,) + pad + batch_shape + event_shape)
        log_weights = jnp.broadcast_to(mixture.mixture_log_weights, batch_shape + (num_components,))
        log_weights = jnp.moveaxis(log_weights, -1, 0).reshape((num_components,) + pad + batch_shape)
        axis_names = {frame.dim: frame.name for frame in msg["cond_indep_stack"]}
        self.strata.append(shared_math.Stratum(name, dim, log_weights, axis_names))
        msg["value"] = value


def _sample_sites(trace_):
    return [(name, site) for name, site in trace_.items() if site["type"] == "sample"]


def _site_log_prob(site):
    """Scaled (and masked) log density of a traced sample site, batch shape only."""
    if site["intermediates"]:
        log_prob = site["fn"].log_prob(site["value"], site["intermediates"])
    else:
        log_prob = site["fn"].log_prob(site["value"])
    return scale_and_mask(log_prob, site["scale"])


def _check_sites(model_trace, guide_trace):
    for name, site in _sample_sites(guide_trace):
        if site["infer"].get("enumerate"):
            raise ValueError(f"Stratified_ELBO does not enumerate; guide site '{name}' asks for enumeration")
        if not site["is_observed"] and not site["fn"].has_rsample:
            raise ValueError(
                f"Stratified_ELBO needs reparameterized guide sites; site '{name}' ({type(site['fn']).__name__}) "
                "has has_rsample=False. For a mixture, use numpyro_gmm.ReparamMixtureSameFamily or "
                "numpyro_gmm.DiagNormalMixture."
            )
    guide_latents = {name for name, site in _sample_sites(guide_trace) if not site["is_observed"]}
    missing = [
        name for name, site in _sample_sites(model_trace) if not site["is_observed"] and name not in guide_latents
    ]
    if missing:
        warnings.warn(f"Found vars in model but not guide: {set(missing)}", stacklevel=3)


class Stratified_ELBO(ELBO):
    r"""The ELBO of mixture guides, stratified over the component (Morningstar et al. 2021).

    A drop-in loss for :class:`numpyro.infer.SVI` (works under ``jit``, ``svi.run`` and its
    progress bar)::

        svi = SVI(model, guide, optim, Stratified_ELBO(num_particles=4))

    Every guide site whose distribution is one of this library's mixtures (any distribution
    with ``component_sample`` and ``mixture_log_weights``) is sampled once per component and
    its terms are weighted by :math:`\pi_k`; other guide sites must be reparameterized and
    behave as in ``Trace_ELBO``.  See :mod:`numpyro_gmm.objectives` for the maths, the exact
    conditions under which the estimate is unbiased for the mixture ELBO (errors are raised
    otherwise) and the importance-weighted bound.

    Cost: one particle evaluates the model :math:`\prod_s K_s` times (:math:`K` for one
    mixture site), vectorized along a batch axis.

    :param int num_particles: particles :math:`T` (draws per component).
    :param bool importance_weighted: ``False``: the stratified ELBO, Eq. 6 of Morningstar et
        al.; ``True``: the SIWAE bound :math:`\log\frac1T\sum_t\sum_k\pi_k p/q`, their Eq. 9.
    :param vectorize_particles: ``True`` (``jax.vmap`` over particles), ``False``
        (``jax.lax.map``) or a callable, as in :class:`numpyro.infer.Trace_ELBO`.
    :param int max_plate_nesting: number of nested plates in model and guide (read from an
        abstract trace of both when omitted).
    :param int max_grid_size: largest allowed product of the numbers of components of the
        stratified sites of one trace (their model evaluations per particle).
    :raises ValueError: for a guide structure in which the weighting is not exact, a
        non-reparameterized or enumerated guide site, or bad arguments.
    """

    def __init__(
        self,
        num_particles: int = 1,
        importance_weighted: bool = False,
        *,
        vectorize_particles: bool | Callable[[Callable[..., Any], Any], Any] = True,
        max_plate_nesting: int | None = None,
        max_grid_size: int = 4096,
    ) -> None:
        if isinstance(num_particles, bool) or not isinstance(num_particles, int) or num_particles < 1:
            raise ValueError(f"num_particles must be a positive integer; got {num_particles!r}")
        if not isinstance(importance_weighted, bool):
            raise ValueError(f"importance_weighted must be True or False; got {importance_weighted!r}")
        if max_plate_nesting is not None and (not isinstance(max_plate_nesting, int) or max_plate_nesting < 0):
            raise ValueError(f"max_plate_nesting must be a non-negative integer or None; got {max_plate_nesting!r}")
        if not isinstance(max_grid_size, int) or max_grid_size < 1:
            raise ValueError(f"max_grid_size must be a positive integer; got {max_grid_size!r}")
        super().__init__(num_particles=num_particles, vectorize_particles=vectorize_particles)
        self.importance_weighted = importance_weighted
        self.max_plate_nesting = max_plate_nesting
        self.max_grid_size = max_grid_size

    def _plate_nesting(self, param_map, model, guide, args, kwargs):
        """``max_plate_nesting``, or the deepest plate of an abstract (``eval_shape``) trace."""
        if self.max_plate_nesting is not None:
            return self.max_plate_nesting
        found = {}

        def deepest_plate():
            key = random.PRNGKey(0)
            guide_trace = trace(seed(substitute(guide, data=param_map), key)).get_trace(*args, **kwargs)
            model_trace = trace(seed(substitute(replay(model, guide_trace), data=param_map), key)).get_trace(
                *args, **kwargs
            )
            found["depth"] = max(
                (
                    -frame.dim
                    for trace_ in (guide_trace, model_trace)
                    for _, site in _sample_sites(trace_)
                    for frame in site["cond_indep_stack"]
                    if frame.dim is not None
                ),
                default=0,
            )
            return jnp.zeros(())

        jax.eval_shape(deepest_plate)
        return found["depth"]

    def _particle(self, rng_key, param_map, model, guide, args, kwargs, plate_nesting, outputs):
        """One particle: the stratified ELBO (a scalar), or the log stratified importance weight
        per element of the shared plates; and the mutable state."""
        model_key, guide_key = random.split(rng_key)
        stratified_guide = _stratify(
            seed(substitute(guide, data=param_map), guide_key), -(plate_nesting + 1), self.max_grid_size
        )
        guide_trace = trace(stratified_guide).get_trace(*args, **kwargs)
        params = dict(param_map)
        mutable = {name: site["value"] for name, site in guide_trace.items() if site["type"] == "mutable"}
        params.update(mutable)
        model_trace = trace(substitute(replay(seed(model, model_key), guide_trace), data=params)).get_trace(
            *args, **kwargs
        )
        mutable.update({name: site["value"] for name, site in model_trace.items() if site["type"] == "mutable"})
        _check_sites(model_trace, guide_trace)
        strata = stratified_guide.strata
        terms = [(name, _site_log_prob(site)) for name, site in _sample_sites(model_trace)]
        terms += [(name, -_site_log_prob(site)) for name, site in _sample_sites(guide_trace)]
        plate_sizes: dict[int, set[int]] = {}
        for trace_ in (model_trace, guide_trace):
            for _, site in _sample_sites(trace_):
                for frame in site["cond_indep_stack"]:
                    if frame.dim is not None:
                        plate_sizes.setdefault(frame.dim, set()).add(frame.size)
        for name, term in terms:
            shared_math.check_term_axes(jnp.shape(term), strata, plate_sizes, name)
        if not self.importance_weighted:
            elbo: Any = 0.0  # weakly typed: the estimate keeps the dtype of the terms (float32 stays float32)
            for name, term in terms:
                log_weights = shared_math.term_log_weights(jnp.shape(term), strata, name)
                elbo = elbo + shared_math.stratified_sum(jnp.asarray(term), log_weights)
            return jnp.asarray(elbo), (mutable or None)
        plate_dims, plate_scale = _independent_plates(model_trace, guide_trace)
        outputs["plate_scale"] = plate_scale
        keep = set(plate_dims) | {stratum.dim for stratum in strata}
        log_ratio: Any = 0.0
        for _, term in terms:
            term = jnp.asarray(term)
            axes = tuple(term.ndim + axis for axis in range(-term.ndim, 0) if axis not in keep and term.shape[axis] > 1)
            log_ratio = log_ratio + (jnp.sum(term, axis=axes, keepdims=True) if axes else term)
        log_weight = shared_math.stratified_log_weight(jnp.asarray(log_ratio) / plate_scale, strata, tuple(plate_dims))
        return log_weight, (mutable or None)

    def loss_with_mutable_state(
        self,
        rng_key: jax.Array,
        param_map: dict[str, Any],
        model: Callable[..., Any],
        guide: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """``{"loss": -estimate, "mutable_state": ...}`` (the state of ``numpyro.mutable`` sites,
        kept for ``num_particles == 1`` as in ``Trace_ELBO``)."""
        plate_nesting = self._plate_nesting(param_map, model, guide, args, kwargs)
        outputs: dict[str, Any] = {}

        def particle(key):
            return self._particle(key, param_map, model, guide, args, kwargs, plate_nesting, outputs)

        if self.num_particles == 1:
            estimate, mutable_state = particle(rng_key)
            if self.importance_weighted:
                estimate = outputs["plate_scale"] * jnp.sum(estimate)
            return {"loss": -estimate, "mutable_state": mutable_state}
        estimates, mutable_state = self.vectorize_particles_fn(particle, random.split(rng_key, self.num_particles))
        if mutable_state:
            warnings.warn("mutable state is currently ignored when num_particles > 1.", stacklevel=2)
        if self.importance_weighted:
            bound = logsumexp(estimates, axis=0) - math.log(self.num_particles)
            estimate = outputs["plate_scale"] * jnp.sum(bound)
        else:
            estimate = jnp.mean(estimates)
        return {"loss": -estimate, "mutable_state": None}


def _independent_plates(model_trace, guide_trace):
    r"""Batch axes of the plates that enclose every sample site, and their subsampling scale
    :math:`\prod N/n`."""
    frames = None
    for trace_ in (model_trace, guide_trace):
        for _, site in _sample_sites(trace_):
            present = {frame for frame in site["cond_indep_stack"] if frame.dim is not None}
            frames = present if frames is None else frames & present
    frames = frames or set()
    scale = 1.0
    for frame in frames:
        plate_site = model_trace.get(frame.name) or guide_trace.get(frame.name)
        full_size = plate_site["args"][0] if plate_site is not None else frame.size
        if full_size != frame.size:
            scale = scale * full_size / frame.size
    return {frame.dim for frame in frames}, scale
