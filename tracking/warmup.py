"""Compile (or load from numba's on-disk cache) every kernel before live data arrives."""

from __future__ import annotations

import time

import numpy as np

from tracking.kernels import gate_pairs, pair_clusters, predict, update_position, update_radial

__all__ = ["warm_up"]


def warm_up() -> float:
    """Run each kernel once on tiny arrays of the live dtypes; returns the seconds it took."""
    started = time.perf_counter()
    n = 2
    x = np.zeros((n, 4))
    P = np.tile(np.eye(4), (n, 1, 1))
    alive = np.ones(n, bool)
    predict(x, P, np.zeros(n), alive, np.ones(n), 1.0)
    z = np.zeros((n, 2))
    R = np.tile(np.eye(2), (n, 1, 1))
    gate_pairs(x, P, alive, np.zeros(n, bool), np.zeros(n), 50.0, z, R, 13.8, 50.0)
    rows = np.arange(n, dtype=np.int64)
    update_position(x, P, rows, z, R)
    update_radial(x, P, rows, np.zeros(n), np.ones(n), np.ones((n, 2)) / np.sqrt(2))
    pair_clusters(rows, rows, n, n)
    return time.perf_counter() - started
