"""The TAK feed against real socket listeners on 127.0.0.1 (TCP, TLS, UDP), every event parsed and checked."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime

import pytest

from fusion.config import CotConfig
from fusion.interop.cot import UNKNOWN_M, CotFeed, alert_event, cot_type, track_event
from tests.broker import make_certificates

_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
_TYPE = re.compile(r"^[abtrcuy](-[A-Za-z0-9]+)+$")  # CoT Event.xsd: atoms a, b, t, ...; dash-separated
_HOW = re.compile(r"^[hm](-[a-z])*$")


def _t(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def check_event(xml: bytes) -> ET.Element:
    """The CoT event schema (MITRE Event.xsd, version 2.0): required attributes, their forms and ranges."""
    event = ET.fromstring(xml)
    assert event.tag == "event"
    assert event.get("version") == "2.0"
    assert event.get("uid")
    assert _TYPE.match(event.get("type")), event.get("type")
    for name in ("time", "start", "stale"):
        assert _TIME.match(event.get(name)), (name, event.get(name))
    assert _t(event.get("start")) <= _t(event.get("stale")) and _t(event.get("time")) <= _t(event.get("stale"))
    assert _HOW.match(event.get("how")), event.get("how")
    point = event.find("point")
    assert point is not None
    lat, lon = float(point.get("lat")), float(point.get("lon"))
    assert -90 <= lat <= 90 and -180 <= lon <= 180
    for name in ("hae", "ce", "le"):
        assert float(point.get(name)) >= (0 if name != "hae" else -1e7), name
    assert event.find("detail") is not None
    return event


class Listener:
    """A TAK-server stand-in: accepts TCP (or TLS) and collects the streamed events."""

    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.tls = tls_context
        self.buffer = b""
        self.times: list[float] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            connection, _ = self.server.accept()
            if self.tls is not None:
                connection = self.tls.wrap_socket(connection, server_side=True)
        except OSError:  # closed, or a client that refused our certificate (ssl.SSLError)
            return
        while data := connection.recv(65536):
            with self.lock:
                self.buffer += data
                self.times.append(time.monotonic())

    def events(self) -> list[bytes]:
        with self.lock:
            text = self.buffer
        return [part + b"</event>" for part in text.split(b"</event>")[:-1]]

    def close(self) -> None:
        self.server.close()


def _snapshot(short_log):
    _, expected = short_log
    snapshot = max(expected.snapshots, key=lambda s: len(s.estimates)).to_dict()
    assert len(snapshot["tracks"]) >= 3
    return snapshot, [a.to_dict() for a in expected.alerts]


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


def test_tcp_feed_sends_alerts_then_tracks_as_valid_cot(demo_site, short_log):
    snapshot, alerts = _snapshot(short_log)
    listener = Listener()
    config = CotConfig(url=f"tcp://127.0.0.1:{listener.port}", max_events_per_s=1000.0,
                       affiliation={"country-b": "s"})
    feed = CotFeed(demo_site, config).start()
    try:
        feed.on_snapshot(snapshot)
        feed.on_alerts(alerts[:5])
        want = 5 + sum(t["status"] != "tentative" for t in snapshot["tracks"])
        assert _wait(lambda: len(listener.events()) >= want)
    finally:
        feed.close()
        listener.close()
    events = [check_event(e) for e in listener.events()]
    alert_events = [e for e in events if e.get("uid").startswith("borderfusion.alert.")]
    track_events = [e for e in events if not e.get("uid").startswith("borderfusion.alert.")]
    assert [e.get("uid") for e in alert_events] == [f"borderfusion.alert.{a['alert_id']}" for a in alerts[:5]]
    assert events[:5] == alert_events  # alerts first
    for event, alert in zip(alert_events, alerts):
        remarks = event.find("detail/remarks").text
        assert alert["type"].replace("_", " ") in remarks and alert["track_id"] in remarks
        assert event.find("detail/link").get("uid") == f"borderfusion.{alert['track_id']}"
        assert event.get("type") == "b-m-p-s-p-i"
    by_uid = {e.get("uid"): e for e in track_events}
    coast = demo_site.config.tracker.coast_after_s
    for track in snapshot["tracks"]:
        event = by_uid[f"borderfusion.{track['track_id']}"]
        point = event.find("point")
        assert abs(float(point.get("lat")) - track["lat"]) < 1e-6 and abs(float(point.get("lon")) - track["lon"]) < 1e-6
        assert float(point.get("ce")) == pytest.approx(track["position_sigma_m"], abs=0.05)
        assert float(point.get("hae")) == UNKNOWN_M
        assert event.get("type") == cot_type(track["classification"], track["jurisdiction"], {"country-b": "s"})
        assert event.get("type").startswith("a-s-" if track["jurisdiction"] == "country-b" else "a-u-")
        stale = _t(event.get("stale"))
        assert stale == pytest.approx(max(snapshot["t"], track["last_update"] + coast) + config.stale_margin_s, abs=2e-3)
        assert float(event.find("detail/track").get("course")) == pytest.approx(track["heading_deg"], abs=0.051)


def test_uid_is_stable_per_track_and_type_follows_class():
    config = CotConfig(url="udp://127.0.0.1:1")
    track = {"track_id": "edge-1-17", "status": "confirmed", "lat": 47.0, "lon": 8.0, "heading_deg": 90.0,
             "speed_mps": 1.0, "position_sigma_m": 5.0, "classification": {"vehicle": 0.7, "person": 0.3},
             "jurisdiction": "country-a", "last_update": 100.0, "sensors": []}
    first = ET.fromstring(track_event(track, 100.0, config, 4.0))
    later = ET.fromstring(track_event(dict(track, lat=47.001, classification={"uav": 0.9}), 101.0, config, 4.0))
    assert first.get("uid") == later.get("uid") == "borderfusion.edge-1-17"
    assert first.get("type") == "a-u-G-E-V" and later.get("type") == "a-u-A-M-F-Q"
    # a coasting track: its event goes stale a margin after now, not in the past
    coasting = ET.fromstring(track_event(dict(track, status="coasting", last_update=50.0), 100.0, config, 4.0))
    assert _t(coasting.get("stale")) == pytest.approx(100.0 + config.stale_margin_s)
    alert = {"alert_id": "ab12", "type": "approach", "t": 100.0, "lat": 47.0, "lon": 8.0, "track_id": "edge-1-17",
             "severity": "high", "jurisdiction": "country-a", "recipients": ["agency-a"], "eta_s": 42.0,
             "confidence": 0.9, "from_jurisdiction": "country-a", "to_jurisdiction": "country-b"}
    check_event(alert_event(alert, config))
    assert "border in 42 s" in ET.fromstring(alert_event(alert, config)).find("detail/remarks").text


def test_rate_limit_holds_a_busy_scene_back(demo_site, short_log):
    snapshot, _ = _snapshot(short_log)
    many = dict(snapshot, tracks=[dict(snapshot["tracks"][0], track_id=f"edge-1-{i}") for i in range(300)])
    listener = Listener()
    feed = CotFeed(demo_site, CotConfig(url=f"tcp://127.0.0.1:{listener.port}", max_events_per_s=20.0,
                                        track_interval_s=60.0)).start()
    try:
        started = time.monotonic()
        feed.on_snapshot(many)
        time.sleep(2.0)
        elapsed = time.monotonic() - started
    finally:
        feed.close()
        listener.close()
    events = listener.events()
    for e in events:
        check_event(e)
    assert 20 <= len(events) <= 20 + 20 * elapsed + 1, len(events)  # a burst of 20, then 20 per second


def test_udp_feed_one_event_per_datagram(demo_site, short_log):
    snapshot, alerts = _snapshot(short_log)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    feed = CotFeed(demo_site, CotConfig(url=f"udp://127.0.0.1:{receiver.getsockname()[1]}",
                                        max_events_per_s=1000.0)).start()
    try:
        feed.on_alerts(alerts[:2])
        feed.on_snapshot(snapshot)
        datagrams = [receiver.recv(65536) for _ in range(2 + 2)]
    finally:
        feed.close()
        receiver.close()
    for datagram in datagrams:
        check_event(datagram)
    assert ET.fromstring(datagrams[0]).get("uid") == f"borderfusion.alert.{alerts[0]['alert_id']}"


def test_udp_multicast_sets_the_hop_limit(demo_site, short_log):
    """Multicast for a field LAN: the group is sent to with the configured TTL (checked on the socket)."""
    feed = CotFeed(demo_site, CotConfig(url="udp://239.2.3.1:6969", multicast_ttl=3))
    sock = feed._connect()
    try:
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 3
    finally:
        sock.close()


def _tls_listener(directory) -> tuple["Listener", str]:
    """A TLS listener on 127.0.0.1 with a server certificate of a throw-away CA; and that CA's file."""
    files = make_certificates(directory)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(files["server.crt"], files["server.key"])
    return Listener(server_context), files["ca.crt"]


