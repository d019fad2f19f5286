"""Compile (or load from numba's on-disk cache) every kernel before live data arrives."""

from __future__ import annotations

import time

import numpy as np

from tracking.config import ImmConfig, TrackerConfig
from tracking.kernels import pair_clusters, predict, update_position, update_radial

__all__ = ["warm_up"]


def warm_up() -> float:
    """Run the tracker (plain and IMM) and each kernel on tiny inputs of the live dtypes; returns the seconds it took."""
    from tracking.tracker import Tracker  # the tracker imports its kernels; keep this module light to import

    started = time.perf_counter()
    n = 2
    x = np.zeros((n, 4))
    P = np.tile(np.eye(4), (n, 1, 1))
    z = np.zeros((n, 2))
    R = np.tile(np.eye(2), (n, 1, 1)) * 25.0
    rows = np.arange(n, dtype=np.int64)
    predict(x, P, np.zeros(n), np.ones(n, bool), np.ones(n), 1.0)
    update_position(x, P, rows, z, R)
    update_radial(x, P, rows, np.zeros(n), np.ones(n), np.ones((n, 2)) / np.sqrt(2))
    pair_clusters(rows, rows, n, n)
    for imm in (ImmConfig(), ImmConfig(enabled=True)):
        tracker = Tracker(TrackerConfig(imm=imm, capacity=16), 1)
        for k in range(3):  # two rival detections per track from the second scan: the solver path too
            scan = _Scan(float(k), np.array([[0.0, 0.0], [5.0, 0.0], [1.0, 1.0]]), np.tile(np.eye(2), (3, 1, 1)) * 25.0)
            tracker.step(scan)
        tracker.estimates(3.0)
    return time.perf_counter() - started


class _Scan:
    """The attributes the tracker reads (tracking imports no sensor package)."""

    def __init__(self, time: float, position: np.ndarray, covariance: np.ndarray) -> None:
        n = position.shape[0]
        self.time, self.sensor_index = time, 0
        self.position, self.covariance = position, covariance
        self.radial_velocity = np.full(n, 0.5)
        self.radial_velocity_sigma = np.ones(n)
        self.line_of_sight = np.tile([0.6, 0.8], (n, 1))
        self.class_likelihood = np.full((n, 5), 0.2)
        self.can_initiate = np.ones(n, bool)
        self.coverage_center, self.coverage_radius_m = (0.0, 0.0), 1000.0
