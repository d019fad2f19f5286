"""The TAK feed (``[outputs.cot]``): confirmed tracks and alerts as Cursor-on-Target events.

CoT is the XML event ATAK, WinTAK and TAK Server exchange (MITRE's CoT Event schema,
version 2.0)::

    <event version="2.0" uid="…" type="a-u-G-U-C-I" time="…" start="…" stale="…" how="m-f">
      <point lat="…" lon="…" hae="…" ce="…" le="…"/>
      <detail>…</detail>
    </event>

* **uid** is stable per track (``borderfusion.<track_id>``), so a TAK map moves one
  symbol instead of drawing a new one each update; an alert's is ``borderfusion.alert.<alert_id>``.
* **type** is ``a-<affiliation>-<dimension>[-<function>]``: the affiliation comes from
  the jurisdiction the track is in (``[outputs.cot] affiliation``, default ``u``
  unknown), the rest from its most likely class: person ``G-U-C-I`` (ground, unit,
  infantry), vehicle ``G-E-V`` (ground equipment, vehicle), uav ``A-M-F-Q`` (air,
  military, fixed wing, drone), animal and unknown ``G`` (ground).  Alerts are
  ``b-m-p-s-p-i`` points of interest with remarks and a link to the track.
* **stale**: a TAK client drops an event at its stale time.  A track's event lasts
  until the tracker would call it coasting (``last_update + tracker.coast_after_s``)
  plus ``stale_margin_s``, so a track the node stops seeing fades from TAK maps
  soon after it does here; a coasting track's lasts ``stale_margin_s`` from now.
* **how** ``m-f``: machine, fused.  **ce** is the track's 1-σ position error (m);
  altitude is not estimated, so hae and le carry CoT's "unknown" 9999999.0.

Sending runs in its own thread behind bounded hand-over slots (the newest snapshot,
a bounded deque of alerts), paced by a token bucket of ``max_events_per_s``: alerts
first, then the tracks whose last event is oldest, each at most every
``track_interval_s``; what does not fit waits for the next round (a field radio
link is never flooded).  TCP and TLS reconnect after a failure; events produced
while disconnected are counted as dropped.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import math
import socket
import ssl
import threading
import time
from datetime import datetime, timezone
from xml.sax.saxutils import escape, quoteattr

from fusion.config import ConfigError, CotConfig, Site

__all__ = ["CotFeed", "track_event", "alert_event", "cot_type", "cot_time", "UNKNOWN_M"]

log = logging.getLogger(__name__)
#: CoT's value for an unknown height or error
UNKNOWN_M = 9999999.0
_CLASS_TYPE = {"person": "G-U-C-I", "vehicle": "G-E-V", "uav": "A-M-F-Q", "animal": "G", "unknown": "G"}
_SEVERITY_ARGB = {"high": -65536, "medium": -23296, "low": -16776961}  # red, orange, blue
_RECONNECT_S = 5.0


def cot_time(t: float) -> str:
    """UNIX seconds → CoT's xs:dateTime in UTC, e.g. ``2026-11-18T10:13:22.100Z``."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def cot_type(classification: dict | None, jurisdiction: str | None, affiliation: dict[str, str]) -> str:
    """The CoT type of a track: affiliation from its jurisdiction, dimension/function from its likeliest class."""
    best = max(classification, key=classification.get) if classification else "unknown"
    return f"a-{affiliation.get(jurisdiction or '', 'u')}-{_CLASS_TYPE.get(best, 'G')}"


def _event(uid: str, kind: str, t: float, stale: float, lat: float, lon: float, ce: float, detail: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<event version="2.0" uid={quoteattr(uid)} type={quoteattr(kind)} time="{cot_time(t)}" '
            f'start="{cot_time(t)}" stale="{cot_time(stale)}" how="m-f">'
            f'<point lat="{lat:.7f}" lon="{lon:.7f}" hae="{UNKNOWN_M:.1f}" ce="{ce:.1f}" le="{UNKNOWN_M:.1f}"/>'
            f'<detail>{detail}</detail></event>').encode()


