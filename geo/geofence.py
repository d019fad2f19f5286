"""The geofence: track estimates in, alerts out, with uncertainty-aware hysteresis.

Per track and jurisdiction the membership is a small state machine advanced by
P(inside) (see :mod:`geo.geometry`)::

    outside --P > inside_probability--> inside --P < outside_probability--> outside

Between the two thresholds the last decision holds (the 'uncertain' band), so a
target walking along a border inside its noise never flaps.  Countries are
exclusive: the decided country changes only when another country's P passes the
high threshold.  When it does, the path since the last decision is tested segment
by segment against the boundaries, so the crossing time and point are the
interpolated ones, and a path through a third country yields one alert per border
in order.  Alerts of a tentative track are held and released when it is confirmed
(dropped if it dies unconfirmed); ``raised_t`` says when that was.

Speed: per-track state lives in arrays indexed by a slot (:class:`_Slots`), so one
update of n tracks is a handful of vectorised passes (P(inside), the path ring
buffer, the threshold tests); only the rare tracks with an event (a decision,
a zone change, a due dwell, held alerts to release) go through Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from geo.alerts import SEVERITY_ORDER, Alert, alert_id, heading_deg, recipients_of
from geo.config import GeofenceConfig
from geo.frame import LocalFrame
from geo.geometry import JurisdictionIndex
from geo.jurisdictions import Jurisdiction

__all__ = ["Geofence", "TrackUpdate"]

_CLASSES = ("person", "vehicle", "animal", "uav", "unknown")
_MAX_PATH = 128


@dataclass(frozen=True, eq=False)
class TrackUpdate:
    """Estimates of the tracks updated at time ``t`` (arrays over tracks)."""

    t: float
    track_id: np.ndarray  # int
    x: np.ndarray  # (n, 4) east, north, v_east, v_north
    P: np.ndarray  # (n, 4, 4)
    confirmed: np.ndarray  # bool
    quality: np.ndarray  # in [0, 1]: how established the track is
    class_prob: np.ndarray  # (n, 5)


class _Slots:
    """Geofence state of every known track, in arrays indexed by slot (reused after ``free``).

    ``path_xy``/``path_t`` is a ring buffer per slot of the estimates since the last
    country decision (at most ``_MAX_PATH``; older points are dropped).
    """

    def __init__(self, n_zones: int, capacity: int = 256) -> None:
        self.of: dict[int, int] = {}
        self._free: list[int] = []
        self.pending: dict[int, list[Alert]] = {}
        self.n_zones = n_zones
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        old = getattr(self, "country", None)
        fields = {"country": np.full(capacity, -1, np.int64), "warned": np.zeros(capacity, bool),
                  "has_pending": np.zeros(capacity, bool),
                  "member": np.zeros((capacity, self.n_zones), bool), "dwelled": np.zeros((capacity, self.n_zones), bool),
                  "entered": np.zeros((capacity, self.n_zones)), "path_xy": np.zeros((capacity, _MAX_PATH, 2)),
                  "path_t": np.zeros((capacity, _MAX_PATH)), "path_len": np.zeros(capacity, np.int64),
                  "path_head": np.zeros(capacity, np.int64)}
        for name, array in fields.items():
            if old is not None:
                array[: old.size] = getattr(self, name)
            setattr(self, name, array)
        if old is not None:
            self._free += range(capacity - 1, old.size - 1, -1)
        else:
            self._free = list(range(capacity - 1, -1, -1))

    def slots(self, track_ids: np.ndarray) -> np.ndarray:
        """The slot of each track, new tracks getting fresh ones."""
        ids = track_ids.tolist()
        out = np.array([self.of.get(tid, -1) for tid in ids], np.int64)
        for k in np.flatnonzero(out < 0).tolist():
            if not self._free:
                self._alloc(2 * self.country.size)
            out[k] = self.of[ids[k]] = self._free.pop()
        return out

    def free(self, track_id: int) -> None:
        slot = self.of.pop(track_id, None)
        if slot is None:
            return
        self.country[slot] = -1
        self.warned[slot] = self.has_pending[slot] = False
        self.member[slot] = self.dwelled[slot] = False
        self.path_len[slot] = self.path_head[slot] = 0
        self.pending.pop(slot, None)
        self._free.append(slot)

    def append(self, slots: np.ndarray, t: float, xy: np.ndarray) -> None:
        head = self.path_head[slots]
        self.path_xy[slots, head] = xy
        self.path_t[slots, head] = t
        self.path_head[slots] = (head + 1) % _MAX_PATH
        self.path_len[slots] = np.minimum(self.path_len[slots] + 1, _MAX_PATH)

    def path(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """(xy, t) of one slot's path, oldest first."""
        order = (self.path_head[slot] - self.path_len[slot] + np.arange(self.path_len[slot])) % _MAX_PATH
        return self.path_xy[slot, order], self.path_t[slot, order]

    def decide(self, slots: np.ndarray, countries: np.ndarray) -> None:
        """A new country for each slot: re-arm the approach warning, keep only the newest path point."""
        self.country[slots] = countries
        self.warned[slots] = False
        self.path_len[slots] = 1


