r"""Swap-in: an existing ``MixtureSameFamily`` guide made reparameterizable by one line.

The target is a 1-D two-component mixture,

.. math::

    p(z) = 0.7\, N(z; -1, 0.6^2) + 0.3\, N(z; 1, 0.6^2),

and the guide is a two-component ``MixtureSameFamily`` started at weights (0.5, 0.5),
locations (-0.5, 0.5) and scales 1, fitted by ``Trace_ELBO`` (the guide family contains
the target, so the optimum is KL = 0).  The only change between the two runs of each
framework is the class name on one line of the guide::

    -    numpyro.sample("z", dist.MixtureSameFamily(mixing, components))
    +    numpyro.sample("z", numpyro_gmm.ReparamMixtureSameFamily(mixing, components))

What happens with the stock class:

* **NumPyro**: ``MixtureSameFamily.sample`` is differentiable only through the chosen
  component, never through the weights, and ``Trace_ELBO`` uses it as if it were
  reparameterized (silently).  The per-sample gradient with respect to the mixing logits is
  then :math:`-\partial_\ell \log q(z)` at fixed :math:`z`, whose expectation is zero (the
  score has mean zero): the weights get **no signal**, only zero-mean noise, and stay near
  where they started.
* **Pyro**: torch's ``MixtureSameFamily`` has no ``rsample``, so ``Trace_ELBO`` falls back to
  the score-function (REINFORCE) estimator for the whole site.  That is unbiased, and in
  this 1-D, two-component problem it is not even noisier: the printed standard deviations
  are smaller than the pathwise ones, and the score-function estimate vanishes at the
  optimum (where :math:`\log p - \log q \equiv 0`), while ``Trace_ELBO``'s pathwise estimate
  keeps a zero-mean term :math:`-\partial_\theta \log q(z)` at fixed :math:`z` there.  So in
  Pyro the swap changes the estimator, not whether the weights learn.  (Score-function
  noise grows with the number and dimension of latent variables; this example does not
  measure that.)

With ``ReparamMixtureSameFamily`` the samples carry Graves' implicit gradient (Graves 2016,
Eq. 6; weights via Eq. 22): pathwise and unbiased, and the weights approach (0.7, 0.3) in
both frameworks.

Printed: the gradients of :math:`-\mathrm{ELBO}` with respect to ``logits[0]`` and ``locs[0]`` at
the initial guide (mean of many one-particle estimates ± standard error, its z-score against
the exact value from quadrature, and the standard deviation of one estimate), the
trajectory of the first weight, and the final KL(q || p).  Plot:
``out/swap_in.png``.

Run: ``.venv/bin/python examples/swap_in.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
EXAMPLES_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(EXAMPLES_DIR), str(EXAMPLES_DIR.parent)]

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm

TARGET_WEIGHTS = np.array([0.7, 0.3])
TARGET_LOCS = np.array([-1.0, 1.0])
TARGET_SCALE = 0.6
INITIAL_LOGITS = np.zeros(2)
INITIAL_LOCS = np.array([-0.5, 0.5])
INITIAL_SCALES = np.ones(2)

_GRID = np.linspace(-12.0, 12.0, 24001)


def _log_mixture_density(z, weights, locs, scales):
    return logsumexp(np.log(weights) + norm.logpdf(np.asarray(z)[..., None], locs, scales), axis=-1)


def kl_to_target(logits, locs, scales):
    r""":math:`\mathrm{KL}(q\,\|\,p) = \int q \log(q/p)` by the rectangle rule on a fine grid."""
    weights = np.exp(logits - logsumexp(logits))
    log_q = _log_mixture_density(_GRID, weights, locs, scales)
    log_p = _log_mixture_density(_GRID, TARGET_WEIGHTS, TARGET_LOCS, TARGET_SCALE)
    return float(np.sum(np.exp(log_q) * (log_q - log_p)) * (_GRID[1] - _GRID[0]))


def exact_gradients(logits=INITIAL_LOGITS, locs=INITIAL_LOCS, scales=INITIAL_SCALES, step=1e-5):
    r"""``{"logits": ..., "locs": ...}``: exact :math:`\partial(-\mathrm{ELBO})/\partial\theta =
    \partial\,\mathrm{KL}/\partial\theta` by central differences of :func:`kl_to_target` (the
    loss minimized by ``Trace_ELBO`` is :math:`-\mathrm{ELBO} = \mathrm{KL}` here, the target
    being normalized)."""
    parameters = {"logits": np.asarray(logits, np.float64), "locs": np.asarray(locs, np.float64)}
    result = {}
    for name, value in parameters.items():
        gradient = np.zeros_like(value)
        for k in range(value.shape[0]):
            shifted = {n: v.copy() for n, v in parameters.items()}
            shifted[name][k] += step
            upper = kl_to_target(shifted["logits"], shifted["locs"], scales)
            shifted[name][k] -= 2 * step
            lower = kl_to_target(shifted["logits"], shifted["locs"], scales)
            gradient[k] = (upper - lower) / (2 * step)
        result[name] = gradient
    return result


# --------------------------------------------------------------------------------------- NumPyro
def run_numpyro(args):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO

    import numpyro_gmm

    def model():
        mixing = dist.Categorical(probs=jnp.asarray(TARGET_WEIGHTS))
        numpyro.sample("z", dist.MixtureSameFamily(mixing, dist.Normal(jnp.asarray(TARGET_LOCS), TARGET_SCALE)))

    def make_guide(mixture_class):
        def guide():
            logits = numpyro.param("logits", jnp.asarray(INITIAL_LOGITS))
            locs = numpyro.param("locs", jnp.asarray(INITIAL_LOCS))
            scales = numpyro.param("scales", jnp.asarray(INITIAL_SCALES), constraint=dist.constraints.positive)
            mixing, components = dist.Categorical(logits=logits), dist.Normal(locs, scales)
            numpyro.sample("z", mixture_class(mixing, components))  # <- the one line that changes

        return guide

    def study(mixture_class):
        """Gradient draws at the initial parameters and SVI runs of one guide class."""
        guide = make_guide(mixture_class)
        initial_params = {
            "logits": jnp.asarray(INITIAL_LOGITS),
            "locs": jnp.asarray(INITIAL_LOCS),
            "scales": jnp.asarray(INITIAL_SCALES),
        }
        one_particle = Trace_ELBO(num_particles=1)

        def one_particle_gradient(key):
            gradient = jax.grad(lambda p: one_particle.loss(key, p, model, guide))(initial_params)
            return {"logits": gradient["logits"], "locs": gradient["locs"]}

        keys = jax.random.split(jax.random.PRNGKey(args.seed), args.gradient_draws)
        gradients = {
            name: np.asarray(value, dtype=np.float64)
            for name, value in jax.jit(jax.vmap(one_particle_gradient))(keys).items()
        }

        svi = SVI(model, guide, numpyro.optim.Adam(args.lr), Trace_ELBO(num_particles=args.particles))

        @jax.jit
        def fit(state):
            """``args.steps`` updates; returns the final state and the first weight after each."""

            def step(state, _):
                state, _ = svi.update(state)
                return state, jax.nn.softmax(svi.get_params(state)["logits"])[0]

            return jax.lax.scan(step, state, None, length=args.steps)

        runs = []
        for seed in range(args.seeds):
            state, weights = fit(svi.init(jax.random.PRNGKey(1000 + seed)))
            params = {name: np.asarray(value, dtype=np.float64) for name, value in svi.get_params(state).items()}
            runs.append(
                dict(
                    weights=np.concatenate([[0.5], np.asarray(weights, dtype=np.float64)]),
                    kl=kl_to_target(params["logits"], params["locs"], params["scales"]),
                )
            )

        return dict(gradients=gradients, runs=runs)

    return {
        label: study(mixture_class)
        for label, mixture_class in (
            ("stock MixtureSameFamily", dist.MixtureSameFamily),
            ("ReparamMixtureSameFamily", numpyro_gmm.ReparamMixtureSameFamily),
        )
    }


# ------------------------------------------------------------------------------------------ Pyro
def run_pyro(args):
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import SVI, Trace_ELBO

    import pyro_gmm

    torch.set_num_threads(1)  # tiny tensors: threads cost more than they save

    def model():
        mixing = dist.Categorical(probs=torch.tensor(TARGET_WEIGHTS))
        pyro.sample("z", dist.MixtureSameFamily(mixing, dist.Normal(torch.tensor(TARGET_LOCS), TARGET_SCALE)))

    def make_guide(mixture_class):
        def guide():
            logits = pyro.param("logits", torch.tensor(INITIAL_LOGITS))
            locs = pyro.param("locs", torch.tensor(INITIAL_LOCS))
            scales = pyro.param("scales", torch.tensor(INITIAL_SCALES), constraint=dist.constraints.positive)
            mixing, components = dist.Categorical(logits=logits), dist.Normal(locs, scales)
            pyro.sample("z", mixture_class(mixing, components))  # <- the one line that changes

        return guide

    results = {}
    for label, mixture_class in (
        ("stock MixtureSameFamily", dist.MixtureSameFamily),
        ("ReparamMixtureSameFamily", pyro_gmm.ReparamMixtureSameFamily),
    ):
        guide = make_guide(mixture_class)
        pyro.set_rng_seed(args.seed)
        pyro.clear_param_store()
        # One-particle gradient estimates at the initial guide (the parameter store is reset
        # before each, so every estimate is taken at the same initial values).
        elbo = Trace_ELBO(num_particles=1)
        gradients = {"logits": [], "locs": []}
        for _ in range(args.gradient_draws):
            pyro.clear_param_store()
            loss = elbo.differentiable_loss(model, guide)
            leaves = [pyro.param(name).unconstrained() for name in gradients]
            for name, gradient in zip(gradients, torch.autograd.grad(loss, leaves)):
                gradients[name].append(gradient.detach().numpy().copy())
        gradients = {name: np.asarray(values, dtype=np.float64) for name, values in gradients.items()}

        runs = []
        for seed in range(args.seeds):
            pyro.clear_param_store()
            pyro.set_rng_seed(1000 + seed)
            elbo = Trace_ELBO(num_particles=args.particles, vectorize_particles=True, max_plate_nesting=0)
            svi = SVI(model, guide, pyro.optim.Adam({"lr": args.lr}), elbo)
            weights = [float(torch.softmax(torch.tensor(INITIAL_LOGITS), -1)[0])]
            for _ in range(args.steps):
                svi.step()
                weights.append(float(torch.softmax(pyro.param("logits").detach(), -1)[0]))
            params = {name: pyro.param(name).detach().double().numpy() for name in ("logits", "locs", "scales")}
            runs.append(
                dict(weights=np.asarray(weights), kl=kl_to_target(params["logits"], params["locs"], params["scales"]))
            )
        results[label] = dict(gradients=gradients, runs=runs)
    return results


# ----------------------------------------------------------------------------------------- report
def format_report(framework, results, exact):
    """Two small tables: one-particle gradient estimates at the initial guide, and the fit."""
    lines = [
        f"{framework}: one-particle estimates of d(-ELBO)/d theta at the initial guide "
        f"(exact, by quadrature: logits[0] {exact['logits'][0]:+.4f}, locs[0] {exact['locs'][0]:+.4f})",
        f"  {'guide class':<26} {'logits[0]: mean ± s.e.':>24} {'z vs exact':>10} {'sd':>7}"
        f" {'locs[0]: mean ± s.e.':>24} {'z vs exact':>10} {'sd':>7}",
    ]
    for label, result in results.items():
        cells = []
        for name in ("logits", "locs"):
            draws = result["gradients"][name][:, 0]
            mean, sd = draws.mean(), draws.std(ddof=1)
            standard_error = sd / math.sqrt(draws.shape[0])
            z = (mean - exact[name][0]) / standard_error
            cells.append(f"{f'{mean:+.4f} ± {standard_error:.4f}':>24} {z:>10.1f} {sd:>7.3f}")
        lines.append(f"  {label:<26} " + " ".join(cells))
    num_runs = len(next(iter(results.values()))["runs"])
    lines.append(
        f"{framework}: fit ({num_runs} seeds): weight of component 0 (target 0.7) at steps along the run, "
        "mean ± sd over seeds; final KL(q || p)"
    )
    for label, result in results.items():
        weights = np.stack([run["weights"] for run in result["runs"]])
        picks = np.linspace(0, weights.shape[1] - 1, 5).round().astype(int)
        trajectory = "  ".join(
            f"{step:>4}: {weights[:, step].mean():.3f} ± {weights[:, step].std():.3f}" for step in picks
        )
        kl = np.mean([run["kl"] for run in result["runs"]])
        lines.append(f"  {label:<26} {trajectory}   KL {kl:.4f}")
    return "\n".join(lines)


def plot(all_results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(all_results), figsize=(5.2 * len(all_results), 3.6), squeeze=False)
    for ax, (framework, results) in zip(axes[0], all_results.items()):
        for (label, result), color in zip(results.items(), ("tab:red", "tab:green")):
            for index, run in enumerate(result["runs"]):
                ax.plot(
                    np.arange(run["weights"].shape[0]),
                    run["weights"],
                    color=color,
                    alpha=0.7,
                    linewidth=1,
                    label=label if index == 0 else None,
                )
        ax.axhline(TARGET_WEIGHTS[0], color="black", linestyle="--", linewidth=1, label="target weight 0.7")
        ax.set_title(f"{framework}: weight of component 0 during Trace_ELBO fitting\n(one line per seed)", fontsize=10)
        ax.set_xlabel("SVI step")
        ax.set_ylabel("weight of component 0")
        ax.set_ylim(0.0, 1.0)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps and gradient draws (smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps (default 1500; 150 with --quick)")
    parser.add_argument("--seeds", type=int, default=None, help="fits per guide class (default 4; 1 with --quick)")
    parser.add_argument("--particles", type=int, default=8, help="ELBO particles per SVI step")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    parser.add_argument(
        "--gradient-draws",
        type=int,
        default=None,
        help="one-particle gradient estimates at the initial guide (default 3000; 300 with --quick)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frameworks", default="numpyro,pyro")
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 150 if args.quick else 1500
    if args.seeds is None:
        args.seeds = 1 if args.quick else 4
    if args.gradient_draws is None:
        args.gradient_draws = 300 if args.quick else 3000

    exact = exact_gradients()
    runners = {"numpyro": ("NumPyro", run_numpyro), "pyro": ("Pyro", run_pyro)}
    all_results = {}
    for name in (n.strip() for n in args.frameworks.split(",") if n.strip()):
        framework, runner = runners[name]
        all_results[framework] = runner(args)
        print(format_report(framework, all_results[framework], exact))
        print()
    image = args.out / "swap_in.png"
    plot(all_results, image)
    print(f"wrote {image}")
    return all_results, exact


if __name__ == "__main__":
    main()
