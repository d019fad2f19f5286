"""Multi-sensor multi-target tracker: one scan at a time, in sensor-time order.

``Tracker.step`` reads like the algorithm: predict → gate (with the most agile
model) → associate (by the model mixture's likelihood) → update →
existence → confirm → initiate → delete, as three numba calls around scipy's
assignment solver (which runs only for clusters of rival pairs), and once a second
of data time the duplicate check.  The tracker sees only numbers in a local frame
(metres, seconds); any object with the attributes of :class:`ScanLike` is a scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.special import gammaincinv

from tracking.associate import assign
from tracking.config import TrackerConfig
from tracking.imm import pair_log_likelihood, predict_tracks
from tracking.kernels import gate_pairs
from tracking.manage import UNKNOWN_PD, GatedPairs, ManageParams, ScanColumns, manage_scan
from tracking.merge import merge_duplicates
from tracking.table import CONFIRMED, TrackColumns, TrackTable

__all__ = ["Tracker", "ScanLike", "StepResult", "TrackEstimates", "STATUS_NAMES"]

STATUS_NAMES = ("tentative", "confirmed", "coasting")
_WHOLE = ("free", "n_free", "high")  # table columns that are not per row


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
    coverage_sector_rad: tuple[float, float]  # (start, width) clockwise from the frame's north; width 2π: all
    detection_probability: float
    clutter_density: float


@dataclass(frozen=True)
class StepResult:
    """Rows touched by one step: updated by a detection, newly confirmed; ids deleted; and
    duplicates merged, ``merged[k] = (absorbed id, surviving id)`` (the absorbed ids are in
    ``deleted_ids`` too)."""

    updated: np.ndarray
    confirmed: np.ndarray
    deleted_ids: np.ndarray
    merged: np.ndarray


@dataclass(frozen=True, eq=False)
class TrackEstimates:
    """Tracks at one time, as arrays (``status`` indexes :data:`STATUS_NAMES`)."""

    t: float
    track_id: np.ndarray
    x: np.ndarray
    P: np.ndarray
    status: np.ndarray
    existence: np.ndarray
    class_prob: np.ndarray
    first_seen: np.ndarray
    last_update: np.ndarray
    sensor_mask: np.ndarray  # (n, words) uint64: bit s of a row, sensor s contributed

    def __len__(self) -> int:
        return int(self.track_id.size)


class Tracker:
    def __init__(self, config: TrackerConfig, n_sensors: int) -> None:
        self.config = config
        imm = config.imm
        if imm.enabled:  # q of each model = the class's σ_a² times the model's scale²; the most agile last
            scale, sojourn = zip(*imm.chain())
            self._scales, self._sojourn = np.array(scale) ** 2, np.array(sojourn)
            self._quiet_q = imm.quiet_accel_sigma_mps2 ** 2
        else:
            self._scales, self._sojourn, self._quiet_q = np.ones(1), np.ones(1), 0.0
        self._mu0 = self._sojourn / self._sojourn.sum()  # a new track starts at the chain's stationary distribution
        self.table = TrackTable(config.capacity, n_sensors, self._scales.size, config.max_capacity)
        self.gate = _chi2_quantile(config.gate_probability, 2)
        self._merge_limit = _chi2_quantile(config.merge_probability, 4)
        self._merge_gate = _chi2_quantile(0.999, 2)  # candidate pairs: positions close at all
        a, v, e = config.agility, config.top_speed, config.existence
        self._params = ManageParams(
            class_floor=config.class_confusion_floor,
            class_q=np.array([a.person, a.vehicle, a.animal, a.uav, a.unknown]) ** 2,
            top_speed=np.array([v.person, v.vehicle, v.animal, v.uav, np.inf]),
            max_variance=config.max_position_sigma_m**2,
            initial_speed_variance=min(config.initial_speed_sigma_mps, config.max_speed_mps) ** 2,
            gate_probability=config.gate_probability, birth_density=e.birth_per_km2 * 1e-6,
            default_clutter_density=e.default_clutter_per_km2 * 1e-6, lifetime_s=e.mean_lifetime_s,
            confirm=e.confirm, delete=e.delete, share_within_s=e.share_within_s,
            turn_rate=np.radians(config.max_turn_rate_dps), accel_floor=config.accel_floor_mps2,
            manoeuvre_scale=imm.manoeuvre_scale if imm.enabled else 1.0)
        self._next_id = 1
        self._next_merge_check = -np.inf
        self.confirmed_total = 0
        self.dropped_for_capacity = 0

    # -- the algorithm ---------------------------------------------------------------
    def step(self, scan: ScanLike) -> StepResult:
        """predict (:mod:`tracking.imm`) → gate, drop the pairs likelier clutter, assign → update,
        existence, confirm, initiate, delete (:mod:`tracking.manage`) → merge duplicates
        (:mod:`tracking.merge`)."""
        tab, t, h = self.table.cols, float(scan.time), int(self.table.high[0])  # rows from h up are all free
        predict_tracks(tab.x[:h], tab.P[:h], tab.xm[:h], tab.Pm[:h], tab.mu[:h], tab.t_state[:h], tab.alive[:h],
                       tab.q[:h], self._scales, self._sojourn, t, self._quiet_q)
        agile = tab.xm.shape[1] - 1  # the most agile model's gate holds every model's
        ti, dj, _, _ = gate_pairs(tab.xm[:, agile], tab.Pm[:, agile], tab.alive[:h], tab.hits, tab.t_update, t,
                                  self.config.max_speed_mps, scan.position, scan.covariance, self.gate, 0.0)
        loglik = pair_log_likelihood(ti, dj, tab.xm, tab.Pm, tab.mu, scan.position, scan.covariance)
        ti, dj, loglik = self._likelier_than_clutter(ti, dj, loglik, scan)
        tracks, dets, _ = assign(ti, dj, -2.0 * loglik, h, scan.position.shape[0])
        self.table.reserve(scan.position.shape[0])  # at most one new track per detection
        tab = self.table.cols  # reserve may have grown the table
        columns = ScanColumns(
            scan.position, scan.covariance, scan.radial_velocity, scan.radial_velocity_sigma, scan.line_of_sight,
            scan.class_likelihood, scan.can_initiate, int(scan.sensor_index),
            np.array([*scan.coverage_center, scan.coverage_radius_m, *scan.coverage_sector_rad], float),
            float(scan.detection_probability),
            float(scan.clutter_density))
        pairs = GatedPairs(ti, dj, loglik)
        confirmed, deleted, self._next_id, dropped = manage_scan(
            tab, columns, pairs, tracks, dets, t, self._next_id, self._mu0, self._params)
        self.confirmed_total += confirmed.size
        self.dropped_for_capacity += dropped
        merged = self._merge(t)
        if merged.size:
            deleted = np.concatenate((deleted, merged[:, 0]))
        return StepResult(updated=tracks, confirmed=confirmed, deleted_ids=deleted, merged=merged)

    def _likelier_than_clutter(self, ti: np.ndarray, dj: np.ndarray, loglik: np.ndarray,
                               scan: ScanLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The gated pairs whose detection is likelier the track's than clutter's, the rest dropped.

        Pairing track i with detection j explains z_j as i's, with probability density
        P_D N(z_j; ẑ_i, S_i) (the model mixture's); leaving them apart explains z_j as clutter
        and i as missed, (1 − P_D P_G) λ.  A pair below that is not one a global nearest
        neighbour should make, even when it is the only pair in the gate: a track coasting
        through a coverage gap has an agile model hundreds of metres wide, and without this
        it took a plot 550 m off while its own target's plot went to a new track
        (``benchmarks/accuracy_suite.py``, coverage gaps: a false crossing).
        """
        if not ti.size:
            return ti, dj, loglik
        clutter = float(scan.clutter_density) if scan.clutter_density > 0.0 else self._params.default_clutter_density
        pd = float(scan.detection_probability) if scan.detection_probability > 0.0 else UNKNOWN_PD
        keep = loglik + np.log(pd) > np.log((1.0 - pd * self.config.gate_probability) * clutter)
        return ti[keep], dj[keep], loglik[keep]

    def _merge(self, t: float) -> np.ndarray:
        """Once a second of data time: merge confirmed tracks that stayed one target (:mod:`tracking.merge`)."""
        if t < self._next_merge_check:
            return np.zeros((0, 2), np.int64)
        self._next_merge_check = t + 1.0
        tab, h = self.table.cols, int(self.table.high[0])
        rows = np.flatnonzero(tab.alive[:h] & (tab.status[:h] == CONFIRMED))
        silent = t - tab.t_update[rows] >= self.config.merge_after_s
        if rows.size < 2 or not silent.any():  # every pair was detected lately: no candidates, every clock restarts
            tab.merge_with[rows] = -1
            return np.zeros((0, 2), np.int64)
        confirmed = np.zeros(h, bool)
        confirmed[rows] = True
        a, k, _, _ = gate_pairs(tab.x, tab.P, confirmed, tab.hits, tab.t_update, t, self.config.max_speed_mps,
                                np.ascontiguousarray(tab.x[rows, :2]), np.ascontiguousarray(tab.P[rows, :2, :2]),
                                self._merge_gate, 0.0)
        absorbed, survivor = merge_duplicates(tab, a, rows[k], self._merge_limit, t, self.config.merge_after_s)
        return np.column_stack((absorbed, survivor))

    # -- checkpoint ------------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """Everything a restarted tracker needs to go on as if it never stopped: the table's
        columns (arrays) and the counters, among them the next track id (scalars).  Rows from
        ``high`` up are all free, so only the rows below it are saved (and the free stack whole)."""
        h = int(self.table.high[0])
        arrays = {name: getattr(self.table.cols, name)[:h] if name not in _WHOLE else getattr(self.table.cols, name)
                  for name in TrackColumns._fields}
        meta = {"capacity": self.table.capacity, "next_id": self._next_id,
                "next_merge_check": float(self._next_merge_check), "confirmed_total": self.confirmed_total,
                "dropped_for_capacity": self.dropped_for_capacity}
        return arrays, meta

    def import_state(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Take over a state made by :meth:`export_state` (copies the arrays); ``ValueError`` when
        its shapes do not fit this tracker (another number of sensors or motion models)."""
        expected = self.table.cols
        for name in ("sensor_mask", "mu"):
            if arrays[name].shape[1:] != getattr(expected, name).shape[1:]:
                raise ValueError(f"tracker.{name}: shape {arrays[name].shape[1:]} per track in the checkpoint, "
                                 f"{getattr(expected, name).shape[1:]} for this configuration")
        capacity = int(meta["capacity"])
        cols = TrackTable(capacity, 64 * expected.sensor_mask.shape[1], expected.mu.shape[1]).cols
        for name in TrackColumns._fields:
            saved = arrays[name]
            getattr(cols, name)[:saved.shape[0]] = saved
        self.table.cols = cols
        self.table.capacity = capacity
        self.table.max_capacity = max(self.table.max_capacity, self.table.capacity)
        self._next_id = int(meta["next_id"])
        self._next_merge_check = float(meta["next_merge_check"])
        self.confirmed_total = int(meta["confirmed_total"])
        self.dropped_for_capacity = int(meta["dropped_for_capacity"])

    # -- reading ---------------------------------------------------------------------
    def shown(self, rows: np.ndarray) -> np.ndarray:
        """Which of these tracks belong in the picture: confirmed, and likelier there than not."""
        tab = self.table.cols
        return (tab.status[rows] == CONFIRMED) & (tab.existence[rows] >= self.config.existence.show)

    def established(self, rows: np.ndarray) -> np.ndarray:
        """Which of these tracks may raise alerts: confirmed, with existence at the release level."""
        tab = self.table.cols
        return (tab.status[rows] == CONFIRMED) & (tab.existence[rows] >= self.config.existence.release)

    def estimates(self, t: float, rows: np.ndarray | None = None, include_tentative: bool = False) -> TrackEstimates:
        """Tracks predicted to ``t`` (without changing the table), sorted by id: the shown ones
        (:meth:`shown`), or every live one with ``include_tentative``."""
        tab = self.table.cols
        if rows is None:
            h = int(tab.high[0])
            every = np.arange(h)
            rows = np.flatnonzero(tab.alive[:h] & (include_tentative | self.shown(every)))
        rows = rows[np.argsort(tab.track_id[rows], kind="stable")]
        x, P, t_state = tab.x[rows], tab.P[rows], tab.t_state[rows]  # fancy indexing: copies
        predict_tracks(x, P, tab.xm[rows], tab.Pm[rows], tab.mu[rows], t_state, np.ones(rows.size, np.bool_),
                       tab.q[rows], self._scales, self._sojourn, t, self._quiet_q)
        status = tab.status[rows].astype(np.int8)
        status[(status == CONFIRMED) & (t - tab.t_update[rows] > self.config.coast_after_s)] = 2
        return TrackEstimates(
            t=t, track_id=tab.track_id[rows].copy(), x=x, P=P, status=status, existence=tab.existence[rows].copy(),
            class_prob=tab.class_prob[rows].copy(), first_seen=tab.first_seen[rows].copy(),
            last_update=tab.t_update[rows].copy(), sensor_mask=tab.sensor_mask[rows],
        )


def _chi2_quantile(probability: float, df: int) -> float:
    """The χ² quantile, as scipy.stats.chi2.ppf computes it (2·P⁻¹(df/2, p), the inverse regularised
    lower incomplete gamma function) without importing scipy.stats (~1 s at start-up)."""
    return float(2.0 * gammaincinv(df / 2.0, probability))
