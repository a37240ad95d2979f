"""Run every speed and memory benchmark in one process; write ``docs/benchmarks-anchors.md`` and
``docs/scaling.png`` and print the Markdown.

Usage (``make bench`` runs the first line)::

    python benchmarks/run_all.py
    python benchmarks/run_all.py --quick          # fewer rounds, smaller scaling sweep
    python benchmarks/run_all.py --threads 2      # let torch and XLA use 2 threads

The goals (project issue 5) are checked on the figures of this run; see ``speed.py`` for
what each case runs and ``_timing.py`` for how time and memory are measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from cases import ESTIMATORS, JAX_CASES, TORCH_CASES

GOAL_SHAPES = [(4096, 8, 16), (4096, 64, 16), (4096, 8, 128)]
TFP_SHAPE = (1024, 8, 128)  # TFP's O(N·D²) Jacobian does not fit at N = 4096, D = 128
MAX_RATIO_TO_FLOOR = 3.0
MIN_SPEEDUP_OVER_PYRO_AT_K64 = 10.0
MIN_SPEEDUP_OVER_TFP_AT_D128 = 50.0
MAX_MEMORY_RATIO = 2.0

SCALING = {
    "N": {"fixed": {"K": 8, "D": 16}, "values": [256, 1024, 4096, 16384], "extra": ()},
    "K": {"fixed": {"N": 1024, "D": 16}, "values": [2, 8, 32, 128], "extra": ("pyro_mdn",)},
    "D": {"fixed": {"N": 1024, "K": 8}, "values": [4, 16, 64, 256], "extra": ("tfp",)},
}
SCALING_QUICK_VALUES = {"N": [256, 1024, 4096], "K": [2, 8, 32], "D": [4, 16, 64]}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per case (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for torch and XLA")
    parser.add_argument("--quick", action="store_true", help="3 rounds and a shorter scaling sweep")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling sweep and plot")
    parser.add_argument("--memory-limit-gb", type=float, default=4.0, help="skip JAX steps planned above this")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "docs")
    return parser.parse_args()


def configure_threads(threads):
    """Pin torch and XLA to ``threads`` intra-op threads (before JAX is imported)."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1:
        flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["XLA_FLAGS"] = flags.strip()
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    import torch

    torch.set_num_threads(threads)


# ------------------------------------------------------------------------ measuring


def measure_shape(shape, *, rounds, memory_limit_bytes, torch_cases, jax_cases, budget_s=None):
    """Times (interleaved), peak memory and compile times of the cases at one shape."""
    import speed
    from _timing import time_interleaved

    num_samples, num_components, event_size = shape
    torch_steps, torch_inputs = speed.torch_steps(num_samples, num_components, event_size, torch_cases)
    jax_compiled = speed.jax_steps(
        num_samples, num_components, event_size, jax_cases, memory_limit_bytes=memory_limit_bytes
    )
    cases = {f"torch/{name}": step for name, step in torch_steps.items()}
    cases.update({f"jax/{name}": c.call for name, c in jax_compiled.items() if c.call is not None})
    # Ours and the floors are interleaved tightly; the (slow, allocation-heavy) reference
    # libraries are timed in a group of their own after them, so that their large
    # allocations do not land page faults on the cheap cases that follow them in a round.
    references = {name: cases.pop(name) for name in ("torch/pyro_mdn", "jax/tfp") if name in cases}
    timings = time_interleaved(cases, rounds=rounds, budget_s=budget_s)
    if references:
        timings.update(time_interleaved(references, rounds=rounds, budget_s=budget_s))
    result = {
        "time": {name: t.median for name, t in timings.items()},
        "wall": {name: t.wall_median for name, t in timings.items()},
        "spread": {name: t.spread for name, t in timings.items()},
        "rounds": {name: len(t.samples) for name, t in timings.items()},
        "memory": {},
        "compile": {},
        "skipped": {},
    }
    peaks = speed.torch_peak_bytes({n: s for n, s in torch_steps.items() if n != "pyro_mdn"}, torch_inputs)
    result["memory"].update({f"torch/{name}": value for name, value in peaks.items()})
    for name, c in jax_compiled.items():
        result["memory"][f"jax/{name}"] = c.total_bytes
        result["compile"][f"jax/{name}"] = c.compile_s
        if c.call is None:
            result["skipped"][f"jax/{name}"] = f"planned {c.total_bytes / 1e9:.1f} GB > limit"
    return result


