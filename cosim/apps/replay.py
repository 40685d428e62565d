"""`cosim-replay`: re-time a run's recorded flows (flows.parquet) on another fabric or backend.

    cosim-replay flows=outputs/.../flows.parquet topology=gb200_nvl72 network=analytical

No serving model runs: every recorded group keeps its time zero and its flows are re-timed
together (cosim.network.flow_replay). Writes replay.json and replay.csv into the Hydra run
folder: per traffic class the transfer-time distribution before and after, the slowdown, and
the bottleneck link. docs/replay.md.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import MISSING, OmegaConf

from cosim.config.apps import app_schema
from cosim.config.network import NetworkConfig
from cosim.config.topology import TopologyConfig
from cosim.errors import ConfigError
from cosim.files import StagedFiles
from cosim.network.backend import backend_variant, make_backend
from cosim.network.fabric import LINK_CLASS_NAMES, FabricGraph
from cosim.network.flow_replay import (
    GpuMapError,
    Transfers,
    combined_key,
    gpu_mapping,
    link_name,
    retime,
    timed_sizes,
    transfers,
    weighted_quantiles,
)
from cosim.network.flow_trace import FlowTrace, FlowTraceError, read_flow_trace
from cosim.network.topology import build_fabric

QUANTILES = (0.5, 0.9, 0.99)
CSV_COLUMNS = ("traffic_class", "transfers", "layer_transfers", "before_p50_us",
               "before_p90_us", "before_p99_us", "before_mean_us", "after_p50_us", "after_p90_us",
               "after_p99_us", "after_mean_us", "slowdown", "slowdown_p99", "slowdown_max",
               "bottleneck_before", "bottleneck_before_share", "bottleneck_after",
               "bottleneck_after_share", "bottleneck_after_link_class")


@dataclass
class ReplayOptions:
    # null: the GPU counts must match (identity); "first": recorded GPU g -> GPU g of a
    # topology at least as large; a list of target GPU ids, one per recorded GPU; or a file
    # holding such a list (JSON, or ids separated by commas / whitespace / lines).
    gpu_map: Any = None
    patterns_in_json: int = 200  # per-pattern detail kept in replay.json (largest first)


@app_schema("replay_schema")
@dataclass
class ReplayConfig:
    flows: str = MISSING  # the flows.parquet of a run with output.flows=true
    topology: TopologyConfig | None = None  # null: the topology the trace ran on
    network: NetworkConfig = MISSING
    replay: ReplayOptions = field(default_factory=ReplayOptions)


def read_gpu_map(spec: Any) -> Any:
    """replay.gpu_map as None, 'first' or a list of ints (a file is read; errors name it)."""
    if spec is None or OmegaConf.is_list(spec) or isinstance(spec, (list, tuple)):
        return None if spec is None else list(spec)
    text = str(spec)
    if text == "first":
        return text
    p = Path(text)
    if not p.is_file():
        raise ConfigError("replay.gpu_map", f"{text}: no such file (give a list, a file, or first)")
    raw = p.read_text(errors="replace")
    try:
        val = json.loads(raw)
        if isinstance(val, list):
            return val
    except ValueError:
        pass
    out = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        for tok in line.replace(",", " ").split():
            try:
                out.append(int(tok))
            except ValueError:
                raise ConfigError("replay.gpu_map",
                                  f"{p}:{lineno}: {tok!r} is not a GPU id") from None
    return out


def _recorded_topology(trace: FlowTrace, where: str) -> TopologyConfig:
    raw = (trace.metadata.get("topology") or {}).get("config")
    if not isinstance(raw, dict):
        raise ConfigError("flows", f"{where}: the metadata holds no topology config")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TopologyConfig), raw))
    except Exception as e:  # a hand-edited metadata entry
        raise ConfigError("flows", f"{where}: recorded topology unreadable ({e})") from None


def _bottlenecks(graph: FabricGraph, cols: dict, src: np.ndarray, dst: np.ndarray,
                 size: np.ndarray, tr: Transfers, rep_rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per transfer: (bottleneck link id, its bytes / capacity seconds), from one group of
    each pattern (groups of a pattern carry the same flows)."""
    k = tr.group.size
    link = np.full(k, -1, dtype=np.int64)
    bound = np.zeros(k)
    rows = rep_rows[(src[rep_rows] != dst[rep_rows]) & (size[rep_rows] > 0)]
    if rows.size:
        indptr, ids = graph.routes(src[rows], dst[rows])
        owner = np.repeat(tr.row_key[rows], np.diff(indptr))
        nl = graph.num_links
        key = owner * nl + ids
        uk, inv = np.unique(key, return_inverse=True)
        per = np.bincount(inv.ravel(), weights=np.repeat(size[rows].astype(np.float64),
                                                         np.diff(indptr)))
        t = per * 8.0 / graph.link_capacity_bps[uk % nl]
        tk = uk // nl
        order = np.lexsort((-t, tk))  # per transfer, largest load first
        firsts = order[np.r_[True, tk[order][1:] != tk[order][:-1]]]
        link[tk[firsts]] = uk[firsts] % nl
        bound[tk[firsts]] = t[firsts]
    # spread to the transfers of the other groups of each pattern
    first = _first_rows(tr)
    key2 = combined_key(tr.pattern, pd.factorize(tr.traffic_class)[0], cols["layer"][first],
                        cols["micro_batch"][first])
    _, inv2 = np.unique(key2, return_inverse=True)
    inv2 = inv2.ravel()
    known = link >= 0
    best_link = np.full(inv2.max() + 1 if inv2.size else 0, -1, dtype=np.int64)
    best_bound = np.zeros(best_link.size)
    best_link[inv2[known]] = link[known]
    best_bound[inv2[known]] = bound[known]
    return best_link[inv2], best_bound[inv2]