def track_event(track: dict, t: float, config: CotConfig, coast_after_s: float) -> bytes:
    """One interface §3.1 track at data time ``t`` as a CoT event."""
    uid = f"borderfusion.{track['track_id']}"
    stale = max(t, track.get("last_update", t) + coast_after_s) + config.stale_margin_s
    classes = track.get("classification") or {}
    best = max(classes, key=classes.get) if classes else "unknown"
    remarks = (f"{best} {classes.get(best, 0.0):.0%}, {track['status']}, in {track.get('jurisdiction') or 'no jurisdiction'}"
               f", sensors {', '.join(track.get('sensors', [])) or 'none'}")
    sigma = track.get("position_sigma_m")
    detail = (f'<track course="{track["heading_deg"]:.1f}" speed="{track["speed_mps"]:.2f}"/>'
              f'<contact callsign={quoteattr(track["track_id"])}/>'
              f'<remarks>{escape(remarks)}</remarks>')
    return _event(uid, cot_type(classes, track.get("jurisdiction"), config.affiliation), t, stale,
                  track["lat"], track["lon"], sigma if sigma is not None and math.isfinite(sigma) else UNKNOWN_M, detail)


def alert_event(alert: dict, config: CotConfig) -> bytes:
    """One interface §3.2 alert as a CoT point of interest with remarks, linked to its track."""
    where = (f"{alert['from_jurisdiction']} → {alert['to_jurisdiction']}"
             if alert.get("from_jurisdiction") and alert.get("to_jurisdiction") else alert.get("jurisdiction", ""))
    remarks = (f"{alert['type'].replace('_', ' ')} ({alert['severity']}): track {alert['track_id']}, {where}, "
               f"at {alert.get('time', cot_time(alert['t']))}, confidence {alert.get('confidence', 0):.2f}; "
               f"for {', '.join(alert.get('recipients', []))}")
    if alert.get("eta_s") is not None:
        remarks += f"; border in {alert['eta_s']:.0f} s"
    callsign = f"{alert['type']} {alert['track_id']}"
    detail = (f'<contact callsign={quoteattr(callsign)}/>'
              f'<link uid={quoteattr("borderfusion." + alert["track_id"])} relation="p-p" type="a-u-G"/>'
              f'<color argb="{_SEVERITY_ARGB.get(alert["severity"], -1)}"/>'
              f'<remarks>{escape(remarks)}</remarks>')
    return _event(f"borderfusion.alert.{alert['alert_id']}", "b-m-p-s-p-i", alert["t"],
                  alert["t"] + config.alert_stale_s, alert["lat"], alert["lon"], UNKNOWN_M, detail)


