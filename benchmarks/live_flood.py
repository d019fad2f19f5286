"""Alert latency and memory of ``borderfusion run`` while one sensor floods it far beyond capacity.

A real Mosquitto (``max_inflight_messages 0``, so the node, not the broker, meets the
flood) and a node on the demo site.  A simulated alert-heavy log is published at
``--speed`` × real time; meanwhile the flooder publishes, as ``radar-n1``, valid scans
of ``--plots`` random plots stamped with the log's current sensor time at ``--rate``
messages a second (pick it at ≥ 10× what the node processes: the status's
``received`` rate during the run tells).  For each alert an agency receives:

    latency = receive wall time − publish wall time of the deciding scan (sensor time raised_t)

Printed as one JSON object: alert count, latency p50/p99/max, the node's peak RSS,
and the status's shed counts per sensor (the flooder's should dominate).

    python benchmarks/live_flood.py [--seconds 30] [--rate 400] [--plots 600] [--max-age 1.5]
"""

from __future__ import annotations

import argparse
import json
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

from fusion.config import load_site  # noqa: E402
from fusion.logio import read_log  # noqa: E402
from fusion.simulate import simulate  # noqa: E402
from tests.broker import PREFIX, Broker, Collector, rss_mb, start_node, stop_node, write_site  # noqa: E402

_encode = msgspec.json.Encoder().encode


def _client(port: int, name: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
    c.max_queued_messages_set(2000)  # the flooder drops what the broker cannot take at once
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--speed", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=400.0, help="flood messages per second")
    parser.add_argument("--plots", type=int, default=600)
    parser.add_argument("--max-age", type=float, default=None, help="[mqtt] max_input_age_s (default: the site's)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bf-flood-"))
    (work / "broker").mkdir()
    broker = Broker(work / "broker", max_inflight=0).start()
    node = None
    try:
        extra = f"max_input_age_s = {args.max_age}" if args.max_age is not None else ""
        site_path = write_site(work / "node", broker.port, outbox=work / "outbox", mqtt_extra=extra)
        site = load_site(site_path)
        log = work / "log.jsonl.gz"
        simulate(site, args.seconds * args.speed, log, None, seed=11, n_targets=int(args.seconds * args.speed / 2))
        records = list(read_log(log))
        published: dict[float, float] = {}  # sensor time (ms) → wall time it was published
        latest_t = [records[0].t_rx]
        done = threading.Event()
        alerts: list[tuple[float, dict]] = []
        watcher = Collector(broker.port, [f"{PREFIX}/alerts/+"], "flood-watch")
        watcher.client.on_message = lambda c, u, m: alerts.append((time.time(), json.loads(m.payload)))
        ops = Collector(broker.port, [f"{PREFIX}/status/+"], "flood-ops")
        node = start_node(site_path)
        assert ops.wait_for(lambda: any(s.get("state") == "online" for s in ops.of(f"{PREFIX}/status/edge-1")), 60)

        def good() -> None:
            c = _client(broker.port, "good")
            start, t0 = time.time(), records[0].t_rx
            for r in records:
                wait = (r.t_rx - t0) / args.speed - (time.time() - start)
                if wait > 0:
                    time.sleep(wait)
                t = msgspec.json.decode(r.payload)["t"]
                published.setdefault(round(t, 3), time.time())
                latest_t[0] = max(latest_t[0], t)
                c.publish(r.topic, r.payload, qos=1)
            done.set()
            c.disconnect()
            c.loop_stop()

        def flood() -> None:
            c = _client(broker.port, "flooder")
            rng = np.random.default_rng(0)
            seq, start = 50_000_000, time.time()
            while not done.is_set():
                t = latest_t[0] + 0.001 * (seq % 1000)
                body = _encode({"sensor_id": "radar-n1", "t": t, "seq": seq, "plots": [
                    {"range_m": float(r), "azimuth_deg": float(a)}
                    for r, a in zip(rng.uniform(100, 8900, args.plots), rng.uniform(0, 360, args.plots))]})
                published.setdefault(round(t, 3), time.time())
                c.publish(f"{PREFIX}/raw/radar/radar-n1", body, qos=1)
                seq += 1
                wait = (seq - 50_000_000) / args.rate - (time.time() - start)
                if wait > 0:
                    time.sleep(wait)
            c.disconnect()
            c.loop_stop()

        threads = [threading.Thread(target=good, daemon=True), threading.Thread(target=flood, daemon=True)]
        for thread in threads:
            thread.start()
        peak = rss_mb(node.pid)
        while not done.is_set():
            time.sleep(0.5)
            peak = max(peak, rss_mb(node.pid))
        time.sleep(8.0)  # the reorder window and the last releases
        peak = max(peak, rss_mb(node.pid))
        code, _ = stop_node(node)
        node = None
        latencies = np.array([rx - published[round(a["raised_t"], 3)] for rx, a in alerts
                              if round(a["raised_t"], 3) in published])
        status = [s for s in ops.of(f"{PREFIX}/status/edge-1") if s.get("state") == "offline"][-1]
        print(json.dumps({
            "seconds": args.seconds, "flood_rate": args.rate, "max_input_age_s": site.config.mqtt.max_input_age_s, "plots": args.plots, "alerts": int(latencies.size),
            "latency_p50_s": round(float(np.percentile(latencies, 50)), 3) if latencies.size else None,
            "latency_p99_s": round(float(np.percentile(latencies, 99)), 3) if latencies.size else None,
            "latency_max_s": round(float(latencies.max()), 3) if latencies.size else None,
            "peak_rss_mb": round(peak, 1), "received": status["counters"]["received"],
            "accepted": status["counters"]["accepted"], "rejected": status["counters"]["rejected"],
            "shed": status["counters"]["shed"], "shed_aged": status["counters"].get("shed_aged"),
            "shed_by_sensor": status.get("shed_by_sensor"), "exit": code}))
        watcher.close()
        ops.close()
    finally:
        if node is not None and node.poll() is None:
            node.kill()
            node.communicate()
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
