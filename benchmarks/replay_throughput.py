"""Whole-process replay throughput: ``borderfusion replay`` as a user runs it, with and without track output.

For each size (simultaneous targets of the demo site, logs made by ``borderfusion
simulate``) and each output (none, ``--tracks-out`` JSON Lines, ``--tracks-out``
Parquet), a fresh ``python -m fusion.cli replay`` process (numba's cache warm) is
timed by its own rusage: detections per CPU-second of the whole process (start-up
included), bytes written, peak RSS; the median of ``--runs`` runs.  Then, for the
sizes in ``--snapshot-sizes``, the CPU time of one snapshot of that many tracks (made
from synthetic scans): the tracker's estimates, the columns, the JSON, the Parquet batch.
First, the start-up alone, per output: the same process on a log with a header and no record
(imports, kernels loaded from numba's cache, the site's geofence built), the part of every
run's CPU time that does not depend on the log.
Note: at 10,000 targets a radar's scan outgrows the 256 KiB payload limit; the simulator
writes it as the fewest equal sectors that fit (``sector_deg``, interface §2.1).
One JSON object per line on stdout.

    python benchmarks/replay_throughput.py [--sizes 10,100,1000,10000] [--seconds 300]
        [--seconds-large 60] [--runs 5] [--outputs none,jsonl,parquet] [--work DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_DEMO = _ROOT / "configs" / "demo" / "site.toml"
_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(_ROOT), os.environ.get("PYTHONPATH"))))}
_SUFFIX = {"none": None, "jsonl": ".jsonl", "parquet": ".parquet"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fusion.cli", *args]


def make_log(work: Path, targets: int, seconds: float) -> Path:
    """The simulated log of ``targets`` targets (made once per work folder)."""
    log = work / f"demo-{targets}-{seconds:g}s.jsonl.gz"
    if not log.exists():
        subprocess.run(_cli("simulate", "--config", str(_DEMO), "--duration", f"{seconds:g}", "--targets", str(targets),
                            "--seed", "1", "--out", str(log)), env=_ENV, check=True, capture_output=True)
    return log


def make_empty_log(work: Path, log: Path) -> Path:
    """A log holding only ``log``'s header line: a replay of it costs the start-up alone."""
    empty = work / "header-only.jsonl.gz"
    with gzip.open(log, "rb") as source, gzip.open(empty, "wb") as target:
        target.write(source.readline())
    return empty


