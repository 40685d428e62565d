"""What a search writes: candidates.parquet, frontier.csv, best.json, pareto.png, report.html,
and the terminal table of the best per kind."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.ticker import MaxNLocator

from cosim.search.driver import Outcome, best_of, objective_value

KIND_COLORS = {"chunked": "#1f77b4", "pd": "#ff7f0e", "afd": "#2ca02c", "pd_afd": "#d62728"}


def candidates_frame(outcomes: list[Outcome]) -> pd.DataFrame:
    rows = []
    for o in outcomes:
        st, b, cf = o.static, o.best or {}, o.confirm or {}
        rows.append({
            "cid": o.cand.cid, "kind": o.cand.kind, "gpus": o.cand.gpus, "layout": o.cand.words,
            "settings": json.dumps(o.cand.settings, sort_keys=True), "stage": o.stage,
            "reason": o.reason, "memory_feasible": bool(st.get("feasible")),
            "memory": json.dumps(st.get("memory") or {}),
            "one_user_ttft_ms": st.get("ttft_ms_p50"), "one_user_tpot_ms": st.get("tpot_ms_p50"),
            "static_bound_tok_s_per_gpu": o.bound_tok_s_per_gpu or None,
            "simulations": len(o.points),
            "best_users": b.get("users"), "tok_s_per_gpu": b.get("output_tok_s_per_gpu"),
            "tok_s_per_user": b.get("tok_s_per_user_mean"), "attainment": b.get("attainment"),
            "ttft_ms_p90": b.get("ttft_ms_p90"), "tpot_ms_p90": b.get("tpot_ms_p90"),
            "usd_per_mtok": b.get("usd_per_mtok"),
            "ns3_tok_s_per_gpu": cf.get("output_tok_s_per_gpu"),
            "ns3_attainment": cf.get("attainment"),
        })
    return pd.DataFrame(rows)


def points_frame(outcomes: list[Outcome], target: float) -> pd.DataFrame:
    """Every simulated load of every candidate, marking those meeting the SLO target."""
    rows = []
    for o in outcomes:
        for p in o.points:
            if not p.get("feasible"):
                continue
            rows.append({"cid": o.cand.cid, "kind": o.cand.kind, "layout": o.cand.words,
                         "users": p["users"], "tok_s_per_gpu": p.get("output_tok_s_per_gpu"),
                         "tok_s_per_user": p.get("tok_s_per_user_mean"),
                         "attainment": p.get("attainment"),
                         "meets": p.get("attainment", 0.0) >= target})
    return pd.DataFrame(rows, columns=["cid", "kind", "layout", "users", "tok_s_per_gpu",
                                       "tok_s_per_user", "attainment", "meets"])


def pareto(df: pd.DataFrame) -> pd.DataFrame:
    """Points not dominated in (tok/s per GPU, tok/s per user), per kind."""
    keep = []
    for _, g in df[df["meets"]].groupby("kind"):
        g = g.sort_values("tok_s_per_user", ascending=False)
        best = -1.0
        for i, r in g.iterrows():
            if r["tok_s_per_gpu"] > best:
                keep.append(i)
                best = r["tok_s_per_gpu"]
    return df.loc[keep].sort_values(["kind", "tok_s_per_user"])


def best_document(outcomes: list[Outcome], kinds: list[str], objective: str,
                  budget: int, target: float = 0.9) -> dict[str, Any]:
    doc: dict[str, Any] = {"gpus": budget, "objective": objective, "by_kind": {}}
    for kind in kinds:
        o = best_of(outcomes, kind, objective)
        if o is None:
            mine = [x for x in outcomes if x.cand.kind == kind]
            reasons = sorted({x.reason.split(":")[0] for x in mine if x.reason})
            doc["by_kind"][kind] = {"answer": "infeasible", "candidates": len(mine),
                                    "binding": _common_reason(mine),
                                    "reason_kinds": reasons}
            continue
        doc["by_kind"][kind] = _entry(o)
    o = best_of(outcomes, None, objective)
    doc["overall"] = _entry(o) if o is not None else {"answer": "infeasible"}
    doc["static_vs_simulated"] = ranking_disagreement(outcomes, kinds, objective)
    failed = {x.cand.kind: x.confirm["error"] for x in outcomes
              if x.confirm is not None and x.confirm.get("error")}
    confirmed = [x for x in outcomes if x.confirm is not None and x.best is not None
                 and not x.confirm.get("error")]
    if failed:
        doc["ns3_failed"] = failed
    if confirmed:
        key = "output_tok_s_per_gpu"
        ana = sorted(confirmed, key=lambda x: -(x.best.get(key) or 0.0))
        ns3 = sorted(confirmed, key=lambda x: -(x.confirm.get(key) or 0.0))
        moves = [abs((x.confirm.get(key) or 0.0) / x.best[key] - 1) for x in confirmed
                 if x.best.get(key)]
        doc["ns3_confirmation"] = {
            "analytical_ranking": [x.cand.kind for x in ana],
            "ns3_ranking": [x.cand.kind for x in ns3],
            "ranking_changed": [x.cand.kind for x in ana] != [x.cand.kind for x in ns3],
            "max_relative_change_tok_s_per_gpu": max(moves, default=0.0),
            "still_meets_slo": {x.cand.kind: (x.confirm.get("attainment") or 0.0)
                                >= target for x in confirmed}}
    return doc


def ranking_disagreement(outcomes: list[Outcome], kinds: list[str],
                         objective: str) -> dict[str, Any]:
    """Per kind: of the pairs of simulated candidates, how many the static bound orders
    differently from the simulated objective (a candidate meeting the SLO at no load scores
    lowest)."""
    out: dict[str, Any] = {}
    for kind in kinds:
        sims = [o for o in outcomes if o.cand.kind == kind and o.stage == "simulated"]
        pairs = discordant = 0
        for i, a in enumerate(sims):
            for b in sims[i + 1:]:
                da = a.bound_tok_s_per_gpu - b.bound_tok_s_per_gpu
                db = objective_value(a.best, objective) - objective_value(b.best, objective)
                if da == 0 or db == 0 or db != db:
                    continue
                pairs += 1
                discordant += (da > 0) != (db > 0)
        out[kind] = {"simulated": len(sims), "pairs": pairs, "discordant": discordant,
                     "fraction": discordant / pairs if pairs else None}
    return out


def _common_reason(mine: list[Outcome]) -> str:
    """Why no candidate of a kind met the SLO: the simulated one that came closest, else the
    static reason of the candidate with the lowest one-user TPOT."""
    if not mine:
        return "no candidate of this kind fits the budget"
    sims = [x for x in mine if x.stage == "simulated" and x.points]
    if sims:
        closest = max(sims, key=lambda x: max(p.get("attainment", 0.0) for p in x.points))
        att = max(p.get("attainment", 0.0) for p in closest.points)
        return (f"{len(sims)} simulated, none meets the SLO; closest ({att:.0%} of requests): "
                f"{closest.cand.words}: {closest.reason}")
    slo_fail = [x for x in mine if x.static.get("feasible")]
    if not slo_fail:
        return f"every candidate: {mine[0].reason}"
    closest = min(slo_fail, key=lambda x: x.static.get("tpot_ms_p50") or 1e9)
    return f"closest: {closest.cand.words}: {closest.reason}"


def _entry(o: Outcome) -> dict[str, Any]:
    b = o.best or {}
    e = {"answer": "feasible", "layout": f"{o.cand.words}, {b.get('users')} users",
         "gpus": o.cand.gpus, "users": b.get("users"),
         "tok_s_per_gpu": b.get("output_tok_s_per_gpu"),
         "tok_s_per_user": b.get("tok_s_per_user_mean"), "attainment": b.get("attainment"),
         "usd_per_mtok": b.get("usd_per_mtok"), "stops_because": o.reason,
         # where the prediction came from: share of compute time measured / interpolated /
         # roofline, and the network backend that timed the fabric
         "compute_sources": b.get("compute_sources"), "network": b.get("network"),
         "settings": o.cand.settings}
    if o.confirm is not None:
        c = o.confirm
        e["ns3"] = ({"error": c["error"]} if c.get("error") else
                    {"tok_s_per_gpu": c.get("output_tok_s_per_gpu"),
                     "attainment": c.get("attainment"), "tpot_ms_p90": c.get("tpot_ms_p90")})
    return e


def plot_pareto(pts: pd.DataFrame, ttft_ms: float | None, tpot_ms: float | None,
                path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    front = pareto(pts) if len(pts) else pts
    for kind, g in pts.groupby("kind"):
        color = KIND_COLORS.get(kind, "gray")
        ok = g[g["meets"]]
        ax.scatter(ok["tok_s_per_user"], ok["tok_s_per_gpu"], color=color, s=18, alpha=0.5)
        ax.scatter(g[~g["meets"]]["tok_s_per_user"], g[~g["meets"]]["tok_s_per_gpu"],
                   color=color, s=10, marker="x", alpha=0.3)
        f = front[front["kind"] == kind]
        if len(f):
            ax.plot(f["tok_s_per_user"], f["tok_s_per_gpu"], color=color, label=kind, lw=1.8)
            for _, r in f.iterrows():
                ax.annotate(f"{r['users']}u", (r["tok_s_per_user"], r["tok_s_per_gpu"]),
                            fontsize=7, xytext=(3, 3), textcoords="offset points")
    if tpot_ms:
        ax.axvline(1000.0 / tpot_ms, color="k", ls="--", lw=1)
        ax.text(1000.0 / tpot_ms, ax.get_ylim()[1] * 0.97, f" TPOT {tpot_ms:g} ms",
                fontsize=8, va="top")
    ax.set_xlabel("output tokens/s per user")
    ax.set_ylabel("output tokens/s per GPU")
    ttl = title + (f"\nSLO: TTFT {ttft_ms:g} ms, TPOT {tpot_ms:g} ms" if ttft_ms and tpot_ms else "")
    ax.set_title(ttl, fontsize=10)
    ax.grid(alpha=0.3)
    if len(front):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _svg(pts: pd.DataFrame, tpot_ms: float | None) -> str:
    """An inline SVG scatter; each point's <title> shows its configuration on hover."""
    w, h, m = 900, 480, 60
    right = 130  # the legend's column, outside the axes
    if not len(pts):
        return "<p>No simulated point.</p>"
    xmax = float(max(pts["tok_s_per_user"].max(), 1000.0 / tpot_ms if tpot_ms else 0)) * 1.05
    ymax = float(pts["tok_s_per_gpu"].max()) * 1.08 or 1.0

    def sx(v: float) -> float:
        return m + (w - m - right) * v / xmax

    def sy(v: float) -> float:
        return h - m - (h - 2 * m) * v / ymax

    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
          f'style="font:11px sans-serif">',
          f'<line x1="{m}" y1="{h - m}" x2="{w - right}" y2="{h - m}" stroke="black"/>',
          f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h - m}" stroke="black"/>',
          f'<text x="{(w - right + m) / 2}" y="{h - 15}" text-anchor="middle">'
          'output tokens/s per user</text>',
          f'<text x="15" y="{h / 2}" transform="rotate(-90 15 {h / 2})" text-anchor="middle">'
          'output tokens/s per GPU</text>']
    for xv in (v for v in MaxNLocator(nbins=6).tick_values(0, xmax) if 0 <= v <= xmax):
        el.append(f'<text x="{sx(xv):.0f}" y="{h - m + 14}" text-anchor="middle">{xv:g}</text>'
                  f'<line x1="{sx(xv):.1f}" y1="{h - m}" x2="{sx(xv):.1f}" y2="{h - m + 4}" '
                  'stroke="black"/>')
    for yv in (v for v in MaxNLocator(nbins=6).tick_values(0, ymax) if 0 <= v <= ymax):
        el.append(f'<text x="{m - 7}" y="{sy(yv) + 4:.0f}" text-anchor="end">{yv:g}</text>'
                  f'<line x1="{m - 4}" y1="{sy(yv):.1f}" x2="{m}" y2="{sy(yv):.1f}" stroke="black"/>')
    if tpot_ms:
        x = sx(1000.0 / tpot_ms)
        el.append(f'<line x1="{x:.1f}" y1="{m}" x2="{x:.1f}" y2="{h - m}" stroke="gray" '
                  f'stroke-dasharray="4"/>')
        # the label on the line's left when the line is near the right end of the axis
        left = x > w - right - 90
        el.append(f'<text x="{x - 3 if left else x + 3:.1f}" y="{m + 10}" text-anchor='
                  f'"{"end" if left else "start"}">TPOT {tpot_ms:g} ms</text>')
    for kind, g in pts.groupby("kind"):
        c = KIND_COLORS.get(kind, "gray")
        for _, r in g.iterrows():
            tip = html.escape(f"{kind}: {r['layout']}, {r['users']} users — "
                              f"{r['tok_s_per_gpu']:.1f} tok/s/GPU, {r['tok_s_per_user']:.1f} "
                              f"tok/s/user, SLO met by {r['attainment']:.0%}")
            op = "0.9" if r["meets"] else "0.25"
            el.append(f'<circle cx="{sx(r["tok_s_per_user"]):.1f}" cy="{sy(r["tok_s_per_gpu"]):.1f}"'
                      f' r="5" fill="{c}" fill-opacity="{op}"><title>{tip}</title></circle>')
    present = set(pts["kind"])
    for i, (kind, c) in enumerate((k, c) for k, c in KIND_COLORS.items() if k in present):
        el.append(f'<circle cx="{w - right + 25}" cy="{m + 14 * i}" r="5" fill="{c}"/>'
                  f'<text x="{w - right + 35}" y="{m + 4 + 14 * i}">{kind}</text>')
    el.append("</svg>")
    return "\n".join(el)


