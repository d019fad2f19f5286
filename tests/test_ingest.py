import json

import numpy as np
import pytest

from geo.frame import WGS84
from sensors.ingest import Ingestor, Rejection
from sensors.normalize import CEP_TO_SIGMA

PREFIX = "borderfusion/v1"
T = 1795000000.0


@pytest.fixture
def ingestor(demo_site):
    return Ingestor(list(demo_site.sensors), demo_site.frame, PREFIX, demo_site.ingest_limits)


def radar(**over):
    msg = {"sensor_id": "radar-n1", "t": T, "seq": 1,
           "plots": [{"range_m": 4210.5, "azimuth_deg": 12.25, "radial_velocity_mps": -1.4, "snr_db": 13.1,
                      "range_sigma_m": None, "azimuth_sigma_deg": None, "classification": None}]}
    msg.update(over)
    return msg


def feed(ingestor, msg, topic=f"{PREFIX}/raw/radar/radar-n1", t_rx=T + 0.5, **kw):
    payload = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
    return ingestor.ingest(t_rx, topic, payload, **kw)


def reason(result):
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result.reason


def test_good_radar_scan_is_accepted(ingestor):
    scan = feed(ingestor, radar())
    assert not isinstance(scan, Rejection)
    assert scan.size == 1 and scan.sensor_id == "radar-n1" and scan.time == T
    assert scan.covariance.shape == (1, 2, 2) and scan.class_likelihood.sum() == pytest.approx(1.0)


def test_empty_radar_scan_is_valid(ingestor):
    scan = feed(ingestor, radar(plots=[]))
    assert scan.size == 0 and scan.coverage_radius_m == 9000.0


@pytest.mark.parametrize("payload,topic,expected", [
    (b"{not json", None, "not JSON"),
    (b"[1, 2]", None, "expected `object`, got `array`"),
    (radar(seq=None), None, "seq: expected `int`, got `null`"),
    ({"sensor_id": "radar-n1", "t": T, "plots": []}, None, "missing required field `seq`"),
    (radar(seq=1.5), None, "seq: expected `int`, got `float`"),
    (b'{"sensor_id":"radar-n1","t":1795000000.0,"seq":1,"plots":[{"range_m":1.0,"azimuth_deg":NaN}]}', None,
     "plots[0].azimuth_deg: expected a finite number, got NaN"),
    (b'{"sensor_id":"radar-n1","t":1795000000.0,"seq":1,"plots":[{"range_m":Infinity,"azimuth_deg":1}]}', None,
     "plots[0].range_m: expected a finite number, got Infinity"),
    (radar(plots=[{"range_m": -5.0, "azimuth_deg": 1.0}]), None, "plots[0].range_m: expected `float` >= 0.0, got -5.0"),
    (radar(plots=[{"range_m": 5.0, "azimuth_deg": 400.0}]), None, "plots[0].azimuth_deg: expected `float` <= 360.0, got 400.0"),
    (radar(plots=[{"range_m": 5.0, "azimuth_deg": 1.0, "classification": {"tank": 0.5}}]), None,
     "plots[0].classification: object contains unknown field `tank`"),
    (radar(plots=[{"range_m": 5.0, "azimuth_deg": 1.0, "classification": {"person": 0.8, "animal": 0.5}}]), None,
     "plots[0].classification: probabilities sum to 1.3"),
    (radar(sensor_id="radar-x9"), f"{PREFIX}/raw/radar/radar-x9", "sensor_id: unknown sensor 'radar-x9'"),
    (radar(), f"{PREFIX}/raw/radar/radar-s1", "sensor_id: 'radar-n1' does not match the topic's sensor id 'radar-s1'"),
    (radar(), f"{PREFIX}/raw/lidar/radar-n1", "topic: unknown input kind 'lidar'"),
    (radar(), f"{PREFIX}/raw/ground/radar-n1", "radar-n1' is declared as 'radar', not 'ground'"),
    (radar(t=T + 3600), None, "s ahead of the receive time"),
    ({"sensor_id": "uav-3", "t": T, "seq": 1, "detections": [{"lat": 91.0, "lon": 8.0, "cep_m": 5}]},
     f"{PREFIX}/raw/drone/uav-3", "detections[0].lat: expected `float` <= 90.0, got 91.0"),
    ({"sensor_id": "uav-3", "t": T, "seq": 1, "detections": [{"lat": 47.0, "lon": 8.0, "cep_m": -5}]},
     f"{PREFIX}/raw/drone/uav-3", "detections[0].cep_m: expected `float` > 0.0, got -5"),
    ({"sensor_id": "ugs-011", "t": T, "seq": 1, "bearing_deg": "north"},
     f"{PREFIX}/raw/ground/ugs-011", "bearing_deg: expected `float | null`, got `str`"),
])
def test_rejections_name_field_expectation_and_value(ingestor, payload, topic, expected):
    result = feed(ingestor, payload, topic=topic or f"{PREFIX}/raw/radar/radar-n1")
    assert expected in reason(result)
    assert result.topic == (topic or f"{PREFIX}/raw/radar/radar-n1")
    assert result.t_received == T + 0.5


