"""CPU cost of the torch kernels the implicit gradient leans on, in and out of their fast range.

torch's vectorized CPU kernels for ``exp``, ``log``, ``erfc``, ``log1p`` fall back to much
slower code for some inputs (results that underflow, zero or subnormal operands), and
``torch.special.log_ndtr`` is not vectorized at all.  Each row times one kernel on 2**20
float32 values of a stated range, writing into a preallocated output (so allocation and
page faults are left out), and gives the ratio to a reference row.  CPU time of this
process, median of 7 calls.
"""

from __future__ import annotations

import math
import statistics
import time


def _median_cpu_seconds(fn, repeats=7):
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        samples.append(time.process_time() - t0)
    return statistics.median(samples)


def kernel_rows(size=1 << 20):
    """``[(kernel, input range, seconds, reference label, ratio)]``."""
    import torch

    generator = torch.Generator().manual_seed(0)
    uniform = torch.rand(size, generator=generator)
    out = torch.empty(size)
    log_tiny = math.log(torch.finfo(torch.float32).tiny)  # -87.34

    def timed(kernel, values):
        return _median_cpu_seconds(lambda: kernel(values, out=out))

    rows = []

    def add(kernel_name, label, seconds, reference_label, reference_seconds):
        rows.append((kernel_name, label, seconds, reference_label, seconds / reference_seconds))

    exp_fast = timed(torch.exp, -80.0 * uniform)
    add("exp", "[-80, 0]", exp_fast, "itself", exp_fast)
    add(
        "exp",
        f"[{log_tiny - 10:.0f}, {log_tiny:.1f}) (result below the smallest normal)",
        timed(torch.exp, log_tiny - 10.0 * uniform - 1e-3),
        "exp on [-80, 0]",
        exp_fast,
    )
    add("exp", "-inf", timed(torch.exp, torch.full((size,), -math.inf)), "exp on [-80, 0]", exp_fast)
    erfc_fast = timed(torch.special.erfc, 8.0 * uniform)
    add("erfc", "[0, 8]", erfc_fast, "itself", erfc_fast)
    add(
        "erfc",
        "[10, 20] (result underflows)",
        timed(torch.special.erfc, 10.0 + 10.0 * uniform),
        "erfc on [0, 8]",
        erfc_fast,
    )
    log_fast = timed(torch.log, uniform + 0.5)
    add("log", "[0.5, 1.5]", log_fast, "itself", log_fast)
    add("log", "0", timed(torch.log, torch.zeros(size)), "log on [0.5, 1.5]", log_fast)
    add(
        "log1p",
        "-[1e-12, 1e-8] (tiny arguments)",
        timed(torch.log1p, -(1e-12 + 1e-8 * uniform)),
        "log on [0.5, 1.5]",
        log_fast,
    )
    add("special.log_ndtr", "[-8, 0]", timed(torch.special.log_ndtr, -8.0 * uniform), "erfc on [0, 8]", erfc_fast)
    mul_fast = _median_cpu_seconds(lambda: torch.mul(uniform, 0.5, out=out))
    add("mul", "[0, 1] x 0.5", mul_fast, "itself", mul_fast)
    subnormal = torch.full((size,), 1e-39)
    add(
        "mul",
        "subnormal x 0.5",
        _median_cpu_seconds(lambda: torch.mul(subnormal, 0.5, out=out)),
        "mul on [0, 1]",
        mul_fast,
    )
    add(
        "mul, fresh output",
        "[0, 1] x 0.5 (new tensor each call)",
        _median_cpu_seconds(lambda: uniform * 0.5),
        "mul on [0, 1]",
        mul_fast,
    )

    # Reductions over K = 8 components: along the last (contiguous) axis, or a leading one.
    components_last = torch.rand(size // 8, 8, generator=generator)
    components_first = components_last.t().contiguous()
    reduce_first = _median_cpu_seconds(lambda: torch.sum(components_first, 0))
    add("sum over K=8", "K leading: (K, M).sum(0)", reduce_first, "itself", reduce_first)
    add(
        "sum over K=8",
        "K last: (M, K).sum(-1)",
        _median_cpu_seconds(lambda: torch.sum(components_last, -1)),
        "(K, M).sum(0)",
        reduce_first,
    )
    max_first = _median_cpu_seconds(lambda: torch.amax(components_first, 0))
    add("amax over K=8", "K leading: (K, M).amax(0)", max_first, "itself", max_first)
    add(
        "amax over K=8",
        "K last: (M, K).amax(-1)",
        _median_cpu_seconds(lambda: torch.amax(components_last, -1)),
        "(K, M).amax(0)",
        max_first,
    )
    return rows