def test_tls_feed_verifies_the_server_and_sends(demo_site, short_log, tmp_path):
    snapshot, alerts = _snapshot(short_log)
    listener, ca = _tls_listener(tmp_path)
    config = CotConfig(url=f"tls://127.0.0.1:{listener.port}", max_events_per_s=1000.0, tls_ca=ca)
    feed = CotFeed(demo_site, config).start()
    try:
        feed.on_alerts(alerts[:3])
        assert _wait(lambda: len(listener.events()) >= 3)
    finally:
        feed.close()
        listener.close()
    assert [check_event(e).get("uid") for e in listener.events()[:3]] == \
        [f"borderfusion.alert.{a['alert_id']}" for a in alerts[:3]]


def test_feed_survives_a_missing_server_and_counts_what_it_dropped(demo_site, short_log):
    _, alerts = _snapshot(short_log)
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    feed = CotFeed(demo_site, CotConfig(url=f"tcp://127.0.0.1:{port}", max_events_per_s=1000.0)).start()
    try:
        feed.on_alerts(alerts[:4])
        assert _wait(lambda: feed.dropped == 4, 5)
    finally:
        feed.close()
    assert feed.sent == 0


@pytest.mark.broker
def test_live_node_feeds_tak(broker, live_site, short_log):
    from fusion.config import load_site
    from fusion.mqtt import publish_log
    from tests.broker import PREFIX, Collector, running_node, stop_node, wait_online

    log, expected = short_log
    listener = Listener()
    live_site.write_text(live_site.read_text().replace(
        "[outputs]", f'[outputs.cot]\nurl = "tcp://127.0.0.1:{listener.port}"\nmax_events_per_s = 500.0\n[outputs]'))
    ops = Collector(broker.port, [f"{PREFIX}/status/+"], "ops-cot")
    try:
        with running_node(live_site) as node:
            wait_online(ops, node)
            publish_log(load_site(live_site), log)
            want = {f"borderfusion.alert.{a.alert_id}" for a in expected.alerts}
            assert _wait(lambda: want <= {ET.fromstring(e).get("uid") for e in listener.events()}, 60)
            code, err = stop_node(node)
        assert code == 0, err
        events = [check_event(e) for e in listener.events()]
        assert any(e.get("type").startswith("a-") for e in events), "no track event"
    finally:
        listener.close()
        ops.close()


