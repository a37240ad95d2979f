r"""Derivatives of a component's CDF in its parameters: exact, or sampled by Graves' Eq. 9.

Every estimator of :mod:`shared_math.estimators` needs, per sample, component :math:`k` and
coordinate :math:`d`, the *velocity* of the component's own sample in each parameter
:math:`p`, i.e. the derivative of :math:`x = G^{-1}(u)` at fixed :math:`u` (Graves 2016,
Eq. 6 in 1-D):

.. math::

    V_p(x) = -\frac{\partial_p F(x)}{N(x)} = -\frac{1}{N(x)}\int_{-\infty}^{x}\partial_p N(t)\,dt,

with :math:`F` the component CDF and :math:`N` its density.  In standardized units
(:math:`z = (x-\mu)/\sigma`, density :math:`g`, shape parameters :math:`\theta`),
:math:`V_\mu = v_\mu`, :math:`V_\sigma = v_\sigma`, :math:`V_\theta = \sigma v_\theta` with

.. math::

    v_p(z) = -\frac{1}{g(z)}\int_{-\infty}^{z} g(t)\,h_p(t)\,dt,\qquad
    h_\mu = -\psi,\quad h_\sigma = -(1+t\psi),\quad h_\theta = \partial_\theta\log g

(:meth:`~shared_math.families.LocationScaleFamily.tail_integrands`).  For ``loc`` and ``scale``
the closed forms are :math:`v_\mu = 1`, :math:`v_\sigma = z`.  For shape parameters the
integral is the derivative of an incomplete gamma or beta function, which only JAX
differentiates, and only for the gamma (:meth:`~shared_math.families.Gamma.exact_shape_velocities`).
Elsewhere it is estimated by Monte Carlo, which keeps every gradient unbiased: the estimate
enters the parameter gradient linearly, with the CDF *values* exact, so any unbiased
estimate of :math:`v_p` gives an unbiased gradient, for any number :math:`M` of inner draws.

Two estimators (``method`` of :func:`component_velocities`):

* ``"rejection"``: Graves' Eq. 9, :math:`\int_{-\infty}^z \partial_\theta g = E_{t\sim g}[1\{t\le
  z\}\,\partial_\theta\log g(t)]`, averaged over :math:`M` draws :math:`t_m\sim g` from the
  framework's own sampler (Eq. 10 draws from :math:`g` truncated to :math:`t \le z` by
  rejection: the accepted draws are those with the indicator 1, on average a fraction
  :math:`G(z)`):  :func:`rejection_velocities`.  Where :math:`G(z)` is small few draws are
  accepted, and the estimate, divided by the small :math:`g(z)`, has a huge variance.
* ``"sampled"`` (ours): the integral over the *smaller* tail only (using
  :math:`\int\partial_\theta g = 0`: :math:`\int_{-\infty}^{z} = -\int_z^\infty`), as an
  expectation over a proposal :math:`q` on that tail drawn by inverting uniforms
  (:meth:`~shared_math.families.LocationScaleFamily.tail_sample`: exponential from :math:`z`
  outward, a power law toward a singular end of the support, Lomax for heavy tails), with
  :math:`g(t)/(g(z)q(t))` bounded, and *stratified* uniforms
  :math:`U_m = (m + V_m)/M`, :math:`V_m\sim\mathrm{Uniform}(0,1)` (unbiased; the variance
  falls faster than :math:`1/M` for smooth integrands): :func:`tail_velocities`.  No draw is
  wasted and nothing divides by a small :math:`g(z)`.

Measured in ``docs/estimators.md`` ("Shape parameters: Graves' Eq. 9/10") by
``benchmarks/sampled_cdf_gradient.py``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from ._typing import Namespace
from .families import LocationScaleFamily, get_family

#: Values of the adapters' ``cdf_gradient=`` option.
CDF_GRADIENT_CHOICES = ("auto", "exact", "sampled", "rejection")

#: Default ``cdf_gradient_samples`` :math:`M` (inner draws per sample, component and coordinate).
DEFAULT_CDF_GRADIENT_SAMPLES = 1


class Velocities(NamedTuple):
    r"""Standardized velocities at :math:`z`: ``loc`` and ``scale`` (``None``: the closed forms
    :math:`v_\mu = 1`, :math:`v_\sigma = z`) and ``shape``, a tuple with one array per shape
    parameter (:math:`v_\theta`; the velocity of the sample is :math:`\sigma v_\theta`)."""

    loc: object
    scale: object
    shape: tuple


def resolve_cdf_gradient(cdf_gradient: str, family: str | LocationScaleFamily, xp: Namespace) -> str:
    """The method (``"exact"``, ``"sampled"`` or ``"rejection"``) that ``cdf_gradient`` (one of
    :data:`CDF_GRADIENT_CHOICES`) means for ``family`` and arrays of namespace ``xp``.

    ``"auto"``: exact where the backend has the derivative (always for families without
    shape parameters: the closed forms of ``loc`` and ``scale``), else ``"sampled"``.
    ``"exact"`` where there is none raises ``ValueError`` naming what is missing.
    """
    family = get_family(family)
    if cdf_gradient not in CDF_GRADIENT_CHOICES:
        raise ValueError(f"cdf_gradient must be one of {CDF_GRADIENT_CHOICES}; got {cdf_gradient!r}")
    exact = family.has_exact_shape_velocities(xp)
    if cdf_gradient == "auto":
        return "exact" if exact else "sampled"
    if cdf_gradient == "exact" and not exact:
        from ._backend import backend_name

        raise ValueError(
            f"cdf_gradient='exact': no exact derivative of the {family.name} CDF in {family.shape_names} "
            f"exists for {backend_name(xp)} arrays (JAX has one for the gamma only); use 'auto' or 'sampled'"
        )
    return cdf_gradient


def noise_kind(method):
    """What inner randomness ``method`` reads: ``"uniform"`` (``"sampled"``: uniforms on [0, 1)),
    ``"draws"`` (``"rejection"``: standardized draws of each component's :math:`g`) or ``None``."""
    return {"sampled": "uniform", "rejection": "draws"}.get(method)


def stratified_uniforms(uniform, index, count, xp):
    r""":math:`U = (m + V)/M` for stratum ``index`` :math:`m` of ``count`` :math:`M`, kept inside
    :math:`[\text{tiny}, 1 - \epsilon/2]` (every proposal needs :math:`0 < U < 1`)."""
    finfo = xp.finfo(uniform.dtype)
    return xp.clip((uniform + index) / count, min=float(finfo.smallest_normal), max=1.0 - 0.5 * float(finfo.eps))


def tail_velocities(family, z, shape, uniforms, *, location_scale=False, xp):
    r"""Our estimator of the standardized velocities: the smaller-tail integral of Graves'
    Eq. 9 with stratified uniforms (module docstring).

    .. math::

        v_p(z) = s\,\frac1M\sum_{m=0}^{M-1} e^{\ell(t_m)}\,h_p(t_m),\qquad
        t_m = t(U_m),\quad U_m = \frac{m + V_m}{M},

    :math:`s = \pm1` the side of the tail (:meth:`~shared_math.families.LocationScaleFamily.tail_side`),
    :math:`\ell = \log g(t) - \log g(z) - \log q(t)` the log weight of the proposal.
    ``uniforms`` is a sequence of :math:`M` arrays :math:`V_m` in [0, 1) broadcasting against
    ``z`` (or one array with a leading axis :math:`M`).  Returns a tuple: ``loc`` and
    ``scale`` first when ``location_scale``, then one entry per shape parameter.
    """
    family = get_family(family)
    count = len(uniforms)
    side = family.tail_side(z, shape, xp)
    bound = 0.5 * math.log(float(xp.finfo(z.dtype).max))
    if count < 1:
        raise ValueError("uniforms: at least one inner draw is needed")
    totals: list[Any] = []
    for index in range(count):
        uniform = stratified_uniforms(uniforms[index], index, count, xp)
        points, log_weight = family.tail_sample(z, shape, side, uniform, xp)
        weight = xp.exp(xp.clip(log_weight, max=bound))
        terms = [weight * h for h in family.tail_integrands(points, shape, xp, location_scale)]
        totals = [a + b for a, b in zip(totals, terms)] if totals else terms
    return tuple(side * (total / count) for total in totals)


def rejection_velocities(family, z, shape, draws, *, location_scale=False, xp):
    r"""Graves' Eq. 9 as the paper states it, with Eq. 10's sampler: draws
    :math:`t_m\sim g` (standardized, from the framework's sampler, each with the shape
    parameters of its entry of ``z``) and

    .. math::

        v_p(z) = -\frac{1}{g(z)}\,\frac1M\sum_{m=1}^{M}1\{t_m\le z\}\,h_p(t_m).

    ``draws`` is a sequence of :math:`M` arrays broadcasting against ``z`` (or one array with a
    leading axis :math:`M`).  A fraction :math:`G(z)` of the draws is accepted on average.
    Returns a tuple as :func:`tail_velocities`.
    """
    family = get_family(family)
    count = len(draws)
    log_density = family.log_density(z, shape, xp)
    inverse_density = xp.exp(xp.clip(-log_density, max=0.9 * math.log(float(xp.finfo(z.dtype).max))))
    if count < 1:
        raise ValueError("draws: at least one inner draw is needed")
    totals: list[Any] = []
    for index in range(count):
        t = draws[index]
        accepted = xp.astype(t <= z, z.dtype)
        terms = [
            accepted * h for h in family.tail_integrands(family.draw_points(t, shape, xp), shape, xp, location_scale)
        ]
        totals = [a + b for a, b in zip(totals, terms)] if totals else terms
    return tuple(-(total / count) * inverse_density for total in totals)


def exact_velocities(family, z, shape, *, xp):
    """The exact standardized shape velocities (:meth:`~shared_math.families.LocationScaleFamily.exact_shape_velocities`)."""
    return tuple(get_family(family).exact_shape_velocities(z, shape, xp))


def samples_location_scale(cdf_gradient, family):
    """Whether ``cdf_gradient`` (an option of :data:`CDF_GRADIENT_CHOICES`) replaces the closed
    forms of the ``loc``/``scale`` velocities by sampled ones: only when asked for explicitly
    (``"sampled"`` or ``"rejection"``, e.g. to check Eq. 9 where the answer is known) and only
    for families on the real line (for Gamma and Beta the support moves with ``loc`` and
    ``scale``, so Eq. 9 would need boundary terms).  ``"auto"`` never does."""
    return cdf_gradient in ("sampled", "rejection") and get_family(family).real_line


def component_velocities(family, z, shape, *, method, noise=None, location_scale=False, xp):
    r"""The :class:`Velocities` of each entry of ``z`` by ``method``.

    ``"exact"``: closed forms for ``loc``/``scale``, the family's exact shape derivative.
    ``"sampled"`` (:func:`tail_velocities`, ``noise`` the uniforms :math:`V_m`) and
    ``"rejection"`` (:func:`rejection_velocities`, ``noise`` the standardized draws): the
    shape velocities, and with ``location_scale`` (:func:`samples_location_scale`) those of
    ``loc`` and ``scale`` too.  ``noise`` is a sequence of :math:`M` arrays broadcasting
    against ``z``, or one array with a leading axis :math:`M`.
    """
    family = get_family(family)
    if method == "exact":
        return Velocities(None, None, exact_velocities(family, z, shape, xp=xp))
    if method not in ("sampled", "rejection"):
        raise ValueError(f"method must be 'exact', 'sampled' or 'rejection'; got {method!r}")
    if noise is None or len(noise) == 0:
        raise ValueError(f"cdf_gradient={method!r} needs inner noise (cdf_noise): uniforms or draws, M >= 1")
    location_scale = bool(location_scale) and family.real_line
    if not location_scale and not family.shape_names:
        return Velocities(None, None, ())
    estimate = tail_velocities if method == "sampled" else rejection_velocities
    values = estimate(family, z, shape, noise, location_scale=location_scale, xp=xp)
    if location_scale:
        return Velocities(values[0], values[1], tuple(values[2:]))
    return Velocities(None, None, tuple(values))
