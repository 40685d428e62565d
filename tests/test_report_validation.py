"""scripts/validate.py: the network cases it computes and the page it renders."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from cosim.paths import PROJECT_DIR


@pytest.fixture(scope="module")
def validate():
    path = PROJECT_DIR / "scripts" / "validate.py"
    spec = importlib.util.spec_from_file_location("cosim_validate_script", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_ring_allreduce_busbw_is_the_topologys_nvlink_capacity(validate):
    ring, nvls = validate.v2_allreduce()
    # dgx_h100_ib: 450 GB/s per direction x efficiency 0.8; a 4 GiB message hides latency
    assert ring.cosim == pytest.approx(450 * 0.8, rel=1e-3)
    # NVLS: S up + S down per GPU, so algBw = link rate and busBw = 2(n-1)/n of it
    assert nvls.cosim == pytest.approx(360 * 14 / 8, rel=1e-3)
    assert ring.ratio == pytest.approx(ring.cosim / 367.5)


def test_page_has_one_table_line_per_row_and_names_sources(validate):
    rows = validate.v2_allreduce()
    rows.append(validate.Row(case="V9 none", setup="s", public=10.0, source="lmsys", cosim=None,
                             unit="tok/s/node", method="m"))
    page = validate.render(rows, {"quick": True, "wall_s": 1.0, "machine": "test",
                                  "version": "0", "framework": "sglang",
                                  "findings": validate.findings(rows)})
    table = [ln for ln in page.splitlines() if ln.startswith("| V")]
    assert len(table) == 3
    assert "| 0.98 |" in table[0] and "| – |" in table[2]  # a missing figure has no ratio
    assert "[nccl]" in table[0] and "- [nccl] NVIDIA/nccl-tests" in page
    assert "V2 (network, NCCL all-reduce):** ratios 0.98-1.31" in page
