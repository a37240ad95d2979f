r"""VAE on scikit-learn's 8×8 digits in Pyro: Gaussian vs mixture encoder posterior.

The encoder posterior :math:`q(z\mid x)` is either a diagonal Gaussian or a K-component
:class:`pyro_gmm.DiagNormalMixture` (locations, scales and weights all output by the
encoder and all trained by pathwise gradients: Graves 2016, Eq. 6 and Eq. 22).  Everything
else (decoder, optimizer, data order, seeds) is shared.  Prints held-out ELBO and IWAE
bound per image and writes the curves to ``out/vae_digits_pyro.png``.  Data, model and
metrics: see :mod:`_digits`.

Run: ``.venv/bin/python examples/vae_digits_pyro.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(EXAMPLES_DIR), str(EXAMPLES_DIR.parent)]

import _digits
import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import nn
from tqdm.auto import tqdm

import pyro_gmm


class Decoder(nn.Module):
    """Latent ``z`` (..., L) to Bernoulli logits of the 64 pixels."""

    def __init__(self, latent_dim, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, _digits.NUM_PIXELS))

    def forward(self, z):
        return self.net(z)


class Encoder(nn.Module):
    """Image ``x`` (B, 64) to ``q(z | x)``: a diagonal Gaussian (``num_components=None``) or a
    :class:`pyro_gmm.DiagNormalMixture` with ``num_components`` components; batch ``(B,)``,
    event ``(L,)``."""

    def __init__(self, latent_dim, hidden, num_components=None, estimator="auto"):
        super().__init__()
        self.latent_dim = latent_dim
        self.num_components = num_components
        self.estimator = estimator
        per_component = 2 * latent_dim + (0 if num_components is None else 1)
        self.body = nn.Sequential(nn.Linear(_digits.NUM_PIXELS, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, per_component * (num_components or 1))

    def forward(self, x):
        out = self.head(self.body(x))
        latent_dim = self.latent_dim
        if self.num_components is None:
            loc, raw_scale = out[..., :latent_dim], out[..., latent_dim:]
            return dist.Normal(loc, nn.functional.softplus(raw_scale) + 1e-3).to_event(1)
        out = out.reshape(out.shape[:-1] + (self.num_components, 2 * latent_dim + 1))
        locs, raw_scales, logits = out[..., :latent_dim], out[..., latent_dim:-1], out[..., -1]
        return pyro_gmm.DiagNormalMixture(
            locs, nn.functional.softplus(raw_scales) + 1e-3, logits, estimator=self.estimator
        )


class VAE(nn.Module):
    def __init__(self, latent_dim, hidden, num_components=None, estimator="auto"):
        super().__init__()
        self.latent_dim = latent_dim
        # Decoder first, so that with the same seed both posteriors start from the same decoder.
        self.decoder = Decoder(latent_dim, hidden)
        self.encoder = Encoder(latent_dim, hidden, num_components, estimator)

    def prior(self, batch_size):
        return dist.Normal(torch.zeros(batch_size, self.latent_dim), 1.0).to_event(1)

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("images", x.shape[0]):
            z = pyro.sample("z", self.prior(x.shape[0]))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("images", x.shape[0]):
            pyro.sample("z", self.encoder(x))

    @torch.no_grad()
    def log_importance_weights(self, x, num_samples):
        r""":math:`\log p(x, z_s) - \log q(z_s\mid x)` for :math:`z_s\sim q(z\mid x)`, shape ``(S, B)``."""
        posterior = self.encoder(x)
        z = posterior.sample((num_samples,))
        log_likelihood = dist.Bernoulli(logits=self.decoder(z)).to_event(1).log_prob(x)
        return log_likelihood + self.prior(x.shape[0]).log_prob(z) - posterior.log_prob(z)


def train_one(posterior, seed, train, held_out, args):
    """Train one VAE; returns its held-out curve ``{"epoch", "elbo", "iwae", "seconds"}``."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    vae = VAE(args.latent_dim, args.hidden, args.components if posterior == "mixture" else None, args.estimator)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": args.lr}), Trace_ELBO(max_plate_nesting=1))
    train_tensor, held_out_tensor = torch.from_numpy(train), torch.from_numpy(held_out)
    order_generator = np.random.default_rng(seed)
    evaluate_after = set(_digits.evaluation_epochs(args))
    curve = {"epoch": [], "elbo": [], "iwae": [], "seconds": 0.0}
    start = time.perf_counter()
    epochs = tqdm(range(1, args.epochs + 1), desc=f"Pyro {posterior:<8} seed {seed}", disable=args.no_progress)
    for epoch in epochs:
        order = torch.from_numpy(order_generator.permutation(train.shape[0]))
        for begin in range(0, train.shape[0] - args.batch_size + 1, args.batch_size):
            svi.step(train_tensor[order[begin : begin + args.batch_size]])
        if epoch in evaluate_after:
            elbo, iwae = _digits.elbo_and_iwae(vae.log_importance_weights(held_out_tensor, args.eval_samples).numpy())
            curve["epoch"].append(epoch)
            curve["elbo"].append(elbo)
            curve["iwae"].append(iwae)
            epochs.set_postfix(elbo=f"{elbo:.2f}", iwae=f"{iwae:.2f}")
    curve["seconds"] = time.perf_counter() - start
    return curve


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _digits.add_common_arguments(parser)
    args = _digits.finish_arguments(parser.parse_args(argv))
    # Small networks and batches: one thread avoids thread start-up costs that exceed the work.
    torch.set_num_threads(1)
    train, held_out = _digits.load_binarized_digits()
    if args.quick:
        train = train[:300]
    history = {
        posterior: [train_one(posterior, seed, train, held_out, args) for seed in range(args.seeds)]
        for posterior in _digits.POSTERIORS
    }
    print(_digits.format_summary("Pyro", history, args))
    image = Path(args.out) / "vae_digits_pyro.png"
    _digits.plot_curves("Pyro", history, args, image)
    print(f"wrote {image}")
    return history


if __name__ == "__main__":
    main()
