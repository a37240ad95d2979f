r"""Component families: location-scale distributions as small tables of standardized functions.

A component of a mixture has, in every coordinate :math:`d`, the density
:math:`\frac1\sigma g\big(\frac{x-\mu}{\sigma}\big)` of a standardized density :math:`g`
(possibly with fixed shape parameters, e.g. the Student-t degrees of freedom).  Every formula
of the mixture (densities, the distributional transform, the three sample-gradient
estimators, moments) is written once against the functions of :math:`g` collected in a
:class:`LocationScaleFamily`:

* ``log_kernel`` and ``log_normalizer``: :math:`\log g(z) = \text{kernel}(z) - \text{normalizer}`
  (the normalizer depends on the shape parameters only, so it is formed on the small
  parameter arrays);
* ``neg_score``: :math:`-\psi(z) = -\frac{d}{dz}\log g(z)` (for the Normal, :math:`z` itself);
* ``smaller_tail``: :math:`(s, t)` with :math:`t = \min(G(z), 1-G(z))` computed directly
  (never as :math:`1 - G`), :math:`s=-1` where :math:`t = G(z)` (below the median) and
  :math:`s=+1` where :math:`t = 1-G(z)`; :math:`t` is raised to :math:`e\cdot\text{tiny}`
  where it would underflow (see :func:`exp_of_log`);
* ``log_cdf``: :math:`\log G(z)`, accurate in both tails;
* ``standard_mean``/``standard_variance``: of :math:`g` (NaN or infinity where undefined).

With :math:`z = (x-\mu)/\sigma` and :math:`N = g(z)/\sigma`, the derivatives the sweeps use
are :math:`\partial_x\log N = \psi(z)/\sigma`, :math:`\partial_\mu\log N = -\psi(z)/\sigma`,
:math:`\partial_\sigma\log N = -(1 + z\psi(z))/\sigma`, :math:`\partial_\mu G = -N` and
:math:`\partial_\sigma G = -zN` (``docs/design.md``, "Component families").

Families (parameter names as in PyTorch, Pyro and NumPyro):

=============  ==========================================  =====================================
name           :math:`g(z)`                                shape parameters
=============  ==========================================  =====================================
``normal``     :math:`e^{-z^2/2}/\sqrt{2\pi}`              --
``logistic``   :math:`e^{-z}/(1+e^{-z})^2`                 --
``laplace``    :math:`\tfrac12 e^{-|z|}`                   --
``cauchy``     :math:`1/(\pi(1+z^2))`                      -- (no mean, no variance)
``gumbel``     :math:`\exp(-z-e^{-z})` (maximum Gumbel)     --
``student_t``  :math:`\propto(1+z^2/\nu)^{-(\nu+1)/2}`      ``df`` :math:`\nu>0`
=============  ==========================================  =====================================
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from ._backend import LOG_SQRT_2PI, fuses_elementwise, has_special, special, wide_dtype
from ._special import (
    arctan_of_reciprocal,
    continued_fraction_coefficients,
    evaluate_continued_fraction,
    log_beta,
    log_betainc_lower,
    log_gammainc_series,
)
from ._typing import Array, Namespace

_SQRT_HALF = math.sqrt(0.5)
_LOG_2 = math.log(2.0)
_LOG_PI = math.log(math.pi)
_LOG_ALMOST_1 = math.log(0.999)


def student_t_fraction_depth(dtype, xp):
    """Steps of the Student-t tail's continued fraction (``b = 1/2`` converges fast): 24 in
    float64 and 10 in float32, measured against SciPy for ``df`` in [0.1, 1000] (tests:
    ``tests/test_shared_math_special.py``)."""
    return 24 if xp.finfo(dtype).eps < 1e-10 else 10


def exp_of_log(values, xp):
    r""":math:`e^{a}` of a log-space quantity, with results below :math:`e\cdot\text{tiny}` raised to it.

    Subnormal and zero results fall off the CPU's fast path: torch's ``exp`` takes 6-20x as
    long on an array whose results are subnormal or zero (arguments below about -87 in
    float32: 2.6-7.7 against 0.4 ms on 524,288 entries, 2 threads).  Every such quantity here is a weight,
    responsibility or tail that enters sums with terms of order one, or is raised to
    :func:`tail_floor` afterwards, so raising anything below :math:`e\cdot\text{tiny}`
    (3e-38 in float32, 6e-308 in float64) to that bound changes no result beyond its
    rounding, even after a factor :math:`z/\sigma` of 1e9.  (A floor of
    :math:`\sqrt{\text{tiny}}` would also keep products normal, but 1e-19 times such a factor
    is visible in float32.)
    """
    floor = math.log(float(xp.finfo(values.dtype).smallest_normal)) + 1.0
    return xp.exp(xp.clip(values, min=floor))


def tail_floor(dtype, xp):
    r""":math:`e\cdot\text{tiny}`, the smallest tail probability kept (3e-38 in float32, 6e-308 in float64)."""
    return math.e * float(xp.finfo(dtype).smallest_normal)


def _sign(values, xp):
    r""":math:`\pm1` by the sign bit of ``values`` (:math:`+1` at :math:`+0`)."""
    return xp.copysign(xp.ones_like(values[(slice(0, 1),) * values.ndim] if values.ndim else values), values)


def _split_by_sign(sign, lower, upper):
    """``lower`` where ``sign < 0``, else ``upper``, by exact 0/1 weights (no ``where``, which
    is several times slower than a multiply in eager torch; both inputs must be finite)."""
    below = 0.5 - 0.5 * sign
    return below * lower + (1.0 - below) * upper


def exponential_step(rate, length, uniform, xp):
    r"""A step :math:`s\in[0, L]` of the exponential distribution with ``rate``
    :math:`\lambda` truncated to :math:`[0, L]` (``length``; :math:`L=\infty` allowed) by
    inversion of ``uniform``, and its log density:

    .. math::

        s = -\frac{\log(1 - U m)}{\lambda},\qquad m = 1 - e^{-\lambda L},\qquad
        \log q(s) = \log\lambda - \lambda s - \log m.
    """
    mass = -xp.expm1(-rate * length) if not (isinstance(length, float) and math.isinf(length)) else 1.0
    step = -xp.log1p(-uniform * mass) / rate
    if not (isinstance(length, float) and math.isinf(length)):
        step = xp.minimum(step, length)
    log_mass = xp.log(mass) if not isinstance(mass, float) else 0.0
    return step, xp.log(rate) - rate * step - log_mass


def inside_unit_disk(u, v, xp):
    r"""Where :math:`0 < u^2 + v^2 < 1`: the points :func:`student_t_from_disk` accepts."""
    w = u * u + v * v
    return (w < 1.0) & (w > 0.0)


def polar_candidates(draws):
    r"""Candidate points to draw at once so that at least ``draws`` fall inside the unit disk
    but for odds below :math:`10^{-10}`: the accepted count is Binomial(:math:`m`,
    :math:`p=\pi/4`), and :math:`m = \lceil n/p + 6.5\sqrt{n(1-p)}/p + 8\rceil` puts
    :math:`n` about 6.5 standard deviations below its mean (a caller redraws the rare
    shortfall).  About :math:`1.29\,n` points for large :math:`n`, where redrawing every
    point until all are accepted costs about :math:`\log n/\log(1/(1-p))` rounds of
    :math:`n` (9 at :math:`n = 65536`)."""
    p = math.pi / 4.0
    return math.ceil(draws / p + 6.5 * math.sqrt(draws * (1.0 - p)) / p + 8.0)


def student_t_from_disk(u, v, df, xp):
    r"""Bailey's polar method for Student-t draws (R. W. Bailey, "Polar generation of random
    variates with the t-distribution", *Math. Comp.* 62 (1994) 779-781): for :math:`(u, v)`
    uniform on the unit disk, :math:`w = u^2 + v^2`,

    .. math::

        t = u\,\sqrt{\nu\,(w^{-2/\nu} - 1)/w}

    has the Student-t distribution with :math:`\nu` degrees of freedom.  The caller draws
    :math:`u, v` uniform on :math:`[-1, 1)` and redraws the points outside the disk
    (:func:`inside_unit_disk`; a point is kept with probability :math:`\pi/4`); points
    outside give finite values, meant to be discarded.  Formed in logarithms,
    :math:`\log(w^{-2/\nu}-1) = \log\operatorname{expm1}(a)` with
    :math:`a = -\tfrac2\nu\log w` (:math:`a` itself beyond 20), and :math:`|t|` capped below the
    largest float: finite for every :math:`\nu > 0`.  Unlike the Gamma-based
    :math:`Z/\sqrt{V/\nu}`, it needs two uniforms per draw and no inner rejection loop.
    """
    w = u * u + v * v
    w_inside = xp.where(inside_unit_disk(u, v, xp), w, xp.full_like(w, 0.5))
    log_w = xp.log(w_inside)
    exponent = (-2.0 / df) * log_w
    log_excess = xp.where(exponent > 20.0, exponent, xp.log(xp.expm1(xp.clip(exponent, max=20.0))))
    log_magnitude = 0.5 * (xp.log(df) + log_excess - log_w)
    cap = math.log(float(xp.finfo(w.dtype).max)) - 1.0  # e^cap stays finite after rounding
    return u * xp.exp(xp.clip(log_magnitude, max=cap))


def lomax_tail(abs_z, df, uniform, xp):
    r"""Heavy-tail proposal (Student-t, Cauchy) beyond :math:`u = |z|`: a Lomax (Pareto II)
    step :math:`s = c\,(U^{-1/\nu} - 1)` with tail index :math:`\nu` (that of :math:`g`, so
    :math:`g(u+s)/q(s)` stays bounded) and scale :math:`c = u + \nu/\sqrt{1+u^2}` (the initial
    decay rate :math:`(\nu+1)/c` matches :math:`-\psi(u) = (\nu+1)u/(\nu+u^2)` for large
    :math:`u`; about the body's width near 0).  Returns ``(log_r, log_weight)`` with
    :math:`r = t/\sqrt\nu`, :math:`t = u + s` (in logs: :math:`t` may exceed every float), and
    :math:`\log g(t) - \log g(u) - \log q(s)`, :math:`\log q(s) = \log(\nu/c) - (\nu+1)\log(1+s/c)`.
    """
    scale = abs_z + df / xp.sqrt(1.0 + abs_z * abs_z)
    exponent = -xp.log(uniform) / df  # log(1 + s/c)
    # log t: directly while e^L is small; as log c + L + log1p((u/c - 1) e^{-L}) beyond.
    small = xp.clip(exponent, max=1.0)
    large = xp.clip(exponent, min=1.0)
    log_t_small = xp.log(abs_z + scale * xp.expm1(small))
    log_t_large = xp.log(scale) + large + xp.log1p((abs_z / scale - 1.0) * xp.exp(-large))
    log_t = xp.where(exponent <= 1.0, log_t_small, log_t_large)
    log_r = log_t - 0.5 * xp.log(df)
    log_r_z = xp.log(xp.clip(abs_z, min=float(xp.finfo(abs_z.dtype).smallest_normal))) - 0.5 * xp.log(df)
    log_ratio = -0.5 * (df + 1.0) * (_softplus(2.0 * log_r, xp) - _softplus(2.0 * log_r_z, xp))
    return log_r, log_ratio - (xp.log(df) - xp.log(scale)) + (df + 1.0) * exponent


def _softplus(values, xp):
    r""":math:`\log(1 + e^{v})` without overflow."""
    return xp.clip(values, min=0.0) + xp.log1p(exp_of_log(-xp.abs(values), xp))


def _sigmoid(values, xp):
    r""":math:`1/(1 + e^{-v})` without overflow."""
    small = exp_of_log(-xp.abs(values), xp)
    return xp.where(values >= 0, 1.0 / (1.0 + small), small / (1.0 + small))


class LocationScaleFamily:
    """A location-scale family of component distributions (see the module docstring).

    Subclasses set ``name``, ``shape_names``, ``median`` (of :math:`g`; the tails split
    there) and implement the standardized functions.  ``shape`` arguments are tuples of
    arrays in the order of ``shape_names``, broadcastable against ``z``.  Instances hold no
    arrays: they are hashable constants (static arguments under ``jax.jit``).
    """

    name = ""
    shape_names: tuple[str, ...] = ()
    median = 0.0
    #: Support of the standardized density :math:`g` (open interval).
    support = (-math.inf, math.inf)

    def log_kernel(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        raise NotImplementedError

    def log_normalizer(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        r""":math:`\text{kernel}(z) - \log g(z)`: a Python float or an array of the shape parameters' shape."""
        return 0.0

    def log_density(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        r""":math:`\log g(z)`."""
        return self.log_kernel(z, shape, xp) - self.log_normalizer(shape, xp)

    def neg_score(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        raise NotImplementedError

    def smaller_tail(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, Array]:
        raise NotImplementedError

    def log_cdf(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        raise NotImplementedError

    def sweep_block_terms(
        self, z: Array, shape: Sequence[Array], xp: Namespace
    ) -> tuple[Array, Array, Callable[[], tuple[Array, Array]]]:
        """``(log_kernel, neg_score, smaller_tail)`` of one block of standardized values, for
        the sweep terms (``shared_math._sweeps.sweep_terms``); ``smaller_tail()`` is called
        once the caller has freed its temporaries.  Families whose three functions share an
        intermediate (the Gumbel's :math:`e^{-z}`) override this to compute it once."""
        return (
            self.log_kernel(z, shape, xp),
            self.neg_score(z, shape, xp),
            lambda: self.smaller_tail(z, shape, xp),
        )

    def cdf(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        r""":math:`G(z)` from the smaller tail (accurate in both tails)."""
        sign, tail = self.smaller_tail(z, shape, xp)
        return _split_by_sign(sign, tail, 1.0 - tail)

    def standard_mean(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        """Mean of :math:`g` (a float, or an array for shape-dependent means)."""
        return 0.0

    def standard_variance(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        """Variance of :math:`g` (a float, or an array for shape-dependent variances)."""
        raise NotImplementedError

    def check_shape_values(self, shape: Sequence[Array], xp: Namespace) -> None:
        """``ValueError`` naming the shape parameter if a value is invalid (concrete values only)."""
        for name, value in zip(self.shape_names, shape):
            if bool(xp.any(xp.isnan(value))) or bool(xp.any(~(value > 0))) or bool(xp.any(~xp.isfinite(value))):
                raise ValueError(f"{name} must be positive and finite (found NaN, infinity or a value <= 0)")

    # --------------------------------------------------------------------------------------
    # What the gradients of the component CDF in its parameters need (docs/design.md §7).
    # --------------------------------------------------------------------------------------

    @property
    def real_line(self) -> bool:
        """Whether the support of :math:`g` is the whole real line (then Graves' Eq. 9 holds
        for ``loc`` and ``scale`` too: no boundary moves with them)."""
        return self.support == (-math.inf, math.inf)

    def shape_scores(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, ...]:
        r""":math:`\partial_\theta\log g(z)` for each shape parameter :math:`\theta` (a tuple in the
        order of ``shape_names``; empty for families without shape parameters)."""
        return ()

    def has_exact_shape_velocities(self, xp: Namespace) -> bool:
        """Whether :meth:`exact_shape_velocities` is available for arrays of namespace ``xp``."""
        return not self.shape_names

    def exact_shape_velocities(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, ...]:
        r"""The standardized velocities :math:`v_\theta(z) = -\partial_\theta G(z)/g(z)` of the
        shape parameters from an exact derivative of :math:`G` (a tuple), where
        :meth:`has_exact_shape_velocities`; ``ValueError`` elsewhere."""
        if self.shape_names:
            raise ValueError(f"the {self.name} family has no exact derivative of its CDF in {self.shape_names} here")
        return ()

    def tail_side(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        r"""Which tail Graves' Eq. 9 is integrated over at :math:`z` (:math:`-1`: the lower,
        :math:`(-\infty, z]`; :math:`+1`: the upper, :math:`[z, \infty)`): the side of the
        median, exact or approximate (either side gives an unbiased estimate; the smaller
        tail gives a small one)."""
        return _sign(z - self.median, xp)

    def tail_rate(self, z: Array, shape: Sequence[Array], side: Array, xp: Namespace) -> Array:
        r"""Rate :math:`\lambda` of the exponential proposal of :meth:`tail_sample`: the outward
        decay rate of :math:`\log g` at :math:`z`, :math:`s\cdot(-\psi(z))`, raised to
        :attr:`min_tail_rate` (about 1/standard deviation: the proposal is never much wider
        than the body of :math:`g`) and capped at the tail's asymptotic rate (so that
        :math:`g(t)/q(t)` stays bounded)."""
        lower_cap, upper_cap = self.max_tail_rate
        rate = xp.clip(side * self.neg_score(z, shape, xp), min=self.min_tail_rate)
        if lower_cap == upper_cap:
            return rate if math.isinf(lower_cap) else xp.clip(rate, max=lower_cap)
        return xp.where(side < 0, xp.clip(rate, max=lower_cap), xp.clip(rate, max=upper_cap))

    #: Smallest and largest rates of the exponential tail proposal (see :meth:`tail_rate`).
    min_tail_rate = 1.0
    max_tail_rate = (math.inf, math.inf)

    def tail_sample(
        self, z: Array, shape: Sequence[Array], side: Array, uniform: Array, xp: Namespace
    ) -> tuple[Array | tuple[Array, ...], Array]:
        r"""Points of the tail at :math:`z` on ``side`` from uniforms :math:`U\in(0,1)`, and their
        log weights: ``(points, log_weight)`` with

        .. math::

            \text{log\_weight} = \log g(t) - \log g(z) - \log q(t),

        :math:`q` the density of :math:`t(U)` on the tail interval, so that
        :math:`\int_{\text{tail}} g(t)h(t)\,dt / g(z) = E_U[e^{\text{log\_weight}} h(t(U))]`
        for any :math:`h`.  The default proposal is exponential from :math:`z` outward,
        :math:`t = z + s\,\varepsilon/\lambda` with :math:`\varepsilon = -\log(1-U)` and
        :math:`\lambda` from :meth:`tail_rate` (the ratio :math:`g(t)/q(t)` is bounded
        for the log-concave families; heavy-tailed families override this).  ``points``
        is what :meth:`tail_integrands` reads (here :math:`t` itself).
        """
        rate = self.tail_rate(z, shape, side, xp)
        step, log_proposal = exponential_step(rate, math.inf, uniform, xp)
        t = z + side * step
        log_weight = self.log_kernel(t, shape, xp) - self.log_kernel(z, shape, xp) - log_proposal
        return t, log_weight

    def draw_points(self, t: Array, shape: Sequence[Array], xp: Namespace) -> Array | tuple[Array, ...]:
        r"""The ``points`` of :meth:`tail_integrands` for draws :math:`t\sim g` (Graves' Eq. 10)."""
        return t

    def tail_integrands(
        self, points: Array | tuple[Array, ...], shape: Sequence[Array], xp: Namespace, location_scale: bool
    ) -> tuple[Array, ...]:
        r"""The integrands :math:`h_p(t)` of Graves' Eq. 9 at ``points``: the derivatives of
        :math:`\log` of the component density in each parameter, in standardized units,

        .. math::

            h_\mu = -\psi(t),\qquad h_\sigma = -(1 + t\psi(t)),\qquad
            h_\theta = \partial_\theta\log g(t),

        (``loc`` and ``scale`` first, when ``location_scale``), so that
        :math:`v_p(z) = -\frac{1}{g(z)}\int_{-\infty}^{z} g(t)\,h_p(t)\,dt` is the velocity
        :math:`dx/dp` of the component's own sample (``loc``: 1, ``scale``: :math:`z`;
        shape parameters: :math:`\sigma v_\theta`).
        """
        t = points
        location_scale_terms: tuple[Any, ...] = ()
        if location_scale:
            neg_score = self.neg_score(t, shape, xp)
            location_scale_terms = (neg_score, t * neg_score - 1.0)
        return location_scale_terms + tuple(self.shape_scores(t, shape, xp))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class Normal(LocationScaleFamily):
    r"""Standard Normal :math:`g(z) = e^{-z^2/2}/\sqrt{2\pi}`; tails :math:`\Phi(-|z|)` from ``erfc``."""

    name = "normal"

    def log_kernel(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        return (-0.5) * (z * z)

    def log_normalizer(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        return LOG_SQRT_2PI

    def neg_score(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        return z

    def smaller_tail(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, Array]:
        return _sign(z, xp), normal_tail(xp.abs(z), xp)

    def log_cdf(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        return special("log_ndtr", xp)(z)

    def standard_variance(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        return 1.0


def normal_tail_limit(dtype, xp):
    r"""The largest :math:`a` whose :math:`\Phi(-a)` is at least :func:`tail_floor` (13.0 for
    float32, 37.4 for float64), by bisection in float64.

    :func:`normal_tail` clamps its argument there: below that bound results would be
    subnormal, which is off the CPU's fast path (100x slower in torch).
    """
    return _normal_tail_limit(float(xp.finfo(dtype).smallest_normal))


@functools.cache
def _normal_tail_limit(smallest_normal):
    floor = math.e * smallest_normal
    low, high = 0.0, 40.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        if 0.5 * math.erfc(middle * _SQRT_HALF) >= floor:
            low = middle
        else:
            high = middle
    return low


def normal_tail(abs_z, xp):
    r""":math:`\Phi(-a) = \tfrac12\operatorname{erfc}(a/\sqrt2)` for ``abs_z`` :math:`=a\ge0`,
    with :math:`a` clamped at :func:`normal_tail_limit` (results never subnormal)."""
    clamped = xp.clip(abs_z, max=normal_tail_limit(abs_z.dtype, xp))
    return 0.5 * special("erfc", xp)(clamped * _SQRT_HALF)


class Logistic(LocationScaleFamily):
    r"""Standard logistic :math:`g(z) = e^{-z}/(1+e^{-z})^2`, :math:`G(z) = 1/(1+e^{-z})`.

    :math:`\log g = -|z| - 2\log(1+e^{-|z|})`, :math:`-\psi = \tanh(z/2)`, smaller tail
    :math:`e^{-|z|}/(1+e^{-|z|})`; variance :math:`\pi^2/3`.
    """

    name = "logistic"
    min_tail_rate = math.sqrt(3.0) / math.pi  # 1 / standard deviation
    max_tail_rate = (1.0, 1.0)  # g(t) ~ e^{-|t|}

    def log_kernel(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        magnitude = xp.abs(z)
        return -magnitude - 2.0 * xp.log1p(exp_of_log(-magnitude, xp))

    def neg_score(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        return xp.tanh(0.5 * z)

    def smaller_tail(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, Array]:
        small = exp_of_log(-xp.abs(z), xp)
        tail = xp.clip(small / (1.0 + small), min=tail_floor(z.dtype, xp))
        return _sign(z, xp), tail

    def log_cdf(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        # log G(z) = -softplus(-z) = -(max(-z, 0) + log1p(exp(-|z|)))
        return -(xp.clip(-z, min=0.0) + xp.log1p(exp_of_log(-xp.abs(z), xp)))

    def standard_variance(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        return math.pi**2 / 3.0


class Laplace(LocationScaleFamily):
    r"""Standard Laplace :math:`g(z) = \tfrac12 e^{-|z|}`; :math:`-\psi = \operatorname{sign} z`,
    smaller tail :math:`\tfrac12 e^{-|z|}`, variance 2."""

    name = "laplace"
    min_tail_rate = math.sqrt(0.5)
    max_tail_rate = (1.0, 1.0)

    def log_kernel(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        return -xp.abs(z)

    def log_normalizer(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        return _LOG_2

    def neg_score(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        return xp.sign(z)

    def smaller_tail(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, Array]:
        tail = xp.clip(0.5 * exp_of_log(-xp.abs(z), xp), min=tail_floor(z.dtype, xp))
        return _sign(z, xp), tail

    def log_cdf(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        magnitude = xp.abs(z)
        return _split_by_sign(_sign(z, xp), -magnitude - _LOG_2, xp.log1p(-0.5 * exp_of_log(-magnitude, xp)))

    def standard_variance(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        return 2.0


class Cauchy(LocationScaleFamily):
    r"""Standard Cauchy :math:`g(z) = 1/(\pi(1+z^2))`, :math:`G(z) = \operatorname{atan2}(1, -z)/\pi`.

    :math:`-\psi = 2z/(1+z^2)`, smaller tail :math:`\operatorname{atan2}(1,|z|)/\pi`.  It has
    no mean and no variance: :meth:`standard_mean` is NaN and :meth:`standard_variance` is
    infinite, as in PyTorch and NumPyro, so mixture moments come out NaN.
    """

    name = "cauchy"

    def log_kernel(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        return -xp.log1p(z * z)

    def log_normalizer(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        return _LOG_PI

    def neg_score(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        return 2.0 * z / (1.0 + z * z)

    def smaller_tail(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, Array]:
        magnitude = xp.abs(z)
        if fuses_elementwise(xp):  # XLA's atan2 is a scalar loop on CPU: 20x the cost of this arithmetic
            angle = arctan_of_reciprocal(magnitude, xp)
        else:
            angle = xp.atan2(xp.ones_like(z), magnitude)
        tail = xp.clip(angle * (1.0 / math.pi), min=tail_floor(z.dtype, xp))
        return _sign(z, xp), tail

    def log_cdf(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        return xp.log(xp.atan2(xp.ones_like(z), -z)) - _LOG_PI

    def standard_mean(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        return math.nan

    def standard_variance(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        return math.inf

    def tail_sample(
        self, z: Array, shape: Sequence[Array], side: Array, uniform: Array, xp: Namespace
    ) -> tuple[Array | tuple[Array, ...], Array]:
        r"""The Lomax proposal of :func:`lomax_tail` with :math:`\nu = 1`; points ``(sign, log |t|)``."""
        log_r, log_weight = lomax_tail(xp.abs(z), xp.ones_like(z), uniform, xp)
        return (side, log_r), log_weight

    def draw_points(self, t: Array, shape: Sequence[Array], xp: Namespace) -> Array | tuple[Array, ...]:
        return _sign(t, xp), xp.log(xp.clip(xp.abs(t), min=float(xp.finfo(t.dtype).smallest_normal)))

    def tail_integrands(
        self, points: Array | tuple[Array, ...], shape: Sequence[Array], xp: Namespace, location_scale: bool
    ) -> tuple[Array, ...]:
        r""":math:`h_\mu = 2t/(1+t^2) = \operatorname{sign}(t)/\cosh\log|t|`, :math:`h_\sigma = 2t^2/(1+t^2) - 1 = \tanh\log|t|`."""
        if not location_scale:
            return ()
        sign, log_r = points
        return sign / xp.cosh(log_r), xp.tanh(log_r)


class Gumbel(LocationScaleFamily):
    r"""Standard (maximum) Gumbel :math:`g(z) = \exp(-z - e^{-z})`, :math:`G(z) = \exp(-e^{-z})`.

    :math:`-\psi = 1 - e^{-z}`; the tails split at the median :math:`-\log\log 2`: below it
    :math:`G = \exp(-e^{-z})`, above it :math:`1-G = -\operatorname{expm1}(-e^{-z})`.  Mean
    :math:`\gamma` (Euler's constant), variance :math:`\pi^2/6`.

    The score grows like :math:`e^{-z}` in the left tail.  Where :math:`e^{-z}` exceeds
    :math:`1/\sqrt{\text{tiny}}` the density :math:`\exp(-z-e^{-z})` is zero in every float
    format, while weights and responsibilities are floored at :math:`e\cdot\text{tiny}`
    (:func:`exp_of_log`); the exponent of the score is capped there,
    so that such a floored weight times the score stays below :math:`\sqrt{\text{tiny}}`
    instead of growing to infinity.
    """

    name = "gumbel"
    median = -math.log(math.log(2.0))
    min_tail_rate = math.sqrt(6.0) / math.pi
    max_tail_rate = (math.inf, 1.0)  # the left tail decays doubly exponentially, the right like e^{-t}

    def _decay(self, z, xp):
        r""":math:`(e^{-z}, \text{overflow})`: the exponent capped at :math:`\log(\text{max})` (no
        overflow warnings, finite gradients) and the mask where it was."""
        cap = math.log(float(xp.finfo(z.dtype).max))
        return exp_of_log(xp.clip(-z, max=cap), xp), -z > cap

    def _log_kernel_from_decay(self, z, decay, overflow, xp):
        return xp.where(overflow, xp.full_like(z, -math.inf), -z - decay)

    def _neg_score_from_decay(self, decay, xp):
        r""":math:`1 - e^{-z}` with :math:`e^{-z}` capped at :math:`1/\sqrt{\text{tiny}}`."""
        return 1.0 - xp.clip(decay, max=1.0 / math.sqrt(float(xp.finfo(decay.dtype).smallest_normal)))

    def _smaller_tail_from_decay(self, z, decay, xp):
        sign = _sign(z - self.median, xp)
        tail = _split_by_sign(sign, exp_of_log(-decay, xp), -xp.expm1(-decay))
        return sign, xp.clip(tail, min=tail_floor(z.dtype, xp))

    def log_kernel(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        decay, overflow = self._decay(z, xp)
        return self._log_kernel_from_decay(z, decay, overflow, xp)

    def neg_score(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        return self._neg_score_from_decay(self._decay(z, xp)[0], xp)

    def smaller_tail(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, Array]:
        return self._smaller_tail_from_decay(z, self._decay(z, xp)[0], xp)

    def sweep_block_terms(
        self, z: Array, shape: Sequence[Array], xp: Namespace
    ) -> tuple[Array, Array, Callable[[], tuple[Array, Array]]]:
        """The three from one :math:`e^{-z}` (eager torch: the block's step ran 3-4 passes
        of exponentials and clips fewer)."""
        decay, overflow = self._decay(z, xp)
        return (
            self._log_kernel_from_decay(z, decay, overflow, xp),
            self._neg_score_from_decay(decay, xp),
            lambda: self._smaller_tail_from_decay(z, decay, xp),
        )

    def log_cdf(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        decay, overflow = self._decay(z, xp)
        return xp.where(overflow, xp.full_like(z, -math.inf), -decay)

    def standard_mean(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        return 0.5772156649015329  # Euler-Mascheroni constant

    def standard_variance(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        return math.pi**2 / 6.0


class StudentT(LocationScaleFamily):
    r"""Standard Student-t with ``df`` :math:`\nu > 0`:
    :math:`g(z) = \frac{\Gamma((\nu+1)/2)}{\sqrt{\nu\pi}\,\Gamma(\nu/2)}(1+z^2/\nu)^{-(\nu+1)/2}`.

    :math:`-\psi = (\nu+1)z/(\nu+z^2)`.  The smaller tail is
    :math:`t = \tfrac12 I_{\nu/(\nu+z^2)}(\nu/2, \tfrac12)` (Abramowitz & Stegun 26.7.1 with
    26.5.2), evaluated by the continued fraction of :mod:`shared_math._special` in log space:
    with :math:`x = \nu/(\nu+z^2)` and :math:`y = z^2/(\nu+z^2)` (both formed without
    cancellation) and :math:`\log c = \tfrac\nu2\log x + \tfrac12\log y - \log B(\tfrac\nu2,\tfrac12)`,

    .. math::

        t = \tfrac12\,\frac{c}{\nu/2}\,\mathrm{CF}_{\nu/2,\,1/2}(x)
        \quad\text{if } x < \frac{\nu/2+1}{\nu/2+5/2},\qquad
        t = \tfrac12\Big(1 - \frac{c}{1/2}\,\mathrm{CF}_{1/2,\,\nu/2}(y)\Big)\ \text{otherwise}.

    The two fractions share one evaluation: their coefficients are formed on the ``df``
    array and blended per entry.  Mean 0 for :math:`\nu>1` (else NaN); variance
    :math:`\nu/(\nu-2)` for :math:`\nu>2`, infinite for :math:`1<\nu\le2`, NaN otherwise
    (as in PyTorch and NumPyro).
    """

    name = "student_t"
    shape_names = ("df",)

    def log_kernel(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        (df,) = shape
        return (-0.5) * (df + 1.0) * xp.log1p(z * z / df)

    def log_normalizer(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        (df,) = shape
        lgamma = special("lgamma", xp)
        return lgamma(0.5 * df) - lgamma(0.5 * (df + 1.0)) + 0.5 * (xp.log(df) + _LOG_PI)

    def neg_score(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        (df,) = shape
        return (df + 1.0) * z / (df + z * z)

    def _tail_parts(self, z, df, xp):
        r"""``(central, log_scale, fraction)``: ``central`` is 1.0 where the swapped fraction
        is used (0.0 elsewhere), and :math:`I = e^{\text{log\_scale}}\cdot\text{fraction}` is
        :math:`I_x(\nu/2, \tfrac12)` (outer) or :math:`I_y(\tfrac12, \nu/2)` (central).

        Two logarithms of full arrays (:math:`\log(\nu+z^2)`, :math:`\log z^2`); :math:`x`
        and :math:`y` themselves come from divisions, and everything depending on :math:`\nu`
        only (:math:`\log B`, the first parameter's logarithm) is formed on the small
        parameter arrays: transcendental functions dominate the cost of this family's tail.
        """
        half_df = 0.5 * df
        half = 0.5 + 0.0 * df
        lgamma = special("lgamma", xp)
        log_half_df = xp.log(half_df)
        depth = student_t_fraction_depth(z.dtype, xp)
        outer = continued_fraction_coefficients(half_df, half, depth, xp)  # I_x(nu/2, 1/2)
        central_coefficients = continued_fraction_coefficients(half, half_df, depth, xp)  # I_y(1/2, nu/2)
        square = z * z
        total = df + square
        log_total = xp.log(total)
        log_x = xp.log(df) - log_total
        log_y = xp.log(square) - log_total
        central = xp.astype(log_x > xp.log((half_df + 1.0) / (half_df + 2.5)), z.dtype)
        argument = (central * square + (1.0 - central) * df) / total  # exact selection of y or x
        # The coefficients' blend may round by one ulp: a relative change of eps in the fraction.
        fraction = evaluate_continued_fraction(outer, argument, xp, alternative=central_coefficients, select=central)
        # log(c / first) = (nu/2) log x + log(y) / 2 - log B - log(first), first = nu/2 (outer) or 1/2 (central)
        log_constant = log_beta(half_df, half, lgamma) + log_half_df
        log_constant_central = (-_LOG_2) - log_half_df  # log(1/2) - log(nu/2): the first parameter differs
        log_scale = half_df * log_x + 0.5 * log_y - (log_constant + central * log_constant_central)
        return central, log_scale, fraction

    def _log_tail(self, z, df, xp):
        r"""``(sign, log t)``: sign of the tail and :math:`\log t`, in log space throughout
        (no underflow in the far tails)."""
        central, log_scale, fraction = self._tail_parts(z, df, xp)
        log_part = log_scale + xp.log(fraction)  # log I_x (outer) or log I_y (central)
        # outer: t = I_x / 2;  central: t = (1 - I_y) / 2
        log_outer = log_part - _LOG_2
        # I_y < 0.93 in the central region; the clip keeps the unused branch finite elsewhere.
        log_central = xp.log1p(-exp_of_log(xp.clip(log_part, max=_LOG_ALMOST_1), xp)) - _LOG_2
        log_tail = central * log_central + (1.0 - central) * xp.clip(log_outer, min=-1e30)
        return _sign(z, xp), log_tail

    def smaller_tail(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, Array]:
        r"""The tail in linear space: :math:`I = e^{\text{log\_scale}}\,\mathrm{CF}`, then
        :math:`t = I/2` (outer) or :math:`(1 - I)/2` (central), raised to :func:`tail_floor`
        (where :math:`I` would underflow, so would :math:`t`)."""
        (df,) = shape
        central, log_scale, fraction = self._tail_parts(z, df, xp)
        part = exp_of_log(log_scale, xp) * fraction
        tail = 0.5 * (central + part * (1.0 - 2.0 * central))
        return _sign(z, xp), xp.clip(tail, min=tail_floor(z.dtype, xp))

    def log_cdf(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        (df,) = shape
        sign, log_tail = self._log_tail(z, df, xp)
        return _split_by_sign(sign, log_tail, xp.log1p(-exp_of_log(log_tail, xp)))

    def standard_mean(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        (df,) = shape
        return xp.where(df > 1.0, 0.0 * df, math.nan)

    def standard_variance(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        (df,) = shape
        finite = df / xp.where(df > 2.0, df - 2.0, xp.ones_like(df))
        return xp.where(df > 2.0, finite, xp.where(df > 1.0, math.inf, math.nan))

    def _df_score(self, log_r, df, xp):
        r""":math:`\partial_\nu\log g` at :math:`|t| = \sqrt\nu\,r`:
        :math:`\tfrac12[\psi(\tfrac{\nu+1}2) - \psi(\tfrac\nu2) - \tfrac1\nu] - \tfrac12\log(1+r^2)
        + \tfrac{\nu+1}{2\nu}\,\tfrac{r^2}{1+r^2}`."""
        digamma = special("digamma", xp)
        constant = 0.5 * (digamma(0.5 * (df + 1.0)) - digamma(0.5 * df) - 1.0 / df)
        return constant - 0.5 * _softplus(2.0 * log_r, xp) + ((df + 1.0) / (2.0 * df)) * _sigmoid(2.0 * log_r, xp)

    def _log_r(self, t, df, xp):
        return xp.log(xp.clip(xp.abs(t), min=float(xp.finfo(t.dtype).smallest_normal))) - 0.5 * xp.log(df)

    def shape_scores(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, ...]:
        (df,) = shape
        return (self._df_score(self._log_r(z, df, xp), df, xp),)

    def tail_sample(
        self, z: Array, shape: Sequence[Array], side: Array, uniform: Array, xp: Namespace
    ) -> tuple[Array | tuple[Array, ...], Array]:
        """The Lomax proposal of :func:`lomax_tail` (tail index ``df``); points ``(sign, log(|t|/sqrt(df)))``."""
        (df,) = shape
        log_r, log_weight = lomax_tail(xp.abs(z), df, uniform, xp)
        return (side, log_r), log_weight

    def draw_points(self, t: Array, shape: Sequence[Array], xp: Namespace) -> Array | tuple[Array, ...]:
        (df,) = shape
        return _sign(t, xp), self._log_r(t, df, xp)

    def tail_integrands(
        self, points: Array | tuple[Array, ...], shape: Sequence[Array], xp: Namespace, location_scale: bool
    ) -> tuple[Array, ...]:
        r"""With :math:`r = |t|/\sqrt\nu`: :math:`h_\mu = \operatorname{sign}(t)\,\frac{\nu+1}{\sqrt\nu}\,\frac{1}{2\cosh\log r}`,
        :math:`h_\sigma = (\nu+1)\frac{r^2}{1+r^2} - 1`, :math:`h_\nu` as in :meth:`_df_score`."""
        (df,) = shape
        sign, log_r = points
        terms: tuple[Any, ...] = ()
        if location_scale:
            terms = (
                sign * ((df + 1.0) / xp.sqrt(df)) / (2.0 * xp.cosh(log_r)),
                (df + 1.0) * _sigmoid(2.0 * log_r, xp) - 1.0,
            )
        return terms + (self._df_score(log_r, df, xp),)


class Gamma(LocationScaleFamily):
    r"""Standard Gamma with ``concentration`` :math:`a > 0` and rate 1:
    :math:`g(z) = z^{a-1}e^{-z}/\Gamma(a)` on :math:`z > 0`.  A ``Gamma(concentration, rate)``
    component is this family with location 0 and scale :math:`1/\text{rate}`.

    :math:`-\psi = 1 - (a-1)/z`; the tails are the regularized incomplete gamma functions,
    both computed directly, :math:`P(a, z)` (lower) and :math:`Q(a, z)` (upper), in float64
    for float32 arguments (their front factor :math:`z^a e^{-z}` loses 1e-5 relative in
    float32); :math:`\log G` uses :func:`~shared_math._special.log_gammainc_series` where
    :math:`P` underflows.  Mean and variance :math:`a`.  Score
    :math:`\partial_a\log g = \log z - \psi(a)`.  The exact derivative
    :math:`\partial_a P` exists in JAX only (``jax.lax.igamma_grad_a``); elsewhere the
    shape gradient is sampled (:mod:`shared_math.sampled`).  Outside the support
    (:math:`z \le 0`) the log density is :math:`-\infty`.
    """

    name = "gamma"
    shape_names = ("concentration",)
    support = (0.0, math.inf)

    def _positive(self, z, xp):
        return xp.clip(z, min=float(xp.finfo(z.dtype).smallest_normal))

    def log_kernel(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        (a,) = shape
        kernel = (a - 1.0) * xp.log(self._positive(z, xp)) - z
        return xp.where(z > 0, kernel, xp.full_like(kernel, -math.inf))

    def log_normalizer(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        (a,) = shape
        return special("lgamma", xp)(a)

    def neg_score(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        (a,) = shape
        largest = float(xp.finfo(z.dtype).max)
        return xp.clip(1.0 - (a - 1.0) / self._positive(z, xp), min=-largest, max=largest)

    def _tails(self, z, a, xp):
        """``(P, Q, positive)`` in the wide dtype (:func:`~shared_math._backend.wide_dtype`)."""
        wide = wide_dtype(z.dtype, xp)
        z_wide, a_wide = xp.astype(z, wide), xp.astype(a, wide)
        positive = z_wide > 0
        z_positive = xp.clip(z_wide, min=float(xp.finfo(wide).smallest_normal))
        lower = xp.where(positive, special("gammainc", xp)(a_wide, z_positive), xp.zeros_like(z_positive))
        upper = xp.where(positive, special("gammaincc", xp)(a_wide, z_positive), xp.ones_like(z_positive))
        return lower, upper, positive, a_wide, z_positive

    def smaller_tail(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, Array]:
        (a,) = shape
        lower, upper, _, _, _ = self._tails(z, a, xp)
        below = lower <= upper
        sign = xp.where(below, -xp.ones_like(lower), xp.ones_like(lower))
        tail = xp.astype(xp.minimum(lower, upper), z.dtype)
        return xp.astype(sign, z.dtype), xp.clip(tail, min=tail_floor(z.dtype, xp))

    def log_cdf(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        (a,) = shape
        lower, upper, positive, a_wide, z_positive = self._tails(z, a, xp)
        tiny = float(xp.finfo(lower.dtype).smallest_normal)
        series = log_gammainc_series(a_wide, z_positive, xp=xp, lgamma=special("lgamma", xp))
        log_lower = xp.where(lower > 1e6 * tiny, xp.log(xp.clip(lower, min=tiny)), series)
        log_cdf = xp.where(lower <= upper, log_lower, xp.log1p(-xp.clip(upper, max=0.5)))  # upper < 0.5 where used
        log_cdf = xp.where(positive, log_cdf, xp.full_like(log_cdf, -math.inf))
        return xp.astype(log_cdf, z.dtype)

    def standard_mean(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        (a,) = shape
        return a

    def standard_variance(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        (a,) = shape
        return a

    def shape_scores(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, ...]:
        (a,) = shape
        return (xp.log(self._positive(z, xp)) - special("digamma", xp)(a),)

    def has_exact_shape_velocities(self, xp: Namespace) -> bool:
        return has_special("gammainc_grad_a", xp)

    def exact_shape_velocities(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, ...]:
        r""":math:`v_a = -\partial_a P(a, z)/g(z)` with the backend's :math:`\partial_a P` (JAX);
        :math:`g(z)` is raised to tiny where it underflows (there :math:`\partial_a P` underflows
        too and the velocity is only kept finite), 0 outside the support."""
        if not self.has_exact_shape_velocities(xp):
            return super().exact_shape_velocities(z, shape, xp)
        (a,) = shape
        z_positive = self._positive(z, xp)
        derivative = special("gammainc_grad_a", xp)(*xp.broadcast_arrays(a, z_positive))  # lax: equal shapes
        log_tiny = math.log(float(xp.finfo(z.dtype).smallest_normal))
        velocity = -derivative * xp.exp(-xp.clip(self.log_density(z_positive, shape, xp), min=log_tiny))
        return (xp.where(z > 0, velocity, xp.zeros_like(velocity)),)

    def tail_side(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        r"""Side of the approximate median: :math:`a - \tfrac13 + \tfrac{8}{405a}` for :math:`a\ge1`
        (Choi 1994), :math:`(\Gamma(a+1)/2)^{1/a}` (from :math:`P(a,z)\approx z^a/\Gamma(a+1)`) below."""
        (a,) = shape
        large = a - 1.0 / 3.0 + 8.0 / (405.0 * a)
        small = xp.exp((special("lgamma", xp)(a + 1.0) - _LOG_2) / a)
        return _sign(z - xp.where(a >= 1.0, large, small), xp)

    def tail_sample(
        self, z: Array, shape: Sequence[Array], side: Array, uniform: Array, xp: Namespace
    ) -> tuple[Array | tuple[Array, ...], Array]:
        r"""Points ``log t`` of the tail at :math:`z` and their log weights:

        * lower tail, :math:`a < 1`: :math:`t = zU^{1/a}` (density :math:`q \propto t^{a-1}`,
          which absorbs the singularity of :math:`g` at 0), :math:`\log w = \log(z/a) + z - t`;
        * lower tail, :math:`a \ge 1`: :math:`t = z - s`, :math:`s` exponential with rate
          :math:`\max((a-1)/z - 1, a^{-1/2})` truncated to :math:`[0, z]`;
        * upper tail: :math:`t = z + s`, :math:`s` exponential with rate
          :math:`\min(\max(1 - (a-1)/z, a^{-1/2}), 1)` (at most the tail's rate 1, so
          :math:`g(t)/q(t)` stays bounded; at least :math:`1/\mathrm{sd}`).
        """
        (a,) = shape
        z = self._positive(z, xp)
        log_z = xp.log(z)
        inverse_sd = 1.0 / xp.sqrt(a)
        lower = side < 0
        # exponential from z outward (both sides in one pass; truncated at 0 below)
        rate_down = xp.maximum((a - 1.0) / z - 1.0, inverse_sd)
        rate_up = xp.clip(xp.maximum(1.0 - (a - 1.0) / z, inverse_sd), max=1.0)
        rate = xp.where(lower, rate_down, rate_up)
        length = xp.where(lower, z, xp.full_like(z, math.inf))
        step, log_proposal = exponential_step(rate, length, uniform, xp)
        relative = xp.clip(side * (step / z), min=-1.0 + float(xp.finfo(z.dtype).eps))  # (t - z)/z
        log_ratio = xp.log1p(relative)  # log(t/z)
        log_t_exponential = log_z + log_ratio
        log_weight_exponential = (a - 1.0) * log_ratio - z * relative - log_proposal
        # lower tail, power proposal (a < 1)
        log_t_power = log_z + xp.log(uniform) / a
        log_weight_power = log_z - xp.log(a) + z - xp.exp(log_t_power)
        power = lower & (a < 1.0)
        return xp.where(power, log_t_power, log_t_exponential), xp.where(
            power, log_weight_power, log_weight_exponential
        )

    def draw_points(self, t: Array, shape: Sequence[Array], xp: Namespace) -> Array | tuple[Array, ...]:
        return xp.log(self._positive(t, xp))

    def tail_integrands(
        self, points: Array | tuple[Array, ...], shape: Sequence[Array], xp: Namespace, location_scale: bool
    ) -> tuple[Array, ...]:
        (a,) = shape
        if location_scale:
            raise ValueError("the gamma family's support moves with loc: Eq. 9 holds for its shape parameter only")
        return (points - special("digamma", xp)(a),)


class Beta(LocationScaleFamily):
    r"""Standard Beta with ``concentration1`` :math:`a > 0` and ``concentration0`` :math:`b > 0`:
    :math:`g(z) = z^{a-1}(1-z)^{b-1}/B(a, b)` on :math:`0 < z < 1` (a ``Beta`` component is
    this family with location 0 and scale 1).

    :math:`-\psi = -(a-1)/z + (b-1)/(1-z)`; tails :math:`I_z(a,b)` and :math:`I_{1-z}(b,a)`,
    both computed directly (``betainc``: native in SciPy and JAX, the array-API continued
    fraction of :mod:`shared_math._special` in torch); :math:`\log G` in log space in the
    lower tail (:func:`~shared_math._special.log_betainc_lower`).  Mean :math:`a/(a+b)`,
    variance :math:`ab/((a+b)^2(a+b+1))`.  Scores :math:`\log z - \psi(a) + \psi(a+b)` and
    :math:`\log(1-z) - \psi(b) + \psi(a+b)`.  No backend differentiates ``betainc`` in
    :math:`a, b`: the shape gradients are always sampled.
    """

    name = "beta"
    shape_names = ("concentration1", "concentration0")
    support = (0.0, 1.0)

    def _inside(self, z, xp):
        """``z`` clipped to ``[tiny, 1 - eps/2]`` (finite logs of ``z`` and ``1 - z``)."""
        return xp.clip(z, min=float(xp.finfo(z.dtype).smallest_normal), max=1.0 - 0.5 * float(xp.finfo(z.dtype).eps))

    def log_kernel(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        a, b = shape
        inside = self._inside(z, xp)
        kernel = (a - 1.0) * xp.log(inside) + (b - 1.0) * xp.log1p(-inside)
        return xp.where((z > 0) & (z < 1), kernel, xp.full_like(kernel, -math.inf))

    def log_normalizer(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        a, b = shape
        return log_beta(a, b, special("lgamma", xp))

    def neg_score(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        a, b = shape
        inside = self._inside(z, xp)
        largest = float(xp.finfo(z.dtype).max)
        return xp.clip((b - 1.0) / (1.0 - inside) - (a - 1.0) / inside, min=-largest, max=largest)

    def _tails(self, z, a, b, xp):
        wide = wide_dtype(z.dtype, xp)
        z_wide, a_wide, b_wide = (xp.astype(v, wide) for v in (z, a, b))
        z_unit = xp.clip(z_wide, min=0.0, max=1.0)
        betainc = special("betainc", xp)
        return betainc(a_wide, b_wide, z_unit), betainc(b_wide, a_wide, 1.0 - z_unit), a_wide, b_wide, z_unit

    def smaller_tail(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, Array]:
        a, b = shape
        lower, upper, _, _, _ = self._tails(z, a, b, xp)
        sign = xp.where(lower <= upper, -xp.ones_like(lower), xp.ones_like(lower))
        tail = xp.astype(xp.minimum(lower, upper), z.dtype)
        return xp.astype(sign, z.dtype), xp.clip(tail, min=tail_floor(z.dtype, xp))

    def log_cdf(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        a, b = shape
        _, upper, a_wide, b_wide, z_unit = self._tails(z, a, b, xp)
        log_lower = log_betainc_lower(a_wide, b_wide, z_unit, xp=xp, lgamma=special("lgamma", xp))
        fraction_region = z_unit < (a_wide + 1.0) / (a_wide + b_wide + 2.0)
        almost_one = 1.0 - float(xp.finfo(upper.dtype).eps)
        log_cdf = xp.where(fraction_region, log_lower, xp.log1p(-xp.clip(upper, max=almost_one)))
        log_cdf = xp.where(z_unit > 0, log_cdf, xp.full_like(log_cdf, -math.inf))
        return xp.astype(log_cdf, z.dtype)

    def standard_mean(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        a, b = shape
        return a / (a + b)

    def standard_variance(self, shape: Sequence[Array], xp: Namespace) -> Array | float:
        a, b = shape
        total = a + b
        return a * b / (total * total * (total + 1.0))

    def _score_constants(self, shape, xp):
        a, b = shape
        digamma = special("digamma", xp)
        both = digamma(a + b)
        return both - digamma(a), both - digamma(b)

    def shape_scores(self, z: Array, shape: Sequence[Array], xp: Namespace) -> tuple[Array, ...]:
        inside = self._inside(z, xp)
        first, second = self._score_constants(shape, xp)
        return xp.log(inside) + first, xp.log1p(-inside) + second

    def tail_side(self, z: Array, shape: Sequence[Array], xp: Namespace) -> Array:
        r"""Side of the approximate median :math:`(a-\tfrac13)/(a+b-\tfrac23)` for
        :math:`a, b \ge 1` (Kerman 2011), of the mean :math:`a/(a+b)` otherwise."""
        a, b = shape
        both_large = (a >= 1.0) & (b >= 1.0)
        median = xp.where(both_large, (a - 1.0 / 3.0) / xp.clip(a + b - 2.0 / 3.0, min=1.0), a / (a + b))
        return _sign(z - median, xp)

    def tail_sample(
        self, z: Array, shape: Sequence[Array], side: Array, uniform: Array, xp: Namespace
    ) -> tuple[Array | tuple[Array, ...], Array]:
        r"""Points ``(log t, log(1 - t))`` of the tail at :math:`z` and their log weights.  Toward
        an end where :math:`g` is singular (:math:`a < 1` at 0, :math:`b < 1` at 1) the distance
        to that end follows a power law, :math:`t = zU^{1/a}` (resp.
        :math:`1-t = (1-z)U^{1/b}`), which absorbs the singularity; otherwise a truncated
        exponential from :math:`z` toward the end, rate :math:`\max(\text{outward slope of }
        \log g, 1/\mathrm{sd})`."""
        a, b = shape
        z = self._inside(z, xp)
        smallest = -1.0 + float(xp.finfo(z.dtype).eps)
        distance = 1.0 - z
        log_z, log_distance = xp.log(z), xp.log1p(-z)
        inverse_sd = 1.0 / xp.sqrt(self.standard_variance(shape, xp))
        lower = side < 0
        # exponential from z toward the end on its side (one pass for both sides)
        slope = (a - 1.0) / z - (b - 1.0) / distance  # d log g / dt at z
        rate = xp.maximum(-side * slope, inverse_sd)
        step, log_proposal = exponential_step(rate, xp.where(lower, z, distance), uniform, xp)
        toward_zero = xp.log1p(xp.clip(side * (step / z), min=smallest))  # log(t/z)
        toward_one = xp.log1p(xp.clip(-side * (step / distance), min=smallest))  # log((1-t)/(1-z))
        log_t_exponential, log_u_exponential = log_z + toward_zero, log_distance + toward_one
        log_weight_exponential = (a - 1.0) * toward_zero + (b - 1.0) * toward_one - log_proposal
        # power laws toward a singular end: t = z U^{1/a} (a < 1, lower); 1 - t = (1 - z) U^{1/b} (b < 1, upper)
        power_down, power_up = lower & (a < 1.0), (~lower) & (b < 1.0)
        exponent = xp.log(uniform) / xp.where(lower, a, b)
        log_near = xp.where(lower, log_z, log_distance) + exponent  # log of the distance to the end
        log_far = xp.log1p(-xp.exp(log_near))  # log of the other coordinate
        log_t_power = xp.where(lower, log_near, log_far)
        log_u_power = xp.where(lower, log_far, log_near)
        log_weight_power = xp.where(
            lower,
            log_z - xp.log(a) + (b - 1.0) * (log_u_power - log_distance),
            log_distance - xp.log(b) + (a - 1.0) * (log_t_power - log_z),
        )
        power = power_down | power_up
        log_t = xp.where(power, log_t_power, log_t_exponential)
        log_u = xp.where(power, log_u_power, log_u_exponential)
        return (log_t, log_u), xp.where(power, log_weight_power, log_weight_exponential)

    def draw_points(self, t: Array, shape: Sequence[Array], xp: Namespace) -> Array | tuple[Array, ...]:
        inside = self._inside(t, xp)
        return xp.log(inside), xp.log1p(-inside)

    def tail_integrands(
        self, points: Array | tuple[Array, ...], shape: Sequence[Array], xp: Namespace, location_scale: bool
    ) -> tuple[Array, ...]:
        if location_scale:
            raise ValueError(
                "the beta family's support moves with loc and scale: Eq. 9 holds for its shape parameters only"
            )
        log_t, log_u = points
        first, second = self._score_constants(shape, xp)
        return log_t + first, log_u + second


NORMAL = Normal()
LOGISTIC = Logistic()
LAPLACE = Laplace()
CAUCHY = Cauchy()
GUMBEL = Gumbel()
STUDENT_T = StudentT()
GAMMA = Gamma()
BETA = Beta()

#: Every family by name.
FAMILIES = {family.name: family for family in (NORMAL, LOGISTIC, LAPLACE, CAUCHY, GUMBEL, STUDENT_T, GAMMA, BETA)}


def get_family(family: str | LocationScaleFamily) -> LocationScaleFamily:
    """The :class:`LocationScaleFamily` for ``family`` (an instance, or one of the names in :data:`FAMILIES`)."""
    if isinstance(family, LocationScaleFamily):
        return family
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)} or a LocationScaleFamily; got {family!r}")
    return FAMILIES[family]
