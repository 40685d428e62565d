"""`cosim-search`: the best chunked, P/D, AFD and P/D+AFD layout for a GPU budget under the SLO.

Writes candidates.parquet, frontier.csv, best.json, pareto.png and report.html into the Hydra
run folder and prints the best per kind. Re-run with `hydra.run.dir=<that folder>` to resume:
finished evaluations (evals/<config hash>.json) are reused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from cosim.config import to_object
from cosim.errors import ConfigError
from cosim.model.spec import ModelSpec
from cosim.search.driver import run_search
from cosim.search.executors import check_executor
from cosim.search.outputs import terminal_table, write_all
from cosim.search.space import generate_candidates


def search_task(cfg: DictConfig) -> dict:
    from hydra.core.hydra_config import HydraConfig
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    base = [o for o in hc.overrides.task if not o.lstrip("+~").startswith(("search", "hydra"))]
    obj = to_object(cfg)
    s = obj.search
    s.validate("search")
    check_executor(s)
    if s.objective == "usd_per_mtok" and obj.hardware.usd_per_gpu_hour is None:
        raise ConfigError("search.objective", f"usd_per_mtok needs a price: hardware "
                          f"{obj.hardware.name} has none; set hardware.usd_per_gpu_hour")
    if not any(o.startswith(("topology.num_nodes", "topology.num_gpus")) for o in base):
        # the fabric must hold the whole budget (a topology file's default may be 2 servers)
        per = obj.topology.gpus_per_node
        base.append(f"topology.num_gpus={-(-s.gpus // per) * per}")
    w = obj.workload
    if (s.warm_prefixes and w.kind == "synthetic" and w.prefix_pool > 0
            and not any(o.startswith("workload.warm_prefixes") for o in base)):
        base.append("workload.warm_prefixes=true")
    spec = ModelSpec.from_config(obj.model)
    experts = spec.moe.num_experts if spec.moe is not None else None
    cands = generate_candidates(s, experts)
    console = Console(stderr=True)
    console.print(f"cosim-search: {len(cands)} candidates for {s.gpus} GPUs "
                  f"({', '.join(s.kinds)}); results in {out_dir}")
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        outcomes = run_search(base, s, cands, out_dir, bar)
    wall = time.perf_counter() - t0
    slo = next((o.static.get("slo") for o in outcomes if o.static.get("slo")), {}) or {}
    title = (f"{OmegaConf.select(cfg, 'model.name') or spec.name} on {s.gpus} "
             f"{OmegaConf.select(cfg, 'hardware.name')}, workload {obj.workload.name}")
    doc = write_all(out_dir, outcomes, list(s.kinds), s.objective, s.gpus, s.slo_attainment,
                    title, slo.get("ttft_ms"), slo.get("tpot_ms"))
    sims = sum(len(o.points) for o in outcomes)
    doc["stats"] = {"candidates": len(cands), "simulations": sims, "wall_s": round(wall, 1),
                    "des_events": int(sum(p.get("events") or 0 for o in outcomes for p in o.points)),
                    "cached": int(sum(p.get("cached", False) for o in outcomes for p in o.points))}
    (out_dir / "best.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")
    Console().print(terminal_table(doc))
    for kind, err in (doc.get("ns3_failed") or {}).items():
        Console().print(f"ns-3 confirmation of {kind} failed: {err}")
    conf = doc.get("ns3_confirmation")
    if conf:
        Console().print(f"ns-3 confirmation: ranking {' > '.join(conf['ns3_ranking'])} "
                        f"({'changed' if conf['ranking_changed'] else 'unchanged'} from the "
                        f"analytical backend), largest change in tok/s per GPU "
                        f"{conf['max_relative_change_tok_s_per_gpu']:.1%}")
    Console().print(f"{len(cands)} candidates, {sims} simulations, {wall:.1f} s; "
                    f"report: {out_dir / 'report.html'}")
    return doc
