"""Arrival processes: open-loop session starts (Poisson, gamma, burst, trace) and the driver
that issues later turns and closed-loop users' next sessions as requests finish."""

from __future__ import annotations

import math

import numpy as np

from cosim.config.workload import ArrivalConfig
from cosim.workload.requests import RequestTable


def session_start_times(cfg: ArrivalConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """Issue times of `n` sessions' first turns (seconds, first at 0); NaN for closed loop."""
    if cfg.process == "closed_loop":
        return np.full(n, np.nan)
    if cfg.process in ("burst", "trace"):
        return np.zeros(n)  # trace times are filled in by the trace reader
    if cfg.process == "poisson":
        gaps = rng.exponential(1.0 / cfg.rate_per_s, n)
    elif cfg.process == "gamma":
        shape = 1.0 / (cfg.cv * cfg.cv)  # gamma gaps: mean 1/rate, std cv/rate
        gaps = rng.gamma(shape, 1.0 / (cfg.rate_per_s * shape), n)
    else:
        raise ValueError(f"unknown arrival process {cfg.process!r}")
    t = np.empty(n)
    if n:
        t[0] = 0.0
        np.cumsum(gaps[:-1], out=t[1:])
    return t


class WorkloadDriver:
    """Says when each request is issued.

    Open loop: a session's first turn at its start time. Closed loop: `users` users, each
    running sessions back to back. In both, turn k+1 of a session is issued when turn k has
    finished plus a think time.
    """

    def __init__(self, table: RequestTable, cfg: ArrivalConfig):
        self.table = table
        self.closed = cfg.process == "closed_loop"
        self.users = int(cfg.users)
        n = len(table)
        self._next_session_row = 0  # closed loop: first row of the next unstarted session
        self._first_rows = table.session_first_rows()
        self._next_first = 0
        self._session = table.session.tolist()
        self._think = table.think_s.tolist()
        self._n = n

    def initial(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, request ids) known at t=0: open-loop session starts or the users' first turns."""
        if self.closed:
            k = min(self.users, len(self._first_rows))
            self._next_first = k
            rows = self._first_rows[:k]
            return np.zeros(k), rows.astype(np.int64)
        rows = self._first_rows
        times = self.table.start_s[rows]
        if not np.all(np.isfinite(times)) or math.isnan(float(times.sum())):
            raise ValueError("open-loop workload without session start times")
        order = np.argsort(times, kind="stable")
        return times[order], rows[order].astype(np.int64)

    def after_finish(self, rid: int, now: float) -> tuple[float, int] | None:
        """The request issued because `rid` finished at `now`, with its issue time, if any."""
        nxt = rid + 1
        if nxt < self._n and self._session[nxt] == self._session[rid]:
            return now + self._think[nxt], nxt
        if self.closed and self._next_first < len(self._first_rows):
            row = int(self._first_rows[self._next_first])
            self._next_first += 1
            return now + self._think[row], row
        return None
