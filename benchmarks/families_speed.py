"""rsample + backward of mixtures of other component families against the stock floor.

For each family (Student-t, Gumbel, and the Normal for reference) and adapter, at
``N = 4096, K = 8, D = 16`` float32 by default: one step of ``ReparamMixtureSameFamily``
(draw, objective ``sum(cos(x))``, backward to every ``loc``, ``scale`` and the logits, the
default estimator) against the framework's stock ``MixtureSameFamily`` ``log_prob`` +
backward of the same components at as many points (the floor).  Wall-clock medians of
interleaved rounds (``_timing.time_interleaved``), default threads unless ``--threads``.

Usage::

    python benchmarks/families_speed.py [--threads 1] [--rounds 15] [--shape 4096 8 16] [--write docs/benchmarks-families.md]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

FAMILIES = ("normal", "student_t", "gumbel", "logistic", "laplace", "cauchy")
GOAL_RATIO = 3.0


def torch_cases(family, shape, dtype_name):
    import pyro.distributions as dist
    import torch

    import pyro_gmm

    num_samples, num_components, event_size = shape
    dtype = getattr(torch, dtype_name)
    generator = torch.Generator().manual_seed(0)
    locs = torch.randn(num_components, event_size, dtype=dtype, generator=generator).requires_grad_()
    scales = (0.5 + torch.rand(num_components, event_size, dtype=dtype, generator=generator)).requires_grad_()
    logits = torch.zeros(num_components, dtype=dtype, requires_grad=True)
    df = torch.full((num_components, event_size), 4.0, dtype=dtype)
    classes = {
        "normal": dist.Normal,
        "student_t": lambda loc, scale: dist.StudentT(df, loc, scale),
        "gumbel": dist.Gumbel,
        "logistic": dist.Logistic,
        "laplace": dist.Laplace,
        "cauchy": dist.Cauchy,
    }
    points = torch.randn(num_samples, event_size, dtype=dtype, generator=generator)

    def components():
        return classes[family](locs, scales).to_event(1)

    def ours():
        mixture = pyro_gmm.ReparamMixtureSameFamily(dist.Categorical(logits=logits), components())
        torch.cos(mixture.rsample((num_samples,))).sum().backward()

    def floor():
        mixture = dist.MixtureSameFamily(dist.Categorical(logits=logits), components())
        mixture.log_prob(points).sum().backward()

    return {"floor": floor, "ours": ours}


def jax_cases(family, shape, dtype_name):
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as dist

    import numpyro_gmm

    num_samples, num_components, event_size = shape
    dtype = getattr(jnp, dtype_name)
    key = jax.random.PRNGKey(0)
    locs = jax.random.normal(key, (num_components, event_size), dtype)
    scales = 0.5 + jax.random.uniform(jax.random.fold_in(key, 1), (num_components, event_size), dtype)
    logits = jnp.zeros(num_components, dtype)
    df = jnp.full((num_components, event_size), 4.0, dtype)
    points = jax.random.normal(jax.random.fold_in(key, 2), (num_samples, event_size), dtype)
    classes = {
        "normal": dist.Normal,
        "student_t": lambda loc, scale: dist.StudentT(df, loc, scale),
        "gumbel": dist.Gumbel,
        "logistic": dist.Logistic,
        "laplace": dist.Laplace,
        "cauchy": dist.Cauchy,
    }

    def ours_loss(locs, scales, logits, key):
        mixture = numpyro_gmm.ReparamMixtureSameFamily(
            dist.CategoricalLogits(logits), classes[family](locs, scales).to_event(1)
        )
        return jnp.sum(jnp.cos(mixture.sample(key, (num_samples,))))

    def floor_loss(locs, scales, logits, key):
        mixture = dist.MixtureSameFamily(dist.CategoricalLogits(logits), classes[family](locs, scales).to_event(1))
        return jnp.sum(mixture.log_prob(points))

    ours_step = jax.jit(jax.grad(ours_loss, argnums=(0, 1, 2)))
    floor_step = jax.jit(jax.grad(floor_loss, argnums=(0, 1, 2)))
    keys = iter(jax.random.split(key, 100000))
    return {
        "floor": lambda: jax.block_until_ready(floor_step(locs, scales, logits, next(keys))),
        "ours": lambda: jax.block_until_ready(ours_step(locs, scales, logits, next(keys))),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the frameworks' default)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--shape", type=int, nargs=3, default=(4096, 8, 16), metavar=("N", "K", "D"))
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--write", type=Path, default=None, help="also write the table as a markdown page here")
    args = parser.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if args.threads is not None:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_cpu_multi_thread_eigen={'false' if args.threads == 1 else 'true'}"
        )
    import torch
    from _timing import time_interleaved

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"shape (N, K, D) = {tuple(args.shape)}, {args.dtype}, torch threads {torch.get_num_threads()}, "
        f"wall-clock medians of {args.rounds} interleaved rounds"
    )
    print(f"{'family':10s} {'adapter':8s} {'floor [ms]':>10s} {'ours [ms]':>10s} {'ratio':>7s}  goal <= {GOAL_RATIO}x")
    rows = []
    for family in args.families:
        for adapter, make in (("Pyro", torch_cases), ("NumPyro", jax_cases)):
            timings = time_interleaved(make(family, tuple(args.shape), args.dtype), rounds=args.rounds, warmup=2)
            floor, ours = timings["floor"].wall_median, timings["ours"].wall_median
            print(f"{family:10s} {adapter:8s} {1e3 * floor:10.2f} {1e3 * ours:10.2f} {ours / floor:7.2f}")
            rows.append((family, adapter, floor, ours))
    if args.write:
        args.write.write_text(_page(args, torch.get_num_threads(), rows))


def _page(args, torch_threads, rows):
    """The results as a markdown page."""
    lines = [
        "# Benchmarks: other component families",
        "",
        "Generated by `benchmarks/families_speed.py --write docs/benchmarks-families.md` (`make bench`); "
        "do not edit by hand.",
        "",
        f"One step at (N, K, D) = {tuple(args.shape)}, {args.dtype}: `ReparamMixtureSameFamily` draws N "
        "samples, the objective is `sum(cos(x))`, backward to every `loc`, `scale` and the logits (default "
        "estimator). The floor is the framework's stock `MixtureSameFamily` `log_prob` + backward of the same "
        f"components at N points. Wall-clock medians of {args.rounds} interleaved rounds; torch threads "
        f"{torch_threads}, XLA's default threads. Goal: ≤ {GOAL_RATIO:g}× the floor.",
        "",
        "| family | adapter | stock floor | ours | ratio | goal met |",
        "|---|---|---|---|---|---|",
    ]
    for family, adapter, floor, ours in rows:
        ratio = ours / floor
        met = "yes" if ratio <= GOAL_RATIO else "**no**"
        lines.append(f"| {family} | {adapter} | {1e3 * floor:.2f} ms | {1e3 * ours:.2f} ms | {ratio:.2f}× | {met} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
