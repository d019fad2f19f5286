"""The track table: preallocated arrays with an alive mask, owned by the tracker."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["TrackTable", "TrackColumns", "TENTATIVE", "CONFIRMED", "N_CLASSES", "sensor_bits"]

TENTATIVE, CONFIRMED = 0, 1
N_CLASSES = 5


class TrackColumns(NamedTuple):
    """The table's columns as one struct of arrays, the form the numba kernels take.

    ``x`` (e, n, vₑ, vₙ) and ``P`` at ``t_state`` are the reported estimate, the
    mixture of the ``n_models`` per-model states ``xm``, ``Pm`` with probabilities
    ``mu`` (see :mod:`tracking.imm`; one model is a plain Kalman filter).
    ``existence`` is the probability that the target exists, last brought to
    ``t_exist`` (:mod:`tracking.existence`), from ``birth_existence`` when it started;
    ``status`` is tentative until it first reaches the confirmation level.  ``hits`` counts detections, ``t_update`` is the
    last one; ``first_seen`` and ``sensor_mask`` (a bit per contributing sensor) are
    for reporting.  ``class_sensor`` is the class posterior from what the sensors
    said, ``top_speed`` the highest speed the track has surely had (speed less two
    σ), and ``class_prob`` their combination, whose agility gives the noise density
    ``q``.  ``merge_with``/``merge_since``: the id of the older confirmed track this one has stayed
    statistically the same as since that time (−1: none).  Free rows are a stack,
    ``free[:n_free[0]]``, popped from the top (lowest row first); every row from
    ``high[0]`` up is free, so the kernels' passes stop there.
    """

    alive: np.ndarray
    track_id: np.ndarray
    x: np.ndarray
    P: np.ndarray
    xm: np.ndarray
    Pm: np.ndarray
    mu: np.ndarray
    t_state: np.ndarray
    t_update: np.ndarray
    t_exist: np.ndarray
    existence: np.ndarray
    birth_existence: np.ndarray
    first_seen: np.ndarray
    status: np.ndarray
    hits: np.ndarray
    class_sensor: np.ndarray
    top_speed: np.ndarray
    class_prob: np.ndarray
    q: np.ndarray
    sensor_mask: np.ndarray
    merge_with: np.ndarray
    merge_since: np.ndarray
    free: np.ndarray
    n_free: np.ndarray
    high: np.ndarray


def _empty_columns(capacity: int, words: int, n_models: int) -> TrackColumns:
    return TrackColumns(
        alive=np.zeros(capacity, bool), track_id=np.full(capacity, -1, np.int64),
        x=np.zeros((capacity, 4)), P=np.zeros((capacity, 4, 4)),
        xm=np.zeros((capacity, n_models, 4)), Pm=np.zeros((capacity, n_models, 4, 4)),
        mu=np.full((capacity, n_models), 1.0 / n_models),
        t_state=np.zeros(capacity), t_update=np.zeros(capacity), t_exist=np.zeros(capacity),
        existence=np.zeros(capacity), birth_existence=np.zeros(capacity), first_seen=np.zeros(capacity), status=np.zeros(capacity, np.int8),
        hits=np.zeros(capacity, np.int32), class_sensor=np.full((capacity, N_CLASSES), 1.0 / N_CLASSES),
        top_speed=np.zeros(capacity), class_prob=np.full((capacity, N_CLASSES), 1.0 / N_CLASSES),
        q=np.ones(capacity), sensor_mask=np.zeros((capacity, words), np.uint64),
        merge_with=np.full(capacity, -1, np.int64), merge_since=np.zeros(capacity),
        free=np.arange(capacity - 1, -1, -1, dtype=np.int64),  # row 0 on top
        n_free=np.array([capacity], np.int64), high=np.zeros(1, np.int64),
    )


def sensor_bits(sensor_mask: np.ndarray, n_sensors: int) -> np.ndarray:
    """(n, n_sensors) bool from (n, words) uint64 bitmasks: ``[i, s]`` is bit ``s % 64`` of word ``s // 64``.

    The words are read as little-endian bytes and unpacked least significant bit first,
    so byte b, bit k of a row is sensor 8·b + k: all rows in one ``unpackbits``.
    """
    as_bytes = np.ascontiguousarray(sensor_mask, dtype="<u8").view(np.uint8).reshape(
        sensor_mask.shape[0], 8 * sensor_mask.shape[1])
    return np.unpackbits(as_bytes, axis=1, count=n_sensors, bitorder="little").astype(bool)


class TrackTable:
    """Columns of all tracks (:class:`TrackColumns`); row ``i`` is a track while ``alive[i]``.

    The table starts at ``capacity`` rows and doubles when a scan could start more
    tracks than there are free rows, up to ``max_capacity``; past that, the
    detections that would start new tracks are dropped (the tracker counts them).
    """

    def __init__(self, capacity: int, n_sensors: int, n_models: int = 1, max_capacity: int | None = None) -> None:
        self.capacity = capacity
        self.max_capacity = max(capacity, max_capacity or capacity)
        self.cols = _empty_columns(capacity, max(1, (n_sensors + 63) // 64), n_models)

    def __getattr__(self, name: str) -> np.ndarray:  # tab.x, tab.alive, ... are the columns
        try:
            return getattr(self.__dict__["cols"], name)
        except (KeyError, AttributeError):
            raise AttributeError(name) from None

    @property
    def count(self) -> int:
        return self.capacity - int(self.cols.n_free[0])

    def reserve(self, n: int) -> int:
        """Make room for up to ``n`` new tracks (doubling, within ``max_capacity``); returns the room there is."""
        while self.cols.n_free[0] < n and self.capacity < self.max_capacity:
            self._grow(min(self.capacity * 2, self.max_capacity))
        return int(self.cols.n_free[0])

    def _grow(self, new: int) -> None:
        old, cols = self.capacity, self.cols
        fresh = _empty_columns(new, cols.sensor_mask.shape[1], cols.mu.shape[1])
        for name in TrackColumns._fields:
            if name not in ("free", "n_free", "high"):
                getattr(fresh, name)[:old] = getattr(cols, name)
        n_free = int(cols.n_free[0])  # the new rows go under the free ones, in ascending order from the top
        fresh.free[:new - old] = np.arange(new - 1, old - 1, -1)
        fresh.free[new - old:new - old + n_free] = cols.free[:n_free]
        fresh.n_free[0] = n_free + new - old
        fresh.high[0] = cols.high[0]
        self.cols = fresh
        self.capacity = new
