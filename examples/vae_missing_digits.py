r"""VAE on 8×8 digits with half the pixels missing: does a mixture encoder help, and does it need
``Stratified_ELBO``?

Every image (training and held-out) keeps a fixed random half of its 64 pixels (a seeded mask
per image); the model sees only those:

.. math::

    z\sim N(0, I_L),\qquad x_j\mid z\sim\mathrm{Bernoulli}(\mathrm{sigmoid}(f_\theta(z))_j)
    \quad\text{for the observed pixels } j,

and the encoder reads the masked image and its mask.  Half an image is often ambiguous (a
partial 3 may be an 8 or a 9), so the posterior over :math:`z` given the observed half can
have several separated modes: the setting in which Morningstar et al. (2021,
arXiv:2003.01687) and Simkus & Gutmann (2024, arXiv:2403.03069) report gains from mixture
posteriors.  Three configurations, at equal cost (:math:`K` model evaluations per image and
step):

* ``gaussian``: :math:`q(z\mid x)` a diagonal Gaussian, ``Trace_ELBO(num_particles=K)``;
* ``mixture + Trace_ELBO``: a :math:`K`-component ``DiagNormalMixture`` encoder posterior,
  ``Trace_ELBO(num_particles=K)`` (pathwise gradients through the mixture sample);
* ``mixture + Stratified_ELBO``: the same encoder, ``Stratified_ELBO(num_particles=1)``
  (one draw per component, weighted by :math:`\pi_k(x)`).

Metric: the held-out importance-weighted bound on :math:`\log p(x_{\text{obs}})` per image
(Burda et al. 2016) with :math:`S` draws from each trained encoder, averaged over the 300
held-out images, per seed; also the held-out ELBO and the mean largest mixture weight
:math:`\max_k\pi_k(x)` (1/K for unused weights, 1 for a collapsed mixture).  Data and the
other settings: :mod:`_digits`.

Run: ``.venv/bin/python examples/vae_missing_digits.py`` (NumPyro; ``--framework pyro`` for
Pyro; ``--quick`` for a smoke run).  Writes ``out/vae_missing_digits_<framework>.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
EXAMPLES_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(EXAMPLES_DIR), str(EXAMPLES_DIR.parent)]

import _digits
import numpy as np
from tqdm.auto import tqdm

CONFIGURATIONS = ("gaussian", "mixture_trace", "mixture_stratified")
LABELS = {
    "gaussian": "Gaussian q, Trace_ELBO",
    "mixture_trace": "mixture q, Trace_ELBO",
    "mixture_stratified": "mixture q, Stratified_ELBO",
}


def pixel_masks(num_images, seed):
    """``(num_images, 64)`` float32 masks, each with exactly 32 observed pixels (1), seeded."""
    generator = np.random.default_rng(seed)
    masks = np.zeros((num_images, _digits.NUM_PIXELS), np.float32)
    for mask in masks:
        mask[generator.choice(_digits.NUM_PIXELS, _digits.NUM_PIXELS // 2, replace=False)] = 1.0
    return masks


def load_data(quick):
    """``(train, train_masks, held_out, held_out_masks)``; masks fixed per image (seeds 1 and 2)."""
    train, held_out = _digits.load_binarized_digits()
    if quick:
        train = train[:300]
    return train, pixel_masks(train.shape[0], 1), held_out, pixel_masks(held_out.shape[0], 2)


# --------------------------------------------------------------------------- NumPyro
def train_numpyro(configuration, seed, data, args):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax.example_libraries import stax
    from numpyro.infer import SVI, Trace_ELBO

    import numpyro_gmm

    latent_dim, num_components = args.latent_dim, args.components
    mixture = configuration != "gaussian"
    per_component = 2 * latent_dim + (1 if mixture else 0)
    decoder = stax.serial(stax.Dense(args.hidden), stax.Relu, stax.Dense(_digits.NUM_PIXELS))
    encoder = stax.serial(
        stax.Dense(args.hidden), stax.Relu, stax.Dense(per_component * (num_components if mixture else 1))
    )

    def posterior(out):
        if not mixture:
            loc, raw_scale = out[..., :latent_dim], out[..., latent_dim:]
            return dist.Normal(loc, jax.nn.softplus(raw_scale) + 1e-3).to_event(1)
        out = out.reshape(out.shape[:-1] + (num_components, per_component))
        locs, raw_scales, logits = out[..., :latent_dim], out[..., latent_dim:-1], out[..., -1]
        return numpyro_gmm.DiagNormalMixture(locs, jax.nn.softplus(raw_scales) + 1e-3, logits, estimator=args.estimator)

    def prior(batch):
        return dist.Normal(jnp.zeros((batch, latent_dim)), 1.0).to_event(1)

    def model(x, mask):
        decode = numpyro.module("decoder", decoder, (x.shape[0], latent_dim))
        with numpyro.plate("images", x.shape[0]):
            z = numpyro.sample("z", prior(x.shape[0]))
            numpyro.sample("x", dist.Bernoulli(logits=decode(z)).mask(mask > 0).to_event(1), obs=x)

    def guide(x, mask):
        encode = numpyro.module("encoder", encoder, (x.shape[0], 2 * _digits.NUM_PIXELS))
        with numpyro.plate("images", x.shape[0]):
            numpyro.sample("z", posterior(encode(jnp.concatenate([x * mask, mask], -1))))

    def evaluate(params, x, mask, key):
        """Log importance weights ``(S, B)`` and the mean largest mixture weight."""
        q = posterior(encoder[1](params["encoder$params"], jnp.concatenate([x * mask, mask], -1)))
        z = q.sample(key, (args.eval_samples,))
        logits = decoder[1](params["decoder$params"], z)
        log_likelihood = jnp.sum(mask * dist.Bernoulli(logits=logits).log_prob(x), -1)
        log_weights = log_likelihood + prior(x.shape[0]).log_prob(z) - q.log_prob(z)
        top_weight = jnp.mean(jnp.max(jax.nn.softmax(q.logits, -1), -1)) if mixture else jnp.nan
        return log_weights, top_weight

    if configuration == "mixture_stratified":
        loss = numpyro_gmm.Stratified_ELBO(num_particles=1, max_plate_nesting=1)
    else:
        loss = Trace_ELBO(num_particles=num_components)
    svi = SVI(model, guide, numpyro.optim.Adam(args.lr), loss)
    train, train_masks, held_out, held_out_masks = (jnp.asarray(a) for a in data)
    init_key, eval_key = jax.random.split(jax.random.PRNGKey(seed))
    state = svi.init(init_key, train[: args.batch_size], train_masks[: args.batch_size])
    num_batches = train.shape[0] // args.batch_size

    @jax.jit
    def run_epoch(state, order):
        batches = order[: num_batches * args.batch_size].reshape(num_batches, args.batch_size)

        def step(state, indices):
            return svi.update(state, train[indices], train_masks[indices])

        return jax.lax.scan(step, state, batches)[0]

    evaluate = jax.jit(evaluate)

    def epoch_fn(state, order):
        return run_epoch(state, jnp.asarray(order))

    def metrics(state, epoch):
        log_weights, top_weight = evaluate(
            svi.get_params(state), held_out, held_out_masks, jax.random.fold_in(eval_key, epoch)
        )
        return np.asarray(log_weights), float(top_weight)

    return _train_loop(configuration, seed, train.shape[0], state, epoch_fn, metrics, args, "NumPyro")


# --------------------------------------------------------------------------- Pyro
def train_pyro(configuration, seed, data, args):
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import SVI, Trace_ELBO
    from torch import nn

    import pyro_gmm

    torch.set_num_threads(1)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    latent_dim, num_components = args.latent_dim, args.components
    mixture = configuration != "gaussian"
    per_component = 2 * latent_dim + (1 if mixture else 0)
    decoder = nn.Sequential(nn.Linear(latent_dim, args.hidden), nn.ReLU(), nn.Linear(args.hidden, _digits.NUM_PIXELS))
    encoder = nn.Sequential(
        nn.Linear(2 * _digits.NUM_PIXELS, args.hidden),
        nn.ReLU(),
        nn.Linear(args.hidden, per_component * (num_components if mixture else 1)),
    )

    def posterior(x, mask):
        out = encoder(torch.cat([x * mask, mask], -1))
        if not mixture:
            loc, raw_scale = out[..., :latent_dim], out[..., latent_dim:]
            return dist.Normal(loc, nn.functional.softplus(raw_scale) + 1e-3).to_event(1)
        out = out.reshape(out.shape[:-1] + (num_components, per_component))
        locs, raw_scales, logits = out[..., :latent_dim], out[..., latent_dim:-1], out[..., -1]
        return pyro_gmm.DiagNormalMixture(
            locs, nn.functional.softplus(raw_scales) + 1e-3, logits, estimator=args.estimator
        )

    def prior(batch):
        return dist.Normal(torch.zeros(batch, latent_dim), 1.0).to_event(1)

    def model(x, mask):
        pyro.module("decoder", decoder)
        with pyro.plate("images", x.shape[0]):
            z = pyro.sample("z", prior(x.shape[0]))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z)).mask(mask > 0).to_event(1), obs=x)

    def guide(x, mask):
        pyro.module("encoder", encoder)
        with pyro.plate("images", x.shape[0]):
            pyro.sample("z", posterior(x, mask))

    if configuration == "mixture_stratified":
        loss = pyro_gmm.Stratified_ELBO(num_particles=1, max_plate_nesting=1)
    else:
        loss = Trace_ELBO(num_particles=num_components, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": args.lr}), loss)
    train, train_masks, held_out, held_out_masks = (torch.from_numpy(a) for a in data)

    def epoch_fn(state, order):
        for begin in range(0, train.shape[0] - args.batch_size + 1, args.batch_size):
            batch = torch.from_numpy(order[begin : begin + args.batch_size])
            svi.step(train[batch], train_masks[batch])
        return state

    @torch.no_grad()
    def metrics(state, epoch):
        q = posterior(held_out, held_out_masks)
        z = q.sample((args.eval_samples,))
        log_likelihood = (held_out_masks * dist.Bernoulli(logits=decoder(z)).log_prob(held_out)).sum(-1)
        log_weights = log_likelihood + prior(held_out.shape[0]).log_prob(z) - q.log_prob(z)
        top_weight = float(q.probs.max(-1).values.mean()) if mixture else float("nan")
        return log_weights.numpy(), top_weight

    return _train_loop(configuration, seed, train.shape[0], None, epoch_fn, metrics, args, "Pyro")


# --------------------------------------------------------------------------- shared
def _train_loop(configuration, seed, num_train, state, epoch_fn, metrics, args, framework):
    """Epochs of shuffled minibatches, held-out metrics after the evaluation epochs."""
    order_generator = np.random.default_rng(seed)
    evaluate_after = set(_digits.evaluation_epochs(args))
    curve = {"epoch": [], "elbo": [], "iwae": [], "top_weight": [], "seconds": 0.0}
    start = time.perf_counter()
    epochs = tqdm(
        range(1, args.epochs + 1), desc=f"{framework} {configuration:<18} seed {seed}", disable=args.no_progress
    )
    for epoch in epochs:
        state = epoch_fn(state, order_generator.permutation(num_train))
        if epoch in evaluate_after:
            log_weights, top_weight = metrics(state, epoch)
            elbo, iwae = _digits.elbo_and_iwae(log_weights)
            curve["epoch"].append(epoch)
            curve["elbo"].append(elbo)
            curve["iwae"].append(iwae)
            curve["top_weight"].append(top_weight)
            epochs.set_postfix(elbo=f"{elbo:.2f}", iwae=f"{iwae:.2f}")
    curve["seconds"] = time.perf_counter() - start
    return curve


def summary(framework, history, args):
    lines = [
        f"{framework} VAE, half the pixels missing: L={args.latent_dim}, K={args.components}, {args.epochs} epochs, "
        f"{args.seeds} seeds, {args.components} model evaluations per image and step, held-out "
        f"{_digits.NUM_HELD_OUT} images, S={args.eval_samples}",
        f"{'configuration':<28} {'IWAE log p(x_obs)':>22} {'ELBO':>16} {'max_k pi_k':>11} {'s/run':>7}   IWAE per seed",
    ]
    for configuration in CONFIGURATIONS:
        runs = history[configuration]
        iwae = np.array([run["iwae"][-1] for run in runs])
        elbo = np.array([run["elbo"][-1] for run in runs])
        top = np.array([run["top_weight"][-1] for run in runs])
        seconds = np.mean([run["seconds"] for run in runs])

        def spread(a):
            return f"{a.mean():8.3f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:5.3f}"

        top_text = "–" if np.all(np.isnan(top)) else f"{np.mean(top):.3f}"
        per_seed = ", ".join(f"{v:.3f}" for v in iwae)
        lines.append(
            f"{LABELS[configuration]:<28} {spread(iwae):>22} {spread(elbo):>16} {top_text:>11} {seconds:>7.1f}   {per_seed}"
        )
    base = np.array([run["iwae"][-1] for run in history["gaussian"]])
    for configuration in CONFIGURATIONS[1:]:
        values = np.array([run["iwae"][-1] for run in history[configuration]])
        lines.append(f"{LABELS[configuration]} - Gaussian: IWAE {values.mean() - base.mean():+.3f} nats per image")
    return "\n".join(lines)


def plot(framework, history, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = {"gaussian": "tab:gray", "mixture_trace": "tab:red", "mixture_stratified": "tab:blue"}
    for configuration in CONFIGURATIONS:
        for index, run in enumerate(history[configuration]):
            axes[0].plot(
                run["epoch"],
                run["iwae"],
                color=colors[configuration],
                alpha=0.9 if index == 0 else 0.5,
                label=LABELS[configuration] if index == 0 else None,
            )
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("held-out IWAE bound [nats/image]")
    axes[0].set_title(f"log p(x_obs), S={args.eval_samples} draws per image")
    tail = [
        v
        for c in CONFIGURATIONS
        for run in history[c]
        for e, v in zip(run["epoch"], run["iwae"])
        if e >= args.epochs / 4
    ]
    if len(tail) > 1:
        low, high = min(tail), max(tail)
        axes[0].set_ylim(low - 0.15 * (high - low + 1e-9), high + 0.15 * (high - low + 1e-9))
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    for position, configuration in enumerate(CONFIGURATIONS):
        finals = [run["iwae"][-1] for run in history[configuration]]
        axes[1].scatter([position] * len(finals), finals, color=colors[configuration], zorder=3)
        axes[1].hlines(np.mean(finals), position - 0.25, position + 0.25, color=colors[configuration])
    axes[1].set_xticks(range(len(CONFIGURATIONS)), [LABELS[c] for c in CONFIGURATIONS], fontsize=8)
    axes[1].set_ylabel("final held-out IWAE [nats/image]")
    axes[1].set_title("per seed (dots) and mean (lines)")
    axes[1].grid(alpha=0.3, axis="y")
    figure.suptitle(
        f"{framework}: VAE on 8×8 digits with half the pixels missing, L={args.latent_dim}, K={args.components}, "
        f"equal model evaluations",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _digits.add_common_arguments(parser)
    parser.add_argument("--framework", choices=("numpyro", "pyro"), default="numpyro")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.epochs is None:
        args.epochs = 3 if args.quick else 200
    args = _digits.finish_arguments(args)
    data = load_data(args.quick)
    trainer = train_numpyro if args.framework == "numpyro" else train_pyro
    framework = "NumPyro" if args.framework == "numpyro" else "Pyro"
    started = time.perf_counter()
    history = {c: [trainer(c, seed, data, args) for seed in range(args.seeds)] for c in CONFIGURATIONS}
    print(summary(framework, history, args))
    print(f"total {time.perf_counter() - started:.0f} s")
    image = Path(args.out) / f"vae_missing_digits_{args.framework}.png"
    plot(framework, history, args, image)
    print(f"wrote {image}")
    return history


if __name__ == "__main__":
    main()
