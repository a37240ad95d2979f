r"""Stratification over the mixture component: the weighting behind ``Stratified_ELBO``.

For a mixture :math:`q(z)=\sum_k\pi_k q_k(z)` and any integrand :math:`h`,

.. math::
    :label: stratified-expectation

    E_q[h(z)] = \sum_{k=1}^K \pi_k\, E_{q_k}[h(z)],

so one reparameterized draw :math:`z_k = \mu_k + \sigma_k\varepsilon_k` from *each*
component, weighted by :math:`\pi_k`, is an unbiased estimate of :math:`E_q[h]`
(Morningstar et al. 2021, "Automatic Differentiation Variational Inference with Mixtures",
arXiv:2003.01687, Eq. 6).  Its gradient with respect to the logits is
:math:`\sum_k \partial\pi_k/\partial\ell\; h(z_k)`: every component contributes its own
estimate, so the weights learn even when the components are far apart (``DESIGN.md`` §6).

The PPL adapters lay the component index of every stratified site along its own *stratum
axis*, a batch axis to the left of all plates (like parallel enumeration), and hand each
term of the ELBO (a log-density tensor, batch axes only) to the functions below together
with the :class:`Stratum` records.  Axes are negative and count from the right of the batch
shape, so that tensors of different ranks align as in NumPy broadcasting.

**The grid.**  With several stratified sites :math:`s=1..S` (in guide order) the draws form a
grid over :math:`(k_1,\dots,k_S)`.  Site :math:`s` may depend on earlier sites, so its
weights :math:`\pi_s` may vary along earlier stratum axes; then

.. math::
    :label: stratified-grid

    E_q[h] = \sum_{k_1,\dots,k_S} \Big(\prod_s \pi_{s,k_s}(z_{<s})\Big)\, h(z_{k_1},\dots,z_{k_S}),

exactly, because summing the last site's weights over its own axis gives one.  A term that
does not vary along some stratum axes needs only the weights of the sites it varies along
and, recursively, of the sites those weights vary along (:func:`term_log_weights`).

**Plates.**  A stratified site inside a plate of size :math:`N` draws component :math:`k` for
all :math:`N` elements at once (one stratum axis, not :math:`K^N` combinations).  That is
exact for every term that is itself indexed by the plate (element :math:`n` of the term
depends on element :math:`n` of the site only), because then each element's expectation is
its own 1-D sum over :math:`k`.  A term that pools several elements (it lacks the plate axis
along which the site's weights vary) would be weighted wrongly; :func:`term_log_weights`
raises ``ValueError`` for it.

**SIWAE** (Morningstar et al. 2021, Eq. 9): with :math:`T` draws per component,

.. math::
    :label: siwae

    \mathcal L_T = E\Big[\log \frac1T\sum_{t=1}^T\sum_k \pi_k
        \frac{p(x, z_{kt})}{q(z_{kt})}\Big] \le \log p(x),

with :math:`q` the full mixture density; :func:`stratified_log_weight` computes the inner
:math:`\log\sum_k\pi_k\,p/q` of one :math:`t` (over the whole grid).  Its expectation is
:math:`p(x)` (Eq. :eq:`stratified-grid` with :math:`h = p/q`), so :math:`\mathcal L_T` is
a lower bound that is at least the ELBO (Jensen) and increases to :math:`\log p(x)` as
:math:`T\to\infty`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, NamedTuple

from ._backend import get_namespace
from ._typing import Array, Shape
from .mixture import logsumexp


class Stratum(NamedTuple):
    r"""One stratified mixture site.

    ``name``: the site's name (for messages).  ``dim``: its stratum axis, a negative batch
    axis.  ``log_weights``: :math:`\log\pi` laid out along the batch axes, size :math:`K` at
    ``dim`` and the site's own batch axes (plates, particles, earlier stratum axes it depends
    on) to the right.  ``axis_names``: optional ``{axis: plate name}`` used in messages.
    """

    name: str
    dim: int
    log_weights: Any
    axis_names: dict = {}


def component_draws_from_noise(locs: Array, scales: Array, noise: Array) -> Array:
    r"""One draw from every component of a location-scale mixture: :math:`z_k = \mu_k + \sigma_k\varepsilon_k`.

    ``locs``/``scales`` have shape ``(..., K, D)`` and ``noise`` :math:`\varepsilon` a shape that
    broadcasts with them (``sample_shape + batch_shape + (K, D)``); the result is
    differentiable in ``locs`` and ``scales`` by the ordinary reparameterization trick.
    """
    return locs + scales * noise


def _size(shape, axis):
    """Size of ``shape`` along the negative ``axis`` (1 where ``shape`` is too short), as an ``int``
    (traced torch sizes included)."""
    return int(shape[axis]) if len(shape) >= -axis else 1


def _describe_axis(stratum, axis):
    plate = stratum.axis_names.get(axis)
    return f"batch axis {axis}" + (f" (plate '{plate}')" if plate else "")


def check_term_axes(
    term_shape: Shape, strata: Iterable[Stratum], plate_sizes: Mapping[int, Collection[int]], term_name: str = "term"
) -> None:
    r"""``ValueError`` unless every axis along which a term varies is a stratum axis (size
    :math:`K_s`) or a plate axis (its size).

    ``plate_sizes``: ``{axis: set of sizes}`` of the vectorized plates of the traces (including
    the plate of vectorized particles).  The stratum axes lie left of all plates, so a term that
    reduced a plate axis away without ``keepdim`` has its stratum axes shifted into the plate
    axes (or a batch axis that no plate declares), which this check catches before the
    weighting could silently pair the wrong axes.
    """
    by_dim = {stratum.dim: stratum for stratum in strata}
    term_shape = tuple(int(size) for size in term_shape)
    for axis in range(-len(term_shape), 0):
        size = term_shape[axis]
        if size == 1:
            continue
        stratum = by_dim.get(axis)
        if stratum is not None:
            expected = int(stratum.log_weights.shape[axis])
            if size == expected:
                continue
            detail = f"the stratum axis of site '{stratum.name}' (size {expected})"
        elif axis in plate_sizes:
            if size in plate_sizes[axis]:
                continue
            detail = f"a plate axis of size {' or '.join(map(str, sorted(plate_sizes[axis])))}"
        else:
            detail = "no plate or stratum axis"
        raise ValueError(
            f"Stratified_ELBO: the term of site '{term_name}' has batch shape {tuple(term_shape)}: size {size} "
            f"along batch axis {axis}, which is {detail}.  Every batch axis must be declared by a plate "
            "(reductions over a plate's axis must keep that axis, or happen inside a .to_event()), because "
            "the component draws of each stratified site are laid along an extra batch axis left of all plates."
        )


def term_log_weights(term_shape: Shape, strata: Iterable[Stratum], term_name: str = "term") -> Array | None:
    r"""Log of the grid weights that the expectation of one term needs, or ``None``.

    The term (batch shape ``term_shape``) varies along some stratum axes.  It needs the
    weights of those sites and, recursively, of every stratum axis along which their
    weights vary (Eq. :eq:`stratified-grid` summed over all other sites).  Returns
    :math:`\sum_{s\,\text{needed}}\log\pi_s`, broadcast over those axes, or ``None`` if the term
    varies along no stratum axis (then its expectation is its plain sum).

    :raises ValueError: if a needed site's weights vary along a non-stratum axis (a plate,
        or the axis of vectorized particles) along which the term does not vary: the term
        pools elements of the stratified site that were drawn with one shared component
        index, and the weighting would not be the expectation.
    """
    strata = list(strata)
    stratum_dims = {stratum.dim for stratum in strata}
    needed = {stratum.dim for stratum in strata if _size(term_shape, stratum.dim) > 1}
    if not needed:
        return None
    changed = True
    while changed:
        changed = False
        for stratum in strata:
            if stratum.dim not in needed:
                continue
            for other in strata:
                if other.dim not in needed and _size(tuple(stratum.log_weights.shape), other.dim) > 1:
                    needed.add(other.dim)
                    changed = True
    total = None
    for stratum in strata:
        if stratum.dim not in needed:
            continue
        shape = tuple(int(size) for size in stratum.log_weights.shape)
        for axis in range(-len(shape), 0):
            if axis in stratum_dims or shape[axis] == 1 or _size(term_shape, axis) > 1:
                continue
            raise ValueError(
                f"Stratified_ELBO: the term of site '{term_name}' depends on the stratified mixture site "
                f"'{stratum.name}' but does not vary along its {_describe_axis(stratum, axis)}, along which "
                f"'{stratum.name}' has {shape[axis]} independent elements.  The stratified estimator draws one "
                "component index for all elements of a site at once, which is exact only for terms indexed "
                "by the same plate elements; a term that pools several of them (e.g. a sum over the plate "
                "taken outside it) would not get its expectation.  Compute it inside the plate, or use "
                "Trace_ELBO for this guide."
            )
        total = stratum.log_weights if total is None else total + stratum.log_weights
    return total


def stratified_sum(term: Array, log_weights: Array | None) -> Array:
    r""":math:`\sum \exp(\log w)\odot\text{term}` over all axes (the plain sum when ``log_weights`` is ``None``).

    With ``log_weights`` from :func:`term_log_weights` this is the term's contribution to
    the stratified estimate of :math:`E_q[\cdot]`, Eq. :eq:`stratified-grid`.
    """
    xp = get_namespace(term)
    if log_weights is None:
        return xp.sum(term)
    return xp.sum(xp.exp(log_weights) * term)


def stratified_log_weight(log_ratio: Array, strata: Iterable[Stratum], independent_dims: Collection[int] = ()) -> Array:
    r"""Log of one stratified importance weight, :math:`\log\sum_{\text{grid}}\prod_s\pi_s\,e^{\log r}`.

    ``log_ratio``: :math:`\log p(x,z)-\log q(z)` over the grid (batch axes: the stratum axes,
    plus the ``independent_dims`` along which separate bounds are formed, e.g. the axis of
    vectorized particles or a data plate shared by every site; every other axis already
    summed).  Returns the log of the inner sum of Eq. :eq:`siwae` for each element along
    ``independent_dims``, with the stratum axes kept at size one.

    :raises ValueError: if a site's weights vary along an axis that is neither a stratum axis
        nor in ``independent_dims`` (its elements would share one component index inside one
        importance weight, which is not an unbiased estimate of :math:`p(x)`).
    """
    xp = get_namespace(log_ratio)
    strata = list(strata)
    stratum_dims = {stratum.dim for stratum in strata}
    total = log_ratio
    for stratum in strata:
        shape = tuple(int(size) for size in stratum.log_weights.shape)
        for axis in range(-len(shape), 0):
            if axis in stratum_dims or axis in independent_dims or shape[axis] == 1:
                continue
            raise ValueError(
                f"Stratified_ELBO(importance_weighted=True): the stratified mixture site '{stratum.name}' has "
                f"{shape[axis]} independent elements along its {_describe_axis(stratum, axis)}, which is not a "
                "plate shared by every sample site.  The importance-weighted bound is formed per element of "
                "plates that enclose every site (as in RenyiELBO); use importance_weighted=False (the "
                "stratified ELBO) for this model."
            )
        total = total + stratum.log_weights
    if not strata:
        return total
    ndim = len(total.shape)
    axes = tuple(sorted(ndim + stratum.dim for stratum in strata if ndim >= -stratum.dim))
    for axis in axes:
        total = logsumexp(total, axis, xp, keepdims=True)
    return total
