"""The shipped per-agency ACL, enforced by a real Mosquitto with password authentication.

Every agency the demo site names (a jurisdiction's ``agency`` or ``share_with``) logs in
as itself, subscribes to everything the node publishes, and must receive its own
alerts and nothing else; the track picture reaches the joint centre only (the choice
documented in configs/mosquitto/borderfusion.acl), status and rejections the operator only.
"""

from __future__ import annotations

import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from tests.broker import PREFIX, Broker
from tests.conftest import ROOT

pytestmark = pytest.mark.broker
ACL = ROOT / "configs" / "mosquitto" / "borderfusion.acl"
TRACK_READERS = {"joint-centre"}  # the ACL's documented choice: the picture spans both countries
EVERYTHING = [f"{PREFIX}/alerts/#", f"{PREFIX}/tracks", f"{PREFIX}/status/#", f"{PREFIX}/rejected"]


def demo_agencies(site) -> set[str]:
    return {agency for j in site.jurisdictions for agency in j.recipients}


@pytest.fixture
def acl_broker(tmp_path, demo_site):
    users = {name: f"{name}-secret" for name in ("pipeline", "operator", "radar-n1", *sorted(demo_agencies(demo_site)))}
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(users.items()):
        flags = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", *flags, "-b", str(passwd), user, password], check=True)
    broker = Broker(tmp_path, extra=f"allow_anonymous false\npassword_file {passwd}\nacl_file {ACL}\n").start()
    broker.users = users
    yield broker
    broker.stop()


def client(broker, user, received=None, subscribe=()):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"acl-{user}", protocol=mqtt.MQTTv5)
    c.username_pw_set(user, broker.users[user])
    done = threading.Event()
    acked: list[int] = []
    if received is not None:
        c.on_message = lambda cl, u, m: received.append((m.topic, m.payload))
    c.on_connect = lambda cl, u, f, rc, p: [cl.subscribe(t, qos=1) for t in subscribe] or (not subscribe and done.set())
    c.on_subscribe = lambda *a: acked.append(1) or (len(acked) == len(subscribe) and done.set())
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    assert done.wait(10), user
    return c


def test_every_demo_agency_reads_its_own_alerts_and_only_the_joint_centre_the_tracks(acl_broker, demo_site):
    agencies = sorted(demo_agencies(demo_site))
    assert {"agency-a", "agency-b", "joint-centre", "agency-a-mil"} <= set(agencies)
    got = {user: [] for user in (*agencies, "operator")}
    readers = {user: client(acl_broker, user, got[user], EVERYTHING) for user in got}
    pipeline = client(acl_broker, "pipeline")
    sensor = client(acl_broker, "radar-n1")
    for agency in agencies:
        pipeline.publish(f"{PREFIX}/alerts/{agency}", f'{{"alert_id": "for-{agency}"}}'.encode(), qos=1).wait_for_publish(5)
    pipeline.publish(f"{PREFIX}/tracks", b'{"tracks": []}', qos=1).wait_for_publish(5)
    pipeline.publish(f"{PREFIX}/status/edge-1", b'{"state": "online"}', qos=1).wait_for_publish(5)
    pipeline.publish(f"{PREFIX}/rejected", b'{"reason": "x"}', qos=1).wait_for_publish(5)
    sensor.publish(f"{PREFIX}/alerts/agency-a", b'{"alert_id": "forged"}', qos=1).wait_for_publish(5)
    sensor.publish(f"{PREFIX}/raw/radar/radar-n1", b"{}", qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(any(t.endswith(f"/alerts/{a}") for t, _ in got[a]) for a in agencies):
        time.sleep(0.1)
    time.sleep(1.0)  # anything that should not arrive has had its chance
    for agency in agencies:
        topics = {t for t, _ in got[agency]}
        want = {f"{PREFIX}/alerts/{agency}"} | ({f"{PREFIX}/tracks"} if agency in TRACK_READERS else set())
        assert topics == want, agency  # not another agency's alerts, even through a wildcard
        assert {p for t, p in got[agency] if "/alerts/" in t} == {f'{{"alert_id": "for-{agency}"}}'.encode()}, agency
    assert {t for t, _ in got["operator"]} == {f"{PREFIX}/status/edge-1", f"{PREFIX}/rejected"}
    for c in (*readers.values(), pipeline, sensor):
        c.disconnect()
        c.loop_stop()
