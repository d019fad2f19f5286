"""Alerts (interface §3.2): the record, its deterministic id and its recipients."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

from geo.jurisdictions import Jurisdiction

__all__ = ["Alert", "alert_id", "recipients_of", "iso_time", "SEVERITY_ORDER"]

SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2}


def iso_time(t: float) -> str:
    """UNIX seconds → '2026-11-18T10:13:22.100Z'."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_id(node_id: str, track_id: str, kind: str, jurisdiction: str, t: float, extra: str = "") -> str:
    """Same decision, same id: a hash of what the alert is about, never of wall time."""
    key = f"{node_id}|{track_id}|{kind}|{jurisdiction}|{extra}|{t:.3f}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def recipients_of(jurisdictions: list[Jurisdiction]) -> list[str]:
    """Responsible agencies of the jurisdictions involved, then those they share with; nobody else."""
    out: dict[str, None] = {}
    for j in jurisdictions:
        for agency in j.recipients:
            out.setdefault(agency)
    return list(out)


@dataclass(frozen=True)
class Alert:
    alert_id: str
    type: str
    t: float
    raised_t: float
    node_id: str
    track_id: str
    lat: float
    lon: float
    jurisdiction: str
    recipients: tuple[str, ...]
    severity: str
    confidence: float
    classification: dict[str, float]
    speed_mps: float
    heading_deg: float
    from_jurisdiction: str | None = None
    to_jurisdiction: str | None = None
    eta_s: float | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {
            "alert_id": self.alert_id, "type": self.type, "t": round(float(self.t), 3), "time": iso_time(self.t),
            "raised_t": round(float(self.raised_t), 3), "node_id": self.node_id, "track_id": self.track_id,
            "lat": round(float(self.lat), 7), "lon": round(float(self.lon), 7),
            "from_jurisdiction": self.from_jurisdiction, "to_jurisdiction": self.to_jurisdiction,
            "jurisdiction": self.jurisdiction, "recipients": list(self.recipients), "severity": self.severity,
            "confidence": round(float(self.confidence), 4), "classification": self.classification,
            "speed_mps": round(float(self.speed_mps), 3), "heading_deg": round(float(self.heading_deg), 2),
        }
        if self.eta_s is not None:
            out["eta_s"] = round(float(self.eta_s), 2)
        out.update(self.extra)
        return out


def heading_deg(ve: float, vn: float) -> float:
    return math.degrees(math.atan2(ve, vn)) % 360.0
