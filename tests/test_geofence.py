"""Geofence kernels against shapely, state machines on scenarios, properties with hypothesis."""

import json
import re

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr
from shapely.geometry import MultiPolygon, Polygon, box

from fusion.synthetic import make_scan
from geo.config import GeofenceConfig
from geo.frame import LocalFrame
from geo.geofence import Geofence, TrackUpdate
from geo.geometry import JurisdictionIndex
from geo.jurisdictions import Jurisdiction, JurisdictionError, load_jurisdictions
from tracking import Tracker, TrackerConfig

FRAME = LocalFrame(47.0, 8.0, 0.0)


def jur(id_, kind, polygon, agency, share_with=(), alerts=None, dwell_s=None, severity="high"):
    defaults = {"country": {"border_crossing", "approach"}, "sector": {"border_crossing", "approach"},
                "zone": {"zone_entry", "zone_exit", "dwell"}}
    return Jurisdiction(id_, id_, kind, agency, tuple(share_with), severity, dwell_s,
                        frozenset(alerts or defaults[kind]), polygon)


def meander(n_vertices=2000, width=20_000.0):
    e = np.linspace(-width, width, n_vertices)
    n = 150 * np.sin(2 * np.pi * e / 3000) + 60 * np.sin(2 * np.pi * e / 700)
    return np.column_stack((e, n))


def two_countries(n_vertices=2000, extra=()):
    line = meander(n_vertices)
    south = Polygon(np.vstack((line, [[20_000, -20_000], [-20_000, -20_000]])))
    north = Polygon(np.vstack((line[::-1], [[-20_000, 20_000], [20_000, 20_000]])))
    return (jur("country-a", "country", south, "agency-a"), jur("country-b", "country", north, "agency-b"), *extra)


def border_north(e):
    return 150 * np.sin(2 * np.pi * e / 3000) + 60 * np.sin(2 * np.pi * e / 700)


def fence(jurisdictions, **config):
    return Geofence(tuple(jurisdictions), FRAME, GeofenceConfig(**config), "edge-1")


def feed_path(geofence, times, xy, sigma=5.0, track_id=1, confirmed=True):
    alerts = []
    xy = np.asarray(xy, float)
    velocity = np.gradient(xy, axis=0) if len(xy) > 1 else np.zeros_like(xy)
    for t, (e, n), v in zip(times, xy, velocity):
        P = np.diag([sigma**2, sigma**2, 1.0, 1.0])
        alerts += geofence.update(TrackUpdate(
            t=float(t), track_id=np.array([track_id]), x=np.array([[e, n, v[0], v[1]]]), P=P[None],
            confirmed=np.array([confirmed]), quality=np.array([0.99]), class_prob=np.full((1, 5), 0.2)))
    return alerts


# -- geometry against shapely ------------------------------------------------------
def test_containment_matches_shapely_with_holes_multipolygons_and_a_long_border():
    holed = Polygon([(-3000, -3000), (3000, -3000), (3000, 3000), (-3000, 3000)],
                    [[(-1000, -1000), (1000, -1000), (1000, 1000), (-1000, 1000)]])
    multi = MultiPolygon([box(5000, 5000, 6000, 6000), box(7000, 5000, 8000, 7000)])
    polygons = [holed, multi, *(j.polygon for j in two_countries(5000))]
    index = JurisdictionIndex(polygons)
    rng = np.random.default_rng(0)
    xy = rng.uniform(-10_000, 10_000, (20_000, 2))
    xy[:2000, 1] = rng.uniform(-300, 300, 2000)  # many points near the meander
    got = index.inside(xy)
    for j, polygon in enumerate(polygons):
        np.testing.assert_array_equal(got[:, j], shapely.intersects_xy(polygon, xy[:, 0], xy[:, 1]))


