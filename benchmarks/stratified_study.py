r"""Mixture weights on a posterior with far-apart modes: ``Trace_ELBO`` vs ``Stratified_ELBO``
at equal numbers of model evaluations, in Pyro and NumPyro (project issue 14).

Problem: ``examples/_separated.py`` (modes 180-320 posterior standard deviations apart,
unequal masses; exact masses and evidence by quadrature), :math:`D = 1` (two modes, guide
:math:`K = 2`) and :math:`D = 2` (four modes, :math:`K = 4`).  Both objectives start from the
same guide (one component per mode, 3-4 posterior sds off, 3-4x too wide, equal weights)
and the same optimizer: Adam with gradient clipping at norm 10, learning rate decaying
exponentially from 0.05 to 0.0025 over the run (``pyro.optim.ClippedAdam`` with ``lrd``;
``numpyro.optim.ClippedAdam`` with a schedule).

Cost is counted in model evaluations (one evaluation of :math:`\log p(y, z)` at one point):
``Trace_ELBO(num_particles=E)`` costs :math:`E` per step, ``Stratified_ELBO(num_particles=E/K)``
costs :math:`(E/K)\cdot K = E`.  Each run of ``S`` steps therefore costs :math:`S\cdot E`.
Reported per configuration (mean over seeds, and the worst seed): the weights error
:math:`\max_o|\sum_{k\in o}\pi_k - P_o|` over the modes (orthants) and the KL gap
:math:`\log p(y) - \mathrm{ELBO}(q)` (exact, ``_separated.kl_gap``), and the time per step.

Run: ``.venv/bin/python benchmarks/stratified_study.py`` (rewrites the generated blocks of
``docs/stratified.md`` and ``docs/stratified.png`` and saves the raw records to
``out/stratified_study.json``; ``--replot`` redraws from them; ``--quick`` prints a small grid).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "examples"), str(ROOT)]

import _separated
import numpy as np

LEARNING_RATE = 0.05
FINAL_LEARNING_RATE = 0.0025
CLIP_NORM = 10.0
OBJECTIVES = ("Trace_ELBO", "Stratified_ELBO")


def decay_per_step(steps):
    """Factor per step taking the learning rate from ``LEARNING_RATE`` to ``FINAL_LEARNING_RATE``."""
    return (FINAL_LEARNING_RATE / LEARNING_RATE) ** (1.0 / steps)


def fit_pyro(dims, objective, steps, evaluations_per_step, seed):
    """Fit the guide in Pyro; returns ``(locs, scales, logits, seconds per step)``."""
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import SVI, Trace_ELBO

    from pyro_gmm import DiagNormalMixture, Stratified_ELBO

    torch.set_num_threads(1)
    prior_locs = torch.tensor(_separated.PRIOR_LOCS[:dims])
    observed = torch.tensor(_separated.OBSERVED[:dims])
    init_locs, init_scales, init_logits = (torch.tensor(a) for a in _separated.initial_guide(dims))
    num_components = init_locs.shape[0]

    def model():
        z = pyro.sample("z", dist.Normal(prior_locs, 1.0).to_event(1))
        pyro.sample("y", dist.Normal(z**2, _separated.NOISE_SCALE).to_event(1), obs=observed)

    def guide():
        locs = pyro.param("locs", init_locs.clone())
        scales = pyro.param("scales", init_scales.clone(), constraint=dist.constraints.positive)
        logits = pyro.param("logits", init_logits.clone())
        pyro.sample("z", DiagNormalMixture(locs, scales, logits))

    if objective == "Trace_ELBO":
        loss = Trace_ELBO(num_particles=evaluations_per_step, vectorize_particles=True)
    else:
        loss = Stratified_ELBO(num_particles=evaluations_per_step // num_components)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    optimizer = pyro.optim.ClippedAdam({"lr": LEARNING_RATE, "lrd": decay_per_step(steps), "clip_norm": CLIP_NORM})
    svi = SVI(model, guide, optimizer, loss)
    started = time.perf_counter()
    for _ in range(steps):
        svi.step()
    seconds = (time.perf_counter() - started) / steps
    return (*(pyro.param(name).detach().numpy().astype(np.float64) for name in ("locs", "scales", "logits")), seconds)


def fit_numpyro(dims, objective, steps, evaluations_per_step, seed):
    """Fit the guide in NumPyro (``svi.run``, compiled); returns ``(locs, scales, logits,
    seconds per step)``, the time excluding compilation."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO

    from numpyro_gmm import DiagNormalMixture, Stratified_ELBO

    jax.config.update("jax_enable_x64", True)
    prior_locs = jnp.asarray(_separated.PRIOR_LOCS[:dims])
    observed = jnp.asarray(_separated.OBSERVED[:dims])
    init_locs, init_scales, init_logits = (jnp.asarray(a) for a in _separated.initial_guide(dims))
    num_components = init_locs.shape[0]

    def model():
        z = numpyro.sample("z", dist.Normal(prior_locs, 1.0).to_event(1))
        numpyro.sample("y", dist.Normal(z**2, _separated.NOISE_SCALE).to_event(1), obs=observed)

    def guide():
        locs = numpyro.param("locs", init_locs)
        scales = numpyro.param("scales", init_scales, constraint=dist.constraints.positive)
        logits = numpyro.param("logits", init_logits)
        numpyro.sample("z", DiagNormalMixture(locs, scales, logits))

    if objective == "Trace_ELBO":
        loss = Trace_ELBO(num_particles=evaluations_per_step)
    else:
        loss = Stratified_ELBO(num_particles=evaluations_per_step // num_components)
    decay = decay_per_step(steps)
    optimizer = numpyro.optim.ClippedAdam(lambda i: LEARNING_RATE * decay**i, clip_norm=CLIP_NORM)
    svi = SVI(model, guide, optimizer, loss)
    key = jax.random.PRNGKey(seed)
    # Compile once on a throwaway state, then time the real run from the start.
    state = svi.init(key)
    update = jax.jit(svi.update)
    jax.block_until_ready(update(state)[0])
    started = time.perf_counter()
    for _ in range(steps):
        state, _ = update(state)
    params = svi.get_params(state)
    jax.block_until_ready(params)
    seconds = (time.perf_counter() - started) / steps
    return (*(np.asarray(params[name], np.float64) for name in ("locs", "scales", "logits")), seconds)


FITTERS = {"Pyro": fit_pyro, "NumPyro": fit_numpyro}


def run_study(frameworks, dims_list, step_budgets, evaluations_per_step, seeds, verbose=True):
    """One record per (framework, D, objective, steps, seed)."""
    records = []
    for framework in frameworks:
        for dims in dims_list:
            for objective in OBJECTIVES:
                for steps in step_budgets:
                    for seed in seeds:
                        locs, scales, logits, seconds = FITTERS[framework](
                            dims, objective, steps, evaluations_per_step, seed
                        )
                        record = {
                            "framework": framework,
                            "dims": dims,
                            "objective": objective,
                            "steps": steps,
                            "evaluations": steps * evaluations_per_step,
                            "seed": seed,
                            "weights_error": _separated.weights_error(locs, logits, dims),
                            "kl_gap": _separated.kl_gap(locs, scales, logits, dims),
                            "seconds_per_step": seconds,
                        }
                        records.append(record)
                        if verbose:
                            print(
                                f"{framework:8s} D={dims} {objective:16s} steps={steps:5d} seed={seed}: "
                                f"weights error {record['weights_error']:.4f}, KL gap {record['kl_gap']:.4f}, "
                                f"{1e3 * seconds:.2f} ms/step",
                                flush=True,
                            )
    return records


def _group(records):
    groups = {}
    for record in records:
        key = (record["framework"], record["dims"], record["objective"], record["evaluations"])
        groups.setdefault(key, []).append(record)
    return groups


def results_table(records):
    """Markdown: weights error and KL gap vs model evaluations, both objectives, both frameworks."""
    lines = [
        "| framework | D (modes) | model evaluations | Trace_ELBO weights error: mean (worst) | Stratified_ELBO weights error: mean (worst) | Trace_ELBO KL gap [nats]: mean (worst) | Stratified_ELBO KL gap [nats]: mean (worst) |",
        "|---|---|---|---|---|---|---|",
    ]
    groups = _group(records)
    keys = sorted({(f, d, e) for f, d, _, e in groups}, key=lambda k: (list(FITTERS).index(k[0]), k[1], k[2]))
    for framework, dims, evaluations in keys:
        cells = []
        for metric in ("weights_error", "kl_gap"):
            for objective in OBJECTIVES:
                values = [r[metric] for r in groups.get((framework, dims, objective, evaluations), [])]
                cells.append(f"{np.mean(values):.3f} ({np.max(values):.3f})" if values else "–")
        lines.append(f"| {framework} | {dims} ({2**dims}) | {evaluations:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def timing_table(records):
    """Markdown: milliseconds per step at equal model evaluations per step."""
    lines = ["| framework | D | Trace_ELBO [ms/step] | Stratified_ELBO [ms/step] |", "|---|---|---|---|"]
    frameworks = [f for f in FITTERS if any(r["framework"] == f for r in records)]
    for framework in frameworks:
        for dims in sorted({r["dims"] for r in records}):
            cells = []
            for objective in OBJECTIVES:
                values = [
                    r["seconds_per_step"]
                    for r in records
                    if (r["framework"], r["dims"], r["objective"]) == (framework, dims, objective)
                ]
                cells.append(f"{1e3 * np.median(values):.2f}" if values else "–")
            lines.append(f"| {framework} | {dims} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(records, path):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _group(records)
    frameworks = [f for f in FITTERS if any(r["framework"] == f for r in records)]
    dims_list = sorted({r["dims"] for r in records})
    figure, axes = plt.subplots(
        2, len(frameworks) * len(dims_list), figsize=(4 * len(frameworks) * len(dims_list), 6.5)
    )
    axes = np.asarray(axes).reshape(2, -1)
    colors = {"Trace_ELBO": "tab:red", "Stratified_ELBO": "tab:blue"}
    column = 0
    for framework in frameworks:
        for dims in dims_list:
            for row, (metric, label) in enumerate((("weights_error", "weights error"), ("kl_gap", "KL gap [nats]"))):
                ax = axes[row, column]
                for objective in OBJECTIVES:
                    budgets = sorted(e for f, d, o, e in groups if (f, d, o) == (framework, dims, objective))
                    for budget in budgets:
                        values = [r[metric] for r in groups[(framework, dims, objective, budget)]]
                        ax.scatter([budget] * len(values), values, color=colors[objective], s=12, alpha=0.5)
                    means = [np.mean([r[metric] for r in groups[(framework, dims, objective, b)]]) for b in budgets]
                    ax.plot(budgets, means, color=colors[objective], label=objective, marker="o")
                ax.set_xscale("log")
                ax.set_yscale("log")
                budgets = sorted({r["evaluations"] for r in records})
                ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
                ax.set_xticks(budgets, [f"{b // 1000}k" for b in budgets])
                ax.set_xlabel("model evaluations")
                ax.set_ylabel(label)
                if metric == "weights_error":
                    ax.axhline(0.02, color="gray", linestyle=":", linewidth=1)
                ax.set_title(f"{framework}, D = {dims} ({2**dims} modes)")
                ax.grid(alpha=0.3, which="both")
                ax.legend(fontsize=8)
            column += 1
    figure.suptitle("Far-apart modes: weights error and KL gap at equal model evaluations (dots: seeds, lines: mean)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small grid, printed only")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default 4; 1 with --quick)")
    parser.add_argument("--frameworks", nargs="+", default=list(FITTERS), choices=list(FITTERS))
    parser.add_argument("--dims", nargs="+", type=int, default=[1, 2], choices=[1, 2])
    parser.add_argument("--steps", nargs="+", type=int, default=None, help="step budgets (default 250 500 1000 2000)")
    parser.add_argument(
        "--evaluations-per-step", type=int, default=8, help="model evaluations per step (a multiple of 4)"
    )
    parser.add_argument("--docs", default=str(ROOT / "docs"), help="folder of stratified.md / stratified.png")
    parser.add_argument(
        "--records", default=str(ROOT / "out" / "stratified_study.json"), help="where the raw records go"
    )
    parser.add_argument("--replot", action="store_true", help="rewrite the docs from the saved records, no fitting")
    args = parser.parse_args(argv)
    docs = Path(args.docs)
    if args.replot:
        saved = json.loads(Path(args.records).read_text())
        write_docs(saved["records"], saved["header"], docs)
        return saved["records"]
    seeds = range(args.seeds if args.seeds is not None else (1 if args.quick else 4))
    steps = args.steps or ([100, 300] if args.quick else [250, 500, 1000, 2000])
    started = time.perf_counter()
    records = run_study(args.frameworks, args.dims, steps, args.evaluations_per_step, seeds)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (
        f"{len(list(seeds))} seeds per point, {args.evaluations_per_step} model evaluations per step "
        f"(Trace_ELBO: {args.evaluations_per_step} particles; Stratified_ELBO: {args.evaluations_per_step}/K particles), "
        f"step budgets {', '.join(map(str, steps))}; float64 (Pyro) / x64 (NumPyro), one thread; "
        f"{time.perf_counter() - started:.0f} s in all, load average {load:.1f} at the end."
    )
    if args.quick:
        print(f"\n{header}\n\n{results_table(records)}\n\n{timing_table(records)}")
        return records
    Path(args.records).parent.mkdir(parents=True, exist_ok=True)
    Path(args.records).write_text(json.dumps({"header": header, "records": records}, indent=1))
    write_docs(records, header, docs)
    return records


def write_docs(records, header, docs):
    """The generated blocks of ``docs/stratified.md`` and ``docs/stratified.png``."""
    docs.mkdir(parents=True, exist_ok=True)
    blocks = {"study": header + "\n\n" + results_table(records), "timing": timing_table(records)}
    from benchmarks.variance.report import update_generated_blocks

    update_generated_blocks(docs / "stratified.md", blocks, title="# Stratified_ELBO")
    plot(records, docs / "stratified.png")
    print(f"wrote {docs / 'stratified.md'} and {docs / 'stratified.png'}")


if __name__ == "__main__":
    main()
