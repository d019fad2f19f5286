"""Release scans in sensor-time order despite network delay.

A scan with sensor time ``t`` is held until the buffer's clock (``now`` given to
:meth:`~ReorderBuffer.pop_ready`; the pipeline uses the newest sensor time it has
accepted, so that replay and live processing agree) passes ``t + window_s``;
scans are then released in ``(t, arrival)`` order.  The
window must exceed the link delay (radio links: up to about 2 s, so the default is
3 s).  Anything stamped earlier than what was already released cannot be put in
order any more: :class:`~sensors.ingest.Ingestor` rejects it, with this buffer's
:attr:`released_until` as the bound.  Memory is bounded by ``max_items``: past it
the oldest scans are released early (counted in :attr:`forced`).
"""

from __future__ import annotations

import heapq
import itertools
import math

from sensors.batch import Scan

__all__ = ["ReorderBuffer"]


class ReorderBuffer:
    def __init__(self, window_s: float = 3.0, max_items: int = 100_000) -> None:
        if window_s < 0:
            raise ValueError("window_s must be >= 0")
        self.window_s = window_s
        self.max_items = max_items
        self.released_until = -math.inf
        self.forced = 0
        self._heap: list[tuple[float, int, Scan]] = []
        self._arrival = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, scan: Scan) -> None:
        heapq.heappush(self._heap, (scan.time, next(self._arrival), scan))

    def pop_ready(self, now: float) -> list[Scan]:
        """Scans whose sensor time is at most ``now - window_s``, oldest first."""
        out: list[Scan] = []
        horizon = now - self.window_s
        while self._heap and (self._heap[0][0] <= horizon or len(self._heap) > self.max_items):
            if self._heap[0][0] > horizon:
                self.forced += 1
            out.append(self._release())
        return out

    def drain(self) -> list[Scan]:
        """Everything still held, oldest first (end of a log, shutdown)."""
        return [self._release() for _ in range(len(self._heap))]

    def _release(self) -> Scan:
        t, _, scan = heapq.heappop(self._heap)
        self.released_until = max(self.released_until, t)
        return scan
