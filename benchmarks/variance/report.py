r"""Markdown tables, the figure and the generated blocks of ``docs/estimators.md``.

Nothing here computes a gradient: every function formats what :mod:`.grids` and
:mod:`.quadrature` return.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import shared_math

from .estimators import GROUPS
from .grids import auto_estimator, ratio_to_better, robustness_mixture
from .objectives import OBJECTIVES, Cosine

#: The registry's estimators, in its order (table columns).
ESTIMATOR_NAMES = tuple(shared_math.ESTIMATORS)


def format_number(value: float) -> str:
    """``3.2e-3`` style (two significant digits) outside [0.01, 1000), three digits inside."""
    if value != value:  # NaN
        return "nan"
    if value == 0 or 1e-2 <= abs(value) < 1e3:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _group_header(group):
    """``[f"{group}: first", second, ...]`` over the registry's estimators."""
    return [f"{group}: {name}" if i == 0 else name for i, name in enumerate(ESTIMATOR_NAMES)]


def _group_cells(row, group):
    """The registry's variances of one group; the better of implicit / hybrid in bold."""
    implicit, hybrid = row.variance["implicit", group], row.variance["hybrid", group]
    bold = {"implicit": implicit <= hybrid, "hybrid": hybrid < implicit}
    return [
        f"**{format_number(row.variance[name, group])}**"
        if bold.get(name)
        else format_number(row.variance[name, group])
        for name in ESTIMATOR_NAMES
    ]


def variance_tables(rows) -> str:
    """One Markdown table per objective; the better of implicit/hybrid in bold."""
    header = ["components", "K", "D", "auto"] + _group_header("locs") + _group_header("scales")
    header += ["logits: implicit", "score", "score-RB", "Pyro"]
    parts = []
    for objective_name in OBJECTIVES:
        body = []
        for row in (r for r in rows if r.objective == objective_name):
            cells = [row.separation, row.num_components, row.event_size, auto_estimator()]
            cells += _group_cells(row, "locs") + _group_cells(row, "scales")
            cells += [
                format_number(row.variance[estimator, "logits"]) for estimator in ("implicit", "score", "score_rb")
            ]
            cells.append(format_number(row.variance["pyro", "logits"]) if ("pyro", "logits") in row.variance else "—")
            body.append(cells)
        parts.append(f"**Objective: {objective_name}**\n\n" + _markdown_table(header, body))
    return "\n\n".join(parts)


def rule_table(rows) -> str:
    """Per D, over all objectives, separations and K, for locs and scales: the worst ratio of
    the default's (``auto``) variance to the better of implicit / hybrid, split by
    separation, its best (smallest) ratio, and the worst ratios of implicit and hybrid
    themselves (what a rule choosing only between those two would pay)."""
    header = [
        "D",
        "auto",
        "auto / better, mixed (worst)",
        "auto / better, separated (worst)",
        "auto / better (best)",
        "implicit / better (worst)",
        "hybrid / better (worst)",
    ]
    auto = auto_estimator()

    def ratios(estimator, event_size, separation=None):
        return [
            ratio_to_better(row, estimator, group)
            for row in rows
            if row.event_size == event_size and separation in (None, row.separation)
            for group in ("locs", "scales")
        ]

    body = []
    for event_size in sorted({row.event_size for row in rows}):
        cells = [event_size, auto]
        cells += [format_number(max(ratios(auto, event_size, separation))) for separation in ("mixed", "separated")]
        cells.append(format_number(min(ratios(auto, event_size))))
        cells += [format_number(max(ratios(estimator, event_size))) for estimator in ("implicit", "hybrid")]
        body.append(cells)
    return _markdown_table(header, body)


#: The issue's target: the default within this factor of the better of implicit / hybrid.
RATIO_BOUND = 1.5