def test_cot_config_is_checked(tmp_path):
    from fusion.config import ConfigError, load_site
    from tests.broker import write_site

    path = write_site(tmp_path / "site", 1883, outbox=tmp_path / "outbox")
    text = path.read_text()
    for table, message in [('url = "http://127.0.0.1:1"', r"outputs\.cot\.url"),
                           ('url = "tcp://127.0.0.1:1"\ntls_ca = "ca.pem"', r"outputs\.cot\.tls_ca: TLS settings need a tls://"),
                           ('url = "udp://127.0.0.1:1"\naffiliation = { country-a = "x" }', r"outputs\.cot\.affiliation"),
                           ('url = "tcp://127.0.0.1:1"\nmax_events_per_s = 0', r"outputs\.cot\.max_events_per_s")]:
        path.write_text(text.replace("[outputs]", f"[outputs.cot]\n{table}\n[outputs]"))
        with pytest.raises(ConfigError, match=message):
            load_site(path)


def test_tls_feed_refuses_a_server_it_cannot_verify(demo_site, tmp_path):
    listener, ca = _tls_listener(tmp_path)
    try:  # no tls_ca: the system's CA store does not know this throw-away CA
        feed = CotFeed(demo_site, CotConfig(url=f"tls://127.0.0.1:{listener.port}"))
        assert feed._connect() is None
    finally:
        listener.close()
