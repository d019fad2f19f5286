"""Streaming a big log: read a generated ≥ 1 GB (uncompressed) ``.jsonl.gz`` with ``read_log``.

The log repeats the messages of a short simulated demo log (shifted in time) until
it holds ``--gb`` gigabytes of JSON; reading it, in a fresh process, reports
records and megabytes per CPU-second and the resident memory at each quarter of
the way and at its peak: constant memory means the quarters stay flat.  One JSON
object on stdout.

    python benchmarks/log_read_stream.py [--gb 1.0] [--keep PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_DEMO = _ROOT / "configs" / "demo" / "site.toml"


def generate(path: Path, gigabytes: float) -> dict:
    """Write the log; returns its uncompressed and compressed sizes and the record count."""
    import msgspec

    from fusion.config import load_site
    from fusion.logio import LOG_FORMAT, LOG_VERSION, read_log
    from fusion.simulate import simulate

    with tempfile.TemporaryDirectory() as scratch:
        seed_log = Path(scratch) / "seed.jsonl"
        simulate(load_site(_DEMO), 600.0, seed_log, seed=2, n_targets=40)
        records = list(read_log(seed_log))
    span = records[-1].t_rx - records[0].t_rx + 1.0
    encode = msgspec.json.encode
    target, written, count, lap = gigabytes * 1e9, 0, 0, 0
    # lines as LogWriter writes them, built here in blocks and compressed fast (level 1): only t_rx changes per lap
    lines = [(r.t_rx, b',"topic":' + encode(r.topic) + b',"payload":' + r.payload + b"}\n") for r in records]
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(encode({"format": LOG_FORMAT, "version": LOG_VERSION, "site": "benchmark"}) + b"\n")
        while written < target:
            block = b"".join(b'{"t_rx":' + encode(t + lap * span) + rest for t, rest in lines)
            handle.write(block)
            written += len(block)
            count += len(lines)
            lap += 1
    return {"uncompressed_bytes": written, "compressed_bytes": path.stat().st_size, "records": count}


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def read(path: Path, records: int) -> dict:
    """In this process: stream every record, sampling the resident memory at each quarter."""
    from fusion.logio import LogReport, read_log

    rss_start = _rss_mb()
    quarters, marks = [], {records * q // 4 for q in (1, 2, 3)}
    report = LogReport(str(path))
    started_cpu, started = time.process_time(), time.perf_counter()
    count = payload_bytes = 0
    for record in read_log(path, report=report):
        count += 1
        payload_bytes += len(record.payload)
        if count in marks:
            quarters.append(round(_rss_mb(), 1))
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    quarters.append(round(_rss_mb(), 1))
    return {"records_read": count, "complete": report.complete, "skipped_lines": report.skipped_lines,
            "cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "records_per_cpu_s": round(count / cpu),
            "rss_start_mb": round(rss_start, 1), "rss_at_quarters_mb": quarters,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "payload_bytes": payload_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="uncompressed size to generate (default 1.0)")
    parser.add_argument("--keep", metavar="PATH", help="write the log here and keep it (default: a temporary file)")
    parser.add_argument("--read", metavar="PATH", help=argparse.SUPPRESS)  # the child: read only
    parser.add_argument("--records", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        print(json.dumps(read(Path(args.read), args.records)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(args.keep) if args.keep else Path(scratch) / "big.jsonl.gz"
        started = time.perf_counter()
        made = generate(path, args.gb)
        made["generate_s"] = round(time.perf_counter() - started, 1)
        child = subprocess.run([sys.executable, __file__, "--read", str(path), "--records", str(made["records"])],
                               capture_output=True, text=True, check=True, env={**os.environ})
        result = json.loads(child.stdout)
        uncompressed = made["uncompressed_bytes"]
        print(json.dumps({"benchmark": "log_read_stream", **made, **result,
                          "uncompressed_mb_per_cpu_s": round(uncompressed / 1e6 / result["cpu_s"], 1)}))


if __name__ == "__main__":
    main()
