"""Radar sector messages (interface §2.1 ``sector_deg``): validation, the miss test of the tracker,
and the simulator's split of scans too large for one message, replayed end to end."""

import json
import math

import numpy as np
import pytest

from fusion.cli import main
from fusion.evaluate import evaluate
from fusion.logio import read_log
from fusion.simulate import simulate, split_scan
from fusion.synthetic import make_scan
from sensors.ingest import Ingestor, Rejection
from sensors.sector import in_sector_deg, sector_span_deg, sector_split_deg
from tests.conftest import DEMO_SITE
from tracking import Tracker, TrackerConfig
from tracking.manage import in_sector

PREFIX = "borderfusion/v1"
T = 1795000000.0


@pytest.fixture
def ingestor(demo_site):
    return Ingestor(list(demo_site.sensors), demo_site.frame, PREFIX, demo_site.ingest_limits)


def plot(azimuth_deg):
    return {"range_m": 4210.5, "azimuth_deg": azimuth_deg}


def feed(ingestor, msg):
    payload = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
    return ingestor.ingest(T + 0.5, f"{PREFIX}/raw/radar/radar-n1", payload)


def radar(azimuths, **over):
    return {"sensor_id": "radar-n1", "t": T, "seq": 1, "plots": [plot(a) for a in azimuths], **over}


# -- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("sector,azimuths,width_deg", [
    ([0, 90], [0.0, 12.25, 90.0], 90.0),
    ([350, 10], [350.0, 355.5, 0.0, 5.0, 10.0, 360.0], 20.0),  # wraps through north
    ([90, 0], [90.0, 180.0, 359.0], 270.0),  # clockwise from 90 round to north
    ([0, 360], [0.0, 123.0, 359.9], 360.0),  # the whole circle
    ([360, 0], [200.0], 360.0),
    ([10, 20], [], 10.0),  # the radar looked at the sector and saw nothing there
])
def test_a_sector_message_with_its_plots_inside_is_accepted(ingestor, demo_site, sector, azimuths, width_deg):
    scan = feed(ingestor, radar(azimuths, sector_deg=sector))
    assert not isinstance(scan, Rejection), scan.reason
    assert scan.size == len(azimuths)
    rotation = next(s for s in demo_site.sensors if s.spec.id == "radar-n1").north_rotation_rad
    start, width = scan.coverage_sector_rad
    assert width == pytest.approx(math.radians(width_deg))
    if width_deg < 360.0:  # the sector turned into the local frame like the plots' bearings
        assert start == pytest.approx((math.radians(sector[0]) + rotation) % math.tau)


def test_without_a_sector_the_scan_covers_the_whole_circle(ingestor):
    scan = feed(ingestor, radar([12.25, 200.0]))
    assert scan.coverage_sector_rad == (0.0, math.tau)


@pytest.mark.parametrize("sector,expected", [
    ([10, 10], "sector_deg: [10, 10] is an empty sector; expected [from_deg, to_deg]: two different azimuths in [0, 360]"),
    ([10], "sector_deg: expected `array` of length 2"),
    ([10, 20, 30], "sector_deg: expected `array` of length 2"),
    ([10, 400], "sector_deg[1]: expected `float` <= 360.0, got 400"),
    ([-1, 20], "sector_deg[0]: expected `float` >= 0.0, got -1"),
    (["north", 20], "sector_deg[0]: expected `float`"),
    ({"from": 1, "to": 2}, "sector_deg: expected `array | null`, got `object`"),
])
def test_a_bad_sector_is_rejected_naming_the_field(ingestor, sector, expected):
    result = feed(ingestor, radar([12.0], sector_deg=sector))
    assert isinstance(result, Rejection), result
    assert expected in result.reason


def test_a_non_finite_sector_is_rejected(ingestor):
    payload = (b'{"sensor_id":"radar-n1","t":1795000000.0,"seq":1,"plots":[],"sector_deg":[NaN,10]}')
    result = feed(ingestor, payload)
    assert isinstance(result, Rejection) and "sector_deg[0]" in result.reason and "finite" in result.reason
    payload = b'{"sensor_id":"radar-n1","t":1795000000.0,"seq":1,"plots":[],"sector_deg":[1,1e999]}'
    result = feed(ingestor, payload)
    assert isinstance(result, Rejection) and "sector_deg[1]" in result.reason