class _TokenBucket:
    """At most ``rate`` events per second on average, bursts of at most ``rate`` (at least 1)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float:
        """Take one token; 0 if taken, else the seconds to wait before one is there."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class CotFeed:
    """The sending side: a sink for the live loop (see :mod:`fusion.web.sinks`), a thread of its own."""

    def __init__(self, site: Site, config: CotConfig) -> None:
        self.site = site
        self.config = config
        self.coast_after_s = site.config.tracker.coast_after_s
        scheme, rest = config.url.split("://", 1)
        host, port = rest.rsplit(":", 1)
        self.scheme, self.host, self.port = scheme, host.strip("[]"), int(port)
        self._ssl = self._ssl_context() if scheme == "tls" else None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._snapshot: dict | None = None
        self._alerts: collections.deque = collections.deque(maxlen=10_000)
        self._last_sent: dict[str, float] = {}  # track_id → monotonic time of its last event
        self._socket: socket.socket | None = None
        self._next_connect = 0.0
        self.sent = 0
        self.dropped = 0  # events made while the link was down
        self._thread = threading.Thread(target=self._run, name="cot", daemon=True)

    def _ssl_context(self) -> ssl.SSLContext:
        cfg = self.config
        try:
            context = ssl.create_default_context(cafile=str(self.site.resolve(cfg.tls_ca)) if cfg.tls_ca else None)
            if cfg.tls_cert:
                context.load_cert_chain(self.site.resolve(cfg.tls_cert), self.site.resolve(cfg.tls_key))
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"{self.site.path}: outputs.cot: cannot load the TLS files: {error}") from None
        return context

    # -- sink (any thread) ------------------------------------------------------------------
    def start(self) -> CotFeed:
        self._thread.start()
        return self

    def on_snapshot(self, snapshot: dict) -> None:
        with self._lock:
            self._snapshot = snapshot
        self._wake.set()

    def on_alerts(self, alerts: list[dict]) -> None:
        with self._lock:
            self._alerts.extend(alerts)
        self._wake.set()

    def on_status(self, status: dict) -> None:
        pass

    def on_ack(self, ack) -> None:
        pass

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)
        if self._socket is not None:
            self._socket.close()

    # -- the sender's thread ------------------------------------------------------------------
    def _run(self) -> None:
        bucket = _TokenBucket(self.config.max_events_per_s)
        while not self._stop.is_set():
            event = self._next_event()
            if event is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            wait = bucket.take()
            while wait > 0 and not self._stop.is_set():
                self._stop.wait(wait)
                wait = bucket.take()
            self._send(event)

    def _next_event(self) -> bytes | None:
        """The most urgent event: the oldest alert waiting, else the track whose last event is oldest."""
        with self._lock:
            if self._alerts:
                return alert_event(self._alerts.popleft(), self.config)
            snapshot = self._snapshot
        if snapshot is None:
            return None
        now = time.monotonic()
        due = [(self._last_sent.get(t["track_id"], -math.inf), i) for i, t in enumerate(snapshot["tracks"])
               if t["status"] != "tentative"
               and now - self._last_sent.get(t["track_id"], -math.inf) >= self.config.track_interval_s]
        if not due:
            return None
        track = snapshot["tracks"][min(due)[1]]
        self._last_sent[track["track_id"]] = now
        if len(self._last_sent) > 4 * len(snapshot["tracks"]) + 1000:  # forget tracks long gone
            alive = {t["track_id"] for t in snapshot["tracks"]}
            self._last_sent = {k: v for k, v in self._last_sent.items() if k in alive}
        return track_event(track, snapshot["t"], self.config, self.coast_after_s)

    def _connect(self) -> socket.socket | None:
        if time.monotonic() < self._next_connect:
            return None
        try:
            if self.scheme == "udp":
                family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_DGRAM)
                if ipaddress.ip_address(socket.getaddrinfo(self.host, None, family)[0][4][0]).is_multicast:
                    level = socket.IPPROTO_IPV6 if family == socket.AF_INET6 else socket.IPPROTO_IP
                    option = socket.IPV6_MULTICAST_HOPS if family == socket.AF_INET6 else socket.IP_MULTICAST_TTL
                    sock.setsockopt(level, option, self.config.multicast_ttl)
                sock.connect((self.host, self.port))
            else:
                sock = socket.create_connection((self.host, self.port), timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._ssl is not None:
                    sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
            log.info("TAK feed connected to %s", self.config.url)
            return sock
        except OSError as error:
            log.warning("TAK feed: cannot reach %s (%s); retrying in %.0f s", self.config.url, error, _RECONNECT_S)
            self._next_connect = time.monotonic() + _RECONNECT_S
            return None

    def _send(self, event: bytes) -> None:
        if self._socket is None:
            self._socket = self._connect()
        if self._socket is None:
            self.dropped += 1
            return
        try:
            if self.scheme == "udp":
                self._socket.send(event)
            else:
                self._socket.sendall(event)
            self.sent += 1
        except OSError as error:
            log.warning("TAK feed: sending to %s failed (%s); reconnecting", self.config.url, error)
            self._socket.close()
            self._socket = None
            self._next_connect = time.monotonic() + _RECONNECT_S
            self.dropped += 1
