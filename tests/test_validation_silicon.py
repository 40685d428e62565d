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
    df = _mod().h200_rows()
    assert len(df) > 0 and set(df["system"]) == {"h200_sxm"}


@pytest.mark.slow
def test_silicon_validation_page_is_current():
    assert _mod().main(["--check"]) == 0, "re-run: python scripts/validate_silicon.py"
