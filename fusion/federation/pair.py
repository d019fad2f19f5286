"""Two sovereign nodes on one simulated border: their sites, one log split by country, and an offline
two-node replay (what the live pair does, without brokers).

The pair (:func:`write_sites`): node ``edge-a`` holds the southern radar (0, −2500 m) and
the ground sensors on its bank, node ``edge-b`` the northern radar (0, +2500 m); both
radars reach 3.5 km, so the band within ~1 km of the river is seen by both and each
country's far side by its own node only.  Each node releases to the other under an
agreement (``[[federation.partners]]``: the restricted depot zone withheld, positions on
a 50 m grid) and takes the other's released tracks in (``[federation.fusion]``).

The scenario (:func:`simulate_pair`): a few seeded targets (:func:`fusion.scenario.make_scenario`)
and two vehicles that cross, one northbound from deep in A (out of B's radar until it
is ~1 km short of the border), one southbound from deep in B; one log of every sensor
(:func:`fusion.simulate.sensor_messages`) split by the sensor's country: each node gets
its own sensors only.

:func:`replay_pair` drives both pipelines from the two logs merged by receive time;
each snapshot and alert goes through the node's egress gateway
(:class:`~fusion.federation.gateway.Gateway`) and what it releases for the other node is
fed to that node at once, on ``PREFIX/partner/{origin}/tracks`` — what the bridge does.
"""

from __future__ import annotations

import heapq
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from fusion.config import Site, load_site
from fusion.federation.gateway import Gateway, compile_policies
from fusion.logio import LogWriter, read_log
from fusion.pipeline import Pipeline
from fusion.scenario import Truth, make_scenario
from fusion.simulate import DEFAULT_T0, covered_by_radar, default_area, sensor_messages, write_truth

__all__ = ["SIDES", "NODE_ID", "RADAR_XY", "RANGE_M", "PairSites", "write_sites", "simulate_pair", "SideRun",
           "replay_pair", "replay_two", "replay_federation", "crossers"]

SIDES = ("a", "b")
NODE_ID = {"a": "edge-a", "b": "edge-b"}
OTHER = {"a": "b", "b": "a"}
RADAR_XY = {"a": (0.0, -2500.0), "b": (0.0, 2500.0)}
RANGE_M = 3500.0
PREFIX = "borderfusion/v1"
_M_PER_DEG_LAT = 111_195.0  # near 47° N; the sites place the radars by lat/lon
_RADAR = """
[[sensors]]
id = "{id}"
kind = "radar"
lat = {lat:.6f}
lon = 8.0
alt_m = 520.0
max_range_m = {range_m}
range_sigma_m = 15.0
azimuth_sigma_deg = 0.3
detection_probability = 0.9
false_alarms_per_scan = 5.0
"""
_GROUND = """
[[sensors]]
id = "{id}"
kind = "ground"
lat = {lat}
lon = {lon}
radius_m = 50.0
"""
_AGREEMENT = """
[[federation.partners]]
partner_id = "{partner}"
policy_id = "{side}-to-{other}-demo"
jurisdictions = ["country-a", "country-b", "sector-east"]
border = ["country-a", "country-b"]
max_border_distance_m = 3000.0
classes = ["person", "vehicle", "animal", "uav", "unknown"]  # radar alone cannot tell a vehicle from an animal
statuses = ["confirmed", "coasting"]
alert_types = ["border_crossing", "approach"]
grid_m = 50.0
key_file = "keys/{partner}.key"

[federation.fusion]
own_jurisdictions = ["country-{side}"]
"""


@dataclass(frozen=True)
class PairSites:
    """The two nodes' site files and a joint one (every sensor, no federation) to simulate with."""

    a: Path
    b: Path
    joint: Path

    def of(self, side: str) -> Path:
        return getattr(self, side)


def _sensors(side: str) -> str:
    radar_id = {"a": "radar-s1", "b": "radar-n1"}[side]
    text = _RADAR.format(id=radar_id, lat=47.0 + RADAR_XY[side][1] / _M_PER_DEG_LAT, range_m=RANGE_M)
    if side == "a":
        for sid, lat, lon in (("ugs-011", 46.9950, 7.9480), ("ugs-013", 46.9960, 8.0000), ("ugs-015", 46.9950, 8.0520)):
            text += _GROUND.format(id=sid, lat=lat, lon=lon)
    return text


