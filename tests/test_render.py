"""Columnar snapshot rendering against the per-track renderer it replaced (kept here as the reference)."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from fusion.pipeline import Outputs, Pipeline
from fusion.render import CLASSES, sensor_lists_json
from fusion.replay import replay_file
from tracking.table import TrackTable, sensor_bits
from tracking.tracker import STATUS_NAMES, TrackEstimates

_encode = msgspec.json.Encoder().encode


def reference_sensors(mask_row: np.ndarray) -> list[int]:
    """Set bits of one row of uint64 words, one bit at a time (the old renderer's way)."""
    out = []
    for word, bits in enumerate(mask_row.tolist()):
        for bit in range(64):
            if (int(bits) >> bit) & 1:
                out.append(word * 64 + bit)
    return out


def reference_snapshot(pipeline: Pipeline, t: float, est: TrackEstimates) -> bytes:
    """The renderer as it was before columnar rendering: a dict per track, then msgspec."""
    site, geofence = pipeline.site, pipeline.geofence
    tracks = []
    if len(est):
        lat, lon, _ = site.frame.to_geodetic(est.x[:, 0], est.x[:, 1])
        inside = geofence.index.inside(est.x[:, :2])[:, geofence.countries]
        ids = [geofence.jurisdictions[c].id for c in geofence.countries]
        country = [ids[int(np.argmax(row))] if row.any() else None for row in inside]
        sensor_ids = [s.spec.id for s in site.sensors]
        ve, vn = est.x[:, 2], est.x[:, 3]
        sigma = np.sqrt(np.maximum(0.0, np.linalg.eigvalsh(est.P[:, :2, :2])[:, -1]))
        heading = np.degrees(np.arctan2(ve, vn)) % 360.0
        columns = zip(
            est.track_id.tolist(), est.status.tolist(), np.round(lat, 7).tolist(), np.round(lon, 7).tolist(),
            np.round(est.x[:, :2], 2).tolist(), np.round(est.x[:, 2:4], 3).tolist(),
            np.round(np.hypot(ve, vn), 3).tolist(), np.round(heading, 2).tolist(), np.round(sigma, 2).tolist(),
            np.round(est.P, 4).tolist(), np.round(est.existence, 4).tolist(), np.round(est.class_prob, 4).tolist(),
            country, [reference_sensors(row) for row in est.sensor_mask],
            np.round(est.first_seen, 3).tolist(), np.round(est.last_update, 3).tolist())
        tracks = [{
            "track_id": f"{site.node_id}-{tid}", "status": STATUS_NAMES[status], "lat": la, "lon": lo,
            "east_m": en[0], "north_m": en[1], "vel_east_mps": v[0], "vel_north_mps": v[1],
            "speed_mps": speed, "heading_deg": hdg, "position_sigma_m": sig, "covariance": cov, "existence": ex,
            "classification": dict(zip(CLASSES, probs)), "jurisdiction": where,
            "sensors": [sensor_ids[i] for i in used], "first_seen": first, "last_update": last,
        } for (tid, status, la, lo, en, v, speed, hdg, sig, cov, ex, probs, where, used, first, last) in columns]
    return _encode({"node_id": site.node_id, "t": round(t, 3), "tracks": tracks})


@pytest.fixture(scope="module")
def replayed(demo_site, demo_log):
    kept = Outputs()
    pipeline = replay_file(demo_site, demo_log[0], keep=kept, progress=False)
    return pipeline, kept.snapshots


def test_replay_snapshots_are_byte_identical_to_the_per_track_renderer(replayed):
    pipeline, snapshots = replayed
    assert len(snapshots) > 100
    for snapshot in snapshots:
        assert snapshot.to_json() == reference_snapshot(pipeline, snapshot.t, snapshot.estimates), snapshot.t
    # the log exercises what the columnar path does differently: several sensors per track, tracks in and
    # out of every country (statuses and odd numbers: the next test)
    tracks = [track for s in snapshots for track in s.to_dict()["tracks"]]
    assert len(tracks) > 1000
    assert max(len(track["sensors"]) for track in tracks) >= 2
    assert {track["jurisdiction"] for track in tracks} >= set(pipeline.geofence.country_ids) | {None}


def test_odd_numbers_render_as_msgspec_renders_them(replayed, demo_site):
    """Values whose text is unusual: −0.0, exponents, integers as floats, NaN and ±inf (null)."""
    pipeline = replayed[0]
    rng = np.random.default_rng(4)
    n = 300
    odd = np.array([-0.0, 0.0, 1e-12, -3e-5, 1e17, -2.5e21, 3.0, 123456789.0, np.nan, np.inf, -np.inf, 0.1, 5e-5])
    x = np.where(rng.random((n, 4)) < 0.5, rng.choice(odd, (n, 4)), rng.normal(0, 5e3, (n, 4)))
    P = rng.choice(odd, (n, 4, 4))
    P[:, :2, :2] = np.abs(rng.normal(0, 30, (n, 2, 2)))  # eigvalsh needs finite values
    est = TrackEstimates(
        t=12.3456, track_id=rng.integers(0, 2**40, n), x=x, P=P, status=rng.integers(0, 3, n).astype(np.int8),
        existence=rng.choice(odd, n), class_prob=rng.choice(odd, (n, 5)), first_seen=rng.choice(odd, n),
        last_update=rng.random(n) * 1e9, sensor_mask=rng.integers(0, 2**63, (n, 1)).astype(np.uint64)
        & np.uint64((1 << len(demo_site.sensors)) - 1))
    est.x[:, :2] = np.nan_to_num(est.x[:, :2], nan=1.0, posinf=2e4, neginf=-2e4)  # pyproj needs finite positions
    snapshot = pipeline._snapshot_table(est.t, est)
    from fusion.render import snapshot_json

    assert snapshot_json(snapshot) == reference_snapshot(pipeline, est.t, est)


def test_empty_snapshot(replayed):
    pipeline = replayed[0]
    est = pipeline.tracker.estimates(1e12, rows=np.zeros(0, np.int64))
    assert len(est) == 0
    from fusion.render import snapshot_json

    assert snapshot_json(pipeline._snapshot_table(5.0, est)) == reference_snapshot(pipeline, 5.0, est)


def test_sensor_bits_match_the_table_bit_by_bit():
    rng = np.random.default_rng(1)
    table = TrackTable(50, 130)  # three 64-bit words
    table.cols.sensor_mask[:] = rng.integers(0, 2**63, table.cols.sensor_mask.shape).astype(np.uint64) << np.uint64(1)
    table.cols.sensor_mask[:, 2] &= np.uint64(3)  # sensors 128 and 129: the last ones there are
    table.cols.sensor_mask[0] = 0
    bits = sensor_bits(table.cols.sensor_mask, 130)
    assert bits.shape == (50, 130)
    for row in range(50):
        assert np.flatnonzero(bits[row]).tolist() == reference_sensors(table.cols.sensor_mask[row])


def test_sensor_lists_are_encoded_per_track():
    bits = np.array([[1, 0, 1], [0, 0, 0], [1, 0, 1], [0, 1, 0]], bool)
    texts, which = sensor_lists_json(bits, ("a", "b", "c"))
    assert [texts[k] for k in which] == [b'["a","c"]', b"[]", b'["a","c"]', b'["b"]']


def _table_reference(table) -> bytes:
    """msgspec's encoding of the dict form of a SnapshotTable (the numbers as they are, per track)."""
    tracks = []
    for i in range(len(table)):
        tracks.append({
            "track_id": f"{table.node_id}-{int(table.track_id[i])}", "status": STATUS_NAMES[table.status[i]],
            **{name: float(getattr(table, name)[i]) for name in (
                "lat", "lon", "east_m", "north_m", "vel_east_mps", "vel_north_mps", "speed_mps", "heading_deg",
                "position_sigma_m")},
            "covariance": table.covariance[i].tolist(), "existence": float(table.existence[i]),
            "classification": dict(zip(CLASSES, table.class_prob[i].tolist())),
            "jurisdiction": table.country_ids[table.country[i]] if table.country[i] >= 0 else None,
            "sensors": [s for s, on in zip(table.sensor_ids, table.sensor_bits[i]) if on],
            "first_seen": float(table.first_seen[i]), "last_update": float(table.last_update[i])})
    return _encode({"node_id": table.node_id, "t": table.t, "tracks": tracks})


def test_every_digit_pattern_of_rounded_numbers_renders_as_msgspec():
    """Rounded values with every count of trailing zeros, long integer parts, both sides of 10⁻⁴ and
    10¹⁵, asymmetric covariances, non-ASCII ids: the kernel's digits against msgspec's."""
    from fusion.render import SnapshotTable, snapshot_json

    rng = np.random.default_rng(9)
    n = 4000
    scale = 10.0 ** rng.integers(-6, 16, n)  # magnitudes from 1e-6 to 1e15

    def column(decimals, shape=(n,)):
        raw = rng.normal(0, 1, shape) * scale.reshape((n,) + (1,) * (len(shape) - 1))
        short = rng.random(shape) < 0.2
        raw[short] = np.round(raw[short], 1)  # short fractions: trailing zeros to drop
        return np.round(raw, decimals)

    table = SnapshotTable(
        node_id="nœud-7", t=round(1.795e9 + 0.1234, 3), track_id=rng.integers(0, 10**18, n),
        status=rng.integers(0, 3, n).astype(np.int8), lat=column(7), lon=np.round(rng.uniform(-180, 180, n), 7),
        east_m=column(2), north_m=column(2), vel_east_mps=column(3), vel_north_mps=column(3), speed_mps=column(3),
        heading_deg=np.round(rng.uniform(0, 360, n), 2), position_sigma_m=column(2),
        covariance=column(4, (n, 4, 4)), existence=np.round(rng.random(n), 4),
        class_prob=np.round(rng.dirichlet(np.ones(5), n), 4), country=rng.integers(-1, 2, n),
        country_ids=("país-a", "b"), sensor_bits=rng.random((n, 70)) < 0.05,
        sensor_ids=tuple(f"s{k}" for k in range(70)), first_seen=np.round(1.795e9 + rng.random(n) * 1e4, 3),
        last_update=np.round(rng.choice([0.0, 1.5, 1.795e9, 123.456]), 3) + np.zeros(n))
    assert snapshot_json(table) == _table_reference(table)


_DECIMALS_BY_FIELD = {"lat": 7, "lon": 7, "east_m": 2, "north_m": 2, "vel_east_mps": 3, "vel_north_mps": 3,
                      "speed_mps": 3, "heading_deg": 2, "position_sigma_m": 2, "covariance": 4, "existence": 4,
                      "class_prob": 4, "first_seen": 3, "last_update": 3}


def _any_float():
    """Any double, with the awkward ones often: ±0.0, NaN, ±inf, subnormals, both sides of 10⁻⁴ and
    10¹⁵, halfway cases of every decimal count, long integer parts."""
    from hypothesis import strategies as st

    halfway = st.builds(lambda k, d: (k + 0.5) / 10.0 ** d, st.integers(-10**9, 10**9), st.integers(0, 8))
    edges = st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-4, -1e-4, 9.99995e-5, 5e-324, 1e15, 1e16,
                             99_999_999.99999995, 1.795e9 + 0.0005, 2.0**53, -(2.0**63)])
    return st.one_of(st.floats(allow_nan=True, allow_infinity=True), halfway, edges,
                     st.floats(-1e6, 1e6), st.integers(-10**12, 10**12).map(float))


