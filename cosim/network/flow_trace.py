"""Flow traces: the flows a run put on the fabric, with the completion times the backend gave
them, kept for replay on another fabric (flows.parquet, `cosim-replay`).

The network knows nothing of LLMs: callers label what they hand in (a traffic class, a layer,
a micro-batch) and say where they are in the run (`at`: instance, iteration, time zero).

A *pattern* is one batch of flows the backend timed (its flows with start offsets relative to
the batch's time zero, and the completion times returned). A *group* is one use of a pattern
at a point in the run: the flows of that batch, shifted to the group's time zero. A serving
run reuses patterns (every MoE layer of an iteration carries the same traffic; iterations on
one token grid point send the same flows), so a group stands for `layers` identical layers
(layer = -1) and its rows repeat the pattern's: one row per flow per group, identical layers
aggregated. Groups of one pattern have identical relative flows, so a replay times each
pattern once.

Columns of flows.parquet (one row per flow of a group):

    group          int32   group id (one network request of the run, at one point in it)
    pattern        int32   pattern id: groups with the same pattern carry identical flows
    instance       int32   serving instance whose iteration sent it (-1: none)
    iteration      int32   that instance's iteration index
    layer          int16   layer of the flow (-1: the group stands for `layers` identical layers)
    layers         int16   identical layers the group stands for
    micro_batch    int16   micro-batch (-1: none)
    traffic_class  string  a2f | f2a | ep_dispatch | ep_combine | allreduce | kv_transfer
    tag            string  the generator's FlowTag (cosim.traffic.tags), lower case
    src, dst       int32   global GPU index on the recorded topology
    bytes          int64   bytes of the flow
    group_start_s  float64 the group's time zero, seconds of simulated time
    start_offset_s float64 flow start relative to group_start_s (what the backend was given)
    start_s        float64 group_start_s + start_offset_s
    completion_s   float64 group_start_s + the backend's completion time of the flow
    backend        string  the backend that timed it (analytical | ns3)

The file's schema metadata (key `cosim.flows`, JSON) holds the topology it ran on (resolved
config, graph name, size, digest), the backend variant, the result-cache size grid and
anything the caller adds (launch overhead, network mode, deployment).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cosim.network.flows import FlowBatch

SCHEMA_VERSION = 1
METADATA_KEY = b"cosim.flows"
TRAFFIC_CLASSES = ("a2f", "f2a", "ep_dispatch", "ep_combine", "allreduce", "kv_transfer")
COLUMNS = ("group", "pattern", "instance", "iteration", "layer", "layers", "micro_batch",
           "traffic_class", "tag", "src", "dst", "bytes", "group_start_s", "start_offset_s",
           "start_s", "completion_s", "backend")
AGGREGATION = ("one row per flow per group; a group with layer = -1 stands for `layers` "
               "identical layers (the same flows at every MoE layer of the iteration), which "
               "are not repeated as rows")


@dataclass(frozen=True)
class _Pattern:
    flows: FlowBatch
    finish: np.ndarray  # float64 per flow, origin of flows.start
    cls: np.ndarray  # int8 index into TRAFFIC_CLASSES, per flow
    layer: np.ndarray  # int16 per flow (-1: aggregated)
    micro_batch: np.ndarray  # int16 per flow (-1: the use's)
    backend: str


def _per_flow(value: Any, n: int, dtype: Any, default: int = -1) -> np.ndarray:
    if value is None:
        return np.full(n, default, dtype=dtype)
    arr = np.asarray(value)
    if arr.ndim == 0:
        return np.full(n, arr, dtype=dtype)
    return arr.astype(dtype)


class FlowRecorder:
    """Collects the patterns a run's backend timed and the groups (uses) of them.

    Cheap while the run goes: a pattern is kept once (its arrays are referenced, not copied);
    a use is one tuple. `table()` expands the uses into one row per flow.
    """

    def __init__(self, tag_names: Mapping[int, str] | None = None):
        self.tag_names = dict(tag_names or {})
        self._index: dict[Hashable, int] = {}
        self._patterns: list[_Pattern] = []
        # per use: pattern, instance, iteration, group time zero, layers, micro-batch
        self._uses: list[tuple[int, int, int, float, int, int]] = []
        self.instance = -1
        self.iteration = -1
        self.t0 = 0.0

    # --- while the run goes --------------------------------------------------------------------
    def at(self, instance: int, iteration: int, t0: float) -> None:
        """Where the run is: the next uses belong to `instance`'s iteration starting at t0."""
        self.instance, self.iteration, self.t0 = int(instance), int(iteration), float(t0)

    def known(self, key: Hashable) -> bool:
        return key in self._index

    def pattern(self, key: Hashable, flows: FlowBatch, finish: np.ndarray, traffic_class: Any,
                backend: str, layer: Any = None, micro_batch: Any = None) -> None:
        """Keep a batch the backend timed under `key` (its first timing wins).

        traffic_class: one name of TRAFFIC_CLASSES, or an index array per flow.
        """
        if key in self._index or len(flows) == 0:
            return
        n = len(flows)
        if isinstance(traffic_class, str):
            cls = np.full(n, TRAFFIC_CLASSES.index(traffic_class), dtype=np.int8)
        else:
            cls = np.asarray(traffic_class, dtype=np.int8)
        fin = np.asarray(finish, dtype=np.float64)
        if fin.shape != (n,) or cls.shape != (n,):
            raise ValueError(f"flow record {key!r}: {n} flows, {fin.shape} finish times, "
                             f"{cls.shape} classes")
        self._index[key] = len(self._patterns)
        self._patterns.append(_Pattern(flows, fin, cls, _per_flow(layer, n, np.int16),
                                       _per_flow(micro_batch, n, np.int16), str(backend)))

    def use(self, key: Hashable, layers: int = 1, micro_batch: int = -1,
            offset_s: float = 0.0) -> None:
        """One group of pattern `key` at the current point (`at`), time zero t0 + offset_s.
        Keys never recorded (empty batches) are ignored."""
        p = self._index.get(key)
        if p is None:
            return
        t0 = self.t0 + offset_s if offset_s else self.t0
        self._uses.append((p, self.instance, self.iteration, t0, int(layers), int(micro_batch)))

    @property
    def groups(self) -> int:
        return len(self._uses)

    @property
    def rows(self) -> int:
        return int(sum(len(self._patterns[u[0]].flows) for u in self._uses))

    # --- at the end ----------------------------------------------------------------------------
    def table(self, metadata: Mapping[str, Any] | None = None) -> pa.Table:
        """The recorded groups, one row per flow, with `metadata` in the schema (JSON)."""
        return self.recorded(metadata).table()

    def recorded(self, metadata: Mapping[str, Any] | None = None,
                 rows_per_batch: int = 1 << 20) -> RecordedFlows:
        """The rows to write, built batch by batch (bounded memory for long runs)."""
        return RecordedFlows(self, dict(metadata or {}), int(rows_per_batch))


