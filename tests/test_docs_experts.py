"""docs/experts.md's worked example is what scripts/experts_example.py writes today."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_experts_doc_is_current():
    spec = importlib.util.spec_from_file_location("experts_example",
                                                  ROOT / "scripts" / "experts_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check"]) == 0, "re-run: python scripts/experts_example.py"