def test_any_rounded_values_render_as_msgspec_renders_them():
    """Property: for any values, rounded as snapshot_table rounds them, the kernel's bytes are msgspec's."""
    from hypothesis import given, settings, strategies as st

    from fusion.render import SnapshotTable, snapshot_json

    @settings(max_examples=300, deadline=None)
    @given(st.data(), st.integers(1, 4))
    def check(data, n):
        def column(name, shape=()):
            values = data.draw(st.lists(_any_float(), min_size=n * int(np.prod(shape)),
                                        max_size=n * int(np.prod(shape))))
            with np.errstate(all="ignore"):
                return np.round(np.array(values, float).reshape((n, *shape)), _DECIMALS_BY_FIELD[name])

        table = SnapshotTable(
            node_id="edge-1", t=round(data.draw(st.floats(0, 2e9)), 3),
            track_id=np.array(data.draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=n, max_size=n)), np.int64),
            status=np.array(data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), np.int8),
            **{name: column(name) for name in ("lat", "lon", "east_m", "north_m", "vel_east_mps", "vel_north_mps",
                                               "speed_mps", "heading_deg", "position_sigma_m", "existence",
                                               "first_seen", "last_update")},
            covariance=column("covariance", (4, 4)), class_prob=column("class_prob", (5,)),
            country=np.array(data.draw(st.lists(st.integers(-1, 1), min_size=n, max_size=n)), np.int64),
            country_ids=("a", "b"), sensor_bits=np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=3,
                                                                                    max_size=3), min_size=n,
                                                                           max_size=n)), bool),
            sensor_ids=("s0", "s1", "s2"))
        assert snapshot_json(table) == _table_reference(table)

    check()