def test_inside_probability_is_phi_of_signed_distance_over_normal_sigma():
    index = JurisdictionIndex([box(0, -1e5, 1e5, 1e5)])  # the half-plane east > 0, locally
    east = np.linspace(-60, 60, 41)
    xy = np.column_stack((east, np.zeros_like(east)))
    cov = np.tile(np.array([[20.0**2, 0.0], [0.0, 300.0**2]]), (len(east), 1, 1))  # σ along the normal = 20 m
    p = index.inside_probability(xy, cov)[:, 0]
    np.testing.assert_allclose(p, ndtr(east / 20.0), atol=1e-9)
    far = index.inside_probability(np.array([[5000.0, 0.0], [-5000.0, 0.0]]), cov[:2])[:, 0]
    np.testing.assert_array_equal(far, [1.0, 0.0])


def test_distance_to_boundary_matches_shapely():
    border = two_countries(5000)[0].polygon
    index = JurisdictionIndex([border])
    rng = np.random.default_rng(3)
    xy = np.column_stack((rng.uniform(-15_000, 15_000, 500), rng.uniform(-200, 200, 500)))
    cov = np.tile(np.eye(2) * 100.0, (500, 1, 1))  # σ = 10 m isotropic: p = Φ(s/10)
    p = index.inside_probability(xy, cov)[:, 0]
    s = shapely.distance(border.boundary, shapely.points(xy))
    s = np.where(shapely.intersects_xy(border, xy[:, 0], xy[:, 1]), s, -s)
    near = np.abs(s) < 50
    np.testing.assert_allclose(p[near], ndtr(s[near] / 10.0), atol=1e-9)


def test_distance_to_holes_and_multipolygon_parts_matches_shapely():
    holed = Polygon([(-3000, -3000), (3000, -3000), (3000, 3000), (-3000, 3000)],
                    [[(-1000, -1000), (1000, -1000), (1000, 1000), (-1000, 1000)]])
    multi = MultiPolygon([box(5000, 5000, 6000, 6000), box(7000, 5000, 8000, 7000)])
    index = JurisdictionIndex([holed, multi])
    rng = np.random.default_rng(4)
    xy = np.vstack((rng.uniform(-3500, 3500, (3000, 2)), rng.uniform(4500, 8500, (3000, 2))))
    cov = np.tile(np.array([[400.0, 150.0], [150.0, 100.0]]), (len(xy), 1, 1))  # correlated, σ up to 20 m
    p = index.inside_probability(xy, cov)
    for j, polygon in enumerate([holed, multi]):
        nearest = shapely.get_coordinates(shapely.shortest_line(polygon.boundary, shapely.points(xy))).reshape(-1, 2, 2)[:, 0]
        offset = xy - nearest
        s = np.hypot(*offset.T)
        normal = offset / np.maximum(s, 1e-12)[:, None]
        sigma_n = np.sqrt(np.einsum("ki,kij,kj->k", normal, cov, normal))
        s = np.where(shapely.intersects_xy(polygon, xy[:, 0], xy[:, 1]), s, -s)
        np.testing.assert_allclose(p[:, j], ndtr(s / sigma_n), atol=1e-9)
        near = np.abs(s) < 6 * np.sqrt(400.0 + 150.0)  # within certain_sigmas × the largest σ
        assert 100 < near.sum() < len(xy) - 100
        np.testing.assert_array_equal(p[~near, j], (s[~near] > 0).astype(float))


