"""Can ``borderfusion run`` track and publish 10,000 targets at 1 Hz within half a core?  (issue 14)

A real Mosquitto and a real node (``live_latency``'s broker and site: radars 5 km apart,
1.1 km south of a straight east-west border, here reaching 4 km once a second, reorder
window 0 unless ``--window``), no map (``[web]`` off).  A publisher *process* plays the radars in real time:
``--per-radar`` targets each (default 5,000, so 10,000 targets are two radars) on a
staggered grid 45 m apart centred on the border, every one driving north at 1.5 m/s, so
crossings (and approach alerts) come steadily, a few a second.  Each radar scans once a
second at its own phase (radar k at 0.05 s + k/n of the second), every target seen, with 3 m / 0.1°
noise; a scan too large for one message (256 KiB) goes as sectors exactly as ``simulate``
sends it (``fusion.simulate.split_scan``, ``sector_deg``, interface §2.1), one ``seq`` each.
The node publishes a track snapshot a second (``PREFIX/tracks``, interface §3.1) and its
alerts.

After ``--warmup`` seconds of traffic (tracks initiated and confirmed), the next
``--seconds`` are measured:

* ``node_cpu_per_s``: the node process's CPU seconds (user + system, all threads, from
  ``/proc/PID/task/*/stat``) per wall second, split into its main thread (the pipeline,
  snapshot rendering, checkpoint encoding) and its other threads (paho's two network
  threads, the checkpoint writer);
* ``peak_rss_mb``: the node's peak resident set (``VmHWM``) at the end; ``checkpoint_mb``: the size
  of its checkpoint file then (written once a second while input arrives);
* snapshots a subscriber received in the window, their mean size, the median number of
  tracks they held and of those ``confirmed``, and how late they came (receive wall
  time − snapshot ``t``: the snapshot at a whole second goes out once radar 0's scan 0.05 s
  later is processed, so this is 50 ms + that scan's trip + rendering and sending);
* alert latency (receive wall time − ``raised_t``, as ``live_latency``) of alerts raised in
  the window, p50/p99;
* the node's shed counters from its last status (``shed`` input, ``shed_outputs``).

Each size runs ``--runs`` times with a fresh broker and node; the line printed holds the
median of each figure.  The goal is ``node_cpu_per_s`` ≤ 0.5 at 10,000 targets; 1,000
targets run too, for the ratio.  One JSON object per line.

    python benchmarks/live_scale.py [--targets 10000] [--seconds 40] [--warmup 20] [--runs 3] [--window 0]
    python benchmarks/live_scale.py --profile node.prof   # the node under cProfile (main thread)
    python benchmarks/live_scale.py --checkpoint-s 20       # checkpoints 20 s apart instead of 1 s

Findings (2 cores shared with other jobs, load average 1.5–2.7 during the runs; the node as of
commit edf3309; ``python benchmarks/live_scale.py --seconds 40 --warmup 15 --runs 3``, medians of 3 runs):

* **10,000 targets (2 radars, 2 sectors a scan, 4 messages/s): 0.172 CPU-s per second** (runs
  0.182, 0.164, 0.172) — main thread 0.124, other threads 0.040 — within the goal of 0.5 with ~3×
  margin.  Peak RSS 382 MB.  40 snapshots in 40 s, each 5.5 MB holding 10,000 tracks, all
  confirmed; snapshot delay p50/p99 152/378 ms; 248 alerts, latency p50/p99 49/234 ms; nothing
  shed (input or outputs).
* 1,000 targets (1 radar, one message a scan): 0.015 CPU-s per second (0.015, 0.017, 0.014), peak
  RSS 245 MB, 546 KB snapshots, alert latency p50/p99 14/32 ms.  10× the targets cost ~11× the CPU.
* With the default reorder window (``--window 3``, one run): 0.191 CPU-s per second; alerts and
  snapshots then come ~3 s later, by design.
* What costs most is the **checkpoint** (``fusion.live.durable``), not tracking: the state is
  written once a second while input arrives, and at 10,000 tracks it is 57 MB (3.9 MB at 1,000),
  of which 48.5 MB are the geofence's per-track paths (``geo.slots``: ``MAX_PATH`` = 128 points
  × (x, y, t) for every slot of its capacity, 16,384 at 10,000 tracks, free slots included); the
  tracker's rows are 6.5 MB.  Encoding it (``np.savez`` into memory, in the main thread) takes
  ~56 ms of CPU (63 ms wall) each time, and the writer thread then writes and syncs 57 MB/s to
  disk.  With ``--checkpoint-s 20`` (one run) the node uses 0.078 CPU-s per second (main 0.069,
  others 0.009) instead of 0.172, and alert latency p99 drops to 196 ms, snapshot delay p99 to
  202 ms.  Under cProfile (main thread, 45 s of traffic) the checkpoint took 4.5 s, the tracker's
  steps 3.1 s (IMM prediction 1.1, track management 0.8, gating 0.7), ingest 0.9 s, snapshot
  estimates + rendering 1.1 s, geofence 0.4 s.
* Beyond the goal (one run each, 20 s, load average 2–5.6): 20,000 targets 0.323 CPU-s per second,
  113 MB checkpoints, alert p99 1.7 s; 40,000 targets 0.909 CPU-s per second, 227 MB checkpoints a
  second, the node falls behind (226 input messages shed, 18,690 of 38,862 tracks confirmed,
  snapshots 10 s late).  The checkpoint's size, linear in the geofence's slot capacity × 128
  path points, is what to shrink first for more targets (or for an edge box's flash, which would
  take ~57 MB of writes a second at 10,000 targets).
* Since checkpoint format 2 (the geofence's slots saved compact: known tracks only, each path
  only as long as it is; same command, ``--runs 3 --seconds 30 --warmup 15``, load average
  1.1): **0.114 CPU-s per second** at 10,000 targets (runs 0.108, 0.114, 0.133), checkpoint
  18.4 MB after 45 s of traffic, alert latency p50/p99 44/122 ms, snapshot delay p99 221 ms.
  A path holds up to 128 points (the positions since the track's last country decision), so
  a node whose tracks stay in one country for two minutes or more writes up to ~37 MB a
  checkpoint at 10,000 tracks.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec
import numpy as np
import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from fusion.simulate import _fits, split_scan  # noqa: E402
from geo.frame import WGS84, LocalFrame  # noqa: E402
from live_latency import (ORIGIN, PREFIX, mosquitto, percentiles, radar_east, sleep_until,  # noqa: E402
                          thread_cpu_s, write_site)
from sensors.ingest import MAX_PAYLOAD_BYTES  # noqa: E402

GOAL_CPU_PER_S = 0.5
SPACING_M, SPEED_MPS, RANGE_M, PERIOD_S, RADAR_NORTH_M, MIN_RANGE_M = 45.0, 1.5, 4000.0, 1.0, -1100.0, 150.0
SCAN_OFFSET_S = 0.05  # radar 0 scans this long after each whole second (a snapshot is due at whole seconds)


class _Track(msgspec.Struct):
    status: str


class _Snapshot(msgspec.Struct):
    t: float
    tracks: list[_Track]


def target_grid(n_targets: int, per_radar: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(radar index, east_m, north_m at time 0) of each target: per radar a square grid ``SPACING_M``
    apart about (radar's east, the border), each lane (column) shifted north by lane/lanes of a
    spacing so that no two targets reach the border at once; grid points within ``MIN_RANGE_M`` of
    the radar are skipped (a plot at the radar has no azimuth)."""
    n_radars = math.ceil(n_targets / per_radar)
    radars, easts, norths = [], [], []
    for k in range(n_radars):
        count = min(per_radar, n_targets - k * per_radar)
        lanes = math.ceil(math.sqrt(count))
        rows = math.ceil(count / lanes) + 2  # spare rows for the points skipped near the radar
        lane, row = np.arange(lanes * rows) % lanes, np.arange(lanes * rows) // lanes
        east = radar_east(k, n_radars) + SPACING_M * (lane - (lanes - 1) / 2)
        north = SPACING_M * (row - rows / 2 + lane / lanes)
        keep = np.flatnonzero(np.hypot(east - radar_east(k, n_radars), north - RADAR_NORTH_M) > MIN_RANGE_M)[:count]
        radars.append(np.full(keep.size, k))
        easts.append(east[keep])
        norths.append(north[keep])
    return np.concatenate(radars), np.concatenate(easts), np.concatenate(norths)