def test_largest_eigenvalue_is_eigvalsh_bit_for_bit():
    """The closed form behind position_sigma_m against LAPACK, on a million matrices: covariances of
    every scale, nearly diagonal ones (dsterf's split), equal diagonals, indefinite and asymmetric ones."""
    from fusion.render import largest_eigenvalue_2x2

    rng = np.random.default_rng(5)
    n = 250_000
    factor = rng.normal(0, 1, (n, 2, 2)) * 10.0 ** rng.uniform(-4, 5, (n, 1, 1))
    covariance = factor @ factor.transpose(0, 2, 1)
    nearly_diagonal = covariance.copy()
    nearly_diagonal[:, 1, 0] *= rng.choice([0.0, 1e-9, 1e-17, 1e-30], n)
    equal_diagonal = covariance.copy()
    equal_diagonal[:, 1, 1] = equal_diagonal[:, 0, 0] * rng.choice([1.0, 1.0 + 2**-52, 2.0], n)
    general = rng.normal(0, 1, (n, 2, 2)) * 10.0 ** rng.uniform(-4, 5, (n, 1, 1))  # indefinite, asymmetric
    for matrices in (covariance, nearly_diagonal, equal_diagonal, general, np.zeros((3, 2, 2))):
        expected = np.linalg.eigvalsh(matrices)[:, -1]
        assert np.array_equal(largest_eigenvalue_2x2(matrices).view(np.int64), expected.view(np.int64))


def test_one_compiled_kernel_serves_every_snapshot():
    """With and without odd floats the kernel gets arguments of the same types: one compiled version
    (each further one costs a compile on a cold cache and a load at every start)."""
    from fusion.render import _compile
    from fusion.render_kernels import write_tracks

    _compile()  # renders a NaN (the second pass, with the odd floats' texts) and plain numbers
    assert len(write_tracks.signatures) == 1, write_tracks.signatures
