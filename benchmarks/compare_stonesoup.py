"""Side by side with Stone Soup: the same seeded scenarios through its idiomatic GNN tracker and ours.

Scenario (:mod:`fusion.synthetic`): ``n`` targets with nearly-constant velocity
(1–15 m/s) in 20 km × 20 km, one position sensor at 1 Hz, Pd 0.9, σ 10 m, 20 false
alarms per scan uniform over the square.  Both trackers get the same scans:

* Stone Soup (the multi-target tutorial's tracker, as ``MultiTargetTracker``):
  ``KalmanPredictor``/``KalmanUpdater`` on a 2-D constant-velocity model,
  ``DistanceHypothesiser`` with ``Mahalanobis`` (missed distance 3),
  ``GNNWith2DAssignment``, ``MultiMeasurementInitiator`` (2 points) and an
  ``UpdateTimeDeleter`` (5 s without an update);
* ours: :class:`tracking.Tracker` with its default configuration (one NCV model,
  like Stone Soup's), and again with the IMM option (``ours_imm``).

Both are scored with the same GOSPA (c = 100 m, p = 2, :func:`fusion.evaluate.score_frames`)
every 5 s of data after the first 10 s.  CPU time (``time.process_time``) covers
tracking only: building Stone Soup's detection objects is left out.  One JSON object
per size.  Ours is timed as the median of 21 runs (one takes milliseconds), Stone
Soup's from one run (it takes seconds to minutes).  Needs the ``bench`` extra:
``pip install -e '.[bench]'``.

    python benchmarks/compare_stonesoup.py [--sizes 10,100,1000] [--seconds 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timedelta
from functools import partial

import numpy as np

from fusion.evaluate import score_frames
from fusion.synthetic import ncv_scenario, position_scans
from tracking import Tracker, TrackerConfig
from tracking.config import ImmConfig
from tracking.warmup import warm_up

SIGMA_M, PD, CLUTTER, HALF_WIDTH_M = 10.0, 0.9, 20.0, 10_000.0
EPOCH = datetime(2026, 1, 1)


def ours(scans, scored: set[int], imm: bool = False, repeat: int = 21) -> tuple[float, dict[int, np.ndarray]]:
    """Our tracker over the scans ``repeat`` times (a run takes milliseconds): the median CPU time."""
    cpu = []
    for _ in range(repeat):
        tracker = Tracker(TrackerConfig(capacity=4096, imm=ImmConfig(enabled=imm)), 1)
        estimates = {}
        start = time.process_time()
        for k, scan in enumerate(scans):
            tracker.step(scan)
            if k in scored:
                estimates[k] = tracker.estimates(scan.time).x[:, :2]
        cpu.append(time.process_time() - start)
    return statistics.median(cpu), estimates


def stone_soup(scans, scored: set[int]) -> tuple[float, dict[int, np.ndarray]]:
    from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
    from stonesoup.deleter.time import UpdateTimeDeleter
    from stonesoup.hypothesiser.distance import DistanceHypothesiser
    from stonesoup.initiator.simple import MultiMeasurementInitiator
    from stonesoup.measures import Mahalanobis
    from stonesoup.models.measurement.linear import LinearGaussian
    from stonesoup.models.transition.linear import CombinedLinearGaussianTransitionModel, ConstantVelocity
    from stonesoup.predictor.kalman import KalmanPredictor
    from stonesoup.tracker.simple import MultiTargetTracker
    from stonesoup.types.detection import Detection
    from stonesoup.types.state import GaussianState
    from stonesoup.updater.kalman import KalmanUpdater

    measurement = LinearGaussian(ndim_state=4, mapping=(0, 2), noise_covar=np.eye(2) * SIGMA_M**2)
    motion = CombinedLinearGaussianTransitionModel([ConstantVelocity(0.01), ConstantVelocity(0.01)])
    predictor, updater = KalmanPredictor(motion), KalmanUpdater(measurement)
    hypothesiser = DistanceHypothesiser(predictor, updater, measure=Mahalanobis(), missed_distance=3)
    associator = GNNWith2DAssignment(hypothesiser)
    deleter = UpdateTimeDeleter(time_since_update=timedelta(seconds=5))
    initiator = MultiMeasurementInitiator(
        prior_state=GaussianState(np.zeros((4, 1)), np.diag([0.0, 15.0**2, 0.0, 15.0**2])),
        measurement_model=measurement, deleter=deleter, data_associator=associator, updater=updater, min_points=2)
    feed = []
    for scan in scans:
        when = EPOCH + timedelta(seconds=scan.time)
        feed.append((when, {Detection(z.reshape(2, 1), timestamp=when, measurement_model=measurement)
                            for z in scan.position}))
    tracker = MultiTargetTracker(initiator=initiator, deleter=deleter, detector=feed,
                                 data_associator=associator, updater=updater)
    estimates = {}
    start = time.process_time()
    for k, (_, tracks) in enumerate(tracker):
        if k in scored:
            estimates[k] = np.array([np.ravel(t.state_vector)[[0, 2]] for t in tracks]).reshape(-1, 2)
    return time.process_time() - start, estimates


def compare(n_targets: int, seconds: float, seed: int) -> dict:
    scenario = ncv_scenario(n_targets, seconds, seed=seed, half_width_m=HALF_WIDTH_M)
    scans = position_scans(scenario, pd=PD, sigma_m=SIGMA_M, clutter_per_scan=CLUTTER, seed=seed + 1)
    detections = sum(s.size for s in scans)
    scored = set(range(10, len(scans), 5))
    out = {"benchmark": "compare_stonesoup", "targets": n_targets, "data_s": seconds, "detections": detections}
    for name, run in (("ours", ours), ("ours_imm", partial(ours, imm=True)), ("stonesoup", stone_soup)):
        cpu, estimates = run(scans, scored)
        frames = [(range(n_targets), scenario.position[k], range(len(estimates[k])), estimates[k])
                  for k in sorted(scored)]
        gospa = score_frames(frames, c=100.0)["gospa"]
        out[name] = {"cpu_s": round(cpu, 3), "detections_per_cpu_s": round(detections / cpu),
                     "gospa_mean_m": round(gospa["mean"], 2),
                     "gospa_missed_per_frame": round(gospa["missed"] / (100.0**2 / 2), 2),
                     "gospa_false_per_frame": round(gospa["false"] / (100.0**2 / 2), 2)}
    out["speed_ratio"] = round(out["ours"]["detections_per_cpu_s"] / out["stonesoup"]["detections_per_cpu_s"])
    out["speed_ratio_imm"] = round(out["ours_imm"]["detections_per_cpu_s"] / out["stonesoup"]["detections_per_cpu_s"])
    out["gospa_ours_over_stonesoup"] = round(out["ours"]["gospa_mean_m"] / out["stonesoup"]["gospa_mean_m"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="targets, comma-separated (default 10,100,1000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of data per scenario (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warm_up()
    for n in (int(s) for s in args.sizes.split(",")):
        print(json.dumps(compare(n, args.seconds, args.seed)), flush=True)


if __name__ == "__main__":
    main()