def test_containment_is_exact_where_boundaries_run_through_cell_centres():
    """Edges along the grid's cell centres: the parity reference points must move off them."""
    from geo.grid import BoundaryGrid

    polygons = [box(0, 0, 1000, 1000), box(50, 50, 450, 450), Polygon([(50, 550), (950, 950), (50, 950)])]
    grid = BoundaryGrid(polygons, cell_m=100.0)
    rng = np.random.default_rng(5)
    xy = rng.uniform(-100, 1100, (20_000, 2))
    got = grid.inside_probability(xy, np.zeros((len(xy), 2, 2)), 0.0) > 0.5
    for j, polygon in enumerate(polygons):
        np.testing.assert_array_equal(got[:, j], shapely.intersects_xy(polygon, xy[:, 0], xy[:, 1]))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_first_reach_matches_shapely(seed):
    countries = two_countries(3000)
    index = JurisdictionIndex([c.polygon for c in countries])
    rng = np.random.default_rng(seed)
    starts = np.column_stack((rng.uniform(-15_000, 15_000, 200), rng.uniform(-800, 800, 200)))
    ends = starts + rng.normal(0, 400, (200, 2))
    owners = rng.integers(0, 2, 200)
    fraction = index.first_reach(starts, ends, owners)
    for i in range(200):
        line = shapely.linestrings([starts[i], ends[i]])
        meet = shapely.get_coordinates(shapely.intersection(line, countries[owners[i]].polygon.boundary))
        assert (fraction[i] <= 1.0) == (len(meet) > 0)
        if len(meet):
            first = np.hypot(*(meet - starts[i]).T).min() / np.hypot(*(ends[i] - starts[i]))
            assert fraction[i] == pytest.approx(first, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_segment_crossings_match_shapely_intersections(seed):
    country = two_countries(3000)[0].polygon
    boundary = country.boundary
    index = JurisdictionIndex([country])
    rng = np.random.default_rng(seed)
    path = np.column_stack((np.cumsum(rng.uniform(-200, 400, 12)), rng.uniform(-400, 400, 12)))
    times = np.arange(12.0)
    hits = index.crossings(path, times, [0])
    expected = 0
    for a, b in zip(path, path[1:]):
        expected += len(shapely.get_coordinates(shapely.intersection(shapely.linestrings([a, b]), boundary)))
    assert len(hits) == expected
    assert [h[0] for h in hits] == sorted(h[0] for h in hits)
    for t, point in hits:
        assert shapely.distance(boundary, shapely.points(point)) < 1e-6


# -- state machines ----------------------------------------------------------------
def test_walker_along_the_border_raises_nothing_but_a_crosser_is_reported_fast():
    """Tracked by a radar south of the border whose 15 m range noise is across the border."""
    juris = two_countries()
    for offset in (30.0, 60.0, 90.0):
        steps = 900
        e = np.linspace(-6000, 6000, steps)
        truth = np.column_stack((e, border_north(e) - offset))
        R = np.array([[60.0**2, 0.0], [0.0, 15.0**2]])  # cross-range 60 m along the border, range 15 m across
        rng = np.random.default_rng(int(offset))
        tracker, geofence = Tracker(TrackerConfig(), 1), fence(juris)
        alerts = []
        for k in range(steps):
            z = truth[k] + rng.multivariate_normal([0, 0], R)
            step = tracker.step(make_scan(float(k), z[None], R[None], coverage_radius_m=1e6))
            alerts += _geofence_step(tracker, geofence, step, float(k))
        assert [a for a in alerts if a.type == "border_crossing"] == [], offset
    # a real crossing, same radar
    steps = 200
    truth = np.column_stack((np.full(steps, 1000.0), np.linspace(-150, 450, steps)))  # 3 m/s
    tracker, geofence, alerts = Tracker(TrackerConfig(), 1), fence(juris), []
    for k in range(steps):
        z = truth[k] + rng.multivariate_normal([0, 0], R)
        step = tracker.step(make_scan(float(k), z[None], R[None], coverage_radius_m=1e6))
        alerts += _geofence_step(tracker, geofence, step, float(k))
    crossings = [a for a in alerts if a.type == "border_crossing"]
    assert len(crossings) == 1
    true_t = float(np.interp(border_north(1000.0), truth[:, 1], np.arange(steps)))
    assert abs(crossings[0].t - true_t) < 15.0
    assert crossings[0].raised_t - true_t < 30.0  # 'within a few updates' of a 1.5 m/s walker and 15 m noise
    assert crossings[0].from_jurisdiction == "country-a" and crossings[0].to_jurisdiction == "country-b"


def _geofence_step(tracker, geofence, step, t):
    tab = tracker.table
    rows = np.union1d(step.updated, step.confirmed)
    rows = rows[tab.alive[rows]]
    out = geofence.update(TrackUpdate(t, tab.track_id[rows], tab.x[rows], tab.P[rows], tracker.established(rows),
                                      1.0 - 0.5 ** (tab.hits[rows] / 2), tab.class_prob[rows]))
    geofence.forget(step.deleted_ids)
    return out


def zigzag(k, excursion):
    """A path crossing the meander k times, going ``excursion`` m beyond it each time."""
    points = [(0.0, -excursion)]
    for i in range(k):
        points.append((200.0 * (i + 1), excursion if i % 2 == 0 else -excursion))
    if k == 0:
        points.append((800.0, -excursion * 0.5))
    xy = np.array(points)
    # densify to 1 s steps at ~1.5 m/s
    dense = [xy[0]]
    for a, b in zip(xy, xy[1:]):
        n = max(2, int(np.hypot(*(b - a)) / 1.5))
        dense += list(a + (b - a) * np.linspace(0, 1, n)[1:, None])
    dense = np.array(dense)
    dense[:, 1] += border_north(dense[:, 0])
    return dense


@settings(max_examples=25, deadline=None)
@given(k=st.integers(0, 6), excursion=st.floats(80.0, 600.0), sigma=st.floats(1.0, 20.0))
def test_k_crossings_give_k_alerts_in_order_and_stable_ids(k, excursion, sigma):
    path = zigzag(k, excursion)
    times = np.arange(len(path), dtype=float)
    alerts = feed_path(fence(two_countries()), times, path, sigma=sigma)
    crossings = [a for a in alerts if a.type == "border_crossing"]
    assert len(crossings) == k
    assert [a.t for a in crossings] == sorted(a.t for a in crossings)
    directions = [(a.from_jurisdiction, a.to_jurisdiction) for a in crossings]
    assert directions == [("country-a", "country-b") if i % 2 == 0 else ("country-b", "country-a") for i in range(k)]
    for a in crossings:
        e, n, _ = FRAME.to_enu(a.lat, a.lon)
        assert abs(n - border_north(e)) < 1.0  # the point is on the border
    again = feed_path(fence(two_countries()), times, path, sigma=sigma)
    assert [a.alert_id for a in again] == [a.alert_id for a in alerts]
    assert len({a.alert_id for a in alerts}) == len(alerts)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), depth=st.floats(40.0, 3000.0))
