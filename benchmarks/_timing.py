"""Timing and peak-memory helpers shared by the benchmarks.

**Time.**  Every case is a zero-argument callable that runs one full step (draw or
evaluate, then backward) and blocks until the result is ready.  Cases compared with each
other are timed *interleaved*: after warm-up, each round calls every case once, in turn,
and the median over rounds is reported.  A burst of load from another process then slows
all cases of a round alike, so ratios stay meaningful on a shared machine.  Two clocks are
read around every call: wall time (``time.perf_counter``) and the CPU time of this process
(``time.process_time``, all threads, user + system).  With one intra-op thread the two
agree on an idle machine; on a busy one the CPU time is far less disturbed by other
processes (it still includes cache and page-fault costs), so it is the primary figure.

**Memory.**

* torch (CPU): the profiler's allocator events (``profile_memory=True``) give every
  allocation and free made by torch during one call, in order; the peak of their running
  sum is the largest number of bytes torch held at once *beyond what existed before the
  call* (``peak_allocated_bytes``).  This counts tensor memory only (no Python objects, no
  allocator slack), exactly and independently of other processes, unlike ``ru_maxrss``.
* JAX (CPU): XLA's own buffer assignment for the compiled step
  (``jit(f).lower(...).compile().memory_analysis()``): arguments + outputs + temporaries,
  i.e. the peak it plans for; no run is needed.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field


@dataclass
class Timing:
    """Seconds per call of one case: CPU-time samples (``samples``) and wall-clock ones."""

    samples: list = field(default_factory=list)
    wall_samples: list = field(default_factory=list)

    @property
    def median(self):
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def wall_median(self):
        return statistics.median(self.wall_samples) if self.wall_samples else float("nan")

    @property
    def spread(self):
        """Half the inter-quartile range relative to the median (a noise indicator)."""
        if len(self.samples) < 4:
            return float("nan")
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return 0.5 * (q3 - q1) / self.median


def time_interleaved(cases, *, rounds, warmup=1, budget_s=None):
    """:class:`Timing` of each case in ``cases`` (a dict name -> callable).

    Each case is called ``warmup`` times first (not timed); then ``rounds`` rounds call
    every case once each.  With ``budget_s`` a round is not started once that many seconds
    of wall time have been spent (at least three rounds are always run).
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    timings = {name: Timing() for name in cases}
    started = time.perf_counter()
    for round_index in range(rounds):
        if budget_s is not None and round_index >= 3 and time.perf_counter() - started > budget_s:
            break
        for name, fn in cases.items():
            wall0, cpu0 = time.perf_counter(), time.process_time()
            fn()
            cpu1, wall1 = time.process_time(), time.perf_counter()
            timings[name].samples.append(cpu1 - cpu0)
            timings[name].wall_samples.append(wall1 - wall0)
    return timings


def torch_peak_allocated_bytes(fn):
    """Peak bytes torch held at once during ``fn()``, beyond what was allocated before it.

    From the profiler's allocator events (``[memory]`` events, signed byte counts), summed
    in time order.  CPU tensors only.
    """
    import os

    from torch.profiler import ProfilerActivity, profile

    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


@dataclass
class CompiledJax:
    """A compiled JAX step with its compile time and XLA's planned memory."""

    call: object
    compile_s: float
    argument_bytes: int
    output_bytes: int
    temp_bytes: int

    @property
    def total_bytes(self):
        return self.argument_bytes + self.output_bytes + self.temp_bytes


def compile_jax(fn, *args):
    """``jax.jit(fn)`` lowered and compiled for ``args``; the call blocks until ready."""
    import jax

    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    analysis = compiled.memory_analysis()

    def call():
        return jax.block_until_ready(compiled(*args))

    return CompiledJax(
        call=call,
        compile_s=compile_s,
        argument_bytes=int(analysis.argument_size_in_bytes),
        output_bytes=int(analysis.output_size_in_bytes),
        temp_bytes=int(analysis.temp_size_in_bytes),
    )


def format_seconds(seconds):
    """``12.3 ms`` / ``1.23 s`` style."""
    if seconds != seconds:  # NaN
        return "–"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def format_bytes(count):
    """``12.3 MB`` style (decimal units)."""
    if count is None:
        return "–"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} B"


def cpu_name():
    """The CPU model from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    import platform

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return cpu