class Geofence:
    def __init__(self, jurisdictions: tuple[Jurisdiction, ...], frame: LocalFrame, config: GeofenceConfig,
                 node_id: str) -> None:
        self.jurisdictions = jurisdictions
        self.frame = frame
        self.config = config
        self.node_id = node_id
        self.index = JurisdictionIndex([j.polygon for j in jurisdictions])
        self.countries = np.array([i for i, j in enumerate(jurisdictions) if j.kind == "country"])
        self.sectors = np.array([i for i, j in enumerate(jurisdictions) if j.kind == "sector"], dtype=int)
        self.zones = np.array([i for i, j in enumerate(jurisdictions) if j.kind == "zone"], dtype=int)
        self._dwell_s = np.array([jurisdictions[z].dwell_s if jurisdictions[z].dwell_s is not None else np.inf
                                  for z in self.zones], dtype=np.float64)
        self._slots = _Slots(self.zones.size)

    # -- driving --------------------------------------------------------------------
    def update(self, batch: TrackUpdate) -> list[Alert]:
        """Advance every updated track's state machines; return alerts ready to send."""
        if batch.track_id.size == 0:
            return []
        probability = self.index.inside_probability(batch.x[:, :2], batch.P[:, :2, :2])
        tracks = self._slots
        slots = tracks.slots(batch.track_id)
        tracks.append(slots, batch.t, batch.x[:, :2])
        hi, lo = self.config.inside_probability, self.config.outside_probability
        event = batch.confirmed & tracks.has_pending[slots]
        if self.zones.size:
            p, member = probability[:, self.zones], tracks.member[slots]
            due = member & ~tracks.dwelled[slots] & (batch.t - tracks.entered[slots] >= self._dwell_s)
            event |= ((p > hi) & ~member | member & (p < lo) | due).any(axis=1)
        if self.countries.size:
            p = probability[:, self.countries]
            best = np.argmax(p, axis=1)
            decided = (p[np.arange(p.shape[0]), best] > hi) & (self.countries[best] != tracks.country[slots])
            # a track's first country is a decision without an alert: no need to go through Python
            first = decided & (tracks.country[slots] < 0) & ~event
            tracks.decide(slots[first], self.countries[best[first]])
            event |= decided & ~first
        alerts: list[Alert] = []
        for k in np.flatnonzero(event).tolist():
            slot = int(slots[k])
            new = self._advance(slot, batch, k, probability[k])
            if batch.confirmed[k]:
                alerts.extend(self._release(slot, batch.t))
                alerts.extend(new)
            elif new:
                tracks.pending.setdefault(slot, []).extend(new)
                tracks.has_pending[slot] = True
        alerts.extend(self._approaches(slots, batch))
        return alerts

    def forget(self, track_ids) -> None:
        """Drop the state (and held alerts) of deleted tracks."""
        for tid in track_ids:
            self._slots.free(int(tid))

    def countries_of(self, xy: np.ndarray) -> list[str | None]:
        """Id of the country containing each point (None outside every country)."""
        inside = self.index.inside(xy)[:, self.countries]
        ids = [self.jurisdictions[c].id for c in self.countries]
        return [ids[int(np.argmax(row))] if row.any() else None for row in inside]

    @property
    def tracked(self) -> int:
        return len(self._slots.of)

    # -- state machines -------------------------------------------------------------
    def _advance(self, slot: int, batch: TrackUpdate, k: int, p: np.ndarray) -> list[Alert]:
        """The Python side of one track with an event: decisions and their alerts."""
        tracks = self._slots
        hi, lo = self.config.inside_probability, self.config.outside_probability
        t = batch.t
        out: list[Alert] = []
        best = int(self.countries[np.argmax(p[self.countries])]) if self.countries.size else -1
        if best >= 0 and p[best] > hi and best != tracks.country[slot]:
            if tracks.country[slot] >= 0:
                out.extend(self._crossings(slot, batch, k, best, float(p[best])))
            tracks.decide(np.array([slot]), np.array([best]))
        pz, member = p[self.zones], tracks.member[slot]
        enter, leave = ~member & (pz > hi), member & (pz < lo)
        due = member & ~tracks.dwelled[slot] & (t - tracks.entered[slot] >= self._dwell_s)
        for i in np.flatnonzero(enter | leave | due).tolist():
            zone, pi = self.jurisdictions[self.zones[i]], float(pz[i])
            if enter[i]:
                tracks.member[slot, i] = True
                tracks.entered[slot, i] = t
                out += self._zone_alert("zone_entry", zone, batch, k, pi)
            elif leave[i]:
                tracks.member[slot, i] = tracks.dwelled[slot, i] = False
                out += self._zone_alert("zone_exit", zone, batch, k, 1.0 - pi)
            else:
                tracks.dwelled[slot, i] = True
                out += self._zone_alert("dwell", zone, batch, k, pi)
        return out

    def _approaches(self, slots: np.ndarray, batch: TrackUpdate) -> list[Alert]:
        """One warning per track whose straight path over the horizon meets its country's boundary."""
        horizon = self.config.approach_horizon_s
        if horizon <= 0:
            return []
        tracks = self._slots
        country = tracks.country[slots]
        speed = np.hypot(batch.x[:, 2], batch.x[:, 3])
        candidates = np.flatnonzero(batch.confirmed & ~tracks.warned[slots] & (country >= 0) & (speed >= 0.5))
        here = batch.x[candidates, :2]
        fraction = self.index.first_reach(here, here + batch.x[candidates, 2:] * horizon, country[candidates])
        out = []
        for k, f in zip(candidates[fraction <= 1.0].tolist(), fraction[fraction <= 1.0].tolist()):
            warning = self._approach(int(country[k]), batch, k, f)
            if warning is not None:
                tracks.warned[slots[k]] = True
                out.append(warning)
        return out

    def _release(self, slot: int, t: float) -> list[Alert]:
        self._slots.has_pending[slot] = False
        return [_reraise(a, t) for a in self._slots.pending.pop(slot, [])]

    # -- alerts ---------------------------------------------------------------------
    def _crossings(self, slot: int, batch: TrackUpdate, k: int, new_country: int, p_new: float) -> list[Alert]:
        path_xy, path_t = self._slots.path(slot)
        events = self.index.crossings(path_xy, path_t, self.countries)
        # a point on two boundaries at once (shared border) is one event
        events = [e for n, e in enumerate(events)
                  if n == 0 or e[0] - events[n - 1][0] > 1e-9 or not np.allclose(e[1], events[n - 1][1])]
        # the country after each crossing, then walk the sequence dropping back-and-forth detours
        sequence: list[tuple[int, float, np.ndarray]] = [(int(self._slots.country[slot]), path_t[0], path_xy[0])]
        for n, (t_cross, point) in enumerate(events):
            t_next = events[n + 1][0] if n + 1 < len(events) else path_t[-1]
            probe = _interpolate(path_t, path_xy, (t_cross + t_next) / 2) if t_next > t_cross else path_xy[-1]
            inside = self.index.containing(probe)
            country = next((int(c) for c in inside if c in self.countries), -1)
            if country < 0 or country == sequence[-1][0]:
                continue
            while any(country == s[0] for s in sequence):
                sequence.pop()
            sequence.append((country, t_cross, point))
        if sequence[-1][0] != new_country or len(sequence) < 2:
            last = events[-1] if events else (batch.t, batch.x[k, :2])
            sequence = [sequence[0], (new_country, last[0], last[1])]
        alerts = []
        for (a, _, _), (b, t_cross, point) in zip(sequence, sequence[1:]):
            alerts.append(self._crossing_alert(batch, k, a, b, t_cross, point, p_new))
        return alerts

    def _involved(self, countries: list[int], point: np.ndarray) -> list[Jurisdiction]:
        sectors = [int(s) for s in self.index.containing(point) if s in self.sectors]
        return [self.jurisdictions[i] for i in (*countries, *sectors)]

    def _crossing_alert(self, batch: TrackUpdate, k: int, a: int, b: int, t_cross: float, point: np.ndarray,
                        p_new: float) -> Alert:
        involved = self._involved([a, b], point)
        src, dst = self.jurisdictions[a], self.jurisdictions[b]
        confidence = p_new * float(batch.quality[k])
        return self._alert("border_crossing", batch, k, t_cross, point, dst.id, involved, confidence,
                           from_jurisdiction=src.id, to_jurisdiction=dst.id)

    def _zone_alert(self, kind: str, zone: Jurisdiction, batch: TrackUpdate, k: int, p: float) -> list[Alert]:
        if kind not in zone.alerts:
            return []
        return [self._alert(kind, batch, k, batch.t, batch.x[k, :2], zone.id, [zone], float(p) * batch.quality[k])]

    def _approach(self, country: int, batch: TrackUpdate, k: int, fraction: float) -> Alert | None:
        """The warning for a candidate whose straight path meets its border at ``fraction`` of the horizon."""
        horizon = self.config.approach_horizon_s
        velocity = batch.x[k, 2:]
        here = batch.x[k, :2]
        t_hit, point = batch.t + fraction * horizon, here + velocity * (fraction * horizon)
        beyond = point + velocity / max(math.hypot(*velocity), 1e-9) * 5.0
        other = next((int(c) for c in self.index.containing(beyond) if c in self.countries and c != country), -1)
        if other < 0 or not (self.jurisdictions[country].alerts & {"approach"}):
            return None
        involved = self._involved([country, other], point)
        return self._alert("approach", batch, k, batch.t, here, self.jurisdictions[other].id, involved,
                           float(batch.quality[k]), from_jurisdiction=self.jurisdictions[country].id,
                           to_jurisdiction=self.jurisdictions[other].id, eta_s=t_hit - batch.t)

    def _alert(self, kind: str, batch: TrackUpdate, k: int, t: float, point: np.ndarray, jurisdiction: str,
               involved: list[Jurisdiction], confidence: float, **fields) -> Alert:
        track = f"{self.node_id}-{int(batch.track_id[k])}"
        lat, lon, _ = self.frame.point_to_geodetic(point[0], point[1])
        ve, vn = batch.x[k, 2], batch.x[k, 3]
        severity = max((j.severity for j in involved), key=SEVERITY_ORDER.__getitem__)
        classes = {c: round(float(p), 3) for c, p in zip(_CLASSES, batch.class_prob[k]) if p >= 0.005}
        extra = f"{fields.get('from_jurisdiction')}>{fields.get('to_jurisdiction')}"
        return Alert(
            alert_id=alert_id(self.node_id, track, kind, jurisdiction, t, extra), type=kind, t=float(t),
            raised_t=batch.t, node_id=self.node_id, track_id=track, lat=float(lat), lon=float(lon),
            jurisdiction=jurisdiction, recipients=tuple(recipients_of(involved)), severity=severity,
            confidence=confidence, classification=classes, speed_mps=float(math.hypot(ve, vn)),
            heading_deg=heading_deg(ve, vn), **fields,
        )


def _interpolate(path_t: np.ndarray, path_xy: np.ndarray, t: float) -> np.ndarray:
    return np.array([np.interp(t, path_t, path_xy[:, 0]), np.interp(t, path_t, path_xy[:, 1])])


def _reraise(alert: Alert, raised_t: float) -> Alert:
    return replace(alert, raised_t=raised_t)
