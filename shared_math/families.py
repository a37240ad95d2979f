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
  where it would underflow (see :func:`shared_math.mixture.exp_of_log`);
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

from ._backend import LOG_SQRT_2PI, special
from ._special import continued_fraction_coefficients, evaluate_continued_fraction, log_beta

_SQRT_HALF = math.sqrt(0.5)
_LOG_2 = math.log(2.0)
_LOG_PI = math.log(math.pi)
_LOG_ALMOST_1 = math.log(0.999)


def student_t_fraction_depth(dtype, xp):
    """Steps of the Student-t tail's continued fraction (``b = 1/2`` converges fast): 24 in
    float64 and 10 in float32, measured against SciPy for ``df`` in [0.1, 1000] (tests:
    ``tests/test_shared_math_special.py``)."""
    return 24 if xp.finfo(dtype).eps < 1e-10 else 10


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

    def log_kernel(self, z, shape, xp):
        raise NotImplementedError

    def log_normalizer(self, shape, xp):
        """:math:`\\text{kernel}(z) - \\log g(z)`: a Python float or an array of the shape parameters' shape."""
        return 0.0

    def log_density(self, z, shape, xp):
        r""":math:`\log g(z)`."""
        return self.log_kernel(z, shape, xp) - self.log_normalizer(shape, xp)

    def neg_score(self, z, shape, xp):
        raise NotImplementedError

    def smaller_tail(self, z, shape, xp):
        raise NotImplementedError

    def log_cdf(self, z, shape, xp):
        raise NotImplementedError

    def cdf(self, z, shape, xp):
        r""":math:`G(z)` from the smaller tail (accurate in both tails)."""
        sign, tail = self.smaller_tail(z, shape, xp)
        return _split_by_sign(sign, tail, 1.0 - tail)

    def standard_mean(self, shape, xp):
        """Mean of :math:`g` (a float, or an array for shape-dependent means)."""
        return 0.0

    def standard_variance(self, shape, xp):
        """Variance of :math:`g` (a float, or an array for shape-dependent variances)."""
        raise NotImplementedError

    def check_shape_values(self, shape, xp):
        """``ValueError`` naming the shape parameter if a value is invalid (concrete values only)."""

    def __repr__(self):
        return f"{type(self).__name__}()"

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


class Normal(LocationScaleFamily):
    r"""Standard Normal :math:`g(z) = e^{-z^2/2}/\sqrt{2\pi}`; tails :math:`\Phi(-|z|)` from ``erfc``."""

    name = "normal"

    def log_kernel(self, z, shape, xp):
        return (-0.5) * (z * z)

    def log_normalizer(self, shape, xp):
        return LOG_SQRT_2PI

    def neg_score(self, z, shape, xp):
        return z

    def smaller_tail(self, z, shape, xp):
        return _sign(z, xp), normal_tail(xp.abs(z), xp)

    def log_cdf(self, z, shape, xp):
        return special("log_ndtr", xp)(z)

    def standard_variance(self, shape, xp):
        return 1.0


def normal_tail_limit(dtype, xp):
    r"""The largest :math:`a` whose :math:`\Phi(-a)` is at least :func:`tail_floor` (13.0 for
    float32, 37.4 for float64), by bisection in float64.

    :func:`normal_tail` clamps its argument there: below that bound results would be
    subnormal, which is off the CPU's fast path (100x slower in torch).
    """
    return _normal_tail_limit(float(xp.finfo(dtype).smallest_normal))


@functools.lru_cache(maxsize=None)
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

    def log_kernel(self, z, shape, xp):
        magnitude = xp.abs(z)
        return -magnitude - 2.0 * xp.log1p(xp.exp(-magnitude))

    def neg_score(self, z, shape, xp):
        return xp.tanh(0.5 * z)

    def smaller_tail(self, z, shape, xp):
        small = xp.exp(-xp.abs(z))
        tail = xp.clip(small / (1.0 + small), min=tail_floor(z.dtype, xp))
        return _sign(z, xp), tail

    def log_cdf(self, z, shape, xp):
        # log G(z) = -softplus(-z) = -(max(-z, 0) + log1p(exp(-|z|)))
        return -(xp.clip(-z, min=0.0) + xp.log1p(xp.exp(-xp.abs(z))))

    def standard_variance(self, shape, xp):
        return math.pi**2 / 3.0


