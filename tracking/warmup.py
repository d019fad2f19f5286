"""Compile (or load from numba's on-disk cache) every kernel before live data arrives."""

from __future__ import annotations

import time

import numpy as np

from tracking.config import ImmConfig, TrackerConfig
from tracking.tracker import Tracker

__all__ = ["warm_up"]


def warm_up() -> float:
    """Run the tracker, plain and with the IMM, on tiny scans of the live dtypes; returns the seconds it took.

    Three scans with two detections close together reach every kernel: gating,
    rival pairs and their batches for the solver, updates with radial velocity,
    initiation, confirmation and the snapshot's prediction.
    """
    started = time.perf_counter()
    for imm in (ImmConfig(enabled=False), ImmConfig()):
        tracker = Tracker(TrackerConfig(imm=imm, capacity=16), 1)
        for k in range(3):
            tracker.step(_Scan(float(k), np.array([[0.0, 0.0], [5.0, 0.0], [1.0, 1.0]])))
        tracker.estimates(3.0)
    return time.perf_counter() - started


class _Scan:
    """The attributes the tracker reads (tracking imports no sensor package)."""

    def __init__(self, time: float, position: np.ndarray) -> None:
        n = position.shape[0]
        self.time, self.sensor_index = time, 0
        self.position, self.covariance = position, np.tile(np.eye(2), (n, 1, 1)) * 25.0
        self.radial_velocity = np.full(n, 0.5)
        self.radial_velocity_sigma = np.ones(n)
        self.line_of_sight = np.tile([0.6, 0.8], (n, 1))
        self.class_likelihood = np.full((n, 5), 0.2)
        self.can_initiate = np.ones(n, bool)
        self.coverage_center, self.coverage_radius_m = (0.0, 0.0), 1000.0
        self.detection_probability, self.clutter_density = 0.9, 1e-7
