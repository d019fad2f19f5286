"""The pipeline, shared by ``replay`` and ``run``: bytes in, rejections/tracks/alerts out.

    message ─ Ingestor ─ Scan ─ ReorderBuffer ─ Tracker ─ estimates ─ Geofence ─ Alert
                 └─ Rejection                              └─ track snapshots

Everything is driven by the receive time given with each message and by sensor
time after the reorder buffer; nothing reads the wall clock, so a replay of the
same log gives the same outputs byte for byte.

The reorder buffer releases a scan a window after newer sensor data arrives, or
after a window of receive time when the sensors go quiet (:mod:`sensors.reorder`).
The live node calls :meth:`Pipeline.tick` with the wall clock while no input
arrives; replay releases the same scans, in the same order, when the next message's
``t_rx`` comes, because :meth:`Pipeline.feed` first lets that receive time pass.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from fusion import __version__
from fusion.config import Site
from fusion.render import SnapshotTable, snapshot_json, snapshot_table
from geo.alerts import Alert
from geo.geofence import Geofence, TrackUpdate
from sensors.batch import Scan
from sensors.ingest import Ingestor, Rejection
from sensors.reorder import ReorderBuffer
from tracking.table import sensor_bits
from tracking.tracker import Tracker, TrackEstimates

if TYPE_CHECKING:
    from fusion.federation.ingress import Ingress

__all__ = ["Outputs", "Pipeline"]
_MAX_SNAPSHOT_CATCH_UP = 10


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Track estimates at data time ``t``, rendered (interface §3.1) only when asked, once.

    Rendering is columnar (:mod:`fusion.render`): ~1.5 µs of CPU per track with the
    tracker's prediction (10,000 tracks: ~15 ms on a busy 2-core box); the live node
    sends its alerts first.
    """

    t: float
    estimates: TrackEstimates
    pipeline: Pipeline
    fused: object = None  # federation: the FusedPicture at t (fusion.federation.ingress), else None

    @cached_property
    def table(self) -> SnapshotTable:
        """The snapshot's fields as columns (one row per track): for Parquet and for the JSON."""
        return self.pipeline._snapshot_table(self.t, self.estimates)

    def to_json(self) -> bytes:
        """Interface §3.1 JSON, as sent on the wire and written to ``--tracks-out``."""
        return self._json

    @cached_property
    def _json(self) -> bytes:
        if self.fused is None:
            return snapshot_json(self.table)
        return self.pipeline.federation.annotate(snapshot_json(self.table), self.fused)  # partners' links

    def to_dict(self) -> dict:
        return msgspec.json.decode(self.to_json())


@dataclass
class Outputs:
    rejected: list[Rejection] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)

    def extend(self, other: Outputs) -> None:
        self.rejected += other.rejected
        self.alerts += other.alerts
        self.snapshots += other.snapshots


def _alive_rows(alive: np.ndarray, *row_sets: np.ndarray) -> np.ndarray:
    """The rows in any of ``row_sets`` that are alive, sorted, each once: ``np.union1d`` then the alive
    ones, by a mask over the table (a few thousand rows) instead of a sort (~60 µs a scan)."""
    chosen = np.zeros(alive.shape[0], np.bool_)
    for rows in row_sets:
        chosen[rows] = True
    return np.flatnonzero(chosen & alive)


