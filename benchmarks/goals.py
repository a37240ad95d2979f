"""The speed and memory goals against the *stock* floor, with 1 and 2 threads, in one run.

The floor is the framework's own ``MixtureSameFamily(Categorical, Normal(...).to_event(1))``
``log_prob`` of N points + backward (Pyro, NumPyro), not ours.  For each goal shape and
thread count this measures, interleaved (``_timing.time_interleaved``, wall-clock medians):

* ``stock``: the stock floor;
* ``log_prob``: our ``DiagNormalMixture.log_prob`` + backward of the same points;
* one case per estimator of ``shared_math.ESTIMATORS``: our ``rsample`` (Pyro) / ``sample``
  (NumPyro) of N draws + backward of ``sum(x**2)`` to every parameter, float32.

and the peak memory of one step (torch: the allocator's peak during the step, profiler
events; JAX: XLA's planned buffers of the compiled step).  Thread settings need a fresh
process (XLA reads its flags at start-up), so :func:`main` runs one subprocess per thread
count and collects their JSON.  ``--large`` adds the large-N memory case.

Usage::

    python benchmarks/goals.py [--rounds 11] [--threads 1 2] [--large] [--json out.json] [--write docs/benchmarks.md]

``--write`` writes the page ``docs/benchmarks.md`` (``make bench`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (N, K, D) of the issue's goals: the three shapes of earlier goals, a medium N at D = 128,
#: and a wide latent with few samples.
GOAL_SHAPES = [(4096, 8, 16), (4096, 64, 16), (4096, 8, 128), (1024, 8, 128), (16, 8, 1000)]
LARGE_SHAPE = (200_000, 16, 64)
MAX_STEP_RATIO = 3.0
#: The case of the default estimator with the logits held fixed (no ``logits`` gradient asked for).
FIXED_WEIGHTS = "fixed weights"
MAX_LOG_PROB_RATIO = 1.25
MIN_THREAD_SCALING_SHARE = 0.8
MAX_MEMORY_RATIO = 2.0
MAX_LARGE_MEMORY_RATIO = 1.5


def _configure(threads):
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if threads == 1:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()
    import torch

    torch.set_num_threads(threads)


def _parameters(num_components, event_size, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    locs = rng.standard_normal((num_components, event_size)).astype(np.float32)
    scales = rng.uniform(0.5, 1.5, (num_components, event_size)).astype(np.float32)
    logits = rng.standard_normal(num_components).astype(np.float32)
    return locs, scales, logits


def torch_cases(shape, estimators):
    import pyro.distributions as dist
    import torch

    import pyro_gmm

    num_samples, num_components, event_size = shape
    params = [torch.tensor(a, requires_grad=True) for a in _parameters(num_components, event_size)]
    locs, scales, logits = params
    with torch.no_grad():
        points = pyro_gmm.DiagNormalMixture(locs, scales, logits).sample((num_samples,))

    def stock():
        mixture = dist.MixtureSameFamily(
            dist.Categorical(logits=logits, validate_args=False),
            dist.Normal(locs, scales, validate_args=False).to_event(1),
            validate_args=False,
        )
        return torch.autograd.grad(mixture.log_prob(points).sum(), params)

    def log_prob():
        mixture = pyro_gmm.DiagNormalMixture(locs, scales, logits, validate_args=False)
        return torch.autograd.grad(mixture.log_prob(points).sum(), params)

    def step(estimator):
        def run():
            x = pyro_gmm.DiagNormalMixture(locs, scales, logits, estimator=estimator, validate_args=False).rsample(
                (num_samples,)
            )
            return torch.autograd.grad((x * x).sum(), params)

        return run

    def fixed_weights():  # the default estimator with logits that need no gradient
        x = pyro_gmm.DiagNormalMixture(locs, scales, logits.detach(), validate_args=False).rsample((num_samples,))
        return torch.autograd.grad((x * x).sum(), (locs, scales))

    cases = {"stock": stock, "log_prob": log_prob, **{name: step(name) for name in estimators}}
    cases[FIXED_WEIGHTS] = fixed_weights
    inputs = {"stock": points.numel() * 4, "log_prob": points.numel() * 4}
    return cases, inputs


def jax_cases(shape, estimators):
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as dist
    from _timing import compile_jax

    import numpyro_gmm

    num_samples, num_components, event_size = shape
    params = tuple(jnp.asarray(a) for a in _parameters(num_components, event_size))
    points = numpyro_gmm.DiagNormalMixture(*params).sample(jax.random.PRNGKey(1), (num_samples,))
    key = jax.random.PRNGKey(0)

    def stock(params, points):
        locs, scales, logits = params
        mixture = dist.MixtureSameFamily(dist.CategoricalLogits(logits), dist.Normal(locs, scales).to_event(1))
        return mixture.log_prob(points).sum()

    def log_prob(params, points):
        return numpyro_gmm.DiagNormalMixture(*params).log_prob(points).sum()

    def step(estimator):
        def loss(params, key):
            x = numpyro_gmm.DiagNormalMixture(*params, estimator=estimator).sample(key, (num_samples,))
            return jnp.sum(x * x)

        return loss

    def fixed_weights(locs_scales, key):  # the default estimator, gradient for locs and scales only
        x = numpyro_gmm.DiagNormalMixture(*locs_scales, params[2]).sample(key, (num_samples,))
        return jnp.sum(x * x)

    losses = {"stock": (stock, points), "log_prob": (log_prob, points)}
    losses.update({name: (step(name), key) for name in estimators})
    compiled = {name: compile_jax(jax.grad(loss), params, second) for name, (loss, second) in losses.items()}
    compiled[FIXED_WEIGHTS] = compile_jax(jax.grad(fixed_weights), params[:2], key)
    return compiled


def measure(shapes, rounds, threads, large):
    """``{shape: {"torch"|"jax": {"time": {case: s}, "memory": {case: bytes}}}}`` in this process."""
    from _timing import time_interleaved, torch_peak_allocated_bytes

    import shared_math

    estimators = tuple(shared_math.ESTIMATORS)
    results = {}
    for shape in shapes:
        started = time.perf_counter()
        cases, inputs = torch_cases(shape, estimators)
        timings = time_interleaved(cases, rounds=rounds, warmup=2, budget_s=90.0)
        torch_memory = {name: torch_peak_allocated_bytes(fn) + inputs.get(name, 0) for name, fn in cases.items()}
        compiled = jax_cases(shape, estimators)
        jax_timings = time_interleaved({n: c.call for n, c in compiled.items()}, rounds=rounds, warmup=2, budget_s=90.0)
        results[str(shape)] = {
            "torch": {"time": {n: t.wall_median for n, t in timings.items()}, "memory": torch_memory},
            "jax": {
                "time": {n: t.wall_median for n, t in jax_timings.items()},
                "memory": {n: c.total_bytes for n, c in compiled.items()},
                "compile": {n: c.compile_s for n, c in compiled.items()},
            },
        }
        print(f"# {threads} thread(s), {shape}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    if large:
        results["large"] = measure_large(estimators)
    return results


def measure_large(estimators):
    """Peak memory (and one timed step) at :data:`LARGE_SHAPE`, default estimator against the stock floor."""
    from _timing import time_interleaved, torch_peak_allocated_bytes

    import shared_math

    default = shared_math.AUTO_ESTIMATOR
    cases, inputs = torch_cases(LARGE_SHAPE, (default,))
    cases = {"stock": cases["stock"], default: cases[default]}
    timings = time_interleaved(cases, rounds=3, warmup=1)
    memory = {name: torch_peak_allocated_bytes(fn) + inputs.get(name, 0) for name, fn in cases.items()}
    compiled = jax_cases(LARGE_SHAPE, (default,))
    compiled = {"stock": compiled["stock"], default: compiled[default]}
    jax_timings = time_interleaved({n: c.call for n, c in compiled.items()}, rounds=3, warmup=1)
    return {
        "torch": {"time": {n: t.wall_median for n, t in timings.items()}, "memory": memory},
        "jax": {
            "time": {n: t.wall_median for n, t in jax_timings.items()},
            "memory": {n: c.total_bytes for n, c in compiled.items()},
        },
    }


def report(runs, estimators, default):
    """Markdown tables and the goal checks from ``{threads: results}``."""
    from _timing import format_bytes

    nan = float("nan")
    lines, checks = [], []
    threads = sorted(runs)
    top = max(threads)
    adapters = (("torch", "Pyro"), ("jax", "NumPyro"))
    lines.append(f"### Time per step ÷ stock floor ({top} threads, wall clock)")
    lines.append("")
    header = (
        "| shape | adapter | stock floor | our log_prob | "
        + " | ".join(estimators)
        + f" | {default}, {FIXED_WEIGHTS} |"
    )
    lines.append(header)
    lines.append("|---" * (header.count("|") - 1) + "|")
    for key in [str(s) for s in GOAL_SHAPES]:
        for framework, adapter in adapters:
            t = runs[top][key][framework]["time"]
            floor = t["stock"]
            cells = [f"{1e3 * floor:.2f} ms", f"{t['log_prob'] / floor:.2f}×"]
            cells += [f"{t[e] / floor:.2f}× ({1e3 * t[e]:.1f} ms)" for e in estimators + (FIXED_WEIGHTS,)]
            lines.append(f"| {key} | {adapter} | " + " | ".join(cells) + " |")
            checks.append(
                (f"{adapter} rsample+backward ({default}) ÷ stock floor", key, t[default] / floor, MAX_STEP_RATIO, "≤")
            )
            checks.append(
                (f"{adapter} log_prob+backward ÷ stock floor", key, t["log_prob"] / floor, MAX_LOG_PROB_RATIO, "≤")
            )
    lines.append("")
    if 1 in runs and top > 1:
        lines.append(f"### Thread scaling: speed-up from 1 to {top} threads (wall clock)")
        lines.append("")
        lines.append(f"| shape | adapter | stock floor | our {default} step | share of the floor's speed-up |")
        lines.append("|---|---|---|---|---|")
        for key in [str(s) for s in GOAL_SHAPES]:
            for framework, adapter in adapters:
                one, many = runs[1][key][framework]["time"], runs[top][key][framework]["time"]
                floor_speedup = one["stock"] / many["stock"]
                ours_speedup = one[default] / many[default]
                share = (ours_speedup - 1) / (floor_speedup - 1) if floor_speedup > 1.02 else nan
                share = ours_speedup / floor_speedup if share != share else share
                lines.append(
                    f"| {key} | {adapter} | {floor_speedup:.2f}× | {ours_speedup:.2f}× | "
                    f"{ours_speedup / floor_speedup:.0%} of the speed-up factor |"
                )
                checks.append(
                    (
                        f"{adapter} thread scaling ({default}) ÷ floor's",
                        key,
                        ours_speedup / floor_speedup,
                        MIN_THREAD_SCALING_SHARE,
                        "≥",
                    )
                )
        lines.append("")
    lines.append(f"### Peak memory of one step ÷ stock floor ({top} threads)")
    lines.append("")
    lines.append("| shape | adapter | stock floor | " + " | ".join(estimators) + " |")
    lines.append("|---" * (len(estimators) + 3) + "|")
    for key in [str(s) for s in GOAL_SHAPES]:
        for framework, adapter in adapters:
            m = runs[top][key][framework]["memory"]
            cells = [format_bytes(m["stock"])] + [f"{m[e] / m['stock']:.2f}×" for e in estimators]
            lines.append(f"| {key} | {adapter} | " + " | ".join(cells) + " |")
            checks.append(
                (
                    f"{adapter} peak memory ({default}) ÷ stock floor",
                    key,
                    m[default] / m["stock"],
                    MAX_MEMORY_RATIO,
                    "≤",
                )
            )
    lines.append("")
    if "large" in runs[top]:
        large = runs[top]["large"]
        lines.append(f"### Large N: {LARGE_SHAPE} ({top} threads)")
        lines.append("")
        lines.append("| adapter | stock floor time | ours | stock floor peak | ours | memory ratio |")
        lines.append("|---|---|---|---|---|---|")
        for framework, adapter in adapters:
            t, m = large[framework]["time"], large[framework]["memory"]
            ratio = m[default] / m["stock"]
            lines.append(
                f"| {adapter} | {t['stock']:.2f} s | {t[default]:.2f} s ({t[default] / t['stock']:.1f}×) | "
                f"{format_bytes(m['stock'])} | {format_bytes(m[default])} | {ratio:.2f}× |"
            )
            checks.append(
                (
                    f"{adapter} peak memory at large N ÷ stock floor",
                    str(LARGE_SHAPE),
                    ratio,
                    MAX_LARGE_MEMORY_RATIO,
                    "≤",
                )
            )
        lines.append("")
    lines.append("### Goal checks")
    lines.append("")
    lines.append("| goal | shape | measured | target | met |")
    lines.append("|---|---|---|---|---|")
    met = 0
    for goal, shape, value, target, sense in checks:
        ok = value <= target if sense == "≤" else value >= target
        met += ok
        lines.append(f"| {goal} | {shape} | {value:.2f} | {sense} {target:g} | {'yes' if ok else '**no**'} |")
    lines.append("")
    lines.append(f"{met} of {len(checks)} goal checks met in this run.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--large", action="store_true", help="add the large-N memory case")
    parser.add_argument("--json", type=Path, default=None, help="write the raw results here")
    parser.add_argument("--write", type=Path, default=None, help="write the markdown page here (docs/benchmarks.md)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--shapes", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    if args.child is not None:
        _configure(args.child)
        shapes = [tuple(s) for s in json.loads(args.shapes)] if args.shapes else GOAL_SHAPES
        print(json.dumps(measure(shapes, args.rounds, args.child, args.large)))
        return 0
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    runs = {}
    for threads in args.threads:
        command = [sys.executable, str(Path(__file__)), "--child", str(threads), "--rounds", str(args.rounds)]
        if args.large and threads == max(args.threads):
            command.append("--large")
        output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        sys.stderr.write(output.stderr)
        runs[threads] = json.loads(output.stdout.strip().splitlines()[-1])
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    import shared_math

    text = report(runs, tuple(shared_math.ESTIMATORS), shared_math.AUTO_ESTIMATOR)
    print(text)
    if args.write:
        environment = _environment_lines(args, load_before, os.getloadavg()[0], time.perf_counter() - started)
        args.write.write_text(_page(text, environment))
    return 0


def _environment_lines(args, load_before, load_after, elapsed):
    """The machine, versions, load and run time, as markdown list items."""
    import platform

    import jax
    import numpy
    import numpyro
    import pyro
    import torch
    from _timing import cpu_name

    cpu = cpu_name()
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores; no GPU. Threads: {', '.join(map(str, args.threads))} "
        "(one subprocess per setting: torch.set_num_threads, XLA's intra-op flags).",
        f"- Versions: Python {platform.python_version()}, torch {torch.__version__}, pyro-ppl {pyro.__version__}, "
        f"jax {jax.__version__}, numpyro {numpyro.__version__}, numpy {numpy.__version__}.",
        f"- Load average (1 min) before / after: {load_before:.2f} / {load_after:.2f}; "
        f"{args.rounds} interleaved rounds per case (wall-clock medians); total run time {elapsed:.0f} s.",
    ]


def _page(report_text, environment):
    """``docs/benchmarks.md``: what is measured, the environment, then :func:`report`'s tables."""
    intro = f"""# Benchmarks

Generated by `benchmarks/goals.py --large --write docs/benchmarks.md` (`make bench`); do not edit by hand.

One *step* draws N samples (`rsample` in Pyro, `sample` in NumPyro) and backpropagates
`sum(x**2)` to `locs`, `scales` and `logits`, in float32, with `locs ~ N(0,1)`,
`scales ~ U(0.5,1.5)` and `logits ~ N(0,1)`. The **stock floor** is the framework's own
`MixtureSameFamily(Categorical(logits), Independent(Normal(locs, scales), 1))`: its
`log_prob` of N fixed points, plus backward. That is the cheapest thing a user of the stock
class can do with a mixture, and it gives no sample gradient. The column *our log_prob* is
our `DiagNormalMixture.log_prob` + backward of the same points, divided by the same floor
(the "own floor" of earlier reports). The column *fixed weights* is the default estimator's
step with the logits held fixed (no gradient asked for them): its sweep over the dimensions
serves only the logits gradient, so it is skipped. Torch runs eagerly. JAX steps are `jit(grad(...))`,
compiled ahead of time. Peak memory is the torch allocator's peak during one step
(profiler events) or the buffers XLA plans for the compiled step. Every figure comes from
one run, with the cases interleaved round by round.

{chr(10).join(environment)}

Comparisons with Pyro's `MixtureOfDiagNormals` and TFP's reparameterized
`MixtureSameFamily`, the N/K/D scaling curves and the per-kernel profile are in
[benchmarks-anchors.md](benchmarks-anchors.md) (`benchmarks/run_all.py`, one thread, our
own floor). Other component families: [benchmarks-families.md](benchmarks-families.md)
(`benchmarks/families_speed.py`). Full covariances: `benchmarks/full_covariance_speed.py`, with
figures in [design.md](design.md) (§8, Cost).

"""
    return intro + "## Results\n\n" + report_text


if __name__ == "__main__":
    sys.exit(main())
