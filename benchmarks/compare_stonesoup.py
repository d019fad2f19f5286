"""Side by side with Stone Soup: the same seeded scenarios through its GNN tracker and ours, timed alike.

Scenario (:mod:`fusion.synthetic`): ``n`` targets with nearly-constant velocity
(1–15 m/s) in 20 km × 20 km, one position sensor at 1 Hz, Pd 0.9, σ 10 m, 20 false
alarms per scan uniform over the square.  Both trackers get the same scans:

* Stone Soup: the accuracy suite's ``MultiTargetTracker`` (``benchmarks/accuracy_suite.py``:
  Kalman predictor/updater on a 2-D constant-velocity model, ``DistanceHypothesiser``
  with ``Mahalanobis``, ``GNNWith2DAssignment`` behind a KD-tree pre-gate that does not
  change the associations — ``--no-pregate`` for the plain one —,
  ``MultiMeasurementInitiator``, ``UpdateTimeDeleter``), in
  the configuration its grid search chose for the ``appearing_vanishing`` family (the
  same sensor) when that is cached, else 3-point initiation, q 0.5, gate 3, 5 s;
  ``--stonesoup-config`` names another (e.g. ``q0.05-g3-p3-d5``);
* ours: :class:`tracking.Tracker` with its default configuration, and again with the
  single motion model instead of the default IMM (``ours_single``).

Both are scored with the same GOSPA (c = 100 m, p = 2, :func:`fusion.evaluate.score_frames`)
every 5 s of data after the first 10 s, on snapshots taken once every scan stamped ≤ t
is in.  CPU time (``time.process_time``) covers stepping and snapshots, not building
the detections, and is the median of ``--repeat`` runs (default 3) on every side alike.
Needs the ``bench`` extra: ``pip install -e '.[bench]'``.

    python benchmarks/compare_stonesoup.py [--sizes 10,100,1000] [--seconds 60] [--seed 0] [--repeat 3]
        [--stonesoup-config q0.5-g3-p3-d5] [--no-pregate]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
from accuracy_suite import CacheMiss, Snapshots, StoneSoupCache, StoneSoupConfig, drive, stonesoup_snapshots, tune

from fusion.evaluate import score_frames
from fusion.synthetic import ncv_scenario, position_scans
from tracking import Tracker, TrackerConfig
from tracking.config import ImmConfig

SIGMA_M, PD, CLUTTER, HALF_WIDTH_M = 10.0, 0.9, 20.0, 10_000.0
FALLBACK = StoneSoupConfig(q=0.5, gate=3.0, min_points=3, delete_after_s=5.0)


def ours(scans, times: np.ndarray, imm: bool = True) -> Snapshots:
    """Our tracker over the scans once, snapshots at ``times`` after every scan stamped ≤ t."""
    tracker = Tracker(TrackerConfig(capacity=4096, imm=ImmConfig(enabled=imm)), 1)

    def snapshot(t: float) -> tuple:
        e = tracker.estimates(t)
        return e.track_id, e.x[:, :4], e.P[:, :4, :4]

    start = time.process_time()
    frames = drive(times, [s.time for s in scans], lambda k: tracker.step(scans[k]), snapshot)
    return Snapshots.build(frames, time.process_time() - start)


def median_of(run: Callable[[], Snapshots], repeat: int) -> tuple[float, Snapshots]:
    """``repeat`` runs: the median CPU time and the last run's snapshots."""
    runs = [run() for _ in range(repeat)]
    return statistics.median(r.cpu_s for r in runs), runs[-1]


def stonesoup_config(name: str | None) -> tuple[StoneSoupConfig, str]:
    """The named configuration, else the suite's choice for the same sensor, else the fallback."""
    if name:
        q, gate, points, delete = name.split("-")
        return StoneSoupConfig(float(q[1:]), float(gate[1:]), int(points[1:]), float(delete[1:])), "--stonesoup-config"
    try:
        return (tune("appearing_vanishing", quick=False, cache=StoneSoupCache(read_only=True))[0],
                "accuracy suite grid search (cached)")
    except CacheMiss:
        return FALLBACK, "fallback (accuracy suite not run yet)"


def compare(n_targets: int, seconds: float, seed: int, repeat: int, config: StoneSoupConfig,
            pregate: bool = True) -> dict:
    scenario = ncv_scenario(n_targets, seconds, seed=seed, half_width_m=HALF_WIDTH_M)
    scans = position_scans(scenario, pd=PD, sigma_m=SIGMA_M, clutter_per_scan=CLUTTER, seed=seed + 1)
    detections = sum(s.size for s in scans)
    scored = list(range(10, len(scans), 5))
    times = scenario.times[scored]
    out = {"benchmark": "compare_stonesoup", "targets": n_targets, "data_s": seconds, "detections": detections,
           "repeat": repeat, "stonesoup_config": config.key, "stonesoup_pregate": pregate}
    ours(scans[:5], times[:1])  # numba: compile or load the kernels before timing
    runs = {"ours": lambda: ours(scans, times), "ours_single": lambda: ours(scans, times, imm=False),
            "stonesoup": lambda: stonesoup_snapshots(scans, times, config, pregate)}
    for name, run in runs.items():
        cpu, snaps = median_of(run, repeat)
        frames = [(range(n_targets), scenario.position[k], snaps.track_id[snaps.at(f)], snaps.x[snaps.at(f), :2])
                  for f, k in enumerate(scored)]
        gospa = score_frames(frames, c=100.0)["gospa"]
        out[name] = {"cpu_s": round(cpu, 3), "detections_per_cpu_s": round(detections / cpu),
                     "gospa_mean_m": round(gospa["mean"], 2),
                     "gospa_missed_per_frame": round(gospa["missed"] / (100.0**2 / 2), 2),
                     "gospa_false_per_frame": round(gospa["false"] / (100.0**2 / 2), 2)}
    out["speed_ratio"] = round(out["ours"]["detections_per_cpu_s"] / out["stonesoup"]["detections_per_cpu_s"])
    out["speed_ratio_single"] = round(out["ours_single"]["detections_per_cpu_s"] / out["stonesoup"]["detections_per_cpu_s"])
    out["gospa_ours_over_stonesoup"] = round(out["ours"]["gospa_mean_m"] / out["stonesoup"]["gospa_mean_m"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="targets, comma-separated (default 10,100,1000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of data per scenario (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tracker, median reported (default 3)")
    parser.add_argument("--stonesoup-config", default=None, help="e.g. q0.5-g3-p3-d5 (default: the suite's choice)")
    parser.add_argument("--no-pregate", action="store_true",
                        help="plain GNNWith2DAssignment: every track-detection pair hypothesised (slower, same result)")
    args = parser.parse_args()
    try:
        config, source = stonesoup_config(args.stonesoup_config)
    except ValueError:
        parser.error(f"--stonesoup-config {args.stonesoup_config!r}: expected q<noise>-g<gate>-p<points>-d<seconds>, "
                     "e.g. q0.5-g3-p3-d5")
    for n in (int(s) for s in args.sizes.split(",")):
        result = compare(n, args.seconds, args.seed, args.repeat, config, not args.no_pregate)
        print(json.dumps({**result, "stonesoup_config_from": source}), flush=True)


if __name__ == "__main__":
    main()
