"""The track table: preallocated arrays with an alive mask, owned by the tracker."""

from __future__ import annotations

import numpy as np

__all__ = ["TrackTable", "TENTATIVE", "CONFIRMED", "N_CLASSES"]

TENTATIVE, CONFIRMED = 0, 1
N_CLASSES = 5


class TrackTable:
    """Columns of all tracks; row ``i`` is a track while ``alive[i]``.

    ``x`` (e, n, vₑ, vₙ) and ``P`` at ``t_state``; bookkeeping for confirmation
    (``hits``, ``looks``), deletion (``t_update``), reporting (``first_seen``,
    ``sensor_mask`` bit per contributing sensor) and the class posterior.
    """

    def __init__(self, capacity: int, n_sensors: int) -> None:
        self.capacity = capacity
        words = max(1, (n_sensors + 63) // 64)
        self.alive = np.zeros(capacity, bool)
        self.track_id = np.full(capacity, -1, np.int64)
        self.x = np.zeros((capacity, 4))
        self.P = np.zeros((capacity, 4, 4))
        self.t_state = np.zeros(capacity)
        self.t_update = np.zeros(capacity)
        self.first_seen = np.zeros(capacity)
        self.status = np.zeros(capacity, np.int8)
        self.hits = np.zeros(capacity, np.int32)
        self.looks = np.zeros(capacity, np.int32)
        self.class_prob = np.full((capacity, N_CLASSES), 1.0 / N_CLASSES)
        self.q = np.ones(capacity)
        self.sensor_mask = np.zeros((capacity, words), np.uint64)
        self._free = list(range(capacity - 1, -1, -1))

    @property
    def count(self) -> int:
        return self.capacity - len(self._free)

    def allocate(self, n: int) -> np.ndarray:
        """Rows for ``n`` new tracks (the table doubles when full)."""
        while len(self._free) < n:
            self._grow()
        return np.array([self._free.pop() for _ in range(n)], np.int64)

    def release(self, rows: np.ndarray) -> None:
        self.alive[rows] = False
        self.track_id[rows] = -1
        self._free.extend(int(r) for r in rows[::-1])

    def mark_sensor(self, rows: np.ndarray, sensor_index: int) -> None:
        self.sensor_mask[rows, sensor_index // 64] |= np.uint64(1) << np.uint64(sensor_index % 64)

    def sensors_of(self, row: int) -> list[int]:
        out = []
        for word, bits in enumerate(self.sensor_mask[row]):
            bits = int(bits)
            while bits:
                low = bits & -bits
                out.append(word * 64 + low.bit_length() - 1)
                bits ^= low
        return out

    def _grow(self) -> None:
        old = self.capacity
        new = old * 2
        for name in ("alive", "track_id", "x", "P", "t_state", "t_update", "first_seen", "status",
                     "hits", "looks", "class_prob", "q", "sensor_mask"):
            column = getattr(self, name)
            grown = np.zeros((new, *column.shape[1:]), column.dtype)
            grown[:old] = column
            setattr(self, name, grown)
        self.track_id[old:] = -1
        self.class_prob[old:] = 1.0 / N_CLASSES
        self._free = list(range(new - 1, old - 1, -1)) + self._free
        self.capacity = new