class Laplace(LocationScaleFamily):
    r"""Standard Laplace :math:`g(z) = \tfrac12 e^{-|z|}`; :math:`-\psi = \operatorname{sign} z`,
    smaller tail :math:`\tfrac12 e^{-|z|}`, variance 2."""

    name = "laplace"

    def log_kernel(self, z, shape, xp):
        return -xp.abs(z)

    def log_normalizer(self, shape, xp):
        return _LOG_2

    def neg_score(self, z, shape, xp):
        return xp.sign(z)

    def smaller_tail(self, z, shape, xp):
        tail = xp.clip(0.5 * xp.exp(-xp.abs(z)), min=tail_floor(z.dtype, xp))
        return _sign(z, xp), tail

    def log_cdf(self, z, shape, xp):
        magnitude = xp.abs(z)
        return _split_by_sign(_sign(z, xp), -magnitude - _LOG_2, xp.log1p(-0.5 * xp.exp(-magnitude)))

    def standard_variance(self, shape, xp):
        return 2.0


class Cauchy(LocationScaleFamily):
    r"""Standard Cauchy :math:`g(z) = 1/(\pi(1+z^2))`, :math:`G(z) = \operatorname{atan2}(1, -z)/\pi`.

    :math:`-\psi = 2z/(1+z^2)`, smaller tail :math:`\operatorname{atan2}(1,|z|)/\pi`.  It has
    no mean and no variance: :meth:`standard_mean` is NaN and :meth:`standard_variance` is
    infinite, as in PyTorch and NumPyro, so mixture moments come out NaN.
    """

    name = "cauchy"

    def log_kernel(self, z, shape, xp):
        return -xp.log1p(z * z)

    def log_normalizer(self, shape, xp):
        return _LOG_PI

    def neg_score(self, z, shape, xp):
        return 2.0 * z / (1.0 + z * z)

    def smaller_tail(self, z, shape, xp):
        tail = xp.clip(xp.atan2(xp.ones_like(z), xp.abs(z)) * (1.0 / math.pi), min=tail_floor(z.dtype, xp))
        return _sign(z, xp), tail

    def log_cdf(self, z, shape, xp):
        return xp.log(xp.atan2(xp.ones_like(z), -z)) - _LOG_PI

    def standard_mean(self, shape, xp):
        return math.nan

    def standard_variance(self, shape, xp):
        return math.inf


