"""The live pipeline against a real Mosquitto broker started on a free loopback port."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest

from fusion.config import load_site
from fusion.mqtt import publish_log
from tests.broker import (
    Collector,
    agency_watchers,
    alert_ids,
    running_node,
    stop_node,
    wait_online,
)

pytestmark = pytest.mark.broker
PREFIX = "borderfusion/v1"


def test_live_run_equals_replay_per_agency(broker, live_site, short_log):
    log, expected = short_log
    assert expected.alerts, "the scenario should raise alerts"
    agencies = sorted({a for alert in expected.alerts for a in alert.recipients} | {"agency-a", "agency-b"})
    watchers = {agency: Collector(broker.port, [f"{PREFIX}/alerts/{agency}"], f"watch-{agency}") for agency in agencies}
    ops = Collector(broker.port, [f"{PREFIX}/status/+", f"{PREFIX}/tracks", f"{PREFIX}/rejected"], "ops")
    with running_node(live_site) as node:
        wait_online(ops, node)
        publish_log(load_site(live_site), log)
        want = {agency: sorted(a.alert_id for a in expected.alerts if agency in a.recipients) for agency in agencies}
        for agency, watcher in watchers.items():
            watcher.wait_for(lambda: len(watcher.of(f"{PREFIX}/alerts/{agency}")) >= len(want[agency]), 60)
        code, err = stop_node(node)
    assert code == 0, err
    for agency, watcher in watchers.items():
        got = watcher.of(f"{PREFIX}/alerts/{agency}")
        assert sorted({a["alert_id"] for a in got}) == want[agency], agency
        assert all(agency in a["recipients"] for a in got)
    expected_dicts = {a.alert_id: a.to_dict() for a in expected.alerts}
    for agency, watcher in watchers.items():
        for alert in watcher.of(f"{PREFIX}/alerts/{agency}"):
            assert alert == expected_dicts[alert["alert_id"]]
    statuses = ops.of(f"{PREFIX}/status/edge-1")
    assert statuses[-1]["state"] == "offline"
    assert statuses[-1]["counters"]["rejected"] == 0 and statuses[-1]["counters"]["received"] > 0
    assert ops.of(f"{PREFIX}/tracks"), "track snapshots were published"
    for w in (*watchers.values(), ops):
        w.close()


def test_hostile_inputs_are_rejected_with_reasons_and_the_node_keeps_running(broker, live_site, short_log):
    ops = Collector(broker.port, [f"{PREFIX}/status/+", f"{PREFIX}/rejected", f"{PREFIX}/tracks"], "ops2")
    try:
        with running_node(live_site) as node:
            wait_online(ops, node)
            pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hostile", protocol=mqtt.MQTTv5)
            pub.connect("127.0.0.1", broker.port)
            pub.loop_start()
            hostile = [
                (f"{PREFIX}/raw/radar/radar-n1", b"not json"),
                (f"{PREFIX}/raw/radar/radar-n1", b'{"sensor_id":"radar-n1","t":1795000000,"seq":1,"plots":[{"range_m":NaN,"azimuth_deg":1}]}'),
                (f"{PREFIX}/raw/radar/radar-n1", b'{"sensor_id":"radar-n1","t":1795000000,"seq":"x","plots":[]}'),
                (f"{PREFIX}/raw/radar/ghost", b'{"sensor_id":"ghost","t":1795000000,"seq":1,"plots":[]}'),
                (f"{PREFIX}/raw/radar/radar-s1", b'{"sensor_id":"radar-n1","t":1795000000,"seq":1,"plots":[]}'),
                (f"{PREFIX}/raw/drone/uav-3", b'{"sensor_id":"uav-3","t":1795000000,"seq":1,"detections":[{"lat":95,"lon":8,"cep_m":3}]}'),
                (f"{PREFIX}/raw/radar/radar-n1", b"{" + b" " * (300 * 1024) + b"}"),
                (f"{PREFIX}/raw/ground/ugs-011", b'{"sensor_id":"ugs-011","t":1795000000,"seq":1,"classification":{"person":0.9,"animal":0.9}}'),
            ]
            garbage = [(f"{PREFIX}/raw/radar/radar-n1", bytes([i % 256]) * (i % 500 + 1)) for i in range(2000)]
            for topic, payload in hostile + garbage:
                pub.publish(topic, payload, qos=1)
            expected_n = len(hostile) + len(garbage)
            assert ops.wait_for(lambda: len(ops.of(f"{PREFIX}/rejected")) >= expected_n, 60)
            reasons = [r["reason"] for r in ops.of(f"{PREFIX}/rejected")[: len(hostile)]]
            for needle in ("not JSON", "expected a finite number, got NaN", "seq: expected `int`", "unknown sensor 'ghost'",
                           "does not match the topic", "lat: expected `float` <= 90.0", "larger than the 262144 byte limit",
                           "probabilities sum to 1.8"):
                assert any(needle in r for r in reasons), (needle, reasons)
            # good traffic still flows afterwards
            publish_log(load_site(live_site), short_log[0])
            assert ops.wait_for(lambda: any(s["tracks"] for s in ops.of(f"{PREFIX}/tracks")), 60)
            assert node.poll() is None
            code, err = stop_node(node)
            assert code == 0, err
            final = ops.of(f"{PREFIX}/status/edge-1")[-1]
            assert final["counters"]["rejected"] == expected_n
            pub.loop_stop()
    finally:
        ops.close()


def test_broker_restart_mid_run_loses_no_alert(broker, live_site, short_log, tmp_path):
    from fusion.logio import LogWriter, read_log
    from fusion.pipeline import Outputs
    from fusion.replay import replay_file

    log, _ = short_log
    records = list(read_log(log))
    half = len(records) // 2
    parts = []
    for name, chunk in (("first", records[:half]), ("second", records[half:])):
        path = tmp_path / f"{name}.jsonl"
        with LogWriter(path, "demo") as writer:
            for r in chunk:
                writer.write(r.t_rx, r.topic, r.payload)
        parts.append(path)
    # the outage is a quiet gap of seconds for the node, which releases all it holds meanwhile:
    # the same log with a quiet gap of 100 s between the halves is what replay must be given
    with LogWriter(tmp_path / "gap.jsonl", "demo") as writer:
        for i, r in enumerate(records):
            writer.write(r.t_rx + (100.0 if i >= half else 0.0), r.topic, r.payload)
    expected = Outputs()
    replay_file(load_site(live_site), tmp_path / "gap.jsonl", keep=expected, progress=False)
    watchers = agency_watchers(broker.port, expected.alerts, "durable")
    ops = Collector(broker.port, [f"{PREFIX}/status/+"], "ops3")
    with running_node(live_site) as node:
        wait_online(ops, node)
        publish_log(load_site(live_site), parts[0])
        assert ops.wait_for(lambda: any(s["counters"]["received"] >= half for s in ops.of(f"{PREFIX}/status/edge-1")), 60)
        broker.stop()  # the broker dies mid-run, with the node still deciding alerts from the window it holds
        time.sleep(2.0)
        broker.start()  # same port, persistent sessions restored from disk
        time.sleep(3.0)  # the node and the consumers reconnect by themselves
        publish_log(load_site(live_site), parts[1])
        want = {a: {x.alert_id for x in expected.alerts if a in x.recipients} for a in watchers}
        for a, w in watchers.items():
            w.wait_for(lambda: want[a] <= alert_ids({a: w})[a], 60)
        code, err = stop_node(node)
    assert code == 0, err
    assert alert_ids(watchers) == want  # everything arrived; nothing else
    for w in watchers.values():
        w.close()
    ops.close()
