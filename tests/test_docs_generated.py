"""Every docs page section written by a script is what that script writes today.

Each script regenerates its section between GENERATED markers with `python scripts/<name>.py`
and answers `main(["--check"])` with 0 when the page is current.
"""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATORS = {
    "experts_example": "docs/experts.md",
    "compare_aiconfigurator": "docs/search.md",
    "steady_state_example": "docs/serving.md",
    "placement_example": "docs/placement.md",
    "profiles_table": "docs/serving.md",
    "gen_traces_doc": "docs/traces.md",
    "gen_afd_pricing_doc": "docs/deployments/afd.md",
    "heterogeneous_example": "docs/heterogeneous_roles.md",
    "serving_options_example": "docs/serving.md (overlap, MTP) and docs/network.md (EP kernels)",
    "study_afd_vs_chunked": "docs/deployments/afd.md (seed study tables, conclusions, why)",
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generated_docs_section_is_current(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check"]) == 0, f"{GENERATORS[name]} is stale: python scripts/{name}.py"
