"""Reading a Hydra multirun folder: overrides as columns, summary fields, clear errors."""

from __future__ import annotations

import json

import pytest
from report_fixtures import summary, sweep, write_job

from cosim.report import ReportError, load_multirun


def test_one_row_per_run_with_overrides_and_summary_fields(tmp_path):
    root = sweep(tmp_path / "mr", [
        (["deployment=chunked", "workload.arrival.users=16", "+experiment=seed"],
         summary("chunked", x=40.0, y=90.0)),
        (["deployment=pd", "workload.arrival.users=64", "+experiment=seed"],
         summary("pd", x=20.0, y=150.0)),
    ])
    mr = load_multirun(root)
    df = mr.runs
    assert len(df) == 2 and mr.skipped == []
    assert mr.override_keys == ["deployment", "workload.arrival.users", "experiment"]
    assert df["deployment"].tolist() == ["chunked", "pd"]
    assert df["workload.arrival.users"].tolist() == [16, 64]  # typed, not text
    assert df["experiment"].tolist() == ["seed", "seed"]
    assert df["output_tok_s_per_gpu"].tolist() == [90.0, 150.0]
    assert df["num_gpus"].tolist() == [8, 16]
    # nested summary fields flattened with dots; null stays missing
    assert df["slo.tpot_ms"].tolist() == [15.0, 15.0]
    assert df["deployment.gpus_by_role.decode"].isna().tolist() == [True, False]
    assert df["compute_sources.measured"].tolist() == [0.15, 0.15]
    assert df["kv_transfer_ms_p99"].isna().tolist() == [True, False]
    # the label shows only what varies between runs
    assert df["label"].tolist() == ["deployment=chunked workload.arrival.users=16",
                                    "deployment=pd workload.arrival.users=64"]
    assert df["run_dir"].tolist() == ["0", "1"]


def test_jobs_sort_numerically_and_nested_sweeps_are_found(tmp_path):
    runs = [([f"workload.arrival.users={u}"], summary(x=100.0 / (u + 1), y=float(u))) for u in range(12)]
    sweep(tmp_path / "a" / "12-00-00", runs)
    sweep(tmp_path / "b" / "13-00-00", runs[:2])
    df = load_multirun(tmp_path).runs
    assert df["run_dir"].tolist()[:12] == [f"a/12-00-00/{i}" for i in range(12)]
    assert len(df) == 14


def test_summary_field_named_like_an_override_is_renamed(tmp_path):
    root = sweep(tmp_path, [(["slo.tpot_ms=20"], summary(tpot_ms=20.0))])
    df = load_multirun(root).runs
    assert df["slo.tpot_ms"].tolist() == [20]           # the override
    assert df["summary.slo.tpot_ms"].tolist() == [20.0]  # the summary's copy


def test_config_keys_become_columns(tmp_path):
    root = sweep(tmp_path, [(["deployment=pd"], summary("pd"))])
    df = load_multirun(root, config_keys=["workload.arrival.users", "no.such.key"]).runs
    assert df["cfg.workload.arrival.users"].tolist() == [16]
    assert df["cfg.no.such.key"].isna().all()


def test_a_single_run_folder_works(tmp_path):
    write_job(tmp_path, "outputs/2026-01-01/10-00-00", [], summary())
    df = load_multirun(tmp_path / "outputs/2026-01-01/10-00-00").runs
    assert df["run_dir"].tolist() == ["."] and df["label"].tolist() == ["."]


def test_unfinished_job_is_skipped_and_listed(tmp_path):
    root = sweep(tmp_path, [(["deployment=chunked"], summary()), (["deployment=pd"], None)])
    mr = load_multirun(root)
    assert mr.runs["run_dir"].tolist() == ["0"]
    assert [s.run_dir for s in mr.skipped] == ["1"]
    assert "no summary.json" in mr.skipped[0].reason


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="no runs found"):
        load_multirun(tmp_path)
    with pytest.raises(ReportError, match="no such directory"):
        load_multirun(tmp_path / "missing")
    sweep(tmp_path / "failed", [(["deployment=pd"], None)])
    with pytest.raises(ReportError, match="1 job folder"):
        load_multirun(tmp_path / "failed")


@pytest.mark.parametrize("text,message", [
    ('{"feasible": true, "num_gpus": 8', r"not valid JSON: .*\(line 1, column 33\)"),
    ("[1, 2, 3]", "expected a JSON object, got list"),
    (json.dumps({"num_gpus": 8}), "missing required field.* feasible"),
])
def test_malformed_summary_names_the_file(tmp_path, text, message):
    root = sweep(tmp_path, [(["deployment=chunked"], summary()), (["deployment=pd"], text)])
    with pytest.raises(ReportError, match=message) as err:
        load_multirun(root)
    assert str(err.value).startswith(str(root / "1" / "summary.json"))
    mr = load_multirun(root, skip_bad=True)  # or skip it, listed with the reason
    assert len(mr.runs) == 1 and mr.skipped[0].run_dir == "1"


def test_malformed_overrides_name_the_file(tmp_path):
    root = sweep(tmp_path, [(["deployment=chunked"], summary())])
    (root / "0" / ".hydra" / "overrides.yaml").write_text("deployment: [unclosed\n")
    with pytest.raises(ReportError, match=r"0/.hydra/overrides.yaml: not valid YAML"):
        load_multirun(root)
    (root / "0" / ".hydra" / "overrides.yaml").write_text("- 'deployment=['\n")
    with pytest.raises(ReportError, match=r"overrides.yaml: item 1 .* not a Hydra override"):
        load_multirun(root)