def test_a_track_that_never_leaves_country_a_raises_no_crossing(seed, depth):
    rng = np.random.default_rng(seed)
    e = np.cumsum(rng.uniform(-20, 20, 300)) + rng.uniform(-5000, 5000)
    n = border_north(e) - depth - np.abs(np.cumsum(rng.normal(0, 3, 300)))
    alerts = feed_path(fence(two_countries()), np.arange(300.0), np.column_stack((e, n)), sigma=8.0)
    assert not [a for a in alerts if a.type == "border_crossing"]


def test_one_sparse_step_through_a_thin_country_yields_two_alerts_in_order():
    a = jur("a", "country", box(-5000, -5000, 0, 5000), "agency-a")
    c = jur("c", "country", box(0, -5000, 200, 5000), "agency-c")
    b = jur("b", "country", box(200, -5000, 5000, 5000), "agency-b")
    path = np.array([[-500.0, 0.0], [-400.0, 0.0], [600.0, 0.0], [700.0, 0.0]])
    alerts = feed_path(fence([a, c, b]), np.array([0.0, 10.0, 20.0, 30.0]), path)
    crossings = [x for x in alerts if x.type == "border_crossing"]
    assert [(x.from_jurisdiction, x.to_jurisdiction) for x in crossings] == [("a", "c"), ("c", "b")]
    assert crossings[0].t == pytest.approx(14.0) and crossings[1].t == pytest.approx(16.0)


