"""The egress gateway: the node's snapshots and alerts + an agreement → what the partner receives.

The one place anything leaves for a partner.  Pure functions decide and shape the
released messages; :class:`Gateway` only adds the delay line, and :class:`ReleaseSink`
hands the results to a ``publish(topic, payload, qos)`` callable (the MQTT edge).

Released tracks (``PREFIX/release/{partner}/tracks``, QoS 0)::

    {"origin": node_id, "t": …, "label": {…},
     "tracks": [{"track_id", "status", "lat", "lon", "vel_east_mps", "vel_north_mps",
                 "covariance", "classification", "existence", "first_seen", "last_update"}]}

Released alerts (``PREFIX/release/{partner}/alerts``, QoS 1): the alert of interface
§3.2 with ``track_id`` and ``alert_id`` pseudonymised, ``recipients``, ``sensors`` and
anything unlisted stripped, ``lat``/``lon`` coarsened, plus ``origin`` and ``label``.

A track or alert is released to a partner only if all of these hold:

* its position lies in a jurisdiction the agreement lists, and in no zone it does not;
* its distance from the border between the agreement's two ``border`` countries is at
  most ``max_border_distance_m``.  For a point p and the sides A, B::

      d(p) = max(dist(p, A), dist(p, B))

  p in A gives dist(p, A) = 0 and dist(p, B), the distance to the nearest point of B,
  which for adjacent countries lies on their common border (likewise in B).
* its most probable class is listed (every one of them on a tie; no classification, or all
  classes equally likely: ``unknown``); a track's status
  is listed; an alert's type is listed and every jurisdiction it names is listed;
* originator control (:func:`may_release`): what came from a partner goes to a third
  party only if the originator's label names it in ``releasable_to``, never back.

Coarsening: the position is snapped to the nearest node of a Δ grid of the local frame,
m' = Δ·round(m/Δ).  The snap error q = m' − m is uniform on [−Δ/2, Δ/2] per axis
(variance Δ²/12) and independent of the estimation error, so the released covariance
is P + diag(Δ²/12, Δ²/12, 0, 0): the partner's fusion sees an honest uncertainty.

Pseudonyms: HMAC-SHA256(key_partner, track_id), 20 hex digits (80 bits; a collision
among 10⁹ tracks has probability ~4·10⁻⁷).  Without the key a partner cannot link its
pseudonyms to the node's ids or to another partner's pseudonyms; the same track keeps
its pseudonym for life.  Alert ids are re-keyed the same way (the node's alert id is a
hash of the real track id and could be brute-forced back to it).
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import msgspec
import numpy as np
import shapely

from fusion.federation.agreement import CLASS_NAMES, PartnerAgreement, read_key
from geo.frame import LocalFrame
from geo.geometry import JurisdictionIndex

if TYPE_CHECKING:
    from fusion.config import Site

__all__ = ["Label", "ReleasePolicy", "Release", "compile_policies", "pseudonym", "coarsen", "inflate_covariance",
           "border_distance_m", "releasable_positions", "top_classes", "class_released", "provenance_of",
           "provenance_of_received", "may_release", "onward_label", "release_tracks", "release_alert", "Gateway",
           "ReleaseSink", "federation_sinks", "release_topic", "TRACK_FIELDS", "ALERT_FIELDS"]

log = logging.getLogger(__name__)

#: the fields of a released track, in wire order (the contract the partner's ingress relies on)
TRACK_FIELDS = ("track_id", "status", "lat", "lon", "vel_east_mps", "vel_north_mps", "covariance", "classification",
                "existence", "first_seen", "last_update")
#: the alert fields (interface §3.2) a partner may see; ``recipients``, ``sensors`` and the rest are not among them
ALERT_FIELDS = ("alert_id", "type", "t", "time", "raised_t", "node_id", "track_id", "lat", "lon", "from_jurisdiction",
                "to_jurisdiction", "jurisdiction", "severity", "confidence", "classification", "speed_mps",
                "heading_deg", "eta_s", "source")
PSEUDONYM_HEX = 20
_encode = msgspec.json.Encoder().encode


def release_topic(prefix: str, partner_id: str, kind: str) -> str:
    """``PREFIX/release/{partner_id}/{kind}``, kind ``tracks`` or ``alerts``."""
    return f"{prefix}/release/{partner_id}/{kind}"


@dataclass(frozen=True)
class Label:
    """Releasability of a piece of data: under which policy, whose it is, who else may have it."""

    policy: str | None  # the agreement's ``policy_id`` (site file); ``policy`` on the wire
    originator: str
    releasable_to: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """The wire form the shared contract (interface §7) fixes: ``{policy, originator, releasable_to}``."""
        return {"policy": self.policy, "originator": self.originator, "releasable_to": list(self.releasable_to)}


@dataclass(frozen=True, eq=False)
class ReleasePolicy:
    """One agreement made ready to apply: its key read, its jurisdictions indexed."""

    agreement: PartnerAgreement
    node_id: str
    prefix: str
    key: bytes
    frame: LocalFrame
    index: JurisdictionIndex  # every jurisdiction of the site, in site order
    released: np.ndarray  # indices of the listed jurisdictions
    withheld: np.ndarray  # indices of the zones not listed
    released_ids: frozenset[str]
    sides: tuple  # the two border countries' polygons (local metres), prepared
    side_index: np.ndarray  # their indices among the site's jurisdictions

    @property
    def partner_id(self) -> str:
        return self.agreement.partner_id


def compile_policies(site: Site) -> tuple[ReleasePolicy, ...]:
    """Every agreement of the site, ready for :func:`release_tracks` / :func:`release_alert`.

    The site was checked at load (ids exist, keys readable), so this does not fail but on
    a key file changed since.
    """
    juris = site.jurisdictions
    index = JurisdictionIndex([j.polygon for j in juris])
    position = {j.id: i for i, j in enumerate(juris)}
    out = []
    for agreement in site.config.federation.partners:
        listed = set(agreement.jurisdictions)
        sides = tuple(juris[position[jid]].polygon for jid in agreement.border)
        for side in sides:
            shapely.prepare(side)
        out.append(ReleasePolicy(
            agreement=agreement, node_id=site.node_id, prefix=site.config.mqtt.prefix,
            key=read_key(site.resolve(agreement.key_file)), frame=site.frame, index=index,
            released=np.array([position[jid] for jid in agreement.jurisdictions], np.int64),
            withheld=np.array([i for i, j in enumerate(juris) if j.kind == "zone" and j.id not in listed], np.int64),
            released_ids=frozenset(listed), sides=sides,
            side_index=np.array([position[jid] for jid in agreement.border], np.int64)))
    return tuple(out)


# -- the rules, as pure functions ----------------------------------------------------
def pseudonym(key: bytes, identifier: str, digits: int = PSEUDONYM_HEX) -> str:
    """HMAC-SHA256(key, identifier) as ``digits`` hex digits: stable, unlinkable without the key."""
    return hmac.new(key, identifier.encode(), hashlib.sha256).hexdigest()[:digits]


def coarsen(east_m: np.ndarray, north_m: np.ndarray, grid_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions snapped to the nearest node of the Δ = ``grid_m`` grid: Δ·round(x/Δ)."""
    return np.round(np.asarray(east_m) / grid_m) * grid_m, np.round(np.asarray(north_m) / grid_m) * grid_m