def _site_text(name: str, node_id: str, geojson: Path, port: int, mqtt_extra: str, sensors: str,
               federation: str) -> str:
    return (f'[site]\nname = "{name}"\nnode_id = "{node_id}"\norigin = {{ lat = 47.0, lon = 8.0, alt_m = 500.0 }}\n'
            f'jurisdictions = "{geojson}"\n\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\nprefix = "{PREFIX}"\n'
            f'outbox = "outbox"\n{mqtt_extra}\n[ingest]\nreorder_window_s = 1.0\n\n[geofence]\n'
            f'approach_horizon_s = 60.0\n{sensors}{federation}')


def write_sites(directory: Path, geojson: Path, ports: dict[str, int] | None = None,
                mqtt_extra: dict[str, str] | None = None, keys: dict[str, bytes] | None = None) -> PairSites:
    """Write ``directory``/{a,b,joint}/site.toml and each node's pseudonym key (0600, random unless given).

    ``ports``: each node's broker; ``mqtt_extra``: more ``[mqtt]`` lines per side (credentials)."""
    ports, mqtt_extra, keys = ports or {"a": 1883, "b": 1884}, mqtt_extra or {}, keys or {}
    paths = {}
    for side in SIDES:
        folder = directory / side
        (folder / "keys").mkdir(parents=True, exist_ok=True)
        key = folder / "keys" / f"{NODE_ID[OTHER[side]]}.key"
        key.write_bytes(keys.get(side) or os.urandom(32))
        key.chmod(0o600)
        federation = _AGREEMENT.format(partner=NODE_ID[OTHER[side]], side=side, other=OTHER[side])
        paths[side] = folder / "site.toml"
        paths[side].write_text(_site_text(f"federation-{side}", NODE_ID[side], geojson.resolve(), ports[side],
                                          mqtt_extra.get(side, ""), _sensors(side), federation))
    (directory / "joint").mkdir(parents=True, exist_ok=True)
    joint = directory / "joint" / "site.toml"
    joint.write_text(_site_text("federation-joint", "joint", geojson.resolve(), 1883, "", _sensors("a") + _sensors("b"),
                                ""))
    return PairSites(paths["a"], paths["b"], joint)


