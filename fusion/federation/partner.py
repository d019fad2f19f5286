"""Ingress of a partner's released tracks: intake, association with our tracks, fusion, cueing.

A partner node releases its picture to us as messages on ``PREFIX/partner/{origin}/tracks``::

    {"origin": "node-a", "t": 1795000003.0,
     "label": {"policy": "a-to-b", "originator": "node-a", "releasable_to": [...]},
     "tracks": [{"track_id": "<pseudonym>", "status": "confirmed", "lat": …, "lon": …,
                 "vel_east_mps": …, "vel_north_mps": …, "covariance": [[4×4]],
                 "classification": {…}, "existence": …, "first_seen": …, "last_update": …}]}

Each message is the origin's whole released picture at ``t`` (a snapshot): it replaces
what we held from that origin.  Positions are coarsened to a grid Δ by the partner
and the covariance's position block already carries the Δ²/12 of the uniform
rounding error, so the numbers can be fused as they are.  :class:`PartnerPicture`:

* :meth:`~PartnerPicture.ingest` checks a message (bad ones, and bad tracks in a good
  one, come back as :class:`~sensors.ingest.Rejection` s naming the field) and puts
  its tracks into our local frame (:class:`geo.frame.LocalFrame`; velocities and
  covariances are taken as east/north in ours: the two frames' axes differ by the
  meridian convergence, under 0.1° within 10 km of our origin).
* :meth:`~PartnerPicture.fuse` takes our track estimates at ``t``: partner tracks are
  predicted to ``t`` (nearly constant velocity, ``partner_q``), the difference of
  every (own, partner) pair gets a χ² test (:func:`tracking.track_fusion.difference_distance2`),
  and **over several scans** a link forms: a pair the per-scan GNN assigns on
  ``confirm_scans`` consecutive partner messages is linked; a link that fails the gate
  (or whose tracks are gone) on ``break_scans`` consecutive messages is broken.  A
  scan is a *new message* from that origin, not a call, so fusing more often than
  the partner publishes does not confirm faster.  A linked pair inside the gate is
  fused by covariance intersection (the correlation between the two sides is
  unknown); with several partners, one after the other.  The partner's tracks keep
  their provenance (origin, pseudonym, label) and **never overwrite our estimate**:
  the fused state is a separate output (:class:`FusedPicture`).
* :meth:`~PartnerPicture.incoming_alerts` raises an ``incoming`` alert, once per
  partner track, for a partner track not linked to one of ours (nor assigned to one on
  the last scan), established
  (``min_existence``, not tentative), moving at ``min_speed_mps`` or more, whose
  straight path reaches our jurisdiction within ``incoming_horizon_s`` (the
  geofence's approach test, :meth:`geo.geometry.JurisdictionIndex.first_reach`), or
  that is inside it already (``eta_s`` 0).  Its id follows the alert-id rule
  (:func:`geo.alerts.alert_id`).

The joint picture is our tracks (with their links and fused states) plus the partner
tracks linked to none of ours and not being linked right now (a pair assigned on the
last scan and on its way to ``confirm_scans``): one target, one entry.  For the node's
wiring: :meth:`~FusedPicture.links_by_track` (the cross-references for our snapshot),
:meth:`~PartnerPicture.partner_only_tracks` (the partner-only entries with provenance),
:meth:`~PartnerPicture.merge_own` (our tracker merged two tracks: the links follow),
:meth:`~PartnerPicture.export_state` / :meth:`~PartnerPicture.import_state` (checkpoint).
The node holds one through :class:`fusion.federation.ingress.Ingress` (``[federation.fusion]``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Annotated, Literal

import msgspec
import numpy as np
from msgspec import Meta, Struct

from fusion.federation.settings import PartnerFusionConfig
from geo.alerts import SEVERITY_ORDER, Alert, alert_id, heading_deg, recipients_of
from geo.frame import LocalFrame
from geo.geometry import JurisdictionIndex
from geo.jurisdictions import Jurisdiction
from sensors.ingest import Rejection, format_validation_error, undecodable_reason
from sensors.schema import CLASSES
from tracking.track_fusion import (assign_tracks, chi2_gate, covariance_intersection, difference_distance2,
                                   predict_states)

__all__ = ["PartnerFusionConfig", "PartnerPicture", "FusedPicture", "PartnerTracks", "PARTNER_STATUSES"]

PARTNER_STATUSES = ("tentative", "confirmed", "coasting")
_PAYLOAD_CHARS = 4096
log = logging.getLogger(__name__)
_NodeId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
_Time = Annotated[float, Meta(ge=0.0, le=1e11)]
_Prob = Annotated[float, Meta(ge=0.0, le=1.0)]
_Speed = Annotated[float, Meta(ge=-1000.0, le=1000.0)]
_Finite = Annotated[float, Meta(ge=-1e12, le=1e12)]


class _Label(Struct):
    """The releasability label of interface §7: ``{policy, originator, releasable_to}``.

    ``policy_id`` (the site file's name of the policy) is decoded only to name it in the
    rejection of a label that carries it instead of ``policy`` (:func:`_label_problem`)."""

    originator: _NodeId
    policy: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    releasable_to: list[_NodeId] = []
    policy_id: object = None


def _label_problem(label: _Label, where: str) -> str | None:
    """Why a label is not the contract's (``where``: its path, e.g. ``label``), or None."""
    if label.policy is not None:
        return None
    if label.policy_id is not None:
        return (f"{where}.policy_id: not a field of the label; its policy is named `policy` "
                "(interface §7: {policy, originator, releasable_to})")
    return f"{where}.policy: missing (interface §7: a label is {{policy, originator, releasable_to}})"


def _label_dict(label: _Label) -> dict:
    """A checked label as kept with the partner's tracks (the contract's three fields)."""
    return {"policy": label.policy, "originator": label.originator, "releasable_to": list(label.releasable_to)}


class _Track(Struct):
    track_id: Annotated[str, Meta(min_length=1, max_length=128)]
    status: Literal["tentative", "confirmed", "coasting"]
    lat: Annotated[float, Meta(ge=-90.0, le=90.0)]
    lon: Annotated[float, Meta(ge=-180.0, le=180.0)]
    vel_east_mps: _Speed
    vel_north_mps: _Speed
    covariance: Annotated[list[Annotated[list[_Finite], Meta(min_length=4, max_length=4)]],
                          Meta(min_length=4, max_length=4)]
    classification: dict[str, _Prob] = {}
    existence: _Prob | None = None
    first_seen: _Time | None = None
    last_update: _Time | None = None
    label: _Label | None = None


class _Message(Struct):
    origin: _NodeId
    t: _Time
    label: _Label
    tracks: Annotated[list[_Track], Meta(max_length=100_000)]


@dataclass(frozen=True, eq=False)
class PartnerTracks:
    """One origin's released tracks in our frame, as received (at ``t``; arrays over its tracks)."""

    origin: str
    t: float
    label: dict
    track_id: tuple[str, ...]
    x: np.ndarray  # (m, 4) east, north, v_east, v_north in our frame
    P: np.ndarray  # (m, 4, 4)
    status: np.ndarray  # (m,) int8, index into PARTNER_STATUSES
    existence: np.ndarray  # (m,) NaN where the partner did not say
    classification: tuple[dict, ...]
    labels: tuple[dict, ...]  # per track: its own label when it has one (passed on by the origin), else the message's

    def __len__(self) -> int:
        return len(self.track_id)


@dataclass(frozen=True, eq=False)
class FusedPicture:
    """Our tracks with their links and fused states, and the partner tracks, at ``t``.

    Own rows ``i`` (the order of the estimates given to :meth:`PartnerPicture.fuse`):
    ``x``/``P`` are the fused state where ``fused[i]`` (a linked partner track inside the
    gate went in), our own estimate otherwise; ``links[i]`` the (origin, partner
    track id) pairs linked to it.  Partner rows ``j``: ``partner_x``/``partner_P``
    predicted to ``t``; ``partner_link[j]`` our track id it is linked to (−1: none);
    ``partner_pending[j]`` our track id it was assigned to on the last scan without
    being linked yet (−1: none).  The joint picture (:meth:`joint_xy`) is every own
    row and the partner rows that are neither.
    """

    t: float
    own_track_id: np.ndarray
    x: np.ndarray
    P: np.ndarray
    fused: np.ndarray
    links: tuple[tuple[tuple[str, str], ...], ...]
    partner_origin: tuple[str, ...]
    partner_track_id: tuple[str, ...]
    partner_x: np.ndarray
    partner_P: np.ndarray
    partner_link: np.ndarray
    partner_pending: np.ndarray
    partner_label: tuple[dict, ...] = field(default=())

    @property
    def partner_only(self) -> np.ndarray:
        """(m,) bool: the partner rows that are a target of their own in the joint picture."""
        return (self.partner_link < 0) & (self.partner_pending < 0)

    def joint_xy(self) -> np.ndarray:
        """(n + k, 2) positions of the joint picture: own rows (fused where fused), then the
        partner-only rows."""
        return np.concatenate((self.x[:, :2], self.partner_x[self.partner_only, :2]))

    def links_by_track(self, node_id: str) -> dict[str, dict]:
        """For the snapshot: ``{"{node_id}-{id}": {"partner_tracks": [{"origin", "track_id"}], "fused": …}}``
        for each own track with a link; ``fused`` (east_m, north_m, velocities, covariance) only when
        fused at ``t``."""
        out: dict[str, dict] = {}
        for i, linked in enumerate(self.links):
            if not linked:
                continue
            entry: dict = {"partner_tracks": [{"origin": o, "track_id": p} for o, p in linked]}
            if self.fused[i]:
                x = self.x[i]
                entry["fused"] = {"east_m": round(float(x[0]), 2), "north_m": round(float(x[1]), 2),
                                  "vel_east_mps": round(float(x[2]), 3), "vel_north_mps": round(float(x[3]), 3),
                                  "covariance": np.round(self.P[i], 4).tolist()}
            out[f"{node_id}-{int(self.own_track_id[i])}"] = entry
        return out


@dataclass
class _Link:
    own_id: int
    misses: int = 0


@dataclass
class _OriginState:
    tracks: PartnerTracks
    counted_t: float = -math.inf  # the message t whose scan the link state has taken in
    links: dict[str, _Link] = field(default_factory=dict)  # partner track id → link
    pending: dict[str, tuple[int, int]] = field(default_factory=dict)  # partner track id → (own id, streak)
    warned: set[str] = field(default_factory=set)  # partner track ids an incoming alert was raised for


class PartnerPicture:
    """What this node holds of its partners' released tracks (module docstring).

    ``jurisdictions`` are the site's (local metres); ``own_jurisdictions`` the ids of
    those that are ours (the territory an ``incoming`` alert is about); without them
    no incoming alert is raised.
    """

    def __init__(self, frame: LocalFrame, node_id: str, config: PartnerFusionConfig | None = None,
                 jurisdictions: tuple[Jurisdiction, ...] = (), own_jurisdictions: tuple[str, ...] = ()) -> None:
        self.frame = frame
        self.node_id = node_id
        self.config = config or PartnerFusionConfig()
        self.gate = chi2_gate(self.config.gate_probability, self.config.gate_dims)
        self.jurisdictions = tuple(jurisdictions)
        ids = [j.id for j in self.jurisdictions]
        unknown = [j for j in own_jurisdictions if j not in ids]
        if unknown:
            raise ValueError(f"own_jurisdictions: {', '.join(map(repr, unknown))} not among the jurisdictions "
                             f"({', '.join(ids) or 'none given'})")
        self._own = np.array([ids.index(j) for j in own_jurisdictions], np.int64)
        self._index = JurisdictionIndex([j.polygon for j in self.jurisdictions]) if self._own.size else None
        self._decoder = msgspec.json.Decoder(_Message)
        self._origins: dict[str, _OriginState] = {}
        self.rejected = 0

    # -- intake ------------------------------------------------------------------------
    def ingest(self, message: dict | bytes | str, topic: str = "", t_received: float = 0.0) -> list[Rejection]:
        """Take one released-tracks message (decoded JSON or its bytes); returns what was not used.

        A message that fails the schema, comes from ourselves, from another origin than its
        topic names (``…/partner/{origin}/tracks``), or is not newer than the last one taken
        from its origin is rejected whole; a track with a covariance that is not symmetric
        positive definite, or a duplicate id, is rejected alone and the rest is taken.
        """
        try:
            return self._ingest(message, topic, t_received)
        except Exception as error:  # noqa: BLE001 — the last guard of the live loop
            log.error("partner ingress: unexpected %s on a message from %s; rejected", type(error).__name__, topic,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            return self._reject(topic, t_received, f"could not be processed ({type(error).__name__}: "
                                f"{str(error)[:200]}); please report this input", message)

    def _ingest(self, message: dict | bytes | str, topic: str, t_received: float) -> list[Rejection]:
        try:
            raw = message if isinstance(message, bytes) else (
                message.encode("utf-8", "surrogatepass") if isinstance(message, str) else msgspec.json.encode(message))
        except (TypeError, ValueError, OverflowError) as error:
            return self._reject(topic, t_received, f"not JSON: cannot be encoded ({error})", message)
        try:
            decoded = self._decoder.decode(raw)
        except msgspec.ValidationError as error:
            return self._reject(topic, t_received, format_validation_error(error, raw, _Message), raw)
        except msgspec.DecodeError as error:
            return self._reject(topic, t_received, f"not JSON: {error}", raw)
        except (UnicodeDecodeError, RecursionError) as error:
            return self._reject(topic, t_received, undecodable_reason(error, raw), raw)
        problem = self._message_problem(decoded, topic)
        if problem:
            return self._reject(topic, t_received, problem, raw)
        tracks, rejections = self._local_tracks(decoded, topic, t_received, raw)
        state = self._origins.get(decoded.origin)
        if state is None:
            self._origins[decoded.origin] = _OriginState(tracks)
        else:
            state.tracks = tracks
            state.warned &= set(tracks.track_id)
        return rejections

    def _message_problem(self, message: _Message, topic: str) -> str | None:
        if message.origin == self.node_id:
            return f"origin: {message.origin!r} is this node: our own release came back"
        parts = topic.split("/")
        if "partner" in parts and parts.index("partner") + 1 < len(parts):
            named = parts[parts.index("partner") + 1]
            if named != message.origin:
                return (f"origin: {message.origin!r} on the topic of partner {named!r} "
                        "(a partner speaks for itself only)")
        if message.label.originator != message.origin:
            return (f"label.originator: {message.label.originator!r} differs from origin {message.origin!r} "
                    "(a message's label is its origin's)")
        if problem := _label_problem(message.label, "label"):
            return problem
        last = self._origins.get(message.origin)
        if last is not None and message.t <= last.tracks.t:
            return (f"t: {message.t} is not after the last message taken from {message.origin!r} "
                    f"(t {last.tracks.t}): a duplicate or out of order")
        return None

    def _local_tracks(self, message: _Message, topic: str, t_received: float,
                      raw: dict | bytes | str) -> tuple[PartnerTracks, list[Rejection]]:
        rejections: list[Rejection] = []
        keep: list[_Track] = []
        seen: set[str] = set()
        covariances = np.array([tr.covariance for tr in message.tracks], np.float64).reshape(-1, 4, 4)
        problems = _covariance_problems(covariances)
        for k, (track, problem) in enumerate(zip(message.tracks, problems)):
            if track.track_id in seen:
                problem = f"track_id: duplicate {track.track_id!r} in one message"
            elif not problem and track.label is not None and (label_problem := _label_problem(track.label, "label")):
                problem = label_problem
            if problem:
                rejections += self._reject(topic, t_received, f"tracks[{k}].{problem}", raw)
                continue
            seen.add(track.track_id)
            keep.append(track)
        east, north, _ = self.frame.to_enu([tr.lat for tr in keep], [tr.lon for tr in keep])
        x = np.column_stack((east, north, [tr.vel_east_mps for tr in keep], [tr.vel_north_mps for tr in keep]))
        label = _label_dict(message.label)
        return PartnerTracks(
            origin=message.origin, t=float(message.t), label=label, track_id=tuple(tr.track_id for tr in keep),
            x=x.reshape(-1, 4), P=np.array([tr.covariance for tr in keep], np.float64).reshape(-1, 4, 4),
            status=np.array([PARTNER_STATUSES.index(tr.status) for tr in keep], np.int8),
            existence=np.array([np.nan if tr.existence is None else tr.existence for tr in keep], np.float64),
            classification=tuple(dict(tr.classification) for tr in keep),
            labels=tuple(_label_dict(tr.label) if tr.label is not None else label for tr in keep),
        ), rejections

    def _reject(self, topic: str, t_received: float, reason: str, raw: dict | bytes | str) -> list[Rejection]:
        self.rejected += 1
        if isinstance(raw, bytes):
            text = raw.decode("utf-8", "replace")
        elif isinstance(raw, str):
            text = raw
        else:
            try:
                text = msgspec.json.encode(raw).decode()
            except (TypeError, ValueError, OverflowError):
                text = repr(raw)
        return [Rejection(t_received, topic, reason, text[:_PAYLOAD_CHARS])]

    # -- association and fusion -------------------------------------------------------------
    def fuse(self, own) -> FusedPicture:
        """Our estimates at ``own.t`` (a :class:`tracking.TrackEstimates`: ``t``, ``track_id``, ``x``,
        ``P``) against every partner's tracks: links advance on each origin's new message, linked
        pairs in the gate are fused (module docstring).  Our estimates are not changed."""
        t = float(own.t)
        own_ids = np.asarray(own.track_id, np.int64)
        x, P = np.array(own.x[:, :4], np.float64), np.array(own.P[:, :4, :4], np.float64)
        fused = np.zeros(own_ids.size, bool)
        links: list[list[tuple[str, str]]] = [[] for _ in range(own_ids.size)]
        row_of = {int(i): r for r, i in enumerate(own_ids.tolist())}
        parts = []
        self._drop_stale(t)
        for origin in sorted(self._origins):
            state = self._origins[origin]
            tracks = state.tracks
            px, pP = predict_states(tracks.x, tracks.P, np.full(len(tracks), t - tracks.t), self.config.partner_q)
            d2 = difference_distance2(own.x[:, :4], own.P[:, :4, :4], px, pP, self.config.gate_dims)
            if tracks.t > state.counted_t:
                self._advance_links(state, own_ids, d2)
                state.counted_t = tracks.t
            column = {p: j for j, p in enumerate(tracks.track_id)}
            link_of = np.full(len(tracks), -1, np.int64)
            pairs: list[tuple[int, int]] = []
            for pid, link in sorted(state.links.items()):
                j, r = column.get(pid), row_of.get(link.own_id)
                if j is not None:
                    link_of[j] = link.own_id
                if r is None:
                    continue
                links[r].append((origin, pid))
                if j is not None and d2[r, j] <= self.gate:
                    pairs.append((r, j))
            if pairs:  # one partner track per own track and origin: rows are distinct; origins in turn
                r, j = np.array(pairs).T
                x[r], P[r], _ = covariance_intersection(x[r], P[r], px[j], pP[j])
                fused[r] = True
            pending = np.array([state.pending.get(p, (-1, 0))[0] for p in tracks.track_id], np.int64)
            parts.append((tracks, px, pP, link_of, pending))
        return FusedPicture(
            t=t, own_track_id=own_ids.copy(), x=x, P=P, fused=fused, links=tuple(tuple(lk) for lk in links),
            partner_origin=tuple(tr.origin for tr, *_ in parts for _ in range(len(tr))),
            partner_track_id=tuple(p for tr, *_ in parts for p in tr.track_id),
            partner_x=np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 4)),
            partner_P=np.concatenate([p[2] for p in parts]) if parts else np.zeros((0, 4, 4)),
            partner_link=np.concatenate([p[3] for p in parts]) if parts else np.zeros(0, np.int64),
            partner_pending=np.concatenate([p[4] for p in parts]) if parts else np.zeros(0, np.int64),
            partner_label=tuple(lb for tr, *_ in parts for lb in tr.labels))

    def _advance_links(self, state: _OriginState, own_ids: np.ndarray, d2: np.ndarray) -> None:
        """One scan of the origin: keep links inside the gate, count misses of the others (break at
        ``break_scans``), GNN-assign the rest, link pairs assigned on ``confirm_scans`` scans running."""
        cfg, tracks = self.config, state.tracks
        row_of = {int(i): r for r, i in enumerate(own_ids.tolist())}
        column = {p: j for j, p in enumerate(tracks.track_id)}
        free_rows, free_cols = np.ones(own_ids.size, bool), np.ones(len(tracks), bool)
        for pid in sorted(state.links):
            link = state.links[pid]
            r, j = row_of.get(link.own_id), column.get(pid)
            if r is not None and j is not None and d2[r, j] <= self.gate and free_rows[r]:
                link.misses = 0
                free_rows[r] = free_cols[j] = False
            else:
                link.misses += 1
                if link.misses >= cfg.break_scans:
                    del state.links[pid]
        rows, cols = np.flatnonzero(free_rows), np.flatnonzero(free_cols)
        a, b = assign_tracks(d2[np.ix_(rows, cols)], self.gate)
        pending: dict[str, tuple[int, int]] = {}
        for r, j in zip(rows[a].tolist(), cols[b].tolist()):
            pid, oid = tracks.track_id[j], int(own_ids[r])
            before = state.pending.get(pid)
            streak = before[1] + 1 if before is not None and before[0] == oid else 1
            if streak < cfg.confirm_scans:
                pending[pid] = (oid, streak)
                continue
            for other in [p for p, lk in state.links.items() if lk.own_id == oid or p == pid]:
                del state.links[other]  # one partner track per own track and origin: the new link replaces
            state.links[pid] = _Link(oid)
        state.pending = pending

    def _drop_stale(self, t: float) -> None:
        for origin in [o for o, s in self._origins.items() if t - s.tracks.t > self.config.stale_after_s]:
            del self._origins[origin]

    def merge_own(self, absorbed_id: int, survivor_id: int) -> None:
        """Our tracker found two of its tracks to be one target (``StepResult.merged``): the
        survivor takes over the absorbed track's links and pending pairs, for each origin where it
        has none of its own, so the partner's identity stays linked across the merge."""
        for state in self._origins.values():
            has = any(lk.own_id == survivor_id for lk in state.links.values())
            for link in state.links.values():
                if link.own_id == absorbed_id and not has:
                    link.own_id, has = survivor_id, True
            state.links = {p: lk for p, lk in state.links.items() if lk.own_id != absorbed_id}
            state.pending = {p: ((survivor_id, n) if own == absorbed_id else (own, n))
                             for p, (own, n) in state.pending.items()}

    # -- checkpoint --------------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """Everything needed to go on after a restart as if there had been none (the shape of the
        pipeline's parts: arrays, and JSON-able scalars): per origin its last tracks, links,
        pending pairs and the partner tracks already alerted about."""
        arrays: dict[str, np.ndarray] = {}
        meta: dict = {"origins": []}
        for n, origin in enumerate(sorted(self._origins)):
            state = self._origins[origin]
            tr = state.tracks
            arrays.update({f"{n}.x": tr.x, f"{n}.P": tr.P, f"{n}.status": tr.status, f"{n}.existence": tr.existence})
            meta["origins"].append({
                "origin": origin, "t": tr.t, "label": tr.label, "track_id": list(tr.track_id),
                "classification": list(tr.classification), "labels": list(tr.labels), "counted_t": state.counted_t,
                "links": {p: [lk.own_id, lk.misses] for p, lk in state.links.items()},
                "pending": {p: list(v) for p, v in state.pending.items()}, "warned": sorted(state.warned)})
        return arrays, meta

    def import_state(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Take over a state made by :meth:`export_state` (copies the arrays)."""
        self._origins = {}
        for n, o in enumerate(meta["origins"]):
            tracks = PartnerTracks(
                origin=o["origin"], t=float(o["t"]), label=o["label"], track_id=tuple(o["track_id"]),
                x=np.array(arrays[f"{n}.x"], np.float64).reshape(-1, 4),
                P=np.array(arrays[f"{n}.P"], np.float64).reshape(-1, 4, 4),
                status=np.array(arrays[f"{n}.status"], np.int8),
                existence=np.array(arrays[f"{n}.existence"], np.float64),
                classification=tuple(o["classification"]), labels=tuple(o["labels"]))
            self._origins[o["origin"]] = _OriginState(
                tracks, counted_t=float(o["counted_t"]),
                links={p: _Link(int(own), int(misses)) for p, (own, misses) in o["links"].items()},
                pending={p: (int(own), int(streak)) for p, (own, streak) in o["pending"].items()},
                warned=set(o["warned"]))

    # -- reading -----------------------------------------------------------------------
    def partner_tracks(self, origin: str) -> PartnerTracks | None:
        """The last tracks taken from ``origin`` (None: none, or dropped as stale)."""
        state = self._origins.get(origin)
        return state.tracks if state else None

    def links(self) -> dict[int, list[tuple[str, str]]]:
        """Own track id → its (origin, partner track id) links, every origin."""
        out: dict[int, list[tuple[str, str]]] = {}
        for origin in sorted(self._origins):
            for pid, link in sorted(self._origins[origin].links.items()):
                out.setdefault(link.own_id, []).append((origin, pid))
        return out

    def partner_only_tracks(self, picture: FusedPicture) -> list[dict]:
        """The partner-only entries of the joint picture as snapshot-like dicts, with provenance:
        ``origin``, ``track_id`` (the partner's pseudonym), position and velocity predicted to the
        picture's ``t`` (lat/lon and our east/north), ``covariance`` and the ``label``."""
        out = []
        rows = np.flatnonzero(picture.partner_only)
        lat, lon, _ = self.frame.to_geodetic(picture.partner_x[rows, 0], picture.partner_x[rows, 1])
        for k, j in enumerate(rows.tolist()):
            x = picture.partner_x[j]
            out.append({"origin": picture.partner_origin[j], "track_id": picture.partner_track_id[j],
                        "lat": round(float(lat[k]), 7), "lon": round(float(lon[k]), 7),
                        "east_m": round(float(x[0]), 2), "north_m": round(float(x[1]), 2),
                        "vel_east_mps": round(float(x[2]), 3), "vel_north_mps": round(float(x[3]), 3),
                        "covariance": np.round(picture.partner_P[j], 4).tolist(), "label": picture.partner_label[j]})
        return out

    # -- cueing ------------------------------------------------------------------------
    def incoming_alerts(self, t: float) -> list[Alert]:
        """``incoming`` alerts at ``t`` for partner tracks heading into our jurisdiction that none of
        ours is linked to (module docstring); each partner track at most once."""
        if self._index is None:
            return []
        cfg = self.config
        out: list[Alert] = []
        for origin in sorted(self._origins):
            state = self._origins[origin]
            tracks = state.tracks
            linked = set(state.links) | set(state.pending)  # a pair assigned on the last scan: we see it
            existence = np.nan_to_num(tracks.existence, nan=1.0)
            speed = np.hypot(tracks.x[:, 2], tracks.x[:, 3])
            fresh = np.array([p not in linked and p not in state.warned for p in tracks.track_id], bool)
            rows = np.flatnonzero(fresh & (tracks.status != 0) & (existence >= cfg.min_existence)
                                  & (speed >= cfg.min_speed_mps))
            if rows.size == 0:
                continue
            px, pP = predict_states(tracks.x[rows], tracks.P[rows], np.full(rows.size, t - tracks.t), cfg.partner_q)
            eta, target = self._time_to_reach(px)
            for n in np.flatnonzero(np.isfinite(eta)).tolist():
                j = int(rows[n])
                state.warned.add(tracks.track_id[j])
                out.append(self._incoming(origin, tracks, j, px[n], float(eta[n]), int(target[n]), t))
        return out

    def _time_to_reach(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(eta_s, own jurisdiction index) per state: 0 inside one of ours already, else the first
        reach of the straight path over the horizon (inf: none)."""
        horizon = self.config.incoming_horizon_s
        starts, ends = x[:, :2], x[:, :2] + x[:, 2:] * horizon
        inside = self._index.inside(starts)[:, self._own]
        eta = np.full(x.shape[0], np.inf)
        target = np.full(x.shape[0], -1, np.int64)
        for own in self._own.tolist():
            fraction = self._index.first_reach(starts, ends, np.full(x.shape[0], own, np.int64)) * horizon
            better = fraction < eta
            eta[better], target[better] = fraction[better], own
        inside_any = inside.any(axis=1)
        eta[inside_any] = 0.0
        target[inside_any] = self._own[np.argmax(inside[inside_any], axis=1)]
        eta[eta > horizon] = np.inf
        return eta, target

    def _incoming(self, origin: str, tracks: PartnerTracks, j: int, x: np.ndarray, eta_s: float, target: int,
                  t: float) -> Alert:
        """The alert: about the partner's track ``{origin}/{pseudonym}``, in our jurisdiction ``target``,
        to its agencies and those of the sectors at the predicted entry point; ``source`` the origin."""
        dst = self.jurisdictions[target]
        entry = x[:2] + x[2:] * eta_s
        inside = self._index.inside(np.vstack((x[:2], entry)))
        sectors = [self.jurisdictions[k] for k in np.flatnonzero(inside[1]).tolist()
                   if self.jurisdictions[k].kind == "sector" and k != target]
        here = next((self.jurisdictions[k] for k in np.flatnonzero(inside[0]).tolist()
                     if self.jurisdictions[k].kind == "country"), None)
        involved = [dst, *sectors]
        track = f"{origin}/{tracks.track_id[j]}"
        lat, lon, _ = self.frame.point_to_geodetic(x[0], x[1])
        existence = float(np.nan_to_num(tracks.existence[j], nan=1.0))
        classes = {c: round(float(p), 3) for c, p in tracks.classification[j].items() if c in CLASSES and p >= 0.005}
        from_id = here.id if here is not None and here.id != dst.id else None
        return Alert(
            alert_id=alert_id(self.node_id, track, "incoming", dst.id, t, f"{origin}>{dst.id}"), type="incoming",
            t=float(t), raised_t=float(tracks.t), node_id=self.node_id, track_id=track, lat=float(lat), lon=float(lon),
            jurisdiction=dst.id, recipients=tuple(recipients_of(involved)),
            severity=max((jr.severity for jr in involved), key=SEVERITY_ORDER.__getitem__), confidence=existence,
            classification=classes, speed_mps=float(math.hypot(x[2], x[3])), heading_deg=heading_deg(x[2], x[3]),
            from_jurisdiction=from_id, to_jurisdiction=dst.id, eta_s=eta_s,
            extra={"source": origin, "partner_track": {"origin": origin, "track_id": tracks.track_id[j]},
                   "label": tracks.labels[j]})


def _covariance_problems(P: np.ndarray) -> list[str | None]:
    """Per (4×4) covariance why it cannot be used (None: it can): symmetric to rounding, positive definite."""
    symmetric = np.isclose(P, np.swapaxes(P, 1, 2), rtol=1e-6, atol=1e-6).all(axis=(1, 2))
    positive = np.linalg.eigvalsh(0.5 * (P + np.swapaxes(P, 1, 2))).min(axis=1, initial=np.inf) > 0.0
    expected = "(expected a 4×4 symmetric positive definite matrix)"
    return [None if s and p else f"covariance: not symmetric {expected}" if not s
            else f"covariance: not positive definite {expected}" for s, p in zip(symmetric.tolist(), positive.tolist())]
