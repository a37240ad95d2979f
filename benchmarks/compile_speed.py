r"""``torch.compile`` of one Pyro training step: compile time and speed-up over eager.

A *step* is ``DiagNormalMixture(locs, scales, logits, estimator=...).rsample((N,))``, the loss
:math:`\sum x + x^2`, and ``backward`` to the three parameters (float32, parameters as in
``speed.py``: ``locs`` ~ N(0, 1), ``scales`` ~ U(0.5, 1.5), ``logits`` ~ N(0, 1), seeded).
The compiled step is ``torch.compile(loss, fullgraph=True)`` (so any graph break is an
error), then ``loss.backward()``.

Reported per shape and estimator:

* ``compile s``: wall time of the first compiled call (dynamo + AOTAutograd + Inductor,
  forward and backward), minus one eager step;
* ``eager ms`` / ``compiled ms``: median CPU time per step over interleaved rounds
  (``_timing.time_interleaved``), and their ratio ``speed-up``;
* ``max rel. diff``: largest difference of the three gradients between compiled and eager
  from the same draws (``torch._inductor.config.fallback_random``), relative to each
  gradient's largest entry.

Usage::

    python benchmarks/compile_speed.py               # shapes (N, K, D) of the speed goals
    python benchmarks/compile_speed.py --quick       # one small shape, few rounds
    python benchmarks/compile_speed.py --threads 2

Prints a Markdown table; ``--output FILE`` also writes it there (with the command and the
machine's load).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _timing import time_interleaved

SHAPES = [(4096, 8, 16), (4096, 64, 16), (4096, 8, 128)]
QUICK_SHAPES = [(1024, 8, 16)]
ESTIMATORS = ("rao_blackwell", "implicit", "hybrid")


def parameters(num_components, event_size, seed=0):
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    arrays = (
        rng.standard_normal((num_components, event_size)),
        rng.uniform(0.5, 1.5, (num_components, event_size)),
        rng.standard_normal(num_components),
    )
    return [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in arrays]


def measure(num_samples, num_components, event_size, estimator, rounds):
    import torch
    import torch._dynamo
    import torch._inductor.config as inductor_config

    import pyro_gmm

    params = parameters(num_components, event_size)

    def loss(locs, scales, logits):
        x = pyro_gmm.DiagNormalMixture(locs, scales, logits, estimator=estimator, validate_args=False).rsample(
            (num_samples,)
        )
        return (x + x * x).sum()

    def step(function):
        def run():
            for p in params:
                p.grad = None
            function(*params).backward()
            return [p.grad for p in params]

        return run

    eager_step = step(loss)
    # Same draws as eager (Inductor has its own generator unless fallback_random is set).
    with inductor_config.patch(fallback_random=True):
        torch._dynamo.reset()
        compiled_same_draws = step(torch.compile(loss, fullgraph=True))
        torch.manual_seed(1)
        got = [g.clone() for g in compiled_same_draws()]
    torch.manual_seed(1)
    want = eager_step()
    difference = max(float((g - w).abs().max() / w.abs().max()) for g, w in zip(got, want))

    torch._dynamo.reset()
    compiled_step = step(torch.compile(loss, fullgraph=True))
    eager_started = time.perf_counter()
    eager_step()
    eager_once = time.perf_counter() - eager_started
    started = time.perf_counter()
    compiled_step()
    compile_s = time.perf_counter() - started - eager_once

    timings = time_interleaved({"eager": eager_step, "compiled": compiled_step}, rounds=rounds, warmup=2)
    eager_ms, compiled_ms = 1e3 * timings["eager"].median, 1e3 * timings["compiled"].median
    return {
        "compile_s": compile_s,
        "eager_ms": eager_ms,
        "compiled_ms": compiled_ms,
        "speedup": eager_ms / compiled_ms,
        "difference": difference,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small shape, few rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--output", default=None, help="also write the table to this Markdown file")
    arguments = parser.parse_args(argv)

    import torch

    torch.set_num_threads(arguments.threads)
    warnings.filterwarnings("ignore")  # dynamo's notes on lru_cache-wrapped helpers of array-api-compat
    shapes = QUICK_SHAPES if arguments.quick else SHAPES
    rounds = arguments.rounds or (5 if arguments.quick else 21)
    load_before = os.getloadavg()[0]
    lines = [
        "| N | K | D | estimator | compile s | eager ms | compiled ms | speed-up | max rel. diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    print(f"torch {torch.__version__}, {arguments.threads} thread(s), {os.cpu_count()} CPUs visible, float32\n")
    print("\n".join(lines), flush=True)
    for num_samples, num_components, event_size in shapes:
        for estimator in ESTIMATORS:
            row = measure(num_samples, num_components, event_size, estimator, rounds)
            lines.append(
                f"| {num_samples} | {num_components} | {event_size} | {estimator} | {row['compile_s']:.1f} | "
                f"{row['eager_ms']:.2f} | {row['compiled_ms']:.2f} | {row['speedup']:.2f}x | {row['difference']:.1e} |"
            )
            print(lines[-1], flush=True)
    if arguments.output:
        command = "python benchmarks/compile_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
        header = (
            "# `torch.compile` of `rsample` + `backward` (Pyro)\n\n"
            f"`{command.strip()}`: torch {torch.__version__}, {arguments.threads} intra-op thread(s), "
            f"{os.cpu_count()} CPUs, float32, median CPU time over {rounds} interleaved rounds; load average "
            f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run (other processes share the CPUs).  "
            "See the docstring of `benchmarks/compile_speed.py` for what is measured.\n\n"
        )
        Path(arguments.output).write_text(header + "\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
