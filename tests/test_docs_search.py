"""docs/search.md's aiconfigurator comparison is what scripts/compare_aiconfigurator.py writes."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_search_doc_comparison_is_current():
    spec = importlib.util.spec_from_file_location(
        "compare_aiconfigurator", ROOT / "scripts" / "compare_aiconfigurator.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check"]) == 0, "re-run: python scripts/compare_aiconfigurator.py"