def _first_rows(tr: Transfers) -> np.ndarray:
    first = np.zeros(tr.group.size, dtype=np.int64)
    first[tr.row_key[::-1]] = np.arange(tr.row_key.size)[::-1]
    return first


def _modal(names: list[str], w: np.ndarray) -> tuple[str | None, float | None]:
    if not names:
        return None, None
    acc: dict[str, float] = {}
    for n, x in zip(names, w.tolist(), strict=True):
        acc[n] = acc.get(n, 0.0) + x
    best = max(acc, key=lambda n: (acc[n], n))
    total = float(w.sum())
    return best, (acc[best] / total if total > 0 else None)


def class_table(tr: Transfers, link_b: np.ndarray, link_a: np.ndarray, g_before: FabricGraph,
                g_after: FabricGraph) -> list[dict]:
    """One row per traffic class (CSV_COLUMNS)."""
    out = []
    for cls in sorted(set(tr.traffic_class.tolist())):
        sel = tr.traffic_class == cls
        w = tr.weight[sel]
        b, a = tr.before_s[sel], tr.after_s[sel]
        qb, qa = weighted_quantiles(b, w, QUANTILES), weighted_quantiles(a, w, QUANTILES)
        mb = float(np.average(b, weights=w))
        ma = float(np.average(a, weights=w))
        ratio = np.where(b > 0, a / np.where(b > 0, b, 1.0), 1.0)
        lb, la = link_b[sel], link_a[sel]
        nb = [link_name(g_before, x) for x in lb[lb >= 0].tolist()]
        na = [link_name(g_after, x) for x in la[la >= 0].tolist()]
        bb, bb_share = _modal(nb, w[lb >= 0])
        ba, ba_share = _modal(na, w[la >= 0])
        cls_a = None
        if la[la >= 0].size:
            kinds = [LINK_CLASS_NAMES[int(g_after.link_class[x])] for x in la[la >= 0].tolist()]
            cls_a = _modal(kinds, w[la >= 0])[0]
        out.append({
            "traffic_class": cls, "transfers": int(sel.sum()), "layer_transfers": float(w.sum()),
            **{f"before_p{round(q * 100)}_us": v * 1e6 for q, v in zip(QUANTILES, qb, strict=True)},
            "before_mean_us": mb * 1e6,
            **{f"after_p{round(q * 100)}_us": v * 1e6 for q, v in zip(QUANTILES, qa, strict=True)},
            "after_mean_us": ma * 1e6,
            "slowdown": ma / mb if mb > 0 else None,
            "slowdown_p99": qa[-1] / qb[-1] if qb[-1] > 0 else None,
            "slowdown_max": float(ratio.max()) if ratio.size else None,
            "bottleneck_before": bb, "bottleneck_before_share": bb_share,
            "bottleneck_after": ba, "bottleneck_after_share": ba_share,
            "bottleneck_after_link_class": cls_a,
        })
    return out


