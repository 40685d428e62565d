"""`+key=value` overrides are checked against the group's schema (Hydra appends past struct)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from cosim.config import ConfigError, check_unknown_keys, register_configs
from cosim.paths import hydra_config_dir

GROUPS = [["deployment=chunked"], ["deployment=pd"], ["deployment=afd"],
          ["deployment=pd_afd"], ["network=ns3"], ["workload=mooncake_sample"],
          ["workload=agentic"], ["+deployment.options.anything=1"]]


def _compose(overrides):
    register_configs()
    with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
        return compose("config", overrides=overrides)


@pytest.mark.parametrize("overrides", GROUPS)
def test_shipped_configs_have_no_unknown_keys(overrides):
    check_unknown_keys(_compose(overrides))


@pytest.mark.parametrize("override, field", [("+workload.foo=1", "workload.foo"),
                                             ("+deployment.layout.xp=2",
                                              "deployment.layout.xp"),
                                             ("+bogus=1", "bogus")])
def test_unknown_plus_key_is_a_config_error_naming_it(override, field):
    with pytest.raises(ConfigError) as e:
        check_unknown_keys(_compose([override]))
    assert str(e.value).startswith(f"{field}: unknown key")


@pytest.mark.parametrize("override, needle", [
    ("+workload.foo=1", "workload.foo: unknown key"),
    ("deployment.replicas=4", "need 32 GPUs, the topology has 16"),
])
def test_cli_bad_config_is_one_line_and_exit_2(tmp_path, override, needle):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    p = subprocess.run([sys.executable, "-c", "from cosim.cli import main; main()", override,
                        "workload.num_requests=4", "output.progress=false",
                        f"hydra.run.dir={tmp_path}"],
                       capture_output=True, text=True, env=env, timeout=300)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr[-2000:]


def test_cli_infeasible_run_writes_its_summary_and_exits_4(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    p = subprocess.run([sys.executable, "-c", "from cosim.cli import main; main()",
                        "deployment.layout.dp=1", "deployment.layout.ep=1",
                        "workload.num_requests=4", "output.progress=false",
                        f"hydra.run.dir={tmp_path}"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 4, p.stderr[-2000:]
    assert json.loads((tmp_path / "summary.json").read_text())["feasible"] is False
    assert p.stderr.strip().splitlines()[-1].startswith("cosim: infeasible: ")
