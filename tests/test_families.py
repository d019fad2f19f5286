"""The accuracy suite's scenario families are seeded and honest about what their sensors do."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion.families import FAMILIES, appearing_vanishing, coverage_gaps, dense_clutter, groups


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    return FAMILIES[request.param](7)


def test_same_seed_same_family_other_seed_other_family():
    a, b, c = groups(3), groups(3), groups(4)
    np.testing.assert_array_equal(a.position, b.position)
    assert [s.time for s in a.scans] == [s.time for s in b.scans]
    for x, y in zip(a.scans, b.scans):
        np.testing.assert_array_equal(x.position, y.position)
        np.testing.assert_array_equal(x.covariance, y.covariance)
    assert not np.allclose(a.position, c.position, equal_nan=True)


def test_scans_are_in_time_order_within_the_run_and_name_known_sensors(family):
    times = [s.time for s in family.scans]
    assert times == sorted(times)
    assert 0.0 <= times[0] and times[-1] <= family.duration_s
    assert {s.sensor_index for s in family.scans} <= set(range(family.n_sensors))
    assert family.times[0] == 0.0 and np.all(np.diff(family.times) == 1.0)


def test_targets_exist_and_some_cross_the_border(family):
    north = family.position[:, :, 1] - family.border_north_m
    crossed = np.nanmax(north, axis=0) > 0
    crossed &= np.nanmin(north, axis=0) < 0
    assert family.position.shape[1] == len(family.target_id) == family.target_class.size >= 10
    assert crossed.sum() >= 3


def test_covariances_are_symmetric_positive_definite(family):
    for scan in family.scans[:50]:
        assert np.allclose(scan.covariance, scan.covariance.transpose(0, 2, 1))
        assert np.all(np.linalg.eigvalsh(scan.covariance) > 0)
        np.testing.assert_allclose(scan.class_likelihood.sum(axis=1), 1.0)


def test_dense_clutter_false_alarms_match_the_scan_density():
    """Detections more than 150 m from every target are clutter: their mean per scan is the
    scan's density × the coverage area not within 150 m of a target (60 per scan in all)."""
    fam = dense_clutter(0)
    far, expected = [], []
    for k, scan in enumerate(fam.scans):
        truth = fam.position[k][fam.present(k)]
        d = np.hypot(*(scan.position[:, None] - truth[None]).transpose(2, 0, 1)).min(axis=1)
        far.append(np.sum(d > 150.0))
        area = math.pi * scan.coverage_radius_m**2
        expected.append(scan.clutter_density * (area - len(truth) * math.pi * 150.0**2))
    assert fam.scans[0].clutter_density * math.pi * fam.scans[0].coverage_radius_m**2 == pytest.approx(60.0)
    assert np.mean(far) == pytest.approx(np.mean(expected), rel=0.05)


def test_appearing_vanishing_detects_with_the_declared_probability_and_targets_come_and_go():
    fam = appearing_vanishing(0)
    hits = looks = 0
    for k, scan in enumerate(fam.scans):
        truth = fam.position[k][fam.present(k)]
        d = np.hypot(*(truth[:, None] - scan.position[None]).transpose(2, 0, 1)).min(axis=1)
        hits += np.sum(d < 50.0)  # σ 10 m: a hit is within 5σ; clutter there is rarer than 1e-3
        looks += len(truth)
    assert hits / looks == pytest.approx(fam.scans[0].detection_probability, abs=0.015)
    late = ~fam.present(0)
    gone = ~fam.present(len(fam.times) - 1)
    assert 0.2 <= late.mean() <= 0.4 and 0.2 <= gone.mean() <= 0.45
    assert len(fam.target_id) == 100


def test_coverage_gaps_some_targets_only_ground_sensors_or_the_drone_see():
    fam = coverage_gaps(0)
    radars = [s for s in fam.sensors if s.kind == "radar"]
    outside = np.ones(fam.position.shape[:2], bool)
    for radar in radars:
        with np.errstate(invalid="ignore"):
            outside &= np.hypot(*(fam.position - np.array(radar.position_m)).transpose(2, 0, 1)) \
                > radar.coverage_radius_m
    assert (outside.mean(axis=0) > 0.5).sum() >= 8  # walkers in the gap and drone-only targets
    ground = [s for s in fam.scans if s.sensor_id.startswith("ugs")]
    assert ground and all(s.coverage_radius_m == 0.0 and not s.can_initiate.any() for s in ground)
    drone = [s for s in fam.scans if s.sensor_id.startswith("drone") and s.size]
    assert drone and max(s.class_likelihood.max() for s in drone) > 0.8


def test_the_group_walks_10_to_20_m_apart():
    fam = groups(0)
    start = fam.position[0, :5]
    gaps = np.sort(np.hypot(*(start[:, None] - start[None]).transpose(2, 0, 1)), axis=1)[:, 1]
    assert np.all((gaps > 5.0) & (gaps < 30.0))
    north = fam.position[:, :5, 1]
    assert np.all(north[0] < 0) and np.all(north[-1] > 0)
