"""The live node as an object in this process, against a real Mosquitto.

Running :class:`fusion.mqtt._Live` in a thread of the test lets a test reach inside
it: inject a failure or an alert through a stand-in around its real pipeline, force
the timing of a race, count what its queues hold.  The broker is always a real one.
"""

from __future__ import annotations

import contextlib
import math
import queue
import sqlite3
import threading
import time

import paho.mqtt.client as mqtt
import pytest

import fusion.mqtt
from fusion.config import load_site
from fusion.mqtt import _Inbox, _Live, connect
from geo.alerts import Alert
from tests.broker import (
    PREFIX,
    Broker,
    Collector,
    Link,
    free_port,
    persistent_collector,
    write_passwords,
    write_site,
)
from tests.conftest import ROOT

pytestmark = pytest.mark.broker
STATUS = f"{PREFIX}/status/edge-1"
NODE_THREAD = "node-main"


@contextlib.contextmanager
def node_in_thread(live: _Live):
    """``live.run()`` on a thread named :data:`NODE_THREAD`; what it raised ends up in the list."""
    errors: list[BaseException] = []

    def main() -> None:
        try:
            live.run()
        except BaseException as error:  # the test inspects it
            errors.append(error)

    thread = threading.Thread(target=main, name=NODE_THREAD, daemon=True)
    thread.start()
    try:
        yield thread, errors
    finally:
        live.stop.set()
        thread.join(30)


def wait_online(ops: Collector) -> None:
    assert ops.wait_for(lambda: any(s.get("state") == "online" for s in ops.of(STATUS)), 60), ops.messages


def retained(port: int, topic: str) -> dict:
    """What a newcomer subscribing to ``topic`` gets first: the retained message."""
    newcomer = Collector(port, [topic], f"newcomer-{time.monotonic_ns()}")
    try:
        assert newcomer.wait_for(lambda: newcomer.of(topic), 10), f"nothing retained on {topic}"
        return newcomer.of(topic)[0]
    finally:
        newcomer.close()