def crossers(duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(2, steps, 2) positions and velocities of the two crossing vehicles on the 1 s grid: one
    northbound at 14 m/s from (300, −2000) in A, one southbound at 12 m/s from (−400, 2000) in B."""
    steps = int(math.ceil(duration_s)) + 2
    k = np.arange(steps, dtype=np.float64)[:, None]
    velocity = np.array([[0.0, 14.0], [0.0, -12.0]])
    start = np.array([[300.0, -2000.0], [-400.0, 2000.0]])
    position = start[:, None, :] + velocity[:, None, :] * k[None]
    return position, np.broadcast_to(velocity[:, None, :], position.shape).copy()


def simulate_pair(sites: PairSites, duration_s: float, directory: Path, seed: int = 16,
                  n_targets: int = 4) -> tuple[dict[str, Path], Path, Truth]:
    """The scenario of the module docstring: ``{side: log}`` (each node's own sensors), the truth file
    (interface §4) and the :class:`Truth`."""
    joint = load_site(sites.joint)
    background = make_scenario(joint.jurisdictions, default_area(joint), duration_s, DEFAULT_T0, n_targets, seed,
                               covered=covered_by_radar(joint))
    position, velocity = crossers(duration_s)
    truth = Truth(DEFAULT_T0, background.target_ids + ("crosser-north", "crosser-south"),
                  background.classes + ("vehicle", "vehicle"),
                  np.concatenate((background.position, position)), np.concatenate((background.velocity, velocity)))
    own = {side: {s.spec.id for s in load_site(sites.of(side)).sensors} for side in SIDES}
    logs = {side: directory / f"sensors-{side}.jsonl.gz" for side in SIDES}
    directory.mkdir(parents=True, exist_ok=True)
    writers = {side: LogWriter(logs[side], f"federation-{side}") for side in SIDES}
    try:
        for t_rx, topic, payload in sensor_messages(joint, truth, seed, duration_s):
            sensor = topic.rpartition("/")[2]
            for side in SIDES:
                if sensor in own[side]:
                    writers[side].write(t_rx, topic, payload)
    finally:
        for writer in writers.values():
            writer.close()
    truth_path = directory / "truth.jsonl"
    write_truth(truth, joint, truth_path)
    return logs, truth_path, truth


@dataclass
class SideRun:
    """What one node saw in a run: its own snapshots (annotated), alerts, what it released and received."""

    site: Site
    snapshots: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    released: list[tuple[str, dict]] = field(default_factory=list)  # (topic, message)
    received: list[tuple[float, str, dict]] = field(default_factory=list)  # (t_rx, topic, message)
    rejected: list[dict] = field(default_factory=list)

    @property
    def incoming(self) -> list[dict]:
        return [a for a in self.alerts if a["type"] == "incoming"]


def replay_pair(sites: PairSites, logs: dict[str, Path]) -> dict[str, SideRun]:
    """The pair's two nodes offline (module docstring): ``{side: SideRun}``."""
    return replay_two({side: (load_site(sites.of(side)), logs[side]) for side in SIDES})


def replay_two(nodes: dict[str, tuple[Site, Path]]) -> dict[str, SideRun]:
    """Two nodes ``{key: (site, log)}`` offline, each releasing to the other through its gateway
    (``borderfusion replay LOG --federation PARTNER_SITE PARTNER_LOG``); ``{key: SideRun}``.

    Only what a node releases for the other (``release/{other node}/…``) reaches it, as
    ``partner/{node}/…``; releases for third parties are kept in ``released`` and go nowhere."""
    if len(nodes) != 2 or len({site.node_id for site, _ in nodes.values()}) != 2:
        raise ValueError("replay_two: two nodes with different node ids")
    keys = list(nodes)
    other = {keys[0]: keys[1], keys[1]: keys[0]}
    pipeline = {k: Pipeline(site) for k, (site, _) in nodes.items()}
    gateway = {k: Gateway(compile_policies(site)) for k, (site, _) in nodes.items()}
    runs = {k: SideRun(site) for k, (site, _) in nodes.items()}
    t_rx = 0.0

    def take(key: str, out) -> None:
        """A node's outputs: kept, through its gateway, and its releases for the other into it (the bridge)."""
        run = runs[key]
        run.rejected += [r.to_dict() for r in out.rejected]
        alerts = [a.to_dict() for a in out.alerts]
        run.alerts += alerts
        releases = gateway[key].on_alerts(alerts) if alerts else []
        for snapshot in out.snapshots:
            as_dict = snapshot.to_dict()
            run.snapshots.append(as_dict)
            releases += gateway[key].on_snapshot(as_dict)
        head = f"/release/{runs[other[key]].site.node_id}/"
        for release in releases:
            message = msgspec.json.decode(release.payload)
            run.released.append((release.topic, message))
            if head not in release.topic:
                continue
            kind = release.topic.rpartition("/")[2]
            topic = f"{run.site.config.mqtt.prefix}/partner/{run.site.node_id}/{kind}"
            runs[other[key]].received.append((t_rx, topic, message))
            if kind == "tracks":
                take(other[key], pipeline[other[key]].feed(t_rx, topic, release.payload))

    for t_rx, _, key, topic, payload in heapq.merge(*(_records(k, log) for k, (_, log) in nodes.items())):
        take(key, pipeline[key].feed(t_rx, topic, payload))
    for key in keys:
        take(key, pipeline[key].flush())
    return runs


def _records(side: str, log: Path):
    for n, r in enumerate(read_log(log)):
        yield r.t_rx, n, side, r.topic, r.payload


def replay_federation(site: Site, log: Path, partner_site: Site, partner_log: Path, alerts_out: Path | None = None,
                      tracks_out: Path | None = None, rejected_out: Path | None = None) -> dict:
    """``borderfusion replay LOG --config SITE --federation PARTNER_SITE PARTNER_LOG``: both nodes offline
    (:func:`replay_two`); this node's alerts, snapshots and rejections written as JSON Lines; a summary
    with its links (own track → partner tracks, the longest-held first)."""
    from fusion.replay import open_private

    run = replay_two({"own": (site, log), "partner": (partner_site, partner_log)})["own"]
    for path, items in ((alerts_out, run.alerts), (tracks_out, run.snapshots), (rejected_out, run.rejected)):
        if path:
            with open_private(path) as f:
                for item in items:
                    f.write(msgspec.json.encode(item) + b"\n")
    held: dict[tuple[str, str, str], int] = {}
    for snapshot in run.snapshots:
        for track in snapshot["tracks"]:
            for p in track.get("partner_tracks", ()):
                key = (track["track_id"], p["origin"], p["track_id"])
                held[key] = held.get(key, 0) + 1
    links = [{"track_id": own, "origin": origin, "partner_track": partner, "snapshots": n}
             for (own, origin, partner), n in sorted(held.items(), key=lambda kv: -kv[1])]
    return {"node_id": site.node_id, "partner": partner_site.node_id, "snapshots": len(run.snapshots),
            "alerts": len(run.alerts), "incoming_alerts": len(run.incoming), "released": len(run.released),
            "received": len(run.received), "rejected": len(run.rejected), "links": links}