def publisher(port: int, n_targets: int, per_radar: int, seconds: float, ready, stats) -> None:
    """Radars at 1 Hz in real time, radar k at phase k/n of the second, scans split into sectors
    when too large; sends until ``seconds`` have passed."""
    radar, east, north0 = target_grid(n_targets, per_radar)
    n_radars = int(radar.max()) + 1
    frame = LocalFrame(*ORIGIN, 0.0)
    r_lat, r_lon, _ = frame.to_geodetic(np.array([radar_east(k, n_radars) for k in range(n_radars)]),
                                        np.full(n_radars, RADAR_NORTH_M))
    rng = np.random.default_rng(1)
    encoder = msgspec.json.Encoder()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-radars", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.on_socket_open = lambda c, u, sock: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    gc.freeze()
    ready.set()
    start = math.ceil(time.time()) + SCAN_OFFSET_S  # scans just after whole seconds: snapshot delays comparable
    step, seq, sent_plots, messages, late, max_sectors = 0, [0] * n_radars, 0, 0, 0, 0
    while True:
        tick = start + step * PERIOD_S / n_radars
        late += sleep_until(tick)
        now = time.time()
        if now - start > seconds:
            break
        k = step % n_radars
        mine = np.flatnonzero(radar == k)
        lat, lon, _ = frame.to_geodetic(east[mine], north0[mine] + SPEED_MPS * (now - start))
        az, _, dist = WGS84.inv(np.full(mine.size, r_lon[k]), np.full(mine.size, r_lat[k]), lon, lat)
        dist = dist + rng.normal(0, 3.0, mine.size)
        az = (az + rng.normal(0, 0.1, mine.size)) % 360.0
        plots = [{"range_m": float(r), "azimuth_deg": float(a)} for r, a in zip(dist, az)]
        head = {"sensor_id": f"radar-{k}", "t": now}
        bodies = split_scan(plots, _fits(encoder, head, MAX_PAYLOAD_BYTES))
        for body in bodies:
            client.publish(f"{PREFIX}/raw/radar/radar-{k}", encoder.encode({**head, "seq": seq[k], **body}), qos=1)
            seq[k] += 1
        sent_plots += len(plots)
        messages += len(bodies)
        max_sectors = max(max_sectors, len(bodies))
        step += 1
    client.disconnect()
    client.loop_stop()
    stats.put({"sent_plots": sent_plots, "messages": messages, "elapsed_s": time.time() - start,
               "late_ticks": late, "sectors_per_scan": max_sectors})


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class Watcher:
    """The subscribers: snapshots (size, track counts, delay) on one connection; the first copy of each
    alert, and statuses, on another (one TCP stream delivers in order: an alert behind a 5 MB snapshot
    would wait for it, which is the subscriber's cost, not the node's)."""

    def __init__(self, port: int) -> None:
        self.snapshots: list[tuple[float, int, float, int, int]] = []  # rx, bytes, t, tracks, confirmed
        self.alerts: dict[str, tuple[float, float]] = {}  # alert_id → (raised_t, rx)
        self.statuses: list[dict] = []
        self._lock = threading.Lock()
        decode = msgspec.json.Decoder(_Snapshot).decode

        def on_snapshot(c, u, m):
            now = time.time()
            snap = decode(m.payload)
            confirmed = sum(1 for track in snap.tracks if track.status == "confirmed")
            with self._lock:
                self.snapshots.append((now, len(m.payload), snap.t, len(snap.tracks), confirmed))

        def on_message(c, u, m):
            now = time.time()
            body = json.loads(m.payload)
            with self._lock:
                if m.topic.startswith(f"{PREFIX}/status/"):
                    self.statuses.append(body)
                else:
                    self.alerts.setdefault(body["alert_id"], (body["raised_t"], now))

        self.clients = [self._client(port, "bench-tracks", on_snapshot, [(f"{PREFIX}/tracks", 0)]),
                        self._client(port, "bench-agency", on_message,
                                     [(f"{PREFIX}/alerts/+", 1), (f"{PREFIX}/status/+", 1)])]

    @staticmethod
    def _client(port: int, name: str, on_message, topics: list[tuple[str, int]]) -> mqtt.Client:
        ready = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        client.on_message = on_message
        client.on_connect = lambda c, *a: c.subscribe(topics)
        client.on_subscribe = lambda *a: ready.set()
        client.connect("127.0.0.1", port)
        client.loop_start()
        ready.wait(10)
        return client

    def online(self) -> bool:
        with self._lock:
            return any(s.get("state") == "online" for s in self.statuses)

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


