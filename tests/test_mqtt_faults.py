"""Faults against a real Mosquitto: a SIGKILL with alerts in flight, floods, TLS, record.

Every broker here is a real ``mosquitto`` on a free loopback port (tests/broker.py).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import msgspec
import paho.mqtt.client as mqtt
import pytest

from fusion.config import load_site
from fusion.logio import read_log
from fusion.mqtt import publish_log
from fusion.pipeline import Outputs
from fusion.replay import replay_file
from tests.broker import (
    PREFIX,
    Broker,
    Collector,
    Link,
    agency_watchers,
    alert_ids,
    forget_session,
    persistent_collector,
    free_port,
    make_certificates,
    rss_mb,
    running_node,
    start_node,
    stop_node,
    wait_online,
    write_site,
)

pytestmark = pytest.mark.broker


def outbox_rows(path) -> list[tuple[str, str]]:
    """(topic, alert_id) of every alert a node decided and the broker has not acknowledged."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT topic, payload FROM outbox WHERE acked_at IS NULL ORDER BY id").fetchall()
    finally:
        db.close()
    return [(topic, msgspec.json.decode(payload)["alert_id"]) for topic, payload in rows]


def test_sigkill_with_unacknowledged_alerts_loses_none(tmp_path, short_log, request):
    """The link to the broker fails one way, the node decides every alert, then dies by SIGKILL.

    Its broker session (and with it the raw input) is then forgotten, so the only way the
    alerts can reach the agencies is the restarted node's on-disk outbox.
    """
    log, expected = short_log
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", max_inflight=0).start()  # all 540 raw messages reach the node unacked
    request.addfinalizer(broker.stop)
    link = Link(broker.port)
    node_site = write_site(tmp_path / "node", link.port, outbox=tmp_path / "outbox")
    feeder_site = load_site(write_site(tmp_path / "feeder", broker.port, outbox=tmp_path / "unused"))
    copies = Counter((f"{PREFIX}/alerts/{a}", x.alert_id) for x in expected.alerts for a in x.recipients)
    watchers = agency_watchers(broker.port, expected.alerts, "kill")
    ops = Collector(broker.port, [f"{PREFIX}/status/+"], "ops-kill")
    try:
        with running_node(node_site) as node:
            wait_online(ops, node)
            link.stall_upstream()  # from now on nothing the node sends reaches the broker
            publish_log(feeder_site, log)
            outbox = tmp_path / "outbox" / "edge-1.sqlite"
            deadline = time.monotonic() + 60  # the node flushes its reorder buffer 5 s after input stops
            while time.monotonic() < deadline and len(outbox_rows(outbox)) < sum(copies.values()):
                time.sleep(0.2)
            node.send_signal(signal.SIGKILL)
            node.wait()
            decided = Counter(outbox_rows(outbox))
            assert decided == copies, "every alert replay decides was in the outbox when the node died"
            assert all(not w.of(f"{PREFIX}/alerts/{a}") for a, w in watchers.items()), "none had reached the broker"
    finally:
        link.close()
    forget_session(broker.port, "borderfusion-edge-1")  # the broker's queued raw input is gone too
    with running_node(write_site(tmp_path / "node2", broker.port, outbox=tmp_path / "outbox")) as node:
        want = {a: {x.alert_id for x in expected.alerts if a in x.recipients} for a in watchers}
        for a, w in watchers.items():
            assert w.wait_for(lambda: alert_ids({a: w})[a] >= want[a], 60), a
        code, err = stop_node(node)
    assert code == 0, err
    assert alert_ids(watchers) == want  # everything arrived; nothing else
    for w in (*watchers.values(), ops):
        w.close()
    assert outbox_rows(tmp_path / "outbox" / "edge-1.sqlite") == []  # all acknowledged (kept resend_window_s, then deleted)


