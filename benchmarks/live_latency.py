"""Detection-to-alert latency of ``borderfusion run`` over a real Mosquitto broker.

For each offered rate a fresh broker and node run while a separate publisher
process plays radars in real time: ``rate / 10`` vehicles drive north across a
straight border at 8 m/s (coming into view over the first
5 s, crossings spread evenly over the run), seen by radars at 10 Hz (each radar ≤ 280 targets, one
message per scan; the radars' scans are spread over the period as independent radars'
are, or all at the same instant with ``--sync``, sensor time = the wall clock when the scan is made).  An agency
subscriber takes the first copy of each alert; its latency is

    receive wall time − raised_t      (raised_t = sensor time of the deciding scan)

so it covers publishing the scan, the broker, ingest, the reorder window, tracking,
geofencing, the outbox and the broker again.  The same subscriber also takes the raw
scans (``raw_hop``: publisher → broker → a peer), which tells the transport's share of
a slow alert from the node's; the five slowest alerts are named on stderr.  The reorder window is part of the
latency by design (``[ingest] reorder_window_s``, default 3 s, set for radio links);
the rates are run at ``--window`` (default 0: wired sensors with in-order clocks) and
the first rate again at the default window for comparison.  The node's status gives
what it shed.  Needs ``mosquitto`` (tests/run.sh installs it); starts its own.  One JSON object per line.

    python benchmarks/live_latency.py [--rates 1000,10000,50000] [--seconds 20] [--window 0]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import getpass
import json
import math
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import msgspec
import numpy as np
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from geo.frame import WGS84, LocalFrame  # noqa: E402

PREFIX = "borderfusion/v1"
ORIGIN = (47.0, 8.0)
PER_RADAR, LANES, SPACING_M, SPEED_MPS, PERIOD_S = 280, 70, 40.0, 8.0, 0.1


class _ScanTime(msgspec.Struct):
    t: float


@contextlib.contextmanager
def mosquitto(directory: Path) -> Iterator[int]:
    """A Mosquitto broker of our own on a free loopback port (yields the port), stopped on exit.

    Queue limits high enough that nothing is dropped at the rates measured, Nagle off,
    persistence on (as the example broker configuration recommends); it runs as the
    current user, who can read the private temporary folder (as root, mosquitto would
    switch to the user 'mosquitto').
    """
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise SystemExit("live_latency: the mosquitto broker is not installed (apt-get install mosquitto)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (directory / "data").mkdir(parents=True, exist_ok=True)
    conf = directory / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"
                    "max_queued_bytes 0\nmax_inflight_messages 100\nset_tcp_nodelay true\n"
                    f"persistence true\npersistence_location {directory / 'data'}/\nuser {getpass.getuser()}\n")
    with open(directory / "broker.log", "ab") as log:
        process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not start: {(directory / 'broker.log').read_text()}") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def radar_east(k: int, n: int) -> float:
    return (k - (n - 1) / 2) * 5000.0


def write_site(directory: Path, port: int, n_radars: int, window_s: float, *, max_range_m: float = 2500.0,
               scan_period_s: float = PERIOD_S) -> Path:
    """The bench site: ``n_radars`` radars along a straight east-west border (north = 0), 5 km apart,
    1.1 km south of it, each reaching ``max_range_m`` once per ``scan_period_s``."""
    frame = LocalFrame(*ORIGIN, 0.0)
    lat, lon, _ = frame.to_geodetic(np.array([radar_east(k, n_radars) for k in range(n_radars)]),
                                    np.full(n_radars, -1100.0))
    half = 5000.0 * n_radars / 2 + 5000
    corners = {}
    for name, (s, n) in {"country-a": (-20_000, 0.0), "country-b": (0.0, 20_000)}.items():
        la, lo, _ = frame.to_geodetic(np.array([-half, half, half, -half, -half]), np.array([s, s, n, n, s]))
        corners[name] = [[float(a), float(b)] for a, b in zip(lo, la)]
    features = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [corners[c]]},
                 "properties": {"id": c, "name": c, "kind": "country", "agency": f"agency-{c[-1]}",
                                "share_with": [], "severity": "high", "alerts": ["border_crossing", "approach"]}}
                for c in corners]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "j.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    radars = "".join(
        f'[[sensors]]\nid = "radar-{k}"\nkind = "radar"\nlat = {float(lat[k])!r}\nlon = {float(lon[k])!r}\nalt_m = 0.0\n'
        f"max_range_m = {max_range_m!r}\nrange_sigma_m = 3.0\nazimuth_sigma_deg = 0.1\ndetection_probability = 0.95\n"
        f"false_alarms_per_scan = 0.1\nscan_period_s = {scan_period_s!r}\n\n" for k in range(n_radars))
    (directory / "site.toml").write_text(
        f'[site]\nname = "bench"\nnode_id = "bench-1"\norigin = {{ lat = {ORIGIN[0]}, lon = {ORIGIN[1]}, alt_m = 0.0 }}\n'
        f'jurisdictions = "j.geojson"\n\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\nprefix = "{PREFIX}"\n'
        f'outbox = "outbox"\nqueue_size = 20000\n\n[ingest]\nreorder_window_s = {window_s}\n\n{radars}'
        "[outputs]\ntracks_rate_hz = 1.0\n")
    return directory / "site.toml"


def publisher(port: int, n_targets: int, seconds: float, ready, stats, synchronised: bool) -> None:
    """Radars at 10 Hz in real time, each at its own phase; sends until ``seconds`` have passed."""
    n_radars = math.ceil(n_targets / PER_RADAR)
    frame = LocalFrame(*ORIGIN, 0.0)
    i = np.arange(n_targets)
    radar = i // PER_RADAR
    lane, row = (i % PER_RADAR) % LANES, (i % PER_RADAR) // LANES
    east = np.array([radar_east(k, n_radars) for k in range(n_radars)])[radar] - 1400 + SPACING_M * lane
    north0 = -20.0 - 45.0 * (row + lane / LANES)  # crossings spread evenly over 2.5 … 25 s
    appear = 5.0 * ((i * 0.6180339887) % 1.0)  # targets come into view over the first 5 s, not all at once
    r_lat, r_lon, _ = frame.to_geodetic(np.array([radar_east(k, n_radars) for k in range(n_radars)]),
                                        np.full(n_radars, -1100.0))
    rng = np.random.default_rng(1)
    encode = msgspec.json.Encoder().encode
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-radars", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.on_socket_open = lambda c, u, sock: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    gc.freeze()  # the measuring tools must not stall on their own garbage collection
    ready.set()
    start = time.time()
    step, sent, late = 0, 0, 0
    while True:  # radar k scans at phase k / n_radars of the period (--sync: all at once)
        tick = start + (step // n_radars if synchronised else step) * PERIOD_S / (1 if synchronised else n_radars)
        late += sleep_until(tick)
        now = time.time()
        if now - start > seconds:
            break
        for k in range(n_radars) if synchronised else (step % n_radars,):
            mine = np.flatnonzero((radar == k) & (appear <= now - start))
            lat, lon, _ = frame.to_geodetic(east[mine], north0[mine] + SPEED_MPS * (now - start))
            az, _, dist = WGS84.inv(np.full(mine.size, r_lon[k]), np.full(mine.size, r_lat[k]), lon, lat)
            dist = dist + rng.normal(0, 3.0, mine.size)
            az = (az + rng.normal(0, 0.1, mine.size)) % 360.0
            plots = [{"range_m": float(r), "azimuth_deg": float(a)} for r, a in zip(dist, az)]
            client.publish(f"{PREFIX}/raw/radar/radar-{k}",
                           encode({"sensor_id": f"radar-{k}", "t": now, "seq": step, "plots": plots}), qos=1)
            sent += len(plots)
        step += n_radars if synchronised else 1
    client.disconnect()
    client.loop_stop()
    stats.put({"sent_detections": sent, "elapsed_s": time.time() - start, "late_ticks": late})


def percentiles(name: str, ms: np.ndarray) -> dict:
    return {f"{name}_{key}_ms": round(float(np.percentile(ms, q)), 1) if ms.size else None
            for key, q in (("p50", 50), ("p99", 99), ("max", 100))}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks of 10 ms


def sleep_until(tick: float) -> bool:
    """Sleep until wall time ``tick``; True when it had already passed (a late tick)."""
    wait = tick - time.time()
    if wait > 0:
        time.sleep(wait)
        return False
    return True


def thread_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of the process's main thread and of all its other threads."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:  # a thread that just ended
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14, 15)
        if int(task.name) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


def run_rate(rate: int, seconds: float, window_s: float, synchronised: bool = False) -> dict:
    n_targets = max(1, rate // 10)
    with tempfile.TemporaryDirectory() as tmp, mosquitto(Path(tmp) / "broker") as port:
        tmp = Path(tmp)
        site = write_site(tmp / "site", port, math.ceil(n_targets / PER_RADAR), window_s)
        latencies: dict[str, float] = {}
        raised: dict[str, float] = {}
        raw_seen: list[tuple[float, bytes]] = []  # (receive wall time, payload) of every raw scan
        statuses: list[dict] = []
        lock = threading.Lock()

        def on_message(c, u, m):
            now = time.time()
            if m.topic.startswith(f"{PREFIX}/raw/"):
                raw_seen.append((now, m.payload))  # parsed after the run: keep this thread light
                return
            body = json.loads(m.payload)
            with lock:
                if m.topic.startswith(f"{PREFIX}/status/"):
                    statuses.append(body)
                elif body["alert_id"] not in latencies:
                    latencies[body["alert_id"]] = now - body["raised_t"]
                    raised[body["alert_id"]] = body["raised_t"]

        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-agency", protocol=mqtt.MQTTv5)
        sub.on_message = on_message
        sub.on_connect = lambda c, *a: [c.subscribe(f"{PREFIX}/alerts/+", qos=1),
                                        c.subscribe(f"{PREFIX}/status/+", qos=1),
                                        c.subscribe(f"{PREFIX}/raw/+/+", qos=0)]
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        node = subprocess.Popen([sys.executable, "-m", "fusion.cli", "run", "--config", str(site)],
                                stdout=subprocess.DEVNULL, stderr=open(tmp / "node.log", "w"))
        try:
            deadline = time.monotonic() + 120
            while not any(s.get("state") == "online" for s in statuses) and time.monotonic() < deadline:
                if node.poll() is not None:
                    raise RuntimeError(f"the node exited: {(tmp / 'node.log').read_text()}")
                time.sleep(0.1)
            ready, stats = mp.Event(), mp.Queue()
            pub = mp.Process(target=publisher, args=(port, n_targets, seconds, ready, stats, synchronised))
            cpu0 = cpu_seconds(node.pid)
            pub.start()
            result = stats.get(timeout=seconds + 120)
            pub.join()
            time.sleep(window_s + 6.0)  # let the node catch up and report its status
            cpu1 = cpu_seconds(node.pid)
        finally:
            node.terminate()
            node.communicate(timeout=60)
            sub.disconnect()
            sub.loop_stop()
    counters = statuses[-1]["counters"] if statuses else {}
    lat_ms = np.array(list(latencies.values())) * 1000.0
    scan_t = msgspec.json.Decoder(_ScanTime)
    hop = {round((scan := scan_t.decode(payload)).t, 3): rx - scan.t for rx, payload in raw_seen}
    hop_ms = np.array(list(hop.values())) * 1000.0
    slow = sorted(((latency, alert_id) for alert_id, latency in latencies.items() if latency > window_s + 0.05),
                  reverse=True)
    for latency, alert_id in slow[:5]:  # where did a slow alert lose its time: before the broker's fan-out, or after?
        print(f"slow alert {alert_id} (raised_t {raised[alert_id]:.3f}): {latency * 1000:.0f} ms; its scan reached "
              f"a peer subscriber after {hop.get(raised[alert_id], float('nan')) * 1000:.0f} ms", file=sys.stderr)
    return {
        "bench": "live_latency", "offered_det_per_s": rate, "targets": n_targets,
        "reorder_window_s": window_s, "seconds": seconds, "radars_synchronised": synchronised,
        "sent_det_per_s": round(result["sent_detections"] / result["elapsed_s"]),
        "received_msgs": counters.get("received"), "shed": counters.get("shed"),
        "alerts": int(lat_ms.size),
        **percentiles("latency", lat_ms), **percentiles("raw_hop", hop_ms),
        "node_cpu_per_s": round((cpu1 - cpu0) / seconds, 3), "publisher_late_ticks": result["late_ticks"],
    }


def main() -> None:
    gc.freeze()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,10000,20000,30000,50000",
                        help="offered detections/s, comma-separated (default 1000,10000,20000,30000,50000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of traffic per rate (default 20)")
    parser.add_argument("--window", type=float, default=0.0, help="reorder window of the node (default 0 s)")
    parser.add_argument("--sync", action="store_true",
                        help="all radars scan at the same instant (worst case) instead of at spread phases")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    for rate in rates:
        print(json.dumps(run_rate(rate, args.seconds, args.window, args.sync)), flush=True)
    print(json.dumps(run_rate(rates[0], args.seconds, 3.0, args.sync)), flush=True)  # the default window, for comparison


if __name__ == "__main__":
    main()
