"""cosim-microbench on ns-3 (starts a local server): agrees with the analytical backend."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from cosim.apps.microbench import microbench_task
from cosim.config import register_configs
from cosim.paths import hydra_config_dir

pytestmark = pytest.mark.ns3


def bench(*overrides: str) -> dict:
    register_configs()
    with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
        cfg = compose("microbench", overrides=list(overrides))
    return microbench_task(cfg)


def test_all_to_all_16_gpus_backends_agree():
    common = ("topology.num_nodes=2", "pattern=all_to_all", "bytes=1048576")
    ana = bench("network=analytical", *common)
    ns3 = bench("network=ns3", *common)
    assert ns3["flows"] == ana["flows"] == 240
    assert ns3["latency_s"] == pytest.approx(ana["latency_s"], rel=0.10)
    assert ns3["packet_hops"] > 0 and ns3["events"] > 0
