"""The compute model: operator latency from measured tables, with a roofline fallback.

    model = ComputeModel(hardware_cfg, compute_cfg)
    lat = model.latency(op)          # OpLatency(latency_s, source, table, flags, by_source)
    est = estimate(ops, model)       # per-op list, total_s, seconds by source and by stage

`source` says where a number came from:
- measured: a grid point of a table, returned exactly;
- interpolated: between measured points (log-log multilinear), or a measured point lowered
  to a larger shape's latency by the monotone envelope (cosim.compute.grid), or a module
  composed of table-priced parts;
- roofline: no table covers the shape (or hardware.tables is null): either the nearest
  measured point scaled by the roofline ratio (flag `anchored`), or the roofline alone.

Every latency is at least the operator's physical bound max(F / peak, B / HBM bandwidth);
a table value below it is raised to it (flag `floor`), see `ComputeModel.stats`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cosim.compute.predictors import QUERIES, TableQuery
from cosim.compute.roofline import Roofline
from cosim.compute.tables import TableSet
from cosim.config.compute import ComputeConfig
from cosim.config.hardware import HardwareConfig
from cosim.model.operators import Operator, OpKind

SOURCES = ("measured", "interpolated", "roofline")
# Provenance flag of an op priced without table rows that the sanity checks dropped
# (cosim.compute.tables.flag_gemm_rows): by another lane, the neighbouring shapes or the roofline.
FLAGGED = "flagged table rows not used"
# MoE tables whose balanced rows spread a batch over min(n, pairs) experts per GPU
_BALANCED_MOE_TABLES = ("moe_perf", "wideep_context_moe_perf", "wideep_generation_moe_perf")


@dataclass(frozen=True)
class OpLatency:
    """Latency of one invocation of an operator, and where it came from."""

    latency_s: float
    source: str  # measured | interpolated | roofline
    table: str = ""  # the table that priced it ("" for roofline alone or composed)
    flags: tuple[str, ...] = ()  # floor, envelope, anchored, composed, substitutions
    by_source: Mapping[str, float] | None = None  # composed ops: seconds per source


class ComputeModel:
    """Per-operator latency on one GPU (hardware_cfg) from one framework's tables."""

    def __init__(self, hardware_cfg: HardwareConfig, compute_cfg: ComputeConfig | None = None):
        self.hardware = _as_object(hardware_cfg)
        self.cfg = _as_object(compute_cfg) if compute_cfg is not None else ComputeConfig()
        self.cfg.validate("compute")
        self.roofline = Roofline(self.hardware, self.cfg)
        system = self.hardware.tables if self.cfg.use_tables else None
        self.tables: TableSet | None = None
        if system is not None or (self.cfg.use_tables and self.cfg.table_dir):
            self.tables = TableSet(system, self.cfg.framework, self.cfg.version,
                                   self.cfg.table_dir, dict(self.cfg.lanes))
        self.stats: Counter[str] = Counter()
        self._memo: dict[tuple, OpLatency] = {}

    # ------------------------------------------------------------------ public
    @property
    def version(self) -> str:
        return self.tables.version if self.tables else ""

    def describe(self) -> dict[str, Any]:
        """Which tables this model reads (filled in as tables are first used)."""
        return {
            "hardware": self.hardware.name,
            "system": self.hardware.tables if self.tables else None,
            "framework": self.cfg.framework if self.tables else None,
            "version": self.version or None,
            "table_dir": self.cfg.table_dir or None,
            "tables": dict(self.tables.provenance) if self.tables else {},
        }

    def latency(self, op: Operator, phase: str | None = None) -> OpLatency:
        """Latency of one invocation of `op` on one GPU.

        `phase` ("context" for a batch with prefill tokens, "generation" for a decode-only
        batch) is the batch's phase for operators whose dims do not carry one (MoE: it
        selects sglang's DeepEP normal or low-latency expert kernels).
        """
        if op.kind == OpKind.comm:
            raise ValueError(f"{op.name}: comm operators are priced by the network backend")
        if phase is not None and op.kind == OpKind.moe and "phase" not in op.dims:
            op = Operator(op.name, op.kind, {**op.dims, "phase": str(phase)}, op.flops,
                          op.bytes, op.count, op.stage, op.parts)
        try:
            key = (op.kind, tuple(sorted(op.dims.items())), op.flops, op.bytes,
                   tuple((p.name, p.flops, p.bytes, p.count) for p in op.parts))
            hit = self._memo.get(key)
        except TypeError:  # unhashable dims value
            key, hit = None, None
        if hit is not None:
            return hit
        result = self._price(op)
        self.stats["ops"] += 1
        self.stats[result.source] += 1
        if "floor" in result.flags:
            self.stats["floor"] += 1
        if key is not None:
            if len(self._memo) >= 500_000:  # bound memory in very long sweeps
                self._memo.clear()
            self._memo[key] = result
        return result

    # ------------------------------------------------------------------ pricing
    def _price(self, op: Operator) -> OpLatency:
        floor = self.roofline.op_floor(op)
        self._flagged_skip = False
        result = self._from_tables(op) if self.tables is not None else None
        if result is None and op.parts and op.kind in (OpKind.mla_module, OpKind.dsa_module):
            result = self._composed(op)
        if result is None:
            result = OpLatency(self.roofline.op_time(op), "roofline",
                               flags=(FLAGGED,) if self._flagged_skip else ())
        if result.latency_s < floor:
            result = OpLatency(floor, result.source, result.table, result.flags + ("floor",))
        return result

    def _from_tables(self, op: Operator) -> OpLatency | None:
        make = QUERIES.get(op.kind)
        if make is None:
            return None
        for q in make(op, self.cfg, self.tables):
            table = self.tables.table(q.table)
            grid = table.grid(q.key) if table is not None else None
            near = table is not None and table.flagged_rows and table.flagged_near(q.key, q.point)
            if grid is None:
                self._flagged_skip |= bool(near or (table is not None and q.key in table.flagged))
                continue
            if q.exclude_lanes and table.lanes_of(q.key) & set(q.exclude_lanes):
                continue  # these rows time another computation (predictors.py says which)
            res = self._from_grid(op, q, grid)
            if op.kind == OpKind.moe and res is not None:
                res = self._touched(op, q, res)
            if near:  # priced around rows the sanity checks dropped (tables.flag_gemm_rows)
                res = OpLatency(res.latency_s, res.source, res.table, res.flags + (FLAGGED,))
            return res
        return None

    def _touched(self, op: Operator, q: TableQuery, result: OpLatency) -> OpLatency:
        """compute.moe_weights=touched: a balanced row read the weights of as many experts
        as its routing spreads the pairs over, min(n, pairs) per GPU (aiconfigurator's
        `balanced_logits` round robin for moe_perf; the sglang WideEP collector's "uniform"
        rows fill min(n, pairs) local experts with equal counts); a batch routed at random
        reads only the `touched` ones. The value is scaled by the roofline ratio of the two
        reads at the row's shape (flag `touched`; a measured point becomes interpolated)."""
        touched = op.dims.get("touched")
        if (getattr(self.cfg, "moe_weights", "all") != "touched" or touched is None
                or q.table not in _BALANCED_MOE_TABLES or q.key[6] != "balanced"):
            return result
        d = q.dims_at(q.point)
        full = self.roofline.shape_time(OpKind.moe, d)
        part = self.roofline.shape_time(OpKind.moe, {**d, "active_experts": float(touched)})
        if not full > part:
            return result
        source = "interpolated" if result.source == "measured" else result.source
        flag = f"touched {float(touched):.3g} experts (roofline ratio {part / full:.3f})"
        return OpLatency(result.latency_s * part / full, source, result.table,
                         result.flags + (flag,))

    def _from_grid(self, op: Operator, q: TableQuery, grid) -> OpLatency:
        flags = (f"substituted {q.note}",) if q.note else ()
        hit = grid.lookup(q.point)
        if hit is not None:
            value, exact, lowered = hit
            source = "measured" if exact and not lowered else "interpolated"
            if lowered:
                flags += ("envelope",)
            return OpLatency(value, source, q.table, flags)
        if q.prefix_axis is not None and q.point[q.prefix_axis] > 0:
            diff = _prefix_difference(grid, q)
            if diff is not None:
                value, exact = diff
                return OpLatency(value, "interpolated", q.table, flags + ("prefix by difference",))
        anchor = grid.anchor(q.point, q.shrink)
        if anchor is None:  # pragma: no cover - grids are never empty
            return None
        value, _, _ = grid.lookup(anchor)
        here = self.roofline.shape_time(op.kind, q.dims_at(q.point), op.parts)
        there = self.roofline.shape_time(op.kind, q.dims_at(anchor), _rescaled(op, q, anchor))
        return OpLatency(value * here / there, "roofline", q.table,
                         flags + (f"anchored at {_fmt(anchor)}",))

    def _composed(self, op: Operator) -> OpLatency:
        """A module without a table row: the sum of its parts, each priced on its own."""
        total = 0.0
        by_source: Counter[str] = Counter()
        for part in op.parts:
            lat = self.latency(part)
            t = lat.latency_s * part.count
            total += t
            if lat.by_source:
                by_source.update(lat.by_source)
            else:
                by_source[lat.source] += t
        source = "roofline" if by_source["roofline"] > total / 2 else "interpolated"
        return OpLatency(total, source, "", ("composed",), dict(by_source))


