"""Best configuration under an SLO-attainment threshold, per scenario and per deployment."""

from __future__ import annotations

import pytest
from report_fixtures import summary, sweep

from cosim.report import ReportError, build_report


@pytest.fixture
def chat_sweep(tmp_path):
    # chunked: A has the most tokens/s per GPU but misses the SLO; B is best among eligible
    return sweep(tmp_path / "mr", [
        (["deployment=chunked", "workload.arrival.users=64"],
         summary("chunked", x=20.0, y=200.0, attainment=0.5)),                    # A
        (["deployment=chunked", "workload.arrival.users=16"],
         summary("chunked", x=30.0, y=150.0, attainment=0.95)),                   # B
        (["deployment=chunked", "workload.arrival.users=4"],
         summary("chunked", x=40.0, y=100.0, attainment=0.99)),                   # C
        (["deployment=pd", "workload.arrival.users=16"],
         summary("pd", x=50.0, y=120.0, attainment=0.92)),                        # D
        (["deployment=pd", "workload.arrival.users=64"], summary("pd", feasible=False)),  # E
        (["deployment=afd", "workload.arrival.users=16"],
         summary("afd", x=45.0, y=80.0, attainment=0.3)),                         # F
    ])


def by_dir(rep, col):
    return dict(zip(rep.runs["run_dir"], rep.runs[col], strict=True))


def test_best_is_the_highest_throughput_run_that_meets_the_slo(chat_sweep):
    rep = build_report(chat_sweep, slo_attainment_min=0.9)
    (scen,) = rep.best["scenarios"]
    assert scen["scenario"] == "model=deepseek_v32 workload=chat slo.ttft_ms=50 slo.tpot_ms=15"
    assert scen["best"]["run_dir"] == "1"  # B, not A (A misses the SLO)
    assert scen["best"]["output_tok_s_per_gpu"] == 150.0
    assert scen["best"]["overrides"] == {"deployment": "chunked", "workload.arrival.users": 16}
    # the scenario's best says its deployment; within a group, the group says it already
    assert scen["best"]["detail"] == "deployment=chunked workload.arrival.users=16"
    assert scen["by_group"]["chunked"]["best"]["detail"] == "workload.arrival.users=16"
    groups = scen["by_group"]
    assert groups["chunked"]["best"]["run_dir"] == "1"
    assert groups["pd"]["best"]["run_dir"] == "3"
    assert groups["afd"]["best"] is None
    assert "highest 0.3" in groups["afd"]["reason"]
    assert groups["afd"]["closest"]["run_dir"] == "5"
    assert [r["group"] for r in scen["ranking"]] == ["chunked", "pd"]
    assert rep.best["eligible"] == 3 and rep.best["runs"] == 6


def test_frontier_under_the_slo_excludes_runs_that_miss_it(chat_sweep):
    rep = build_report(chat_sweep, slo_attainment_min=0.9)
    assert by_dir(rep, "eligible") == {"0": False, "1": True, "2": True, "3": True, "4": False,
                                       "5": False}
    assert by_dir(rep, "on_frontier") == {"0": False, "1": True, "2": True, "3": True,
                                          "4": False, "5": False}
    # across deployments, pd's (50, 120) dominates chunked's (40, 100)
    assert [d for d, v in by_dir(rep, "on_scenario_frontier").items() if v] == ["1", "3"]
    assert rep.pareto["run_dir"].tolist() == ["1", "2", "3"]


def test_without_an_slo_threshold_every_feasible_run_counts(chat_sweep):
    rep = build_report(chat_sweep, slo_attainment_min=0.0)
    (scen,) = rep.best["scenarios"]
    assert scen["best"]["run_dir"] == "0"  # A: 200 tokens/s per GPU
    assert scen["by_group"]["afd"]["best"]["run_dir"] == "5"
    assert scen["by_group"]["pd"]["best"]["run_dir"] == "3"  # E is infeasible
    assert [d for d, v in by_dir(rep, "on_frontier").items() if v] == ["0", "1", "2", "3", "5"]


def test_a_group_with_only_infeasible_runs_says_why(tmp_path):
    root = sweep(tmp_path, [(["deployment=pd"], summary("pd", feasible=False)),
                            (["deployment=chunked"], summary("chunked"))])
    scen = build_report(root, slo_attainment_min=0.9).best["scenarios"][0]
    assert scen["by_group"]["pd"]["best"] is None
    assert scen["by_group"]["pd"]["reason"].startswith("no feasible run (weights")


def test_ties_go_to_fewer_gpus_then_to_the_earlier_run(tmp_path):
    root = sweep(tmp_path, [
        (["deployment.replicas=2"], summary("chunked", y=100.0, gpus=16)),
        (["deployment.replicas=1"], summary("chunked", y=100.0, gpus=8)),
        (["deployment.replicas=3"], summary("chunked", y=100.0, gpus=8)),
    ])
    scen = build_report(root).best["scenarios"][0]
    assert scen["best"]["run_dir"] == "1"


def test_scenarios_separate_workloads_and_slos(tmp_path):
    root = sweep(tmp_path, [
        (["workload=chat", "slo=default"], summary(workload="chat", y=100.0)),
        (["workload=coding", "slo=default"], summary(workload="coding", y=80.0, ttft_ms=100.0)),
        (["workload=chat", "slo=loose"], summary(workload="chat", y=300.0, ttft_ms=500.0,
                                                 tpot_ms=50.0)),
    ])
    rep = build_report(root)
    names = [s["scenario"] for s in rep.best["scenarios"]]
    assert names == ["model=deepseek_v32 workload=chat slo.ttft_ms=50 slo.tpot_ms=15",
                     "model=deepseek_v32 workload=coding slo.ttft_ms=100 slo.tpot_ms=15",
                     "model=deepseek_v32 workload=chat slo.ttft_ms=500 slo.tpot_ms=50"]
    assert [s["best"]["run_dir"] for s in rep.best["scenarios"]] == ["0", "1", "2"]


def test_group_by_another_column(chat_sweep):
    rep = build_report(chat_sweep, slo_attainment_min=0.0,
                       group_by=["deployment_kind", "workload.arrival.users"])
    groups = rep.best["scenarios"][0]["by_group"]
    assert sorted(groups) == ["afd / 16", "chunked / 16", "chunked / 4", "chunked / 64",
                              "pd / 16", "pd / 64"]


def test_an_unknown_metric_is_an_error_that_lists_the_columns(chat_sweep):
    with pytest.raises(ReportError, match="--x tokens_per_dollar: no such column.*num_gpus"):
        build_report(chat_sweep, x="tokens_per_dollar")
    with pytest.raises(ReportError, match="--by deploymnet"):
        build_report(chat_sweep, group_by=["deploymnet"])


def test_all_runs_infeasible_reports_no_best_without_failing(tmp_path):
    root = sweep(tmp_path, [(["deployment=pd"], summary("pd", feasible=False))])
    rep = build_report(root)
    assert rep.best["scenarios"][0]["best"] is None
    assert rep.pareto.empty