def test_oversized_payload_rejected_before_decoding(ingestor):
    big = radar(plots=[{"range_m": 100.0 + i, "azimuth_deg": 1.0} for i in range(9000)])
    result = feed(ingestor, big)
    assert "larger than the 262144 byte limit" in reason(result)
    assert len(result.payload.encode()) <= 4096 + 3  # echoed payload is cut


def test_too_old_for_reorder_window(ingestor):
    assert "older than the reorder window" in reason(feed(ingestor, radar(t=T - 10), not_before=T - 1))


def test_duplicate_seq_rejected_but_reboot_is_not_locked_out(ingestor):
    assert not isinstance(feed(ingestor, radar(seq=5)), Rejection)
    assert "seq: duplicate 5" in reason(feed(ingestor, radar(seq=5)))
    assert not isinstance(feed(ingestor, radar(seq=6, t=T + 1)), Rejection)
    # the sensor reboots: seq restarts at 0, then reaches 5 again with fresh timestamps
    for seq in range(0, 7):
        result = feed(ingestor, radar(seq=seq, t=T + 100 + seq), t_rx=T + 101 + seq)
        assert not isinstance(result, Rejection), result
    # a re-delivery of the old run's message (old timestamp) is still a duplicate
    assert "duplicate" in reason(feed(ingestor, radar(seq=5, t=T + 105), t_rx=T + 110))


def test_rejected_message_changes_no_state(ingestor):
    assert "range_m" in reason(feed(ingestor, radar(seq=9, plots=[{"range_m": -1, "azimuth_deg": 0}])))
    assert not isinstance(feed(ingestor, radar(seq=9)), Rejection)  # seq 9 was not remembered


def test_radar_conversion_matches_geodesic(demo_site, ingestor):
    """Planar conversion with meridian convergence agrees with pyproj's geodesic to < 0.1 m at 8 km."""
    sensor = demo_site.sensors[0].spec
    ranges = [500.0, 3000.0, 8000.0]
    azimuths = [0.0, 47.0, 133.0, 222.0, 301.0]
    plots = [{"range_m": r, "azimuth_deg": a} for r in ranges for a in azimuths]
    scan = feed(ingestor, radar(plots=plots))
    # a range measured at the radar's height h is R/(R+h) of the same arc on the ellipsoid
    shrink = 6_371_000.0 / (6_371_000.0 + sensor.alt_m)
    lon, lat, _ = WGS84.fwd([sensor.lon] * len(plots), [sensor.lat] * len(plots),
                            [p["azimuth_deg"] for p in plots], [p["range_m"] * shrink for p in plots])
    e, n, _ = demo_site.frame.to_enu(lat, lon, sensor.alt_m)
    error = np.hypot(scan.position[:, 0] - e, scan.position[:, 1] - n)
    assert error.max() < 0.1