def run_goals(args):
    results = {}
    for shape in GOAL_SHAPES + [TFP_SHAPE]:
        jax_cases = JAX_CASES
        t0 = time.perf_counter()
        results[shape] = measure_shape(
            shape,
            rounds=args.rounds,
            memory_limit_bytes=args.memory_limit_gb * 1e9,
            torch_cases=TORCH_CASES,
            jax_cases=jax_cases,
            budget_s=60.0,
        )
        print(f"# measured {shape} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return results


def run_scaling(args):
    """``{axis: {case: [(value, seconds), ...]}}`` over the sweep in ``SCALING``."""
    curves = {}
    for axis, spec in SCALING.items():
        values = SCALING_QUICK_VALUES[axis] if args.quick else spec["values"]
        curves[axis] = {}
        for value in values:
            sizes = dict(spec["fixed"], **{axis: value})
            shape = (sizes["N"], sizes["K"], sizes["D"])
            torch_cases = ("floor",) + ESTIMATORS + tuple(c for c in spec["extra"] if c == "pyro_mdn")
            jax_cases = ("floor",) + ESTIMATORS + tuple(c for c in spec["extra"] if c == "tfp")
            result = measure_shape(
                shape,
                rounds=3,
                memory_limit_bytes=args.memory_limit_gb * 1e9,
                torch_cases=torch_cases,
                jax_cases=jax_cases,
                budget_s=20.0,
            )
            for name, seconds in result["time"].items():
                curves[axis].setdefault(name, []).append((value, seconds))
            print(f"# scaling {axis}={value} done", file=sys.stderr, flush=True)
    return curves


def profile_torch_step(shape, estimator="implicit", top=12):
    """The top torch operators (self CPU time) of one ``rsample + backward`` step."""
    import speed
    import torch
    from torch.profiler import ProfilerActivity, profile

    steps, _ = speed.torch_steps(*shape, cases=(estimator,))
    step = steps[estimator]
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        step()
        wall = time.perf_counter() - t0
    rows = []
    averages = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in averages)
    for event in averages[:top]:
        rows.append((event.key, event.count, event.self_cpu_time_total / 1e6, event.self_cpu_time_total / total))
    del torch
    return {"shape": shape, "estimator": estimator, "wall": wall, "rows": rows}


def torch_breakdown(shape):
    """CPU seconds of the parts of a torch step: draw without backward, the VJP alone, the floor."""
    import speed
    import torch
    from _timing import time_interleaved

    import pyro_gmm
    import shared_math

    num_samples, num_components, event_size = shape
    locs, scales, logits = (torch.tensor(a) for a in speed.numpy_parameters(num_components, event_size))
    mixture = pyro_gmm.DiagNormalMixture(locs, scales, logits, estimator="implicit", validate_args=False)
    torch.manual_seed(0)
    component_one_hot, noise = mixture.draw_noise((num_samples,))
    x = shared_math.sample_from_noise(locs, scales, component_one_hot, noise)
    cotangent = 2.0 * x
    steps, _ = speed.torch_steps(*shape, cases=("floor", "implicit"))
    cases = {
        "log_prob + backward (floor)": steps["floor"],
        "rsample + backward (implicit)": steps["implicit"],
        "rsample, no backward": lambda: mixture.rsample((num_samples,)),
        "shared_math.implicit_vjp alone": lambda: shared_math.implicit_vjp(x, locs, scales, logits, cotangent),
        "shared_math.hybrid_vjp alone": lambda: shared_math.hybrid_vjp(
            x, locs, scales, logits, component_one_hot, noise, cotangent
        ),
    }
    timings = time_interleaved(cases, rounds=5)
    return {"shape": shape, "rows": [(name, t.median) for name, t in timings.items()]}