def test_zone_entry_dwell_exit_and_recipients():
    zone = jur("depot", "zone", box(-2000, -2000, -1000, -1000), "agency-a-mil", dwell_s=60.0)
    sector = jur("sector-east", "sector", box(0, -1000, 5000, 1000), "joint-centre", share_with=["agency-x"])
    juris = two_countries(extra=(zone, sector))
    path = np.concatenate((np.column_stack((np.linspace(-2500, -1500, 100), np.full(100, -1500.0))),
                           np.tile([[-1500.0, -1500.0]], (90, 1)),
                           np.column_stack((np.linspace(-1500, -2500, 100), np.full(100, -1500.0)))))
    alerts = feed_path(fence(juris), np.arange(len(path), dtype=float), path)
    kinds = [a.type for a in alerts if a.type != "approach"]
    assert kinds == ["zone_entry", "dwell", "zone_exit"]
    for a in alerts:
        assert a.recipients == ("agency-a-mil",)  # a zone that shares with no one reaches no one else
        assert a.jurisdiction == "depot"
    entry, dwell = alerts[0], alerts[1]
    assert dwell.t - entry.t >= 60.0
    # a crossing inside the sector goes to both countries and the sector's agency and its partner
    cross = zigzag(1, 300.0)
    cross[:, 0] += 2000
    alerts = feed_path(fence(juris), np.arange(len(cross), dtype=float), cross)
    crossing = next(a for a in alerts if a.type == "border_crossing")
    assert set(crossing.recipients) == {"agency-a", "agency-b", "joint-centre", "agency-x"}
    assert crossing.severity == "high"


def test_alert_types_disabled_for_a_zone_do_not_fire():
    zone = jur("quiet", "zone", box(-2000, -2000, -1000, -1000), "agency-z", alerts={"zone_exit"})
    path = np.column_stack((np.linspace(-2500, -500, 200), np.full(200, -1500.0)))
    alerts = feed_path(fence(two_countries(extra=(zone,))), np.arange(200.0), path)
    assert [a.type for a in alerts if a.type != "approach"] == ["zone_exit"]


def _collection(tmp_path, *features):
    """A jurisdiction file: a country square about the origin plus ``features`` (properties, lon/lat ring)."""
    square = [[7.9, 46.9], [8.1, 46.9], [8.1, 47.1], [7.9, 47.1], [7.9, 46.9]]
    items = [({"id": "country-a", "name": "A", "kind": "country", "agency": "agency-a"}, square), *features]
    path = tmp_path / "jurisdictions.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": [ring]}}
        for props, ring in items]}))
    return path


_DEPOT = [[8.01, 47.01], [8.02, 47.01], [8.02, 47.02], [8.01, 47.02], [8.01, 47.01]]


def test_a_zone_whose_default_alerts_include_dwell_needs_dwell_s(tmp_path):
    """A zone with no ``alerts`` list gets entry, exit and dwell; without ``dwell_s`` its dwell alert
    could never fire, so the file is refused, naming the file, the feature and the field."""
    path = _collection(tmp_path, ({"id": "depot", "name": "Depot", "kind": "zone", "agency": "agency-z"}, _DEPOT))
    with pytest.raises(JurisdictionError) as error:
        load_jurisdictions(path, FRAME)
    message = str(error.value)
    assert str(path) in message and "features[1]" in message and "'depot'" in message
    assert "dwell_s" in message and "default" in message
    fine = _collection(tmp_path, ({"id": "depot", "name": "Depot", "kind": "zone", "agency": "agency-z",
                                   "alerts": ["zone_entry", "zone_exit"]}, _DEPOT))
    (zone,) = [j for j in load_jurisdictions(fine, FRAME) if j.kind == "zone"]
    assert zone.alerts == {"zone_entry", "zone_exit"} and zone.dwell_s is None