class Gumbel(LocationScaleFamily):
    r"""Standard (maximum) Gumbel :math:`g(z) = \exp(-z - e^{-z})`, :math:`G(z) = \exp(-e^{-z})`.

    :math:`-\psi = 1 - e^{-z}`; the tails split at the median :math:`-\log\log 2`: below it
    :math:`G = \exp(-e^{-z})`, above it :math:`1-G = -\operatorname{expm1}(-e^{-z})`.  Mean
    :math:`\gamma` (Euler's constant), variance :math:`\pi^2/6`.

    The score grows like :math:`e^{-z}` in the left tail.  Where :math:`e^{-z}` exceeds
    :math:`1/\sqrt{\text{tiny}}` the density :math:`\exp(-z-e^{-z})` is zero in every float
    format, while weights and responsibilities are floored at :math:`e\cdot\text{tiny}`
    (:func:`~shared_math.mixture.exp_of_log`); the exponent of the score is capped there,
    so that such a floored weight times the score stays below :math:`\sqrt{\text{tiny}}`
    instead of growing to infinity.
    """

    name = "gumbel"
    median = -math.log(math.log(2.0))

    def _decay(self, z, xp):
        r""":math:`(e^{-z}, \text{overflow})`: the exponent capped at :math:`\log(\text{max})` (no
        overflow warnings, finite gradients) and the mask where it was."""
        cap = math.log(float(xp.finfo(z.dtype).max))
        return xp.exp(xp.clip(-z, max=cap)), -z > cap

    def log_kernel(self, z, shape, xp):
        decay, overflow = self._decay(z, xp)
        return xp.where(overflow, xp.full_like(z, -math.inf), -z - decay)

    def neg_score(self, z, shape, xp):
        cap = 0.5 * -math.log(float(xp.finfo(z.dtype).smallest_normal))
        return 1.0 - xp.exp(xp.clip(-z, max=cap))

    def smaller_tail(self, z, shape, xp):
        sign = _sign(z - self.median, xp)
        decay, _ = self._decay(z, xp)
        tail = _split_by_sign(sign, xp.exp(-decay), -xp.expm1(-decay))
        return sign, xp.clip(tail, min=tail_floor(z.dtype, xp))

    def log_cdf(self, z, shape, xp):
        decay, overflow = self._decay(z, xp)
        return xp.where(overflow, xp.full_like(z, -math.inf), -decay)

    def standard_mean(self, shape, xp):
        return 0.5772156649015329  # Euler-Mascheroni constant

    def standard_variance(self, shape, xp):
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

    def log_kernel(self, z, shape, xp):
        (df,) = shape
        return (-0.5) * (df + 1.0) * xp.log1p(z * z / df)

    def log_normalizer(self, shape, xp):
        (df,) = shape
        lgamma = special("lgamma", xp)
        return lgamma(0.5 * df) - lgamma(0.5 * (df + 1.0)) + 0.5 * (xp.log(df) + _LOG_PI)

    def neg_score(self, z, shape, xp):
        (df,) = shape
        return (df + 1.0) * z / (df + z * z)

    def _log_tail(self, z, df, xp):
        """``(sign, log t, central)``: sign of the tail and :math:`\\log t`; ``central`` is 1.0
        where the swapped fraction was used."""
        half_df = 0.5 * df
        lgamma = special("lgamma", xp)
        log_beta_value = log_beta(half_df, 0.5 + 0.0 * df, lgamma)
        depth = student_t_fraction_depth(z.dtype, xp)
        outer = continued_fraction_coefficients(half_df, 0.5 + 0.0 * df, depth)  # I_x(nu/2, 1/2)
        central = continued_fraction_coefficients(0.5 + 0.0 * df, half_df, depth)  # I_y(1/2, nu/2)
        square = z * z
        log_sum = xp.log(df + square)
        log_x = xp.log(df) - log_sum
        log_y = xp.log(square) - log_sum
        swapped = xp.astype(log_x > xp.log((half_df + 1.0) / (half_df + 2.5)), z.dtype)
        argument = swapped * xp.exp(log_y) + (1.0 - swapped) * xp.exp(log_x)  # exact selection
        # The coefficients' blend may round by one ulp: a relative change of eps in the fraction.
        fraction = evaluate_continued_fraction(outer, argument, xp, alternative=central, select=swapped)
        log_front = half_df * log_x + 0.5 * log_y - log_beta_value
        first = half_df + swapped * (0.5 - half_df)
        log_part = log_front - xp.log(first) + xp.log(fraction)  # log I_x (outer) or log I_y (central)
        # outer: t = I_x / 2;  central: t = (1 - I_y) / 2
        log_outer = log_part - _LOG_2
        # I_y < 0.93 in the central region; the clip keeps the unused branch finite elsewhere.
        log_central = xp.log1p(-xp.exp(xp.clip(log_part, max=_LOG_ALMOST_1))) - _LOG_2
        log_tail = swapped * log_central + (1.0 - swapped) * xp.clip(log_outer, min=-1e30)
        return _sign(z, xp), log_tail

    def smaller_tail(self, z, shape, xp):
        (df,) = shape
        sign, log_tail = self._log_tail(z, df, xp)
        return sign, xp.clip(xp.exp(log_tail), min=tail_floor(z.dtype, xp))

    def log_cdf(self, z, shape, xp):
        (df,) = shape
        sign, log_tail = self._log_tail(z, df, xp)
        return _split_by_sign(sign, log_tail, xp.log1p(-xp.exp(log_tail)))

    def standard_mean(self, shape, xp):
        (df,) = shape
        return xp.where(df > 1.0, 0.0 * df, math.nan)

    def standard_variance(self, shape, xp):
        (df,) = shape
        finite = df / xp.where(df > 2.0, df - 2.0, xp.ones_like(df))
        return xp.where(df > 2.0, finite, xp.where(df > 1.0, math.inf, math.nan))

    def check_shape_values(self, shape, xp):
        (df,) = shape
        if bool(xp.any(xp.isnan(df))) or bool(xp.any(~(df > 0))) or bool(xp.any(~xp.isfinite(df))):
            raise ValueError("df must be positive and finite (found NaN, infinity or a value <= 0)")


NORMAL = Normal()
LOGISTIC = Logistic()
LAPLACE = Laplace()
CAUCHY = Cauchy()
GUMBEL = Gumbel()
STUDENT_T = StudentT()

#: Every family by name.
FAMILIES = {family.name: family for family in (NORMAL, LOGISTIC, LAPLACE, CAUCHY, GUMBEL, STUDENT_T)}


def get_family(family):
    """The :class:`LocationScaleFamily` for ``family`` (an instance, or one of the names in :data:`FAMILIES`)."""
    if isinstance(family, LocationScaleFamily):
        return family
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)} or a LocationScaleFamily; got {family!r}")
    return FAMILIES[family]