_SCHEMA_FIELDS = (
    ("group", pa.int32()), ("pattern", pa.int32()), ("instance", pa.int32()),
    ("iteration", pa.int32()), ("layer", pa.int16()), ("layers", pa.int16()),
    ("micro_batch", pa.int16()), ("traffic_class", pa.dictionary(pa.int8(), pa.string())),
    ("tag", pa.dictionary(pa.int32(), pa.string())), ("src", pa.int32()), ("dst", pa.int32()),
    ("bytes", pa.int64()), ("group_start_s", pa.float64()), ("start_offset_s", pa.float64()),
    ("start_s", pa.float64()), ("completion_s", pa.float64()),
    ("backend", pa.dictionary(pa.int8(), pa.string())),
)


class RecordedFlows:
    """A recorder's rows (see the module docstring) as record batches of at most
    `rows_per_batch` rows, with the metadata in the schema."""

    def __init__(self, rec: FlowRecorder, metadata: dict, rows_per_batch: int):
        pats = rec._patterns
        self.rows_per_batch = max(1, rows_per_batch)
        self._pats = pats
        self._sizes = np.array([len(p.flows) for p in pats], dtype=np.int64)
        tags = np.unique(np.concatenate([np.unique(p.flows.tag) for p in pats])) if pats \
            else np.zeros(0, np.int32)
        self._tag_vals = tags.astype(np.int32)
        self._tag_dict = pa.array([rec.tag_names.get(int(t), str(int(t)))
                                   for t in self._tag_vals], type=pa.string())
        self._backend_names = sorted({p.backend for p in pats})
        self._backends = pa.array(self._backend_names, type=pa.string())
        self._classes = pa.array(list(TRAFFIC_CLASSES), type=pa.string())
        uses = rec._uses
        self._upat = np.array([u[0] for u in uses], dtype=np.int64)
        self._uinst = np.array([u[1] for u in uses], dtype=np.int32)
        self._uiter = np.array([u[2] for u in uses], dtype=np.int32)
        self._ut0 = np.array([u[3] for u in uses], dtype=np.float64)
        self._ulayers = np.array([u[4] for u in uses], dtype=np.int16)
        self._umb = np.array([u[5] for u in uses], dtype=np.int16)
        # pattern ids numbered densely over the patterns some group uses
        used, dense = np.unique(self._upat, return_inverse=True)
        self._udense = dense.ravel().astype(np.int32)
        self._n_per = self._sizes[self._upat] if uses else np.zeros(0, dtype=np.int64)
        self._uoff = np.zeros(len(uses) + 1, dtype=np.int64)
        self._uoff[1:] = np.cumsum(self._n_per)
        self.rows = int(self._uoff[-1])
        self.metadata = {"schema_version": SCHEMA_VERSION, "aggregation": AGGREGATION,
                         "groups": len(uses), "patterns": int(used.size), "rows": self.rows,
                         **metadata}
        self.schema = pa.schema([pa.field(n, t) for n, t in _SCHEMA_FIELDS]).with_metadata(
            {METADATA_KEY: json.dumps(self.metadata, default=str)})

    def batches(self):
        """Record batches of whole groups, about rows_per_batch rows each."""
        n_uses = self._upat.size
        a = 0
        while a < n_uses:
            # whole groups up to rows_per_batch rows (at least one group)
            b = int(np.searchsorted(self._uoff, self._uoff[a] + self.rows_per_batch,
                                    side="right")) - 1
            b = min(max(b, a + 1), n_uses)
            yield self._batch(a, b)
            a = b

    def _batch(self, a: int, b: int) -> pa.RecordBatch:
        # the rows of uses a..b-1: their patterns' arrays, one after the other (patterns are
        # not concatenated up front: an iteration-mode run's patterns are most of its rows)
        pats = [self._pats[k] for k in self._upat[a:b].tolist()]

        def cat(get, dtype):
            return np.concatenate([np.asarray(get(p)) for p in pats]).astype(dtype, copy=False)

        owner = np.repeat(np.arange(a, b), self._n_per[a:b])
        t0 = self._ut0[owner]
        mb = cat(lambda p: p.micro_batch, np.int16)
        start = cat(lambda p: p.flows.start, np.float64)
        tag = np.searchsorted(self._tag_vals, cat(lambda p: p.flows.tag, np.int32))
        names = self._backend_names
        bk = cat(lambda p: np.full(len(p.flows), names.index(p.backend), np.int8), np.int8)
        arrays = [
            pa.array(owner.astype(np.int32)), pa.array(self._udense[owner]),
            pa.array(self._uinst[owner]), pa.array(self._uiter[owner]),
            pa.array(cat(lambda p: p.layer, np.int16)), pa.array(self._ulayers[owner]),
            pa.array(np.where(mb >= 0, mb, self._umb[owner]).astype(np.int16)),
            pa.DictionaryArray.from_arrays(pa.array(cat(lambda p: p.cls, np.int8)),
                                           self._classes),
            pa.DictionaryArray.from_arrays(pa.array(tag.astype(np.int32)), self._tag_dict),
            pa.array(cat(lambda p: p.flows.src, np.int32)),
            pa.array(cat(lambda p: p.flows.dst, np.int32)),
            pa.array(cat(lambda p: p.flows.size, np.int64)),
            pa.array(t0), pa.array(start), pa.array(t0 + start),
            pa.array(t0 + cat(lambda p: p.finish, np.float64)),
            pa.DictionaryArray.from_arrays(pa.array(bk), self._backends),
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def table(self) -> pa.Table:
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)

    def write(self, path: str | Path) -> None:
        """Write flows.parquet (zstd) batch by batch; callers stage the path atomically."""
        with pq.ParquetWriter(str(path), self.schema, compression="zstd") as w:
            for batch in self.batches():
                w.write_batch(batch)
            if not self.rows:
                w.write_table(self.schema.empty_table())


