r"""Shared parts of the two VAE examples: data, settings, evaluation summary, plot.

Data: scikit-learn's bundled 8×8 digits (1797 images, no download), binarized at half
intensity (pixel value > 8 of 16 becomes 1), shuffled with a fixed seed and split into
1497 training and 300 held-out images.

Model (both frameworks): :math:`z \sim N(0, I_L)`, :math:`x_j \mid z \sim
\mathrm{Bernoulli}(\mathrm{sigmoid}(f_\theta(z))_j)` for the 64 pixels, with :math:`f_\theta` a
one-hidden-layer MLP.  Two amortized posteriors with the same encoder body:

* ``gaussian``: :math:`q(z\mid x) = N(\mu(x), \operatorname{diag}\sigma(x)^2)`;
* ``mixture``: :math:`q(z\mid x) = \sum_k \pi_k(x) N(\mu_k(x), \operatorname{diag}\sigma_k(x)^2)`,
  a ``DiagNormalMixture`` whose samples are differentiable with respect to the locations,
  scales and weights (Graves 2016), so ``Trace_ELBO`` trains it with pathwise gradients.

Held-out metrics, per image in nats, from :math:`S` draws :math:`z_s\sim q(z\mid x)`:

.. math::

    \mathrm{ELBO} = \frac1S\sum_s \log\frac{p(x, z_s)}{q(z_s\mid x)}, \qquad
    \mathrm{IWAE}_S = \log\frac1S\sum_s \frac{p(x, z_s)}{q(z_s\mid x)} \le \log p(x)

(Burda et al. 2016); the IWAE bound with large :math:`S` estimates :math:`\log p(x)`
itself, so it measures the decoder, and ELBO − IWAE measures how far :math:`q` is from the
true posterior.
"""

from __future__ import annotations

import math

import numpy as np

import shared_math

NUM_PIXELS = 64
NUM_HELD_OUT = 300
POSTERIORS = ("gaussian", "mixture")
POSTERIOR_LABELS = {"gaussian": "Gaussian q(z|x)", "mixture": "mixture q(z|x)"}


