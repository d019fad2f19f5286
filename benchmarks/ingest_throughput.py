"""Ingest throughput: radar scans decoded, validated and normalized per second, one core.

Builds a simulated log in memory (radar scans of ``--plots`` plots each, plus the
demo site's other sensors' message shapes) and times ``Ingestor.ingest`` over it.
Prints one JSON object per result line; the figure is the median of ``--runs``.

    python benchmarks/ingest_throughput.py [--plots 50] [--messages 4000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import msgspec
import numpy as np

from fusion.config import load_site
from sensors.ingest import Ingestor, Rejection

SITE = Path(__file__).resolve().parent.parent / "configs" / "demo" / "site.toml"


def radar_messages(n_messages: int, n_plots: int, seed: int = 0) -> list[tuple[float, str, bytes]]:
    rng = np.random.default_rng(seed)
    enc = msgspec.json.Encoder()
    out = []
    for i in range(n_messages):
        t = 1795000000.0 + i
        plots = [{"range_m": round(float(r), 2), "azimuth_deg": round(float(a), 4),
                  "radial_velocity_mps": round(float(v), 3), "snr_db": 12.0, "range_sigma_m": None,
                  "azimuth_sigma_deg": None, "classification": None}
                 for r, a, v in zip(rng.uniform(100, 9000, n_plots), rng.uniform(0, 360, n_plots),
                                    rng.normal(0, 3, n_plots))]
        out.append((t + 0.2, "borderfusion/v1/raw/radar/radar-n1",
                    enc.encode({"sensor_id": "radar-n1", "t": t, "seq": i, "plots": plots})))
    return out


def drone_messages(n_messages: int, n_dets: int, seed: int = 1) -> list[tuple[float, str, bytes]]:
    rng = np.random.default_rng(seed)
    enc = msgspec.json.Encoder()
    out = []
    for i in range(n_messages):
        t = 1795000000.0 + i
        dets = [{"lat": 47.0 + float(a), "lon": 8.0 + float(b), "cep_m": 8.0, "classification": {"person": 0.8}}
                for a, b in zip(rng.uniform(-0.01, 0.01, n_dets), rng.uniform(-0.01, 0.01, n_dets))]
        out.append((t + 0.2, "borderfusion/v1/raw/drone/uav-3",
                    enc.encode({"sensor_id": "uav-3", "t": t, "seq": i, "platform": {"lat": 47.0, "lon": 8.0},
                                "detections": dets})))
    return out


def measure(site, messages, runs: int) -> dict:
    rates, det_rates = [], []
    for _ in range(runs):
        ingestor = Ingestor(list(site.sensors), site.frame, site.config.mqtt.prefix, site.ingest_limits)
        detections = 0
        start = time.process_time()
        for t_rx, topic, payload in messages:
            result = ingestor.ingest(t_rx, topic, payload)
            if isinstance(result, Rejection):
                raise SystemExit(f"unexpected rejection: {result.reason}")
            detections += result.size
        cpu = time.process_time() - start
        rates.append(len(messages) / cpu)
        det_rates.append(detections / cpu)
    return {"messages_per_s": round(statistics.median(rates)), "detections_per_s": round(statistics.median(det_rates)),
            "runs": runs, "messages": len(messages)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plots", type=int, default=50)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    site = load_site(SITE)
    radar = radar_messages(args.messages, args.plots)
    print(json.dumps({"benchmark": "ingest", "input": f"radar scans of {args.plots} plots",
                      **measure(site, radar, args.runs), "target_detections_per_s": 200000}))
    drone = drone_messages(args.messages // 4, 5)
    print(json.dumps({"benchmark": "ingest", "input": "drone reports of 5 detections", **measure(site, drone, args.runs)}))


if __name__ == "__main__":
    main()
