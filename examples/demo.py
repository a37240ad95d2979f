r"""Main job (``make demo``): fit a four-mode posterior with Gaussian and mixture guides,
in Pyro and in NumPyro, and compare them with the exact answer.

Model (see :mod:`_bimodal`): :math:`z_d \sim N(0.5, 1)`, :math:`y_d \sim N(z_d^2, 0.5^2)`
for :math:`d = 1, 2`, observed :math:`y = (1, 1.2)`.  Each coordinate's posterior is
bimodal near :math:`\pm\sqrt{y_d}` with unequal mode weights; the joint posterior has four
modes.  The exact evidence :math:`\log p(y)` comes from 1-D quadrature per coordinate.

For each framework three guides are fitted with ``Trace_ELBO`` and Adam (same steps,
particles and learning rate): ``AutoDiagonalNormal``, a hand-written guide with
``DiagNormalMixture`` (K = 4) and ``AutoDiagonalNormalMixture`` (K = 4).  The table gives
:math:`\mathrm{KL}(q\,\|\,p(z\mid y)) = \log p(y) - \mathrm{ELBO}`, with the ELBO estimated
from many draws of :math:`q` (± its standard error), the fitting wall time (NumPyro's
includes compilation), and the mass :math:`q(z_d>0)` each guide gives the heavier modes,
next to the exact value.  The plot (``out/demo_posterior.png``) shows the exact posterior
marginals against the guides' marginals and, per framework, the exact joint density with
the guides' component locations.

Part two (skipped with ``--no-correlated``) runs :mod:`correlated_modes`: a posterior with two
correlated modes, fitted with ``AutoMultivariateNormal``, ``AutoDiagonalNormalMixture`` and
``AutoMultivariateNormalMixture`` (full covariances), with the same steps, particles and draws
(``out/correlated_modes.png``).

Run: ``.venv/bin/python examples/demo.py`` (``--quick`` for a seconds-long smoke run).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The examples folder (helper modules) and the repository root (the packages, also when
# they are not installed) come first on the import path.
EXAMPLES_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(EXAMPLES_DIR), str(EXAMPLES_DIR.parent)]

import matplotlib

matplotlib.use("Agg")
import _bimodal
import matplotlib.pyplot as plt
import numpy as np

GUIDE_STYLES = {
    "AutoDiagonalNormal": dict(color="tab:blue", linestyle="-", marker="s"),
    "DiagNormalMixture (hand-written)": dict(color="tab:orange", linestyle="-", marker="o"),
    "AutoDiagonalNormalMixture": dict(color="tab:green", linestyle="--", marker="^"),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps and draws (smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps per guide (default 2000; 60 with --quick)")
    parser.add_argument("--particles", type=int, default=16, help="ELBO particles per step")
    parser.add_argument("--lr", type=float, default=0.03, help="initial Adam learning rate (decays to a tenth)")
    parser.add_argument("--eval-draws", type=int, default=None, help="draws for the final ELBO (default 200000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder for the PNG")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--frameworks", default="pyro,numpyro", help="comma-separated subset of pyro,numpyro")
    parser.add_argument(
        "--no-correlated", action="store_true", help="skip part two (correlated modes, full-covariance guides)"
    )
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 60 if args.quick else 2000
    if args.eval_draws is None:
        args.eval_draws = 4000 if args.quick else 200_000
    return args


def format_table(results):
    """The results table as text (one line per fitted guide, after the exact reference)."""
    exact_weights = [_bimodal.positive_mode_probability(d) for d in range(_bimodal.NUM_COORDINATES)]
    header = (
        f"{'framework':<8} {'guide':<33} {'K':>2} {'steps':>6} {'time [s]':>9} "
        f"{'KL = log p(y) - ELBO [nats]':>28} " + " ".join(f"{f'q(z{d + 1}>0)':>8}" for d in range(len(exact_weights)))
    )
    lines = [
        f"exact log p(y) = {_bimodal.log_evidence():.4f} (quadrature); "
        + ", ".join(f"p(z{d + 1}>0 | y) = {w:.3f}" for d, w in enumerate(exact_weights)),
        header,
        "-" * len(header),
    ]
    for r in results:
        weights = " ".join(f"{r.positive_mode_probability(d):>8.3f}" for d in range(len(exact_weights)))
        kl = f"{r.kl:.4f} ± {r.kl_standard_error:.4f}"
        lines.append(
            f"{r.framework:<8} {r.name:<33} {r.num_components:>2} {r.steps:>6} {r.seconds:>9.1f} {kl:>28} {weights}"
        )
    return "\n".join(lines)


def plot(results, path):
    """Exact posterior marginals vs the guides' marginals, and the exact joint with the
    guides' component locations (marker area proportional to weight), one row per framework."""
    frameworks = list(dict.fromkeys(r.framework for r in results))
    num_coordinates = _bimodal.NUM_COORDINATES
    figure, axes = plt.subplots(
        len(frameworks),
        num_coordinates + 1,
        figsize=(4.2 * (num_coordinates + 1), 3.6 * len(frameworks)),
        squeeze=False,
    )
    points = np.linspace(-2.5, 2.5, 801)
    for row, framework in enumerate(frameworks):
        fitted = [r for r in results if r.framework == framework]
        for coordinate in range(num_coordinates):
            ax = axes[row, coordinate]
            exact = _bimodal.posterior_marginal_density(points, coordinate)
            ax.fill_between(points, exact, color="0.85", label="exact posterior")
            ax.plot(points, exact, color="black", linewidth=1.2)
            for r in fitted:
                style = GUIDE_STYLES.get(r.name, {})
                ax.plot(
                    points,
                    r.marginal_density(points, coordinate),
                    color=style.get("color"),
                    linestyle=style.get("linestyle", "-"),
                    linewidth=1.6,
                    label=f"{r.name} (KL {r.kl:.3f})",
                )
            ax.set_title(
                f"{framework}: marginal of z{coordinate + 1} (y{coordinate + 1} = {_bimodal.OBSERVED[coordinate]:g})"
            )
            ax.set_xlabel(f"z{coordinate + 1}")
            ax.set_ylabel("density")
            if coordinate == 0:
                ax.legend(fontsize=7, loc="upper left")
        ax = axes[row, num_coordinates]
        grid = np.linspace(-2.2, 2.2, 221)
        joint = np.outer(_bimodal.posterior_marginal_density(grid, 1), _bimodal.posterior_marginal_density(grid, 0))
        ax.contourf(grid, grid, joint, levels=12, cmap="Greys")
        for r in fitted:
            style = GUIDE_STYLES.get(r.name, {})
            ax.scatter(
                r.locs[:, 0],
                r.locs[:, 1],
                s=400 * r.weights,
                color=style.get("color"),
                marker=style.get("marker", "o"),
                edgecolor="white",
                linewidth=0.6,
                alpha=0.9,
                label=r.name,
            )
        ax.set_title(f"{framework}: exact joint, guide component means\n(marker area ∝ weight)", fontsize=9)
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        ax.set_aspect("equal")
    figure.suptitle("Posterior of z_d ~ N(0.5, 1), y_d ~ N(z_d², 0.5²): exact vs fitted guides", fontsize=11)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    args = parse_args(argv)
    frameworks = [name.strip() for name in args.frameworks.split(",") if name.strip()]
    settings = dict(
        steps=args.steps,
        num_particles=args.particles,
        learning_rate=args.lr,
        num_eval_draws=args.eval_draws,
        seed=args.seed,
        progress_bar=not args.no_progress,
    )
    start = time.perf_counter()
    results = []
    for framework in frameworks:
        if framework == "pyro":
            import _demo_pyro

            results += _demo_pyro.fit_all(**settings)
        elif framework == "numpyro":
            import _demo_numpyro

            results += _demo_numpyro.fit_all(**settings)
        else:
            raise SystemExit(f"unknown framework {framework!r}; use pyro and/or numpyro")
    table = format_table(results)
    print()
    print(table)
    image = args.out / "demo_posterior.png"
    plot(results, image)
    print(f"\nwrote {image} (total {time.perf_counter() - start:.0f} s)")
    if not args.no_correlated:
        import correlated_modes

        print("\nPart two: two correlated modes (examples/correlated_modes.py)\n")
        correlated_modes.main(
            [
                f"--steps={args.steps}",
                f"--particles={args.particles}",
                f"--lr={args.lr}",
                f"--eval-draws={args.eval_draws}",
                f"--seed={args.seed}",
                f"--frameworks={args.frameworks}",
                f"--out={args.out}",
            ]
        )
    return results


if __name__ == "__main__":
    main()