def _as_object(cfg: Any) -> Any:
    """A Hydra DictConfig node -> its dataclass (configs may arrive either way)."""
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_object(cfg) if isinstance(cfg, DictConfig) else cfg


def _prefix_difference(grid, q: TableQuery) -> tuple[float, bool] | None:
    """A prefill chunk of c new tokens behind a cached prefix P, from prefix-free rows:

        t(b, c, P) = max(t(b, P + c, 0) - t(b, P, 0), t(b, c, 0))

    Causal prefill of P + c tokens is the prefill of the first P tokens plus the chunk's
    queries against all P + c keys (attention FLOPs decompose exactly; projections and
    MoE-free module parts are linear in tokens). The chunk is never cheaper than the same
    chunk without a prefix. None when a needed point is outside the grid.
    """
    pa, ca = q.prefix_axis, q.prefix_axis - 1  # axes (batch, isl, prefix)
    p = list(q.point)
    prefix, chunk = p[pa], p[ca]
    full, head, alone = list(p), list(p), list(p)
    full[ca], full[pa] = prefix + chunk, 0.0
    head[ca], head[pa] = prefix, 0.0
    alone[pa] = 0.0
    hits = [grid.lookup(x) for x in (full, head, alone)]
    if any(h is None for h in hits):
        return None
    return max(hits[0][0] - hits[1][0], hits[2][0]), False


