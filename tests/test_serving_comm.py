"""Communication inside an iteration (alpha-beta and fabric) and the per-GPU memory plan."""

from __future__ import annotations

import math

import pytest

from cosim.api import compose_config
from cosim.config import to_object
from cosim.model.layout import ParallelLayout
from cosim.model.spec import ModelSpec
from cosim.serving.comm import (
    AlphaBetaComm,
    LinkFigures,
    NoComm,
    TrafficShape,
    activation_bytes,
    expected_remote_ranks,
)
from cosim.serving.fabric_comm import FabricComm, grid_up
from cosim.serving.memory_plan import plan_memory


@pytest.fixture(scope="module")
def cfg():
    return to_object(compose_config(["topology.num_nodes=2"]))


@pytest.fixture(scope="module")
def spec(cfg):
    return ModelSpec.from_config(cfg.model)


def test_expected_remote_ranks():
    assert expected_remote_ranks(1, 8) == 0
    assert expected_remote_ranks(8, 8) == pytest.approx(7 * (1 - (7 / 8) ** 8))
    assert expected_remote_ranks(256, 1) == pytest.approx(255 / 256)


def test_alpha_beta_ep_inside_a_server_is_launch_latency_and_nvlink_bytes(cfg, spec):
    shape = TrafficShape.from_spec(spec)
    links = LinkFigures.from_config(cfg.topology, cfg.hardware)
    lay = ParallelLayout(tp=1, dp=8, ep=8)
    ab = AlphaBetaComm(lay, shape, links, "fp8", "bfloat16", launch_us=5.0)
    tokens = 8 * 128
    b = ab.breakdown(tokens)
    sent = 128 * expected_remote_ranks(8, shape.topk)  # token copies per GPU
    bw = cfg.topology.nvlink.gb_s * 1e9 * cfg.topology.nvlink.efficiency
    hop = 2 * cfg.topology.nvlink.latency_ns * 1e-9
    fp8 = shape.hidden + math.ceil(shape.hidden / 128) * 4
    assert b["ep_dispatch"] == pytest.approx(shape.num_moe_layers * (5e-6 + hop + sent * fp8 / bw))
    assert b["ep_combine"] == pytest.approx(
        shape.num_moe_layers * (5e-6 + hop + sent * 2 * shape.hidden / bw))
    assert b["tp_allreduce"] == 0
    assert ab.time_s(tokens) == pytest.approx(sum(b.values()))
    assert ab.time_s(0) == 0 and NoComm().time_s(tokens) == 0


def test_alpha_beta_across_servers_is_nic_bound_and_tp_adds_allreduce(cfg, spec):
    shape = TrafficShape.from_spec(spec)
    links = LinkFigures.from_config(cfg.topology, cfg.hardware)
    ep8 = AlphaBetaComm(ParallelLayout(dp=8, ep=8), shape, links)
    ep16 = AlphaBetaComm(ParallelLayout(dp=16, ep=16), shape, links)
    per_gpu = 256
    assert ep16.time_s(16 * per_gpu) > 3 * ep8.time_s(8 * per_gpu)  # 50 GB/s NIC vs NVLink
    tp8 = AlphaBetaComm(ParallelLayout(tp=8, dp=1, ep=8), shape, links)
    assert tp8.breakdown(512)["tp_allreduce"] > 0
    assert activation_bytes("bfloat16", 7168) == 2 * 7168


def test_fabric_comm_on_the_analytical_backend_agrees_with_alpha_beta(cfg, spec):
    from cosim.network.analytical import AnalyticalBackend
    from cosim.network.topology import build_fabric

    shape = TrafficShape.from_spec(spec)
    lay = ParallelLayout(tp=1, dp=8, ep=8)
    graph = build_fabric(cfg.topology)
    be = AnalyticalBackend(graph, frame_bytes=0, rtol=cfg.network.analytical.rtol)
    fab = FabricComm(be, lay, shape, 0, 8, launch_us=5.0)
    ab = AlphaBetaComm(lay, shape, LinkFigures.from_config(cfg.topology, cfg.hardware))
    tokens = 8 * 256
    f, a = fab.breakdown(tokens), ab.breakdown(tokens)
    # the fabric sees the busiest GPU of a random routing, the estimate the mean one
    assert a["ep_dispatch"] <= f["ep_dispatch"] <= 1.5 * a["ep_dispatch"]
    assert a["ep_combine"] <= f["ep_combine"] <= 1.5 * a["ep_combine"]
    assert fab.stats()["comm_ep_mode"] == "gpu"
    n = fab.flow_batches
    fab.time_s(tokens - 3)  # rounds onto the same grid point: no new network simulation
    assert fab.flow_batches == n


def test_token_grid_rounds_up_by_at_most_the_step():
    for x in (1, 16, 17, 100, 1000, 12345):
        g = grid_up(x, 2.0)
        assert x <= g <= max(x, math.ceil(x * 1.02))
    points = {grid_up(x, 2.0) for x in range(1000, 2000)}
    assert abs(len(points) - math.log(2) / math.log(1.02)) <= 2  # ~35 points per octave


def test_memory_plan_of_deepseek_on_eight_b200(cfg, spec):
    d = cfg.deployment
    lay = d.layout.to_layout()
    p = plan_memory(spec, lay, cfg.hardware, d.memory, d.scheduler, min_tokens=10_000)
    assert p.feasible, p.reason
    assert p.weight_bytes == pytest.approx(spec.weight_bytes_per_gpu(lay))
    assert p.kv_bytes_per_token == spec.kv_cache_bytes_per_token(tp=1)
    usable = cfg.hardware.hbm_gb * 1e9 * d.memory.gpu_memory_utilization
    assert p.kv_bytes == pytest.approx(usable - p.weight_bytes - p.activation_bytes
                                       - d.memory.runtime_reserve_gb * 1e9)
    block = d.scheduler.kv_block_tokens
    assert p.kv_blocks_per_rank == int(p.kv_bytes // (p.kv_bytes_per_token * block))
    assert p.kv_tokens == lay.dp * p.kv_blocks_per_rank * block


def test_memory_plan_infeasible_reasons(cfg, spec):
    d = cfg.deployment
    one = plan_memory(spec, ParallelLayout(), cfg.hardware, d.memory, d.scheduler, 1000)
    assert not one.feasible and "weights" in one.reason
    big = plan_memory(spec, d.layout.to_layout(), cfg.hardware, d.memory, d.scheduler, 10**9)
    assert not big.feasible and "longest request" in big.reason
