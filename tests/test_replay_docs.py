"""docs/replay.md's generated sections are what scripts/replay_example.py writes today
(the style of test_docs_generated.py; the size table takes 1,000-request runs: marked slow)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("replay_example",
                                                  ROOT / "scripts" / "replay_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_replay_example_section_is_current():
    assert _script().main(["--check", "--quick"]) == 0, \
        "docs/replay.md is stale: python scripts/replay_example.py"


@pytest.mark.slow
def test_flow_size_section_is_current():
    assert _script().main(["--check"]) == 0, \
        "docs/replay.md is stale: python scripts/replay_example.py"
