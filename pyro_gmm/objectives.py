r"""``Stratified_ELBO``: the ELBO of a mixture guide, stratified over the mixture component.

For a guide site :math:`z\sim q(z)=\sum_k\pi_k q_k(z)` the ELBO is an expectation under the
mixture, and (Morningstar et al. 2021, "Automatic Differentiation Variational Inference
with Mixtures", arXiv:2003.01687, Eq. 6)

.. math::

    \mathrm{ELBO} = E_q\big[\log p(x, z) - \log q(z)\big]
                  = \sum_k \pi_k\, E_{\varepsilon}\big[\log p(x, z_k) - \log q(z_k)\big],
    \qquad z_k = \mu_k + \sigma_k\varepsilon,

with :math:`\log q` the *full* mixture density.  :class:`Stratified_ELBO` draws one
reparameterized sample from every component (per particle) instead of a component index,
and weights each term by :math:`\pi_k`.  The gradient with respect to the logits is then
:math:`\sum_k\partial\pi_k/\partial\ell\;(\dots)(z_k)`: each component brings its own
estimate, so mixture weights learn even when the modes are far apart, where every pathwise
weight gradient starves (``docs/estimators.md``).  The price is :math:`K` model evaluations
per particle.  The weighting itself is :mod:`shared_math.stratified`; see
``docs/stratified.md`` for measurements.

**Which sites are stratified.**  Every guide sample site whose distribution (after
unwrapping ``.mask(...)``) has the two members of the stratification protocol:

* ``component_rsample(sample_shape=torch.Size())``: one reparameterized draw per component,
  shape ``sample_shape + batch_shape + (K,) + event_shape``;
* ``mixture_log_weights``: :math:`\log\pi`, shape ``batch_shape + (K,)``.

:class:`~pyro_gmm.DiagNormalMixture`, :class:`~pyro_gmm.ReparamMixtureSameFamily` (any
component family with ``rsample``) and therefore :class:`~pyro_gmm.AutoDiagonalNormalMixture`
have them.  Every other guide site must be reparameterized and is treated as in
``Trace_ELBO``.

**When it is exact** (the estimate's expectation is the ELBO of the mixture guide, and the
gradient's is its gradient).  Each stratified site gets its own batch axis to the left of
all plates (like parallel enumeration), holding its :math:`K` component draws; with several
stratified sites every combination is evaluated (:math:`\prod_s K_s` model evaluations per
particle; their weights may depend on earlier sites).  A site inside a plate draws one
component index for all its plate elements at once.  The weighting is then exact if and
only if every log-density term (model or guide) that depends on a stratified site is
indexed by every plate along which that site has more than one element.  That covers:

* global mixture sites, any number, e.g. the mixture autoguides;
* per-datapoint mixture latents inside a plate whose model factors separate per data point
  (amortized encoders), with subsampling.

A term that pools elements of a plated mixture site (e.g. a likelihood outside the plate
that sums over it) raises ``ValueError`` naming the sites.  The check reads the batch
shapes, relying on the plate semantics that ``TraceEnum_ELBO`` relies on: code that mixes
the elements of a plate's batch axis without leaving the plate is not detectable (and is
wrong under enumeration too).

**Importance-weighted** (``importance_weighted=True``): the SIWAE bound (Morningstar et al.
2021, Eq. 9) with :math:`T` = ``num_particles`` draws per component,

.. math::

    \mathcal L_T = E\Big[\log\frac1T\sum_{t=1}^T\sum_k\pi_k\,\frac{p(x,z_{kt})}{q(z_{kt})}\Big]
    \;\ge\; \mathrm{ELBO},\qquad \mathcal L_T\uparrow\log p(x)\ (T\to\infty).

It is formed separately for each element of the plates shared by every sample site (as
``RenyiELBO``); mixture sites must be global or vary only along those plates, else
``ValueError``.
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import pyro.ops.jit
import torch
from pyro import poutine
from pyro.distributions.torch_distribution import MaskedDistribution
from pyro.distributions.util import is_identically_zero
from pyro.infer.elbo import ELBO
from pyro.infer.enum import get_importance_trace
from pyro.poutine.messenger import Messenger
from pyro.util import warn_if_nan

import shared_math

_PARTICLE_PLATE = "num_particles_vectorized"  # the name pyro.infer.ELBO gives its particle plate


def stratifiable_mixture(fn):
    """The mixture behind a site's distribution if it follows the stratification protocol
    (``component_rsample`` and ``mixture_log_weights``, possibly under ``.mask(...)``), else ``None``."""
    while isinstance(fn, MaskedDistribution):
        fn = fn.base_dist
    if hasattr(fn, "component_rsample") and hasattr(fn, "mixture_log_weights"):
        return fn
    return None


class _StratifyMessenger(Messenger):
    r"""Replaces the draw at every stratifiable guide site by one draw per component.

    The :math:`K` draws of the :math:`i`-th stratified site lie along batch axis
    ``first_dim - i`` (left of every plate and of the particle plate); the other batch axes
    of the site keep their places.  ``strata`` collects one :class:`shared_math.Stratum`
    per site, in guide order.
    """

    def __init__(self, first_dim, max_grid_size):
        super().__init__()
        self.first_dim = first_dim
        self.max_grid_size = max_grid_size
        self.strata = []
        self.grid_size = 1

    def _pyro_sample(self, msg):
        if msg["is_observed"] or msg["value"] is not None or msg["done"]:
            return
        fn = msg["fn"]
        mixture = stratifiable_mixture(fn)
        if mixture is None:
            if isinstance(fn, torch.distributions.Independent) and stratifiable_mixture(fn.base_dist) is not None:
                warnings.warn(
                    f"Stratified_ELBO: site '{msg['name']}' is a mixture inside .to_event(): its elements would "
                    "share one component index within one log-density, so it is sampled as in Trace_ELBO "
                    "(not stratified). Use a plate instead of .to_event() to stratify it.",
                    stacklevel=2,
                )
            return
        name = msg["name"]
        dim = self.first_dim - len(self.strata)
        batch_shape = tuple(mixture.batch_shape)
        event_shape = tuple(mixture.event_shape)
        if len(batch_shape) >= -dim:
            raise ValueError(
                f"Stratified_ELBO: site '{name}' has batch shape {batch_shape}, which reaches the stratum axis "
                f"{dim} (max_plate_nesting={-self.first_dim - 1} plus earlier stratified sites); set "
                "max_plate_nesting to the number of nested plates, or declare the site's batch axes with plates."
            )
        draws = mixture.component_rsample()
        num_components = draws.shape[len(batch_shape)]
        self.grid_size *= num_components
        if self.grid_size > self.max_grid_size:
            names = ", ".join(f"'{s.name}'" for s in self.strata + [shared_math.Stratum(name, dim, None)])
            raise ValueError(
                f"Stratified_ELBO: the stratified sites {names} need {self.grid_size} model evaluations per "
                f"particle (the product of their numbers of components), over max_grid_size={self.max_grid_size}. "
                "Vectorize repeated mixture sites with a plate (one stratum axis for all elements), or raise "
                "max_grid_size."
            )
        pad = (1,) * (-dim - 1 - len(batch_shape))
        value = draws.movedim(len(batch_shape), 0).reshape((num_components,) + pad + batch_shape + event_shape)
        log_weights = mixture.mixture_log_weights.movedim(-1, 0).reshape((num_components,) + pad + batch_shape)
        axis_names = {frame.dim: frame.name for frame in msg["cond_indep_stack"] if frame.vectorized}
        self.strata.append(shared_math.Stratum(name, dim, log_weights, axis_names))
        msg["value"] = value


def _sample_sites(trace):
    return [(name, site) for name, site in trace.nodes.items() if site["type"] == "sample"]


class Stratified_ELBO(ELBO):
    r"""The ELBO of mixture guides, stratified over the component (Morningstar et al. 2021).

    A drop-in loss for :class:`pyro.infer.SVI`::

        svi = SVI(model, guide, optim, Stratified_ELBO(num_particles=4))

    Every guide site whose distribution is one of this library's mixtures (any distribution
    with ``component_rsample`` and ``mixture_log_weights``) is sampled once per component
    and its terms are weighted by :math:`\pi_k`; other guide sites must be reparameterized
    and behave as in ``Trace_ELBO``.  See :mod:`pyro_gmm.objectives` for the maths, the
    exact conditions under which the estimate is unbiased for the mixture ELBO (errors are
    raised otherwise) and the importance-weighted bound.

    Cost: one particle evaluates the model :math:`\prod_s K_s` times (:math:`K` for one
    mixture site), vectorized along a batch axis.

    :param int num_particles: particles :math:`T` (draws per component).
    :param bool vectorize_particles: evaluate the particles along one batch axis (an outer
        plate) instead of a Python loop.
    :param bool importance_weighted: ``False``: the stratified ELBO, Eq. 6 of Morningstar et
        al.; ``True``: the SIWAE bound :math:`\log\frac1T\sum_t\sum_k\pi_k p/q`, their Eq. 9.
    :param max_plate_nesting: number of nested plates in model and guide (guessed by
        running them once when omitted).
    :param bool jit: compile the loss with :func:`pyro.ops.jit.trace` (like
        ``JitTrace_ELBO``: static model structure, tensor inputs in ``*args``).
    :param bool ignore_jit_warnings: silence ``torch.jit`` tracer warnings.
    :param dict jit_options: options for :func:`torch.jit.trace`.
    :param bool retain_graph: passed to ``backward`` in :meth:`loss_and_grads`.
    :param int max_grid_size: largest allowed product of the numbers of components of the
        stratified sites of one trace (their model evaluations per particle).
    :raises ValueError: for a guide structure in which the weighting is not exact, a
        non-reparameterized or enumerated guide site, or bad arguments.
    """

    def __init__(
        self,
        num_particles: int = 1,
        vectorize_particles: bool = True,
        importance_weighted: bool = False,
        *,
        max_plate_nesting: float = float("inf"),
        jit: bool = False,
        ignore_jit_warnings: bool = False,
        jit_options: dict[str, Any] | None = None,
        retain_graph: bool | None = None,
        max_grid_size: int = 4096,
    ) -> None:
        if isinstance(num_particles, bool) or not isinstance(num_particles, int) or num_particles < 1:
            raise ValueError(f"num_particles must be a positive integer; got {num_particles!r}")
        if not isinstance(importance_weighted, bool):
            raise ValueError(f"importance_weighted must be True or False; got {importance_weighted!r}")
        if not isinstance(max_grid_size, int) or max_grid_size < 1:
            raise ValueError(f"max_grid_size must be a positive integer; got {max_grid_size!r}")
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=bool(vectorize_particles),
            ignore_jit_warnings=ignore_jit_warnings,
            jit_options=jit_options,
            retain_graph=retain_graph,
        )
        self.importance_weighted = importance_weighted
        self.jit = bool(jit)
        self.max_grid_size = max_grid_size
        self._compiled: dict[tuple[int, int], Callable[..., torch.Tensor]] = {}

    # ------------------------------------------------------------------ traces
    def _particle_dim(self):
        """The batch axis of vectorized particles, or ``None``."""
        if self.vectorize_particles and self.num_particles > 1:
            return -self.max_plate_nesting
        return None

    def _get_trace(self, model, guide, args, kwargs):
        stratify = _StratifyMessenger(-(self.max_plate_nesting + 1), self.max_grid_size)

        def stratified_guide(*args, **kwargs):
            with stratify:
                return guide(*args, **kwargs)

        model_trace, guide_trace = get_importance_trace(
            "flat", self.max_plate_nesting, model, stratified_guide, args, kwargs
        )
        for name, site in _sample_sites(guide_trace):
            if site["infer"].get("enumerate"):
                raise ValueError(f"Stratified_ELBO does not enumerate; guide site '{name}' asks for enumeration")
            if not site["is_observed"] and not is_identically_zero(site["score_parts"].score_function):
                raise ValueError(
                    f"Stratified_ELBO needs reparameterized guide sites; site '{name}' "
                    f"({type(site['fn']).__name__}) has no rsample. For a mixture, use "
                    "pyro_gmm.ReparamMixtureSameFamily or pyro_gmm.DiagNormalMixture."
                )
        return model_trace, guide_trace, stratify.strata

    def _get_traces(self, model, guide, args, kwargs):
        if isinstance(poutine.unwrap(guide), Messenger):
            raise ValueError(
                "Stratified_ELBO does not support GuideMessenger guides; use a guide function or autoguide"
            )
        if self.max_plate_nesting == float("inf"):
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        if self.vectorize_particles:
            yield self._get_vectorized_trace(model, guide, args, kwargs)
        else:
            for _ in range(self.num_particles):
                yield self._get_trace(model, guide, args, kwargs)

    @staticmethod
    def _terms(model_trace, guide_trace):
        """``(site name, log p or -log q tensor)`` of every sample site (scaled and masked)."""
        for name, site in _sample_sites(model_trace):
            yield name, site["log_prob"]
        for name, site in _sample_sites(guide_trace):
            yield name, -site["log_prob"]

    # ------------------------------------------------------------------ estimates
    @staticmethod
    def _checked_terms(model_trace, guide_trace, strata):
        """:meth:`_terms`, each checked to vary only along plate and stratum axes."""
        plate_sizes: dict[int, set[int]] = {}
        for trace in (model_trace, guide_trace):
            for _, site in _sample_sites(trace):
                for frame in site["cond_indep_stack"]:
                    if frame.vectorized:
                        plate_sizes.setdefault(frame.dim, set()).add(int(frame.size))
        for name, term in Stratified_ELBO._terms(model_trace, guide_trace):
            shared_math.check_term_axes(tuple(term.shape), strata, plate_sizes, name)
            yield name, term

    def _stratified_elbo(self, traces):
        elbo = 0.0
        for model_trace, guide_trace, strata in traces:
            for name, term in self._checked_terms(model_trace, guide_trace, strata):
                log_weights = shared_math.term_log_weights(tuple(term.shape), strata, name)
                elbo = elbo + shared_math.stratified_sum(term, log_weights)
        return elbo / self.num_particles

    def _independent_plates(self, model_trace, guide_trace):
        r"""Batch axes of the plates that enclose every sample site, and the subsampling scale
        :math:`\prod N/n` of those plates."""
        frames = None
        for trace in (model_trace, guide_trace):
            for _, site in _sample_sites(trace):
                present = {f for f in site["cond_indep_stack"] if f.vectorized and f.name != _PARTICLE_PLATE}
                frames = present if frames is None else frames & present
        frames = frames or set()
        scale = 1.0
        for frame in frames:
            if frame.full_size is not None and frame.full_size != frame.size:
                scale = scale * frame.full_size / frame.size
        return {frame.dim for frame in frames}, scale

    def _siwae(self, traces):
        particle_dim = self._particle_dim()
        log_weights = []
        for model_trace, guide_trace, strata in traces:
            plate_dims, plate_scale = self._independent_plates(model_trace, guide_trace)
            independent = set(plate_dims) | ({particle_dim} if particle_dim is not None else set())
            keep = independent | {stratum.dim for stratum in strata}
            log_ratio = 0.0
            for _, term in self._checked_terms(model_trace, guide_trace, strata):
                axes = [axis for axis in range(-term.dim(), 0) if axis not in keep and term.shape[axis] > 1]
                log_ratio = log_ratio + (term.sum(dim=axes, keepdim=True) if axes else term)
            log_ratio = torch.as_tensor(log_ratio) / plate_scale
            log_weights.append(shared_math.stratified_log_weight(log_ratio, strata, tuple(independent)))
        if particle_dim is not None:
            (log_weight,) = log_weights
            if log_weight.dim() >= -particle_dim and log_weight.shape[particle_dim] > 1:
                log_weight = torch.logsumexp(log_weight, dim=particle_dim) - math.log(self.num_particles)
        else:
            ndim = max(w.dim() for w in log_weights)
            stacked = torch.stack([w.reshape((1,) * (ndim - w.dim()) + tuple(w.shape)) for w in log_weights])
            log_weight = torch.logsumexp(stacked, dim=0) - math.log(len(log_weights))
        return plate_scale * log_weight.sum()

    def _loss(self, model, guide, args, kwargs):
        traces = list(self._get_traces(model, guide, args, kwargs))
        estimate = self._siwae(traces) if self.importance_weighted else self._stratified_elbo(traces)
        return -torch.as_tensor(estimate)

    # ------------------------------------------------------------------ public interface
    def differentiable_loss(
        self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The negated estimate as a tensor that autograd differentiates (unbiased for the
        gradient of the negated mixture ELBO, or of the SIWAE objective)."""
        if self.jit:
            loss = self._jitted_loss(model, guide, args, kwargs)
        else:
            loss = self._loss(model, guide, args, kwargs)
        warn_if_nan(loss, "loss")
        return loss

    def loss(self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
        """The negated estimate as a float (no gradient)."""
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
        """The negated estimate as a float, after back-propagating it into the parameters."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        return loss.item()

    def _jitted_loss(self, model, guide, args, kwargs):
        if self.max_plate_nesting == float("inf"):
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        key = (id(model), id(guide))
        if key not in self._compiled:
            weakself = weakref.ref(self)

            @pyro.ops.jit.trace(ignore_warnings=self.ignore_jit_warnings, jit_options=self.jit_options)
            def compiled_loss(*args, **kwargs):
                owner = weakself()
                if owner is None:  # the ELBO was garbage-collected while its compiled loss lives on
                    raise RuntimeError("Stratified_ELBO: the objective behind this compiled loss no longer exists")
                return owner._loss(model, guide, args, kwargs)

            self._compiled[key] = compiled_loss
        return self._compiled[key](*args, **kwargs)