def robustness_table(cases) -> str:
    """Per D, over the further random mixtures: worst ratios to the better of implicit / hybrid
    (locs and scales) of the default, of implicit and of hybrid, how many (mixture, objective,
    K, group) cases exceed :data:`RATIO_BOUND`, and where the default's worst was."""
    auto = auto_estimator()
    header = [
        "D",
        "mixtures per configuration",
        "auto / better, mixed (worst)",
        "auto / better, separated (worst)",
        "auto / better (median)",
        f"auto > {RATIO_BOUND:g} × better",
        "implicit / better (worst)",
        "hybrid / better (worst)",
        "auto's worst case",
    ]
    body = []
    for event_size in sorted({case.event_size for case in cases}):
        selected = [case for case in cases if case.event_size == event_size]
        worst = max(selected, key=lambda case: case.ratio(auto))
        body.append(
            [
                event_size,
                len({case.mixture_index for case in selected}),
                format_number(max(case.ratio(auto) for case in selected if case.separation == "mixed")),
                format_number(max(case.ratio(auto) for case in selected if case.separation == "separated")),
                format_number(float(np.median([case.ratio(auto) for case in selected]))),
                f"{sum(case.ratio(auto) > RATIO_BOUND for case in selected)} of {len(selected)}",
                format_number(max(case.ratio("implicit") for case in selected)),
                format_number(max(case.ratio("hybrid") for case in selected)),
                f"{worst.objective}, {worst.separation}, K={worst.num_components}, {worst.group}",
            ]
        )
    return _markdown_table(header, body)


def robustness_quadrature_text(worst, exact, swapped) -> str:
    """One paragraph: the worst D = 2 robustness case, Monte Carlo against quadrature, and the
    same problem with its coordinates swapped."""
    auto = auto_estimator()
    group = worst.group
    mixture, objective, _ = robustness_mixture(
        worst.objective, worst.separation, worst.num_components, 2, worst.mixture_index
    )
    better = min(exact["implicit", group], exact["hybrid", group])
    omega = (
        f"; ω = {np.array2string(objective.omega, precision=2, separator=', ')}"
        if isinstance(objective, Cosine)
        else ""
    )
    return (
        f"Worst D = 2 case ({worst.objective}, {worst.separation}, K = {worst.num_components}, {group}): "
        f"Monte Carlo auto / better = {format_number(worst.ratio(auto))}; exact by quadrature: "
        f"{', '.join(f'{name} {format_number(exact[name, group])}' for name in ESTIMATOR_NAMES)}, so auto / better = "
        f"{format_number(exact[auto, group] / better)}.  Its means (rows: components): "
        f"{np.array2string(mixture.locs, precision=2, separator=', ').replace(chr(10), '')}; "
        f"scales {format_number(mixture.scales.min())}–{format_number(mixture.scales.max())}; "
        f"weights {np.array2string(mixture.probs, precision=2, separator=', ')}{omega}.  With its two coordinates "
        f"swapped (exactly the same problem in another order): "
        f"{', '.join(f'{name} {format_number(swapped[name, group])}' for name in ESTIMATOR_NAMES)}."
    )


def leading_overlap_table(results) -> str:
    header = ["K", "overlapping coordinate"] + _group_header("locs") + _group_header("scales")
    header.append("rao_blackwell / implicit (locs; scales)")
    body = []
    for (num_components, overlap_first), exact in results.items():
        cells = [num_components, "first" if overlap_first else "second"]
        for group in ("locs", "scales"):
            cells += [format_number(exact[name, group]) for name in ESTIMATOR_NAMES]
        cells.append(
            "; ".join(
                format_number(exact["rao_blackwell", group] / exact["implicit", group]) for group in ("locs", "scales")
            )
        )
        body.append(cells)
    return _markdown_table(header, body)


