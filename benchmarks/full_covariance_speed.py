r"""Speed of full-covariance mixture draws with gradients (project issue 12).

A *step* draws N samples and backpropagates :math:`\sum\cos x` to ``locs`` (K, D),
``scale_tril`` (K, D, D) and ``logits`` (K), float32, default threads.  Compared with:

* **floor**: the stock ``MixtureSameFamily(Categorical, MultivariateNormal(scale_tril=...))``
  ``log_prob`` of N fixed points + backward (torch / NumPyro), the cost of one evaluation of
  the density and its gradient;
* **brute force** (torch, one shape): the implicit gradient through a per-sample
  :math:`D\times D` Jacobian of the distributional transform (D backward passes of
  :func:`shared_math.full_covariance_distributional_transform`), a triangular solve with it,
  and one more backward pass for the parameters: :math:`O(NKD^3)`, what a generic
  implicit-reparameterization library does (TFP builds the Jacobian the same way).

Cases per framework: ``rao_blackwell`` (what ``"auto"`` picks) and ``implicit``.  Pyro steps run
eagerly; NumPyro steps are ``jax.jit(jax.grad(...))`` compiled ahead of time.  Timing: cases
compared with each other are interleaved round by round (``_timing.time_interleaved``); the
medians of CPU time (all threads) and wall time are printed, with ratios to the floor.

Then a sweep over D (N = 1024, K = 8, both adapters, one thread pinned to one core, each
framework in its own process: on a shared machine the CPU time of one pinned thread is far
less disturbed than a multi-threaded run) for the scaling plot
``docs/full_covariance_scaling.png``: time per step against D on log-log axes, with the
fitted exponent over D = 32..128 (2 for quadratic, 3 for cubic).

Run ``python benchmarks/full_covariance_speed.py`` (goal shapes, default threads; a few minutes),
``--threads 1`` (the same with one thread), ``--sweep`` (the D sweep and the plot), ``--quick``
(a smoke run).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(BENCH_DIR), str(REPO_ROOT)]

import numpy as np
from _timing import compile_jax, format_seconds, time_interleaved

SHAPES = ((4096, 8, 16), (1024, 8, 64))
SWEEP_SIZES = (4, 8, 16, 32, 64, 128)
SWEEP_SHAPE = (1024, 8)
BRUTE_FORCE_SHAPE = (1024, 8, 64)
BRUTE_FORCE_MAX_D = 64
ESTIMATORS = ("rao_blackwell", "implicit")


def numpy_parameters(num_components, event_size, seed=0):
    """float32 ``(locs, scale_tril, logits)``: unit-scale correlated factors."""
    rng = np.random.default_rng(seed)
    locs = rng.standard_normal((num_components, event_size))
    strict = np.tril(rng.standard_normal((num_components, event_size, event_size)), -1) / math.sqrt(event_size)
    diagonal = np.exp(0.2 * rng.standard_normal((num_components, event_size)))
    scale_tril = strict + diagonal[..., None] * np.eye(event_size)
    logits = rng.standard_normal(num_components)
    return tuple(a.astype(np.float32) for a in (locs, scale_tril, logits))


# ----------------------------------------------------------------------------- torch


def torch_steps(num_samples, num_components, event_size, *, brute_force=False):
    import torch

    import pyro_gmm
    import shared_math

    params = [torch.tensor(a, requires_grad=True) for a in numpy_parameters(num_components, event_size)]
    locs, scale_tril, logits = params
    with torch.no_grad():
        points = pyro_gmm.MultivariateNormalMixture(locs, scale_tril, logits).sample((num_samples,))

    def floor():
        mixture = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(logits=logits, validate_args=False),
            torch.distributions.MultivariateNormal(locs, scale_tril=scale_tril, validate_args=False),
            validate_args=False,
        )
        return torch.autograd.grad(mixture.log_prob(points).sum(), params)

    def ours(estimator):
        def step():
            x = pyro_gmm.MultivariateNormalMixture(locs, scale_tril, logits, estimator=estimator).rsample(
                (num_samples,)
            )
            return torch.autograd.grad(torch.cos(x).sum(), params)

        return step

    steps = {"floor": floor, **{estimator: ours(estimator) for estimator in ESTIMATORS}}
    if brute_force:

        def brute():
            with torch.no_grad():
                x = pyro_gmm.MultivariateNormalMixture(locs, scale_tril, logits).sample((num_samples,))
            x = x.requires_grad_(True)
            transform = shared_math.full_covariance_distributional_transform(x, locs, scale_tril, logits)
            rows = [
                torch.autograd.grad(transform[:, d].sum(), x, retain_graph=True)[0] for d in range(event_size)
            ]  # per-sample rows of J = dT/dx (each sample's T depends on its own x only)
            jacobian = torch.stack(rows, 1)  # (N, D, D), lower triangular
            cotangent = -torch.sin(x.detach())
            v = torch.linalg.solve_triangular(jacobian.mT, cotangent[..., None], upper=True)[..., 0]
            return torch.autograd.grad(transform, params, -v)

        steps["brute_force"] = brute
    return steps


# ----------------------------------------------------------------------------- JAX


def jax_steps(num_samples, num_components, event_size):
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as dist

    import numpyro_gmm

    params = tuple(jnp.asarray(a) for a in numpy_parameters(num_components, event_size))
    key = jax.random.PRNGKey(0)
    points = numpyro_gmm.MultivariateNormalMixture(*params).sample(key, (num_samples,))

    def floor_loss(locs, scale_tril, logits, points):
        mixture = dist.MixtureSameFamily(
            dist.Categorical(logits=logits), dist.MultivariateNormal(locs, scale_tril=scale_tril)
        )
        return mixture.log_prob(points).sum()

    steps = {"floor": compile_jax(jax.grad(floor_loss, argnums=(0, 1, 2)), *params, points)}
    for estimator in ESTIMATORS:

        def loss(locs, scale_tril, logits, key, estimator=estimator):
            x = numpyro_gmm.MultivariateNormalMixture(locs, scale_tril, logits, estimator=estimator).sample(
                key, (num_samples,)
            )
            return jnp.cos(x).sum()

        steps[estimator] = compile_jax(jax.grad(loss, argnums=(0, 1, 2)), *params, key)
    return steps


# ----------------------------------------------------------------------------- runs


def timed(steps, rounds, budget_s):
    calls = {name: (step.call if hasattr(step, "call") else step) for name, step in steps.items()}
    return time_interleaved(calls, rounds=rounds, warmup=1, budget_s=budget_s)


def report(framework, shape, timings, compile_times=None):
    floor = timings["floor"]
    lines = []
    for name, timing in timings.items():
        ratio = timing.median / floor.median
        wall_ratio = timing.wall_median / floor.wall_median
        extra = f", compile {compile_times[name]:.1f} s" if compile_times else ""
        lines.append(
            f"  {framework:<8} N={shape[0]:<5} K={shape[1]} D={shape[2]:<4} {name:<14} "
            f"CPU {format_seconds(timing.median):>9} ({ratio:5.2f}x floor)  wall {format_seconds(timing.wall_median):>9} "
            f"({wall_ratio:5.2f}x){extra}"
        )
    return "\n".join(lines)


def sweep_part(framework, sizes, rounds, budget_s):
    """``{case: [CPU seconds per D]}`` of one framework at N = 1024, K = 8."""
    results = {}
    num_samples, num_components = SWEEP_SHAPE
    for size in sizes:
        if framework == "Pyro":  # the brute-force Jacobian as well, up to D = 64 (cubic: ~1 min per step at 128)
            steps = torch_steps(num_samples, num_components, size, brute_force=size <= BRUTE_FORCE_MAX_D)
        else:
            steps = jax_steps(num_samples, num_components, size)
        timings = timed(steps, rounds, budget_s)
        for name, timing in timings.items():
            results.setdefault(name, []).append(timing.median)
        print(
            f"  {framework} D={size:<4} " + "  ".join(f"{n} {format_seconds(t.median)}" for n, t in timings.items()),
            file=sys.stderr,
            flush=True,
        )
    return results


def sweep(sizes, rounds, budget_s):
    """``{framework: {case: [CPU seconds per D]}}``, each framework in its own process (torch
    and XLA runtimes interleaved in one process hung twice at D = 128 here)."""
    import json
    import subprocess

    results = {}
    for framework in ("Pyro", "NumPyro"):
        command = [
            sys.executable,
            __file__,
            "--sweep-part",
            framework,
            "--rounds",
            str(rounds),
            "--budget",
            str(budget_s),
        ]
        completed = subprocess.run(command, check=True, capture_output=True, text=True)
        sys.stdout.write(completed.stderr)
        results[framework] = json.loads(completed.stdout.strip().splitlines()[-1])
    return results


def fitted_exponent(sizes, seconds, smallest=32):
    chosen = [(math.log(d), math.log(t)) for d, t in zip(sizes, seconds) if d >= smallest]
    if len(chosen) < 2:
        return float("nan")
    xs, ys = zip(*chosen)
    return float(np.polyfit(xs, ys, 1)[0])


def plot(sizes, results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (framework, cases) in zip(axes, results.items()):
        for name, seconds in cases.items():
            measured = sizes[: len(seconds)]
            exponent = fitted_exponent(measured, seconds)
            ax.loglog(measured, seconds, marker="o", label=f"{name} (slope {exponent:.2f} for D ≥ 32)")
        reference = np.array(sizes, dtype=float)
        anchor = cases["floor"][-1]
        ax.loglog(sizes, anchor * (reference / sizes[-1]) ** 2, color="0.6", linestyle=":", label="∝ D²")
        ax.loglog(sizes, anchor * (reference / sizes[-1]) ** 3, color="0.3", linestyle="--", label="∝ D³")
        ax.set_title(f"{framework}: N = {SWEEP_SHAPE[0]}, K = {SWEEP_SHAPE[1]}, float32, 1 thread", fontsize=9)
        ax.set_xlabel("D")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("seconds (draw + backward; floor: log_prob + backward)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, few rounds, no plot")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of timing per shape and framework")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads for torch (default: its default); 1 also pins the process to one core with XLA "
        "single-threaded; the D sweep always runs that way",
    )
    parser.add_argument("--sweep", action="store_true", help="the D sweep and its plot instead of the goal shapes")
    parser.add_argument("--sweep-part", choices=("Pyro", "NumPyro"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads == 1 or args.sweep_part:
        # One thread on one core.  XLA reads its flags once, when JAX starts.  Without pinning,
        # on a loaded machine XLA's CPU runtime spent ~170 ms of CPU per call whatever the step
        # (waiting for a worker thread that another process kept off the cores), against
        # 0.5 ms pinned; threads created later inherit the main thread's core.
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        )
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    import jax
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    if args.sweep or args.sweep_part:
        torch.set_num_threads(1)
    if args.sweep_part:
        import json

        print(json.dumps(sweep_part(args.sweep_part, SWEEP_SIZES, args.rounds, args.budget)))
        return
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), jax {jax.__version__}; load {os.getloadavg()}"
    )
    shapes = ((256, 4, 8),) if args.quick else SHAPES
    rounds = 3 if args.quick else args.rounds
    if args.sweep:
        print(f"D sweep (N = {SWEEP_SHAPE[0]}, K = {SWEEP_SHAPE[1]}; one thread in torch and XLA):")
        results = sweep(SWEEP_SIZES, rounds, args.budget / 2)
        for framework, cases in results.items():
            print(
                "  "
                + framework
                + ": fitted exponent for D >= 32: "
                + ", ".join(
                    f"{name} {fitted_exponent(SWEEP_SIZES[: len(seconds)], seconds):.2f}"
                    for name, seconds in cases.items()
                )
            )
        image = REPO_ROOT / "docs" / "full_covariance_scaling.png"
        plot(SWEEP_SIZES, results, image)
        print(f"wrote {image}; load {os.getloadavg()}")
        return
    print("Goal shapes (rao_blackwell = the default):")
    for shape in shapes:
        brute = (not args.quick) and shape == BRUTE_FORCE_SHAPE
        timings = timed(torch_steps(*shape, brute_force=brute), rounds, args.budget)
        print(report("Pyro", shape, timings), flush=True)
        steps = jax_steps(*shape)
        timings = timed(steps, rounds, args.budget)
        print(report("NumPyro", shape, timings, {n: s.compile_s for n, s in steps.items()}), flush=True)
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