def radar_flood(t0: float, n: int, plots: int, seed: int = 0) -> list[bytes]:
    """``n`` valid radar-n1 scans of ``plots`` random plots each (heavy to process, cheap to send)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    encode = msgspec.json.Encoder().encode
    return [encode({"sensor_id": "radar-n1", "t": t0 + 0.5 * k, "seq": 10_000_000 + k,
                    "plots": [{"range_m": float(r), "azimuth_deg": float(a)}
                              for r, a in zip(rng.uniform(100, 8900, plots), rng.uniform(0, 360, plots))]})
            for k in range(n)]


def test_a_flood_is_shed_counted_and_memory_stays_bounded(tmp_path, broker, short_log):
    """Input far faster than processing: a small bounded queue, every message processed or counted shed."""
    log, expected = short_log
    site_path = write_site(tmp_path / "site", broker.port, outbox=tmp_path / "outbox", mqtt_extra="queue_size = 20")
    t_first = next(iter(read_log(log))).t_rx
    flood = radar_flood(t_first - 2000.0, 500, 600)  # 500 scans of 600 plots, older than the good log
    ops = Collector(broker.port, [f"{PREFIX}/status/+", f"{PREFIX}/tracks"], "ops-flood")
    watcher = Collector(broker.port, [f"{PREFIX}/alerts/agency-a"], "flood-a")
    try:
        with running_node(site_path) as node:
            wait_online(ops, node)
            rss_before = rss_mb(node.pid)
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flooder", protocol=mqtt.MQTTv5)
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            peak = rss_before
            for k, payload in enumerate(flood):
                info = client.publish(f"{PREFIX}/raw/radar/radar-n1", payload, qos=1)
                if k % 100 == 99:
                    info.wait_for_publish(30)
                    peak = max(peak, rss_mb(node.pid))
            info.wait_for_publish(30)
            client.disconnect()
            client.loop_stop()

            def settled():
                statuses = ops.of(f"{PREFIX}/status/edge-1")
                c = statuses[-1]["counters"] if statuses else {}
                return c.get("received", 0) + c.get("shed", 0) >= len(flood) and c.get("queued", 1) == 0

            assert ops.wait_for(settled, 120), ops.of(f"{PREFIX}/status/edge-1")[-1:]
            counters = ops.of(f"{PREFIX}/status/edge-1")[-1]["counters"]
            assert counters["shed"] > 0, "the flood outran processing, so some input was shed"
            assert counters["received"] + counters["shed"] == len(flood), counters  # every message accounted for
            peak = max(peak, rss_mb(node.pid))
            assert peak - rss_before < 150, (rss_before, peak)  # the queue holds at most 20 messages (~0.6 MB)
            # good traffic flows afterwards (track numbering has moved on, so the ids differ from replay's)
            publish_log(load_site(site_path), log)
            want = sum("agency-a" in x.recipients for x in expected.alerts)
            assert watcher.wait_for(lambda: len(watcher.of(f"{PREFIX}/alerts/agency-a")) >= 0.8 * want, 60), want
            assert node.poll() is None
            code, err = stop_node(node)
    finally:
        ops.close()
        watcher.close()
    assert code == 0, err
    assert "shed" in err  # the operator is told, not only the status


def test_record_then_replay_gives_the_same_alerts(tmp_path, broker, short_log):
    log, expected = short_log
    site_path = write_site(tmp_path / "site", broker.port, outbox=tmp_path / "outbox")
    recorded = tmp_path / "recorded.jsonl.gz"
    ops = Collector(broker.port, [f"{PREFIX}/raw/+/+"], "ops-record")
    recorder = subprocess.Popen([sys.executable, "-m", "fusion.cli", "record", "--config", str(site_path),
                                 "--out", str(recorded)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert recorder.stdout.readline().startswith("recording borderfusion/v1/raw/+/+")  # subscribed
        n = publish_log(load_site(site_path), log)
        assert ops.wait_for(lambda: len(ops.messages) >= n, 60)
        time.sleep(0.5)
        recorder.send_signal(signal.SIGTERM)
        out, err = recorder.communicate(timeout=30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
        ops.close()
    assert recorder.returncode == 0, err
    assert f"recorded {n} messages" in out
    original = [(r.topic, r.payload) for r in read_log(log)]
    again = [(r.topic, r.payload) for r in read_log(recorded)]
    assert again == original  # the same bytes, in the same order
    got = Outputs()
    replay_file(load_site(site_path), recorded, keep=got, progress=False)
    assert [a.to_dict() for a in got.alerts] == [a.to_dict() for a in expected.alerts]


def test_tls_with_client_certificate_and_password_file(tmp_path):
    """The node reaches a TLS-only, password-protected listener; the password never shows in its output."""
    certs_dir = tmp_path / "certs"
    certs_dir.mkdir()
    certs = make_certificates(certs_dir)
    secret = "s3cret-do-not-log-7f2a"
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "pipeline", secret], check=True)
    tls_port = free_port()
    (tmp_path / "broker").mkdir()
    # the plain listener (anonymous) is for the test's observers; the node must use the TLS one
    broker = Broker(tmp_path / "broker", extra=(
        "allow_anonymous true\n"
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\nkeyfile {certs['server.key']}\n"
        "require_certificate true\n"
        f"password_file {passwd}\nallow_anonymous false\n"), per_listener=True).start()
    (tmp_path / "pw").write_text(secret + "\n")
    (tmp_path / "pw").chmod(0o600)  # readable by others, it would stop start-up
    tls = (f'username = "pipeline"\npassword_file = "{tmp_path / "pw"}"\n'
           f'tls_ca = "{certs["ca.crt"]}"\ntls_cert = "{certs["client.crt"]}"\ntls_key = "{certs["client.key"]}"')
    ops = Collector(broker.port, [f"{PREFIX}/status/+"], "ops-tls")
    try:
        with running_node(write_site(tmp_path / "site", tls_port, outbox=tmp_path / "outbox", mqtt_extra=tls)) as node:
            wait_online(ops, node)
            code, err = stop_node(node)
        assert code == 0, err
        assert secret not in err
        # a wrong password stops start-up at once, with the broker's reason and without the password
        (tmp_path / "pw").write_text("wrong-password-xyz\n")
        bad = start_node(write_site(tmp_path / "bad", tls_port, outbox=tmp_path / "outbox2", mqtt_extra=tls))
        out, err = bad.communicate(timeout=60)
        assert bad.returncode == 1, err
        assert "could not connect to the MQTT broker" in err and "refused" in err, err
        assert "wrong-password-xyz" not in err + out
    finally:
        ops.close()
        broker.stop()


def _all_decided_and_acknowledged(ops: Collector, alerts: int) -> bool:
    """The node's latest status: every alert decided, none waiting for the broker's acknowledgement."""
    counters = (ops.of(f"{PREFIX}/status/edge-1") or [{}])[-1].get("counters", {})
    return counters.get("alerts", 0) >= alerts and counters.get("outbox", 1) == 0


def test_alerts_the_broker_acknowledged_then_lost_to_a_sigkill_are_sent_again(tmp_path, short_log, request):
    """An agency's consumer is away; the broker queues its alerts, acknowledges them to the node, and is
    killed (SIGKILL) before saving them.  The node's outbox keeps acknowledged alerts
    ``resend_window_s`` and sends them again after the reconnect, so the agency still gets every one.

    The broker saves only on SIGUSR1 here (``autosave_interval`` 600 s, and the window set beyond
    it), so that the loss is certain: the sessions are saved, none of the alerts is.
    """
    log, expected = short_log
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", extra="autosave_interval 600\n").start()
    request.addfinalizer(broker.stop)
    node_site = write_site(tmp_path / "node", broker.port, outbox=tmp_path / "outbox",
                           mqtt_extra="resend_window_s = 900")
    feeder_site = load_site(write_site(tmp_path / "feeder", broker.port, outbox=tmp_path / "unused"))
    agency = sorted({a for x in expected.alerts for a in x.recipients})[0]
    want = {x.alert_id for x in expected.alerts if agency in x.recipients}
    ops = Collector(broker.port, [f"{PREFIX}/status/+"], "ops-broker-kill")
    ops.client.reconnect_delay_set(0.2, 1)
    with running_node(node_site) as node:
        wait_online(ops, node)
        away = persistent_collector(broker.port, [f"{PREFIX}/alerts/{agency}"], "away-agency")
        away.close()  # its session (and subscription) stays, and queues its alerts
        db = tmp_path / "broker" / "data" / "mosquitto.db"
        broker.process.send_signal(signal.SIGUSR1)  # save the sessions now; nothing later is saved
        assert ops.wait_for(db.exists, 10), "the broker did not save on SIGUSR1"
        publish_log(feeder_site, log)
        assert ops.wait_for(lambda: _all_decided_and_acknowledged(ops, len(expected.alerts)), 60), \
            "the alerts were not all decided and acknowledged"
        broker.kill()  # what it acknowledged since the save is gone
        broker.start()
        back = persistent_collector(broker.port, [f"{PREFIX}/alerts/{agency}"], "away-agency")
        back.wait_for(lambda: {m["alert_id"] for m in back.of(f"{PREFIX}/alerts/{agency}")} >= want, 30)
        code, err = stop_node(node)
    assert code == 0, err
    got = {m["alert_id"] for m in back.of(f"{PREFIX}/alerts/{agency}")}
    for c in (back, ops):
        c.close()
    assert got == want, (len(want - got), "missing", len(got - want), "unexpected")
