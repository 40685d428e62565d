"""cosim-search: candidates, bisection, resume, pruning reasons, static vs simulated."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from cosim.api import compose_config
from cosim.errors import ConfigError
from cosim.search.bisection import highest_passing
from cosim.search.driver import one_instance, run_search
from cosim.search.evaluate import candidate_config, config_key, evaluate, run_overrides
from cosim.search.outputs import write_all
from cosim.search.space import Candidate, generate_candidates

# Short runs: fixed 256-in / 32-out requests, no shared prefix.
BASE = ["workload=fixed", "workload.input_tokens.mean=256", "workload.output_tokens.mean=32",
        "topology.num_nodes=2"]


def search_cfg(*overrides: str):
    s = OmegaConf.to_object(compose_config(list(overrides), "search").search)
    s.validate()
    return s


@pytest.mark.parametrize("gpus", [16, 24, 64, 128])
def test_candidates_stay_within_and_fill_the_budget(gpus):
    s = search_cfg(f"search.gpus={gpus}")
    cands = generate_candidates(s, 256)
    assert {c.kind for c in cands} == {"chunked", "pd", "afd", "pd_afd"}
    for c in cands:
        assert 0 < c.gpus <= gpus, c.words
        st = c.settings
        if c.kind == "chunked":  # no further replica fits
            g = st["deployment.layout.tp"] * st["deployment.layout.dp"]
            assert st["deployment.replicas"] * g == c.gpus and gpus - c.gpus < g
        if c.kind == "afd":
            unit = (st["deployment.roles.attention.layout.tp"]
                    * st["deployment.roles.attention.layout.dp"]
                    + st["deployment.roles.ffn.layout.ep"] * st["deployment.roles.ffn.layout.moe_tp"])
            assert st["deployment.roles.attention.count"] * unit == c.gpus and gpus - c.gpus < unit
    # an FFN group that does not divide the 256 experts is a candidate (issue 9)
    if gpus == 128:
        assert any(c.settings.get("deployment.roles.ffn.layout.ep") == 120 for c in cands)


def test_scheduler_cap_is_set_from_the_layout():
    s = search_cfg("search.gpus=8", "search.kinds=[chunked]")
    tp8 = next(c for c in generate_candidates(s, 256) if c.settings["deployment.layout.tp"] == 8)
    assert tp8.settings["deployment.scheduler.max_running_requests"] == 8 * s.running_per_gpu
    assert "decode cap 512 requests per rank" in tp8.words


def test_bad_search_values_name_the_field():
    with pytest.raises(ConfigError, match="search.kinds"):
        search_cfg("search.kinds=[chunked,bogus]")
    with pytest.raises(ConfigError, match="search.slo_attainment"):
        search_cfg("search.slo_attainment=1.5")


@pytest.mark.parametrize("threshold", [1, 2, 37, 100, 1000])
def test_bisection_finds_a_known_threshold(threshold):
    calls = []

    def passes(x: int) -> bool:  # toy cost model: latency grows with load
        calls.append(x)
        return 5.0 + 0.1 * x <= 5.0 + 0.1 * threshold

    good, bad = highest_passing(passes, 1, 4096, steps=20)
    assert good == threshold and bad == threshold + 1
    assert len(calls) <= 30


def test_bisection_reports_a_first_load_that_fails_and_a_ceiling():
    assert highest_passing(lambda x: False, 1, 64, 5) == (None, 1)
    assert highest_passing(lambda x: True, 1, 64, 5) == (64, None)


def _chunked() -> Candidate:
    return Candidate("chunked", 8, {"deployment.replicas": 1, "deployment.layout.tp": 1,
                                    "deployment.layout.dp": 8, "deployment.layout.ep": 8}, "8 GPUs")


def test_resume_reuses_finished_evaluations_and_reruns_a_missing_one(tmp_path):
    c = _chunked()
    a = evaluate(BASE, c, 1, 4, tmp_path, 0.0)
    b = evaluate(BASE, c, 2, 6, tmp_path, 0.0)
    assert not a["cached"] and not b["cached"] and a["feasible"]
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 2
    again = evaluate(BASE, c, 1, 4, tmp_path, 0.0)
    assert again["cached"] and again["output_tok_s_per_gpu"] == a["output_tok_s_per_gpu"]
    # lose one record (an interrupted search): only that one runs again
    path_b = next(f for f in files if json.loads(f.read_text())["users"] == 2)
    path_b.unlink()
    assert not evaluate(BASE, c, 2, 6, tmp_path, 0.0)["cached"]
    assert evaluate(BASE, c, 1, 4, tmp_path, 0.0)["cached"]
    # a damaged record is recomputed, not trusted
    path_b.write_text("{not json")
    assert not evaluate(BASE, c, 2, 6, tmp_path, 0.0)["cached"]


def test_candidate_config_equals_hydra_composition_of_its_overrides(tmp_path):
    """The per-process template + plain values gives what Hydra composes from the overrides,
    also after runs of other candidates (a run leaves the template as it found it)."""
    s = search_cfg("search.gpus=16")
    cands = generate_candidates(s, 256)
    sample = [next(c for c in cands if c.kind == k) for k in ("chunked", "pd", "afd", "pd_afd")]
    sample.append(cands[-1])
    base = [*BASE, "slo.tpot_ms=40"]
    for c in sample:
        evaluate(base, c, 2, 10, tmp_path, 0.0)  # a real run on the template first
        for users, extra in ((1, ()), (37, ("network=ns3",))):
            slow = compose_config(run_overrides(base, c, users, 160, extra))
            with candidate_config(base, c, users, 160, extra) as fast:
                assert OmegaConf.to_yaml(fast, resolve=True) == OmegaConf.to_yaml(slow, resolve=True)
                assert config_key(fast) == config_key(slow)
    bad = Candidate("chunked", 8, {"deployment.replicas": 3, "deployment.nope": 1}, "")
    with pytest.raises(ConfigError, match="deployment.nope"):
        with candidate_config(base, bad, 1, 10):
            pass
    with candidate_config(base, sample[0], 1, 160) as again:  # the failed one was put back
        slow = compose_config(run_overrides(base, sample[0], 1, 160))
        assert OmegaConf.to_yaml(again, resolve=True) == OmegaConf.to_yaml(slow, resolve=True)


def test_one_instance_shares_the_static_run():
    a = Candidate("afd", 32, {"deployment.roles.attention.count": 2,
                              "deployment.roles.ffn.count": 2, "deployment.micro_batches": 3})
    b = Candidate("afd", 16, {"deployment.roles.attention.count": 1,
                              "deployment.roles.ffn.count": 1, "deployment.micro_batches": 1})
    assert one_instance(a).cid == one_instance(b).cid


@pytest.fixture(scope="module")
def small_search(tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    s = search_cfg("search.gpus=16", "search.kinds=[chunked,afd]", "search.space.instance_gpus=[8]",
                   "search.space.tp=[1,8]", "search.space.attention_gpus=[4,8]",
                   "search.space.attention_tp=[1]", "search.space.ffn_gpus=[2,8]",
                   "search.space.micro_batches=[1,2]", "search.requests=24",
                   "search.static_requests=2", "search.bisection_steps=2", "search.max_users=8",
                   "search.keep_per_kind=2", "search.jobs=1")
    base = [*BASE, "slo.ttft_ms=1000", "slo.tpot_ms=40"]
    outcomes = run_search(base, s, generate_candidates(s, 256), out)
    return s, base, out, outcomes


def test_every_unsimulated_candidate_carries_its_reason(small_search):
    s, _, out, outcomes = small_search
    assert any(o.stage == "simulated" for o in outcomes)
    for o in outcomes:
        if o.stage != "simulated":
            assert o.reason, o.cand.words
        else:
            assert o.points and o.reason
    memory = [o for o in outcomes if o.reason.startswith("memory")]
    assert memory and all("GB" in o.reason for o in memory)  # 2 FFN GPUs cannot hold 671B
    doc = write_all(out, outcomes, s.kinds, s.objective, s.gpus, s.slo_attainment, "t", 1000, 40)
    for name in ("candidates.parquet", "frontier.csv", "best.json", "pareto.png", "report.html"):
        assert (out / name).stat().st_size > 0
    page = (out / "report.html").read_text()
    assert "<svg" in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert set(doc["by_kind"]) == {"chunked", "afd"}


def test_static_slo_infeasible_is_never_feasible_when_simulated(small_search, tmp_path):
    s, base, _, outcomes = small_search
    tight = [*base[:-1], "slo.tpot_ms=12"]
    sample = [o.cand for o in outcomes if o.static.get("feasible")][:3]
    assert sample
    for c in sample:
        one = evaluate(tight, c, 1, 2, tmp_path, 0.0)
        if one.get("meets_tpot", 0.0) >= s.slo_attainment:
            continue  # not pruned at this SLO
        loaded = evaluate(tight, c, 4, 16, tmp_path, 0.25)
        assert loaded["attainment"] < s.slo_attainment, c.words


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from cosim.cli import search_main; search_main()",
                           *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_cosim_search_app_writes_its_outputs_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = (*BASE, "slo.ttft_ms=1000", "slo.tpot_ms=40", "search.gpus=8", "search.kinds=[chunked]",
            "search.space.instance_gpus=[8]", "search.space.tp=[1,8]", "search.requests=16",
            "search.static_requests=2", "search.bisection_steps=1", "search.max_users=4",
            "search.jobs=1", f"hydra.run.dir={out}")
    first = _cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    doc = json.loads((out / "best.json").read_text())
    assert doc["stats"]["candidates"] == 2 and doc["stats"]["cached"] == 0
    entry = doc["by_kind"]["chunked"]
    assert entry["answer"] in ("feasible", "infeasible")
    if entry["answer"] == "feasible":  # every answer says where its numbers came from
        assert set(entry["compute_sources"]) <= {"measured", "interpolated", "roofline"}
        assert entry["network"]
    again = _cli(*args, cwd=tmp_path)
    assert again.returncode == 0
    doc2 = json.loads((out / "best.json").read_text())
    assert doc2["stats"]["cached"] == doc2["stats"]["simulations"] > 0  # all reused
    assert doc2["by_kind"] == doc["by_kind"]
    # the same search through submitit (local subprocesses: the code path of a Slurm array)
    out3 = tmp_path / "run_submitit"
    sub = _cli(*args[:-1], f"hydra.run.dir={out3}", "search.executor=submitit",
               "search.cluster.cluster=local", cwd=tmp_path)
    assert sub.returncode == 0, sub.stderr[-2000:]
    assert json.loads((out3 / "best.json").read_text())["by_kind"] == doc["by_kind"]
    assert list((out3 / "submitit").glob("*/*_result.pkl"))  # the jobs ran under submitit


def test_cosim_search_bad_input_is_one_line_and_exit_2(tmp_path):
    r = _cli("search.kinds=[chunked,nope]", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "search.kinds" in r.stderr
    if importlib.util.find_spec("ray") is None:  # an executor whose package is missing
        r = _cli("search.executor=ray", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
        assert "search.executor" in r.stderr and "pip install ray" in r.stderr
    r = _cli("search.executor=slurm", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert r.returncode == 2 and "search.executor" in r.stderr
    r = _cli("hardware=h800", "search.objective=usd_per_mtok", f"hydra.run.dir={tmp_path}",
             cwd=tmp_path)
    assert r.returncode == 2 and "hardware.usd_per_gpu_hour" in r.stderr