@pytest.mark.parametrize("sector,azimuths,bad", [
    ([0, 90], [45.0, 91.0], 1),
    ([350, 10], [355.0, 10.5], 1),
    ([350, 10], [180.0], 0),
    ([90, 0], [45.0], 0),
])
def test_a_plot_outside_the_declared_sector_rejects_the_message(ingestor, sector, azimuths, bad):
    reason = feed(ingestor, radar(azimuths, sector_deg=sector)).reason
    assert reason.startswith(f"plots[{bad}].azimuth_deg: {azimuths[bad]:g} is outside the message's sector_deg "
                             f"[{sector[0]}, {sector[1]}]"), reason


def test_sector_arithmetic_agrees_between_degrees_and_the_kernel():
    """The ingest check (degrees, radar azimuths) and the tracker's (radians, east/north offsets)
    put the same bearings inside, wrap-around included."""
    rng = np.random.default_rng(5)
    for from_deg, to_deg in [(350.0, 10.0), (0.0, 90.0), (90.0, 0.0), (200.0, 100.0), (0.0, 360.0), (10.0, 20.0)]:
        start, width = sector_span_deg(from_deg, to_deg)
        azimuth = rng.uniform(0.0, 360.0, 400)
        want = in_sector_deg(azimuth, start, width)
        b = np.radians(azimuth)
        got = [in_sector(1000 * math.sin(x), 1000 * math.cos(x), math.radians(start), math.radians(width)) for x in b]
        assert got == want.tolist()
        assert 0 < want.sum() and (want.sum() < 400 or width == 360.0)


# -- the tracker's miss test ------------------------------------------------------------------------

NE, SW, N_WEST = np.array([2000.0, 2000.0]), np.array([-2000.0, -2000.0]), np.array([-300.0, 3000.0])


def _two_confirmed_tracks(points):
    tracker = Tracker(TrackerConfig(), 1)
    cov = np.repeat(np.eye(2)[None] * 100.0, len(points), axis=0)
    for k in range(8):
        tracker.step(make_scan(float(k), np.array(points), cov, coverage_radius_m=1e5, pd=0.9, clutter_density=1e-7))
    assert (tracker.estimates(7.0).status == 1).sum() == len(points)
    return tracker


def _existence_after_an_empty_scan(points, **coverage):
    """Each track's existence (by its position's order in ``points``) after one more scan with
    no detection, of the given coverage."""
    tracker = _two_confirmed_tracks(points)
    tracker.step(make_scan(8.0, np.zeros((0, 2)), np.zeros((0, 2, 2)), pd=0.9, clutter_density=1e-7, **coverage))
    est = tracker.estimates(8.0, include_tentative=True)
    return [float(est.existence[np.argmin(np.hypot(*(est.x[:, :2] - p).T))]) for p in points]


def test_a_sector_scan_lowers_only_the_tracks_within_its_sector():
    points = [NE, SW]
    silent = _existence_after_an_empty_scan(points, coverage_radius_m=0.0)  # says nothing: survival only
    whole = _existence_after_an_empty_scan(points, coverage_radius_m=1e5)  # default: the whole circle
    quadrant = _existence_after_an_empty_scan(points, coverage_radius_m=1e5,
                                              coverage_sector_rad=(0.0, math.pi / 2))  # the NE quadrant
    assert whole[0] < silent[0] and whole[1] < silent[1]  # full circle: both missed, as before
    assert whole == _existence_after_an_empty_scan(points, coverage_radius_m=1e5, coverage_sector_rad=(0.0, math.tau))
    assert quadrant[0] == whole[0]  # inside the sector: the same miss as a whole-circle scan
    assert quadrant[1] == silent[1]  # outside it: left alone


