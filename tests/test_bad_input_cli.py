"""Bad input at the `cosim` command line: one line on stderr naming the file, line or field,
exit code 2, no traceback (docs/errors.md). Run in-process (cosim.cli.main), so each case
costs a config composition, not an interpreter start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.config_store import ConfigStore

import cosim.config
from cosim.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOOD_TOPOLOGY = "num_nodes: 2\nnvlink: {gb_s: 900}\nnic: {gbps: 400}\n"
QUICK = ["workload.num_requests=4", "output.progress=false"]


def _cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    """(exit code, non-empty stderr lines) of `cosim argv...` run in this process."""
    old = sys.argv
    sys.argv = ["cosim", *argv]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = old
    return code, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


@pytest.fixture
def topology_dir(tmp_path, monkeypatch):
    """A COSIM_TOPOLOGY_PATH folder; topologies are registered again for this test."""
    folder = tmp_path / "topologies"
    folder.mkdir()
    monkeypatch.setenv("COSIM_TOPOLOGY_PATH", str(folder))
    monkeypatch.setattr(cosim.config, "_registered", False)
    yield folder
    group = ConfigStore.instance().repo.get("topology", {})
    for f in folder.glob("*.yaml"):
        group.pop(f.name, None)
    cosim.config._registered = False  # the next registration sees the shipped files only


@pytest.mark.parametrize("name, text, needle", [
    ("t_yaml", "num_nodes: [\n", ": line 2: not valid YAML: "),
    ("t_missing", "num_nodes: 2\nnic: {gbps: 400}\n", ": nvlink.gb_s: required, and not given"),
    ("t_type", "num_nodes: two\nnvlink: {gb_s: 900}\nnic: {gbps: 400}\n",
     ": num_nodes: Value 'two' of type 'str' could not be converted to Integer"),
    ("t_unknown", GOOD_TOPOLOGY + "spine_count: 4\n", ": spine_count: unknown key (allowed here:"),
    ("t_nested_unknown", GOOD_TOPOLOGY.replace("900}", "900, lanes: 18}"),
     ": nvlink.lanes: unknown key (allowed here: gb_s, latency_ns, efficiency)"),
    ("t_section", "num_nodes: 2\nnvlink: 900\nnic: {gbps: 400}\n",
     ": nvlink: expected a mapping of keys (gb_s, latency_ns, efficiency), got int 900"),
    ("t_value", GOOD_TOPOLOGY.replace("gbps: 400", "gbps: -400"),
     ": nic.gbps: must be a positive finite number, got -400"),
    ("t_bytes", "num_nodes: 2\n# \xff\n", ": line 2: not UTF-8 (byte 0xc3)"),
])
def test_a_broken_topology_file_is_one_line_naming_file_and_field(topology_dir, tmp_path,
                                                                  capsys, name, text, needle):
    path = topology_dir / f"{name}.yaml"
    if name == "t_bytes":
        path.write_bytes(b"num_nodes: 2\n\xc3(\n")
    else:
        path.write_text(text)
    code, err = _cli([f"topology={name}", *QUICK, f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"cosim: configuration error: {path}{needle}"), err[0]
    assert not (tmp_path / "run" / "summary.json").exists()


def test_a_broken_topology_file_does_not_stop_runs_that_do_not_select_it(topology_dir,
                                                                         tmp_path, capsys):
    (topology_dir / "t_broken.yaml").write_text("num_nodes: [\n")
    (topology_dir / "t_good.yaml").write_text(GOOD_TOPOLOGY)
    code, err = _cli(["topology=t_good", *QUICK, f"hydra.run.dir={tmp_path / 'a'}"], capsys)
    assert code == 0 and (tmp_path / "a" / "summary.json").is_file(), err
    code, err = _cli([*QUICK, f"hydra.run.dir={tmp_path / 'b'}"], capsys)  # the default one
    assert code == 0 and (tmp_path / "b" / "summary.json").is_file(), err


@pytest.mark.parametrize("override, needle", [
    ("workload.foo=1", "workload.foo: Could not override 'workload.foo'"),
    ("+workload.foo=1", "workload.foo: unknown key; workload has"),
    ("+deployment.layout.xp=2", "deployment.layout.xp: unknown key"),
    ("workload.num_requests=many", "workload.num_requests: Error merging override"),
    ("topology=no_such_fabric", "Could not find 'topology/no_such_fabric' Available options"),
    ("deployment.replicas=4", "need 32 GPUs, the topology has 16"),
])
def test_a_bad_override_is_one_line_naming_the_field(tmp_path, capsys, override, needle):
    code, err = _cli([override, *QUICK, f"hydra.run.dir={tmp_path}"], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("cosim: configuration error: ") and needle in err[0], err[0]
    assert "Traceback" not in err[0] and "HYDRA_FULL_ERROR" not in err[0]


OK_LINE = b'{"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": [1]}\n'


@pytest.mark.parametrize("body, needle", [
    (OK_LINE + b"[" * 5000 + b"]" * 5000 + b"\n", ":2: not a trace record (JSON nested too deep)"),
    (OK_LINE + b'{"timestamp": ' + b"9" * 5000 + b', "input_length": 1, "output_length": 1}\n',
     ":2: not a trace record (Exceeds the limit"),
    (OK_LINE + b"\xff\xfe\n", ":2: not UTF-8"),
    (OK_LINE.replace(b'"timestamp": 0', b'"timestamp": 9') + OK_LINE,
     ":2: timestamp: earlier than the line before"),
    (OK_LINE + OK_LINE.replace(b"10", b'"ten"'), ":2: input_length: expected an integer"),
])
def test_a_bad_trace_is_one_line_naming_file_line_and_field(tmp_path, capsys, body, needle):
    trace = tmp_path / "bad.jsonl"
    trace.write_bytes(body)
    code, err = _cli(["workload=mooncake_sample", f"workload.trace.path={trace}", *QUICK,
                      f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"cosim: configuration error: {trace}{needle}"), err[0]


@pytest.mark.slow
def test_an_unreachable_ns3_endpoint_ends_the_run_in_one_line_with_the_defaults(tmp_path):
    """The issue's command as typed: default network.ns3 settings (connect_timeout_s=20)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT), COSIM_CACHE_DIR=str(tmp_path / "cache"))
    p = subprocess.run([sys.executable, "-m", "cosim.cli", "network=ns3",
                        f"network.ns3.endpoints=[tcp://127.0.0.1:{port}]",
                        f"hydra.run.dir={tmp_path / 'run'}"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 3 and len(lines) == 1, p.stderr[-3000:]
    assert lines[0].startswith(f"cosim: network backend error: ns-3 server "
                               f"tcp://127.0.0.1:{port} did not answer within 20 s"), lines[0]


def test_docs_errors_table_is_what_cosim_prints_today():
    """docs/errors.md's table is generated (scripts/errors_example.py); a quick subset of its
    rows is run again and must be on the page as written."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("errors_example",
                                                  ROOT / "scripts" / "errors_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    page = mod.DOC.read_text()
    wanted = ("unknown key added with `+`", "topology file: not YAML",
              "trace: timestamps out of order", "infeasible configuration (summary.json written)")
    subset = [c for c in mod.CASES if c[0] in wanted]
    assert len(subset) == len(wanted)
    for row in mod.rows(subset):
        assert row in page, f"docs/errors.md is stale (python scripts/errors_example.py): {row}"


def test_the_python_api_names_the_broken_topology_file_too(topology_dir):
    from cosim.api import compose_config
    from cosim.errors import ConfigError

    path = topology_dir / "t_api.yaml"
    path.write_text("num_nodes: [\n")
    with pytest.raises(ConfigError) as e:
        compose_config(["topology=t_api"])
    assert str(e.value).startswith(f"{path}: line 2: not valid YAML")