def unbiasedness_summary(rows) -> str:
    """Bias z-tests of the unbiased estimators over the main grid (objectives with a closed form)."""
    lines = []
    for estimator in ESTIMATOR_NAMES + ("score", "score_rb"):
        tests = [(row, group, test) for row in rows for (name, group), test in row.z_tests.items() if name == estimator]
        failed = [(row, group, test) for row, group, test in tests if test.light > test.threshold]
        worst_row, worst_group, worst = max(tests, key=lambda item: item[2].light / item[2].threshold)
        heavy = [(row, group, test) for row, group, test in tests if test.num_heavy]
        line = (
            f"- `{estimator}`: {len(failed)} of {len(tests)} (configuration, group) tests above the Bonferroni threshold "
            f"on light-tailed entries; largest |z| = {worst.light:.2f} (threshold {worst.threshold:.2f}; {worst_group}, "
            f"{worst_row.objective}, {worst_row.separation}, K={worst_row.num_components}, D={worst_row.event_size})"
        )
        if heavy:
            largest = max(test.heavy for _, _, test in heavy)
            line += f"; heavy-tailed entries in {len(heavy)} tests (largest |z| there {largest:.1f}, not a valid test)"
        lines.append(line)
    return "\n".join(lines)


def _z_cell(tests) -> str:
    """Largest light-tailed |z| (bold above its threshold), then ``†`` and the largest
    heavy-tailed |z| when some entries are heavy-tailed (``—`` when no entry is light-tailed)."""
    light_tests = [test for test in tests if test.num_heavy < test.num_entries]
    if light_tests:
        light = max(test.light for test in light_tests)
        cell = f"**{light:.1f}**" if any(test.light > test.threshold for test in light_tests) else f"{light:.1f}"
    else:
        cell = "—"
    if any(test.num_heavy for test in tests):
        cell += f" †{max(test.heavy for test in tests):.1f}"
    return cell


def bias_table(rows) -> str:
    header = [
        "objective",
        "components",
        "K",
        "D",
        "Pyro locs",
        "Pyro scales",
        "Pyro logits",
        "implicit (all groups)",
        "hybrid (all groups)",
        "thresholds (K·D / K entries)",
    ]
    body = []
    for row in rows:
        cells = [row.objective, row.separation, row.num_components, row.event_size]
        cells += [_z_cell([row.z_tests["pyro", group]]) for group in GROUPS]
        cells += [_z_cell([row.z_tests[estimator, group] for group in GROUPS]) for estimator in ("implicit", "hybrid")]
        cells.append(f"{row.z_tests['pyro', 'locs'].threshold:.1f} / {row.z_tests['pyro', 'logits'].threshold:.1f}")
        body.append(cells)
    return _markdown_table(header, body)


def quadrature_bias_table(rows) -> str:
    header = [
        "objective",
        "components",
        "K",
        "Pyro locs",
        "Pyro scales",
        "Pyro logits",
        "cos∠(Pyro logits, exact)",
        "implicit (worst group)",
        "implicit variance, locs: exact / MC",
        "logits: exact / MC",
    ]
    body = [
        [row.objective, row.separation, row.num_components]
        + [format_number(row.relative_error["pyro", group]) for group in GROUPS]
        + [f"{row.cosine_logits:.2f}", format_number(max(row.relative_error["implicit", group] for group in GROUPS))]
        + [
            f"{format_number(row.implicit_variance[group])} / {format_number(row.implicit_mc_variance[group])}"
            for group in ("locs", "logits")
        ]
        for row in rows
    ]
    return _markdown_table(header, body)


def crossover_table(ratios, separations) -> str:
    header = ["objective", "K", "D"] + [f"Δ = {separation:g}" for separation in separations]
    body = [
        [objective_name, num_components, event_size] + [format_number(value) for value in values]
        for (objective_name, num_components, event_size), values in ratios.items()
    ]
    return _markdown_table(header, body)