def test_a_sector_through_north_holds_the_tracks_either_side_of_north():
    points = [N_WEST, NE, SW]
    silent = _existence_after_an_empty_scan(points, coverage_radius_m=0.0)
    # from 350° clockwise through 20°: N_WEST (bearing ≈ 354°) is inside, NE (45°) and SW (225°) are not
    wrapped = _existence_after_an_empty_scan(points, coverage_radius_m=1e5,
                                             coverage_sector_rad=(math.radians(350.0), math.radians(30.0)))
    assert wrapped[0] < silent[0]
    assert wrapped[1:] == silent[1:]


# -- simulate: oversized scans go as sectors ----------------------------------------------------------

def test_split_scan_uses_the_fewest_equal_sectors_that_fit():
    plots = [plot(float(a)) for a in np.linspace(0.0, 359.0, 90)]

    def fits(body):
        return len(body["plots"]) <= 40

    assert split_scan(plots, lambda body: True) == [{"plots": plots}]
    bodies = split_scan(plots, fits)
    assert [b["sector_deg"] for b in bodies] == [list(s) for s in sector_split_deg(3)]
    assert sorted(p["azimuth_deg"] for b in bodies for p in b["plots"]) == [p["azimuth_deg"] for p in plots]
    for b in bodies:
        assert in_sector_deg([p["azimuth_deg"] for p in b["plots"]], *sector_span_deg(*b["sector_deg"])).all()


def test_simulated_sector_messages_are_accepted_and_tracks_hold(tmp_path, demo_site, capsys):
    """A small payload limit forces every radar scan into sectors: the replay (with the contract's
    256 KiB) rejects none of them and tracks the targets about as well as from whole scans."""
    scores = {}
    for name, limit in (("whole", 256 * 1024), ("sectors", 1500)):
        log, truth, tracks = (tmp_path / f"{name}.{x}.jsonl" for x in ("log", "truth", "tracks"))
        simulate(demo_site, 120.0, log, truth, seed=7, n_targets=20, max_payload_bytes=limit)
        records = [r for r in read_log(log) if "/raw/radar/" in r.topic]
        assert all(len(r.payload) <= limit for r in records)
        radar = [json.loads(r.payload) for r in records]
        if name == "sectors":
            assert sum("sector_deg" in m for m in radar) > 0.8 * len(radar)
            by_sensor = {}
            for m in radar:
                by_sensor.setdefault(m["sensor_id"], []).append(m["seq"])
            assert all(sorted(s) == list(range(len(s))) for s in by_sensor.values())  # each its own seq
        else:
            assert not any("sector_deg" in m for m in radar)
        assert main(["replay", str(log), "--config", str(DEMO_SITE), "--tracks-out", str(tracks)]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["counters"]["rejected"] == 0, summary
        scores[name] = evaluate(truth, tracks)
    whole, sectors = scores["whole"], scores["sectors"]
    assert sectors["gospa"]["mean"] < 1.3 * whole["gospa"]["mean"] + 5.0, (whole, sectors)
    assert sectors["gospa"]["mean"] < 90.0, sectors


def test_a_held_sector_scan_keeps_its_sector_through_a_checkpoint():
    """The reorder buffer's export/import (the node's checkpoint) carries the sector; a state written
    before sectors existed reads back as whole-circle scans."""
    from sensors.reorder import ReorderBuffer

    sector = (math.radians(350.0), math.radians(20.0))
    original = ReorderBuffer(window_s=5.0)
    original.push(make_scan(10.0, np.array([[1.0, 2.0]]), np.eye(2)[None], coverage_radius_m=9000.0,
                            coverage_sector_rad=sector), 10.1)
    arrays, meta = original.export_state()
    restored = ReorderBuffer(window_s=5.0)
    restored.import_state(arrays, meta)
    assert restored.drain()[0].coverage_sector_rad == sector
    for held in meta["held"]:
        del held["coverage_sector_rad"]
    old = ReorderBuffer(window_s=5.0)
    old.import_state(arrays, meta)
    assert old.drain()[0].coverage_sector_rad == (0.0, math.tau)
