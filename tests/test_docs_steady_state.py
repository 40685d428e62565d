"""docs/serving.md's steady-state example is what scripts/steady_state_example.py writes today."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_steady_state_doc_is_current():
    spec = importlib.util.spec_from_file_location("steady_state_example",
                                                  ROOT / "scripts" / "steady_state_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check"]) == 0, "re-run: python scripts/steady_state_example.py"
