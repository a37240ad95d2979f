r"""Per-sample gradient variance of the full-covariance estimators (project issue 12).

For correlated full-covariance mixtures (``locs`` :math:`\mu` (K, D), ``scale_tril`` :math:`L`
(K, D, D), ``logits`` (K)) and the objective :math:`h(x)=\cos(\omega\cdot x)`, every estimator
draws :math:`k\sim\pi`, :math:`\varepsilon\sim N(0,I)`, :math:`x=\mu_k+L_k\varepsilon`, takes the
cotangent :math:`g=-\sin(\omega\cdot x)\,\omega` and forms one gradient per sample with
:func:`shared_math.full_covariance_sample_vjp`:

* ``implicit``: Graves' implicit gradient for every parameter;
* ``hybrid``: the chosen-component gradient for ``locs``/``scale_tril``, implicit for ``logits``;
* ``rao_blackwell``: its average over the component given :math:`x`
  (:math:`r_k(x)g`, :math:`r_k(x)g\varepsilon_k^\top`), implicit for ``logits``.

All three share the ``logits`` gradient, so only ``locs`` and ``scale_tril`` differ.  Per-sample
gradients come from giving the parameters an explicit sample axis (the VJPs sum over sample
dimensions).  Reported: the per-sample variance summed over the entries of a group
(:math:`\sum\mathrm{Var}_n[\hat g_n]`, as in ``DESIGN.md`` §2), and, because the implicit
gradient of correlated mixtures is heavy-tailed (the variance estimate is then dominated by a
few draws and is a lower bound of a possibly infinite variance), the share of the summed
squared deviations contributed by the largest 0.1 % of draws (``top``).  The exact gradient
(closed form :math:`E[h]=\sum_k\pi_k\cos(\omega^\top\mu_k)e^{-|L_k^\top\omega|^2/2}`) is used
for a bias z-score of the mean as a sanity check.

Mixtures: component means :math:`\Delta\,\xi_k/\sqrt{2D}` (:math:`E\|\mu_k-\mu_j\|^2=\Delta^2`;
:math:`\Delta=1` "overlapping", :math:`\Delta=8` "separated"), covariances with unit-scale
diagonal and strong correlations in a random 2-D subspace
(:math:`C_k = S(B_kB_k^\top + 0.3I)S` normalized to unit diagonal, :math:`B_k` ``(D, 2)``
Gaussian, times :math:`e^{0.2\eta}` scales), :math:`\omega=\xi/\sqrt D`.

Run ``python benchmarks/full_covariance_variance.py`` (a few CPU-minutes; ``--quick`` for a
smoke run); it prints the table and rewrites the generated block of ``docs/estimators.md``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import shared_math

EVENT_SIZES = (2, 4, 8, 16, 32)
COMPONENT_COUNTS = (2, 8)
SEPARATIONS = {"overlapping": 1.0, "separated": 8.0}
NUM_SAMPLES = 4096
CHUNK = 512
ESTIMATORS = ("implicit", "hybrid", "rao_blackwell")
GROUPS = ("locs", "scale_tril", "logits")
DOC = REPO_ROOT / "docs" / "estimators.md"
MARKER = "full-covariance-variance"


def make_mixture(num_components, event_size, separation, seed):
    """``(locs, scale_tril, logits)`` NumPy float64 (see the module docstring)."""
    rng = np.random.default_rng(seed)
    locs = separation * rng.standard_normal((num_components, event_size)) / math.sqrt(2 * event_size)
    factors = []
    for _ in range(num_components):
        basis = rng.standard_normal((event_size, min(2, event_size)))
        covariance = basis @ basis.T + 0.3 * np.eye(event_size)
        inverse_sd = 1.0 / np.sqrt(np.diag(covariance))
        scales = np.exp(0.2 * rng.standard_normal(event_size))
        covariance = (scales * inverse_sd)[:, None] * covariance * (scales * inverse_sd)[None, :]
        factors.append(np.linalg.cholesky(covariance))
    logits = 0.5 * rng.standard_normal(num_components)
    return locs, np.stack(factors), logits


def exact_gradient(omega, locs, scale_tril, logits):
    params = [torch.tensor(a, requires_grad=True) for a in (locs, scale_tril, logits)]
    pi = torch.softmax(params[2], -1)
    projected = torch.einsum("kij,i->kj", torch.tril(params[1]), torch.tensor(omega))
    value = (pi * torch.cos(params[0] @ torch.tensor(omega)) * torch.exp(-0.5 * (projected**2).sum(-1))).sum()
    return [g.numpy() for g in torch.autograd.grad(value, params)]


def draw(rng, locs, scale_tril, logits, size):
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    component = rng.choice(len(logits), size=size, p=probs)
    noise = rng.standard_normal((size, locs.shape[1]))
    x = locs[component] + np.einsum("nij,nj->ni", scale_tril[component], noise)
    return x, np.eye(len(logits))[component], noise


def per_sample_gradients(estimator, x, locs, scale_tril, logits, one_hot, noise, cotangent):
    """``{group: (N, entries)}`` per-sample gradients (torch float64, in chunks)."""
    out = {group: [] for group in GROUPS}
    lower = np.tril_indices(locs.shape[1])
    for start in range(0, len(x), CHUNK):
        rows = slice(start, start + CHUNK)
        size = len(x[rows])
        batched = [torch.tensor(np.broadcast_to(a, (size,) + a.shape)) for a in (locs, scale_tril, logits)]
        bars = shared_math.full_covariance_sample_vjp(
            estimator,
            *(torch.tensor(a[rows]) for a in (x,)),
            *batched,
            torch.tensor(one_hot[rows]),
            torch.tensor(noise[rows]),
            torch.tensor(cotangent[rows]),
        )
        out["locs"].append(bars[0].numpy().reshape(size, -1))
        out["scale_tril"].append(bars[1].numpy()[:, :, lower[0], lower[1]].reshape(size, -1))
        out["logits"].append(bars[2].numpy())
    return {group: np.concatenate(values) for group, values in out.items()}


def tail_index(samples, fraction=0.01):
    r"""Hill estimate of the tail index of the per-draw gradient norms from the largest
    ``fraction`` of draws: :math:`1/\overline{\log(a_{(i)}/a_{(k)})}`.  Below 2 the variance is
    infinite; near 1 the mean barely exists and Monte Carlo averages converge very slowly."""
    norms = np.sort(np.linalg.norm(samples, axis=1))[::-1]
    count = max(10, int(fraction * len(norms)))
    if norms[count] <= 0:
        return float("inf")
    return float(1.0 / np.mean(np.log(norms[:count] / norms[count])))


def summarize(samples, exact):
    """``(summed variance, share of the top 0.1 % draws, max |z| of the mean, tail index)``."""
    deviations = samples - samples.mean(0)
    squared = np.sum(deviations**2, axis=1)
    top = max(1, len(squared) // 1000)
    share = np.sort(squared)[-top:].sum() / max(squared.sum(), 1e-300)
    standard_error = samples.std(0, ddof=1) / math.sqrt(len(samples))
    z = np.abs(samples.mean(0) - exact) / np.where(standard_error > 0, standard_error, np.inf)
    return float(samples.var(0, ddof=1).sum()), float(share), float(np.max(z)), tail_index(samples)


def run(event_sizes, component_counts, num_samples):
    torch.set_num_threads(1)
    rows = []
    for regime, separation in SEPARATIONS.items():
        for num_components in component_counts:
            for event_size in event_sizes:
                seed = 1000 * num_components + 10 * event_size + int(separation)
                locs, scale_tril, logits = make_mixture(num_components, event_size, separation, seed)
                rng = np.random.default_rng(seed + 1)
                omega = rng.standard_normal(event_size) / math.sqrt(event_size)
                x, one_hot, noise = draw(rng, locs, scale_tril, logits, num_samples)
                cotangent = -np.sin(x @ omega)[:, None] * omega
                exact = exact_gradient(omega, locs, scale_tril, logits)
                lower = np.tril_indices(event_size)
                exact_groups = {
                    "locs": exact[0].ravel(),
                    "scale_tril": exact[1][:, lower[0], lower[1]].ravel(),
                    "logits": exact[2],
                }
                row = dict(regime=regime, K=num_components, D=event_size)
                for estimator in ESTIMATORS:
                    samples = per_sample_gradients(estimator, x, locs, scale_tril, logits, one_hot, noise, cotangent)
                    for group in GROUPS:
                        row[(estimator, group)] = summarize(samples[group], exact_groups[group])
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


def format_row(row):
    cells = [row["regime"], str(row["K"]), str(row["D"])]
    for group in ("locs", "scale_tril"):
        for estimator in ESTIMATORS:
            variance, share, _, _ = row[(estimator, group)]
            cells.append(f"{variance:.2e}" + (f" ({100 * share:.0f}%)" if share > 0.1 else ""))
        best_other = min(row[("implicit", group)][0], row[("hybrid", group)][0])
        cells.append(f"{row[('rao_blackwell', group)][0] / best_other:.2f}")
    variance, share, _, _ = row[("implicit", "logits")]
    cells.append(f"{variance:.2e}" + (f" ({100 * share:.0f}%)" if share > 0.1 else ""))
    indices = (row[("implicit", "locs")][3], row[("rao_blackwell", "locs")][3], row[("implicit", "logits")][3])
    cells.append(" / ".join(f"{index:.1f}" if index < 20 else ">20" for index in indices))
    light = [row[(e, g)][2] for e in ("hybrid", "rao_blackwell") for g in ("locs", "scale_tril")]
    heavy = [row[("implicit", g)][2] for g in GROUPS]
    cells.append(f"{max(light):.1f}")
    cells.append(f"{max(heavy):.1f}")
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| regime | K | D | locs: implicit | locs: hybrid | locs: rao_blackwell | locs: RB / best |"
    " scale_tril: implicit | scale_tril: hybrid | scale_tril: rao_blackwell | scale_tril: RB / best |"
    " logits (all three) | tail index: implicit locs / RB locs / logits | bias z: hybrid, RB | bias z: implicit, logits |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def write_doc(rows, num_samples, seconds):
    table = "\n".join([HEADER] + [format_row(row) for row in rows])
    ratios = [
        row[("rao_blackwell", g)][0] / min(row[("implicit", g)][0], row[("hybrid", g)][0])
        for row in rows
        for g in ("locs", "scale_tril")
    ]
    summary = (
        f"N = {num_samples} draws per configuration, float64, {seconds:.0f} s. Variance = per-sample variance "
        "summed over the group's entries (the lower triangle for `scale_tril`); a percentage is the share of the "
        "summed squared deviations from the largest 0.1 % of draws, shown where above 10 % (heavy tails: the "
        f"variance is then a lower bound). RB / best = rao_blackwell over the smaller of implicit and hybrid: "
        f"largest {max(ratios):.2f}, smallest {min(ratios):.2f}. Bias z: the largest |mean − exact| / s.e. over "
        "the entries of `locs` and `scale_tril` for hybrid and rao_blackwell (light tails), and over every entry of "
        "implicit (whose `logits` gradient all three share); the latter are not normal where the tails are heavy. "
        "Tail index: Hill estimate from the largest 1 % of per-draw gradient norms (below 2: infinite variance; "
        "near 1: the mean barely exists)."
    )
    block = f"<!-- generated:{MARKER} -->\n{summary}\n\n{table}\n<!-- /generated:{MARKER} -->"
    text = DOC.read_text()
    pattern = re.compile(rf"<!-- generated:{MARKER} -->.*?<!-- /generated:{MARKER} -->", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC} has no generated:{MARKER} block")
    DOC.write_text(pattern.sub(lambda _: block, text))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="D = 2, 4; K = 2; 512 draws; no doc update")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(HEADER)
    if args.quick:
        run((2, 4), (2,), 512)
        return
    rows = run(EVENT_SIZES, COMPONENT_COUNTS, NUM_SAMPLES)
    write_doc(rows, NUM_SAMPLES, time.perf_counter() - start)


if __name__ == "__main__":
    main()
