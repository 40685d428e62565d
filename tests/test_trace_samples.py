"""Every shipped sample in traces/ replays through a short real cosim run (measured kernel
tables, analytical network); the Mooncake and Bailian samples' prefix_hit_rate equals the
share of repeated blocks counted here, independently of cosim; a run's requests.parquet
replays as a trace and reproduces the run."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cosim
from cosim.paths import data_dir

TRACES = data_dir("traces")
BASE = ["output.progress=false"]

# workload config -> requests its sample replays (BurstGPT: 4 failed rows skipped)
SAMPLES = {"mooncake_sample": 300, "bailian_sample": 327, "azure_sample": 200,
           "burstgpt_sample": 196, "cosim_sample": 120}

# The simulator's hit rate can only fall short of the count, by at most this much: a cache
# of finite capacity may evict a block before its reuse, and a request arriving while the
# request that first carries its blocks is still prefilling finds them not yet cached.
# Block granularity adds nothing: the count below uses the cache's own blocks (the KV block
# divides the trace's hash block, or spans several of them and is named by the last), and a
# partial last block is neither counted here nor cached there.
HIT_RATE_TOLERANCE = 0.02


def repeated_block_fraction(path, block: int, kv: int | None = None) -> float:
    """Prompt tokens in full blocks whose hash id appeared in an earlier request, over all
    prompt tokens (hash ids stand for a block and everything before it, so a repeated id is
    a reusable KV block). With KV blocks of `kv` > `block` tokens, a KV block is reusable when
    the last hash id it covers was seen."""
    g = max(1, (kv or block) // block)
    seen: set[int] = set()
    hit = total = 0
    for line in open(path):
        r = json.loads(line)
        ids, n = r["hash_ids"], r["input_length"]
        full = ids[: n // block]
        keys = full[g - 1::g][: n // (block * g)]
        hit += block * g * sum(1 for h in keys if h in seen)
        total += n
        seen.update(ids)
    return hit / total


@pytest.mark.parametrize("workload", sorted(SAMPLES))
def test_each_shipped_sample_replays(workload):
    res = cosim.simulate([f"workload={workload}", *BASE])
    s = res.summary
    assert s["requests_total"] == s["requests_completed"] == SAMPLES[workload]
    assert s["workload_notes"]["skipped_lines"] == 0
    assert res.requests["arrival_s"].min() == 0.0


@pytest.mark.parametrize("workload,file,block,kv", [
    ("mooncake_sample", "mooncake_sample.jsonl", 512, 64),
    ("bailian_sample", "bailian_sample.jsonl", 16, 16),
    ("bailian_sample", "bailian_sample.jsonl", 16, 64),  # a KV block spans 4 hash ids
])
def test_prefix_hit_rate_is_the_repeated_block_share(workload, file, block, kv):
    res = cosim.simulate([f"workload={workload}", *BASE, "deployment.router=prefix_aware",
                          f"deployment.scheduler.kv_block_tokens={kv}"])
    expected = repeated_block_fraction(TRACES / file, block, kv)
    got = res.summary["prefix_hit_rate"]
    assert expected > 0.3  # the samples do reuse
    assert expected - HIT_RATE_TOLERANCE <= got <= expected + 1e-12


@pytest.mark.parametrize("overrides", [
    ["workload=chat", "workload.num_requests=40", "workload.turns.mean=2",
     "workload.turns.cv=0.5", "workload.arrival.think_time_s=1", "workload.arrival.rate_per_s=10"],
    ["workload=mooncake_sample", "workload.num_requests=60"],
], ids=["chat_sessions", "mooncake_hashes"])
def test_a_runs_requests_parquet_replays_that_run(tmp_path, overrides):
    first = cosim.simulate([*overrides, *BASE])
    path = tmp_path / "requests.parquet"
    first.requests.to_parquet(path, index=False)  # what `cosim` writes into each run folder
    again = cosim.simulate(["workload=cosim_sample", f"workload.trace.path={path}", *BASE])
    a, b = first.requests, again.requests
    assert len(b) == len(a) and again.summary["workload_notes"]["format"] == "cosim"
    for col in ("arrival_s", "first_token_s", "finish_s", "cached_tokens", "prompt_tokens"):
        assert np.sort(b[col].to_numpy()) == pytest.approx(np.sort(a[col].to_numpy()), rel=1e-12)
    assert again.summary["prefix_hit_rate"] == pytest.approx(first.summary["prefix_hit_rate"])
