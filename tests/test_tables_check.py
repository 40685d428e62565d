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