# ------------------------------------------------------------------------ reporting


def slope(points):
    """Least-squares exponent of ``seconds ~ value**p`` over the two largest-size points."""
    import numpy as np

    points = [(v, s) for v, s in points if s == s][-2:]
    if len(points) < 2:
        return float("nan")
    values, seconds = map(np.log, zip(*points))
    return float(np.polyfit(values, seconds, 1)[0])


def fmt_ratio(value):
    return "–" if value != value else f"{value:.2f}×" if value < 10 else f"{value:.0f}×"


def shape_label(shape):
    return "N={}, K={}, D={}".format(*shape)


def goal_rows(results):
    """``(goal, shape, measured, target, met)`` rows."""
    rows = []
    for shape in GOAL_SHAPES:
        r = results[shape]
        t = r["time"]
        for framework in ("torch", "jax"):
            adapter = "Pyro" if framework == "torch" else "NumPyro"
            for estimator in ESTIMATORS:
                ratio = t.get(f"{framework}/{estimator}", float("nan")) / t[f"{framework}/floor"]
                rows.append(
                    (
                        f"{adapter} {estimator}: time / log_prob floor",
                        shape,
                        fmt_ratio(ratio),
                        "≤ 3×",
                        ratio <= MAX_RATIO_TO_FLOOR,
                    )
                )
    for shape in GOAL_SHAPES:
        t = results[shape]["time"]
        for estimator in ESTIMATORS:
            speedup = t["torch/pyro_mdn"] / t[f"torch/{estimator}"]
            target = MIN_SPEEDUP_OVER_PYRO_AT_K64 if shape[1] == 64 else 1.0
            rows.append(
                (
                    f"Pyro MixtureOfDiagNormals / ours ({estimator})",
                    shape,
                    fmt_ratio(speedup),
                    f"≥ {target:g}×",
                    speedup >= target,
                )
            )
    t = results[TFP_SHAPE]["time"]
    for estimator in ESTIMATORS:
        speedup = t.get("jax/tfp", float("nan")) / t[f"jax/{estimator}"]
        rows.append(
            (
                f"TFP MixtureSameFamily / ours ({estimator}, JAX)",
                TFP_SHAPE,
                fmt_ratio(speedup),
                f"≥ {MIN_SPEEDUP_OVER_TFP_AT_D128:g}×",
                speedup >= MIN_SPEEDUP_OVER_TFP_AT_D128,
            )
        )
    for shape in GOAL_SHAPES:
        m = results[shape]["memory"]
        for framework in ("torch", "jax"):
            adapter = "Pyro" if framework == "torch" else "NumPyro"
            for estimator in ESTIMATORS:
                ratio = m[f"{framework}/{estimator}"] / m[f"{framework}/floor"]
                rows.append(
                    (
                        f"{adapter} {estimator}: peak memory / floor",
                        shape,
                        fmt_ratio(ratio),
                        "≤ 2×",
                        ratio <= MAX_MEMORY_RATIO,
                    )
                )
    return rows


def environment_lines(args, load_before, load_after):
    import jax
    import numpy
    import pyro
    import torch
    from _timing import cpu_name

    cpu = cpu_name()
    try:
        import tensorflow_probability as tfp_module

        tfp_version = tfp_module.__version__
    except Exception:  # noqa: BLE001  (any failure means "not installed" in the report)
        tfp_version = "not installed"
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores; {args.threads} intra-op thread(s) for torch and XLA.",
        f"- Versions: Python {platform.python_version()}, torch {torch.__version__}, pyro-ppl {pyro.__version__}, "
        f"jax {jax.__version__}, numpy {numpy.__version__}, tfp-nightly {tfp_version}.",
        f"- Load average (1 min) before / after the run: {load_before:.2f} / {load_after:.2f} "
        "(other processes share these cores; every figure is a median of interleaved rounds).",
        f"- Rounds per case: {args.rounds} (fewer where a 60 s budget ran out; at least 3); one untimed warm-up call.",
    ]