def flow_stats(cols: dict, completion_after: np.ndarray) -> list[dict]:
    """Per traffic class, each flow's own completion time (completion - start), weighted by
    the layers its group stands for: p50 / p99 / mean in us, before and after."""
    out = []
    w = cols["layers"].astype(np.float64)
    before = cols["completion_s"] - cols["start_s"]
    after = completion_after - cols["start_s"]
    code, names = pd.factorize(cols["traffic_class"], sort=True)
    for k, cls in enumerate(names):
        sel = code == k
        row: dict = {"traffic_class": str(cls), "flows": int(sel.sum())}
        for name, d in (("before", before[sel]), ("after", after[sel])):
            q = weighted_quantiles(d, w[sel], (0.5, 0.99))
            row[f"{name}_p50_us"], row[f"{name}_p99_us"] = q[0] * 1e6, q[1] * 1e6
            row[f"{name}_mean_us"] = float(np.average(d, weights=w[sel])) * 1e6
        out.append(row)
    return out


def _iteration_stats(tr: Transfers) -> dict:
    """Network seconds per iteration (sum of its transfers x the layers each stands for)."""
    if tr.group.size == 0:
        return {}
    key = tr.instance.astype(np.int64) * (int(tr.iteration.max()) + 2) + tr.iteration + 1
    _, inv = np.unique(key, return_inverse=True)
    inv = inv.ravel()
    out = {"iterations": int(inv.max()) + 1}
    for name, d in (("before", tr.before_s), ("after", tr.after_s)):
        s = np.bincount(inv, weights=d * tr.weight)
        out[f"{name}_mean_ms"] = float(s.mean()) * 1e3
        out[f"{name}_p99_ms"] = float(np.quantile(s, 0.99, method="inverted_cdf")) * 1e3
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def classes_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue()


def replay(flows_path: str, topology: TopologyConfig | None, network: Any,
           gpu_map: Any = None, patterns_in_json: int = 200) -> dict:
    """Re-time a flow trace; the replay.json document (its `classes` are replay.csv's rows)."""
    try:
        trace = read_flow_trace(flows_path)
    except FlowTraceError as e:
        raise ConfigError("flows", str(e)) from None
    cols, meta = trace.columns, trace.metadata
    t_rec = _recorded_topology(trace, flows_path)
    g_before = build_fabric(t_rec)
    topo = topology if topology is not None else t_rec
    g_after = build_fabric(topo)
    n_rec = int(meta["topology"].get("num_gpus") or g_before.num_gpus)
    used = np.concatenate([cols["src"], cols["dst"]]) if trace.rows else np.zeros(0, np.int64)
    if used.size and int(used.max()) >= n_rec:
        raise ConfigError("flows", f"{flows_path}: GPU {int(used.max())} outside the recorded "
                          f"topology's {n_rec} GPUs")
    try:
        gmap = gpu_mapping(n_rec, g_after.num_gpus, read_gpu_map(gpu_map), used)
    except GpuMapError as e:
        raise ConfigError("replay.gpu_map", f"{e} (recorded {meta['topology'].get('name')} "
                          f"{n_rec} GPUs, replay {topo.name} {g_after.num_gpus} GPUs)") from None
    grid = meta.get("cache_grid_percent")
    backend = make_backend(network, g_after)
    try:
        try:
            new = retime(cols, backend, gmap, grid)
        except ValueError as e:
            raise ConfigError("flows", f"{flows_path}: {e}") from None
    finally:
        backend.close()
    tr = transfers(cols, new.completion_s)
    size = timed_sizes(cols["bytes"], grid)
    rep = np.flatnonzero(cols["group"] == cols["group"][new.pattern_first_row[cols["pattern"]]])
    link_b, bound_b = _bottlenecks(g_before, cols, cols["src"], cols["dst"], size, tr, rep)
    link_a, bound_a = _bottlenecks(g_after, cols, gmap[cols["src"]], gmap[cols["dst"]], size,
                                   tr, rep)
    table = class_table(tr, link_b, link_a, g_before, g_after)
    exact = bool(np.array_equal(new.completion_s, cols["completion_s"]))
    # per pattern detail, the most layer-transfers first
    pats = []
    for p in np.unique(tr.pattern).tolist():
        sel = tr.pattern == p
        first = np.flatnonzero(sel)[np.argmax(tr.before_s[sel])]
        pats.append({"pattern": p, "traffic_class": str(tr.traffic_class[first]),
                     "groups": int(np.unique(tr.group[sel]).size),
                     "layer_transfers": float(tr.weight[sel].sum()),
                     "before_us": float(tr.before_s[first]) * 1e6,
                     "after_us": float(tr.after_s[first]) * 1e6,
                     "bottleneck_before": link_name(g_before, int(link_b[first]))
                     if link_b[first] >= 0 else None,
                     "bottleneck_after": link_name(g_after, int(link_a[first]))
                     if link_a[first] >= 0 else None,
                     "bound_before_us": float(bound_b[first]) * 1e6,
                     "bound_after_us": float(bound_a[first]) * 1e6})
    pats.sort(key=lambda d: -d["layer_transfers"])
    return {
        "flows": str(flows_path),
        "recorded": {"topology": meta.get("topology", {}).get("name"),
                     "graph": g_before.name, "num_gpus": n_rec,
                     "backend_variant": meta.get("backend_variant"),
                     "network_mode": meta.get("network_mode"),
                     "deployment": meta.get("deployment"), "model": meta.get("model"),
                     "comm_model": meta.get("comm_model"),
                     "rows": trace.rows, "groups": meta.get("groups"),
                     "patterns": meta.get("patterns"), "cache_grid_percent": grid},
        "replayed": {"topology": topo.name, "graph": g_after.name, "num_gpus": g_after.num_gpus,
                     "backend_variant": backend_variant(network),
                     "gpu_map": "identity" if gpu_map is None else
                     ("first" if gpu_map == "first" else "explicit"),
                     "backend_calls": new.backend_calls},
        "reproduces_recorded_completions": exact,
        "classes": table,
        "flow_completion": flow_stats(cols, new.completion_s),
        "iteration_network": _iteration_stats(tr),
        "patterns": pats[:max(0, int(patterns_in_json))],
        "notes": ["a transfer is one group's flows of one traffic class, layer and micro-batch; "
                  "durations are last completion minus first start, weighted by the layers a "
                  "group stands for",
                  "bottleneck: the link with the most bytes / capacity over a transfer's flows "
                  "on their routes (its drain bounds the transfer from below)",
                  "completion times exclude the serving model's launch overhead "
                  f"({meta.get('launch_us')} us per transfer)"],
    }


