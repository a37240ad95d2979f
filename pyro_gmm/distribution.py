r"""``DiagNormalMixture``: a reparameterizable diagonal Gaussian mixture for Pyro.

A thin adapter: every formula lives in :mod:`shared_math`.  A sample is drawn ancestrally
(component :math:`k\sim\mathrm{Categorical}(\pi)`, noise :math:`\varepsilon\sim N(0, I)`,
:math:`x=\mu_k+\sigma_k\varepsilon`) with torch's random number generator, and its gradient
is attached by :class:`_MixtureSample`, a :class:`torch.autograd.Function` whose forward is
the identity on :math:`x` and whose backward is one of

* ``"implicit"``: Graves' implicit gradient for every parameter (Graves 2016, Eq. 6, made
  multivariate; weights via Eq. 22): :func:`shared_math.implicit_vjp`;
* ``"hybrid"``: the gradient through the chosen component for ``locs``/``scales`` and the
  implicit gradient for ``logits``: :func:`shared_math.hybrid_vjp`;
* ``"rao_blackwell"``: the chosen-component gradient averaged over the component given
  :math:`x` (weights :math:`r_k(x)`) for ``locs``/``scales``, implicit for ``logits``:
  :func:`shared_math.rao_blackwell_vjp`.

All three are unbiased for :math:`\nabla_\theta E[h(x)]`; ``"auto"`` picks one from the event
size (:func:`shared_math.resolve_estimator`).

Reference: A. Graves, "Stochastic Backpropagation through Mixture Density
Distributions", arXiv:1607.05690 (2016).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import array_api_compat
import torch
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution

import shared_math

from ._typing import SizeLike, TensorLike


def _is_compiling():
    """Whether ``torch.compile`` is tracing the calling code (``False`` on torch < 2.3)."""
    return getattr(torch.compiler, "is_compiling", lambda: False)()


def _is_tracing():
    """Whether values are symbolic right now (``torch.jit.trace``, ``torch.compile``), so
    cannot be inspected (parameter values are then not validated, as in NumPyro under ``jit``)."""
    return torch._C._get_tracing_state() is not None or _is_compiling()


def _expanded_to_batch(values: torch.Tensor, batch_shape: torch.Size) -> torch.Tensor:
    """``values`` broadcast so that its shape ends in ``batch_shape`` (returned as it is when it
    already does: ``torch.broadcast_shapes`` takes about 30 us, a tenth of a small ``log_prob``)."""
    shape = values.shape
    if len(shape) >= len(batch_shape) and shape[len(shape) - len(batch_shape) :] == batch_shape:
        return values
    return values.expand(torch.broadcast_shapes(shape, batch_shape))


def _init_distribution(instance, owner, batch_shape, event_size, validate_args):
    """``TorchDistribution.__init__`` for ``instance`` of class ``owner`` without torch's check
    of ``arg_constraints``, which the owner's own check (run just before, naming the parameter)
    already covers: a second pass over every parameter took about half of the constructor.
    ``validate_args=None`` still follows the class-wide default (``pyro.enable_validation``)."""
    super(owner, instance).__init__(torch.Size(batch_shape), torch.Size((event_size,)), validate_args=False)
    if validate_args is None:
        del instance._validate_args
    else:
        instance._validate_args = validate_args


#: The array-API view of torch, for :func:`shared_math.parameter_dtype`.
_TORCH_NAMESPACE = array_api_compat.array_namespace(torch.empty(0))


def _as_parameter_tensors(*values: TensorLike) -> tuple[torch.Tensor, ...]:
    """``values`` as tensors of one floating dtype (:func:`shared_math.parameter_dtype`: the
    promotion of the floating tensors' dtypes; numbers and lists adopt it) on the device of
    the first tensor.  Tensors of that dtype pass through untouched, so ``requires_grad``
    and views survive; others are converted differentiably."""
    arrays = [torch.as_tensor(v) if not isinstance(v, torch.Tensor) and hasattr(v, "dtype") else v for v in values]
    dtype = shared_math.parameter_dtype(arrays, _TORCH_NAMESPACE)
    device = next((v.device for v in arrays if isinstance(v, torch.Tensor)), None)
    return tuple(
        (v if v.dtype == dtype else v.to(dtype))
        if isinstance(v, torch.Tensor)
        else torch.as_tensor(v, dtype=dtype, device=device)
        for v in arrays
    )


#: The ``family`` of :class:`_MixtureSample` for full-covariance Gaussian components: then
#: ``scales`` is ``scale_tril`` and the gradients come from :mod:`shared_math.full_covariance`.
FULL_COVARIANCE = "full_covariance"


class _MixtureSampleBackward(torch.autograd.Function):
    r"""Identity on the drawn sample :math:`x`, with the mixture's sample gradient as backward.

    Inputs: ``(x, locs, scales, logits, component_one_hot, noise, estimator, family,
    cdf_gradient, cdf_noise, *shape_params)`` where ``x`` was drawn (without gradient) as
    ``shared_math.sample_from_noise(locs, scales, component_one_hot, noise)`` with ``noise``
    from the standardized ``family`` (a :mod:`shared_math.families` name; ``shape_params``
    its shape parameters), or :data:`FULL_COVARIANCE` with ``scale_tril`` in place of
    ``scales`` (:func:`shared_math.full_covariance_sample_vjp`).  :meth:`backward` returns ``(locs_bar, scales_bar, logits_bar)``
    from :func:`shared_math.sample_vjp`, already summed to each parameter's shape, and, when
    ``cdf_gradient`` is an option (``"auto"``, ``"exact"``, ``"sampled"`` or ``"rejection"``;
    :mod:`shared_math.sampled`), the gradients of the shape parameters, with ``cdf_noise`` the
    inner noise drawn at ``rsample`` time and saved here (``(M, ...) + (K, D)`` uniforms or
    standardized draws; ``None`` for ``"exact"``).  With ``cdf_gradient=None`` the shape
    parameters are held fixed.  ``x`` itself gets no derivative (the noise is held fixed).
    Logits that need no gradient are not asked for one (``logits_gradient=False``), which
    spares ``"rao_blackwell"`` and ``"hybrid"`` the sweep over the dimensions (fixed weights).

    The Function saves its *input* ``x``, not the returned tensor, so the caller may edit the
    sample in place (``x.add_(1)``) before calling ``backward``, as with ``Normal.rsample``.
    A second differentiation (``create_graph=True``) still sees :math:`x` move with the
    parameters: with grad mode on, the backward re-attaches the saved ``x`` to the
    parameters through :func:`_sample_function` before differentiating, so for
    ``"implicit"`` the result is the exact second derivative of the sample at fixed
    :math:`u=T(x;\theta)`.

    Reverse mode only: this is the Function used under ``torch.compile``, whose tracer
    refuses Functions with a custom ``jvp``.  Eager code uses :class:`_MixtureSample`.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x,
        locs,
        scales,
        logits,
        component_one_hot,
        noise,
        estimator,
        family="normal",
        cdf_gradient=None,
        cdf_noise=None,
        *shape_params,
    ):
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, locs, scales, logits, component_one_hot, noise, estimator, family, cdf_gradient, cdf_noise, *shape_params = (
            inputs
        )
        ctx.estimator, ctx.family, ctx.cdf_gradient = estimator, family, cdf_gradient
        ctx.num_shape_params, ctx.has_cdf_noise = len(shape_params), cdf_noise is not None
        saved = (x, locs, scales, logits, component_one_hot, noise) + ((cdf_noise,) if cdf_noise is not None else ())
        ctx.save_for_backward(*saved, *shape_params)

    @staticmethod
    def _unpack(ctx, tensors):
        x, locs, scales, logits, component_one_hot, noise, *rest = tensors
        cdf_noise = rest[0] if ctx.has_cdf_noise else None
        shape_params = tuple(rest[1:] if ctx.has_cdf_noise else rest)
        return x, locs, scales, logits, component_one_hot, noise, cdf_noise, shape_params

    @staticmethod
    def backward(ctx, grad_x):
        x, locs, scales, logits, component_one_hot, noise, cdf_noise, shape_params = _MixtureSampleBackward._unpack(
            ctx, ctx.saved_tensors
        )
        options = {"family": ctx.family, "shape_params": shape_params}
        if ctx.cdf_gradient is not None:
            options.update(cdf_gradient=ctx.cdf_gradient, cdf_noise=cdf_noise)
        if torch.is_grad_enabled():  # create_graph=True: let d(backward)/dtheta see x(theta)
            x = _sample_function().apply(
                x,
                locs,
                scales,
                logits,
                component_one_hot,
                noise,
                ctx.estimator,
                ctx.family,
                ctx.cdf_gradient,
                cdf_noise,
                *shape_params,
            )
        # Fixed weights (logits without a gradient): "rao_blackwell" and "hybrid" skip the sweep.
        needs = ctx.needs_input_grad
        args = (ctx.estimator, x, locs, scales, logits, component_one_hot, noise, grad_x)
        if ctx.family == FULL_COVARIANCE:  # scales holds scale_tril
            bars: tuple[Any, ...] = shared_math.full_covariance_sample_vjp(*args, logits_gradient=needs[3])
        else:
            bars = shared_math.sample_vjp(*args, logits_gradient=needs[3], **options)
        locs_bar, scales_bar, logits_bar = bars[:3]
        shape_bars = bars[3] if ctx.cdf_gradient is not None else (None,) * ctx.num_shape_params
        shape_bars = tuple(b if needs[10 + i] else None for i, b in enumerate(shape_bars))
        held_fixed = (None,) * 6  # one_hot, noise, estimator, family, cdf_gradient, cdf_noise
        return (
            (None, locs_bar if needs[1] else None, scales_bar if needs[2] else None, logits_bar if needs[3] else None)
            + held_fixed
            + shape_bars
        )