def test_geofence_refuses_a_dwell_zone_without_dwell_s():
    zone = jur("depot", "zone", box(-2000, -2000, -1000, -1000), "agency-a-mil")  # default alerts, dwell_s None
    with pytest.raises(ValueError, match="depot.*dwell_s"):
        fence(two_countries(extra=(zone,)))
    quiet = jur("depot", "zone", box(-2000, -2000, -1000, -1000), "agency-a-mil", alerts={"zone_entry"})
    path = np.column_stack((np.linspace(-2500, -1500, 100), np.full(100, -1500.0)))
    assert [a.type for a in feed_path(fence(two_countries(extra=(quiet,))), np.arange(100.0), path)
            if a.type != "approach"] == ["zone_entry"]


def test_an_invalid_polygon_is_reported_by_feature_and_lon_lat(tmp_path):
    """A bow-tie ring self-intersects at its centre: the message names the feature and gives that point
    in the file's own lon/lat, not in the local metres it was checked in."""
    bowtie = [[8.01, 47.01], [8.03, 47.03], [8.03, 47.01], [8.01, 47.03], [8.01, 47.01]]
    path = _collection(tmp_path, ({"id": "depot", "name": "Fuel depot", "kind": "zone", "agency": "agency-z",
                                   "dwell_s": 60.0}, bowtie))
    with pytest.raises(JurisdictionError) as error:
        load_jurisdictions(path, FRAME)
    message = str(error.value)
    assert str(path) in message and "features[1]" in message and "'depot'" in message and "'Fuel depot'" in message
    match = re.search(r"invalid polygon: Self-intersection at lon ([-0-9.]+), lat ([-0-9.]+)", message)
    assert match, message
    # the two diagonals meet at the middle of the ring in lon/lat to well under a metre (1e-5° ≈ 1 m)
    assert float(match[1]) == pytest.approx(8.02, abs=1e-5) and float(match[2]) == pytest.approx(47.02, abs=1e-5)


def test_confirmed_only_false_sends_a_tentative_tracks_alerts_at_once():
    path = zigzag(1, 300.0)
    times = np.arange(len(path), dtype=float)
    held = feed_path(fence(two_countries()), times, path, confirmed=False)
    assert [a for a in held if a.type == "border_crossing"] == []
    sent = [a for a in feed_path(fence(two_countries(), confirmed_only=False), times, path, confirmed=False)
            if a.type == "border_crossing"]
    assert len(sent) == 1 and sent[0].raised_t < times[-1]  # raised when decided, not at a later confirmation
    assert sent[0].raised_t - sent[0].t < 30.0


def test_approach_warns_once_with_eta():
    path = np.column_stack((np.full(120, 1000.0), np.linspace(-600, -300, 120)))  # 2.5 m/s toward the border
    alerts = feed_path(fence(two_countries(), approach_horizon_s=200.0), np.arange(120.0), path)
    approach = [a for a in alerts if a.type == "approach"]
    assert len(approach) == 1
    k = int(approach[0].t)
    speed = 300.0 / 119
    distance = border_north(1000.0) - path[k, 1]
    assert approach[0].eta_s <= 200.0
    assert approach[0].eta_s == pytest.approx(distance / speed, rel=0.02)
    assert set(approach[0].recipients) == {"agency-a", "agency-b"}


def test_tentative_track_alerts_are_held_until_confirmation():
    path = zigzag(1, 300.0)
    times = np.arange(len(path), dtype=float)
    geofence = fence(two_countries())
    held = feed_path(geofence, times, path, confirmed=False)
    assert held == []
    released = feed_path(geofence, [times[-1] + 1], [path[-1]], confirmed=True)
    crossing = [a for a in released if a.type == "border_crossing"]
    assert len(crossing) == 1 and crossing[0].raised_t == times[-1] + 1
    geofence2 = fence(two_countries())
    feed_path(geofence2, times, path, confirmed=False)
    geofence2.forget([1])
    assert feed_path(geofence2, [times[-1] + 1], [path[-1]], confirmed=True) == []


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.lists(st.integers(0, 400), max_size=60)), max_size=30))
def test_slots_map_ids_like_a_dict(ops):
    """Track id → slot through sorted arrays: stable while known, distinct, reused only after free."""
    from geo.slots import Slots

    slots, reference = Slots(n_zones=2, capacity=4), {}
    for is_free, ids in ops:
        ids = np.array(sorted(set(ids)) if is_free else list(dict.fromkeys(ids)), np.int64)
        if is_free:
            slots.free(ids)
            for tid in ids.tolist():
                reference.pop(tid, None)
            continue
        got = slots.slots(ids)
        for tid, slot in zip(ids.tolist(), got.tolist()):
            assert reference.setdefault(tid, slot) == slot  # a known track keeps its slot
        assert len(set(reference.values())) == len(reference)  # no two live tracks share a slot
        assert len(slots) == len(reference)