def print_table(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    r, p = doc["recorded"], doc["replayed"]
    t = Table(title=f"cosim-replay: {r['topology']} ({r['num_gpus']} GPUs) -> {p['topology']} "
                    f"({p['num_gpus']} GPUs), {p['backend_variant'].split(';')[0]}")
    for c in ("class", "transfers", "before p50 us", "before p99 us", "after p50 us",
              "after p99 us", "slowdown", "bottleneck after"):
        t.add_column(c, justify="left" if c in ("class", "bottleneck after") else "right")
    for row in doc["classes"]:
        t.add_row(row["traffic_class"], f"{row['layer_transfers']:,.0f}",
                  f"{row['before_p50_us']:.1f}", f"{row['before_p99_us']:.1f}",
                  f"{row['after_p50_us']:.1f}", f"{row['after_p99_us']:.1f}",
                  f"{row['slowdown']:.3f}" if row["slowdown"] is not None else "",
                  str(row["bottleneck_after"] or ""))
    Console().print(t)


def replay_task(cfg: Any) -> dict:
    """Task function of the `cosim-replay` Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    from cosim.config import to_object

    obj = to_object(cfg)
    if obj.topology is not None:
        obj.topology.validate()
    obj.network.validate()
    if obj.network.backend not in ("analytical", "ns3"):
        raise ConfigError("network.backend", f"replay needs analytical or ns3, got "
                          f"{obj.network.backend!r}")
    flows = obj.flows
    if not Path(flows).is_absolute():
        flows = str(Path(HydraConfig.get().runtime.cwd) / flows)
    doc = replay(flows, obj.topology, obj.network, obj.replay.gpu_map,
                 obj.replay.patterns_in_json)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    with StagedFiles(out_dir) as files:
        files.stage("replay.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")
        files.stage("replay.csv").write_text(classes_csv(doc["classes"]))
    print_table(doc)
    if not doc["classes"]:
        print(f"cosim-replay: {flows} holds no flows (no backend timed any: the run's "
              f"deployment.comm.model was {doc['recorded'].get('comm_model')!r})")
    print(f"results: {out_dir}")
    return doc