def separation_table(results) -> str:
    header = [
        "Δ/σ",
        "exact ∂ELBO/∂ℓ₀",
        "SNR implicit",
        "SNR score",
        "SNR score-RB",
        "draws for batch SNR 1 (implicit)",
        "P(region with half the implicit signal)",
        "implicit std: exact / MC estimate",
    ]
    body = []
    for result in results:
        snr = {name: abs(result.exact) / std for name, std in result.std.items()}
        body.append(
            [
                f"{result.separation:g}",
                format_number(result.exact),
                format_number(snr["implicit"]),
                format_number(snr["score"]),
                format_number(snr["score_rb"]),
                format_number(max(1.0, (result.std["implicit"] / abs(result.exact)) ** 2)),
                format_number(result.signal_mass),
                f"{format_number(result.std['implicit'])} / {format_number(result.mc_std_implicit)}",
            ]
        )
    return _markdown_table(header, body)


def svi_table(results) -> str:
    header = [
        "Δ/σ",
        "estimator (logits)",
        "particles",
        "π₀ at step 100",
        "final π₀ (mean ± sd over seeds)",
        "RMS error of π₀, second half",
    ]
    body = []
    for (separation, estimator, particles), trajectory in results.items():
        second_half = trajectory[trajectory.shape[0] // 2 :]
        body.append(
            [
                f"{separation:g}",
                estimator,
                particles,
                f"{trajectory[99].mean():.3f}",
                f"{trajectory[-1].mean():.3f} ± {trajectory[-1].std():.3f}",
                f"{np.sqrt(((second_half - 0.8) ** 2).mean()):.3f}",
            ]
        )
    return _markdown_table(header, body)


def _family_label(family):
    return {"student_t": "Student-t (df = 3)", "gumbel": "Gumbel", "laplace": "Laplace", "normal": "Normal"}.get(
        family, family
    )


def family_table(rows) -> str:
    """Cosine objective, other component families: the registry's locs/scales variances,
    auto / better, and the largest bias |z| of the registry's estimators (all groups)."""
    header = ["family", "components", "K", "D"] + _group_header("locs") + _group_header("scales")
    header += ["auto / better (locs; scales)", "bias: largest |z| (threshold)"]
    body = []
    for row in rows:
        cells = [_family_label(row.family), row.separation, row.num_components, row.event_size]
        cells += _group_cells(row, "locs") + _group_cells(row, "scales")
        cells.append(
            "; ".join(format_number(ratio_to_better(row, auto_estimator(), group)) for group in ("locs", "scales"))
        )
        tests = [row.z_tests[name, group] for name in ESTIMATOR_NAMES for group in GROUPS]
        cells.append(f"{_z_cell(tests)} ({max(test.threshold for test in tests):.1f})")
        body.append(cells)
    return _markdown_table(header, body)


def family_rule_table(family_rows, normal_rows) -> str:
    """Per family (the Normal from the main grid's cosine rows at the same D), over
    separations, K and D, for locs and scales: worst ratios to the better of implicit /
    hybrid, the worst auto / hybrid, and how many bias tests of the registry's estimators
    exceed their Bonferroni threshold on light-tailed entries."""
    auto = auto_estimator()
    event_sizes = {row.event_size for row in family_rows}
    normal = [row for row in normal_rows if row.objective == "cosine" and row.event_size in event_sizes]
    header = [
        "family",
        "auto / better, mixed (worst)",
        "auto / better, separated (worst)",
        "auto / better (best)",
        "auto / hybrid (worst)",
        "implicit / better (worst)",
        "hybrid / better (worst)",
        "bias tests above threshold",
    ]
    body = []
    for family in ["normal"] + list(dict.fromkeys(row.family for row in family_rows)):
        selected = normal if family == "normal" else [row for row in family_rows if row.family == family]

        def ratios(estimator, separation=None, selected=selected):
            return [
                ratio_to_better(row, estimator, group)
                for row in selected
                if separation in (None, row.separation)
                for group in ("locs", "scales")
            ]

        tests = [row.z_tests[name, group] for row in selected for name in ESTIMATOR_NAMES for group in GROUPS]
        body.append(
            [_family_label(family) + (" (main grid)" if family == "normal" else "")]
            + [format_number(max(ratios(auto, separation))) for separation in ("mixed", "separated")]
            + [format_number(min(ratios(auto)))]
            + [
                format_number(
                    max(
                        row.variance[auto, group] / row.variance["hybrid", group]
                        for row in selected
                        for group in ("locs", "scales")
                    )
                )
            ]
            + [format_number(max(ratios(estimator))) for estimator in ("implicit", "hybrid")]
            + [f"{sum(test.light > test.threshold for test in tests)} of {len(tests)}"]
        )
    return _markdown_table(header, body)


#: Plot labels and colours (a registry estimator missing here is drawn under its own name).
ESTIMATOR_STYLE = {
    "implicit": ("implicit", "tab:blue"),
    "hybrid": ("hybrid (chosen component)", "tab:orange"),
    "rao_blackwell": ("rao_blackwell (= Pyro's locs/scales)", "tab:brown"),
    "pyro": ("Pyro MixtureOfDiagNormals (logits)", "tab:green"),
    "score": ("score function + baseline", "tab:red"),
    "score_rb": ("score function, Rao-Blackwellised", "tab:purple"),
}


def plot_variance(rows, path, num_components=8):
    """Variance vs D (log-log): rows objectives, columns parameter groups; solid mixed, dashed separated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(OBJECTIVES), len(GROUPS), figsize=(13, 10), sharex=True)
    for i, objective_name in enumerate(OBJECTIVES):
        for j, group in enumerate(GROUPS):
            axis = axes[i, j]
            for separation_name, linestyle in (("mixed", "-"), ("separated", "--")):
                selected = sorted(
                    (
                        r
                        for r in rows
                        if r.objective == objective_name
                        and r.separation == separation_name
                        and r.num_components == num_components
                    ),
                    key=lambda r: r.event_size,
                )
                for estimator in ESTIMATOR_NAMES + ("pyro", "score", "score_rb"):
                    label, color = ESTIMATOR_STYLE.get(estimator, (estimator, None))
                    if estimator == auto_estimator():
                        label = f"{label} = auto"
                    if (estimator in ESTIMATOR_NAMES and estimator != "implicit" and group == "logits") or (
                        estimator == "pyro" and group != "logits"
                    ):
                        continue  # every registry estimator's logits are implicit's; Pyro locs/scales = rao_blackwell
                    points = [
                        (r.event_size, r.variance[estimator, group])
                        for r in selected
                        if (estimator, group) in r.variance
                    ]
                    if points:
                        xs, ys = zip(*points)
                        axis.plot(
                            xs,
                            ys,
                            linestyle,
                            color=color,
                            marker="o",
                            markersize=3,
                            label=f"{label}, {separation_name}",
                        )
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.set_title(f"{objective_name}: {group}")
            axis.grid(True, which="major", alpha=0.3)
            if i == len(OBJECTIVES) - 1:
                axis.set_xlabel("event size D")
    legend = {}
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    figure.legend(legend.values(), legend.keys(), loc="lower center", ncol=3, fontsize=8)
    figure.supylabel("per-sample variance, summed over the group's entries (Monte Carlo)")
    figure.suptitle(
        f"Per-sample gradient variance vs D (K = {num_components}; solid: well-mixed, dashed: well-separated; "
        "one seeded random mixture per point)"
    )
    figure.tight_layout(rect=(0, 0.08, 1, 0.97))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def update_generated_blocks(path: Path, blocks: dict, title: str = "# Sample-gradient estimators") -> None:
    """Replace ``<!-- generated:NAME -->…<!-- /generated:NAME -->`` blocks of ``path`` (appending
    missing ones; a missing file starts with ``title``)."""
    text = path.read_text() if path.exists() else title + "\n"
    for name, content in blocks.items():
        begin, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
        block = f"{begin}\n{content.strip()}\n{end}"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        if pattern.search(text):
            text = pattern.sub(lambda _, block=block: block, text)
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
