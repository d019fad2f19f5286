"""The shipped per-agency ACL, enforced by a real Mosquitto with password authentication."""

from __future__ import annotations

import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from tests.broker import Broker
from tests.conftest import ROOT

pytestmark = pytest.mark.broker
PREFIX = "borderfusion/v1"
USERS = {"pipeline": "pipe-secret", "agency-a": "a-secret", "agency-b": "b-secret", "radar-n1": "sensor-secret"}


@pytest.fixture
def acl_broker(tmp_path):
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        flags = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", *flags, "-b", str(passwd), user, password], check=True)
    acl = (ROOT / "configs" / "mosquitto" / "borderfusion.acl")
    broker = Broker(tmp_path, extra=f"allow_anonymous false\npassword_file {passwd}\nacl_file {acl}\n").start()
    yield broker
    broker.stop()


def client(port, user, received=None, subscribe=()):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"acl-{user}", protocol=mqtt.MQTTv5)
    c.username_pw_set(user, USERS[user])
    done = threading.Event()
    if received is not None:
        c.on_message = lambda cl, u, m: received.append((m.topic, m.payload))
    c.on_connect = lambda cl, u, f, rc, p: [cl.subscribe(t, qos=1) for t in subscribe] or done.set()
    c.on_subscribe = lambda *a: done.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert done.wait(10)
    return c


def test_agency_reads_only_its_own_alerts_and_sensors_cannot_publish_alerts(acl_broker):
    port = acl_broker.port
    got_a, got_b = [], []
    a = client(port, "agency-a", got_a, [f"{PREFIX}/alerts/agency-a", f"{PREFIX}/alerts/agency-b", f"{PREFIX}/alerts/#"])
    b = client(port, "agency-b", got_b, [f"{PREFIX}/alerts/agency-b"])
    pipeline = client(port, "pipeline")
    sensor = client(port, "radar-n1")
    pipeline.publish(f"{PREFIX}/alerts/agency-a", b'{"alert_id": "for-a"}', qos=1).wait_for_publish(5)
    pipeline.publish(f"{PREFIX}/alerts/agency-b", b'{"alert_id": "for-b"}', qos=1).wait_for_publish(5)
    sensor.publish(f"{PREFIX}/alerts/agency-a", b'{"alert_id": "forged"}', qos=1).wait_for_publish(5)
    sensor.publish(f"{PREFIX}/raw/radar/radar-n1", b"{}", qos=1).wait_for_publish(5)
    time.sleep(1.5)
    # its own alert (once per matching subscription), never the forged one
    assert {p for _, p in got_a} == {b'{"alert_id": "for-a"}'}
    assert {t for t, _ in got_a} == {f"{PREFIX}/alerts/agency-a"}  # not B's, even through a wildcard
    assert got_b == [(f"{PREFIX}/alerts/agency-b", b'{"alert_id": "for-b"}')]
    for c in (a, b, pipeline, sensor):
        c.disconnect()
        c.loop_stop()
