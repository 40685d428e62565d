"""Measured kernel-latency tables: find, load, prune and cache them.

The tables are the Parquet files shipped in the `aiconfigurator-core` wheel
(``systems/data/<system>/<family>/<framework>/<version>/<table>.parquet``), read with pandas
only; aiconfigurator's SDK classes are never imported (they change between releases). A
user's own folder of tables in the same schema (``compute.table_dir``, written by
``scripts/profile_kernels.py``) is read first and wins on every key it holds.

Loading one table does, in order (docs/compute.md, "Tables"):

1. **Version**: the requested version folder; `reuse.yaml` beside it names donor versions
   whose rows fill the keys the folder lacks (own rows win); if neither has the table, the
   newest *older* folder that has it (backward fill, as aiconfigurator does; never forward).
2. **Filter** rows of other models / op names (DSA and MLA module tables mix models).
3. **Aggregate** repeated measurements of one key (same kernel_source) by their median.
4. **Sanity** (GEMM tables): rows that contradict physics are flagged and dropped
   (:func:`flag_gemm_rows`; `cosim-tables check` lists them), so another lane of the same
   key, the neighbouring measured shapes or the roofline price those shapes instead, with
   the flag ``flagged table rows not used`` in the op's provenance.
5. **Lane**: one kernel_source per key: the user's `compute.lanes` choice, else the
   framework's default attention lane on this SM (`attention_lane_defaults.yaml`), else the
   lane with the most rows in the table (counted before step 4, so that dropping a broken
   series does not move the lane of unaffected keys).
6. **Units**: latency to seconds (every table used here is in ms).

Loaded tables are cached per process (a table loads in 5-300 ms; an on-disk cache would not
pay for itself).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cosim.errors import ConfigError

# ------------------------------------------------------------------------------------------
# Where the shipped tables live


@functools.lru_cache(maxsize=1)
def systems_dir() -> Path:
    """`aiconfigurator_core/systems` of the installed wheel, found without importing it."""
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("hardware.tables", "aiconfigurator-core is not installed; install it "
                          "(pip install 'aiconfigurator-core>=0.12,<0.13') or set "
                          "hardware.tables: null to run on the roofline alone")
    return Path(next(iter(spec.submodule_search_locations))) / "systems"


def available_systems() -> list[str]:
    """System folders that hold data (h100_sxm, b200_sxm, ...)."""
    data = systems_dir() / "data"
    return sorted(p.name for p in data.iterdir() if p.is_dir() and any(p.iterdir()))


def _version_key(v: str):
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(v), v)
    except InvalidVersion:
        return (0, None, v)


def _sort_versions(versions) -> list[str]:
    # packaging Versions do not compare with None: split valid from invalid first
    keyed = [_version_key(v) for v in versions]
    valid = sorted((k for k in keyed if k[0] == 1), key=lambda k: k[1])
    invalid = sorted(k[2] for k in keyed if k[0] == 0)
    return invalid + [k[2] for k in valid]


def available_versions(system: str, framework: str) -> list[str]:
    """Version folders of `framework` in any kernel family of `system`, oldest first."""
    data = systems_dir() / "data" / system
    found = set()
    for family in data.iterdir():
        if family.name == "comm" or not family.is_dir():
            continue
        fw = family / framework
        if fw.is_dir():
            found.update(p.name for p in fw.iterdir() if p.is_dir())
    return _sort_versions(found)


@functools.cache
def _query_versions() -> dict:
    return yaml.safe_load((systems_dir() / "query_versions.yaml").read_text())


def current_version(system: str, framework: str) -> str:
    """The 'current' version slot of systems/query_versions.yaml for (system, framework)."""
    qv = _query_versions()
    slot = (qv.get("overrides", {}).get(system, {}).get(framework)
            or qv.get("defaults", {}).get(framework))
    if not slot or not slot.get("current"):
        versions = available_versions(system, framework)
        if not versions:
            raise ConfigError("compute.framework",
                              f"no {framework} tables for system {system!r}")
        return versions[-1]
    return str(slot["current"])


def resolve_version(system: str, framework: str, version: str) -> str:
    """Turn '' / 'current' / 'next' / a folder name into a version folder of `system`."""
    versions = available_versions(system, framework)
    if not versions:
        raise ConfigError("compute.framework", f"no {framework} tables for system {system!r}; "
                          f"choose another framework")
    current = current_version(system, framework)
    if version in ("", "current"):
        return current
    if version == "next":
        newer = [v for v in versions if _version_key(v) > _version_key(current)]
        return newer[-1] if newer else current
    if version not in versions:
        raise ConfigError("compute.version",
                          f"{framework} version {version!r} has no tables for {system}; "
                          f"available: {', '.join(versions)} (or current, next)")
    return version


@functools.cache
def sm_version(system: str) -> int | None:
    path = systems_dir() / f"{system}.yaml"
    if not path.is_file():
        return None
    return yaml.safe_load(path.read_text()).get("gpu", {}).get("sm_version")


@functools.cache
def _attention_lane_defaults() -> dict:
    path = systems_dir() / "attention_lane_defaults.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


# ------------------------------------------------------------------------------------------
# Table sanity (issue 10, cause 7)

# A GEMM series (one kernel_source, dtype, n, k; rows sorted by m) is broken when its latency
# stays flat (max/min < FLAT_LATENCY_RATIO) while m, and so the work, grows FLAT_WORK_RATIO
# times or more, *and* even its fastest row is FAR_ABOVE_ROOFLINE times slower than the
# roofline of its smallest shape plus a kernel-launch floor. Flat latency alone is normal for
# small shapes (every row sits at the launch floor); flat and far above what the bytes and
# FLOPs need is not a GEMM measurement (e.g. vLLM 0.24.0's GB200 fp8_block rows, 0.24-0.83 ms
# for every shape where the per-tensor FP8 rows and DeepGEMM take ~13 us). The factors are
# loose on purpose: measurement noise and tile effects stay far inside them.
FLAT_WORK_RATIO = 100.0
FLAT_LATENCY_RATIO = 1.5
FAR_ABOVE_ROOFLINE = 10.0
LAUNCH_FLOOR_S = 5e-6  # a kernel launch + its tail: NCCL/GEMM small-shape floors are 3-15 us
_WEIGHT_BYTES = {"bfloat16": 2.0, "float16": 2.0, "fp8": 1.0, "fp8_block": 1.0, "int8_wo": 1.0,
                 "int4_wo": 0.5, "nvfp4": 0.5, "w4a16_mxfp4": 0.5, "w4a8_mxfp4_mxfp8": 0.5}
_PEAK_KEY = {"bfloat16": "bfloat16_tc_flops", "float16": "bfloat16_tc_flops",
             "int8_wo": "bfloat16_tc_flops", "int4_wo": "bfloat16_tc_flops",
             "w4a16_mxfp4": "bfloat16_tc_flops", "nvfp4": "fp4_tc_flops"}


@functools.cache
def _system_peaks(system: str | None) -> tuple[float, dict]:
    """(HBM bytes/s, the system yaml's gpu section) of `system`; B200 figures if unknown."""
    gpu = {}
    if system is not None:
        path = systems_dir() / f"{system}.yaml"
        if path.is_file():
            gpu = (yaml.safe_load(path.read_text()) or {}).get("gpu", {}) or {}
    if not gpu:
        gpu = {"mem_bw": 7.7e12, "bfloat16_tc_flops": 2.25e15, "fp8_tc_flops": 4.5e15,
               "fp4_tc_flops": 9.0e15}
    return float(gpu["mem_bw"]), gpu


def gemm_roofline_s(system: str | None, dtype: str, m: float, n: float, k: float) -> float:
    """Peak-rate time of C[m x n] = A[m x k] W[k x n]: the larger of bytes / HBM bandwidth
    (weights, activations, bf16 output) and FLOPs / dense tensor-core peak."""
    bw, gpu = _system_peaks(system)
    wb = _WEIGHT_BYTES.get(dtype, 2.0)
    ab = 2.0 if wb >= 2 else 1.0
    bytes_ = n * k * wb + m * k * ab + m * n * 2.0
    peak = float(gpu.get(_PEAK_KEY.get(dtype, "fp8_tc_flops")) or gpu.get("bfloat16_tc_flops"))
    return max(bytes_ / bw, 2.0 * m * n * k / peak)


def flag_gemm_rows(df: pd.DataFrame, system: str | None = None) -> dict[int, str]:
    """Row index -> reason for every row of a broken GEMM series (see FLAT_WORK_RATIO)."""
    out: dict[int, str] = {}
    keys = [c for c in ("kernel_source", "gemm_dtype", "n", "k") if c in df.columns]
    for key, g in df.groupby(keys, sort=False):
        if len(g) < 2:
            continue
        g = g.sort_values("m", kind="stable")
        lat = g["latency"].to_numpy(dtype=float) * 1e-3  # ms -> s
        m = g["m"].to_numpy(dtype=float)
        if m[-1] / max(m[0], 1.0) < FLAT_WORK_RATIO or lat.max() >= FLAT_LATENCY_RATIO * lat.min():
            continue
        dtype = str(g["gemm_dtype"].iloc[0]) if "gemm_dtype" in g else "bfloat16"
        n, k = float(g["n"].iloc[0]), float(g["k"].iloc[0])
        bound = FAR_ABOVE_ROOFLINE * (gemm_roofline_s(system, dtype, m[0], n, k) + LAUNCH_FLOOR_S)
        if lat.min() <= bound:
            continue
        why = (f"flat: {key} {lat.min() * 1e3:.3g}-{lat.max() * 1e3:.3g} ms over m "
               f"{m[0]:.0f}-{m[-1]:.0f}, > {FAR_ABOVE_ROOFLINE:g}x roofline + launch "
               f"({bound * 1e3:.3g} ms)")
        for i in g.index:
            out[int(i)] = why
    return out


def _system_of(files: tuple[str, ...]) -> str | None:
    """The system folder (systems/data/<system>/...) of the first shipped file, if any."""
    for f in files:
        parts = Path(f).parts
        for i in range(len(parts) - 2):
            if parts[i] == "systems" and parts[i + 1] == "data":
                return parts[i + 2]
    return None


# ------------------------------------------------------------------------------------------
# Table specifications


def _kv_from_step_plus_isl(df: pd.DataFrame) -> pd.DataFrame:
    # Kernel tables: step = 2^k - 1 cached tokens plus isl = 1 new token.
    return df.assign(kv_len=df["step"] + df["isl"])


def _kv_from_step(df: pd.DataFrame) -> pd.DataFrame:
    # trtllm/vllm module collectors write step = seq_len (the decoded token included).
    return df.assign(kv_len=df["step"])


def _kv_module_generation(df: pd.DataFrame) -> pd.DataFrame:
    # sglang's DSA generation rows use step = cached tokens (1, 4, ..., 2^k - 1 style list);
    # the trtllm and vllm module rows use step = seq_len.
    sglang = df["framework"].astype(str).str.lower().str.startswith("sglang")
    return df.assign(kv_len=np.where(sglang, df["step"] + df["isl"], df["step"]))


def _prefix_from_step(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(prefix=df["step"])


def _kv_from_isl(df: pd.DataFrame) -> pd.DataFrame:
    # sglang WideEP MLA generation rows: isl is the KV length (latency grows with it).
    return df.assign(kv_len=df["isl"])


def _uniform_is_balanced(df: pd.DataFrame) -> pd.DataFrame:
    # The WideEP collectors call equal tokens per local expert "uniform"; moe_perf calls
    # the same routing "balanced".
    return df.assign(distribution=df["distribution"].replace({"uniform": "balanced"}))


@dataclass(frozen=True)
class TableSpec:
    """How one table is keyed: categorical columns select a grid, numeric axes span it."""

    name: str  # parquet stem
    family: str  # folder under systems/data/<system>/
    categories: tuple[str, ...]
    axes: tuple[str, ...]  # positive numeric axes (after `derive`)
    derive: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    model: str | None = None  # keep only rows of this `model`
    op_name: str | None = None  # keep only rows of this `op_name`
    unit_s: float = 1e-3  # seconds per unit of `latency`
    # Axes along which latency may not fall (more work never runs faster): the grid's
    # lower monotone envelope is taken along these.
    monotone: tuple[str, ...] = ()
    # Axes where 0 is a valid value (a prefix length): interpolated in log(1 + x).
    zero_axes: tuple[str, ...] = ()
    required: tuple[str, ...] = field(default=())  # raw columns the derive step needs


_ATTN_CATS = ("attn_dtype", "kv_cache_dtype", "num_heads", "num_key_value_heads", "head_dim",
              "window_size", "beam_width")
_MODULE_CATS = ("mla_dtype", "kv_cache_dtype", "gemm_type", "num_heads")
_MOE_CATS = ("moe_dtype", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size",
             "distribution")

SPECS: dict[str, TableSpec] = {s.name: s for s in (
    TableSpec("gemm_perf", "gemm", ("gemm_dtype",), ("m", "n", "k"), monotone=("m",)),
    TableSpec("context_attention_perf", "attention", _ATTN_CATS,
              ("batch_size", "isl", "prefix"), derive=_prefix_from_step,
              monotone=("batch_size", "isl", "prefix"), zero_axes=("prefix",),
              required=("step",)),
    TableSpec("generation_attention_perf", "attention", _ATTN_CATS,
              ("batch_size", "kv_len"), derive=_kv_from_step_plus_isl,
              monotone=("batch_size", "kv_len"), required=("step", "isl")),
    TableSpec("context_mla_perf", "mla", ("mla_dtype", "kv_cache_dtype", "num_heads"),
              ("batch_size", "isl", "prefix"), derive=_prefix_from_step,
              monotone=("batch_size", "isl", "prefix"), zero_axes=("prefix",),
              required=("step",)),
    TableSpec("generation_mla_perf", "mla", ("mla_dtype", "kv_cache_dtype", "num_heads"),
              ("batch_size", "kv_len"), derive=_kv_from_step_plus_isl,
              monotone=("batch_size", "kv_len"), required=("step", "isl")),
    TableSpec("mla_context_module_perf", "mla", _MODULE_CATS,
              ("batch_size", "isl", "prefix"), derive=_prefix_from_step,
              model="deepseek-ai/DeepSeek-V3", monotone=("batch_size", "isl", "prefix"),
              zero_axes=("prefix",), required=("step",)),
    TableSpec("mla_generation_module_perf", "mla", _MODULE_CATS,
              ("batch_size", "kv_len"), derive=_kv_from_step,
              model="deepseek-ai/DeepSeek-V3", monotone=("batch_size", "kv_len"),
              required=("step",)),
    TableSpec("mla_bmm_perf", "mla_bmm", ("op_name", "bmm_dtype", "num_heads"),
              ("num_tokens",), monotone=("num_tokens",)),
    TableSpec("dsa_context_module_perf", "sparse_attention", _MODULE_CATS,
              ("batch_size", "isl", "prefix"), derive=_prefix_from_step,
              model="deepseek-ai/DeepSeek-V3.2", op_name="dsa_context_module",
              monotone=("batch_size", "isl", "prefix"), zero_axes=("prefix",),
              required=("step",)),
    TableSpec("dsa_generation_module_perf", "sparse_attention", _MODULE_CATS,
              ("batch_size", "kv_len"), derive=_kv_module_generation,
              model="deepseek-ai/DeepSeek-V3.2", op_name="dsa_generation_module",
              monotone=("batch_size", "kv_len"), required=("step", "isl")),
    # MoE: num_tokens = all tokens entering the EP group (global), latency = one GPU's
    # experts (docs/compute.md, "MoE tables"). moe_ep_size is an axis, so EP sizes between
    # the swept ones (48, 72, 96) are interpolated; it is not monotone (more GPUs, less work).
    TableSpec("moe_perf", "moe", _MOE_CATS, ("moe_ep_size", "num_tokens"),
              monotone=("num_tokens",)),
    # sglang DeepEP expert cores (DeepGEMM): normal kernels (contiguous layout) and
    # low-latency kernels (masked layout); "uniform" rows are the balanced ones.
    TableSpec("wideep_context_moe_perf", "moe", _MOE_CATS, ("moe_ep_size", "num_tokens"),
              derive=_uniform_is_balanced, monotone=("num_tokens",)),
    TableSpec("wideep_generation_moe_perf", "moe", _MOE_CATS, ("moe_ep_size", "num_tokens"),
              derive=_uniform_is_balanced, monotone=("num_tokens",)),
    # sglang DP-attention MLA block of DeepSeek-V3 (projections + core), fp8_block GEMMs and
    # fp8 KV; generation rows: isl is the KV length (no step axis).
    TableSpec("wideep_context_mla_perf", "mla", _MODULE_CATS,
              ("batch_size", "isl", "prefix"), derive=_prefix_from_step,
              model="deepseek-ai/DeepSeek-V3", monotone=("batch_size", "isl", "prefix"),
              zero_axes=("prefix",), required=("step",)),
    TableSpec("wideep_generation_mla_perf", "mla", _MODULE_CATS,
              ("batch_size", "kv_len"), derive=_kv_from_isl,
              model="deepseek-ai/DeepSeek-V3", monotone=("batch_size", "kv_len"),
              required=("isl",)),
)}

# Tables whose rows are attention modules/kernels, for the attention lane default.
ATTENTION_LANE_TABLES = frozenset({"wideep_context_mla_perf", "wideep_generation_mla_perf"})


# ------------------------------------------------------------------------------------------
# Loaded tables


@dataclass
class LoadedTable:
    """One pruned table: a row per key, one lane, latency in seconds, grouped into grids."""

    spec: TableSpec
    frame: pd.DataFrame  # categories + axes + kernel_source + latency_s
    sources: list[str]  # files read, highest priority first
    lanes: dict[str, int]  # kernel_source -> rows kept
    duplicates_aggregated: int  # rows merged into a median
    # rows dropped by the sanity checks, and per categorical key the (n, k)-like shapes of
    # the dropped series (GEMM tables; empty elsewhere)
    flagged_rows: int = 0
    flagged: dict[tuple, list[tuple[float, ...]]] = field(default_factory=dict, repr=False)
    _groups: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)
    _grids: dict[tuple, object] = field(default_factory=dict, repr=False)
    _alternatives: dict[int, dict[tuple, list]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        cats = list(self.spec.categories)
        if len(self.frame):
            for key, idx in self.frame.groupby(cats, sort=False).indices.items():
                key = key if isinstance(key, tuple) else (key,)
                self._groups[tuple(_plain(k) for k in key)] = idx

    def lanes_of(self, key: tuple) -> frozenset[str]:
        """The kernel_sources that the points of grid `key` were measured with."""
        idx = self._groups.get(key)
        if idx is None:
            return frozenset()
        return frozenset(self.frame["kernel_source"].iloc[idx].astype(str).unique())

    def alternatives(self, key: tuple, position: int) -> list:
        """Values of categorical field `position` among the keys equal to `key` in every
        other field (e.g. the expert counts measured for one MoE shape and layout)."""
        index = self._alternatives.get(position)
        if index is None:
            index = {}
            for k in self._groups:
                index.setdefault(k[:position] + k[position + 1:], []).append(k[position])
            self._alternatives[position] = index
        return index.get(key[:position] + key[position + 1:], [])

    def flagged_near(self, key: tuple, point: tuple[float, ...]) -> bool:
        """Whether dropped (flagged) rows of grid `key` lie near `point`: a dropped series
        whose every non-leading axis is within 2x of the point's (GEMM: n and k)."""
        for shape in self.flagged.get(key, ()):
            if all(0.5 <= s / max(p, 1e-30) <= 2.0 for s, p in zip(shape, point[1:], strict=False)):
                return True
        return False

    @property
    def keys(self) -> list[tuple]:
        """The categorical keys (one per grid) present in the table."""
        return list(self._groups)

    def grid(self, key: tuple):
        """The LogGrid of one categorical key, or None if the table lacks it."""
        if key in self._grids:
            return self._grids[key]
        idx = self._groups.get(key)
        grid = None
        if idx is not None:
            from cosim.compute.grid import LogGrid

            sub = self.frame.iloc[idx]
            grid = LogGrid.from_points(
                [sub[a].to_numpy(dtype=float) for a in self.spec.axes],
                sub["latency_s"].to_numpy(dtype=float),
                monotone=[a in self.spec.monotone for a in self.spec.axes],
                zero_based=[a in self.spec.zero_axes for a in self.spec.axes],
            )
        self._grids[key] = grid
        return grid


def _plain(v):
    """numpy scalars -> Python scalars, so keys built from op dims compare equal."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def _read(path: Path, spec: TableSpec) -> pd.DataFrame:
    df = pd.read_parquet(path)
    if spec.model is not None and "model" in df:
        df = df[df["model"] == spec.model]
    if spec.op_name is not None and "op_name" in df:
        df = df[df["op_name"] == spec.op_name]
    if "kernel_source" not in df:
        df = df.assign(kernel_source="default")
    if "framework" not in df:
        df = df.assign(framework="")
    if "beam_width" in spec.categories and "beam_width" not in df:
        df = df.assign(beam_width=1)
    if "window_size" in spec.categories and "window_size" not in df:
        df = df.assign(window_size=0)
    if "gemm_type" in spec.categories and "gemm_type" not in df and "mla_dtype" in df:
        # sglang 0.5.6.post2 WideEP MLA rows: one dtype column for GEMMs and attention
        df = df.assign(gemm_type=df["mla_dtype"])
    needed = set(spec.categories) | set(spec.required) | {"latency"}
    needed |= {a for a in spec.axes if a not in ("kv_len", "prefix")}
    missing = sorted(c for c in needed if c not in df.columns)
    if missing:
        raise ConfigError("compute.table_dir",
                          f"{path}: missing column(s) {', '.join(missing)} for table {spec.name}")
    if spec.derive is not None and len(df):
        df = spec.derive(df)
    return df


@functools.lru_cache(maxsize=64)
def load_table(files: tuple[str, ...], spec_name: str, lane_order: tuple[str, ...]) -> LoadedTable:
    """Load, merge (earlier files win per key), aggregate and lane-select one table.

    `files` are in priority order; `lane_order` lists preferred kernel_sources first.
    Cached per process on its arguments.
    """
    spec = SPECS[spec_name]
    cats, axes = list(spec.categories), list(spec.axes)
    frames = []
    for prio, f in enumerate(files):
        df = _read(Path(f), spec)
        frames.append(df[cats + axes + ["kernel_source", "latency"]].assign(_prio=prio))
    df = pd.concat(frames, ignore_index=True)
    df = df[np.isfinite(df["latency"]) & (df["latency"] > 0)]
    for a in axes:
        df = df[df[a] >= 0] if a in spec.zero_axes else df[df[a] > 0]
    if len(files) > 1:  # own (user) rows win over donor (shipped) rows on the same key
        best = df.groupby(cats + axes, sort=False)["_prio"].transform("min")
        df = df[df["_prio"] == best]
    key = cats + axes + ["kernel_source"]
    n_before = len(df)
    df = df.groupby(key, sort=False, as_index=False)["latency"].median()
    dups = n_before - len(df)
    # Lane: one kernel_source per key, by a global precedence (user/framework default first,
    # then the most rows in the table) so that neighbouring keys use the same kernel where
    # it exists.
    counts = df["kernel_source"].value_counts()
    flagged: dict[tuple, list[tuple[float, ...]]] = {}
    n_flagged = 0
    if spec_name == "gemm_perf" and len(df):
        bad = flag_gemm_rows(df, _system_of(files))
        if bad:
            drop = df.loc[sorted(bad)]
            for (dt, n, k), _ in drop.groupby(["gemm_dtype", "n", "k"], sort=False):
                flagged.setdefault((_plain(dt),), []).append((float(n), float(k)))
            n_flagged = len(bad)
            df = df.drop(index=sorted(bad))
    rank = {ks: i for i, ks in enumerate(lane_order)}
    base = len(rank)
    order = sorted(counts.index, key=lambda ks: (rank.get(ks, base), -counts[ks], ks))
    prec = {ks: i for i, ks in enumerate(order)}
    df = df.assign(_lane=df["kernel_source"].map(prec))
    best = df.groupby(cats + axes, sort=False)["_lane"].transform("min")
    df = df[df["_lane"] == best].drop(columns="_lane")
    df = df.assign(latency_s=df["latency"] * spec.unit_s).drop(columns="latency")
    df = df.reset_index(drop=True)
    return LoadedTable(spec=spec, frame=df, sources=list(files),
                       lanes=df["kernel_source"].value_counts().to_dict(),
                       duplicates_aggregated=int(dups), flagged_rows=n_flagged, flagged=flagged)


# ------------------------------------------------------------------------------------------
# A system's tables for one framework/version


def _reuse_donors(vdir: Path, table: str) -> list[str]:
    path = vdir / "reuse.yaml"
    if not path.is_file():
        return []
    doc = yaml.safe_load(path.read_text()) or {}
    return [str(r["from_version"]) for r in doc.get("reuse", []) or []
            if r.get("table") == table and r.get("from_version")]


def _files_in_version(fwdir: Path, version: str, table: str, seen: set[str]) -> list[str]:
    """Own parquet of a version folder followed by its reuse.yaml donors (recursively)."""
    if version in seen:
        return []
    seen.add(version)
    vdir = fwdir / version
    files = []
    own = vdir / f"{table}.parquet"
    if own.is_file():
        files.append(str(own))
    for donor in _reuse_donors(vdir, table):
        files.extend(_files_in_version(fwdir, donor, table, seen))
    return files


def shipped_files(system: str, family: str, framework: str, version: str,
                  table: str) -> tuple[list[str], str]:
    """Files that serve `table` at `version`, and a note on where they came from."""
    fwdir = systems_dir() / "data" / system / family / framework
    if not fwdir.is_dir():
        return [], ""
    files = _files_in_version(fwdir, version, table, set())
    if files:
        used = sorted({Path(f).parent.name for f in files})
        return files, version if used == [version] else f"{version} (reuse: {', '.join(used)})"
    # Backward fill: the newest older folder that has the table.
    older = [v.name for v in fwdir.iterdir() if v.is_dir()
             and _version_key(v.name) < _version_key(version)]
    for v in reversed(_sort_versions(older)):
        files = _files_in_version(fwdir, v, table, set())
        if files:
            return files, f"{v} (backward fill)"
    return [], ""


class TableSet:
    """The measured tables one ComputeModel reads: a system's shipped tables for one
    framework/version, and optionally a user's folder read first."""

    def __init__(self, system: str | None, framework: str, version: str = "",
                 table_dir: str = "", lanes: dict[str, str] | None = None):
        self.system = system
        self.framework = framework
        self.table_dir = table_dir
        self.user_lanes = dict(lanes or {})
        if system is not None:
            if system not in available_systems():
                raise ConfigError("hardware.tables",
                                  f"no measured tables for system {system!r}; available: "
                                  f"{', '.join(available_systems())} (or null for roofline only)")
            self.version = resolve_version(system, framework, version)
        else:
            self.version = version or ""
        if table_dir and not Path(table_dir).is_dir():
            raise ConfigError("compute.table_dir", f"not a folder: {table_dir}")
        self._tables: dict[str, LoadedTable | None] = {}
        self.provenance: dict[str, str] = {}

    def _lane_order(self, spec: TableSpec) -> tuple[str, ...]:
        order = []
        if spec.name in self.user_lanes:
            order.append(self.user_lanes[spec.name])
        if (spec.family == "attention" or spec.name in ATTENTION_LANE_TABLES) \
                and self.system is not None:
            defaults = _attention_lane_defaults().get(self.framework, {}).get(self.version, {})
            lane = defaults.get(sm_version(self.system)) if defaults else None
            if lane:
                order.append(str(lane))
        if spec.name == "moe_perf":
            # The min-latency nvfp4 kernel duplicates the cutlass keys; aiconfigurator routes
            # it to a separate low-latency view, so the general kernel is the default here.
            order.append("moe_torch_flow_cutlass")
        return tuple(order)

    def table(self, name: str) -> LoadedTable | None:
        """The loaded table `name`, or None where neither the user nor the wheel has it."""
        if name in self._tables:
            return self._tables[name]
        spec = SPECS[name]
        files: list[str] = []
        notes = []
        if self.table_dir:
            user = Path(self.table_dir) / f"{name}.parquet"
            if user.is_file():
                files.append(str(user))
                notes.append(f"user {self.table_dir}")
        if self.system is not None:
            shipped, note = shipped_files(self.system, spec.family, self.framework,
                                          self.version, name)
            if shipped:
                files.extend(shipped)
                notes.append(f"{self.system}/{spec.family}/{self.framework}/{note}")
        loaded = load_table(tuple(files), name, self._lane_order(spec)) if files else None
        if loaded is not None and not len(loaded.frame):
            loaded = None
        self._tables[name] = loaded
        self.provenance[name] = " + ".join(notes) if loaded is not None else "absent"
        if loaded is not None and loaded.flagged_rows:
            self.provenance[name] += f" ({loaded.flagged_rows} flagged rows not used)"
        return loaded