def _crossings_of(path: np.ndarray) -> list[tuple[float, str, str]]:
    """True crossings of a 1 s path over the meander: (time, from, to), interpolated on the step."""
    side = path[:, 1] - border_north(path[:, 0])
    out = []
    for k in np.flatnonzero(np.sign(side[1:]) != np.sign(side[:-1])):
        t = k + side[k] / (side[k] - side[k + 1])
        out.append((float(t), *(("country-a", "country-b") if side[k] < 0 else ("country-b", "country-a"))))
    return out


def test_crossing_recall_and_precision_on_a_seeded_multi_target_scenario():
    """30 crossers at 2–8 m/s and up to 40° off the border's normal, 15 walkers 30–90 m inside the
    meander, one position sensor (σ 15 m, Pd 0.9, 10 false alarms a scan along the border), tracker
    and geofence as in the pipeline: crossing recall and precision ≥ 0.95, nothing from the walkers."""
    rng = np.random.default_rng(42)
    steps = 300
    paths = []
    for _ in range(30):
        e0, d0, south = rng.uniform(-15_000, 15_000), rng.uniform(150, 400), rng.random() < 0.5
        speed, off = rng.uniform(2, 8), np.radians(rng.uniform(-40, 40))
        sign = 1.0 if south else -1.0  # heading north from the south side, south from the north side
        v = speed * np.array([np.sin(off), sign * np.cos(off)])
        start = np.array([e0, border_north(e0) - sign * d0])
        paths.append(start + np.arange(steps)[:, None] * v)
    for _ in range(15):
        e0, offset, sign = rng.uniform(-15_000, 14_000), rng.uniform(30, 90), rng.choice((-1.0, 1.0))
        e = e0 + 1.5 * np.arange(steps)
        paths.append(np.column_stack((e, border_north(e) - sign * offset)))
    truth = [(i, *c) for i, p in enumerate(paths) for c in _crossings_of(p)]
    assert len(truth) >= 30
    sigma, R = 15.0, np.eye(2) * 15.0**2
    tracker, geofence, alerts = Tracker(TrackerConfig(), 1), fence(two_countries(3000)), []
    for k in range(steps):
        seen = np.array([p[k] for p in paths if rng.random() < 0.9])
        noisy = seen + rng.normal(0, sigma, seen.shape)
        e_c = rng.uniform(-16_000, 16_000, 10)
        clutter = np.column_stack((e_c, border_north(e_c) + rng.uniform(-1000, 1000, 10)))
        z = np.concatenate((noisy, clutter))
        step = tracker.step(make_scan(float(k), z, np.repeat(R[None], len(z), axis=0), coverage_radius_m=1e6))
        alerts += _geofence_step(tracker, geofence, step, float(k))
    raised = [a for a in alerts if a.type == "border_crossing"]
    points = [FRAME.to_enu(a.lat, a.lon)[:2] for a in raised]
    used, matched = set(), 0
    for i, t_true, src, dst in truth:
        e_true = float(np.interp(t_true, np.arange(steps), paths[i][:, 0]))
        for n, a in enumerate(raised):
            if n in used or (a.from_jurisdiction, a.to_jurisdiction) != (src, dst) or abs(a.t - t_true) > 20:
                continue
            if abs(float(points[n][0]) - e_true) < 100:
                used.add(n)
                matched += 1
                break
    recall, precision = matched / len(truth), (len(used) / len(raised) if raised else 1.0)
    assert recall >= 0.95 and precision >= 0.95, (recall, precision, len(truth), len(raised))