def startup(log: Path, runs: int, work: Path, output: str = "none") -> dict:
    """CPU time of a replay that replays nothing (median of ``runs``), with ``output`` as track output
    (a replay loads the JSON renderer's kernel only when it writes JSON snapshots)."""
    suffix = _SUFFIX[output]
    tracks_out = work / f"startup-tracks{suffix}" if suffix else None
    results = [run_replay(make_empty_log(work, log), tracks_out) for _ in range(runs)]
    return {"benchmark": "replay_startup", "tracks_out": output, "runs": runs,
            "cpu_s": round(statistics.median(r["cpu_s"] for r in results), 2),
            "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in results), 1)}


def run_replay(log: Path, tracks_out: Path | None) -> dict:
    """One fresh replay process; CPU time and peak RSS from its rusage (``wait4``)."""
    args = ["replay", str(log), "--config", str(_DEMO)] + (["--tracks-out", str(tracks_out)] if tracks_out else [])
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(_cli(*args), env=_ENV, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)  # the child's own rusage (Popen.wait would reap it first)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        stdout.seek(0), stderr.seek(0)
        stdout, stderr = stdout.read(), stderr.read()
    if child.returncode != 0:
        raise RuntimeError(f"replay failed ({child.returncode}): {stderr.decode()[-2000:]}")
    summary = json.loads(stdout)
    cpu = usage.ru_utime + usage.ru_stime
    return {"cpu_s": cpu, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024,
            "detections": summary["counters"]["detections"], "processing_s": summary["processing_s"],
            "rejected_messages": summary["counters"]["rejected"],
            "bytes_written": tracks_out.stat().st_size if tracks_out else 0}


def throughput(log: Path, targets: int, seconds: float, output: str, runs: int, work: Path) -> dict:
    suffix = _SUFFIX[output]
    tracks_out = work / f"tracks-{targets}{suffix}" if suffix else None
    results = [run_replay(log, tracks_out) for _ in range(runs)]
    if tracks_out:
        tracks_out.unlink()
    cpu = statistics.median(r["cpu_s"] for r in results)
    detections = results[0]["detections"]
    return {"benchmark": "replay_throughput", "targets": targets, "data_s": seconds, "tracks_out": output,
            "runs": runs, "detections": detections, "cpu_s": round(cpu, 2),
            "detections_per_cpu_s": round(detections / cpu),
            "processing_s": round(statistics.median(r["processing_s"] for r in results), 2),
            "bytes_written": results[0]["bytes_written"], "rejected_messages": results[0]["rejected_messages"],
            "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in results), 1)}


_SNAPSHOT_SCRIPT = """
import io, json, statistics, sys, time
import msgspec
from fusion.config import load_site
from fusion.pipeline import Pipeline
from fusion.render import snapshot_json, warm_up_kernels
from fusion.synthetic import ncv_scenario, position_scans
from tracking.tracker import Tracker
warm_up_kernels()
site = load_site(sys.argv[1])
n, repeats = int(sys.argv[2]), int(sys.argv[3])
# n targets in a square around the site (the density of 1,000 in 20 km x 20 km), seen for 20 s at 1 Hz
scenario = ncv_scenario(n, 20.0, half_width_m=10_000.0 * max(1.0, (n / 1000) ** 0.5), seed=1)
scans = position_scans(scenario, pd=0.95, sigma_m=10.0, clutter_per_scan=0.0, seed=2)
pipeline = Pipeline(site)
config = msgspec.structs.replace(site.config.tracker, capacity=2 * n, max_capacity=4 * n)
pipeline.tracker = Tracker(config, len(site.sensors))
for scan in scans:
    pipeline.tracker.step(scan)
t = scans[-1].time + 0.5
parquet = None
try:
    from fusion.parquet import TracksParquetWriter
    parquet = TracksParquetWriter("bench.parquet", io.BytesIO())
except ImportError:
    pass
laps = {"estimates": [], "table": [], "json": [], "parquet_batch": []}
for _ in range(repeats):
    c0 = time.process_time(); snapshot = pipeline.snapshot(t); estimates = snapshot.estimates
    c1 = time.process_time(); table = snapshot.table
    c2 = time.process_time(); text = snapshot_json(table)
    c3 = time.process_time()
    if parquet is not None:
        parquet.write(table); parquet._batches.clear()
    c4 = time.process_time()
    for name, lap in zip(laps, (c1 - c0, c2 - c1, c3 - c2, c4 - c3)):
        laps[name].append(lap * 1e3)
result = {name: round(statistics.median(v), 2) for name, v in laps.items()}
print(json.dumps({"tracks": len(estimates), "json_bytes": len(text), **{f"{k}_cpu_ms": v for k, v in result.items()},
                  "snapshot_json_cpu_ms": round(result["estimates"] + result["table"] + result["json"], 2)}))
"""


def snapshot_cost(targets: int, repeats: int) -> dict:
    """CPU time of one snapshot of ``targets`` tracks at the demo site (estimates → columns → JSON; and the
    Parquet batch).  The tracks come from synthetic scans (:mod:`fusion.synthetic`), so their number is the
    one asked for, whatever the targets of a simulated log the sensors happen to see."""
    out = subprocess.run([sys.executable, "-c", _SNAPSHOT_SCRIPT, str(_DEMO), str(targets), str(repeats)], env=_ENV,
                         check=True, capture_output=True, text=True)
    return {"benchmark": "snapshot_cpu", "targets": targets, "repeats": repeats, **json.loads(out.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000", help="numbers of targets (default 10,100,1000,10000)")
    parser.add_argument("--seconds", type=float, default=300.0, help="log length (default 300 s)")
    parser.add_argument("--seconds-large", type=float, default=60.0,
                        help="log length for sizes above 1,000 targets (default 60 s)")
    parser.add_argument("--runs", type=int, default=5, help="runs per case; the median is reported (default 5)")
    parser.add_argument("--outputs", default="none,jsonl,parquet", help="track outputs to compare")
    parser.add_argument("--snapshot-sizes", default="1000,10000", help="sizes whose snapshot CPU time is measured")
    parser.add_argument("--work", metavar="DIR", help="keep the generated logs here (default: a temporary folder)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    outputs = args.outputs.split(",")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work) if args.work else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        logs = {n: make_log(work, n, args.seconds if n <= 1000 else args.seconds_large) for n in sizes}
        run_replay(logs[sizes[0]], None)  # numba's cache warm before anything is timed
        for output in outputs:
            print(json.dumps(startup(logs[sizes[0]], args.runs, work, output)), flush=True)
        for n in sizes:
            seconds = args.seconds if n <= 1000 else args.seconds_large
            for output in outputs:
                print(json.dumps(throughput(logs[n], n, seconds, output, args.runs, work)), flush=True)
        for n in (int(x) for x in args.snapshot_sizes.split(",")):
            print(json.dumps(snapshot_cost(n, max(args.runs, 5))), flush=True)


if __name__ == "__main__":
    main()