def publish_raw(port: int, payloads: list[bytes], topic: str = f"{PREFIX}/raw/radar/radar-n1") -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"feeder-{time.monotonic_ns()}", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        infos = [c.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        c.disconnect()
        c.loop_stop()


def test_a_crash_in_the_loop_marks_the_node_offline_before_it_exits(broker, live_site):
    """An exception out of the pipeline ends the loop; the broker must not go on showing the node online."""
    live = _Live(load_site(live_site))

    def feed(t_rx, topic, payload):
        raise RuntimeError("injected failure in the pipeline")

    live.pipeline.feed = feed
    ops = Collector(broker.port, [STATUS], "ops-crash")
    try:
        with node_in_thread(live) as (thread, errors):
            wait_online(ops)
            publish_raw(broker.port, [b'{"sensor_id": "radar-n1"}'])
            thread.join(30)
            assert not thread.is_alive()
        assert len(errors) == 1 and "injected failure" in str(errors[0])  # re-raised: the process exits non-zero
        status = retained(broker.port, STATUS)
        assert status["state"] == "offline", status
        assert "RuntimeError: injected failure in the pipeline" in status["error"]
    finally:
        ops.close()


class InjectingPipeline:
    """The node's real pipeline, plus alerts handed in by the test (out at the next tick), and a
    record of the threads that asked for the status."""

    def __init__(self, real) -> None:
        self.real = real
        self.alerts: queue.Queue[Alert] = queue.Queue()
        self.status_threads: set[str] = set()

    def next_release(self) -> float:
        return -math.inf if not self.alerts.empty() else self.real.next_release()

    def tick(self, now: float):
        out = self.real.tick(now)
        while not self.alerts.empty():
            out.alerts.append(self.alerts.get_nowait())
        return out

    def status(self, t: float) -> dict:
        self.status_threads.add(threading.current_thread().name)
        return self.real.status(t)

    def __getattr__(self, name):
        return getattr(self.real, name)


def an_alert(alert_id: str, recipients: tuple[str, ...]) -> Alert:
    return Alert(alert_id=alert_id, type="zone_entry", t=1795000000.0, raised_t=1795000000.0, node_id="edge-1",
                 track_id="edge-1-1", lat=47.0, lon=8.0, jurisdiction="sector-east", recipients=recipients,
                 severity="medium", confidence=0.9, classification={"person": 1.0}, speed_mps=1.0, heading_deg=0.0)


def outbox_topics(path) -> list[str]:
    """The topics of the rows in a node's outbox, read through a connection of the test's own."""
    db = sqlite3.connect(path)
    try:
        return [topic for (topic,) in db.execute("SELECT topic FROM outbox ORDER BY id")]
    finally:
        db.close()


def test_a_refused_alert_stays_in_the_outbox_even_when_its_puback_wins_the_race_and_goes_after_reconnect(
        tmp_path, monkeypatch):
    """The broker's ACL refuses the node's alerts for the joint centre (PUBACK 0x87, MQTT v5).

    The race is forced: after each alert publish the node's main thread waits until the
    PUBACK has been handled on paho's thread, before it can note the alert's mid (as if
    descheduled at that moment).  The refused copy must stay in the outbox; the accepted
    copy must go.  Then the broker restarts with the shipped ACL, which lets the node
    write every agency's alerts: after the reconnect the node sends the kept row again,
    the joint centre gets it, and the row goes.  All of the connect work (status, outbox
    reads) ran on the node's main thread, never on paho's.
    """
    passwd = write_passwords(tmp_path / "passwd", {"pipeline": "pipe-secret"})
    restrictive = tmp_path / "restrictive.acl"
    restrictive.write_text("user pipeline\ntopic read borderfusion/v1/raw/#\ntopic write borderfusion/v1/tracks\n"
                           "topic write borderfusion/v1/rejected\ntopic readwrite borderfusion/v1/status/#\n"
                           "topic write borderfusion/v1/alerts/agency-a\n")
    node_port = free_port()

    def extra(acl) -> str:  # observers on the anonymous listener; the node on the one with passwords and the ACL
        return (f"allow_anonymous true\nlistener {node_port} 127.0.0.1\npassword_file {passwd}\n"
                f"acl_file {acl}\nallow_anonymous false\n")

    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", extra=extra(restrictive), per_listener=True).start()
    (tmp_path / "pw").write_text("pipe-secret\n")
    (tmp_path / "pw").chmod(0o600)
    site = load_site(write_site(tmp_path / "site", node_port, outbox=tmp_path / "outbox",
                                mqtt_extra=f'username = "pipeline"\npassword_file = "{tmp_path / "pw"}"'))
    real_connect = fusion.mqtt.connect

    def connect_with_slow_alert_publish(*args, **kwargs):
        client = real_connect(*args, **kwargs)
        paho_publish = client.publish

        def publish(topic, payload=None, qos=0, retain=False, properties=None):
            info = paho_publish(topic, payload, qos=qos, retain=retain, properties=properties)
            if "/alerts/" in topic and client.is_connected():
                info.wait_for_publish(5)  # the PUBACK is handled before the caller sees the mid
            return info

        client.publish = publish
        return client

    monkeypatch.setattr(fusion.mqtt, "connect", connect_with_slow_alert_publish)
    live = _Live(site)
    outbox = tmp_path / "outbox" / "edge-1.sqlite"
    live.pipeline = injecting = InjectingPipeline(live.pipeline)
    pending_threads: set[str] = set()
    outbox_pending = live.outbox.pending
    live.outbox.pending = lambda: pending_threads.add(threading.current_thread().name) or outbox_pending()
    ops = Collector(broker.port, [STATUS], "ops-race")
    centre = persistent_collector(broker.port, [f"{PREFIX}/alerts/joint-centre"], "race-joint-centre")
    agency_a = Collector(broker.port, [f"{PREFIX}/alerts/agency-a"], "race-agency-a")
    try:
        with node_in_thread(live) as (thread, errors):
            wait_online(ops)
            injecting.alerts.put(an_alert("refused-then-resent", ("agency-a", "joint-centre")))
            assert agency_a.wait_for(lambda: agency_a.of(f"{PREFIX}/alerts/agency-a"), 20)
            assert ops.wait_for(lambda: outbox_topics(outbox) == [f"{PREFIX}/alerts/joint-centre"], 10), \
                outbox_topics(outbox)
            time.sleep(1.0)  # both PUBACKs are in; the refused row must still be there
            assert outbox_topics(outbox) == [f"{PREFIX}/alerts/joint-centre"]
            assert not centre.of(f"{PREFIX}/alerts/joint-centre")
            broker.stop()
            broker.extra = extra(ROOT / "configs" / "mosquitto" / "borderfusion.acl")
            broker.start()  # the node reconnects by itself (1-10 s)
            assert centre.wait_for(lambda: centre.of(f"{PREFIX}/alerts/joint-centre"), 60), "never re-sent"
            assert ops.wait_for(lambda: outbox_topics(outbox) == [], 10), outbox_topics(outbox)
            assert thread.is_alive() and not errors
        assert not errors, errors
        assert [a["alert_id"] for a in centre.of(f"{PREFIX}/alerts/joint-centre")] == ["refused-then-resent"]
        assert injecting.status_threads == {NODE_THREAD}
        assert pending_threads == {NODE_THREAD}
    finally:
        for c in (ops, centre, agency_a):
            c.close()
        broker.stop()


def test_the_input_queue_is_bounded_in_bytes_and_what_does_not_fit_is_counted(tmp_path, broker):
    """1 MB-scale payloads into a queue nobody empties: it holds at most ``queue_bytes``, the rest is shed."""
    bound = 4 << 20
    size = 500_000
    n = 40
    site = load_site(write_site(tmp_path / "site", broker.port, outbox=tmp_path / "outbox",
                                mqtt_extra=f"queue_bytes = {bound}"))
    cfg = site.config.mqtt
    inbox = _Inbox(cfg.queue_size, cfg.queue_bytes)
    subscribed = threading.Event()
    client = connect(site, "inbox-bytes", on_message=inbox.on_message,
                     on_connect=lambda c: c.subscribe(f"{PREFIX}/raw/+/+", qos=1),
                     on_subscribe=lambda *a: subscribed.set())
    try:
        assert subscribed.wait(10)
        peak = 0
        publish_raw(broker.port, [bytes([65 + k % 26]) * size for k in range(n)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and inbox.qsize() + inbox.dropped < n:
            peak = max(peak, inbox.queued_bytes)
            time.sleep(0.01)
        held = inbox.qsize()
        assert held + inbox.dropped == n  # every message held or counted
        assert max(peak, inbox.queued_bytes) <= bound
        assert held == bound // size and inbox.dropped == n - held
        assert inbox.queued_bytes == held * size
        for _ in range(held):
            inbox.get_nowait()
        assert inbox.queued_bytes == 0
    finally:
        client.disconnect()
        client.loop_stop()


def test_rejections_waiting_for_a_stalled_bulk_link_are_bounded_and_counted(tmp_path, broker):
    """The link to the broker stops carrying the node's traffic; input still arrives.

    Each bad input makes a rejection for the bulk connection, whose PUBACK never comes:
    paho would queue them all; at most ``queue_size`` may wait, the rest are shed.
    """
    queue_size = 20
    n = 100
    link = Link(broker.port)
    site = load_site(write_site(tmp_path / "site", link.port, outbox=tmp_path / "outbox",
                                mqtt_extra=f"queue_size = {queue_size}"))
    live = _Live(site)
    ops = Collector(broker.port, [STATUS], "ops-bulk")
    try:
        with node_in_thread(live) as (thread, errors):
            wait_online(ops)
            link.stall_upstream()
            publish_raw(broker.port, [b"not json %d" % k for k in range(n)])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and live.pipeline.counters["received"] + live.inbox.dropped < n:
                time.sleep(0.05)
            time.sleep(0.5)
            rejected = live.pipeline.counters["rejected"]  # the input queue (also queue_size) may shed some
            assert rejected + live.inbox.dropped == n and rejected > queue_size
            assert live.shed_outputs == rejected - queue_size
            assert not errors
    finally:
        link.close()
        ops.close()
