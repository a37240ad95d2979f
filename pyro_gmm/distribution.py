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

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution

import shared_math


def _is_tracing():
    """Whether values are symbolic right now (``torch.jit.trace``), so cannot be inspected."""
    return torch._C._get_tracing_state() is not None


def _as_float_tensors(locs, scales, logits):
    """The three parameters as tensors of one floating dtype (tensors of that dtype pass
    through untouched, so ``requires_grad`` and views survive)."""
    tensors = [value if isinstance(value, torch.Tensor) else torch.as_tensor(value) for value in (locs, scales, logits)]
    dtype = torch.result_type(tensors[0], tensors[1])
    dtype = torch.promote_types(dtype, tensors[2].dtype)
    if not dtype.is_floating_point:
        dtype = torch.promote_types(dtype, torch.get_default_dtype())
    return tuple(t if t.dtype == dtype else t.to(dtype) for t in tensors)


class _MixtureSample(torch.autograd.Function):
    r"""Identity on the drawn sample :math:`x`, with the mixture's sample gradient as backward.

    Inputs: ``(x, locs, scales, logits, component_one_hot, noise, estimator)`` where ``x`` was
    drawn (without gradient) as ``shared_math.sample_from_noise(locs, scales, component_one_hot,
    noise)``.  The backward returns ``(locs_bar, scales_bar, logits_bar)`` from
    :func:`shared_math.sample_vjp` for the estimator, already summed to
    each parameter's shape (sample and broadcast dimensions).  ``estimator`` may instead be a
    callable with :func:`shared_math.sample_vjp`'s arguments after the name (other component
    families, e.g. :class:`~pyro_gmm.MultivariateNormalMixture` with ``scale_tril`` in place of
    ``scales``).

    The output sample itself is what the backward reads, so a second differentiation
    (``create_graph=True``) also sees :math:`x` move with the parameters through this same
    Function: for ``"implicit"`` that is the exact second derivative of the sample at fixed
    :math:`u=T(x;\theta)`.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, locs, scales, logits, component_one_hot, noise, estimator):
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, locs, scales, logits, component_one_hot, noise, estimator = inputs
        ctx.estimator = estimator
        ctx.save_for_backward(output, locs, scales, logits, component_one_hot, noise)

    @staticmethod
    def backward(ctx, grad_x):
        x, locs, scales, logits, component_one_hot, noise = ctx.saved_tensors
        if callable(ctx.estimator):
            bars = ctx.estimator(x, locs, scales, logits, component_one_hot, noise, grad_x)
        else:
            bars = shared_math.sample_vjp(ctx.estimator, x, locs, scales, logits, component_one_hot, noise, grad_x)
        locs_bar, scales_bar, logits_bar = bars
        needs = ctx.needs_input_grad
        return (
            None,
            locs_bar if needs[1] else None,
            scales_bar if needs[2] else None,
            logits_bar if needs[3] else None,
            None,
            None,
            None,
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

    def __init__(self, locs, scales, logits, *, estimator="auto", validate_args=None):
        locs, scales, logits = _as_float_tensors(locs, scales, logits)
        batch_shape, num_components, event_size = shared_math.mixture_shapes(locs.shape, scales.shape, logits.shape)
        self.locs, self.scales, self.logits = locs, scales, logits
        self.num_components = num_components
        self.estimator = shared_math.resolve_estimator(estimator, event_size)
        validate = self._validate_args if validate_args is None else validate_args
        if validate and not _is_tracing():
            shared_math.check_parameter_values(locs, scales, logits)
        super().__init__(torch.Size(batch_shape), torch.Size((event_size,)), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(DiagNormalMixture, _instance)
        num_components, event_size = self.num_components, self.event_shape[0]
        new.locs = self.locs.expand(batch_shape + self.locs.shape[-2:])
        new.scales = self.scales.expand(batch_shape + self.scales.shape[-2:])
        new.logits = self.logits.expand(batch_shape + (num_components,))
        new.num_components = num_components
        new.estimator = self.estimator
        super(DiagNormalMixture, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self):
        mean = shared_math.mean(self.locs, self.scales, self.logits)
        return mean.expand(self.batch_shape + self.event_shape)

    @property
    def variance(self):
        variance = shared_math.variance(self.locs, self.scales, self.logits)
        return variance.expand(self.batch_shape + self.event_shape)

    @property
    def probs(self):
        """Mixture weights :math:`\\pi = \\mathrm{softmax}(\\ell)`, shape ``(..., K)``."""
        return torch.softmax(self.logits, dim=-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        log_prob = shared_math.log_prob(value, self.locs, self.scales, self.logits)
        return log_prob.expand(torch.broadcast_shapes(log_prob.shape, self.batch_shape))

    def draw_noise(self, sample_shape=torch.Size()):
        """The random inputs of one draw, from torch's generator: ``(component_one_hot, noise)``.

        ``component_one_hot`` has shape ``sample_shape + batch_shape + (K,)`` (the chosen
        component :math:`k\\sim\\mathrm{Categorical}(\\pi)`) and ``noise``
        :math:`\\varepsilon\\sim N(0,I)` shape ``sample_shape + batch_shape + (D,)``.
        :meth:`rsample` consumes the generator exactly as this method does, so re-seeding
        and calling it recovers the draws behind a sample.
        """
        shape = self._extended_shape(sample_shape)
        # contiguous: torch's softmax over a stride-0 expanded tensor is very slow with threads
        logits = self.logits.detach().expand(self.batch_shape + (self.num_components,)).contiguous()
        component = torch.distributions.Categorical(logits=logits, validate_args=False).sample(torch.Size(sample_shape))
        component_one_hot = shared_math.one_hot(component, self.num_components, self.logits.dtype)
        noise = torch.randn(shape, dtype=self.locs.dtype, device=self.locs.device)
        return component_one_hot, noise

    def rsample(self, sample_shape=torch.Size()):
        """Reparameterized draw of shape ``sample_shape + batch_shape + (D,)``, differentiable
        with respect to ``locs``, ``scales`` and ``logits`` (estimator ``self.estimator``)."""
        component_one_hot, noise = self.draw_noise(sample_shape)
        with torch.no_grad():
            x = shared_math.sample_from_noise(self.locs, self.scales, component_one_hot, noise)
        return _MixtureSample.apply(x, self.locs, self.scales, self.logits, component_one_hot, noise, self.estimator)

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            return self.rsample(sample_shape)

    def __repr__(self):
        return (
            f"{type(self).__name__}(K={self.num_components}, D={self.event_shape[0]}, "
            f"batch_shape={tuple(self.batch_shape)}, estimator={self.estimator!r})"
        )
