"""The discrete-event engine: one simulated clock and a heap of pending events.

Events are handled in time order; ties go to the event scheduled first (a sequence number),
so a run is deterministic for a seed. Handlers return the events they cause.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable
from heapq import heappop, heappush

from cosim.serving.events import Event


class Engine:
    """Event heap + clock."""

    def __init__(self):
        self.now = 0.0
        self._heap: list[tuple[float, int, Event]] = []
        self._seq = itertools.count()  # tie-break: first scheduled, first handled
        self.events_handled = 0

    def schedule(self, t: float, event: Event) -> None:
        """Add `event` at time `t` (not before now)."""
        if t < self.now:
            raise ValueError(f"event at {t} scheduled in the past (now {self.now})")
        heappush(self._heap, (t, next(self._seq), event))

    def schedule_many(self, events: Iterable[tuple[float, Event]]) -> None:
        for t, ev in events:
            self.schedule(t, ev)

    @property
    def pending(self) -> int:
        return len(self._heap)

    def run(self, until: float = math.inf, progress: Callable[[float], None] | None = None,
            progress_every_s: float = 0.25) -> int:
        """Handle events up to time `until`; returns the number handled.

        `progress(now)` is called about every `progress_every_s` of wall time.
        """
        heap = self._heap
        handled = 0
        seq = self._seq
        next_report = time.perf_counter() + progress_every_s if progress else math.inf
        while heap:
            t, _, ev = heappop(heap)
            if t > until:
                heappush(heap, (t, _, ev))
                break
            self.now = t
            out = ev.handle(t)
            if out:
                for t2, e2 in out:
                    heappush(heap, (t2, next(seq), e2))
            handled += 1
            if not handled & 1023 and progress is not None and time.perf_counter() >= next_report:
                progress(t)
                next_report = time.perf_counter() + progress_every_s
        self.events_handled += handled
        return handled
