"""docs/validation_silicon.md is what the H200 silicon rows give today; Blackwell rows stay out."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mod():
    spec = importlib.util.spec_from_file_location("validate_silicon",
                                                  ROOT / "scripts" / "validate_silicon.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_only_h200_rows_are_kept():
    m = _mod()
    assert set(m.h200_sample()["system"]) == {"h200_sxm"}
    df = m.h200_rows()
    assert len(df) > 0 and set(df["system"]) == {"h200_sxm"}
    # one server per row, concurrency as measured (batch x attention dp), no duplicates
    assert (df["tp_size"] * df["attention_dp_size"] <= 8).all()
    assert (df["users"] == df["batch_size"] * df["attention_dp_size"]).all()
    assert not df.duplicated(["backend", *m.LAYOUT, "isl", "osl", "users"]
                             + ["silicon_ttft_ms"]).any()


def test_n_squared_rows_are_listed_as_not_run():
    m = _mod()
    _, bad = m._split(m.h200_sample())
    assert len(bad) and (bad["tp_size"] * bad["attention_dp_size"] > 8).all()
    assert bad["why"].str.contains("N\\^2").all()


def test_quick_section_is_current():
    assert _mod().main(["--quick", "--check"]) == 0, \
        "re-run: python scripts/validate_silicon.py --quick"


@pytest.mark.slow
def test_silicon_validation_page_is_current():
    # the DeepSeek section (the dense section is regenerated with the page; its quick
    # rows are in the quick section above)
    assert _mod().main(["--check", "--section", "deepseek"]) == 0, \
        "re-run: python scripts/validate_silicon.py"
