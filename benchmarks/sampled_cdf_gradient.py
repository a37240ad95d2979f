r"""Graves' Eq. 9/10 against our stratified smaller-tail estimator of the CDF's shape derivative.

Run from the repository root: ``python benchmarks/sampled_cdf_gradient.py`` (about 2 CPU-minutes
with ``OMP_NUM_THREADS=1``; ``--quick`` for a smoke run that only prints).  It rewrites the
``<!-- generated:eq9_* -->`` blocks of ``docs/estimators.md`` ("Shape parameters: Graves'
Eq. 9/10").  Everything is computed with :mod:`shared_math` (the estimators under test) and,
for the end-to-end tables, the two adapters; nothing here has maths of its own.

Measured:

* **acceptance** of Eq. 10's rejection sampler against :math:`F(z)` (the fraction of draws
  :math:`t\sim g` with :math:`t\le z`);
* **variance against M** of the standardized velocity :math:`v_\theta = -\partial_\theta G/g`
  (Gamma concentration, both Beta concentrations, Student-t df) at CDF values 1e-3 .. 0.99,
  as the coefficient of variation sd/|v| over 20000 replicates, for Eq. 10 and ours, M = 1, 4, 16;
* **cost** per inner draw in torch (CPU, one thread): generating the inner randomness (the
  framework's Gamma/Beta/Student-t sampler for Eq. 10, uniforms for ours) plus evaluating
  the estimate, over 2^17 entries, M = 4;
* **variance per unit of cost** of Eq. 10 over ours where F < 0.05;
* **end to end**: the per-sample variance of a Gamma mixture's concentration gradient in JAX
  (exact ``igamma_grad_a`` path vs sampled, M = 1, 4), and the time of Pyro's
  ``rsample`` + backward with learnable concentrations against fixed ones.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.stats

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from shared_math import sampled
from shared_math._backend import get_namespace

NUMPY = get_namespace(np.zeros(1))

#: (label, family, shape parameters, names) of the cases of the variance tables.
CASES = (
    ("Gamma(a=0.5)", "gamma", (0.5,), ("concentration",)),
    ("Gamma(a=5)", "gamma", (5.0,), ("concentration",)),
    ("Beta(0.7, 4)", "beta", (0.7, 4.0), ("concentration1", "concentration0")),
    ("Student-t(df=4)", "student_t", (4.0,), ("df",)),
)
QUANTILES = (1e-3, 0.01, 0.05, 0.3, 0.7, 0.95, 0.99)  # not 0.5: the Student-t's v_df is 0 at its median
SAMPLE_COUNTS = (1, 4, 16)


def _scipy(family, params):
    return {"gamma": scipy.stats.gamma, "beta": scipy.stats.beta, "student_t": scipy.stats.t}[family](*params)


def velocity_samples(family, params, quantiles, method, inner, replicates, rng):
    """``(replicates, len(quantiles))`` estimates of each shape velocity (a list, one per parameter)."""
    z = np.repeat(_scipy(family, params).ppf(np.asarray(quantiles))[None, :], replicates, axis=0)
    shape = tuple(np.full_like(z, p) for p in params)
    if method == "sampled":
        return sampled.tail_velocities(family, z, shape, [rng.random(z.shape) for _ in range(inner)], xp=NUMPY)
    draws = [_scipy(family, params).rvs(size=z.shape, random_state=rng) for _ in range(inner)]
    return sampled.rejection_velocities(family, z, shape, draws, xp=NUMPY)


def acceptance_table(replicates, rng):
    family, params = "gamma", (2.0,)
    z = _scipy(family, params).ppf(np.asarray(QUANTILES))
    draws = _scipy(family, params).rvs(size=(replicates, 1), random_state=rng)
    accepted = np.mean(draws <= z[None, :], axis=0)
    lines = ["| F(z) | " + " | ".join(f"{q:g}" for q in QUANTILES) + " |", "|---" * (len(QUANTILES) + 1) + "|"]
    lines.append("| accepted by Eq. 10 | " + " | ".join(f"{a:.4f}" for a in accepted) + " |")
    lines.append("| accepted draws per useful one (1/F) | " + " | ".join(f"{1 / q:.0f}" for q in QUANTILES) + " |")
    return "\n".join(lines), accepted


def variance_tables(replicates, rng, sample_counts=SAMPLE_COUNTS):
    """Markdown: per case and parameter, sd/|v| by F for both estimators and every M; also the raw variances."""
    blocks, raw = [], {}
    for label, family, params, names in CASES:
        exact_z = _scipy(family, params).ppf(np.asarray(QUANTILES))
        results = {}
        for method in ("rejection", "sampled"):
            for inner in sample_counts:
                results[(method, inner)] = velocity_samples(family, params, QUANTILES, method, inner, replicates, rng)
        for index, name in enumerate(names):
            header = (
                "| F(z) | "
                + " | ".join(f"Eq. 10, M={m}" for m in sample_counts)
                + " | "
                + " | ".join(f"ours, M={m}" for m in sample_counts)
                + " |"
            )
            lines = [
                f"**{label}, {name}** (sd/\\|v\\| of one estimate; v at z = G⁻¹(F))",
                "",
                header,
                "|---" * (2 * len(sample_counts) + 1) + "|",
            ]
            for column, quantile in enumerate(QUANTILES):
                mean = np.mean([results[("sampled", m)][index][:, column].mean() for m in sample_counts])
                cells = []
                for method in ("rejection", "sampled"):
                    for inner in sample_counts:
                        values = results[(method, inner)][index][:, column]
                        raw[(label, name, quantile, method, inner)] = float(values.var())
                        none_accepted = method == "rejection" and not np.any(values != 0)
                        cells.append("∞ (none accepted)" if none_accepted else f"{values.std() / abs(mean):.3g}")
                lines.append(f"| {quantile:g} (z={exact_z[column]:.3g}) | " + " | ".join(cells) + " |")
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks), raw


def cost_table(entries, inner, repeats):
    """Seconds per inner draw in torch (one thread): randomness plus the estimate, both samplers."""
    import torch

    torch.set_num_threads(1)
    torch_namespace = get_namespace(torch.zeros(1))
    rng = np.random.default_rng(0)
    rows, per_draw = [], {}
    for label, family, params, _ in CASES:
        quantiles = rng.uniform(0.001, 0.999, entries)
        z = torch.tensor(_scipy(family, params).ppf(quantiles))
        shape = tuple(torch.full_like(z, p) for p in params)

        def ours(family=family, z=z, shape=shape):
            uniforms = [torch.rand(z.shape, dtype=z.dtype) for _ in range(inner)]
            return sampled.tail_velocities(family, z, shape, uniforms, xp=torch_namespace)

        def paper(family=family, z=z, shape=shape):
            if family == "gamma":
                draws = torch.distributions.Gamma(shape[0], 1.0).sample((inner,))
            elif family == "beta":
                draws = torch.distributions.Beta(*shape).sample((inner,))
            else:
                draws = torch.distributions.StudentT(shape[0]).sample((inner,))
            return sampled.rejection_velocities(family, z, shape, list(draws), xp=torch_namespace)

        timings = {}
        for name, function in (("Eq. 10", paper), ("ours", ours)):
            function()
            samples = []
            for _ in range(repeats):
                start = time.process_time()
                function()
                samples.append(time.process_time() - start)
            timings[name] = float(np.median(samples)) / (entries * inner)
        per_draw[label] = timings
        rows.append(
            f"| {label} | {1e9 * timings['Eq. 10']:.0f} | {1e9 * timings['ours']:.0f} | "
            f"{timings['Eq. 10'] / timings['ours']:.2f} |"
        )
    header = ["| family | Eq. 10: ns per inner draw | ours: ns per inner draw | Eq. 10 / ours |", "|---|---|---|---|"]
    return "\n".join(header + rows), per_draw


def efficiency_table(raw, per_draw, inner=4):
    """Variance x cost of Eq. 10 over ours at F < 0.05 (and elsewhere), M = ``inner``."""
    lines = [
        "| case | parameter | " + " | ".join(f"F={q:g}" for q in QUANTILES) + " |",
        "|---" * (len(QUANTILES) + 2) + "|",
    ]
    for label, _, _, names in CASES:
        cost_ratio = per_draw[label]["Eq. 10"] / per_draw[label]["ours"]
        for name in names:
            cells = []
            for quantile in QUANTILES:
                ratio = (
                    raw[(label, name, quantile, "rejection", inner)] / raw[(label, name, quantile, "sampled", inner)]
                )
                cells.append(f"{ratio * cost_ratio:.3g}" if ratio > 0 else "∞")
            lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def end_to_end_variance(num_samples, sample_counts=(1, 4)):
    """Per-sample variance of the concentration gradient of a Gamma mixture (NumPyro, K = 2,
    D = 2, objective E[sum_d 0.7 x_d + 0.5 log x_d]), summed over entries, for each path."""
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as ndist

    import numpyro_gmm

    jax.config.update("jax_enable_x64", True)
    concentration = jnp.array([[0.6, 3.0], [4.0, 1.5]])
    rate = jnp.array([[1.3, 0.7], [1.0, 2.0]])
    logits = jnp.array([0.3, -0.2])

    def per_sample(option, inner):
        def one(key):
            def value(a):
                mixture = numpyro_gmm.ReparamMixtureSameFamily(
                    ndist.CategoricalLogits(logits),
                    ndist.Gamma(a, rate).to_event(1),
                    cdf_gradient=option,
                    cdf_gradient_samples=inner,
                )
                x = mixture.sample(key)
                return jnp.sum(0.7 * x + 0.5 * jnp.log(x))

            return jax.grad(value)(concentration)

        keys = jax.random.split(jax.random.PRNGKey(0), num_samples)
        return np.asarray(jax.jit(jax.vmap(one))(keys)).reshape(num_samples, -1)

    exact = per_sample("exact", 1)
    rows = [f"| exact (`igamma_grad_a`) | 1 | {exact.var(0).sum():.4g} | 1.00 |"]
    for option, label in (("sampled", "ours"), ("rejection", "Eq. 10")):
        for inner in sample_counts:
            variance = per_sample(option, inner).var(0).sum()
            rows.append(f"| {label} | {inner} | {variance:.4g} | {variance / exact.var(0).sum():.2f} |")
    header = [
        "| CDF derivative | M | variance of the concentration gradient (sum over entries) | / exact |",
        "|---|---|---|---|",
    ]
    return "\n".join(header + rows)


def pyro_timing(num_samples, components, event_size, sample_counts=(1, 4), repeats=7):
    """CPU seconds of ``rsample`` + backward of a Gamma mixture in Pyro with learnable
    concentrations (ours, M), against the same mixture with fixed concentrations."""
    import pyro.distributions as pdist
    import torch

    import pyro_gmm

    torch.set_num_threads(1)
    torch.manual_seed(0)
    concentration = torch.exp(torch.randn(components, event_size))
    rate = torch.exp(0.3 * torch.randn(components, event_size))
    logits = torch.zeros(components)

    def step(learnable, inner):
        a = concentration.clone().requires_grad_(learnable)
        b = rate.clone().requires_grad_(True)
        w = logits.clone().requires_grad_(True)
        mixture = pyro_gmm.ReparamMixtureSameFamily(
            pdist.Categorical(logits=w), pdist.Gamma(a, b).to_event(1), cdf_gradient_samples=inner
        )
        x = mixture.rsample((num_samples,))
        x.sum().backward()

    cases = {"fixed": (False, 1)} | {f"M={m}": (True, m) for m in sample_counts}
    medians = {}
    for name, (learnable, inner) in cases.items():
        step(learnable, inner)
        samples = []
        for _ in range(repeats):
            start = time.process_time()
            step(learnable, inner)
            samples.append(time.process_time() - start)
        medians[name] = float(np.median(samples))
    rows = [f"| concentrations fixed | {1e3 * medians['fixed']:.1f} | 1.00 |"]
    for m in sample_counts:
        rows.append(
            f"| learnable, ours, M={m} | {1e3 * medians[f'M={m}']:.1f} | {medians[f'M={m}'] / medians['fixed']:.2f} |"
        )
    header = [
        f"| Gamma mixture, N={num_samples}, K={components}, D={event_size}, float32 | ms (CPU, 1 thread) | / fixed |",
        "|---|---|---|",
    ]
    return "\n".join(header + rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, print only")
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "docs")
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    rng = np.random.default_rng(2024)
    started = time.process_time()
    replicates = 2000 if quick else 20000
    blocks = {}
    blocks["eq9_acceptance"], _ = acceptance_table(replicates * 10, rng)
    blocks["eq9_variance"], raw = variance_tables(replicates, rng)
    blocks["eq9_cost"], per_draw = cost_table(1 << (12 if quick else 17), 4, 3 if quick else 9)
    blocks["eq9_efficiency"] = efficiency_table(raw, per_draw)
    blocks["eq9_end_to_end"] = end_to_end_variance(2000 if quick else 20000)
    blocks["eq9_timing"] = pyro_timing(256 if quick else 4096, 8, 16, repeats=3 if quick else 7)
    elapsed = time.process_time() - started
    blocks["eq9_settings"] = (
        f"Generated by `python benchmarks/sampled_cdf_gradient.py` in {elapsed:.0f} CPU seconds "
        f"({replicates} replicates per point; torch {__import__('torch').__version__}, one thread)."
    )
    for name, content in blocks.items():
        print(f"\n## {name}\n{content}")
    if not quick:
        from benchmarks.variance.report import update_generated_blocks

        update_generated_blocks(arguments.output_dir / "estimators.md", blocks)
        print(f"\nwrote {arguments.output_dir / 'estimators.md'}")


if __name__ == "__main__":
    main()