def _sources(e: dict[str, Any]) -> str:
    """'measured 32% / interpolated 61% / roofline 6% of compute time; network analytical'."""
    src = e.get("compute_sources") or {}
    parts = " / ".join(f"{k} {v:.0%}" for k, v in src.items())
    return f"{parts or 'compute: unknown'} of compute time; network {e.get('network') or '?'}"


def write_report(path: Path, doc: dict[str, Any], cands: pd.DataFrame, pts: pd.DataFrame,
                 title: str, tpot_ms: float | None) -> None:
    """One self-contained page (no external resources): plot, best per kind, reasons."""
    rows = []
    for kind, e in doc["by_kind"].items():
        if e["answer"] == "feasible":
            rows.append(f"<tr><td>{kind}</td><td>{html.escape(e['layout'])}</td>"
                        f"<td>{e['tok_s_per_gpu']:.1f}</td><td>{e['tok_s_per_user']:.1f}</td>"
                        f"<td>{e['attainment']:.0%}</td>"
                        f"<td>{'' if e['usd_per_mtok'] is None else format(e['usd_per_mtok'], '.3f')}</td>"
                        f"<td>{html.escape(e['stops_because'])}</td>"
                        f"<td>{html.escape(_sources(e))}</td></tr>")
        else:
            rows.append(f"<tr><td>{kind}</td><td colspan=5>infeasible ({e['candidates']} "
                        f"candidates)</td><td>{html.escape(e['binding'])}</td><td></td></tr>")
    counts = (cands.groupby(["kind", "stage"]).size().unstack(fill_value=0)
              .rename_axis(index=None, columns=None))
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:24px;max-width:1100px}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:4px 8px;
vertical-align:top}}th{{background:#f3f3f3}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Budget {doc['gpus']} GPUs, objective <b>{doc['objective']}</b>. Overall best:
<b>{html.escape(str(doc['overall'].get('layout', 'infeasible')))}</b>.</p>
<h2>Tokens/s per GPU against tokens/s per user</h2>
<p>Hover a point for its configuration; faded points miss the SLO target.</p>
{_svg(pts, tpot_ms)}
<h2>Best per kind, and why it stops where it does</h2>
<table><tr><th>kind</th><th>layout</th><th>tok/s/GPU</th><th>tok/s/user</th><th>SLO met</th>
<th>$/Mtok</th><th>stops because</th><th>source</th></tr>{''.join(rows)}</table>
<h2>Candidates by stage</h2>{counts.to_html()}
<h2>All candidates</h2>
{cands[["kind", "gpus", "layout", "stage", "reason", "best_users", "tok_s_per_gpu",
        "tok_s_per_user"]].to_html(index=False, na_rep="", float_format=lambda v: f"{v:.1f}")}
</body></html>"""
    path.write_text(page)


def terminal_table(doc: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title=f"cosim-search: best per kind on {doc['gpus']} GPUs ({doc['objective']})")
    for col in ("kind", "answer", "tok/s/GPU", "tok/s/user", "why it stops"):
        t.add_column(col, overflow="fold")
    for kind, e in doc["by_kind"].items():
        if e["answer"] == "feasible":
            t.add_row(kind, e["layout"], f"{e['tok_s_per_gpu']:.1f}", f"{e['tok_s_per_user']:.1f}",
                      e["stops_because"])
        else:
            t.add_row(kind, "infeasible", "", "", e["binding"])
    return t


def write_all(out_dir: Path, outcomes: list[Outcome], kinds: list[str], objective: str,
              budget: int, target: float, title: str, ttft_ms: float | None,
              tpot_ms: float | None) -> dict[str, Any]:
    cands = candidates_frame(outcomes)
    pts = points_frame(outcomes, target)
    doc = best_document(outcomes, kinds, objective, budget, target)
    cands.to_parquet(out_dir / "candidates.parquet", index=False)
    front = pareto(pts) if len(pts) else pts
    front.to_csv(out_dir / "frontier.csv", index=False)
    (out_dir / "best.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")
    plot_pareto(pts, ttft_ms, tpot_ms, out_dir / "pareto.png", title)
    write_report(out_dir / "report.html", doc, cands, pts, title, tpot_ms)
    return doc


__all__ = ["write_all", "terminal_table", "objective_value", "pareto"]