class FlowTraceError(ValueError):
    """A flows.parquet file that cannot be read as a flow trace (the message names it)."""


@dataclass(frozen=True)
class FlowTrace:
    """A flows.parquet read back: its columns (numpy) and its metadata."""

    columns: dict[str, np.ndarray]
    metadata: dict

    @property
    def rows(self) -> int:
        return int(self.columns["group"].shape[0])


def write_flow_trace(flows: RecordedFlows | pa.Table, path: str | Path) -> None:
    """Write a flow trace to `path` (zstd-compressed parquet). Callers stage it atomically."""
    if isinstance(flows, pa.Table):
        pq.write_table(flows, str(path), compression="zstd")
    else:
        flows.write(path)


def read_flow_trace(path: str | Path) -> FlowTrace:
    """Read a flows.parquet; FlowTraceError (one line naming the file) if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise FlowTraceError(f"{p}: no such file")
    try:
        table = pq.read_table(str(p))
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise FlowTraceError(f"{p}: not a readable parquet file ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise FlowTraceError(f"{p}: no cosim flow-trace metadata (key {METADATA_KEY.decode()}); "
                             "write it with output.flows=true")
    try:
        meta = json.loads(raw)
    except ValueError:
        raise FlowTraceError(f"{p}: metadata {METADATA_KEY.decode()} is not JSON") from None
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise FlowTraceError(f"{p}: flow-trace schema {meta.get('schema_version')!r}, this cosim "
                             f"reads {SCHEMA_VERSION}")
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise FlowTraceError(f"{p}: missing column {missing[0]!r}")
    cols: dict[str, np.ndarray] = {}
    for c in COLUMNS:
        col = table.column(c)
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        arr = col.to_numpy(zero_copy_only=False)
        if col.null_count:
            raise FlowTraceError(f"{p}: column {c!r} has {col.null_count} missing values")
        cols[c] = arr
    for c in ("bytes",):
        if cols[c].size and cols[c].min() < 0:
            raise FlowTraceError(f"{p}: column {c!r} has a negative value")
    for c in ("group_start_s", "start_offset_s", "completion_s"):
        if cols[c].size and not np.all(np.isfinite(cols[c])):
            raise FlowTraceError(f"{p}: column {c!r} has a non-finite value")
    return FlowTrace(cols, meta)
