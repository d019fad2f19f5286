"""``borderfusion demo --federation``: two sovereign nodes and their brokers on loopback, end to end.

Two Mosquitto brokers (from ``PATH`` or ``/usr/sbin/mosquitto``) on free 127.0.0.1 ports,
bridged both ways as ``configs/federation/mosquitto-*.conf`` do (``release/{partner}/…``
out, ``partner/{origin}/…`` in, QoS 1; without TLS and accounts: loopback only); two
``borderfusion run`` processes, one per country (:func:`fusion.federation.pair.write_sites`);
the pair's simulated log split by country and published to each node's broker at
``speed`` × real time.  An observer on each broker keeps everything; at the end, per side
(``DIR/edge-a``, ``DIR/edge-b``): ``tracks.jsonl`` (own snapshots, with links, fused states
and partner-only tracks), ``fused.jsonl`` (the own tracks fused with a partner's),
``released.jsonl``, ``received.jsonl``, ``alerts.jsonl``, ``incoming.jsonl`` and
``map.png`` (own tracks, and partner-only ones under ``origin/pseudonym``); ``checks.json``
and the printed checks (:mod:`fusion.federation.paircheck`).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from fusion.config import load_site
from fusion.federation import paircheck
from fusion.federation.pair import NODE_ID, OTHER, PREFIX, SIDES, SideRun, simulate_pair, write_sites

__all__ = ["run_federation_demo", "Observer", "side_run", "mosquitto_binary", "FederationDemoError"]

DURATION_S = 110.0
SPEED = 4.0


class FederationDemoError(RuntimeError):
    """The demo cannot run here (no broker, a node that did not start); the message says what to do."""


def mosquitto_binary() -> str:
    """The Mosquitto broker's executable: ``mosquitto`` on PATH, else /usr/sbin/mosquitto."""
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise FederationDemoError("the Mosquitto broker is not installed (neither `mosquitto` on PATH nor "
                              "/usr/sbin/mosquitto); install it, e.g. `sudo apt-get install mosquitto`")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bridge(side: str, partner_port: int) -> str:
    """The bridge of ``side``'s broker to the partner's: what ``side`` releases for the partner arrives there
    as ``partner/{side's node}/…``."""
    me, partner = NODE_ID[side], NODE_ID[OTHER[side]]
    return (f"connection {me}-to-{partner}\naddress 127.0.0.1:{partner_port}\nbridge_protocol_version mqttv311\n"
            f"remote_clientid bridge-{me}\ncleansession false\nlocal_cleansession false\n"
            # base 1 s, cap 1 s: Mosquitto 2.0 read a single "restart_timeout 1" and kept its 5–30 s back-off
            f"notifications_local_only true\nrestart_timeout 1 1\n"
            f"topic # out 1 {PREFIX}/release/{partner}/ {PREFIX}/partner/{me}/\n")


