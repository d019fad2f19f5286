"""Multi-sensor multi-target tracker: one scan at a time, in sensor-time order.

``Tracker.step`` reads like the algorithm: predict → gate → associate → update →
count misses → confirm → initiate → delete.  The tracker sees only numbers in a
local frame (metres, seconds); any object with the attributes of
:class:`ScanLike` is a scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.stats import chi2

from tracking.associate import assign
from tracking.config import TrackerConfig
from tracking.kernels import gate_pairs, predict, update_position, update_radial
from tracking.table import CONFIRMED, N_CLASSES, TENTATIVE, TrackTable

__all__ = ["Tracker", "ScanLike", "StepResult", "TrackEstimates", "STATUS_NAMES"]

STATUS_NAMES = ("tentative", "confirmed", "coasting")


class ScanLike(Protocol):
    """What the tracker reads of a scan (see ``sensors.batch.Scan``)."""

    time: float
    sensor_index: int
    position: np.ndarray
    covariance: np.ndarray
    radial_velocity: np.ndarray
    radial_velocity_sigma: np.ndarray
    line_of_sight: np.ndarray
    class_likelihood: np.ndarray
    can_initiate: np.ndarray
    coverage_center: tuple[float, float]
    coverage_radius_m: float


@dataclass(frozen=True)
class StepResult:
    """Rows touched by one step: updated by a detection, newly confirmed, and ids deleted."""

    updated: np.ndarray
    confirmed: np.ndarray
    deleted_ids: np.ndarray


@dataclass(frozen=True, eq=False)
class TrackEstimates:
    """Tracks at one time, as arrays (``status`` indexes :data:`STATUS_NAMES`)."""

    t: float
    track_id: np.ndarray
    x: np.ndarray
    P: np.ndarray
    status: np.ndarray
    class_prob: np.ndarray
    first_seen: np.ndarray
    last_update: np.ndarray
    sensors: list[list[int]]

    def __len__(self) -> int:
        return int(self.track_id.size)


class Tracker:
    def __init__(self, config: TrackerConfig, n_sensors: int) -> None:
        self.config = config
        self.table = TrackTable(config.capacity, n_sensors)
        self.gate = float(chi2.ppf(config.gate_probability, df=2))
        a = config.agility
        self._class_q = np.array([a.person, a.vehicle, a.animal, a.uav, a.unknown]) ** 2
        self._next_id = 1
        self.confirmed_total = 0

    # -- the algorithm ---------------------------------------------------------------
    def step(self, scan: ScanLike) -> StepResult:
        tab, t = self.table, float(scan.time)
        predict(tab.x, tab.P, tab.t_state, tab.alive, tab.q, t)
        tracks, dets = self._associate(scan, t)
        self._update(scan, tracks, dets, t)
        self._count_looks(scan, tracks)
        confirmed = self._confirm()
        self._initiate(scan, dets, t)
        deleted = self._delete(t)
        return StepResult(updated=tracks, confirmed=confirmed, deleted_ids=deleted)

    def _associate(self, scan: ScanLike, t: float) -> tuple[np.ndarray, np.ndarray]:
        tab = self.table
        if scan.position.shape[0] == 0 or not tab.alive.any():
            self._gated = np.zeros(scan.position.shape[0], bool)
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        young = tab.alive & (tab.hits == 1)
        cell_m = max(50.0, 4.0 * float(np.sqrt(np.median(scan.covariance[:, 0, 0] + scan.covariance[:, 1, 1]))))
        ti, dj, d2, logdet = gate_pairs(tab.x, tab.P, tab.alive, young, t - tab.t_update,
                                        self.config.max_speed_mps, scan.position, scan.covariance, self.gate, cell_m)
        self._gated = np.bincount(dj, minlength=scan.position.shape[0]) > 0
        return assign(ti, dj, d2 + logdet, scan.position.shape[0])

    def _update(self, scan: ScanLike, tracks: np.ndarray, dets: np.ndarray, t: float) -> None:
        if tracks.size == 0:
            return
        tab, floor = self.table, self.config.class_confusion_floor
        update_position(tab.x, tab.P, tracks, scan.position[dets], scan.covariance[dets])
        established = tab.hits[tracks] >= 2  # a one-point track's velocity is not yet worth a radial update
        update_radial(tab.x, tab.P, tracks[established], scan.radial_velocity[dets[established]],
                      scan.radial_velocity_sigma[dets[established]], scan.line_of_sight[dets[established]])
        # class posterior ∝ prior × (floor + (1 − N·floor) · likelihood): a confusion floor
        posterior = tab.class_prob[tracks] * (floor + (1.0 - N_CLASSES * floor) * scan.class_likelihood[dets])
        tab.class_prob[tracks] = posterior / posterior.sum(axis=1, keepdims=True)
        tab.q[tracks] = tab.class_prob[tracks] @ self._class_q
        tab.hits[tracks] += 1
        tab.t_update[tracks] = t
        tab.mark_sensor(tracks, scan.sensor_index)

    def _count_looks(self, scan: ScanLike, assigned: np.ndarray) -> None:
        """A look is a scan whose coverage contained the track; only looks can be misses."""
        tab = self.table
        rows = np.flatnonzero(tab.alive & (tab.status == TENTATIVE))  # only tentative tracks count looks
        was_assigned = np.zeros(tab.capacity, bool)
        was_assigned[assigned] = True
        looked = was_assigned[rows]
        if scan.coverage_radius_m > 0:
            ce, cn = scan.coverage_center
            looked |= (tab.x[rows, 0] - ce) ** 2 + (tab.x[rows, 1] - cn) ** 2 <= scan.coverage_radius_m**2
        tab.looks[rows[looked]] += 1

    def _confirm(self) -> np.ndarray:
        tab = self.table
        rows = np.flatnonzero(tab.alive & (tab.status == TENTATIVE) & (tab.hits >= self.config.confirm_hits))
        tab.status[rows] = CONFIRMED
        self.confirmed_total += rows.size
        return rows

    def _initiate(self, scan: ScanLike, dets: np.ndarray, t: float) -> None:
        """A one-point tentative track from each detection that fell in no gate at all."""
        free = np.ones(scan.position.shape[0], bool)
        free[dets] = False
        free &= ~self._gated & scan.can_initiate
        new = np.flatnonzero(free)
        if new.size == 0:
            return
        tab, cfg = self.table, self.config
        rows = tab.allocate(new.size)
        sigma_v2 = min(cfg.initial_speed_sigma_mps, cfg.max_speed_mps) ** 2
        tab.alive[rows] = True
        tab.track_id[rows] = np.arange(self._next_id, self._next_id + new.size)
        self._next_id += new.size
        tab.x[rows] = 0.0
        tab.x[rows, :2] = scan.position[new]
        tab.P[rows] = 0.0
        tab.P[rows, :2, :2] = scan.covariance[new]
        tab.P[rows, 2, 2] = tab.P[rows, 3, 3] = sigma_v2
        tab.t_state[rows] = tab.t_update[rows] = tab.first_seen[rows] = t
        tab.status[rows] = TENTATIVE
        tab.hits[rows] = 1
        tab.looks[rows] = 1
        floor = cfg.class_confusion_floor
        prior = floor + (1.0 - N_CLASSES * floor) * scan.class_likelihood[new]
        tab.class_prob[rows] = prior / prior.sum(axis=1, keepdims=True)
        tab.q[rows] = tab.class_prob[rows] @ self._class_q
        tab.sensor_mask[rows] = 0
        tab.mark_sensor(rows, scan.sensor_index)

    def _delete(self, t: float) -> np.ndarray:
        tab, cfg = self.table, self.config
        rows = np.flatnonzero(tab.alive)  # the passes below touch live rows only, not the whole capacity
        silent = t - tab.t_update[rows]
        tentative = tab.status[rows] == TENTATIVE
        sigma2 = np.maximum(tab.P[rows, 0, 0], tab.P[rows, 1, 1])
        unconfirmable = (tab.looks[rows] >= cfg.confirm_window) & (tab.hits[rows] < cfg.confirm_hits)
        dead = ((tentative & ((silent > cfg.delete_tentative_after_s) | unconfirmable))
                | (~tentative & (silent > cfg.delete_after_s))
                | (sigma2 > cfg.max_position_sigma_m**2))
        rows = rows[dead]
        ids = tab.track_id[rows].copy()
        if rows.size:
            tab.release(rows)
        return ids

    # -- reading ---------------------------------------------------------------------
    def estimates(self, t: float, rows: np.ndarray | None = None, include_tentative: bool = False) -> TrackEstimates:
        """Tracks predicted to ``t`` (without changing the table), sorted by id."""
        tab = self.table
        if rows is None:
            keep = tab.alive & (include_tentative | (tab.status != TENTATIVE))
            rows = np.flatnonzero(keep)
        rows = rows[np.argsort(tab.track_id[rows], kind="stable")]
        x, P, t_state = tab.x[rows], tab.P[rows], tab.t_state[rows]  # fancy indexing: copies
        predict(x, P, t_state, np.ones(rows.size, np.bool_), tab.q[rows], t)
        status = tab.status[rows].astype(np.int8)
        status[(status == CONFIRMED) & (t - tab.t_update[rows] > self.config.coast_after_s)] = 2
        return TrackEstimates(
            t=t, track_id=tab.track_id[rows].copy(), x=x, P=P, status=status,
            class_prob=tab.class_prob[rows].copy(), first_seen=tab.first_seen[rows].copy(),
            last_update=tab.t_update[rows].copy(), sensors=[tab.sensors_of(r) for r in rows],
        )
