"""The track table: preallocated arrays with an alive mask, owned by the tracker."""

from __future__ import annotations

import numpy as np

__all__ = ["TrackTable", "TENTATIVE", "CONFIRMED", "N_CLASSES"]

TENTATIVE, CONFIRMED = 0, 1
N_CLASSES = 5

_COLUMNS = ("alive", "track_id", "x", "P", "xm", "Pm", "mu", "t_state", "t_update", "t_held", "first_seen",
            "status", "hits", "looks", "class_prob", "q", "sensor_mask")


class TrackTable:
    """Columns of all tracks; row ``i`` is a track while ``alive[i]``.

    ``x`` (e, n, vₑ, vₙ) and ``P`` at ``t_state`` are the reported estimate, the
    mixture of the ``n_models`` per-model states ``xm``, ``Pm`` with probabilities
    ``mu`` (see :mod:`tracking.imm`; one model is a plain Kalman filter).
    Bookkeeping for confirmation (``hits``, ``looks``), deletion (``t_update``;
    ``t_held``, the last update that came within the re-acquisition gap of the one
    before, for confirmed tracks),
    reporting (``first_seen``, ``sensor_mask`` bit per contributing sensor) and the
    class posterior.  Free rows are a stack, ``free[:n_free[0]]``, popped from the
    top (lowest row first), so the kernels can allocate and release rows themselves;
    every row from ``high[0]`` up is free, so the kernels' passes stop there.
    """

    def __init__(self, capacity: int, n_sensors: int, n_models: int = 1) -> None:
        self.capacity = capacity
        words = max(1, (n_sensors + 63) // 64)
        self.alive = np.zeros(capacity, bool)
        self.track_id = np.full(capacity, -1, np.int64)
        self.x = np.zeros((capacity, 4))
        self.P = np.zeros((capacity, 4, 4))
        self.xm = np.zeros((capacity, n_models, 4))
        self.Pm = np.zeros((capacity, n_models, 4, 4))
        self.mu = np.ones((capacity, n_models)) / n_models
        self.t_state = np.zeros(capacity)
        self.t_update = np.zeros(capacity)
        self.t_held = np.zeros(capacity)
        self.first_seen = np.zeros(capacity)
        self.status = np.zeros(capacity, np.int8)
        self.hits = np.zeros(capacity, np.int32)
        self.looks = np.zeros(capacity, np.int32)
        self.class_prob = np.full((capacity, N_CLASSES), 1.0 / N_CLASSES)
        self.q = np.ones(capacity)
        self.sensor_mask = np.zeros((capacity, words), np.uint64)
        self.free = np.arange(capacity - 1, -1, -1, dtype=np.int64)  # row 0 on top
        self.n_free = np.array([capacity], np.int64)
        self.high = np.zeros(1, np.int64)

    @property
    def count(self) -> int:
        return self.capacity - int(self.n_free[0])

    def reserve(self, n: int) -> None:
        """Make room for ``n`` new tracks (the table doubles until it has)."""
        while self.n_free[0] < n:
            self._grow()

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
        for name in _COLUMNS:
            column = getattr(self, name)
            grown = np.zeros((new, *column.shape[1:]), column.dtype)
            grown[:old] = column
            setattr(self, name, grown)
        self.track_id[old:] = -1
        self.class_prob[old:] = 1.0 / N_CLASSES
        self.mu[old:] = 1.0 / self.mu.shape[1]
        n_free = int(self.n_free[0])  # the new rows go under the free ones, in ascending order from the top
        free = np.empty(new, np.int64)  # room for every row: deletions push onto it
        free[:new - old] = np.arange(new - 1, old - 1, -1)
        free[new - old:new - old + n_free] = self.free[:n_free]
        self.free = free
        self.n_free[0] = n_free + new - old
        self.capacity = new
