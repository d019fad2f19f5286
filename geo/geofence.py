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
in order.  With ``confirmed_only`` (the default) alerts of a track that is not
confirmed are held and released when it is (dropped if it dies first);
``raised_t`` says when that was.  Without it, every track's alerts go out at once.

Speed: per-track state lives in arrays indexed by a slot (:mod:`geo.slots`), so one
update of n tracks is two numba passes (P(inside) for every jurisdiction, then
:func:`~geo.slots.scan_events`: path append and threshold tests); only the rare
tracks with an event (a decision, a zone change, a due dwell, held alerts to
release) go through Python.
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
from geo.slots import Slots, approach_rays, scan_events

__all__ = ["Geofence", "TrackUpdate"]

_CLASSES = ("person", "vehicle", "animal", "uav", "unknown")


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


class Geofence:
    def __init__(self, jurisdictions: tuple[Jurisdiction, ...], frame: LocalFrame, config: GeofenceConfig,
                 node_id: str) -> None:
        self.jurisdictions = jurisdictions
        self.frame = frame
        self.config = config
        self.node_id = node_id
        self.index = JurisdictionIndex([j.polygon for j in jurisdictions])
        self.countries = np.array([i for i, j in enumerate(jurisdictions) if j.kind == "country"], dtype=np.int64)
        self.sectors = np.array([i for i, j in enumerate(jurisdictions) if j.kind == "sector"], dtype=np.int64)
        self.zones = np.array([i for i, j in enumerate(jurisdictions) if j.kind == "zone"], dtype=np.int64)
        self._dwell_s = np.array([_dwell_s(jurisdictions[z]) for z in self.zones], dtype=np.float64)
        self._slots = Slots(self.zones.size)
        self.update(TrackUpdate(0.0, np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros((0, 4, 4)), np.zeros(0, bool),
                                np.zeros(0), np.zeros((0, 5))))  # compiles scan_events before the first live update

    # -- driving --------------------------------------------------------------------
    def update(self, batch: TrackUpdate) -> list[Alert]:
        """Advance every updated track's state machines; return alerts ready to send."""
        if not self.config.confirmed_only:
            batch = replace(batch, confirmed=np.ones_like(batch.confirmed))
        probability = self.index.inside_probability(batch.x[:, :2], batch.P[:, :2, :2])
        tracks = self._slots
        slots = tracks.slots(batch.track_id)
        event = scan_events(probability, slots, float(batch.t), batch.x, batch.confirmed, self.countries, self.zones,
                            self._dwell_s, self.config.inside_probability, self.config.outside_probability,
                            tracks.country, tracks.warned, tracks.has_pending, tracks.member, tracks.dwelled,
                            tracks.entered, tracks.path_xy, tracks.path_t, tracks.path_len, tracks.path_head)
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

    def export_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """The per-track state (arrays, held alerts) for a checkpoint; see :meth:`Slots.export_state`."""
        return self._slots.export_state()

    def import_state(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        self._slots.import_state(arrays, meta)

    def forget(self, track_ids) -> None:
        """Drop the state (and held alerts) of deleted tracks."""
        self._slots.free(track_ids)

    def merge(self, absorbed_id: int, survivor_id: int, xy: np.ndarray) -> None:
        """Two tracks found to be one target (``xy`` where it is now): the survivor takes over what
        the absorbed track had already alerted, so nothing is raised twice for one event.

        Country: of the two tracks' decided countries, the one containing ``xy`` (the other
        track's decision is the one still to come, and it must not come again).  Zones: the
        union of memberships, dwell and approach warnings, the earlier entry time.
        """
        tracks = self._slots
        a, b = tracks.slots(np.array([survivor_id, absorbed_id], np.int64)).tolist()
        country_a, country_b = int(tracks.country[a]), int(tracks.country[b])
        if country_b >= 0 and country_a != country_b:
            here = self.index.inside(np.asarray(xy, float).reshape(1, 2))[0]
            if country_a < 0 or (here[country_b] and not here[country_a]):
                tracks.decide(a, country_b)
        both = tracks.member[b] & tracks.member[a]
        tracks.entered[a] = np.where(both, np.minimum(tracks.entered[a], tracks.entered[b]),
                                     np.where(tracks.member[b], tracks.entered[b], tracks.entered[a]))
        tracks.member[a] |= tracks.member[b]
        tracks.dwelled[a] |= tracks.dwelled[b]
        tracks.warned[a] |= tracks.warned[b]
        self.forget([absorbed_id])

    @property
    def country_ids(self) -> tuple[str, ...]:
        """The countries' ids, in the order :meth:`country_index_of` counts them."""
        return tuple(self.jurisdictions[c].id for c in self.countries)

    def country_index_of(self, xy: np.ndarray) -> np.ndarray:
        """(n,) index into :attr:`country_ids` of the country containing each point (−1: none);
        where countries overlap (on a shared border), the first one.  One containment pass."""
        inside = self.index.inside(xy)[:, self.countries]
        if inside.shape[1] == 0:
            return np.full(inside.shape[0], -1, np.int64)
        return np.where(inside.any(axis=1), np.argmax(inside, axis=1), -1).astype(np.int64)

    def countries_of(self, xy: np.ndarray) -> list[str | None]:
        """Id of the country containing each point (None outside every country)."""
        ids = self.country_ids
        return [ids[k] if k >= 0 else None for k in self.country_index_of(xy).tolist()]

    @property
    def tracked(self) -> int:
        return len(self._slots)

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
            tracks.decide(slot, best)
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
        """One warning per track whose straight path over the horizon meets its country's boundary
        and leads into another country (whose containment is tested 5 m past the meeting point)."""
        horizon = self.config.approach_horizon_s
        if horizon <= 0:
            return []
        tracks = self._slots
        candidates, here, ends, country = approach_rays(batch.x, slots, batch.confirmed, tracks.country, tracks.warned,
                                                        float(horizon), 0.5)
        fraction = self.index.first_reach(here, ends, country)
        reach = fraction <= 1.0
        if not reach.any():
            return []
        candidates, fraction, here, country = candidates[reach], fraction[reach], here[reach], country[reach]
        velocity = batch.x[candidates, 2:]
        point = here + velocity * (fraction * horizon)[:, None]
        beyond = point + velocity / np.hypot(velocity[:, 0], velocity[:, 1])[:, None] * 5.0
        inside = self.index.inside(np.concatenate((point, beyond)))  # one kernel call for all of them
        at_point, past = inside[: candidates.size], inside[candidates.size:]
        out = []
        for n, k in enumerate(candidates.tolist()):
            own = int(country[n])
            other = next((int(c) for c in self.countries[past[n, self.countries]] if c != own), -1)
            if other < 0 or "approach" not in self.jurisdictions[own].alerts:
                continue
            tracks.warned[slots[k]] = True
            src, dst = self.jurisdictions[own], self.jurisdictions[other]
            out.append(self._alert("approach", batch, k, batch.t, here[n], dst.id,
                                   self._involved([own, other], at_point[n]), float(batch.quality[k]),
                                   from_jurisdiction=src.id, to_jurisdiction=dst.id,
                                   eta_s=float(fraction[n]) * horizon))
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
                  if n == 0 or e[0] - events[n - 1][0] > 1e-9 or np.abs(e[1] - events[n - 1][1]).max() > 1e-3]
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

    def _involved(self, countries: list[int], inside: np.ndarray) -> list[Jurisdiction]:
        """The countries and the sectors containing the point (``inside``: its row of containment)."""
        return [self.jurisdictions[i] for i in (*countries, *self.sectors[inside[self.sectors]].tolist())]

    def _crossing_alert(self, batch: TrackUpdate, k: int, a: int, b: int, t_cross: float, point: np.ndarray,
                        p_new: float) -> Alert:
        involved = self._involved([a, b], self.index.inside(point)[0])
        src, dst = self.jurisdictions[a], self.jurisdictions[b]
        confidence = p_new * float(batch.quality[k])
        return self._alert("border_crossing", batch, k, t_cross, point, dst.id, involved, confidence,
                           from_jurisdiction=src.id, to_jurisdiction=dst.id)

    def _zone_alert(self, kind: str, zone: Jurisdiction, batch: TrackUpdate, k: int, p: float) -> list[Alert]:
        if kind not in zone.alerts:
            return []
        return [self._alert(kind, batch, k, batch.t, batch.x[k, :2], zone.id, [zone], float(p) * batch.quality[k])]

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


def _dwell_s(zone: Jurisdiction) -> float:
    """The zone's dwell time; infinite (never due) only when its dwell alert is off."""
    if zone.dwell_s is not None:
        return float(zone.dwell_s)
    if "dwell" in zone.alerts:
        raise ValueError(f"zone {zone.id!r}: 'dwell' alerts are enabled but dwell_s is not set")
    return math.inf


def _interpolate(path_t: np.ndarray, path_xy: np.ndarray, t: float) -> np.ndarray:
    return np.array([np.interp(t, path_t, path_xy[:, 0]), np.interp(t, path_t, path_xy[:, 1])])


def _reraise(alert: Alert, raised_t: float) -> Alert:
    return replace(alert, raised_t=raised_t)
