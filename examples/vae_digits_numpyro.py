r"""VAE on scikit-learn's 8×8 digits in NumPyro: Gaussian vs mixture encoder posterior.

The encoder posterior :math:`q(z\mid x)` is either a diagonal Gaussian or a K-component
:class:`numpyro_gmm.DiagNormalMixture` whose samples are differentiable with respect to the
locations, scales **and weights** output by the encoder (Graves 2016, Eq. 6 and Eq. 22;
NumPyro's own ``MixtureSameFamily`` would leave the weights without gradient).  Networks
are ``jax.example_libraries.stax`` MLPs registered with ``numpyro.module``; the SVI update
is ``jit``-compiled.  Prints held-out ELBO and IWAE bound per image and writes the curves to
``out/vae_digits_numpyro.png``.  Data, model and metrics: see :mod:`_digits`.

Run: ``.venv/bin/python examples/vae_digits_numpyro.py`` (``--quick`` for a smoke run).
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
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.example_libraries import stax
from numpyro.infer import SVI, Trace_ELBO
from tqdm.auto import tqdm

import numpyro_gmm


class VAE:
    """Decoder and encoder (``stax`` MLPs) with the NumPyro model and guide.

    ``num_components=None`` gives the Gaussian posterior, an integer K the mixture.
    """

    def __init__(self, latent_dim, hidden, num_components=None, estimator="auto"):
        self.latent_dim = latent_dim
        self.num_components = num_components
        self.estimator = estimator
        per_component = 2 * latent_dim + (0 if num_components is None else 1)
        self.decoder = stax.serial(stax.Dense(hidden), stax.Relu, stax.Dense(_digits.NUM_PIXELS))
        self.encoder = stax.serial(stax.Dense(hidden), stax.Relu, stax.Dense(per_component * (num_components or 1)))

    def posterior(self, encoder_output):
        """``q(z | x)`` from the encoder output: batch ``(B,)``, event ``(L,)``."""
        latent_dim = self.latent_dim
        if self.num_components is None:
            loc, raw_scale = encoder_output[..., :latent_dim], encoder_output[..., latent_dim:]
            return dist.Normal(loc, jax.nn.softplus(raw_scale) + 1e-3).to_event(1)
        out = encoder_output.reshape(encoder_output.shape[:-1] + (self.num_components, 2 * latent_dim + 1))
        locs, raw_scales, logits = out[..., :latent_dim], out[..., latent_dim:-1], out[..., -1]
        return numpyro_gmm.DiagNormalMixture(locs, jax.nn.softplus(raw_scales) + 1e-3, logits, estimator=self.estimator)

    def prior(self, batch_size):
        return dist.Normal(jnp.zeros((batch_size, self.latent_dim)), 1.0).to_event(1)

    def model(self, x):
        decode = numpyro.module("decoder", self.decoder, (x.shape[0], self.latent_dim))
        with numpyro.plate("images", x.shape[0]):
            z = numpyro.sample("z", self.prior(x.shape[0]))
            numpyro.sample("x", dist.Bernoulli(logits=decode(z)).to_event(1), obs=x)

    def guide(self, x):
        encode = numpyro.module("encoder", self.encoder, (x.shape[0], _digits.NUM_PIXELS))
        with numpyro.plate("images", x.shape[0]):
            numpyro.sample("z", self.posterior(encode(x)))

    def log_importance_weights(self, params, x, key, num_samples):
        r""":math:`\log p(x, z_s) - \log q(z_s\mid x)` for :math:`z_s\sim q(z\mid x)`, shape ``(S, B)``."""
        posterior = self.posterior(self.encoder[1](params["encoder$params"], x))
        z = posterior.sample(key, (num_samples,))
        logits = self.decoder[1](params["decoder$params"], z)
        log_likelihood = dist.Bernoulli(logits=logits).to_event(1).log_prob(x)
        return log_likelihood + self.prior(x.shape[0]).log_prob(z) - posterior.log_prob(z)


def train_one(posterior, seed, train, held_out, args):
    """Train one VAE; returns its held-out curve ``{"epoch", "elbo", "iwae", "seconds"}``."""
    vae = VAE(args.latent_dim, args.hidden, args.components if posterior == "mixture" else None, args.estimator)
    svi = SVI(vae.model, vae.guide, numpyro.optim.Adam(args.lr), Trace_ELBO())
    init_key, train_key, eval_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    train = jnp.asarray(train)
    held_out = jnp.asarray(held_out)
    state = svi.init(init_key, train[: args.batch_size])
    num_batches = train.shape[0] // args.batch_size

    @jax.jit
    def run_epoch(state, order):
        """One pass over the training set (full batches) in the shuffled ``order``."""
        batches = order[: num_batches * args.batch_size].reshape(num_batches, args.batch_size)

        def step(state, batch_indices):
            state, loss = svi.update(state, train[batch_indices])
            return state, loss

        return jax.lax.scan(step, state, batches)[0]

    log_weights = jax.jit(vae.log_importance_weights, static_argnums=3)
    order_generator = np.random.default_rng(seed)
    evaluate_after = set(_digits.evaluation_epochs(args))
    curve = {"epoch": [], "elbo": [], "iwae": [], "seconds": 0.0}
    start = time.perf_counter()
    epochs = tqdm(range(1, args.epochs + 1), desc=f"NumPyro {posterior:<8} seed {seed}", disable=args.no_progress)
    for epoch in epochs:
        state = run_epoch(state, jnp.asarray(order_generator.permutation(train.shape[0])))
        if epoch in evaluate_after:
            params = svi.get_params(state)
            key = jax.random.fold_in(eval_key, epoch)
            elbo, iwae = _digits.elbo_and_iwae(np.asarray(log_weights(params, held_out, key, args.eval_samples)))
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
    train, held_out = _digits.load_binarized_digits()
    if args.quick:
        train = train[:300]
    history = {
        posterior: [train_one(posterior, seed, train, held_out, args) for seed in range(args.seeds)]
        for posterior in _digits.POSTERIORS
    }
    print(_digits.format_summary("NumPyro", history, args))
    image = Path(args.out) / "vae_digits_numpyro.png"
    _digits.plot_curves("NumPyro", history, args, image)
    print(f"wrote {image}")
    return history


if __name__ == "__main__":
    main()