def run_once(n_targets: int, per_radar: int, warmup_s: float, seconds: float, window_s: float,
             checkpoint_s: float | None, profile: Path | None) -> dict:
    n_radars = math.ceil(n_targets / per_radar)
    with tempfile.TemporaryDirectory() as tmp, mosquitto(Path(tmp) / "broker") as port:
        tmp = Path(tmp)
        site = write_site(tmp / "site", port, n_radars, window_s, max_range_m=RANGE_M, scan_period_s=PERIOD_S)
        if checkpoint_s is not None:  # input is acknowledged per checkpoint: the broker's 100 in flight must cover it
            site.write_text(site.read_text() + f"\n[checkpoint]\ninterval_s = {checkpoint_s!r}\n")
        watcher = Watcher(port)
        wrap = ["-m", "cProfile", "-o", str(profile)] if profile else []
        node = subprocess.Popen([sys.executable, *wrap, "-m", "fusion.cli", "run", "--config", str(site)],
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=open(tmp / "node.log", "w"))
        pub = None
        try:
            deadline = time.monotonic() + 120
            while not watcher.online():
                if node.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the node did not come online: {(tmp / 'node.log').read_text()}")
                time.sleep(0.1)
            ready, stats = mp.Event(), mp.Queue()
            pub = mp.Process(target=publisher, args=(port, n_targets, per_radar, warmup_s + seconds, ready, stats))
            pub.start()
            ready.wait(30)
            time.sleep(warmup_s)
            t0, cpu0 = time.time(), thread_cpu_s(node.pid)
            time.sleep(seconds)
            t1, cpu1 = time.time(), thread_cpu_s(node.pid)
            rss = peak_rss_mb(node.pid)
            checkpoints = list((site.parent / "checkpoint").glob("*.npz"))  # [checkpoint] path's default
            checkpoint_mb = checkpoints[0].stat().st_size / 2**20 if checkpoints else None
            sent = stats.get(timeout=60)
            pub.join()
            time.sleep(6.0)  # the node's next status (every 5 s)
        finally:
            if pub is not None and pub.is_alive():
                pub.kill()
            node.terminate()
            node.communicate(timeout=60)
            watcher.close()
        if node.returncode != 0:
            raise RuntimeError(f"the node exited {node.returncode}: {(tmp / 'node.log').read_text()[-2000:]}")
    wall = t1 - t0
    main_s, other_s = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    snaps = [s for s in watcher.snapshots if t0 <= s[2] < t1]
    alert_ms = np.array([(rx - raised) * 1000 for raised, rx in watcher.alerts.values() if t0 <= raised < t1])
    delay_ms = np.array([(rx - t) * 1000 for rx, _, t, _, _ in snaps])
    online = [s for s in watcher.statuses if s.get("state") == "online"]
    counters = (online or watcher.statuses or [{}])[-1].get("counters", {})
    return {
        "node_cpu_per_s": round((main_s + other_s) / wall, 3), "main_thread_cpu_per_s": round(main_s / wall, 3),
        "other_threads_cpu_per_s": round(other_s / wall, 3), "peak_rss_mb": round(rss, 1),
        "checkpoint_mb": round(checkpoint_mb, 2) if checkpoint_mb is not None else None,
        "sent_plots_per_s": round(sent["sent_plots"] / sent["elapsed_s"]),
        "messages_per_s": round(sent["messages"] / sent["elapsed_s"], 1),
        "sectors_per_scan": sent["sectors_per_scan"], "publisher_late_ticks": sent["late_ticks"],
        "snapshots": len(snaps),
        "snapshot_kb": round(statistics.fmean(s[1] for s in snaps) / 1024, 1) if snaps else None,
        "snapshot_tracks": statistics.median(s[3] for s in snaps) if snaps else None,
        "snapshot_confirmed": statistics.median(s[4] for s in snaps) if snaps else None,
        **percentiles("snapshot_delay", delay_ms),
        "alerts": int(alert_ms.size), **percentiles("alert_latency", alert_ms),
        "shed": counters.get("shed"), "shed_outputs": counters.get("shed_outputs"),
        "tracks_live": counters.get("tracks_live"),
    }


