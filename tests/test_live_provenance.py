"""Provenance and plausibility: alerts name their sensors, a drone detection must be under its
platform, retained raw input is never fed to the node."""

from __future__ import annotations

import time

import msgspec
import paho.mqtt.client as mqtt
import pytest

from fusion.pipeline import Pipeline
from tests.broker import PREFIX, Collector, running_node, stop_node, wait_online

_encode = msgspec.json.Encoder().encode


def test_every_alert_names_the_sensors_of_its_track(demo_site, short_log):
    _, expected = short_log
    ids = {s.spec.id for s in demo_site.sensors}
    assert expected.alerts
    for alert in expected.alerts:
        sensors = alert.to_dict()["sensors"]
        assert sensors and set(sensors) <= ids and sensors == sorted(set(sensors), key=list(
            s.spec.id for s in demo_site.sensors).index)


def _drone(detection_lat: float, detection_lon: float, seq: int = 1) -> bytes:
    return _encode({"sensor_id": "uav-3", "t": 1795000000.0, "seq": seq,
                    "platform": {"lat": 47.0, "lon": 8.0, "alt_m": 600.0},
                    "detections": [{"lat": detection_lat, "lon": detection_lon, "cep_m": 5.0}]})


def test_a_drone_detection_outside_its_platforms_footprint_is_rejected_with_the_reason(demo_site):
    pipeline = Pipeline(demo_site)
    topic = f"{PREFIX}/raw/drone/uav-3"
    far = pipeline.feed(1795000000.5, topic, _drone(90.0, 8.0, seq=1))
    assert len(far.rejected) == 1
    reason = far.rejected[0].reason
    assert reason.startswith("detections[0]:") and "outside its camera footprint" in reason
    near = pipeline.feed(1795000000.6, topic, _drone(47.001, 8.0, seq=2))  # 111 m north of the platform
    assert near.rejected == [] and pipeline.counters["accepted"] == 1


@pytest.mark.parametrize(("beyond_m", "accepted"), [(10.0, True), (15.0, True), (25.0, False)])
def test_a_drone_detection_at_its_footprints_edge_may_carry_its_geolocation_error(demo_site, beyond_m, accepted):
    """A target at the edge of uav-3's 500 m footprint, placed outward by its CEP-5 m error: up to
    4 σ (17 m) is noise, not a detection from somewhere else (CEP alone rejected one in eight of them)."""
    pipeline = Pipeline(demo_site)
    east, north, _ = demo_site.frame.to_enu(47.0, 8.0)  # the platform of _drone
    lat, lon, _ = demo_site.frame.point_to_geodetic(float(east), float(north) + 500.0 + beyond_m)
    result = pipeline.feed(1795000000.5, f"{PREFIX}/raw/drone/uav-3", _drone(lat, lon))
    assert (result.rejected == []) is accepted, [r.reason for r in result.rejected]
    if not accepted:
        assert "4 σ of its CEP 5 m = 517 m)" in result.rejected[0].reason


@pytest.mark.broker
def test_a_retained_raw_message_is_ignored(broker, live_site):
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="retainer", protocol=mqtt.MQTTv5)
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    sender.publish(f"{PREFIX}/raw/drone/uav-3", _drone(47.001, 8.0), qos=1, retain=True).wait_for_publish(10)
    sender.disconnect()
    sender.loop_stop()
    ops = Collector(broker.port, [f"{PREFIX}/status/+"], "ops-retained")
    with running_node(live_site) as node:
        wait_online(ops, node)
        time.sleep(1.0)  # the retained message comes right after the subscription
        code, err = stop_node(node)
    assert code == 0, err
    final = ops.of(f"{PREFIX}/status/edge-1")[-1]
    assert final["state"] == "offline"
    assert final["counters"]["retained_ignored"] == 1 and final["counters"]["received"] == 0
    ops.close()