def markdown(args, results, curves, profile, breakdowns, kernel_table, env_lines, elapsed):
    from _timing import format_bytes, format_seconds

    out = []
    out.append("# Benchmarks against the anchors: our own floor, MixtureOfDiagNormals, TFP")
    out.append("")
    out.append(
        "Generated by `benchmarks/run_all.py` (`make bench`); do not edit by hand. The goals against "
        "the *stock* `MixtureSameFamily` floor, with 1 and 2 threads and memory, are in "
        "[benchmarks.md](benchmarks.md); this page keeps the anchors of earlier goals."
    )
    out.append("")
    out.append(
        "One *step* = draw N samples and backpropagate `sum(x**2)` to `locs`, `scales`, `logits` "
        "(`rsample + backward`), float32, parameters `locs ~ N(0,1)`, `scales ~ U(0.5,1.5)`, "
        "`logits ~ N(0,1)`. The **floor** is our `log_prob` of N fixed points + backward: one "
        "O(N·K·D) pass. torch runs eagerly (`torch.autograd.grad`); JAX steps are `jit(grad(...))` "
        "compiled ahead of time, compile time reported apart. Times are medians over interleaved "
        "rounds (every case once per round), so load from other processes hits all cases of a round alike. "
        "The primary clock is the CPU time of the benchmark process (one intra-op thread, so it equals "
        "wall time on an idle machine and is far less disturbed by other processes on a busy one); "
        "wall-clock ratios are given beside it."
    )
    out.append("")
    out.extend(env_lines)
    out.append(f"- Total run time: {elapsed:.0f} s.")
    out.append("")

    out.append("## Goals")
    out.append("")
    out.append("| goal | shape | measured | target | met |")
    out.append("|---|---|---|---|---|")
    rows = goal_rows(results)
    for goal, shape, measured, target, met in rows:
        out.append(f"| {goal} | {shape_label(shape)} | {measured} | {target} | {'yes' if met else '**no**'} |")
    met_count = sum(1 for row in rows if row[4])
    out.append("")
    out.append(f"{met_count} of {len(rows)} goal checks met in this run.")
    out.append("")

    out.append("## Time per step (median CPU time)")
    out.append("")
    columns = [
        ("torch/floor", "Pyro floor"),
        ("torch/implicit", "Pyro implicit"),
        ("torch/hybrid", "Pyro hybrid"),
        ("torch/rao_blackwell", "Pyro rao_blackwell"),
        ("torch/pyro_mdn", "MixtureOfDiagNormals"),
        ("jax/floor", "NumPyro floor"),
        ("jax/implicit", "NumPyro implicit"),
        ("jax/hybrid", "NumPyro hybrid"),
        ("jax/rao_blackwell", "NumPyro rao_blackwell"),
        ("jax/tfp", "TFP"),
    ]
    out.append("| shape | " + " | ".join(label for _, label in columns) + " |")
    out.append("|---" * (len(columns) + 1) + "|")
    for shape, r in results.items():
        cells = []
        for key, _ in columns:
            if key in r["skipped"]:
                cells.append(f"not run ({r['skipped'][key]})")
            else:
                cells.append(format_seconds(r["time"].get(key, float("nan"))))
        out.append(f"| {shape_label(shape)} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("Ratios to the floor of the same framework and shape (CPU time; wall-clock ratio in brackets):")
    out.append("")
    out.append(
        "| shape | Pyro implicit | Pyro hybrid | Pyro rao_blackwell | NumPyro implicit | NumPyro hybrid "
        "| NumPyro rao_blackwell | MixtureOfDiagNormals / Pyro implicit | TFP / NumPyro implicit |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|")
    for shape, r in results.items():
        t, w = r["time"], r["wall"]
        nan = float("nan")
        pairs = [
            ("torch/implicit", "torch/floor"),
            ("torch/hybrid", "torch/floor"),
            ("torch/rao_blackwell", "torch/floor"),
            ("jax/implicit", "jax/floor"),
            ("jax/hybrid", "jax/floor"),
            ("jax/rao_blackwell", "jax/floor"),
            ("torch/pyro_mdn", "torch/implicit"),
            ("jax/tfp", "jax/implicit"),
        ]
        cells = [
            f"{fmt_ratio(t.get(a, nan) / t.get(b, nan))} ({fmt_ratio(w.get(a, nan) / w.get(b, nan))})" for a, b in pairs
        ]
        out.append(f"| {shape_label(shape)} | " + " | ".join(cells) + " |")
    out.append("")

    out.append("## Peak memory per step")
    out.append("")
    out.append(
        "torch: peak bytes held by torch's allocator during the step beyond what existed before it "
        "(profiler allocator events, exact, tensors only; the floor's N input points are added). "
        "JAX: XLA's planned arguments + outputs + temporaries of the compiled step (`memory_analysis()`)."
    )
    out.append("")
    mem_columns = [c for c in columns if c[0] != "torch/pyro_mdn"]
    out.append("| shape | " + " | ".join(label for _, label in mem_columns) + " |")
    out.append("|---" * (len(mem_columns) + 1) + "|")
    for shape, r in results.items():
        cells = [format_bytes(r["memory"].get(key)) for key, _ in mem_columns]
        out.append(f"| {shape_label(shape)} | " + " | ".join(cells) + " |")
    out.append("")

    out.append("## JAX compile time (excluded above)")
    out.append("")
    jax_columns = [c for c in columns if c[0].startswith("jax/")]
    out.append("| shape | " + " | ".join(label for _, label in jax_columns) + " |")
    out.append("|---" * (len(jax_columns) + 1) + "|")
    for shape, r in results.items():
        cells = [format_seconds(r["compile"].get(key, float("nan"))) for key, _ in jax_columns]
        out.append(f"| {shape_label(shape)} | " + " | ".join(cells) + " |")
    out.append("")

    if curves:
        out.append("## Scaling in N, K and D")
        out.append("")
        out.append(
            "![scaling](scaling.png)  \nExponent p of time ∝ size^p between the two largest sizes "
            "of each sweep (1 = linear; smaller at small sizes, where fixed per-call costs dominate):"
        )
        out.append("")
        names = sorted({name for axis in curves.values() for name in axis})
        out.append("| sweep | " + " | ".join(names) + " |")
        out.append("|---" * (len(names) + 1) + "|")
        for axis, spec in SCALING.items():
            if axis not in curves:
                continue
            fixed = ", ".join(f"{k}={v}" for k, v in spec["fixed"].items())
            values = [v for v, _ in next(iter(curves[axis].values()))]
            cells = [f"{slope(curves[axis][n]):.2f}" if n in curves[axis] else "–" for n in names]
            out.append(f"| {axis} ∈ {values} ({fixed}) | " + " | ".join(cells) + " |")
        out.append("")

    out.append("## Where the time goes (torch)")
    out.append("")
    out.append("Parts of a step, CPU time (median of 5 interleaved rounds):")
    out.append("")
    out.append("| part | " + " | ".join(shape_label(b["shape"]) for b in breakdowns) + " |")
    out.append("|---" * (len(breakdowns) + 1) + "|")
    for index, (name, _) in enumerate(breakdowns[0]["rows"]):
        out.append(f"| {name} | " + " | ".join(format_seconds(b["rows"][index][1]) for b in breakdowns) + " |")
    out.append("")
    out.append(
        "Kernel costs on 2^20 float32 values into a preallocated output (`benchmarks/kernels.py`): "
        "torch's vectorized CPU kernels leave their fast path when a result underflows or an "
        "operand is zero/subnormal, `torch.special.log_ndtr` is not vectorized, and reductions over a "
        "short trailing axis (K) are slower than over a leading one.  `shared_math` therefore takes "
        "the normal tails from `erfc`, works in the layout `(D, K, samples...)`, flushes subnormal "
        "results while computing a gradient (torch), and runs the elementwise steps in event blocks "
        "of about 2^17 entries, which stay in the L2 cache."
    )
    out.append("")
    out.append("| kernel | inputs | CPU time | relative to | ratio |")
    out.append("|---|---|---|---|---|")
    for kernel_name, label, seconds, reference, ratio in kernel_table:
        out.append(f"| `{kernel_name}` | {label} | {format_seconds(seconds)} | {reference} | {fmt_ratio(ratio)} |")
    out.append("")

    if profile:
        out.append("## Operator profile (torch, one step, profiler self time, wall clock)")
        out.append("")
        out.append(
            f"{profile['estimator']} estimator at {shape_label(profile['shape'])}; wall time "
            f"{format_seconds(profile['wall'])} under the profiler."
        )
        out.append("")
        out.append("| operator | calls | self time | share |")
        out.append("|---|---|---|---|")
        for key, count, seconds, share in profile["rows"]:
            out.append(f"| `{key}` | {count} | {format_seconds(seconds)} | {share:.0%} |")
        out.append("")
    return "\n".join(out) + "\n"


def plot_scaling(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {
        "torch/floor": ("tab:blue", ":"),
        "torch/implicit": ("tab:blue", "-"),
        "torch/hybrid": ("tab:blue", "--"),
        "torch/rao_blackwell": ("tab:blue", "-."),
        "torch/pyro_mdn": ("tab:red", "-"),
        "jax/floor": ("tab:green", ":"),
        "jax/implicit": ("tab:green", "-"),
        "jax/hybrid": ("tab:green", "--"),
        "jax/rao_blackwell": ("tab:green", "-."),
        "jax/tfp": ("tab:orange", "-"),
    }
    labels = {
        "torch/floor": "Pyro log_prob floor",
        "torch/implicit": "Pyro implicit",
        "torch/hybrid": "Pyro hybrid",
        "torch/rao_blackwell": "Pyro rao_blackwell",
        "torch/pyro_mdn": "Pyro MixtureOfDiagNormals",
        "jax/floor": "NumPyro log_prob floor",
        "jax/implicit": "NumPyro implicit",
        "jax/hybrid": "NumPyro hybrid",
        "jax/rao_blackwell": "NumPyro rao_blackwell",
        "jax/tfp": "TFP MixtureSameFamily",
    }
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4.2))
    for ax, (axis, cases) in zip(axes, curves.items()):
        for name, points in cases.items():
            values, seconds = zip(*points)
            color, style = styles.get(name, ("gray", "-"))
            ax.plot(values, seconds, style, color=color, marker="o", ms=3, label=labels.get(name, name))
        values = [v for v, _ in next(iter(cases.values()))]
        anchor = cases["torch/floor"][-1][1]
        ax.plot(values, [anchor * v / values[-1] for v in values], color="black", lw=0.6, alpha=0.5, label="slope 1")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        fixed = ", ".join(f"{k}={v}" for k, v in SCALING[axis]["fixed"].items())
        ax.set_xlabel(f"{axis}   ({fixed})")
        ax.set_ylabel("seconds per step")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6.5, loc="upper left")
    fig.suptitle("rsample + backward vs log_prob + backward (float32, CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    args = parse_args()
    if args.quick:
        args.rounds = 3
    configure_threads(args.threads)
    import speed

    reason = speed.tfp_available()
    if reason is not None:
        print(f"# TFP's JAX substrate does not import ({reason}); install the `bench` extra", file=sys.stderr)
        return 1
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    results = run_goals(args)
    curves = {} if args.no_scaling else run_scaling(args)
    profile = profile_torch_step(GOAL_SHAPES[-1])
    breakdowns = [torch_breakdown(shape) for shape in GOAL_SHAPES]
    import kernels

    kernel_table = kernels.kernel_rows()
    load_after = os.getloadavg()[0]
    elapsed = time.perf_counter() - started
    args.output_dir.mkdir(parents=True, exist_ok=True)
    if curves:
        plot_scaling(curves, args.output_dir / "scaling.png")
    text = markdown(
        args,
        results,
        curves,
        profile,
        breakdowns,
        kernel_table,
        environment_lines(args, load_before, load_after),
        elapsed,
    )
    (args.output_dir / "benchmarks-anchors.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
