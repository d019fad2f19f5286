"""Compile (or load from numba's on-disk cache) every kernel before live data arrives.

The first run after an install or an upgrade compiles: ~1–2 minutes on a 2-core
machine, once; numba caches the machine code next to the sources (or under
``NUMBA_CACHE_DIR``) and later starts load it in about a second.  When the cache is
cold, :func:`warm_up` says so on stderr and shows each stage as it goes, so a first
start is not a silent wait.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence, TextIO

import numpy as np

from tracking.config import ImmConfig, TrackerConfig

__all__ = ["warm_up", "cache_is_cold", "KERNEL_MODULES"]

#: the modules whose numba kernels the tracker runs (each leaves ``<module>.*.nbi`` cache indexes)
KERNEL_MODULES = ("kernels", "imm", "manage", "existence", "merge")
#: what a first start costs, for the message (2 cores, numba 0.59–0.60)
_USUAL_COMPILE = "usually 1–2 minutes on a 2-core machine"

Stage = tuple[str, Callable[[], object]]


def cache_is_cold(package_dir: Path | None = None, modules: Sequence[str] = KERNEL_MODULES) -> bool:
    """Whether some kernel module has no numba cache index yet (so warm-up compiles)."""
    package_dir = package_dir or Path(__file__).parent
    # numba caches next to the sources, or only under NUMBA_CACHE_DIR when that is set
    place = Path(os.environ["NUMBA_CACHE_DIR"]) if os.environ.get("NUMBA_CACHE_DIR") else package_dir / "__pycache__"
    return not (place.is_dir() and all(any(place.rglob(f"{module}.*.nbi")) for module in modules))


def warm_up(extra: Sequence[Stage] = (), progress: TextIO | None = sys.stderr, cold: bool | None = None) -> float:
    """Run the tracker, plain and with the IMM, on tiny scans of the live dtypes, then the ``extra``
    stages (other packages' kernels, e.g. rendering); returns the seconds it took.

    Three scans with two detections close together reach every kernel: gating,
    rival pairs and their batches for the solver, updates with radial velocity,
    initiation, confirmation and the snapshot's prediction; a fourth, after a
    silence, the duplicate-track check.  With a cold cache
    (``cold``; found out by :func:`cache_is_cold` when None) each stage is reported on
    ``progress`` (None: silent).
    """
    stages: list[Stage] = [("tracker: gating, assignment, filters, IMM, track management", _run_trackers), *extra]
    cold = cache_is_cold() if cold is None else cold
    show = progress if cold else None
    if show is not None:
        print(f"borderfusion: compiling the numba kernels (a one-time step, {_USUAL_COMPILE}; later starts "
              "load them from numba's cache in about a second)", file=show, flush=True)
    started = time.perf_counter()
    for k, (label, run) in enumerate(stages, 1):
        stage_started = time.perf_counter()
        if show is not None:
            print(f"  [{k}/{len(stages)}] {label} …", end="", file=show, flush=True)
        run()
        if show is not None:
            print(f" {time.perf_counter() - stage_started:.1f} s", file=show, flush=True)
    if show is not None:
        print(f"borderfusion: kernels compiled in {time.perf_counter() - started:.0f} s", file=show, flush=True)
    return time.perf_counter() - started


def _run_trackers() -> None:
    from tracking.tracker import Tracker

    for imm in (ImmConfig(enabled=False), ImmConfig()):
        tracker = Tracker(TrackerConfig(imm=imm, capacity=16), 1)
        for k in range(3):
            tracker.step(_Scan(float(k), np.array([[0.0, 0.0], [5.0, 0.0], [1.0, 1.0]])))
        tracker.estimates(3.0)
        # a plot far off once the tracks have been silent long enough for the duplicate check
        tracker.step(_Scan(3.0 + tracker.config.merge_after_s, np.array([[900.0, 900.0]])))


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
        self.coverage_sector_rad = (0.0, 2.0 * np.pi)
        self.detection_probability, self.clutter_density = 0.9, 1e-7
