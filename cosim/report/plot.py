"""pareto.png: every run as a point coloured by group, one frontier line per group."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from cosim.report.frontier import frontier_curve

AXIS_LABELS = {
    "tok_s_per_user_mean": "tokens/s per user (mean of 1/TPOT)",
    "output_tok_s_per_gpu": "output tokens/s per GPU",
    "total_tok_s_per_gpu": "total (input + output) tokens/s per GPU",
    "goodput_tok_s": "goodput (output tokens/s meeting the SLO)",
}


def plot_pareto(runs: pd.DataFrame, x: str, y: str, path: str | Path, *,
                title: str = "", max_panels: int = 12) -> Path:
    """Draw `runs` (from cosim.report.best.annotate) into `path`; one panel per scenario.

    Filled markers: eligible runs (feasible, meeting the SLO-attainment threshold); hollow:
    the others that have both metrics. Solid lines: each group's frontier among eligible
    runs; dashed black: the scenario's frontier over all groups.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)  # files only; never needs a display
    import matplotlib.pyplot as plt

    path = Path(path)
    scenarios = list(dict.fromkeys(runs["scenario"]))[:max_panels]
    groups = sorted(dict.fromkeys(runs["group"]))
    cmap = plt.get_cmap("tab10")
    colour = {g: cmap(i % 10) for i, g in enumerate(groups)}
    ncol = min(len(scenarios), 3) or 1
    nrow = math.ceil(len(scenarios) / ncol) or 1
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.5 * ncol, 4.2 * nrow), squeeze=False)
    for ax in axes.flat[len(scenarios):]:
        ax.set_visible(False)
    for ax, scen in zip(axes.flat, scenarios, strict=False):
        rows = runs[runs["scenario"] == scen]
        for g in groups:
            gr = rows[rows["group"] == g]
            has = gr[gr[x].notna() & gr[y].notna()]
            if has.empty:
                continue
            el = has[has["eligible"]]
            other = has[~has["eligible"]]
            ax.scatter(el[x], el[y], color=colour[g], s=28, label=g if len(el) else None, zorder=3)
            ax.scatter(other[x], other[y], facecolors="none", edgecolors=colour[g], s=28,
                       label=None if len(el) else f"{g} (no eligible run)", zorder=3)
            if len(el):
                fx, fy = frontier_curve(el[x], el[y])
                ax.plot(fx, fy, color=colour[g], lw=1.6, zorder=2)
        el_all = rows[rows["eligible"]]
        if el_all["group"].nunique() > 1:
            fx, fy = frontier_curve(el_all[x], el_all[y])
            ax.plot(fx, fy, color="black", ls="--", lw=1.0, zorder=1,
                    label="frontier (all)")
        ax.set_title(scen, fontsize=9)
        ax.set_xlabel(AXIS_LABELS.get(x, x))
        ax.set_ylabel(AXIS_LABELS.get(y, y))
        ax.grid(True, alpha=0.3)
        ax.margins(0.08)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png")  # also for a temporary name
    plt.close(fig)
    return path