def test_radar_covariance_matches_monte_carlo(demo_site, ingestor):
    scan = feed(ingestor, radar(plots=[{"range_m": 6000.0, "azimuth_deg": 60.0, "radial_velocity_mps": -1.4}]))
    spec, model = demo_site.sensors[0].spec, demo_site.sensors[0]
    rng = np.random.default_rng(0)
    r = 6000.0 + rng.normal(0, spec.range_sigma_m, 200_000)
    b = np.radians(60.0 + rng.normal(0, spec.azimuth_sigma_deg, 200_000)) + model.north_rotation_rad
    samples = np.column_stack((r * np.sin(b), r * np.cos(b)))
    np.testing.assert_allclose(scan.covariance[0], np.cov(samples.T), rtol=0.03, atol=1.0)
    u = scan.line_of_sight[0]
    assert np.hypot(*u) == pytest.approx(1.0)
    assert scan.radial_velocity[0] == -1.4 and scan.radial_velocity_sigma[0] == spec.radial_velocity_sigma_mps


def test_ground_sensor_site_with_radius_or_bearing(demo_site, ingestor):
    topic = f"{PREFIX}/raw/ground/ugs-013"
    model = next(s for s in demo_site.sensors if s.spec.id == "ugs-013")
    plain = feed(ingestor, {"sensor_id": "ugs-013", "t": T, "seq": 1, "modality": "seismic",
                            "classification": {"person": 0.7, "animal": 0.2}}, topic=topic)
    np.testing.assert_allclose(plain.position[0], (model.east_m, model.north_m))
    np.testing.assert_allclose(plain.covariance[0], np.eye(2) * 50.0**2 / 4)
    assert not plain.can_initiate[0] and plain.coverage_radius_m == 0.0
    np.testing.assert_allclose(plain.class_likelihood[0], [0.72, 0.02, 0.22, 0.02, 0.02])
    refined = feed(ingestor, {"sensor_id": "ugs-013", "t": T + 1, "seq": 2, "bearing_deg": 90.0, "range_m": 30.0},
                   topic=topic, t_rx=T + 1.5)
    assert refined.position[0, 0] - model.east_m == pytest.approx(30.0, abs=0.1)
    assert refined.position[0, 1] - model.north_m == pytest.approx(0.0, abs=0.1)


def test_drone_detection_sigma_is_cep_over_1_1774(demo_site, ingestor):
    result = feed(ingestor, {"sensor_id": "uav-3", "t": T, "seq": 1,
                             "platform": {"lat": 47.01, "lon": 8.02, "alt_m": 620.0},
                             "detections": [{"lat": 47.012, "lon": 8.024, "cep_m": 8.0,
                                             "classification": {"person": 0.9}}]},
                  topic=f"{PREFIX}/raw/drone/uav-3")
    assert CEP_TO_SIGMA == pytest.approx(1 / 1.1774, rel=1e-4)
    np.testing.assert_allclose(result.covariance[0], np.eye(2) * (8.0 / 1.1774) ** 2, rtol=1e-4)
    e, n, _ = demo_site.frame.to_enu(47.012, 8.024)
    np.testing.assert_allclose(result.position[0], (e, n), atol=1e-6)
    # the site file's footprint_radius_m for uav-3 (the DroneSpec default is 400 m)
    assert result.coverage_radius_m == 500.0


def test_a_drone_report_is_placed_in_the_frame_once_for_its_check_and_its_scan(demo_site, ingestor, monkeypatch):
    """One pyproj call for the platform and every detection (the footprint check and the scan
    share it), giving what a call per point gives, to the bit."""
    from geo.frame import LocalFrame

    frame = demo_site.frame
    calls = []
    to_enu = LocalFrame.to_enu
    monkeypatch.setattr(LocalFrame, "to_enu", lambda self, *a, **k: calls.append(a) or to_enu(self, *a, **k))
    points = [(47.012, 8.024), (47.009, 8.017)]
    result = feed(ingestor, {"sensor_id": "uav-3", "t": T, "seq": 1, "platform": {"lat": 47.01, "lon": 8.02},
                             "detections": [{"lat": lat, "lon": lon, "cep_m": 8.0} for lat, lon in points]},
                  topic=f"{PREFIX}/raw/drone/uav-3")
    assert len(calls) == 1
    for (lat, lon), position in zip(points, result.position):
        e, n, _ = to_enu(frame, lat, lon)
        assert tuple(position) == (float(e), float(n))
    pe, pn, _ = to_enu(frame, 47.01, 8.02)
    assert result.coverage_center == (float(pe), float(pn))