def inflate_covariance(covariance: np.ndarray, grid_m: float) -> np.ndarray:
    """(…, 4, 4) east/north/vₑ/vₙ covariances with Δ²/12 added to each position variance
    (the variance of the uniform snap error; see the module docstring)."""
    out = np.array(covariance, dtype=np.float64, copy=True)
    out[..., 0, 0] += grid_m ** 2 / 12.0
    out[..., 1, 1] += grid_m ** 2 / 12.0
    return out


def border_distance_m(policy: ReleasePolicy, xy: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """(n,) distance of each point from the border of the agreement's two countries, max over the
    sides of the distance to that side.  ``inside`` (n, J), :meth:`JurisdictionIndex.inside` of the
    points if the caller has it: a point's distance to a side it lies in is 0 and is not computed
    (GEOS distance to a 364-vertex border costs ~10 µs per point)."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    if inside is None:
        inside = policy.index.inside(xy)
    distance = np.zeros(xy.shape[0])
    for side, column in zip(policy.sides, policy.side_index.tolist()):
        away = np.flatnonzero(~inside[:, column])
        if away.size:
            distance[away] = np.maximum(distance[away], shapely.distance(shapely.points(xy[away]), side))
    return distance


def releasable_positions(policy: ReleasePolicy, xy: np.ndarray) -> np.ndarray:
    """(n,) bool: in a listed jurisdiction, in no unlisted zone, within the border distance."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    if xy.shape[0] == 0:
        return np.zeros(0, bool)
    inside = policy.index.inside(xy)
    ok = inside[:, policy.released].any(axis=1) & ~inside[:, policy.withheld].any(axis=1)
    near = np.zeros_like(ok)
    near[ok] = border_distance_m(policy, xy[ok], inside[ok]) <= policy.agreement.max_border_distance_m
    return near


def top_classes(classification: dict | None) -> list[str]:
    """The most probable classes (several on a tie); ``[unknown]`` when nothing is classified or every
    class is equally likely (the tracker's prior before any classifying sensor spoke)."""
    if not classification:
        return ["unknown"]
    best = max(classification.values())
    top = [name for name, p in classification.items() if p >= best - 1e-9]
    return ["unknown"] if len(top) == len(CLASS_NAMES) else top


def class_released(classification: dict | None, classes) -> bool:
    """Released only if every most probable class is listed (a person/vehicle tie is not "a person")."""
    return all(name in classes for name in top_classes(classification))


def provenance_of(item: dict, node_id: str) -> Label:
    """Whose a track or alert is: its ``label`` when it carries one (data from a partner), else the
    partner named in ``source``, with nobody else allowed, else this node's own."""
    if (label := _carried_label(item)) is not None:
        return label
    source = item.get("source")
    if source not in (None, "own", node_id):
        return Label(None, str(source), ())
    return Label(None, node_id)


def provenance_of_received(topic: str, message: dict, prefix: str) -> Label | None:
    """Whose data a message received on ``PREFIX/partner/{origin}/…`` is (None: not a partner topic).

    The bridge's remapping makes the topic say which partner sent it, and only that partner's
    credential can write there (``configs/federation/acl-*.acl``).  The message's label names
    the originator (the sender, or whoever released it to the sender) and who may have it
    next; a message without a label may go to nobody.
    """
    head = f"{prefix}/partner/"
    if not topic.startswith(head) or "/" not in topic[len(head):]:
        return None
    origin = topic[len(head):].split("/", 1)[0]
    return _carried_label(message) or Label(None, origin, ())


def _carried_label(item) -> Label | None:
    """The ``label`` a message or item carries, if it names an originator."""
    label = item.get("label") if isinstance(item, dict) else None
    if not (isinstance(label, dict) and label.get("originator")):
        return None
    releasable_to = label.get("releasable_to")
    policy = label.get("policy")
    return Label(policy if isinstance(policy, str) else None, str(label["originator"]),
                 tuple(str(p) for p in releasable_to) if isinstance(releasable_to, list) else ())


def may_release(provenance: Label, partner_id: str, node_id: str) -> bool:
    """Originator control: our own data go wherever our agreements say; a partner's data go to a
    third party only if the originator's label names it, and never back to the originator
    (it has them, and an echo would loop)."""
    if provenance.originator == node_id:
        return True
    return partner_id != provenance.originator and partner_id in provenance.releasable_to


def onward_label(policy: ReleasePolicy, provenance: Label) -> Label:
    """The label of what we release under ``policy``: own data get the agreement's ``releasable_to``;
    a partner's data keep their originator, and may go on only to whom both the originator's
    label and our agreement allow (never wider than the originator's label)."""
    allowed = policy.agreement.releasable_to
    if provenance.originator == policy.node_id:
        return Label(policy.agreement.policy_id, policy.node_id, tuple(allowed))
    onward = tuple(p for p in provenance.releasable_to if p in allowed and p != policy.partner_id)
    return Label(policy.agreement.policy_id, provenance.originator, onward)


def _local(policy: ReleasePolicy, items: list[dict]) -> np.ndarray:
    """(n, 2) east/north of items' lat/lon in the node's frame."""
    if not items:
        return np.zeros((0, 2))
    east, north, _ = policy.frame.to_enu([float(i["lat"]) for i in items], [float(i["lon"]) for i in items])
    return np.column_stack([east, north])


def _coarse_latlon(policy: ReleasePolicy, xy: np.ndarray) -> tuple[list[float], list[float]]:
    east, north = coarsen(xy[:, 0], xy[:, 1], policy.agreement.grid_m)
    lat, lon, _ = policy.frame.to_geodetic(east, north)
    return np.round(lat, 7).tolist(), np.round(lon, 7).tolist()


def release_tracks(snapshot: dict, policy: ReleasePolicy) -> dict:
    """The released form of a track snapshot (interface §3.1) under ``policy`` (always a message,
    possibly with no tracks: "looked, nothing to release")."""
    a = policy.agreement
    tracks = [tr for tr in snapshot.get("tracks", ())
              if tr.get("status") in a.statuses and class_released(tr.get("classification"), a.classes)
              and may_release(provenance_of(tr, policy.node_id), a.partner_id, policy.node_id)]
    xy = _local(policy, tracks)
    keep = releasable_positions(policy, xy)
    tracks = [tr for tr, k in zip(tracks, keep.tolist()) if k]
    xy = xy[keep]
    lat, lon = _coarse_latlon(policy, xy)
    covariances = np.round(inflate_covariance(np.array([tr["covariance"] for tr in tracks], np.float64).reshape(
        -1, 4, 4), a.grid_m), 4).tolist()
    released = []
    for tr, la, lo, covariance in zip(tracks, lat, lon, covariances):
        released.append({
            "track_id": pseudonym(policy.key, str(tr["track_id"])), "status": tr["status"], "lat": la, "lon": lo,
            "vel_east_mps": tr["vel_east_mps"], "vel_north_mps": tr["vel_north_mps"],
            "covariance": covariance, "classification": tr.get("classification") or {},
            "existence": tr.get("existence"), "first_seen": tr.get("first_seen"), "last_update": tr.get("last_update")})
        provenance = provenance_of(tr, policy.node_id)
        if provenance.originator != policy.node_id:  # a partner's track passed on: its own label goes with it
            released[-1]["label"] = onward_label(policy, provenance).to_dict()
    own = Label(None, policy.node_id)
    return {"origin": policy.node_id, "t": snapshot["t"], "label": onward_label(policy, own).to_dict(),
            "tracks": released}


def release_alert(alert: dict, policy: ReleasePolicy) -> dict | None:
    """The released form of an alert (interface §3.2) under ``policy``, or None if it is not released."""
    a = policy.agreement
    named = [alert.get(k) for k in ("jurisdiction", "from_jurisdiction", "to_jurisdiction")]
    provenance = provenance_of(alert, policy.node_id)
    if (alert.get("type") not in a.alert_types or any(j is not None and j not in policy.released_ids for j in named)
            or not class_released(alert.get("classification"), a.classes)
            or not may_release(provenance, a.partner_id, policy.node_id)):
        return None
    xy = _local(policy, [alert])
    if not releasable_positions(policy, xy)[0]:
        return None
    lat, lon = _coarse_latlon(policy, xy)
    out = {k: alert[k] for k in ALERT_FIELDS if k in alert}
    out["alert_id"] = pseudonym(policy.key, f"alert|{alert['alert_id']}", 32)
    out["track_id"] = pseudonym(policy.key, str(alert["track_id"]))
    out["lat"], out["lon"] = lat[0], lon[0]
    out["origin"] = policy.node_id
    out["label"] = onward_label(policy, provenance).to_dict()
    return out


# -- the delay line and the edge -------------------------------------------------------
@dataclass(frozen=True)
class Release:
    topic: str
    payload: bytes
    qos: int


class Gateway:
    """Applies every agreement to each snapshot and alert; holds releases ``delay_s`` of data time.

    The data clock is the newest snapshot ``t`` / alert ``raised_t`` seen: a delayed item
    leaves with the first input at least ``delay_s`` newer than it, so replay and live
    release the same items.  The line holds at most ``max_held`` items per partner (the
    oldest beyond that are dropped and counted: a delay is never a memory leak).
    """

    def __init__(self, policies: tuple[ReleasePolicy, ...], max_held: int = 10_000) -> None:
        self.policies = policies
        self.max_held = max_held
        self.held = {p.partner_id: collections.deque() for p in policies}
        self.dropped = collections.Counter()
        self.clock = -np.inf

    def on_snapshot(self, snapshot: dict) -> list[Release]:
        for p in self.policies:
            message = release_tracks(snapshot, p)
            self._hold(p, float(snapshot["t"]), release_topic(p.prefix, p.partner_id, "tracks"), message, 0)
        return self._advance(float(snapshot["t"]))

    def on_alerts(self, alerts: list[dict]) -> list[Release]:
        newest = -np.inf
        for alert in alerts:
            t = float(alert.get("raised_t", alert["t"]))
            newest = max(newest, t)
            for p in self.policies:
                if (message := release_alert(alert, p)) is not None:
                    self._hold(p, t, release_topic(p.prefix, p.partner_id, "alerts"), message, 1)
        return self._advance(newest)

    def _hold(self, policy: ReleasePolicy, t: float, topic: str, message: dict, qos: int) -> None:
        line = self.held[policy.partner_id]
        if len(line) >= self.max_held:
            line.popleft()
            self.dropped[policy.partner_id] += 1
        line.append((t + policy.agreement.delay_s, Release(topic, _encode(message), qos)))

    def _advance(self, t: float) -> list[Release]:
        self.clock = max(self.clock, t)
        out = []
        for line in self.held.values():
            while line and line[0][0] <= self.clock:
                out.append(line.popleft()[1])
        return out


class ReleaseSink:
    """The gateway as one of the node's sinks (:class:`fusion.web.sinks.Sink`): takes the snapshots
    and alerts the node publishes, hands releases to ``publish(topic, payload, qos)``.

    It fails closed: an item the gateway cannot process is logged, counted in ``failed``
    and not released, and the node's loop goes on.
    """

    #: given only the snapshots the node published (not those it shed): every release has its original
    published_only = True

    def __init__(self, gateway: Gateway, publish: Callable[[str, bytes, int], None]) -> None:
        self.gateway = gateway
        self.publish = publish
        self.failed = 0

    def _apply(self, step: Callable[[], list[Release]], what: str) -> None:
        try:
            releases = step()
        except Exception:  # noqa: BLE001 -- nothing is released for it; the node keeps running
            self.failed += 1
            log.exception("federation: %s not released (%d so far)", what, self.failed)
            return
        for r in releases:
            self.publish(r.topic, r.payload, r.qos)

    def on_snapshot(self, snapshot: dict) -> None:
        self._apply(lambda: self.gateway.on_snapshot(snapshot), "a track snapshot")

    def on_alerts(self, alerts: list[dict]) -> None:
        self._apply(lambda: self.gateway.on_alerts(alerts), "alerts")

    def on_status(self, status: dict) -> None:
        pass

    def on_ack(self, ack) -> None:
        pass

    def close(self) -> None:
        pass


def federation_sinks(site: Site, publish: Callable[[str, bytes, int], None]) -> list[ReleaseSink]:
    """The egress gateway for the live node, if the site has agreements (else nothing leaves for anyone)."""
    policies = compile_policies(site)
    if not policies:
        return []
    log.info("releasing to %s", ", ".join(p.partner_id for p in policies))
    return [ReleaseSink(Gateway(policies), publish)]
