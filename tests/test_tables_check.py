import importlib.util
from pathlib import Path

import pandas as pd

from cosim.apps.tables import check_gemm, main


def _df(lat):
    m = [1, 10, 100, 1000]
    return pd.DataFrame({"kernel_source": "x", "gemm_dtype": "fp8", "n": 64, "k": 64,
                         "m": m, "latency": lat})


def test_flat_series_is_flagged():
    rows = check_gemm(_df([0.3, 0.31, 0.3, 0.32]))
    assert len(rows) == 1 and rows[0][1].startswith("flat")


def test_non_monotone_row_is_flagged_with_its_row():
    rows = check_gemm(_df([0.01, 0.02, 0.005, 0.5]))
    assert rows == [(2, rows[0][1])] and rows[0][1].startswith("non-monotone")


def test_sane_series_passes():
    assert check_gemm(_df([0.01, 0.012, 0.05, 0.4])) == []


def test_unknown_system_is_one_line_exit_2(capsys):
    assert main(["check", "no_such_gpu"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_tables_doc_is_current():
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("gen_tables_doc", root / "scripts/gen_tables_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (root / "docs/tables.md").read_text() == mod.render()


def test_flat_far_above_roofline_is_flagged_but_a_launch_floor_is_not():
    from cosim.compute.tables import flag_gemm_rows

    m = [1, 16, 256, 4096, 32768]
    # n = k = 64: every row at the ~12 us launch floor is physical (work is tiny)
    floor = pd.DataFrame({"kernel_source": "x", "gemm_dtype": "fp8", "n": 64, "k": 64, "m": m,
                          "latency": [0.012, 0.012, 0.013, 0.014, 0.016]})
    assert flag_gemm_rows(floor, "h200_sxm") == {}
    broken = floor.assign(n=7168, k=7168, latency=[0.3, 0.31, 0.3, 0.32, 0.33])
    assert sorted(flag_gemm_rows(broken, "h200_sxm")) == list(broken.index)


def test_flagged_rows_are_not_used_when_pricing(tmp_path):
    """A user table whose fp8 series at (n, k) = (4096, 4096) is flat at 0.5 ms: the shape is
    priced from the other lane of the same key, and the provenance says rows were dropped."""
    import numpy as np

    from cosim.compute import ComputeModel
    from cosim.compute.roofline import work
    from cosim.config.compute import ComputeConfig
    from cosim.model.operators import Operator, OpKind
    from tests.test_compute_model import hardware

    ms = [1, 8, 64, 512, 4096]
    rows = []
    for ks, lat in (("broken", [0.5] * 5), ("good", list(np.array(ms) * 2e-5 + 0.01))):
        for m, t in zip(ms, lat, strict=True):
            rows.append({"framework": "TRTLLM", "version": "x", "device": "NVIDIA H200",
                         "op_name": "gemm", "kernel_source": ks, "gemm_dtype": "fp8", "m": m,
                         "n": 4096, "k": 4096, "latency": t})
    # the broken lane has more rows elsewhere, so it is the preferred lane of the table
    for m in ms:
        rows.append({**rows[0], "m": m, "n": 2048, "latency": 0.01 + m * 1e-5})
    pd.DataFrame(rows).to_parquet(tmp_path / "gemm_perf.parquet")
    cm = ComputeModel(hardware("h200"), ComputeConfig(table_dir=str(tmp_path)))
    dims = {"m": 64, "n": 4096, "k": 4096, "dtype": "fp8"}
    flops, nbytes = work(OpKind.gemm, dims)
    lat = cm.latency(Operator("g", OpKind.gemm, dims, flops, nbytes, 1, "other"))
    assert lat.latency_s < 0.1e-3  # not the 0.5 ms flat row
    assert "flagged table rows not used" in lat.flags
    assert "flagged rows not used" in cm.tables.provenance["gemm_perf"]