def test_bad_message_does_not_disturb_good_ones(ingestor):
    good = [feed(ingestor, radar(seq=i, t=T + i), t_rx=T + i + 0.2) for i in range(3)]
    bad = feed(ingestor, b"\xff\xfe garbage", t_rx=T + 3)
    more = feed(ingestor, radar(seq=3, t=T + 3), t_rx=T + 3.2)
    assert all(not isinstance(g, Rejection) for g in good + [more])
    assert "not JSON" in reason(bad)


DEEP = 1100  # deeper than msgspec's (the interpreter's) recursion limit of about 1000


@pytest.mark.parametrize("payload,expected", [
    (b'{"sensor_id":"radar-n1\xff","t":1795000000.0,"seq":1,"plots":[]}', "not JSON: invalid UTF-8 at byte 22"),
    (b'{"sensor_id":"radar-n1\xff","t":NaN,"seq":1,"plots":[]}', "not JSON: invalid UTF-8 at byte 22"),
    (b'{"sensor_id":"radar-n1","t":1795000000.0,"seq":1,"plots":[],"x":' + b"[" * DEEP + b"]" * DEEP + b"}",
     "nested deeper than about"),
    (b'{"sensor_id":"radar-n1","t":1795000000.0,"seq":1,"plots":[],"x":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP
     + b"}", "nested deeper than about"),
    # NaN sends msgspec's strict parser down the Python-parser path, which must survive the nesting too
    (b'{"sensor_id":"radar-n1","t":NaN,"seq":1,"plots":[],"x":' + b"[" * DEEP + b"]" * DEEP + b"}",
     "nested deeper than about"),
    # a validation error before the deep part: looking up the offending value must survive it
    (b'{"sensor_id":"radar-n1","t":1795000000.0,"seq":null,"plots":[],"x":' + b"[" * DEEP + b"]" * DEEP + b"}",
     "seq: expected `int`, got `null`"),
])
def test_undecodable_payloads_are_rejected_with_a_reason(ingestor, payload, expected):
    assert expected in reason(feed(ingestor, payload))


@pytest.mark.parametrize("over,expected", [
    ({"sensor_id": None}, "sensor_id: expected `str`, got `null`"),
    ({"seq": "7"}, 'seq: expected `int`, got `str` "7"'),
    ({"seq": 1.5}, "seq: expected `int`, got `float` 1.5"),
    ({"plots": {"range_m": 1}}, "plots: expected `array`, got `object`"),
])
def test_reason_names_field_what_arrived_once_and_what_is_valid(ingestor, over, expected):
    text = reason(feed(ingestor, radar(**over)))
    assert text == expected
    assert text.count("got") == 1


def test_unknown_sensor_kind_in_site_file_lists_the_valid_kinds(tmp_path):
    from fusion.config import ConfigError, load_site
    from tests.conftest import DEMO_SITE

    text = DEMO_SITE.read_text()
    assert 'kind = "radar"' in text
    (tmp_path / "site.toml").write_text(text.replace('kind = "radar"', 'kind = "raddar"', 1))
    (tmp_path / "jurisdictions.geojson").write_bytes((DEMO_SITE.parent / "jurisdictions.geojson").read_bytes())
    with pytest.raises(ConfigError) as info:
        load_site(tmp_path / "site.toml")
    message = str(info.value)
    assert "sensors[0].kind: invalid value 'raddar', expected one of radar, ground, drone" in message
    assert message.count("raddar") == 1


def test_unexpected_error_in_normalization_is_a_rejection_not_a_crash(ingestor, monkeypatch, caplog):
    """The last guard: an error nobody foresaw rejects the message, names it, and the next one passes."""
    from sensors.normalize import SensorModel

    def broken(self, *args):
        raise TypeError("a bug")

    monkeypatch.setattr(SensorModel, "normalize", broken)
    text = reason(feed(ingestor, radar(seq=1)))
    assert "TypeError: a bug" in text
    assert "ingest: unexpected TypeError" in caplog.text
    monkeypatch.undo()
    assert not isinstance(feed(ingestor, radar(seq=1)), Rejection)  # the failed message changed no state
