"""Geofence throughput: track updates per second through 50 jurisdictions and a 5,000-vertex border.

Two countries split by a 5,000-vertex meandering border, 8 sectors and 40 zones;
``--tracks`` tracks move at random headings and each scan updates all of them at
once (one ``Geofence.update`` call per scan, as the pipeline does).  Two scenarios:
``border`` — every track within 600 m of the border, an alert-heavy worst case (about
six alerts per scan per 1,000 tracks); ``area`` — tracks spread over the whole
40 km × 40 km (most updates decide nothing).  Also the decision-to-alert time: the
wall time of the update call that raises a crossing, per track in it, and of the
update that decides a lone track's crossing (decision → alert).
One JSON object per line and scenario; medians of ``--runs`` runs.

    python benchmarks/geofence_throughput.py [--tracks 1000] [--scans 60] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from shapely.geometry import Polygon, box

from geo.config import GeofenceConfig
from geo.frame import LocalFrame
from geo.geofence import Geofence, TrackUpdate
from geo.jurisdictions import Jurisdiction


def jurisdictions(n_vertices: int = 5000) -> tuple[Jurisdiction, ...]:
    e = np.linspace(-20_000, 20_000, n_vertices)
    line = np.column_stack((e, 150 * np.sin(2 * np.pi * e / 3000) + 60 * np.sin(2 * np.pi * e / 700)))
    south = Polygon(np.vstack((line, [[20_000, -20_000], [-20_000, -20_000]])))
    north = Polygon(np.vstack((line[::-1], [[-20_000, 20_000], [20_000, 20_000]])))

    def j(id_, kind, poly, dwell=None):
        alerts = {"zone_entry", "zone_exit", "dwell"} if kind == "zone" else {"border_crossing", "approach"}
        return Jurisdiction(id_, id_, kind, f"agency-{id_}", (), "high", dwell, frozenset(alerts), poly)

    out = [j("country-a", "country", south), j("country-b", "country", north)]
    out += [j(f"sector-{i}", "sector", box(-20_000 + 5000 * i, -3000, -15_000 + 5000 * i, 3000)) for i in range(8)]
    rng = np.random.default_rng(0)
    for i in range(40):
        x, y = rng.uniform(-18_000, 18_000), rng.uniform(-5000, 5000)
        out.append(j(f"zone-{i}", "zone", box(x, y, x + 400, y + 300), dwell=120.0))
    return tuple(out)


def one_run(juris, n_tracks: int, n_scans: int, seed: int, spread_m: float) -> dict:
    geofence = Geofence(juris, LocalFrame(47.0, 8.0), GeofenceConfig(), "bench")
    rng = np.random.default_rng(seed)
    x = np.zeros((n_tracks, 4))
    x[:, 0] = rng.uniform(-19_000, 19_000, n_tracks)
    x[:, 1] = rng.uniform(-spread_m, spread_m, n_tracks)
    x[:, 2:] = rng.normal(0, 3, (n_tracks, 2))
    P = np.tile(np.diag([100.0, 100.0, 1.0, 1.0]), (n_tracks, 1, 1))
    ids = np.arange(n_tracks)
    confirmed = np.ones(n_tracks, bool)
    quality = np.full(n_tracks, 0.95)
    classes = np.full((n_tracks, 5), 0.2)
    elapsed, crossing_calls, alerts = 0.0, [], 0
    for k in range(n_scans):
        x[:, :2] += x[:, 2:]
        batch = TrackUpdate(float(k), ids, x.copy(), P, confirmed, quality, classes)
        start = time.perf_counter()
        raised = geofence.update(batch)
        took = time.perf_counter() - start
        elapsed += took
        alerts += len(raised)
        if any(a.type == "border_crossing" for a in raised):
            crossing_calls.append(took / n_tracks)  # amortised per update in the deciding call
    return {"updates_per_s": n_tracks * n_scans / elapsed, "alerts": alerts,
            "per_update_us_in_deciding_call": 1e6 * statistics.median(crossing_calls) if crossing_calls else None}


def decision_to_alert_us(juris) -> float:
    """Wall time of the update that decides a crossing, for a lone track walking across the border."""
    geofence = Geofence(juris, LocalFrame(47.0, 8.0), GeofenceConfig(), "bench")
    P = np.diag([25.0, 25.0, 1.0, 1.0])[None]
    for k, north in enumerate(np.arange(-300.0, 400.0, 3.0)):
        batch = TrackUpdate(float(k), np.array([7]), np.array([[1000.0, north, 0.0, 3.0]]), P,
                            np.array([True]), np.array([0.95]), np.full((1, 5), 0.2))
        start = time.perf_counter()
        raised = geofence.update(batch)
        took = time.perf_counter() - start
        if any(a.type == "border_crossing" for a in raised):
            return 1e6 * took
    raise RuntimeError("the walker raised no crossing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=1000)
    parser.add_argument("--scans", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    juris = jurisdictions()
    for scenario, spread_m in (("border", 600.0), ("area", 19_000.0)):
        runs = [one_run(juris, args.tracks, args.scans, seed, spread_m) for seed in range(args.runs)]
        deciding = [r["per_update_us_in_deciding_call"] for r in runs if r["per_update_us_in_deciding_call"]]
        print(json.dumps({"benchmark": "geofence", "scenario": scenario, "jurisdictions": len(juris),
                          "border_vertices": 5000, "tracks": args.tracks, "scans": args.scans, "runs": args.runs,
                          "updates_per_s": round(statistics.median(r["updates_per_s"] for r in runs)),
                          "alerts_per_run": statistics.median(r["alerts"] for r in runs),
                          "per_update_us_in_deciding_call": round(statistics.median(deciding), 2) if deciding else None,
                          "decision_to_alert_us_one_track": round(statistics.median(
                              decision_to_alert_us(juris) for _ in range(args.runs)), 1),
                          "target_updates_per_s": 1_000_000}), flush=True)


if __name__ == "__main__":
    main()
