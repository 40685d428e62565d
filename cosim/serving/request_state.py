"""Per-request progress during a simulation (engine-wide, indexed by request id).

Scalars a request touches while it runs live in Python lists (cheap scalar access from the
event handlers); `to_arrays()` turns them into numpy columns for metrics.
"""

from __future__ import annotations

import math

import numpy as np

from cosim.workload.requests import RequestTable

NAN = math.nan


class RequestState:
    """Timestamps and counters of every request."""

    def __init__(self, table: RequestTable):
        n = len(table)
        self.n = n
        self.prompt = table.prompt_tokens.tolist()
        self.output = table.output_tokens.tolist()
        self.ctx_len = list(self.prompt)  # tokens to (re)compute before decoding resumes
        self.computed = [0] * n  # tokens of ctx_len whose KV exists in the current admission
        self.generated = [0] * n
        self.arrival_s = [NAN] * n  # issued to the system
        self.scheduled_s = [NAN] * n  # first admitted to an instance's batch
        self.first_token_s = [NAN] * n
        self.finish_s = [NAN] * n
        self.cached_tokens = [0] * n  # prompt tokens served from the prefix cache (first admission)
        self.prefill_tokens = [0] * n  # tokens actually prefilled (recomputation included)
        self.preemptions = [0] * n
        self.instance = [-1] * n
        self.completed = 0
        self.preempted_total = 0

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Columns for requests.parquet (float seconds, NaN where a request never got there)."""
        f = np.asarray
        return {
            "arrival_s": f(self.arrival_s, dtype=np.float64),
            "scheduled_s": f(self.scheduled_s, dtype=np.float64),
            "first_token_s": f(self.first_token_s, dtype=np.float64),
            "finish_s": f(self.finish_s, dtype=np.float64),
            "generated_tokens": f(self.generated, dtype=np.int64),
            "cached_tokens": f(self.cached_tokens, dtype=np.int64),
            "prefilled_tokens": f(self.prefill_tokens, dtype=np.int64),
            "preemptions": f(self.preemptions, dtype=np.int64),
            "instance": f(self.instance, dtype=np.int64),
        }