class _Broker:
    def __init__(self, directory: Path, port: int, bridge: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.port = directory, port
        (directory / "mosquitto.conf").write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {directory}/\nmax_queued_messages 100000\nset_tcp_nodelay true\n{bridge}")
        self.process: subprocess.Popen | None = None

    def start(self, binary: str) -> None:
        self.process = subprocess.Popen([binary, "-c", str(self.directory / "mosquitto.conf")],
                                        stdout=subprocess.DEVNULL, stderr=open(self.directory / "broker.log", "ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise FederationDemoError(f"mosquitto did not start on 127.0.0.1:{self.port}; see "
                                  f"{self.directory / 'broker.log'}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Observer:
    """A persistent MQTT v5 session on one broker keeping (wall time, topic, message) of ``topics``."""

    def __init__(self, port: int, topics: tuple[str, ...], client_id: str,
                 credentials: tuple[str, str] | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[float, str, dict]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id=client_id)
        if credentials:
            self.client.username_pw_set(*credentials)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: [c.subscribe(t, qos=1) for t in topics]
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise FederationDemoError(f"could not subscribe on 127.0.0.1:{port}")

    def _on_message(self, client, userdata, message) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        with self._lock:
            self.messages.append((time.time(), message.topic, body))

    def of(self, head: str) -> list[tuple[float, str, dict]]:
        """Messages whose topic starts with ``head``, in arrival order."""
        with self._lock:
            return [m for m in self.messages if m[1].startswith(head)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def side_run(site, observer: Observer) -> SideRun:
    """What an observer on a node's broker saw of that node, as a :class:`SideRun` (alerts once each)."""
    run = SideRun(site)
    run.snapshots = [m for _, _, m in observer.of(f"{PREFIX}/tracks")]
    alerts: dict[str, dict] = {}
    for _, _, alert in observer.of(f"{PREFIX}/alerts/"):
        alerts.setdefault(alert["alert_id"], alert)
    run.alerts = list(alerts.values())
    run.released = [(topic, m) for _, topic, m in observer.of(f"{PREFIX}/release/")]
    run.received = [(t, topic, m) for t, topic, m in observer.of(f"{PREFIX}/partner/")]
    return run


def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _run_nodes(out: Path, binary: str, geojson: Path, seed: int, speed: float):
    """Brokers, sites, logs, nodes, feeding: the observed runs and the truth."""
    from fusion.mqtt import publish_log

    ports = {side: _free_port() for side in SIDES}
    brokers = {side: _Broker(out / "brokers" / NODE_ID[side], ports[side], _bridge(side, ports[OTHER[side]]))
               for side in SIDES}
    sites = write_sites(out / "sites", geojson, ports)
    logs, _, truth = simulate_pair(sites, DURATION_S, out, seed=seed)
    nodes: dict[str, subprocess.Popen] = {}
    observers: dict[str, Observer] = {}
    try:
        for broker in brokers.values():
            broker.start(binary)
        for side in SIDES:
            observers[side] = Observer(ports[side], (f"{PREFIX}/#",), f"demo-observer-{side}")
            nodes[side] = subprocess.Popen([sys.executable, "-m", "fusion.cli", "run", "--config", str(sites.of(side))],
                                           stdout=subprocess.DEVNULL,
                                           stderr=open(out / f"node-{NODE_ID[side]}.log", "wb"))
        for side in SIDES:
            status = f"{PREFIX}/status/{NODE_ID[side]}"
            if not _wait(lambda: any(m.get("state") == "online" for _, _, m in observers[side].of(status))
                         or nodes[side].poll() is not None, 90) or nodes[side].poll() is not None:
                raise FederationDemoError(f"node {NODE_ID[side]} did not come online; see "
                                          f"{out / f'node-{NODE_ID[side]}.log'}")
        print(f"  nodes        edge-a on 127.0.0.1:{ports['a']}, edge-b on 127.0.0.1:{ports['b']} (bridged); "
              f"feeding {DURATION_S:g} s of sensors at ×{speed:g}", flush=True)
        feeders = [threading.Thread(target=publish_log, args=(load_site(sites.of(side)), logs[side], speed))
                   for side in SIDES]
        for thread in feeders:
            thread.start()
        for thread in feeders:
            thread.join()
        time.sleep(2.0)  # the last snapshots and releases cross the bridges
    finally:
        for process in nodes.values():
            if process.poll() is None:
                process.terminate()
        for process in nodes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        time.sleep(0.5)
        for observer in observers.values():
            observer.close()
        for broker in brokers.values():
            broker.stop()
    runs = {side: side_run(load_site(sites.of(side)), observers[side]) for side in SIDES}
    return runs, truth


def _write_side(directory: Path, run: SideRun, truth) -> None:
    from fusion.mapplot import draw_map

    directory.mkdir(parents=True, exist_ok=True)

    def lines(name: str, items) -> None:
        with open(directory / name, "w") as f:
            for item in items:
                f.write(json.dumps(item) + "\n")

    lines("tracks.jsonl", run.snapshots)
    lines("fused.jsonl", ({"t": s["t"], "tracks": [tr for tr in s["tracks"] if "partner_tracks" in tr]}
                          for s in run.snapshots))
    lines("released.jsonl", ({"topic": topic, "message": m} for topic, m in run.released))
    lines("received.jsonl", ({"topic": topic, "message": m} for _, topic, m in run.received))
    lines("alerts.jsonl", run.alerts)
    lines("incoming.jsonl", run.incoming)
    joint = [{**s, "tracks": s["tracks"] + [{**p, "track_id": f"{p['origin']}/{p['track_id']}"}
                                            for p in s.get("partner_tracks", ())]} for s in run.snapshots]
    paths = [truth.position[i][np.isfinite(truth.position[i, :, 0])] for i in range(len(truth.target_ids))]
    draw_map(run.site, joint, run.alerts, directory / "map.png", paths)


def _checks(runs: dict[str, SideRun], truth) -> dict:
    violations, checked = paircheck.leaks(runs)
    ids = paircheck.identities(runs, truth)
    leads = paircheck.incoming_lead_s(runs, truth)
    score = paircheck.gospa_by_picture(runs, truth)
    best_alone = min(score[NODE_ID[s]] for s in SIDES)
    best_joint = min(score[f"{NODE_ID[s]}+partner"] for s in SIDES)
    return {"leaks": len(violations), "released_items_checked": checked, "violations": violations[:20],
            "identities": ids, "incoming_lead_s": leads, "gospa_m": score,
            "gospa_joint_to_best_alone": round(best_joint / best_alone, 3),
            "ok": {"leaks_0": not violations and checked > 0, "identities_linked": all(r["linked"] for r in ids),
                   "incoming_lead_20s": all(v is not None and v >= 20.0 for v in leads.values()),
                   "gospa_joint_le_0.9_best_alone": best_joint <= 0.9 * best_alone}}


def run_federation_demo(out: Path, geojson: Path, seed: int = 16, speed: float = SPEED) -> int:
    """Run the two-node demo into ``out``; print the checks; 0 if every check holds, else 1."""
    from fusion.demo import write_marked

    binary = mosquitto_binary()  # no broker: say so before anything is written
    return write_marked(out, lambda: _demo(out, binary, geojson, seed, speed))


def _demo(out: Path, binary: str, geojson: Path, seed: int, speed: float) -> int:
    started = time.perf_counter()
    print(f"borderfusion demo --federation — two nodes, two brokers on loopback (seed {seed})", flush=True)
    runs, truth = _run_nodes(out, binary, geojson, seed, speed)
    for side in SIDES:
        _write_side(out / NODE_ID[side], runs[side], truth)
    checks = _checks(runs, truth)
    (out / "checks.json").write_text(json.dumps(checks, indent=2) + "\n")
    mark = {True: "ok", False: "FAILED"}
    for side in SIDES:
        r = runs[side]
        print(f"  {NODE_ID[side]}       {len(r.snapshots)} snapshots, {len(r.alerts)} alerts "
              f"({len(r.incoming)} incoming), {len(r.released)} released, {len(r.received)} received")
    print(f"  leaks        {checks['leaks']} of {checks['released_items_checked']} released items "
          f"[{mark[checks['ok']['leaks_0']]}]")
    for row in checks["identities"]:
        print(f"  identity     {row['target']}: {row['sender']} {row['sender_track']} → {row['receiver']} "
              f"{row['receiver_track']} linked to {row['pseudonym']}: {row['linked']} "
              f"({row['linked_snapshots']} snapshots) [{mark[row['linked']]}]")
    print(f"  incoming     lead before the receiver's radar can see it: "
          + ", ".join(f"{k} {v} s" for k, v in checks["incoming_lead_s"].items())
          + f" [{mark[checks['ok']['incoming_lead_20s']]}]")
    print(f"  GOSPA        over the joint area (m): " + ", ".join(f"{k} {v}" for k, v in checks["gospa_m"].items())
          + f"; joint/best alone {checks['gospa_joint_to_best_alone']} "
          f"[{mark[checks['ok']['gospa_joint_le_0.9_best_alone']]}]")
    print(f"  outputs      {out}/edge-a/, {out}/edge-b/ (tracks, fused, released, received, alerts, incoming "
          f".jsonl, map.png), checks.json")
    print(f"  took         {time.perf_counter() - started:.1f} s")
    return 0 if all(checks["ok"].values()) else 1
