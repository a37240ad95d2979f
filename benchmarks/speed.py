r"""The benchmark cases: one training step of a diagonal Gaussian mixture, in every library.

A *step* is "draw N samples and backpropagate a loss to the parameters" (``rsample +
backward``) or, for the floor, "evaluate ``log_prob`` of N fixed points and backpropagate"
(one O(N·K·D) pass).  The loss of the samples is :math:`\sum x^2` everywhere (its cost is
negligible).  Parameters are float32: ``locs`` ~ N(0, 1), ``scales`` ~ U(0.5, 1.5),
``logits`` ~ N(0, 1), shapes ``(K, D)``, ``(K, D)``, ``(K,)``; seeded.

Cases (names used in the tables):

=================  =====================================================================
``floor``          our ``DiagNormalMixture.log_prob`` + backward (torch / JAX)
``implicit``       our ``rsample`` (Pyro) / ``sample`` (NumPyro), ``estimator="implicit"``
``hybrid``         the same with ``estimator="hybrid"``
``rao_blackwell``  the same with ``estimator="rao_blackwell"`` (what ``"auto"`` picks)
``pyro_mdn``       Pyro's ``MixtureOfDiagNormals.rsample`` (Jankowiak & Karaletsos), torch
``tfp``            TFP-JAX ``MixtureSameFamily(reparameterize=True)``, ``Independent(Normal)``
=================  =====================================================================

JAX steps are ``jax.jit(jax.grad(...))`` compiled ahead of time (compile time reported
apart); torch steps run eagerly with ``torch.autograd.grad``.
"""

from __future__ import annotations

import numpy as np
from _timing import compile_jax, torch_peak_allocated_bytes
from cases import ESTIMATORS, JAX_CASES, TORCH_CASES  # noqa: F401 (re-exported)


def numpy_parameters(num_components, event_size, seed=0):
    """``(locs, scales, logits)`` as float32 NumPy arrays (shared by both frameworks)."""
    rng = np.random.default_rng(seed)
    locs = rng.standard_normal((num_components, event_size)).astype(np.float32)
    scales = rng.uniform(0.5, 1.5, (num_components, event_size)).astype(np.float32)
    logits = rng.standard_normal(num_components).astype(np.float32)
    return locs, scales, logits


# ----------------------------------------------------------------------------- torch


def torch_steps(num_samples, num_components, event_size, cases=TORCH_CASES, seed=0):
    """``{case: step}`` for torch; each ``step()`` returns the parameter gradients."""
    import pyro.distributions
    import torch

    import pyro_gmm

    torch.manual_seed(seed)
    params = [torch.tensor(a, requires_grad=True) for a in numpy_parameters(num_components, event_size, seed)]
    locs, scales, logits = params
    with torch.no_grad():
        fixed_points = pyro_gmm.DiagNormalMixture(locs, scales, logits, validate_args=False).sample((num_samples,))

    def floor():
        mixture = pyro_gmm.DiagNormalMixture(locs, scales, logits, validate_args=False)
        return torch.autograd.grad(mixture.log_prob(fixed_points).sum(), params)

    def ours(estimator):
        def step():
            mixture = pyro_gmm.DiagNormalMixture(locs, scales, logits, estimator=estimator, validate_args=False)
            x = mixture.rsample((num_samples,))
            return torch.autograd.grad((x * x).sum(), params)

        return step

    def pyro_mdn():
        x = pyro.distributions.MixtureOfDiagNormals(locs, scales, logits).rsample((num_samples,))
        return torch.autograd.grad((x * x).sum(), params)

    builders = {"floor": floor, "pyro_mdn": pyro_mdn, **{name: ours(name) for name in ESTIMATORS}}
    steps = {name: builders[name] for name in cases}
    # The floor reads N fixed points that exist before the step; count them as its input.
    input_bytes = {"floor": fixed_points.numel() * fixed_points.element_size()}
    return steps, input_bytes


def torch_peak_bytes(steps, input_bytes):
    """``{case: peak bytes}`` of one step each (see ``_timing.torch_peak_allocated_bytes``)."""
    return {name: torch_peak_allocated_bytes(step) + input_bytes.get(name, 0) for name, step in steps.items()}


# ------------------------------------------------------------------------------- JAX


def jax_steps(num_samples, num_components, event_size, cases=JAX_CASES, seed=0, memory_limit_bytes=None):
    """``{case: CompiledJax}``; cases whose planned memory exceeds ``memory_limit_bytes``
    are compiled (to read the plan) but returned with ``call=None``."""
    import jax
    import jax.numpy as jnp

    import numpyro_gmm

    params = tuple(jnp.asarray(a) for a in numpy_parameters(num_components, event_size, seed))
    key = jax.random.PRNGKey(seed)
    fixed_points = numpyro_gmm.DiagNormalMixture(*params).sample(jax.random.PRNGKey(seed + 1), (num_samples,))

    def floor_loss(params, points):
        return numpyro_gmm.DiagNormalMixture(*params).log_prob(points).sum()

    def ours_loss(estimator):
        def loss(params, key):
            x = numpyro_gmm.DiagNormalMixture(*params, estimator=estimator).sample(key, (num_samples,))
            return jnp.sum(x * x)

        return loss

    def tfp_loss(params, key):
        from tensorflow_probability.substrates import jax as tfp

        tfd = tfp.distributions
        locs, scales, logits = params
        mixture = tfd.MixtureSameFamily(
            tfd.Categorical(logits=logits),
            tfd.Independent(tfd.Normal(locs, scales), reinterpreted_batch_ndims=1),
            reparameterize=True,
        )
        x = mixture.sample(num_samples, seed=key)
        return jnp.sum(x * x)

    losses = {
        "floor": (floor_loss, fixed_points),
        "tfp": (tfp_loss, key),
        **{name: (ours_loss(name), key) for name in ESTIMATORS},
    }
    compiled = {}
    for name in cases:
        loss, second = losses[name]
        step = compile_jax(jax.grad(loss), params, second)
        if memory_limit_bytes is not None and step.total_bytes > memory_limit_bytes:
            step.call = None
        compiled[name] = step
    return compiled


def tfp_available():
    """``None`` if TFP's JAX substrate imports, else the reason it does not."""
    try:
        from tensorflow_probability.substrates import jax as tfp  # noqa: F401  (only checks that it imports)
    except Exception as error:  # noqa: BLE001 - any import failure is reported as is
        return f"{type(error).__name__}: {error}"
    return None
