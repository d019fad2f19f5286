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

import numpy as np

from sensors.batch import N_CLASSES, Scan

__all__ = ["ReorderBuffer"]

#: a scan's per-detection arrays: (dtype, shape with n first)
_SHAPES = {"t": (float, (0,)), "position": (float, (0, 2)), "covariance": (float, (0, 2, 2)),
           "radial_velocity": (float, (0,)), "radial_velocity_sigma": (float, (0,)),
           "line_of_sight": (float, (0, 2)), "class_likelihood": (float, (0, N_CLASSES)), "can_initiate": (bool, (0,))}


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

    # -- checkpoint ------------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """The held scans (their per-detection arrays concatenated, in heap order) and the clocks.

        A scan's fields other than the arrays go in the scalars, with its arrival number,
        so that ties in sensor time keep their order after a restart.
        """
        scans = [scan for _, _, scan in self._heap]
        arrays = {name: (np.concatenate([getattr(s, name) for s in scans]) if scans else
                         np.zeros(_SHAPES[name][1], _SHAPES[name][0]))
                  for name in _SHAPES}
        arrays["received"] = np.array(list(self._received), float).reshape(-1, 2)
        held = [{"arrival": arrival, "sensor_id": s.sensor_id, "sensor_index": s.sensor_index, "time": s.time,
                 "n": s.size, "coverage_center": list(s.coverage_center), "coverage_radius_m": s.coverage_radius_m,
                 "detection_probability": s.detection_probability, "clutter_density": s.clutter_density,
                 "coverage_sector_rad": list(s.coverage_sector_rad)}
                for _, arrival, s in self._heap]
        meta = {"held": held, "released_until": self.released_until, "forced": self.forced,
                "held_long_until": self._held_long_until,
                "next_arrival": max((h["arrival"] for h in held), default=-1) + 1}
        return arrays, meta

    def import_state(self, arrays: dict[str, np.ndarray], meta: dict, rx_shift_s: float = 0.0) -> None:
        """Take over a state made by :meth:`export_state`.

        ``rx_shift_s`` moves every held scan's receive time (a restart after a pause of that
        long: a scan that had waited 1 s of its window still has the rest to wait, counted
        from the restart, instead of being released at once by the receive clock).
        """
        self._heap, start = [], 0
        for h in meta["held"]:
            part = {name: np.array(arrays[name][start:start + h["n"]]) for name in _SHAPES}
            start += h["n"]
            scan = Scan(sensor_id=h["sensor_id"], sensor_index=int(h["sensor_index"]), time=float(h["time"]),
                        coverage_center=tuple(h["coverage_center"]), coverage_radius_m=float(h["coverage_radius_m"]),
                        detection_probability=float(h["detection_probability"]),
                        clutter_density=float(h["clutter_density"]),
                        coverage_sector_rad=tuple(h.get("coverage_sector_rad", (0.0, math.tau))), **part)
            self._heap.append((scan.time, int(h["arrival"]), scan))
        heapq.heapify(self._heap)  # already a heap; this costs nothing and makes it sure
        self._arrival = itertools.count(int(meta["next_arrival"]))
        self._received = collections.deque((r + rx_shift_s, t) for r, t in arrays["received"].tolist())
        self.released_until = float(meta["released_until"])
        self.forced = int(meta["forced"])
        self._held_long_until = float(meta["held_long_until"])

    def _release(self) -> Scan:
        t, _, scan = heapq.heappop(self._heap)
        self.released_until = max(self.released_until, t)
        return scan
