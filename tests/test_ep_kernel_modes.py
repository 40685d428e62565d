"""network.ep_kernel_mode: DeepEP normal vs low-latency traffic (hand-checked flows), their
fixed per-kernel costs, the buffer rounds, auto by phase, and the default = today's model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from disagg_toy_cost import FIXED, ToyStepCost, config, toy_factory

from cosim.api import compose_config
from cosim.config import to_object
from cosim.model.layout import ParallelLayout
from cosim.model.spec import ModelSpec
from cosim.network.analytical import AnalyticalBackend
from cosim.network.topology import build_fabric
from cosim.serving.comm import AlphaBetaComm, LinkFigures, TrafficShape
from cosim.serving.fabric_comm import FabricComm
from cosim.serving.simulation import run_simulation
from cosim.traffic.ep_alltoall import (
    ep_flows,
    ep_token_counts,
    expert_placement,
    kernel_send_mode,
    ll_message_bytes,
    ll_rounds,
    token_bytes,
)
from cosim.traffic.tags import FlowTag

# 2 servers x 2 GPUs, 8 experts, GPU g holds experts 2g and 2g+1
GPUS = np.arange(4)
EXPERT_GPU = expert_placement(8, GPUS)
# token A on GPU 0 -> experts 2, 3 (GPU 1) and 4 (GPU 2, the other server);
# token B on GPU 3 -> experts 0 (GPU 0), 2 (GPU 1) and 7 (GPU 3, its own)
ROUTING = np.array([[2, 3, 4], [0, 2, 7]])
TOKEN_GPU = np.array([0, 3])


def pairs(mode):
    src, dst, tok, tag = ep_token_counts(ROUTING, TOKEN_GPU, EXPERT_GPU, 2, mode)
    return {(int(s), int(d), int(g)): int(t) for s, d, t, g in zip(src, dst, tok, tag, strict=True)}


def test_normal_kernels_dedupe_per_gpu_and_node_and_forward_over_nvlink():
    assert kernel_send_mode("normal", 2) == "node" and kernel_send_mode("normal", 1) == "gpu"
    assert pairs(kernel_send_mode("normal", 2)) == {
        (0, 1, FlowTag.EP_DIRECT): 1,  # A: experts 2 and 3 share GPU 1: one copy
        (0, 2, FlowTag.EP_RDMA): 1,  # A: one RDMA copy to server 1's rail peer (GPU 2 = dst)
        (3, 1, FlowTag.EP_RDMA): 1,  # B: one RDMA copy to server 0's rail peer of rank 1 ...
        (1, 0, FlowTag.EP_FORWARD): 1,  # ... forwarded over NVLink to GPU 0
    }


def test_low_latency_kernels_send_one_message_per_remote_expert():
    assert kernel_send_mode("low_latency", 2) == "expert"
    assert pairs("expert") == {
        (0, 1, FlowTag.EP_DIRECT): 2,  # A: experts 2 and 3, two messages
        (0, 2, FlowTag.EP_DIRECT): 1,
        (3, 0, FlowTag.EP_DIRECT): 1,
        (3, 1, FlowTag.EP_DIRECT): 1,  # B's expert 7 is on its own GPU: nothing sent
    }
    # DeepEP internode_ll.cu: dispatch message = 16-byte header + FP8 payload with one FP32
    # scale per 128 channels; combine = BF16 payload
    assert ll_message_bytes(7168, "fp8", "dispatch") == 16 + 7168 + 56 * 4 == 7408
    assert ll_message_bytes(7168, "bfloat16", "combine") == 2 * 7168
    assert token_bytes(7168, "fp8") == 7392


def test_low_latency_flow_bytes_carry_the_header():
    kw = dict(hidden=7168, topk=8, num_experts=32, ep_gpus=np.arange(8), gpus_per_node=8,
              mode="expert", seed=1)
    plain = ep_flows(4, dtype="fp8", **kw)
    ll = ep_flows(4, dtype="fp8", header_bytes=16, **kw)
    copies = plain.size / 7392
    assert np.array_equal(ll.size, copies * 7408)
    # 4 tokens on each of 8 GPUs, top-8 of 32 experts (4 per GPU): every (token, expert)
    # pair off the token's GPU is one message
    assert copies.sum() == 8 * 4 * 8 - int((plain.src == plain.dst).sum()) - _own(kw)


def _own(kw) -> int:
    from cosim.traffic.expert_routing import route_tokens

    r = route_tokens(4 * 8, kw["num_experts"], kw["topk"], seed=kw["seed"])
    owner = expert_placement(kw["num_experts"], kw["ep_gpus"])[r]
    return int((owner == np.repeat(np.arange(8), 4)[:, None]).sum())


def test_low_latency_buffer_rounds():
    assert ll_rounds(300, 128) == [128, 128, 44]
    assert ll_rounds(128, 128) == [128] and ll_rounds(5, 128) == [5] and ll_rounds(0, 128) == []


@pytest.fixture(scope="module")
def cfg():
    return to_object(compose_config(["topology.num_nodes=2"]))


@pytest.fixture(scope="module")
def spec(cfg):
    return ModelSpec.from_config(cfg.model)


def test_default_is_normal_with_todays_launch_cost(cfg):
    assert cfg.network.ep_kernel_mode == "normal"
    assert cfg.deployment.comm.launch_us == 5.0


def test_low_latency_fixed_cost_is_the_one_derived_from_deepeps_table(cfg):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "serving_options_example.py"
    spec = importlib.util.spec_from_file_location("serving_options_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    derived, per_ep = mod.ll_fixed_cost_us()
    assert cfg.network.ep_low_latency_us == round(derived, 1)
    assert min(per_ep.values()) > 0


def test_fabric_low_latency_phase_is_the_flows_plus_the_kernel_cost(cfg, spec):
    graph = build_fabric(cfg.topology)
    be = AnalyticalBackend(graph, frame_bytes=0, rtol=0.0)
    shape = TrafficShape.from_spec(spec)
    lay = ParallelLayout(dp=16, ep=16)
    ll = FabricComm(be, lay, shape, 0, 8, kernel_mode="low_latency", ll_launch_us=25.5,
                    ll_max_tokens=128, token_grid_percent=0.0)
    normal = FabricComm(be, lay, shape, 0, 8, token_grid_percent=0.0)
    t = 16 * 64  # 64 tokens per GPU: one low-latency call
    disp, comb = ll._ep(64, "low_latency")
    b = ll.breakdown(t)
    assert b["ep_dispatch"] == pytest.approx(shape.num_moe_layers * (disp + 25.5e-6), rel=1e-12)
    assert b["ep_combine"] == pytest.approx(shape.num_moe_layers * (comb + 25.5e-6), rel=1e-12)
    # flat per-expert sends move more bytes than node-deduplicated ones
    assert disp > normal._ep(64)[0]
    # 300 tokens per GPU: three calls of 128, 128 and 44 tokens, three kernel costs each way
    d128, c128 = ll._ep(128, "low_latency")
    d44, c44 = ll._ep(44, "low_latency")
    b3 = ll.breakdown(16 * 300)
    assert b3["ep_dispatch"] == pytest.approx(
        shape.num_moe_layers * (2 * d128 + d44 + 3 * 25.5e-6), rel=1e-12)
    assert b3["ep_combine"] == pytest.approx(
        shape.num_moe_layers * (2 * c128 + c44 + 3 * 25.5e-6), rel=1e-12)


def test_auto_is_low_latency_for_decode_and_normal_with_prefill(cfg, spec):
    be = AnalyticalBackend(build_fabric(cfg.topology), frame_bytes=0, rtol=0.0)
    shape = TrafficShape.from_spec(spec)
    lay = ParallelLayout(dp=16, ep=16)
    mk = {m: FabricComm(be, lay, shape, 0, 8, kernel_mode=m) for m in ("normal", "low_latency", "auto")}
    t = 16 * 32
    assert mk["auto"].time_s(t, decode_only=True) == mk["low_latency"].time_s(t)
    assert mk["auto"].time_s(t) == mk["normal"].time_s(t)
    links = LinkFigures.from_config(cfg.topology, cfg.hardware)
    ab = {m: AlphaBetaComm(lay, shape, links, kernel_mode=m) for m in ("normal", "low_latency", "auto")}
    assert ab["auto"].time_s(t, decode_only=True) == ab["low_latency"].time_s(t)
    assert ab["auto"].time_s(t) == ab["normal"].time_s(t)


def test_alpha_beta_low_latency_closed_form(cfg, spec):
    shape = TrafficShape.from_spec(spec)
    links = LinkFigures.from_config(cfg.topology, cfg.hardware)
    lay = ParallelLayout(dp=8, ep=8)  # one server: NVLink only
    ab = AlphaBetaComm(lay, shape, links, kernel_mode="low_latency", ll_launch_us=25.5,
                       ll_max_tokens=128)
    per_gpu = 100
    copies = per_gpu * shape.topk * 7 / 8  # every (token, expert) off the token's GPU
    bw, hop = links.nvlink_bytes_s, links.nvlink_hop_s
    b = ab.breakdown(8 * per_gpu)
    fp8 = shape.hidden + math.ceil(shape.hidden / 128) * 4
    assert b["ep_dispatch"] == pytest.approx(
        shape.num_moe_layers * (25.5e-6 + hop + copies * (fp8 + 16) / bw), rel=1e-12)
    assert b["ep_combine"] == pytest.approx(
        shape.num_moe_layers * (25.5e-6 + hop + copies * 2 * shape.hidden / bw), rel=1e-12)
    # 300 tokens per GPU: three calls (each its launch and latency), the same bytes
    b3 = ab.breakdown(8 * 300)
    c3 = 300 * shape.topk * 7 / 8
    assert b3["ep_dispatch"] == pytest.approx(
        shape.num_moe_layers * (3 * (25.5e-6 + hop) + c3 * (fp8 + 16) / bw), rel=1e-12)


def test_a_serving_run_under_each_mode():
    toy = ToyStepCost(a0=2e-3, a1=5e-6, f0=4e-3, f1=1e-5)
    base = [*FIXED, "workload.num_requests=12", "workload.arrival.users=4",
            "deployment.comm.model=alpha_beta", "topology.num_nodes=2",
            "deployment.layout.dp=16", "deployment.layout.ep=16"]
    runs = {m: run_simulation(config([*base, f"network.ep_kernel_mode={m}"]),
                              step_cost_factory=toy_factory(toy))
            for m in ("normal", "low_latency", "auto")}
    default = run_simulation(config(base), step_cost_factory=toy_factory(toy))
    assert default.iterations.equals(runs["normal"].iterations)
    it = {m: r.iterations for m, r in runs.items()}
    pre = it["auto"].prefill_tokens > 0
    # the first iteration of every run is the same prefill: auto prices it as normal
    assert it["auto"].comm_s.iloc[0] == it["normal"].comm_s.iloc[0]
    assert pre.iloc[0] and not pre.all()
    with pytest.raises(Exception, match="network.ep_kernel_mode"):
        run_simulation(config([*base, "network.ep_kernel_mode=fast"]))


def test_default_fabric_phase_is_todays_node_deduplicated_flows(cfg, spec):
    # today's definition, rebuilt by hand: the first t routed tokens of every EP GPU's stream,
    # node mode (EP16 over two servers), FP8 / BF16 per copy, plus launch_us per phase
    from cosim.network.flows import FlowBatch
    from cosim.serving.fabric_comm import EPTokenStream

    be = AnalyticalBackend(build_fabric(cfg.topology), frame_bytes=0, rtol=0.0)
    shape = TrafficShape.from_spec(spec)
    lay = ParallelLayout(dp=16, ep=16)
    fab = FabricComm(be, lay, shape, 0, 8, token_grid_percent=0.0)
    assert fab.stats()["comm_ep_mode"] == "node" and "comm_ep_kernel_mode" not in fab.stats()
    stream = EPTokenStream(np.arange(16), shape.num_experts, shape.topk, 8, "node")
    src, dst, tok, tag = stream.counts(48)
    disp = be.simulate(FlowBatch.from_arrays(src, dst, tok * token_bytes(shape.hidden, "fp8"),
                                             None, tag)).makespan
    comb = be.simulate(FlowBatch.from_arrays(dst, src, tok * token_bytes(shape.hidden, "bfloat16"),
                                             None, tag)).makespan
    b = fab.breakdown(16 * 48)
    assert b["ep_dispatch"] == shape.num_moe_layers * (disp + 5e-6)
    assert b["ep_combine"] == shape.num_moe_layers * (comb + 5e-6)
