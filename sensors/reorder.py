"""Release scans in sensor-time order despite network delay.

Each scan is held until one of two clocks has run a window ``window_s`` past it:

* the data clock — the newest sensor time accepted (``data_t`` given to
  :meth:`~ReorderBuffer.pop_ready`): released once ``data_t ≥ t + window_s``;
* the receive clock (``rx_t``): released once it has been held ``window_s`` of
  receive time, ``rx_t ≥ r + window_s`` (``r`` its receive time), so that scans are
  not held forever when the sensors go quiet.

Releasing a scan releases every held scan with an earlier sensor time too, so the
output is always in ``(t, arrival)`` order.  Both clocks are given by the caller:
replay uses each message's logged receive time, the live node the wall clock, so the
two release the same scans in the same order.  The window must exceed the link delay
(radio links: up to about 2 s, so the default is 3 s).  Anything stamped earlier
than what was already released cannot be put in order any more:
:class:`~sensors.ingest.Ingestor` rejects it, with this buffer's
:attr:`released_until` as the bound.  Memory is bounded by ``max_items``: past it
the oldest scans are released early (counted in :attr:`forced`), and the
receive-order queue behind the receive clock keeps at most ``2 × max_items``
entries: the entries of scans already released are dropped in bulk when it passes
that (amortised O(1) a scan; it holds at most one live entry per held scan).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math

from sensors.batch import Scan

__all__ = ["ReorderBuffer"]


class ReorderBuffer:
    def __init__(self, window_s: float = 3.0, max_items: int = 100_000) -> None:
        if window_s < 0:
            raise ValueError("window_s must be >= 0")
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.window_s = window_s
        self.max_items = max_items
        self.released_until = -math.inf
        self.forced = 0
        self._heap: list[tuple[float, int, Scan]] = []
        self._arrival = itertools.count()
        self._received: collections.deque[tuple[float, float]] = collections.deque()  # (r, t), receive order
        self._held_long_until = -math.inf  # newest sensor time among scans held a window of receive time

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, scan: Scan, rx_t: float) -> None:
        """Hold ``scan``, received at ``rx_t`` (non-decreasing from call to call)."""
        heapq.heappush(self._heap, (scan.time, next(self._arrival), scan))
        self._received.append((rx_t, scan.time))

    def next_due(self) -> float:
        """The receive time at which the receive clock releases something (inf: nothing held)."""
        return self._received[0][0] + self.window_s if self._received else math.inf

    def pop_ready(self, data_t: float, rx_t: float = -math.inf) -> list[Scan]:
        """Scans released by the data clock ``data_t`` or the receive clock ``rx_t``, oldest first."""
        while self._received and self._received[0][0] + self.window_s <= rx_t:
            self._held_long_until = max(self._held_long_until, self._received.popleft()[1])
        horizon = max(data_t - self.window_s, self._held_long_until)
        out: list[Scan] = []
        while self._heap and (self._heap[0][0] <= horizon or len(self._heap) > self.max_items):
            if self._heap[0][0] > horizon:
                self.forced += 1
            out.append(self._release())
        while self._received and self._received[0][1] <= self.released_until:
            self._received.popleft()  # released by the data clock already: nothing to time out
        if len(self._received) > 2 * self.max_items:  # stale entries behind a live one at the front
            self._received = collections.deque(e for e in self._received if e[1] > self.released_until)
        return out

    def drain(self) -> list[Scan]:
        """Everything still held, oldest first (end of a log, shutdown)."""
        self._received.clear()
        return [self._release() for _ in range(len(self._heap))]

    def _release(self) -> Scan:
        t, _, scan = heapq.heappop(self._heap)
        self.released_until = max(self.released_until, t)
        return scan
