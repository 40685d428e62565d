"""pareto.png: every run as a point coloured by group, one frontier line per group.

SLO lines: with tokens/s per user on an axis, the TPOT objective is the line at
1000 / slo.tpot_ms tokens/s per user (a user streams at 1/TPOT; points left of it miss
the TPOT objective on average); the TTFT objective has no axis here and is named in the
legend. Points are labelled with their configuration (short_label: the overrides that
vary, without the group the colour shows); a panel with more than LABEL_ALL points labels
its frontier only, and coinciding points share one label.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from cosim.report.frontier import frontier_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LABEL_ALL = 16  # label every point up to this many in a panel, else the frontier points only
NEAR = 0.03  # points closer than this share of both axes share one label (they would overlap)
PER_USER = ("tok_s_per_user_mean",)  # metrics in tokens/s per user: 1000/TPOT is their SLO
AXIS_LABELS = {
    "tok_s_per_user_mean": "tokens/s per user (mean of 1/TPOT)",
    "output_tok_s_per_gpu": "output tokens/s per GPU",
    "total_tok_s_per_gpu": "total (input + output) tokens/s per GPU",
    "goodput_tok_s": "goodput (output tokens/s meeting the SLO)",
}


def plot_pareto(runs: pd.DataFrame, x: str, y: str, path: str | Path, *,
                title: str = "", max_panels: int = 12) -> Path:
    """Draw `runs` (from cosim.report.best.annotate) into `path` (see draw_pareto)."""
    path = Path(path)
    fig = draw_pareto(runs, x, y, title=title, max_panels=max_panels)
    import matplotlib.pyplot as plt  # after draw_pareto chose the Agg backend

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png")  # also for a temporary name
    plt.close(fig)
    return path


def draw_pareto(runs: pd.DataFrame, x: str, y: str, *, title: str = "",
                max_panels: int = 12) -> Figure:
    """The matplotlib Figure of `runs` (from cosim.report.best.annotate); one panel per
    scenario, its SLO lines and point labels (module docstring).

    Filled markers: eligible runs (feasible, meeting the SLO-attainment threshold); hollow:
    the others that have both metrics. Solid lines: each group's frontier among eligible
    runs; dashed black: the scenario's frontier over all groups.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)  # files only; never needs a display
    import matplotlib.pyplot as plt

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
        _slo_lines(ax, rows, x, y)
        _point_labels(ax, rows[rows[x].notna() & rows[y].notna()], x, y)
        ax.set_title(scen, fontsize=9)
        ax.set_xlabel(AXIS_LABELS.get(x, x))
        ax.set_ylabel(AXIS_LABELS.get(y, y))
        ax.grid(True, alpha=0.3)
        ax.margins(0.08)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:  # wrapped to the figure's width so that it fits
        fig.suptitle("\n".join(textwrap.wrap(title, width=int(70 * ncol))), fontsize=10)
    fig.tight_layout()
    return fig


def _one(rows: pd.DataFrame, col: str) -> float | None:
    if col not in rows.columns:
        return None
    vals = pd.to_numeric(rows[col], errors="coerce").dropna().unique()
    return float(vals[0]) if len(vals) == 1 else None


def _slo_lines(ax, rows: pd.DataFrame, x: str, y: str) -> None:
    """The TPOT objective as a line on a per-user axis; the TTFT objective as a note."""
    tpot = _one(rows, "slo.tpot_ms")
    ttft = _one(rows, "slo.ttft_ms")
    if tpot:
        speed = 1000.0 / tpot
        text = f"TPOT SLO {tpot:g} ms = {speed:.3g} tok/s/user"
        if x in PER_USER:
            ax.axvline(speed, color="grey", ls=":", lw=1.2, zorder=1, label=text)
        elif y in PER_USER:
            ax.axhline(speed, color="grey", ls=":", lw=1.2, zorder=1, label=text)
    notes = [f"TTFT SLO {ttft:g} ms"] if ttft else []
    if tpot and x not in PER_USER and y not in PER_USER:
        notes.append(f"TPOT SLO {tpot:g} ms")
    if notes:  # no axis for it: a legend entry (the legend finds a free corner)
        ax.plot([], [], ls="none", label=", ".join(notes) + " (not on an axis)")


def short_label(row: pd.Series) -> str:
    """A point's label on the plot: the run's label without what its colour says (a group
    choice such as `deployment=pd`), each key cut to its last part (`users=16`, `tp=8`)."""
    parts = []
    for part in str(row["label"]).split():
        key, eq, val = part.partition("=")
        if eq and "." not in key and val == str(row.get("group")):
            continue
        parts.append(f"{key.lstrip('+').rsplit('.', 1)[-1]}={val}" if eq else part)
    return " ".join(parts) or str(row["label"])


def _point_labels(ax, rows: pd.DataFrame, x: str, y: str) -> None:
    """Label points; points that coincide on the plot (within NEAR of the axes' spans, which
    start at 0) share one label, naming each point's group when they differ."""
    shown = rows if len(rows) <= LABEL_ALL else rows[rows["on_frontier"]]
    if shown.empty:
        return
    xs, ys = rows[x].astype(float), rows[y].astype(float)
    xspan = (xs.max() - min(xs.min(), 0.0)) or 1.0
    yspan = (ys.max() - min(ys.min(), 0.0)) or 1.0
    mid = (xs.min() + xs.max()) / 2
    spots: list[tuple[float, float, list[tuple[str, str]]]] = []
    for _, r in shown.iterrows():
        px, py = float(r[x]), float(r[y])
        near = [sp for sp in spots if abs(sp[0] - px) <= NEAR * xspan
                and abs(sp[1] - py) <= NEAR * yspan]
        if not near:
            spots.append((px, py, []))
            near = [spots[-1]]
        texts = near[0][2]
        entry = (str(r["group"]), short_label(r))
        if entry not in texts:
            texts.append(entry)
    for px, py, texts in spots:
        mixed = len({g for g, _ in texts}) > 1
        text = " / ".join(f"{g}: {t}" if mixed else t for g, t in texts)
        right = px > mid and xs.nunique() > 1  # write inwards, not off the panel
        ax.annotate(text, (px, py), xytext=(-4 if right else 4, 3),
                    textcoords="offset points", ha="right" if right else "left",
                    fontsize=6, alpha=0.85, zorder=4)