class Pipeline:
    """One site's pipeline.  ``emit_snapshots=False`` (a replay that writes no tracks) keeps the
    snapshot clock but makes no snapshot, so the tracker's prediction of every track once a period is
    not paid for nothing; a federated pipeline makes them all the same (its partners' fusion runs at
    each snapshot and may raise ``incoming`` alerts)."""

    def __init__(self, site: Site, emit_snapshots: bool = True) -> None:
        cfg = site.config
        self.site = site
        self.ingestor = Ingestor(list(site.sensors), site.frame, cfg.mqtt.prefix, site.ingest_limits)
        self.buffer = ReorderBuffer(cfg.ingest.reorder_window_s)
        self.tracker = Tracker(cfg.tracker, len(site.sensors))
        self.geofence = Geofence(site.jurisdictions, site.frame, cfg.geofence, site.node_id)
        self.counters: Counter = Counter()
        self.alerts_by_type: Counter = Counter()
        self.latest_sensor_t = -math.inf
        self.latest_rx_t = -math.inf
        self.watermark = -math.inf  # the newest sensor time accepted: the buffer's data clock
        self._period = 1.0 / cfg.outputs.tracks_rate_hz
        self._next_snapshot: float | None = None
        self._processed_t = -math.inf  # sensor time of the newest processed scan
        #: partners' released tracks (``[federation.fusion]``), taken in as input like the sensors'
        self.federation: Ingress | None = None
        if cfg.federation.fusion is not None:  # imported only then: it loads the track-to-track fusion (~30 ms)
            from fusion.federation.ingress import Ingress

            self.federation = Ingress(site)
        self.emit_snapshots = emit_snapshots or self.federation is not None
        self._sensor_ids = tuple(s.spec.id for s in site.sensors)

    # -- input ----------------------------------------------------------------------
    def feed(self, t_rx: float, topic: str, payload: bytes) -> Outputs:
        """One received message; returns whatever it made ready."""
        out = Outputs()
        self._release(t_rx, out)  # first what has waited a window by now, as tick() would have
        self.counters["received"] += 1
        self.latest_rx_t = max(self.latest_rx_t, t_rx)
        if self.federation is not None and self.federation.accepts(topic):
            rejected = self.federation.feed(t_rx, topic, payload)
            self.counters["rejected"] += len(rejected)
            out.rejected += rejected
            return out
        result = self.ingestor.ingest(t_rx, topic, payload, not_before=self.buffer.released_until)
        if isinstance(result, Rejection):
            self.counters["rejected"] += 1
            out.rejected.append(result)
            return out
        self.counters["accepted"] += 1
        self.counters["detections"] += result.size
        self.buffer.push(result, t_rx)
        self.watermark = max(self.watermark, result.time)
        self._release(t_rx, out)
        return out

    def tick(self, now: float) -> Outputs:
        """No input until receive time ``now``: release what has waited a full window."""
        out = Outputs()
        self._release(now, out)
        return out

    def next_release(self) -> float:
        """The receive time at which :meth:`tick` releases something (inf: nothing held)."""
        return self.buffer.next_due()

    def _release(self, rx_t: float, out: Outputs) -> None:
        for scan in self.buffer.pop_ready(self.watermark, rx_t):
            self._process(scan, out)

    def flush(self) -> Outputs:
        """End of input: process everything still held."""
        out = Outputs()
        for scan in self.buffer.drain():
            self._process(scan, out)
        if math.isfinite(self._processed_t):  # the last snapshot: nothing stamped up to it can come any more
            self._snapshots_before(self._processed_t, out, inclusive=True)
        return out

    # -- stages ---------------------------------------------------------------------
    def _process(self, scan: Scan, out: Outputs) -> None:
        self._snapshots_before(scan.time, out)
        self.counters["scans"] += 1
        self.latest_sensor_t = max(self.latest_sensor_t, scan.time)
        before = self.tracker.confirmed_total
        step = self.tracker.step(scan)
        self.counters["tracks_confirmed"] += self.tracker.confirmed_total - before
        self.counters["tracks_merged"] += len(step.merged)
        tab = self.tracker.table
        for absorbed, survivor in step.merged.tolist():  # before the update: the survivor must not re-raise
            row = np.flatnonzero(tab.alive & (tab.track_id == survivor))
            if row.size:
                self.geofence.merge(absorbed, survivor, tab.x[row[0], :2])
            if self.federation is not None:
                self.federation.merge_own(absorbed, survivor)
        rows = _alive_rows(tab.alive, step.updated, step.confirmed)
        if rows.size:
            alerts = self.geofence.update(TrackUpdate(
                t=scan.time, track_id=tab.track_id[rows], x=tab.x[rows], P=tab.P[rows],
                confirmed=self.tracker.established(rows), quality=tab.existence[rows],
                class_prob=tab.class_prob[rows],
            ))
            alerts = self._with_sensors(alerts, rows)
            for alert in alerts:
                self.counters["alerts"] += 1
                self.alerts_by_type[alert.type] += 1
            out.alerts += alerts
        self.geofence.forget(step.deleted_ids)
        self._processed_t = max(self._processed_t, scan.time)

    def _with_sensors(self, alerts: list[Alert], rows: np.ndarray) -> list[Alert]:
        """Each alert with ``sensors``: the ids of the sensors that have contributed to its track
        (provenance: an alert resting on one sensor alone can be told from a corroborated one).

        Only the alerts' tracks (a few of the ~1,000 updated ``rows``; names are "<node>-<track number>"),
        each found by one comparison over ``rows`` and its bitmask unpacked alone."""
        if not alerts:
            return alerts
        tab = self.tracker.table.cols
        node, ids = self.site.node_id, self._sensor_ids
        track_ids = tab.track_id[rows]
        by_track: dict[str, list[str]] = {}
        for alert in alerts:
            prefix, _, number = alert.track_id.rpartition("-")
            if alert.track_id in by_track or prefix != node or not number.isdigit():
                continue
            found = np.flatnonzero(track_ids == int(number))
            if found.size:
                used = sensor_bits(tab.sensor_mask[rows[found[-1:]]], len(ids))[0]
                by_track[alert.track_id] = [ids[i] for i in np.flatnonzero(used)]
        return [replace(a, extra={**a.extra, "sensors": by_track.get(a.track_id, [])}) for a in alerts]

    def _snapshots_before(self, t: float, out: Outputs, inclusive: bool = False) -> None:
        """Snapshots due before data time ``t`` (at ``t`` too when ``inclusive``): a snapshot at
        time s goes out once every scan stamped ≤ s is processed, so it reflects them all."""
        if self._next_snapshot is None:
            self._next_snapshot = math.ceil(t / self._period) * self._period
        due = math.floor((t - self._next_snapshot) / self._period) + 1
        if due > _MAX_SNAPSHOT_CATCH_UP:  # a long silence: report its end, not every empty period
            self._next_snapshot += (due - 1) * self._period
        while self._next_snapshot < t or (inclusive and self._next_snapshot == t):
            if self.emit_snapshots:
                snapshot = self.snapshot(self._next_snapshot)
                if self.federation is not None:
                    snapshot = self._federate(snapshot, out)
                out.snapshots.append(snapshot)
            self._next_snapshot += self._period

    def _federate(self, snapshot: Snapshot, out: Outputs) -> Snapshot:
        """The snapshot fused with the partners' tracks at its time; their ``incoming`` alerts into ``out``."""
        fused, incoming = self.federation.at_snapshot(snapshot.estimates)
        self.counters["alerts"] += len(incoming)
        self.alerts_by_type["incoming"] += len(incoming)
        out.alerts += incoming
        return replace(snapshot, fused=fused)

    # -- checkpoint -----------------------------------------------------------------
    _PARTS = ("tracker", "geofence", "buffer")

    @property
    def _parts(self) -> tuple[str, ...]:
        return self._PARTS + (("federation",) if self.federation is not None else ())

    def export_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """The whole state, as arrays named ``part.name`` and JSON-able scalars (see :mod:`fusion.live.checkpoint`)."""
        arrays: dict[str, np.ndarray] = {}
        meta: dict = {"ingestor": self.ingestor.export_state(), "counters": dict(self.counters),
                      "alerts_by_type": dict(self.alerts_by_type), "latest_sensor_t": self.latest_sensor_t,
                      "latest_rx_t": self.latest_rx_t, "watermark": self.watermark,
                      "next_snapshot": self._next_snapshot, "processed_t": self._processed_t}
        for part in self._parts:
            part_arrays, meta[part] = getattr(self, part).export_state()
            arrays.update({f"{part}.{name}": a for name, a in part_arrays.items()})
        return arrays, meta

    def import_state(self, arrays: dict[str, np.ndarray], meta: dict, now_rx: float | None = None) -> None:
        """Take over :meth:`export_state`'s state.  With ``now_rx`` (the receive clock at the restart),
        receive times move forward by the pause, so held scans wait the rest of their window from now."""
        pause = now_rx - meta["latest_rx_t"] if now_rx is not None and math.isfinite(meta["latest_rx_t"]) else 0.0
        for part in self._parts:
            if part == "federation" and part not in meta:  # a checkpoint from before [federation.fusion]
                continue
            prefix = f"{part}."
            mine = {k[len(prefix):]: a for k, a in arrays.items() if k.startswith(prefix)}
            if part == "buffer":
                self.buffer.import_state(mine, meta[part], rx_shift_s=max(0.0, pause))
            else:
                getattr(self, part).import_state(mine, meta[part])
        self.ingestor.import_state(meta["ingestor"])
        self.counters = Counter(meta["counters"])
        self.alerts_by_type = Counter(meta["alerts_by_type"])
        self.latest_sensor_t = float(meta["latest_sensor_t"])
        self.latest_rx_t = float(meta["latest_rx_t"]) + max(0.0, pause)
        self.watermark = float(meta["watermark"])
        self._next_snapshot = meta["next_snapshot"]
        self._processed_t = float(meta["processed_t"])

    # -- output ---------------------------------------------------------------------
    def snapshot(self, t: float) -> Snapshot:
        """Track snapshot (interface §3.1) at data time ``t``."""
        return Snapshot(t, self.tracker.estimates(t, include_tentative=self.site.config.outputs.include_tentative), self)

    def _snapshot_table(self, t: float, est: TrackEstimates) -> SnapshotTable:
        """Interface §3.1 fields as arrays: lat/lon, jurisdiction and sensors for all tracks at once."""
        lat, lon, _ = self.site.frame.to_geodetic(est.x[:, 0], est.x[:, 1])
        return snapshot_table(self.site.node_id, t, est, lat, lon, self.geofence.country_index_of(est.x[:, :2]),
                              self.geofence.country_ids, sensor_bits(est.sensor_mask, len(self._sensor_ids)),
                              self._sensor_ids)

    def status(self, t: float) -> dict:
        """Node status (interface §3.4)."""
        counters = {name: int(self.counters[name]) for name in
                    ("received", "rejected", "accepted", "detections", "scans", "tracks_confirmed", "tracks_merged",
                     "alerts")}
        counters["tracks_live"] = int(self.tracker.table.count)
        counters["reorder_forced"] = int(self.buffer.forced)
        if self.federation is not None:  # partners' released-track messages taken in (rejected ones too)
            counters["partner_received"] = self.federation.received
        lag = self.latest_rx_t - self.latest_sensor_t if math.isfinite(self.latest_sensor_t) else 0.0
        return {"node_id": self.site.node_id, "state": "online", "t": round(t, 3), "version": __version__,
                "counters": counters, "alerts_by_type": dict(sorted(self.alerts_by_type.items())),
                "lag_s": round(max(0.0, lag), 3),
                # per sensor: its clock's lead over the most advanced other sensor (s), and messages
                # rejected for leading beyond ingest.max_clock_lead_s
                "sensor_clocks": {"lead_s": self.ingestor.clocks.leads(self.latest_rx_t),
                                  "rejected": dict(sorted(self.ingestor.clocks.rejected.items()))}}
