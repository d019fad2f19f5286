"""An independent check of released messages against the agreement: the leak detector.

Written apart from :mod:`fusion.federation.gateway` on purpose (shapely predicates on
the jurisdiction polygons, its own HMAC, its own reading of the rules), so that a rule
the gateway forgets or breaks shows up here as a violation instead of being checked
by the same code that made it.  Every released message is held against the original
item it came from (found by recomputing the pseudonyms of the node's own ids).

Each violation is a sentence naming the message, the item and the rule.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
from shapely.geometry import Point

from fusion.federation.agreement import PartnerAgreement

if TYPE_CHECKING:
    from fusion.config import Site

__all__ = ["Auditor"]

_TRACK_KEYS = {"track_id", "status", "lat", "lon", "vel_east_mps", "vel_north_mps", "covariance", "classification",
               "existence", "first_seen", "last_update"}
_ALERT_KEYS = {"alert_id", "type", "t", "time", "raised_t", "node_id", "track_id", "lat", "lon", "from_jurisdiction",
               "to_jurisdiction", "jurisdiction", "severity", "confidence", "classification", "speed_mps",
               "heading_deg", "eta_s", "source", "origin", "label"}
_TOLERANCE_M = 0.1  # lat/lon are sent to 7 decimals (~1 cm); the frame's round trip adds ~1 cm at 10 km


def _hex_hmac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@dataclass
class Auditor:
    """Checks released messages of one agreement; ``violations`` collects what it found."""

    site: Site
    agreement: PartnerAgreement
    key: bytes

    def __post_init__(self) -> None:
        self.violations: list[str] = []
        self.checked = 0
        by_id = {j.id: j for j in self.site.jurisdictions}
        listed = set(self.agreement.jurisdictions)
        self._released = [by_id[j].polygon for j in self.agreement.jurisdictions]
        self._zones = [j.polygon for j in self.site.jurisdictions if j.kind == "zone" and j.id not in listed]
        self._sides = [by_id[j].polygon for j in self.agreement.border]
        self._secrets = [s.spec.id for s in self.site.sensors]
        self._own_id = re.compile(re.escape(f'"{self.site.node_id}-') + r"[0-9]")

    # -- public -----------------------------------------------------------------------
    def tracks(self, topic: str, payload: bytes, snapshot: dict) -> None:
        """A released track message against the snapshot (interface §3.1) it was made from."""
        where = f"{topic} t={snapshot.get('t')}"
        message = self._common(topic, payload, "tracks", where)
        if message is None:
            return
        if message.get("t") != snapshot["t"]:
            self._fail(where, f"t {message.get('t')} is not the snapshot's {snapshot['t']}")
        originals = {_hex_hmac(self.key, str(tr["track_id"]))[:20]: tr for tr in snapshot["tracks"]}
        for tr in message.get("tracks", []):
            self.checked += 1
            item = f"{where} track {tr.get('track_id')}"
            if set(tr) != _TRACK_KEYS:
                self._fail(item, f"fields {sorted(set(tr) ^ _TRACK_KEYS)} differ from the contract")
            original = originals.get(tr.get("track_id"))
            if original is None:
                self._fail(item, "is not the pseudonym of any track of the snapshot")
                continue
            if original["status"] not in self.agreement.statuses:
                self._fail(item, f"status {original['status']!r} is not released")
            self._where_and_what(item, original, tr)
            grid = self.agreement.grid_m
            released, exact = tr.get("covariance"), original["covariance"]
            for r in range(4):
                for c in range(4):
                    want = exact[r][c] + (grid * grid / 12.0 if r == c and r < 2 else 0.0)
                    if abs(released[r][c] - want) > 2e-3:
                        self._fail(item, f"covariance[{r}][{c}] {released[r][c]} is not the original "
                                         f"{exact[r][c]} + Δ²/12 on the position diagonal ({want})")

    def alert(self, topic: str, payload: bytes, originals: list[dict]) -> None:
        """A released alert against the node's alerts (interface §3.2) it may have come from."""
        where = f"{topic}"
        message = self._common(topic, payload, "alerts", where)
        if message is None:
            return
        self.checked += 1
        by_pseudonym = {_hex_hmac(self.key, f"alert|{a['alert_id']}")[:32]: a for a in originals}
        original = by_pseudonym.get(message.get("alert_id"))
        item = f"{where} alert {message.get('alert_id')}"
        if original is None:
            self._fail(item, "is not the pseudonym of any alert of the node")
            return
        if extra := set(message) - _ALERT_KEYS:
            self._fail(item, f"fields {sorted(extra)} are not released")
        if original["type"] not in self.agreement.alert_types:
            self._fail(item, f"type {original['type']!r} is not released")
        for field in ("jurisdiction", "from_jurisdiction", "to_jurisdiction"):
            if original.get(field) is not None and original[field] not in self.agreement.jurisdictions:
                self._fail(item, f"{field} {original[field]!r} is not released")
        if message.get("track_id") != _hex_hmac(self.key, original["track_id"])[:20]:
            self._fail(item, "track_id is not the track's pseudonym")
        self._where_and_what(item, original, message)

    # -- rules ------------------------------------------------------------------------
    def _common(self, topic: str, payload: bytes, kind: str, where: str) -> dict | None:
        prefix = self.site.config.mqtt.prefix
        if topic != f"{prefix}/release/{self.agreement.partner_id}/{kind}":
            self._fail(where, f"topic is not {prefix}/release/{self.agreement.partner_id}/{kind}")
        text = payload.decode()
        for secret in self._secrets:
            if f'"{secret}"' in text:
                self._fail(where, f"names sensor {secret!r}")
        for word in ('"sensors"', '"recipients"', '"east_m"', '"north_m"'):
            if word in text:
                self._fail(where, f"carries {word}")
        if self._own_id.search(text):
            self._fail(where, "carries one of the node's own track ids")
        try:
            message = msgspec.json.decode(payload)
        except msgspec.DecodeError:
            self._fail(where, "is not JSON")
            return None
        want = {"policy": self.agreement.policy_id, "originator": self.site.node_id,
                "releasable_to": list(self.agreement.releasable_to)}
        if message.get("label") != want:
            self._fail(where, f"label {message.get('label')} is not {want}")
        if message.get("origin") != self.site.node_id:
            self._fail(where, f"origin {message.get('origin')!r} is not {self.site.node_id!r}")
        return message

    def _where_and_what(self, item: str, original: dict, released: dict) -> None:
        """Class, place and coarsening of one released item against its original."""
        classification = original.get("classification") or {}
        values = sorted(classification.values(), reverse=True)
        top = {k for k, v in classification.items() if values and v >= values[0] - 1e-9}
        if not top or len(top) == 5:
            top = {"unknown"}
        if not top <= set(self.agreement.classes):
            self._fail(item, f"most probable class {sorted(top)} is not released")
        east, north, _ = self.site.frame.to_enu(original["lat"], original["lon"])
        here = Point(float(east), float(north))
        if not any(p.covers(here) for p in self._released):
            self._fail(item, "lies in no released jurisdiction")
        if any(z.covers(here) for z in self._zones):
            self._fail(item, "lies in a zone not released")
        distance = max(side.distance(here) for side in self._sides)
        if distance > self.agreement.max_border_distance_m + 1e-6:
            self._fail(item, f"{distance:.0f} m from the border, beyond {self.agreement.max_border_distance_m:.0f} m")
        e, n, _ = self.site.frame.to_enu(released["lat"], released["lon"])
        grid = self.agreement.grid_m
        for axis, value in (("east", float(e)), ("north", float(n))):
            if abs(value - grid * round(value / grid)) > _TOLERANCE_M:
                self._fail(item, f"{axis} {value:.2f} m is not on the {grid:g} m grid")
        if math.hypot(float(e) - float(east), float(n) - float(north)) > grid / math.sqrt(2) + _TOLERANCE_M:
            self._fail(item, "released position is farther from the estimate than the grid allows")

    def _fail(self, where: str, what: str) -> None:
        self.violations.append(f"{where}: {what}")
