r"""Per-sample gradients of every estimator on a batch of draws.

* Every estimator of the registry :data:`shared_math.ESTIMATORS` (``implicit``, ``hybrid``,
  ``rao_blackwell`` today), through :func:`shared_math.sample_vjp`: the parameters get an
  explicit leading sample axis, so the VJP's "sum to the parameters' shapes" keeps one
  gradient per sample.
* ``score``: for ``logits`` only, the score-function (REINFORCE) estimator of the discrete
  choice, :math:`(h(x) - b)(e_k - \pi)`, with a leave-one-out baseline :math:`b` (the mean of
  :math:`h` over the other samples of the batch, so it stays unbiased); ``score_rb``, its
  Rao-Blackwellisation over :math:`k` given :math:`x`, :math:`(h(x) - b)(r(x) - \pi)`.
* ``pyro``: ``pyro.distributions.MixtureOfDiagNormals`` (Jankowiak & Karaletsos 2018,
  arXiv:1806.01856), per-sample gradients through its own ``rsample`` (Normal, D >= 2 only).
"""

from __future__ import annotations

import numpy as np

import shared_math

from .mixtures import Draws, Mixture, draw, per_sample_parameters, responsibilities

#: Parameter groups, in the order of the VJP results.
GROUPS = ("locs", "scales", "logits")


def registry_per_sample(mixture: Mixture, draws: Draws, cotangent: np.ndarray, names=None) -> dict:
    """``{name: (locs (N,K,D), scales (N,K,D), logits (N,K))}`` for every estimator of
    :data:`shared_math.ESTIMATORS` (or those in ``names``), on the same draws."""
    parameters = per_sample_parameters(mixture, draws.x.shape[0])
    return {
        name: shared_math.sample_vjp(
            name, draws.x, *parameters, draws.one_hot, draws.noise, cotangent, **mixture.options
        )
        for name in (shared_math.ESTIMATORS if names is None else names)
    }


def leave_one_out_mean(values: np.ndarray) -> np.ndarray:
    """``b_n`` = mean of ``values`` without entry ``n`` (a baseline independent of sample ``n``)."""
    return (values.sum() - values) / (values.shape[0] - 1)


def score_function_logits(mixture: Mixture, draws: Draws, values: np.ndarray, rao_blackwell: bool = False):
    r"""Per-sample score-function logits gradient :math:`(h(x_n) - b_n)(e_{k_n} - \pi)`, shape (N, K);
    with ``rao_blackwell``, :math:`e_{k_n}` is replaced by the responsibilities :math:`r(x_n)`."""
    indicator = responsibilities(draws.x, mixture) if rao_blackwell else draws.one_hot
    return (values - leave_one_out_mean(values))[:, None] * (indicator - mixture.probs)


def pyro_per_sample(mixture: Mixture, objective, num_samples: int, seed: int, chunk: int = 512):
    """Per-sample gradients ``(locs, scales, logits)`` of ``pyro.distributions.MixtureOfDiagNormals``
    (Normal, D >= 2).  Its parameters get a batch axis of size N and one sample is drawn per
    batch entry, so ``.grad`` holds one gradient per sample; its backward pass is
    O(N·K²·D), so the batch is processed in chunks."""
    import torch
    from pyro.distributions import MixtureOfDiagNormals

    torch.manual_seed(seed)
    outputs = {group: [] for group in GROUPS}
    for start in range(0, num_samples, chunk):
        size = min(chunk, num_samples - start)
        leaves = [
            torch.tensor(array, dtype=torch.float64).expand((size,) + array.shape).clone().requires_grad_()
            for array in (mixture.locs, mixture.scales, mixture.logits)
        ]
        x = MixtureOfDiagNormals(*leaves).rsample()
        _, cotangent = objective.value_and_grad(x.detach().numpy())
        x.backward(torch.from_numpy(cotangent))
        for group, leaf in zip(GROUPS, leaves):
            outputs[group].append(leaf.grad.numpy())
    return tuple(np.concatenate(outputs[group]) for group in GROUPS)


def pyro_gradient_at(mixture: Mixture, x: np.ndarray, cotangent: np.ndarray):
    """Pyro's ``MixtureOfDiagNormals`` gradient at given points ``x`` (N, D), summed over them.

    Its ``rsample`` draws the noise internally, so to integrate its estimator against the
    density we call the backward pass of its private ``_MixDiagNormalSample`` directly; that
    pass depends on the sample only through ``x`` (not on the chosen component).
    """
    import types

    import torch
    from pyro.distributions.diag_normal_mixture import _MixDiagNormalSample

    locs, scales, logits = (
        torch.tensor(a, dtype=torch.float64) for a in (mixture.locs, mixture.scales, mixture.logits)
    )
    context = types.SimpleNamespace(saved_tensors=(torch.tensor(x), scales, locs, logits, torch.softmax(logits, -1)))
    context.needs_input_grad = (True,) * 6
    grads = _MixDiagNormalSample.backward(context, torch.tensor(cotangent))
    return tuple(grad.numpy() for grad in grads[:3])


def estimator_gradients(mixture: Mixture, objective, num_samples: int, seed: int, include_pyro: bool = True) -> dict:
    """All estimators' per-sample gradients on one configuration: ``{estimator: {group: array (N, ...)}}``.

    The registry's estimators (all groups), ``score`` and ``score_rb`` (logits) share the
    same draws; ``pyro`` (when ``include_pyro``, Normal components and D >= 2) draws its own.
    """
    draws = draw(mixture, num_samples, np.random.default_rng(seed))
    values, cotangent = objective.value_and_grad(draws.x)
    results = {
        name: dict(zip(GROUPS, gradients)) for name, gradients in registry_per_sample(mixture, draws, cotangent).items()
    }
    results["score"] = {"logits": score_function_logits(mixture, draws, values)}
    results["score_rb"] = {"logits": score_function_logits(mixture, draws, values, rao_blackwell=True)}
    if include_pyro and mixture.event_size >= 2 and mixture.family == "normal":
        results["pyro"] = dict(zip(GROUPS, pyro_per_sample(mixture, objective, num_samples, seed + 1)))
    return results
