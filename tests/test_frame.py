import numpy as np
import pytest
from pyproj import Transformer

from geo.frame import WGS84, LocalFrame


@pytest.fixture(scope="module")
def frame():
    return LocalFrame(47.0, 8.0, 500.0)


def test_origin_maps_to_zero(frame):
    e, n, u = frame.to_enu(47.0, 8.0, 500.0)
    assert abs(e) < 1e-6 and abs(n) < 1e-6 and abs(u) < 1e-6


def test_round_trip_is_submillimetre_within_50km(frame):
    rng = np.random.default_rng(0)
    e = rng.uniform(-50_000, 50_000, 2000)
    n = rng.uniform(-50_000, 50_000, 2000)
    u = rng.uniform(-200, 200, 2000)
    lat, lon, alt = frame.to_geodetic(e, n, u)
    e2, n2, u2 = frame.to_enu(lat, lon, alt)
    assert np.max(np.abs(e2 - e)) < 1e-3
    assert np.max(np.abs(n2 - n)) < 1e-3
    assert np.max(np.abs(u2 - u)) < 1e-3


def test_enu_distance_equals_ecef_chord(frame):
    """|enu| is the straight-line distance, independently computed in ECEF (mm level)."""
    ecef = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    rng = np.random.default_rng(1)
    lat = 47.0 + rng.uniform(-0.4, 0.4, 500)
    lon = 8.0 + rng.uniform(-0.6, 0.6, 500)
    alt = rng.uniform(300, 900, 500)
    e, n, u = frame.to_enu(lat, lon, alt)
    x0 = np.array(ecef.transform(8.0, 47.0, 500.0))
    x = np.array(ecef.transform(lon, lat, alt))
    chord = np.linalg.norm(x.T - x0, axis=1)
    assert np.max(np.abs(np.sqrt(e**2 + n**2 + u**2) - chord)) < 1e-3


def test_known_distances_along_axes():
    """Due north on the meridian: e = 0 and n = geodesic distance less the curvature term."""
    frame = LocalFrame(47.0, 8.0, 0.0)
    for distance in (1_000.0, 10_000.0, 50_000.0):
        lon2, lat2, _ = WGS84.fwd(8.0, 47.0, 0.0, distance)
        e, n, _ = frame.to_enu(lat2, lon2, 0.0)
        assert abs(e) < 1e-3
        # n = ρ sin(s/ρ) ≈ s − s³/(6ρ²), ρ = a(1−e²)/(1−e² sin²φ)^1.5 the meridian radius at 47°
        rho = 6_369_644.0
        assert abs(n - rho * np.sin(distance / rho)) < 1e-3


def test_north_rotation_is_meridian_convergence(frame):
    # east of the origin true north leans west in the frame: γ ≈ −Δλ·sin φ
    lon2, lat2, _ = WGS84.fwd(8.0, 47.0, 90.0, 8000.0)
    gamma = frame.north_rotation_rad(lat2, lon2, 500.0)
    expected = -np.radians(lon2 - 8.0) * np.sin(np.radians(47.0))
    assert gamma == pytest.approx(expected, rel=0.02)
    assert frame.north_rotation_rad(47.0, 8.0, 500.0) == pytest.approx(0.0, abs=1e-9)


def test_point_path_equals_array_path(frame):
    rng = np.random.default_rng(1)
    for e, n, u in rng.uniform(-30_000, 30_000, (20, 3)):
        lat, lon, alt = frame.to_geodetic(np.array([e]), np.array([n]), np.array([u]))
        assert frame.point_to_geodetic(e, n, u) == (float(lat[0]), float(lon[0]), float(alt[0]))