class _MixtureSample(_MixtureSampleBackward):
    r""":class:`_MixtureSampleBackward` plus forward mode: :meth:`jvp` returns :math:`\dot x`
    from :func:`shared_math.sample_jvp` (``torch.func.jvp``/``jacfwd``/``hessian`` and
    ``torch.autograd.forward_ad``), shape-parameter tangents included when ``cdf_gradient``
    is a method; ``x`` is held fixed in both modes."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        _MixtureSampleBackward.setup_context(ctx, inputs, output)
        cdf_noise = inputs[9]
        ctx.save_for_forward(*inputs[:6], *((cdf_noise,) if cdf_noise is not None else ()), *inputs[10:])

    @staticmethod
    def jvp(ctx, x_dot, locs_dot, scales_dot, logits_dot, *rest):
        del x_dot  # the draw's randomness is held fixed
        shape_dots = rest[6:]
        x, locs, scales, logits, component_one_hot, noise, cdf_noise, shape_params = _MixtureSampleBackward._unpack(
            ctx, ctx.saved_tensors
        )
        if ctx.family == FULL_COVARIANCE:  # scales holds scale_tril
            return shared_math.full_covariance_sample_jvp(
                ctx.estimator, x, locs, scales, logits, component_one_hot, noise, locs_dot, scales_dot, logits_dot
            )
        options = {"family": ctx.family, "shape_params": shape_params}
        if ctx.cdf_gradient is not None:
            options.update(cdf_gradient=ctx.cdf_gradient, cdf_noise=cdf_noise, shape_dots=shape_dots)
        return shared_math.sample_jvp(
            ctx.estimator,
            x,
            locs,
            scales,
            logits,
            component_one_hot,
            noise,
            locs_dot,
            scales_dot,
            logits_dot,
            **options,
        )


def _sample_function():
    """:class:`_MixtureSample` in eager code; :class:`_MixtureSampleBackward` while
    ``torch.compile`` traces (it cannot trace a custom ``jvp``; compiled code is reverse mode)."""
    return _MixtureSampleBackward if _is_compiling() else _MixtureSample


def _may_carry_derivative(tensor):
    """Whether ``tensor`` may get a derivative: it requires grad (also under ``torch.func.grad``)
    or carries a forward-mode tangent (``torch.func.jvp``, ``forward_ad``)."""
    if tensor.requires_grad:
        return True
    try:
        return torch.autograd.forward_ad.unpack_dual(tensor).tangent is not None
    except RuntimeError:  # pragma: no cover - outside any dual level on old torch
        return False


def _family_sampler(family, shape_params):
    """The torch distribution of the standardized ``family`` (location 0, scale 1) with
    ``shape_params`` (tensors broadcast to the draw's shape), for its ``sample``."""
    if family == "student_t":
        (df,) = shape_params
        return torch.distributions.StudentT(df, validate_args=False)
    if family == "gamma":
        (concentration,) = shape_params
        return torch.distributions.Gamma(concentration, torch.ones_like(concentration), validate_args=False)
    if family == "beta":
        return _BetaFromGammas(*shape_params)
    raise ValueError(family)


class _BetaFromGammas:
    r"""Draws of :math:`\mathrm{Beta}(a, b)` as :math:`X/(X+Y)`, :math:`X\sim\Gamma(a)`,
    :math:`Y\sim\Gamma(b)` from torch's Gamma sampler, as torch's own Dirichlet sampler forms
    them (in float64, so that small concentrations do not underflow to 0/0).  torch's
    ``Beta.sample`` goes through an old-style autograd Function, which ``torch.func``
    transforms refuse even without gradients."""

    def __init__(self, concentration1, concentration0):
        self.concentration1, self.concentration0 = concentration1, concentration0

    def sample(self, sample_shape=torch.Size()):
        first, second = (
            torch.distributions.Gamma(c.double(), torch.ones_like(c.double()), validate_args=False).sample(sample_shape)
            for c in (self.concentration1, self.concentration0)
        )
        return (first / (first + second)).to(self.concentration1.dtype)


def _inside_support(family, draws):
    """Draws clipped into the open support of the standardized ``family`` (torch's Gamma and
    Beta samplers can return 0 or 1 in float32 for small concentrations)."""
    finfo = torch.finfo(draws.dtype)
    if family == "gamma":
        return draws.clamp(min=finfo.tiny)
    if family == "beta":
        return draws.clamp(min=finfo.tiny, max=1.0 - 0.5 * finfo.eps)
    return draws


def _student_t_noise(df, shape, dtype, device):
    r"""Student-t draws of shape ``shape`` (``df`` of that shape) by Bailey's polar method
    (:func:`shared_math.families.student_t_from_disk`), as the NumPyro adapter draws them:
    about :math:`1.29n` candidate points at once (:func:`shared_math.families.polar_candidates`),
    the first :math:`n` inside the unit disk kept, the rare shortfall drawn again.  Two
    uniforms per draw instead of torch's Gamma sampler (``StudentT.sample``): at
    :math:`n = 65536`, float32, about 0.5 against 2.7 ms."""
    size = math.prod(shape)
    families = shared_math.families
    pieces_u, pieces_v, have = [], [], 0
    while have < size:
        u, v = torch.rand((2, families.polar_candidates(size - have)), dtype=dtype, device=device) * 2.0 - 1.0
        first_inside = torch.nonzero(families.inside_unit_disk(u, v, _TORCH_NAMESPACE)).squeeze(-1)[: size - have]
        pieces_u.append(u[first_inside])
        pieces_v.append(v[first_inside])
        have += first_inside.numel()
    u, v = torch.cat(pieces_u), torch.cat(pieces_v)
    return families.student_t_from_disk(u, v, df.reshape(-1), _TORCH_NAMESPACE).reshape(shape)


def _standard_noise(family, shape, chosen_shape_params, dtype, device):
    """Draws of the standardized ``family`` (location 0, scale 1) from torch's generator;
    ``chosen_shape_params`` are the shape parameters of each draw's component (shape ``shape``)."""
    if family == "normal":
        return torch.randn(shape, dtype=dtype, device=device)
    if family == "student_t":
        (df,) = chosen_shape_params
        return _student_t_noise(df, tuple(shape), dtype, device)
    if chosen_shape_params:
        return _inside_support(family, _family_sampler(family, chosen_shape_params).sample())
    zeros, ones = torch.zeros(shape, dtype=dtype, device=device), torch.ones(shape, dtype=dtype, device=device)
    import pyro.distributions as dist

    samplers: dict[str, Any] = {
        "logistic": dist.Logistic,
        "laplace": torch.distributions.Laplace,
        "cauchy": torch.distributions.Cauchy,
        "gumbel": torch.distributions.Gumbel,
    }
    return samplers[family](zeros, ones, validate_args=False).sample()


def draw_component_and_noise(logits, batch_shape, sample_shape, event_size, *, family="normal", shape_params=()):
    r"""The random inputs of one ancestral draw, from torch's generator: ``(component_one_hot, noise)``.

    ``component_one_hot`` has shape ``sample_shape + batch_shape + (K,)`` (the chosen component
    :math:`k\sim\mathrm{Categorical}(\mathrm{softmax}(\ell))`) and ``noise``
    :math:`\varepsilon`, draws of the standardized ``family`` with the chosen component's
    shape parameters, shape ``sample_shape + batch_shape + (D,)``.  ``logits`` broadcasts to
    ``batch_shape + (K,)`` and ``shape_params`` to ``batch_shape + (K, D)``.
    """
    sample_shape, batch_shape = torch.Size(sample_shape), torch.Size(batch_shape)
    num_components = logits.shape[-1]
    # contiguous: torch's softmax over a stride-0 expanded tensor is very slow with threads
    logits = logits.detach().expand(batch_shape + (num_components,)).contiguous()
    component = torch.distributions.Categorical(logits=logits, validate_args=False).sample(sample_shape)
    component_one_hot = shared_math.one_hot(component, num_components, logits.dtype)
    chosen = tuple((component_one_hot[..., None] * p.detach()).sum(-2) for p in shape_params)
    noise_shape = sample_shape + batch_shape + (event_size,)
    noise = _standard_noise(family, noise_shape, chosen, logits.dtype, logits.device)
    return component_one_hot, noise


def draw_cdf_noise(method, samples, family, sample_shape, batch_shape, locs, shape_params):
    r"""The inner noise of the sampled CDF gradients (:mod:`shared_math.sampled`), from torch's
    generator, shape ``(M,) + sample_shape + batch_shape + (K, D)``: uniforms on [0, 1) for
    ``"sampled"``, standardized draws of each component's :math:`g` (the framework's own
    sampler) for ``"rejection"``; ``None`` for ``"exact"``.  Drawn at ``rsample`` time, after
    the component and the noise (so a re-seeded generator replays all three in order)."""
    kind = shared_math.sampled.noise_kind(method)
    if kind is None:
        return None
    full = (samples,) + tuple(sample_shape) + tuple(batch_shape) + tuple(locs.shape[-2:])
    if kind == "uniform":
        return torch.rand(full, dtype=locs.dtype, device=locs.device)
    expanded = tuple(p.detach().expand(full[1:]) for p in shape_params)
    if expanded:
        return _inside_support(family, _family_sampler(family, expanded).sample((samples,)))
    return _standard_noise(family, full, (), locs.dtype, locs.device)


def reparameterized_sample(
    locs,
    scales,
    logits,
    batch_shape,
    sample_shape,
    estimator,
    *,
    family="normal",
    shape_params=(),
    cdf_gradient="auto",
    cdf_gradient_samples=shared_math.sampled.DEFAULT_CDF_GRADIENT_SAMPLES,
):
    """A draw of shape ``sample_shape + batch_shape + (D,)`` from the factorized mixture of
    ``family`` components, differentiable in ``locs``, ``scales`` and ``logits`` by
    ``estimator`` (forward and reverse mode, through :class:`_MixtureSample`), and in the
    shape parameters when they carry a derivative: by the CDF derivative ``cdf_gradient``
    (``"auto"``, ``"exact"``, ``"sampled"`` or ``"rejection"``, with
    ``cdf_gradient_samples`` inner draws; :mod:`shared_math.sampled`)."""
    component_one_hot, noise = draw_component_and_noise(
        logits, batch_shape, sample_shape, locs.shape[-1], family=family, shape_params=shape_params
    )
    with torch.no_grad():  # detach too: no_grad does not stop forward-mode tangents
        x = shared_math.sample_from_noise(locs.detach(), scales.detach(), component_one_hot, noise)
    method = shared_math.sampled.resolve_cdf_gradient(cdf_gradient, family, _TORCH_NAMESPACE)
    shape_derivative = any(_may_carry_derivative(p) for p in shape_params)
    forced = shared_math.sampled.samples_location_scale(cdf_gradient, family) and (
        _may_carry_derivative(locs) or _may_carry_derivative(scales)
    )
    cdf_noise, option = None, None  # None: shape parameters held fixed, closed-form loc/scale velocities
    if shape_derivative or forced:
        option = cdf_gradient
        cdf_noise = draw_cdf_noise(method, cdf_gradient_samples, family, sample_shape, batch_shape, locs, shape_params)
    return _sample_function().apply(
        x, locs, scales, logits, component_one_hot, noise, estimator, family, option, cdf_noise, *shape_params
    )


class DiagNormalMixture(TorchDistribution):
    r"""Mixture of :math:`K` diagonal Gaussians in :math:`\mathbb R^D` with pathwise gradients.

    .. math::

        p(x) = \sum_{k=1}^K \pi_k \prod_{d=1}^D N(x_d;\ \mu_{kd}, \sigma_{kd}^2),
        \qquad \pi = \mathrm{softmax}(\ell).

    ``rsample`` returns samples that are differentiable with respect to ``locs``, ``scales``
    **and** ``logits``: Graves' implicit gradient (Eq. 6 for the sample, Eq. 22 for the
    weights) holds the distributional transform :math:`T(x;\theta)=u` fixed, computed in
    O(N·K·D) by :mod:`shared_math`.

    :param torch.Tensor locs: component means :math:`\mu`, shape ``(..., K, D)``.
    :param torch.Tensor scales: component standard deviations :math:`\sigma>0`, shape
        ``(..., K, D)`` (the last two dimensions may be 1 and broadcast).
    :param torch.Tensor logits: unnormalized log weights :math:`\ell`, shape ``(..., K)``.
    :param str estimator: ``"implicit"`` (Graves' gradient for every parameter),
        ``"hybrid"`` (chosen-component gradient for ``locs``/``scales``, implicit for
        ``logits``), ``"rao_blackwell"`` (the chosen-component gradient averaged over the
        component given the sample, implicit for ``logits``) or ``"auto"`` (the default,
        ``shared_math.resolve_estimator``; see ``docs/estimators.md``).
    :param bool validate_args: check parameter values (``ValueError`` naming the parameter)
        and, in ``log_prob``, that values are real vectors.  Shape mismatches always raise.

    ``batch_shape`` is the broadcast of the leading dimensions of the three parameters and
    ``event_shape`` is ``(D,)``.
    """

    arg_constraints = {
        "locs": constraints.independent(constraints.real, 2),
        "scales": constraints.independent(constraints.positive, 2),
        "logits": constraints.real_vector,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self,
        locs: TensorLike,
        scales: TensorLike,
        logits: TensorLike,
        *,
        estimator: str = "auto",
        validate_args: bool | None = None,
    ) -> None:
        locs, scales, logits = _as_parameter_tensors(locs, scales, logits)
        batch_shape, num_components, event_size = shared_math.mixture_shapes(locs.shape, scales.shape, logits.shape)
        self.locs, self.scales, self.logits = locs, scales, logits
        self.num_components = num_components
        self.estimator = shared_math.resolve_estimator(estimator)
        validate = self._validate_args if validate_args is None else validate_args
        if validate and not _is_tracing():
            shared_math.check_parameter_values(locs, scales, logits)
        _init_distribution(self, DiagNormalMixture, batch_shape, event_size, validate_args)

    @classmethod
    def infer_shapes(cls, **arg_shapes: Sequence[int]) -> tuple[torch.Size, torch.Size]:
        """``(batch_shape, event_shape)`` of a mixture built from parameters of these shapes
        (Pyro's ``infer_shapes``: keyword arguments ``locs``, ``scales``, ``logits``; the shapes
        given for non-tensor arguments such as ``estimator`` are ignored).  Bad shapes raise the
        constructor's ``ValueError``."""
        batch_shape, _, event_size = shared_math.mixture_shapes(
            arg_shapes["locs"], arg_shapes["scales"], arg_shapes["logits"]
        )
        return torch.Size(batch_shape), torch.Size((event_size,))

    def expand(self, batch_shape: SizeLike, _instance: DiagNormalMixture | None = None) -> DiagNormalMixture:
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(DiagNormalMixture, _instance)
        num_components = self.num_components
        new.locs = self.locs.expand(batch_shape + self.locs.shape[-2:])
        new.scales = self.scales.expand(batch_shape + self.scales.shape[-2:])
        new.logits = self.logits.expand(batch_shape + (num_components,))
        new.num_components = num_components
        new.estimator = self.estimator
        super(DiagNormalMixture, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        mean = shared_math.mean(self.locs, self.scales, self.logits)
        return mean.expand(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        variance = shared_math.variance(self.locs, self.scales, self.logits)
        return variance.expand(self.batch_shape + self.event_shape)

    @property
    def probs(self) -> torch.Tensor:
        r"""Mixture weights :math:`\pi = \mathrm{softmax}(\ell)`, shape ``(..., K)`` (the same
        name in ``numpyro_gmm``)."""
        return torch.softmax(self.logits, dim=-1)

    def marginal_quantiles(self, quantiles: TensorLike) -> torch.Tensor:
        r"""Quantiles of each coordinate's marginal (a 1-D mixture with weights :math:`\pi`).

        ``quantiles`` has shape ``(...)``; the result ``(...) + batch_shape + (D,)``.  0 and 1
        give :math:`\mp\infty`, values outside :math:`[0, 1]` and NaN give NaN.  See
        :func:`shared_math.marginal_quantiles.marginal_quantile`; the same method in
        ``numpyro_gmm``.
        """
        from shared_math.marginal_quantiles import marginal_quantile

        quantiles = torch.as_tensor(quantiles, dtype=self.locs.dtype, device=self.locs.device)
        q = quantiles.reshape(quantiles.shape + (1,) * (len(self.batch_shape) + 1))
        return marginal_quantile(q, self.locs, self.scales, self.logits)

    @property
    def mixture_log_weights(self) -> torch.Tensor:
        r"""Mixture log weights :math:`\log\pi = \ell - \log\sum_j e^{\ell_j}`, shape
        ``batch_shape + (K,)``, differentiable in ``logits`` (for :class:`~pyro_gmm.Stratified_ELBO`)."""
        return torch.log_softmax(self.logits, dim=-1).expand(self.batch_shape + (self.num_components,))

    def component_rsample(self, sample_shape: SizeLike = torch.Size()) -> torch.Tensor:
        r"""One reparameterized draw from *each* component: :math:`z_k = \mu_k + \sigma_k\varepsilon_k`.

        Shape ``sample_shape + batch_shape + (K, D)`` (the convention of
        ``MixtureSameFamily.component_distribution.rsample``), with independent
        :math:`\varepsilon_k\sim N(0, I)`; differentiable in ``locs`` and ``scales`` by the
        ordinary reparameterization trick (the weights enter a stratified estimate through
        :attr:`mixture_log_weights`, ``shared_math.stratified``).
        """
        shape = torch.Size(sample_shape) + self.batch_shape + (self.num_components, self.event_shape[0])
        noise = torch.randn(shape, dtype=self.locs.dtype, device=self.locs.device)
        return shared_math.component_draws_from_noise(self.locs, self.scales, noise)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        shared_math.check_value_shape(value.shape, self.event_shape)
        if self._validate_args:
            self._validate_sample(value)
        return _expanded_to_batch(shared_math.log_prob(value, self.locs, self.scales, self.logits), self.batch_shape)

    def draw_noise(self, sample_shape: SizeLike = torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The random inputs of one draw, from torch's generator: ``(component_one_hot, noise)``.

        ``component_one_hot`` has shape ``sample_shape + batch_shape + (K,)`` (the chosen
        component :math:`k\sim\mathrm{Categorical}(\pi)`) and ``noise``
        :math:`\varepsilon\sim N(0,I)` shape ``sample_shape + batch_shape + (D,)``.
        :meth:`rsample` consumes the generator exactly as this method does, so re-seeding
        and calling it recovers the draws behind a sample.
        """
        return draw_component_and_noise(self.logits, self.batch_shape, sample_shape, self.event_shape[0])

    def rsample(self, sample_shape: SizeLike = torch.Size()) -> torch.Tensor:
        """Reparameterized draw of shape ``sample_shape + batch_shape + (D,)``, differentiable
        with respect to ``locs``, ``scales`` and ``logits`` (estimator ``self.estimator``)."""
        return reparameterized_sample(
            self.locs, self.scales, self.logits, self.batch_shape, sample_shape, self.estimator
        )

    def sample(self, sample_shape: SizeLike = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(K={self.num_components}, D={self.event_shape[0]}, "
            f"batch_shape={tuple(self.batch_shape)}, estimator={self.estimator!r})"
        )