def _slots_with_history(rng: np.random.Generator):
    """A slot table grown to 64 slots, 20 tracks known (ids not in slot order), rings of every fill
    (one wrapped), a held alert."""
    from geo.alerts import Alert
    from geo.slots import MAX_PATH, Slots

    slots = Slots(n_zones=2, capacity=4)
    slots.slots(np.arange(100, 160, dtype=np.int64))
    slots.free(np.arange(100, 160, 3, dtype=np.int64))
    known = slots._ids
    for k, slot in enumerate(slots.slots(known).tolist()):
        n = [0, 1, 5, MAX_PATH, MAX_PATH + 7][k % 5]
        for i in range(n):
            head = slots.path_head[slot]
            slots.path_xy[slot, head] = rng.normal(size=2)
            slots.path_t[slot, head] = float(i)
            slots.path_head[slot] = (head + 1) % MAX_PATH
            slots.path_len[slot] = min(slots.path_len[slot] + 1, MAX_PATH)
        slots.country[slot] = k % 3 - 1
        slots.member[slot] = rng.random(2) < 0.5
        slots.entered[slot] = rng.random(2)
    slot = int(slots.slots(known[7:8])[0])
    slots.pending[slot] = [Alert("a", "zone_entry", 1.0, 1.0, "n", f"n-{known[7]}", 0.0, 0.0, "z", ("x",), "low",
                                 0.9, {"person": 1.0}, 1.0, 0.0)]
    slots.has_pending[slot] = True
    return slots


def _same_tracks(a, b) -> None:
    """Every known track has the same state, path and held alerts in both tables."""
    assert a._ids.tolist() == b._ids.tolist()
    sa, sb = a.slots(a._ids), b.slots(b._ids)
    for name in ("country", "warned", "has_pending", "member", "dwelled", "entered", "path_len"):
        np.testing.assert_array_equal(getattr(a, name)[sa], getattr(b, name)[sb])
    for x, y in zip(sa.tolist(), sb.tolist()):
        for u, v in zip(a.path(x), b.path(y)):
            np.testing.assert_array_equal(u, v)
        assert [al.alert_id for al in a.pending.get(x, [])] == [al.alert_id for al in b.pending.get(y, [])]


def test_slots_checkpoint_keeps_every_known_track_and_only_those():
    from fusion.live.checkpoint import decode, encode
    from geo.slots import Slots

    slots = _slots_with_history(np.random.default_rng(3))
    arrays, meta = decode(encode(*slots.export_state()))
    assert arrays["country"].shape[0] == len(slots) == 40
    assert arrays["path_xy"].shape[0] == slots.path_len[slots.slots(slots._ids)].sum()  # no empty ring slots
    back = Slots(n_zones=2)
    back.import_state(arrays, meta)
    _same_tracks(slots, back)
    new = back.slots(np.array([999], np.int64))  # the next new track takes a free slot
    assert new[0] not in back.slots(slots._ids).tolist()


def test_a_format_1_slots_checkpoint_is_read():
    """Format 1 kept the whole table slot by slot; a node upgraded over such a checkpoint goes on."""
    from geo.slots import Slots

    slots = _slots_with_history(np.random.default_rng(4))
    whole = {name: getattr(slots, name) for name in ("country", "warned", "has_pending", "member", "dwelled",
                                                    "entered", "path_xy", "path_t", "path_len", "path_head")}
    whole.update(ids=slots._ids, slot_of=slots._slot_of, free=np.array(slots._free, np.int64))
    from geo.slots import _alert_data
    pending = {str(s): [_alert_data(a) for a in alerts] for s, alerts in slots.pending.items()}
    back = Slots(n_zones=2)
    back.import_state(whole, {"pending": pending})
    _same_tracks(slots, back)
