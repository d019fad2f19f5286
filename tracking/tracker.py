"""Multi-sensor multi-target tracker: one scan at a time, in sensor-time order.

``Tracker.step`` reads like the algorithm: predict → gate → associate → update →
count misses → confirm → initiate → delete, as three numba calls around scipy's
assignment solver (which runs only for clusters of rival pairs).  The tracker
sees only numbers in a local frame (metres, seconds); any object with the
attributes of :class:`ScanLike` is a scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.stats import chi2

from tracking.associate import assign
from tracking.config import TrackerConfig
from tracking.imm import predict_tracks
from tracking.kernels import gate_pairs
from tracking.manage import manage_scan
from tracking.table import CONFIRMED, TENTATIVE, TrackTable

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
        imm = config.imm
        if imm.enabled:  # q of each model = the class's σ_a² times the model's scale²
            self._scales = np.array([imm.quiet_scale, imm.manoeuvre_scale]) ** 2
            self._sojourn = np.array([imm.quiet_sojourn_s, imm.manoeuvre_sojourn_s])
        else:
            self._scales, self._sojourn = np.ones(1), np.ones(1)
        self._mu0 = self._sojourn / self._sojourn.sum()  # a new track starts at the chain's stationary distribution
        self.table = TrackTable(config.capacity, n_sensors, self._scales.size)
        self.gate = float(chi2.ppf(config.gate_probability, df=2))
        a = config.agility
        self._class_q = np.array([a.person, a.vehicle, a.animal, a.uav, a.unknown]) ** 2
        c = config  # in the order of manage.LIMITS
        self._limits = np.array([c.class_confusion_floor, c.confirm_hits, c.confirm_window, c.delete_tentative_after_s,
                                 c.delete_after_s, c.max_position_sigma_m**2,
                                 min(c.initial_speed_sigma_mps, c.max_speed_mps) ** 2, c.reacquire_gap_s], float)
        self._next_id = 1
        self.confirmed_total = 0

    # -- the algorithm ---------------------------------------------------------------
    def step(self, scan: ScanLike) -> StepResult:
        """predict (:mod:`tracking.imm`) → gate and assign → update, confirm, initiate, delete
        (:mod:`tracking.manage`)."""
        tab, t, h = self.table, float(scan.time), int(self.table.high[0])  # rows from h up are all free
        predict_tracks(tab.x[:h], tab.P[:h], tab.xm[:h], tab.Pm[:h], tab.mu[:h], tab.t_state[:h], tab.alive[:h],
                       tab.q[:h], self._scales, self._sojourn, t)
        ti, dj, d2, logdet = gate_pairs(tab.x, tab.P, tab.alive[:h], tab.hits, tab.t_update, t,
                                        self.config.max_speed_mps, scan.position, scan.covariance, self.gate, 0.0)
        tracks, dets, gated = assign(ti, dj, d2 + logdet, h, scan.position.shape[0])
        tab.reserve(scan.position.shape[0])  # at most one new track per detection
        coverage = np.array([*scan.coverage_center, scan.coverage_radius_m], float)
        confirmed, deleted, self._next_id = manage_scan(
            tab.alive, tab.track_id, tab.x, tab.P, tab.xm, tab.Pm, tab.mu, self._mu0, tab.t_state, tab.t_update,
            tab.t_held, tab.first_seen, tab.status, tab.hits, tab.looks, tab.class_prob, tab.q, tab.sensor_mask,
            tab.free, tab.n_free, tab.high, scan.position, scan.covariance, scan.radial_velocity,
            scan.radial_velocity_sigma, scan.line_of_sight, scan.class_likelihood, scan.can_initiate, scan.sensor_index,
            coverage,
            tracks, dets, gated, t, self._next_id, self._class_q, self._limits)
        self.confirmed_total += confirmed.size
        return StepResult(updated=tracks, confirmed=confirmed, deleted_ids=deleted)

    # -- reading ---------------------------------------------------------------------
    def established(self, rows: np.ndarray) -> np.ndarray:
        """Which of these tracks are confirmed and held by their last update (not re-acquired by a
        lone hit after a long coast): the tracks whose alerts may go out."""
        tab = self.table
        return (tab.status[rows] == CONFIRMED) & (tab.t_held[rows] == tab.t_update[rows])

    def estimates(self, t: float, rows: np.ndarray | None = None, include_tentative: bool = False) -> TrackEstimates:
        """Tracks predicted to ``t`` (without changing the table), sorted by id."""
        tab = self.table
        if rows is None:
            keep = tab.alive & (include_tentative | (tab.status != TENTATIVE))
            rows = np.flatnonzero(keep)
        rows = rows[np.argsort(tab.track_id[rows], kind="stable")]
        x, P, t_state = tab.x[rows], tab.P[rows], tab.t_state[rows]  # fancy indexing: copies
        predict_tracks(x, P, tab.xm[rows], tab.Pm[rows], tab.mu[rows], t_state, np.ones(rows.size, np.bool_),
                       tab.q[rows], self._scales, self._sojourn, t)
        status = tab.status[rows].astype(np.int8)
        status[(status == CONFIRMED) & (t - tab.t_update[rows] > self.config.coast_after_s)] = 2
        return TrackEstimates(
            t=t, track_id=tab.track_id[rows].copy(), x=x, P=P, status=status,
            class_prob=tab.class_prob[rows].copy(), first_seen=tab.first_seen[rows].copy(),
            last_update=tab.t_update[rows].copy(), sensors=[tab.sensors_of(r) for r in rows],
        )