def _rescaled(op: Operator, q: TableQuery, anchor: tuple[float, ...]) -> list[Operator]:
    """A module's parts at the anchor's (batch, q_len, kv_len), for the roofline ratio.

    Parts follow the cosim.model.forward conventions: projection GEMMs and MLA BMMs have
    m = batch * q_len tokens; a prefill kv_b_proj decompresses every key (m = batch * kv_len);
    the DSA indexer logits are a causal batched GEMM (batch = requests, m = q_len * heads,
    n = kv_len); core ops carry batch / q_len / kv_len; elementwise ops scale with tokens.
    """
    if not op.parts:
        return []
    old, new = op.dims, q.dims_at(anchor)
    b0, q0, kv0 = (float(old.get(k, 1)) for k in ("batch", "q_len", "kv_len"))
    b1, q1, kv1 = (float(new.get(k, 1)) for k in ("batch", "q_len", "kv_len"))
    t0, t1 = b0 * q0, b1 * q1
    r = t1 / t0 if t0 else 1.0
    out = []
    for p in op.parts:
        d = dict(p.dims)
        flops, nbytes = p.flops * r, p.bytes * r
        if p.kind == OpKind.gemm:
            m = float(d["m"])
            if d.get("causal"):  # indexer logits
                d.update(batch=b1, m=m / q0 * q1, n=kv1)
            elif float(d.get("batch", 1) or 1) == 1 and m == b0 * kv0 and m != t0:
                d["m"] = b1 * kv1  # kv_b_proj over every cached key
            else:
                d["m"] = m * r
        elif p.kind in (OpKind.attention, OpKind.mla, OpKind.mla_module, OpKind.dsa_module):
            d.update(batch=b1, q_len=q1, kv_len=kv1)
        elif "width" in d and float(d["width"]) == kv0:  # top-k over every cached key
            flops, nbytes = p.flops * r * kv1 / kv0, p.bytes * r * kv1 / kv0
        out.append(Operator(p.name, p.kind, d, flops, nbytes, p.count, p.stage))
    return out


def _fmt(point: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{x:g}" for x in point) + ")"


# ------------------------------------------------------------------------------------------
# Estimates of a list of operators


@dataclass
class OpEstimate:
    name: str
    kind: str
    stage: str
    count: int
    latency_s: float  # one invocation
    total_s: float  # latency_s * count
    source: str
    table: str = ""
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "stage": self.stage, "count": self.count,
                "latency_s": self.latency_s, "total_s": self.total_s, "source": self.source,
                "table": self.table, "flags": list(self.flags)}


@dataclass
class Estimate:
    """Latency of a forward pass: per operator, in total, by source and by stage."""

    ops: list[OpEstimate]
    total_s: float
    by_source: dict[str, float]
    by_stage: dict[str, float]
    excluded: list[str] = field(default_factory=list)  # comm ops (priced by the network)

    def to_dict(self) -> dict[str, Any]:
        return {"total_s": self.total_s, "by_source": self.by_source, "by_stage": self.by_stage,
                "ops": [o.to_dict() for o in self.ops], "excluded_comm_ops": self.excluded}


def estimate(ops: Iterable[Operator], model: ComputeModel, phase: str | None = None) -> Estimate:
    """Price every operator (times its count); comm operators are listed, not priced.

    `phase` is the forward pass's phase (context | generation); by default it is read from
    the sequence operators, which carry it (see ComputeModel.latency).
    """
    ops = list(ops)
    if phase is None:
        phase = next((str(o.dims["phase"]) for o in ops if "phase" in o.dims), None)
    rows: list[OpEstimate] = []
    by_source: dict[str, float] = {s: 0.0 for s in SOURCES}
    by_stage: dict[str, float] = {}
    excluded = []
    for op in ops:
        if op.kind == OpKind.comm:
            excluded.append(op.name)
            continue
        lat = model.latency(op, phase)
        total = lat.latency_s * op.count
        rows.append(OpEstimate(op.name, op.kind.value, op.stage, op.count, lat.latency_s, total,
                               lat.source, lat.table, lat.flags))
        if lat.by_source:
            for s, t in lat.by_source.items():
                by_source[s] = by_source.get(s, 0.0) + t * op.count
        else:
            by_source[lat.source] += total
        by_stage[op.stage] = by_stage.get(op.stage, 0.0) + total
    return Estimate(rows, sum(r.total_s for r in rows), by_source, by_stage, excluded)