def median_of(runs: list[dict]) -> dict:
    """Each numeric figure's median over the runs (None where a run had none)."""
    out = {}
    for key in runs[0]:
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        out[key] = round(statistics.median(values), 3) if values else None
    return out


def main() -> None:
    gc.freeze()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10_000, help="targets seen once a second (default 10000)")
    parser.add_argument("--per-radar", type=int, default=5_000, help="targets per radar (default 5000)")
    parser.add_argument("--seconds", type=float, default=40.0, help="measured seconds per run (default 40)")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of traffic before measuring (default 20)")
    parser.add_argument("--window", type=float, default=0.0,
                        help="the node's reorder window, [ingest] reorder_window_s (default 0: wired radars)")
    parser.add_argument("--checkpoint-s", type=float, default=None,
                        help="the node's [checkpoint] interval_s (default: the site default, 1 s)")
    parser.add_argument("--runs", type=int, default=3, help="runs per size; the median is printed (default 3)")
    parser.add_argument("--no-ratio", action="store_true", help="skip the 1,000-target comparison")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the node (first size, one run) under cProfile, writing this file")
    args = parser.parse_args()
    sizes = [args.targets] + ([] if args.no_ratio or args.targets == 1000 or args.profile else [1000])
    for n in sizes:
        load_before = os.getloadavg()[0]
        runs = [run_once(n, args.per_radar, args.warmup, args.seconds, args.window, args.checkpoint_s, args.profile)
                for _ in range(1 if args.profile else args.runs)]
        figures = median_of(runs)
        print(json.dumps({"bench": "live_scale", "targets": n, "radars": math.ceil(n / args.per_radar),
                          "seconds": args.seconds, "warmup_s": args.warmup, "reorder_window_s": args.window,
                          "checkpoint_interval_s": args.checkpoint_s or 1.0,
                          "runs": len(runs),
                          "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                          **figures, "goal_cpu_per_s": GOAL_CPU_PER_S,
                          "meets_goal": figures["node_cpu_per_s"] <= GOAL_CPU_PER_S,
                          "node_cpu_per_s_runs": [r["node_cpu_per_s"] for r in runs]}), flush=True)


if __name__ == "__main__":
    main()