def load_binarized_digits(seed=0):
    """``(train, held_out)`` float32 arrays of 0/1 pixels, shapes ``(1497, 64)`` and ``(300, 64)``."""
    from sklearn.datasets import load_digits

    images = load_digits().data
    binary = (images > 8.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(binary.shape[0])
    binary = binary[order]
    return binary[NUM_HELD_OUT:], binary[:NUM_HELD_OUT]


def add_common_arguments(parser):
    """Command-line options shared by both VAE examples."""
    parser.add_argument("--quick", action="store_true", help="a few epochs on a subset (smoke test)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 150; 3 with --quick)")
    parser.add_argument("--latent-dim", type=int, default=4, help="latent dimension L")
    parser.add_argument("--components", type=int, default=4, help="mixture components K")
    parser.add_argument(
        "--estimator", default="auto", choices=shared_math.ESTIMATOR_CHOICES, help="mixture sample-gradient estimator"
    )
    parser.add_argument("--hidden", type=int, default=128, help="hidden units of encoder and decoder")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    parser.add_argument(
        "--seeds", type=int, default=None, help="training runs per posterior (default 2; 1 with --quick)"
    )
    parser.add_argument("--eval-every", type=int, default=None, help="epochs between held-out evaluations")
    parser.add_argument(
        "--eval-samples", type=int, default=None, help="importance samples S per held-out image (default 256)"
    )
    parser.add_argument("--out", default="out", help="output folder for the PNG")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def finish_arguments(args):
    """Fill the defaults that depend on ``--quick``."""
    if args.epochs is None:
        args.epochs = 3 if args.quick else 150
    if args.seeds is None:
        args.seeds = 1 if args.quick else 2
    if args.eval_every is None:
        args.eval_every = 1 if args.quick else 10
    if args.eval_samples is None:
        args.eval_samples = 32 if args.quick else 256
    return args


def evaluation_epochs(args):
    """Epochs after which the held-out metrics are computed (always including the last)."""
    epochs = list(range(args.eval_every, args.epochs + 1, args.eval_every))
    if not epochs or epochs[-1] != args.epochs:
        epochs.append(args.epochs)
    return epochs


def elbo_and_iwae(log_weights):
    r"""``(ELBO, IWAE)`` averaged over images, from log importance weights of shape ``(S, N)``
    (NumPy float64): the mean and the log-mean-exp over the :math:`S` draws."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    num_samples = log_weights.shape[0]
    elbo = log_weights.mean(axis=0)
    peak = log_weights.max(axis=0)
    iwae = peak + np.log(np.exp(log_weights - peak).sum(axis=0)) - math.log(num_samples)
    return float(elbo.mean()), float(iwae.mean())


def format_summary(framework, history, args):
    """Final held-out numbers per posterior (mean over seeds, with each seed listed)."""
    lines = [
        f"{framework} VAE on binarized digits: L={args.latent_dim}, K={args.components} (estimator {args.estimator}), "
        f"{args.epochs} epochs, {args.seeds} seed(s), held-out {NUM_HELD_OUT} images, S={args.eval_samples}",
        f"{'posterior':<16} {'held-out ELBO':>14} {'held-out IWAE':>14} {'ELBO - IWAE':>12} {'time/run [s]':>13}   per seed (ELBO / IWAE)",
    ]
    for posterior in POSTERIORS:
        runs = history[posterior]
        elbo = np.mean([run["elbo"][-1] for run in runs])
        iwae = np.mean([run["iwae"][-1] for run in runs])
        seconds = np.mean([run["seconds"] for run in runs])
        per_seed = ", ".join(f"{run['elbo'][-1]:.2f} / {run['iwae'][-1]:.2f}" for run in runs)
        lines.append(
            f"{POSTERIOR_LABELS[posterior]:<16} {elbo:>14.3f} {iwae:>14.3f} {elbo - iwae:>12.3f} {seconds:>13.1f}   {per_seed}"
        )
    gain_elbo = np.mean([r["elbo"][-1] for r in history["mixture"]]) - np.mean(
        [r["elbo"][-1] for r in history["gaussian"]]
    )
    gain_iwae = np.mean([r["iwae"][-1] for r in history["mixture"]]) - np.mean(
        [r["iwae"][-1] for r in history["gaussian"]]
    )
    lines.append(f"mixture - Gaussian: ELBO {gain_elbo:+.3f} nats, IWAE {gain_iwae:+.3f} nats (per image)")
    return "\n".join(lines)


def plot_curves(framework, history, args, path):
    """Held-out ELBO and IWAE against epochs, one line per posterior and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    colors = {"gaussian": "tab:blue", "mixture": "tab:orange"}
    for ax, metric, title in zip(
        axes, ("elbo", "iwae"), ("held-out ELBO", f"held-out IWAE bound (S={args.eval_samples})")
    ):
        for posterior in POSTERIORS:
            for index, run in enumerate(history[posterior]):
                ax.plot(
                    run["epoch"],
                    run[metric],
                    color=colors[posterior],
                    alpha=0.9 if index == 0 else 0.5,
                    label=POSTERIOR_LABELS[posterior] if index == 0 else None,
                )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per image")
        ax.legend()
        ax.grid(alpha=0.3)
        # Zoom on the last three quarters of training, where the differences are.
        tail = [
            v
            for posterior in POSTERIORS
            for run in history[posterior]
            for e, v in zip(run["epoch"], run[metric])
            if e >= args.epochs / 4
        ]
        if len(tail) > 1:
            low, high = min(tail), max(tail)
            ax.set_ylim(low - 0.15 * (high - low + 1e-9), high + 0.15 * (high - low + 1e-9))
    figure.suptitle(
        f"{framework}: VAE on binarized 8×8 digits, L={args.latent_dim}, mixture K={args.components}", fontsize=11
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
