"""The clairvoyant of ``benchmarks/accuracy_bound.py``, on which issue 13's note rests: its batched
Kalman filter against filterpy's, target by target, and its reporting rules."""

import numpy as np
import pytest
from filterpy.common import Q_continuous_white_noise
from filterpy.kalman import KalmanFilter

from benchmarks.accuracy_bound import INITIAL_SPEED_SIGMA_MPS, _truth_association, clairvoyant_runs
from fusion.families import FAMILIES

Q = 0.003


@pytest.fixture(scope="module")
def family():
    return FAMILIES["appearing_vanishing"](0)


def _reference(family, target: int) -> dict[int, np.ndarray]:
    """filterpy's estimate of one target at each integer second after its first detection."""
    kf, last, out = None, None, {}
    scans = iter(family.scans)
    scan = next(scans, None)
    for k, t in enumerate(family.times):
        while scan is not None and scan.time <= t + 1e-9:
            targets, detections = _truth_association(family.position[int(round(scan.time))], scan.position,
                                                     scan.covariance)
            if target in targets:
                j = detections[list(targets).index(target)]
                z, R = scan.position[j], scan.covariance[j]
                if kf is None:
                    kf = KalmanFilter(dim_x=4, dim_z=2)
                    kf.x = np.array([z[0], z[1], 0.0, 0.0])
                    kf.P = np.diag([0.0, 0.0, INITIAL_SPEED_SIGMA_MPS**2, INITIAL_SPEED_SIGMA_MPS**2])
                    kf.P[:2, :2] = R
                    kf.H = np.eye(2, 4)
                else:
                    dt = scan.time - last
                    kf.F = np.eye(4) + dt * np.eye(4, k=2)
                    kf.Q = Q_continuous_white_noise(2, dt, Q, block_size=2, order_by_dim=False)
                    kf.predict()
                    kf.update(z, R=R)
                last = scan.time
            scan = next(scans, None)
        if kf is not None:
            out[k] = (np.eye(4) + (t - last) * np.eye(4, k=2)) @ kf.x
    return out


def test_each_target_is_filtered_as_filterpy_filters_it(family):
    snaps = clairvoyant_runs(family, ("constant", Q))["clairvoyant"]
    compared = 0
    for target in (0, 7, 42, 77):
        for k, x in _reference(family, target).items():
            rows = snaps.at(k)
            mine = snaps.x[rows][snaps.track_id[rows] == target]
            if family.present(k)[target]:
                assert mine.shape[0] == 1, (target, k)
                np.testing.assert_allclose(mine[0], x, atol=1e-6)
                compared += 1
            else:
                assert mine.shape[0] == 0, (target, k)
    assert compared > 200


def test_rules_show_what_they_say(family):
    runs = clairvoyant_runs(family, ("constant", Q))
    for k in range(len(family.times)):
        shown = {rule: set(s.track_id[s.at(k)].tolist()) for rule, s in runs.items()}
        present = set(np.flatnonzero(family.present(k)).tolist())
        assert shown["clairvoyant"] <= present
        assert shown["confirm_2"] <= shown["clairvoyant"]
        assert shown["confirm_2"] <= shown["confirm_2_delete_2s"]
    lingering = 0
    for k in range(len(family.times)):  # vanished targets stay shown up to 2 s after their last detection
        rows = runs["confirm_2_delete_2s"].at(k)
        for target in runs["confirm_2_delete_2s"].track_id[rows]:
            if not family.present(k)[target]:
                assert family.present(k - 1)[target] or family.present(k - 2)[target], (target, k)
                lingering += 1
    assert lingering > 0
