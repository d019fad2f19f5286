"""Tracker scale: 10 → 10,000 simultaneous targets at 1 Hz with clutter, one core.

For each size: CPU seconds per second of data, detections per CPU-second, peak RSS
of the process and GOSPA per target as a sanity check.  One JSON object per line;
figures are the median of ``--runs`` runs (kernels are compiled before timing).

    python benchmarks/tracker_scale.py [--sizes 10,100,1000,10000] [--seconds 60] [--runs 3] [--single-model]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

from fusion.evaluate import score_frames
from fusion.synthetic import ncv_scenario, position_scans
from tracking import Tracker, TrackerConfig
from tracking.config import ImmConfig
from tracking.warmup import warm_up


def one_run(n_targets: int, seconds: float, seed: int, imm: bool) -> dict:
    half_width = 10_000.0 * max(1.0, (n_targets / 1000) ** 0.5)  # keep the density of the 1,000-target case
    scenario = ncv_scenario(n_targets, seconds, seed=seed, half_width_m=half_width)
    scans = position_scans(scenario, pd=0.9, sigma_m=10.0, clutter_per_scan=20.0 * (half_width / 10_000) ** 2,
                           seed=seed + 1)
    tracker = Tracker(TrackerConfig(capacity=max(4096, 2 * n_targets), imm=ImmConfig(enabled=imm)), 1)
    detections = sum(s.size for s in scans)
    frames = []
    start = time.process_time()
    for k, scan in enumerate(scans):
        tracker.step(scan)
        if k % 10 == 0 and k > 10:
            est = tracker.estimates(scan.time)
            frames.append((range(n_targets), scenario.position[k], est.track_id, est.x[:, :2]))
    cpu = time.process_time() - start
    gospa = score_frames(frames, c=100.0)["gospa"]["mean"] if n_targets <= 1000 else None
    return {"cpu_s_per_data_s": cpu / seconds, "detections_per_cpu_s": detections / cpu, "gospa": gospa}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--single-model", action="store_true",
                        help="one motion model per track instead of the default IMM (three models)")
    args = parser.parse_args()
    warm_up()
    for n in (int(x) for x in args.sizes.split(",")):
        runs = [one_run(n, args.seconds, seed, not args.single_model) for seed in range(args.runs)]
        cpu = statistics.median(r["cpu_s_per_data_s"] for r in runs)
        print(json.dumps({
            "benchmark": "tracker_scale", "imm": not args.single_model, "targets": n, "data_s": args.seconds, "runs": args.runs,
            "cpu_s_per_data_s": round(cpu, 4), "real_time_factor": round(1.0 / cpu, 1),
            "detections_per_cpu_s": round(statistics.median(r["detections_per_cpu_s"] for r in runs)),
            "gospa_mean_m": runs[0]["gospa"], "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }), flush=True)


if __name__ == "__main__":
    main()
