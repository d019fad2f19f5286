"""``borderfusion simulate``: sensor messages for a site, from a seeded scenario.

Every configured sensor is modelled from its own config: radars scan their
coverage with their detection probability, range/azimuth noise and Poisson clutter
uniform over the coverage disc; ground sensors fire for targets within their
radius (and rarely by themselves); drones orbit a patrol circle and report
geolocated detections inside their camera footprint.  Each message reaches the
pipeline after a random network delay (0.05 s plus an exponential tail, at most
2 s), so arrivals are slightly out of order; the log is written in receive order.

A radar scan whose message would be larger than the payload limit (256 KiB, interface
§2.4) or hold more plots than a message may is sent as the fewest equal sectors whose
messages all fit (``sector_deg``, interface §2.1: [0, 180] and [180, 360], then thirds,
…), one message and ``seq`` each, all stamped with the scan's time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import msgspec
import numpy as np
import shapely

from fusion.config import Site
from fusion.logio import LogWriter
from fusion.scenario import Truth, make_scenario
from sensors.ingest import MAX_PAYLOAD_BYTES
from sensors.normalize import CEP_TO_SIGMA, SensorModel
from sensors.schema import CLASSES, MAX_PLOTS
from sensors.sector import in_sector_deg, sector_span_deg, sector_split_deg
from sensors.specs import DroneSpec, GroundSpec, RadarSpec

__all__ = ["simulate", "sensor_messages", "default_area", "default_targets", "write_truth", "split_scan",
           "DEFAULT_T0"]

DEFAULT_T0 = 1795000000.0
_MODALITIES = ("seismic", "acoustic", "infrared", "magnetic")


def _radar_discs(site: Site) -> list[tuple[float, float, float]]:
    return [(s.east_m, s.north_m, s.spec.max_range_m * 0.9) for s in site.sensors if isinstance(s.spec, RadarSpec)]


def covered_by_radar(site: Site):
    """A predicate: is a point well inside some radar's coverage?"""
    discs = np.array(_radar_discs(site)).reshape(-1, 3)
    return lambda p: bool(((p[0] - discs[:, 0]) ** 2 + (p[1] - discs[:, 1]) ** 2 <= discs[:, 2] ** 2).any()) or not len(discs)


def default_area(site: Site) -> tuple[float, float, float, float]:
    """Where targets move: the radars' coverage, else a 10 km square about the origin."""
    discs = _radar_discs(site)
    if not discs:
        return (-5000.0, -5000.0, 5000.0, 5000.0)
    return (min(e - r for e, _, r in discs), min(n - r for _, n, r in discs),
            max(e + r for e, _, r in discs), max(n + r for _, n, r in discs))


def _classification(rng: np.random.Generator, true_class: str, confidence: float) -> dict:
    if rng.random() < 0.15:  # a wrong label now and then
        true_class = CLASSES[int(rng.integers(len(CLASSES)))]
    return {true_class: round(confidence, 3)}


def _radar(sensor: SensorModel, truth: Truth, rng, t_start: float, t_end: float) -> Iterator[tuple[float, dict]]:
    spec: RadarSpec = sensor.spec
    origin = np.array((sensor.east_m, sensor.north_m))
    t = t_start + rng.uniform(0, spec.scan_period_s)
    while t < t_end:
        alive, pos, vel = truth.at(t)
        rel = pos - origin
        rng_m = np.hypot(rel[:, 0], rel[:, 1])
        seen = alive & (rng_m <= spec.max_range_m) & (rng_m > 50) & (rng.random(len(rng_m)) < spec.detection_probability)
        rel, vel, rng_m = rel[seen], vel[seen], rng_m[seen]
        bearing = np.arctan2(rel[:, 0], rel[:, 1])
        radial = np.einsum("ij,ij->i", rel / rng_m[:, None], vel)
        n_clutter = rng.poisson(spec.false_alarms_per_scan)
        plots_r = np.concatenate((rng_m + rng.normal(0, spec.range_sigma_m, len(rng_m)),
                                  spec.max_range_m * np.sqrt(rng.uniform(0.0, 1.0, n_clutter))))
        plots_b = np.concatenate((bearing, rng.uniform(-math.pi, math.pi, n_clutter)))
        plots_az = (np.degrees(plots_b - sensor.north_rotation_rad)
                    + rng.normal(0, spec.azimuth_sigma_deg, len(plots_b))) % 360.0
        plots_v = np.concatenate((radial + rng.normal(0, spec.radial_velocity_sigma_mps, len(radial)),
                                  rng.normal(0, 2.0, n_clutter)))
        order = rng.permutation(len(plots_r))
        plots = [{"range_m": round(float(abs(plots_r[j])), 2), "azimuth_deg": round(float(plots_az[j]), 4),
                  "radial_velocity_mps": round(float(plots_v[j]), 3), "snr_db": round(float(rng.uniform(8, 25)), 1),
                  "range_sigma_m": None, "azimuth_sigma_deg": None, "classification": None} for j in order]
        yield t, {"plots": plots}
        t += spec.scan_period_s


def _ground(sensor: SensorModel, truth: Truth, rng, t_start: float, t_end: float) -> Iterator[tuple[float, dict]]:
    spec: GroundSpec = sensor.spec
    modality = _MODALITIES[sensor.index % len(_MODALITIES)]
    site = np.array((sensor.east_m, sensor.north_m))
    quiet_until = -math.inf
    false_rate = spec.false_triggers_per_hour / 3600.0
    t = t_start + rng.uniform(0, 1)
    while t < t_end:
        alive, pos, _ = truth.at(t)
        dist = np.hypot(*(pos - site).T)
        near = np.flatnonzero(alive & (dist <= spec.radius_m))
        fire = None
        if len(near) and t >= quiet_until and rng.random() < spec.detection_probability:
            i = int(near[np.argmin(dist[near])])
            rel = pos[i] - site
            fire = {"classification": _classification(rng, truth.classes[i], float(rng.uniform(0.5, 0.8)))}
            if modality == "infrared":
                fire["bearing_deg"] = round(float((math.degrees(math.atan2(rel[0], rel[1]) - sensor.north_rotation_rad)
                                                   + rng.normal(0, spec.bearing_sigma_deg)) % 360), 1)
        elif rng.random() < false_rate:
            fire = {"classification": {"animal": 0.4, "unknown": 0.4}}
        if fire is not None:
            quiet_until = t + 3.0  # the sensor re-arms after a few seconds
            yield t, {"modality": modality, "bearing_deg": None, "range_m": None, **fire}
        t += 1.0


def _drone(sensor: SensorModel, truth: Truth, rng, t_start: float, t_end: float, site: Site) -> Iterator[tuple[float, dict]]:
    spec: DroneSpec = sensor.spec
    frame = site.frame
    if spec.patrol_lat is not None and spec.patrol_lon is not None:
        ce, cn, _ = frame.to_enu(spec.patrol_lat, spec.patrol_lon)
        center = np.array((float(ce), float(cn)))
    else:
        center = np.zeros(2)
    omega = 15.0 / spec.patrol_radius_m  # 15 m/s along the orbit
    sigma = spec.cep_m * CEP_TO_SIGMA
    t = t_start + rng.uniform(0, spec.report_period_s)
    phase = rng.uniform(0, 2 * math.pi)
    while t < t_end:
        a = phase + omega * (t - t_start)
        platform = center + spec.patrol_radius_m * np.array((math.sin(a), math.cos(a)))
        alive, pos, _ = truth.at(t)
        dist = np.hypot(*(pos - platform).T)
        seen = np.flatnonzero(alive & (dist <= spec.footprint_radius_m) & (rng.random(len(dist)) < spec.detection_probability))
        noisy = pos[seen] + rng.normal(0, sigma, (len(seen), 2))
        lat, lon, _ = frame.to_geodetic(noisy[:, 0], noisy[:, 1])
        plat_lat, plat_lon, _ = frame.to_geodetic(platform[0], platform[1])
        detections = [{"lat": round(float(lat[j]), 7), "lon": round(float(lon[j]), 7), "cep_m": spec.cep_m,
                       "classification": _classification(rng, truth.classes[i], float(rng.uniform(0.7, 0.95)))}
                      for j, i in enumerate(seen)]
        yield t, {"platform": {"lat": round(float(plat_lat), 7), "lon": round(float(plat_lon), 7), "alt_m": 620.0},
                  "detections": detections}
        t += spec.report_period_s


def split_scan(plots: list[dict], fits) -> list[dict]:
    """One radar scan's plots → message bodies: the whole scan when ``fits({"plots": plots})``, else
    the fewest equal sectors (:func:`~sensors.sector.sector_split_deg`) whose bodies all fit, each with
    its ``sector_deg`` and the plots within it (a plot on a border goes to the first sector holding it).
    Sectors are tried up to one per plot; an empty sector is still sent (the radar looked there)."""
    whole = {"plots": plots}
    if fits(whole):
        return [whole]
    azimuth = np.array([p["azimuth_deg"] for p in plots], dtype=np.float64)
    for parts in range(2, max(2, len(plots)) + 1):
        free = np.ones(len(plots), bool)
        bodies = []
        for from_deg, to_deg in sector_split_deg(parts):
            mine = free & in_sector_deg(azimuth, *sector_span_deg(from_deg, to_deg))
            free &= ~mine
            bodies.append({"sector_deg": [from_deg, to_deg], "plots": [plots[j] for j in np.flatnonzero(mine)]})
            if not fits(bodies[-1]):
                break
        else:
            return bodies
    raise ValueError(f"a radar scan of {len(plots)} plots does not fit the payload limit in any number of sectors")


def _fits(encoder: msgspec.json.Encoder, head: dict, max_payload_bytes: int):
    """A predicate: does a message of ``head`` and this body fit the payload and plot limits?  The
    ``seq`` is counted at its widest (20 digits), so any seq it is given later fits too."""
    def fits(body: dict) -> bool:
        size = len(encoder.encode({**head, "seq": 10**19, **body}))
        return size <= max_payload_bytes and len(body.get("plots", ())) <= MAX_PLOTS
    return fits


def sensor_messages(site: Site, truth: Truth, seed: int, duration_s: float,
                    max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> Iterator[tuple[float, str, bytes]]:
    """(t_rx, topic, payload) for every sensor, in receive order; a radar scan larger than
    ``max_payload_bytes`` is sent as sectors (:func:`split_scan`)."""
    rng = np.random.default_rng(seed + 1)
    prefix = site.config.mqtt.prefix
    t_start, t_end = truth.t0, truth.t0 + duration_s
    encoder = msgspec.json.Encoder()
    streams = []
    for sensor in site.sensors:
        sub = np.random.default_rng([seed, sensor.index])
        if isinstance(sensor.spec, RadarSpec):
            gen = _radar(sensor, truth, sub, t_start, t_end)
        elif isinstance(sensor.spec, GroundSpec):
            gen = _ground(sensor, truth, sub, t_start, t_end)
        else:
            gen = _drone(sensor, truth, sub, t_start, t_end, site)
        streams.append((sensor, gen))
    pending: list[tuple[float, int, str, bytes]] = []
    order = 0
    for sensor, gen in streams:
        kind = sensor.kind
        seq = 0
        for t, body in gen:
            head = {"sensor_id": sensor.spec.id, "t": round(t, 3)}
            parts = split_scan(body["plots"], _fits(encoder, head, max_payload_bytes)) if kind == "radar" else [body]
            for part in parts:
                delay = min(0.05 + rng.exponential(0.25), 2.0)
                payload = encoder.encode({**head, "seq": seq, **part})
                pending.append((round(t + delay, 3), order, f"{prefix}/raw/{kind}/{sensor.spec.id}", payload))
                order += 1
                seq += 1
    pending.sort()
    for t_rx, _, topic, payload in pending:
        yield t_rx, topic, payload


def countries_at(site: Site, xy: np.ndarray) -> list[str | None]:
    """The country containing each point (an extra truth field that ``evaluate`` reads)."""
    countries = [j for j in site.jurisdictions if j.kind == "country"]
    inside = np.column_stack([shapely.contains_xy(c.polygon, xy[:, 0], xy[:, 1]) for c in countries])
    return [countries[int(np.argmax(row))].id if row.any() else None for row in inside]


def write_truth(truth: Truth, site: Site, path: str | Path) -> int:
    """Ground truth as JSON Lines (interface §4), one line per target per second; returns lines written."""
    encoder = msgspec.json.Encoder()
    lines = 0
    with open(path, "wb") as out:
        for k in range(truth.steps):
            pos, vel = truth.position[:, k], truth.velocity[:, k]
            alive = np.flatnonzero(np.isfinite(pos[:, 0]))
            if not len(alive):
                continue
            lat, lon, _ = site.frame.to_geodetic(pos[alive, 0], pos[alive, 1])
            country = countries_at(site, pos[alive])
            for j, i in enumerate(alive):
                out.write(encoder.encode({
                    "t": truth.t0 + k, "target_id": truth.target_ids[i], "class": truth.classes[i],
                    "lat": round(float(lat[j]), 7), "lon": round(float(lon[j]), 7),
                    "east_m": round(float(pos[i, 0]), 2), "north_m": round(float(pos[i, 1]), 2),
                    "vel_east_mps": round(float(vel[i, 0]), 3), "vel_north_mps": round(float(vel[i, 1]), 3),
                    "jurisdiction": country[j],
                }) + b"\n")
                lines += 1
    return lines


def default_targets(duration_s: float) -> int:
    """Targets when none are asked for: one per 30 s, at least four."""
    return max(4, int(round(duration_s / 30)))


def simulate(site: Site, duration_s: float, out: str | Path, truth_path: str | Path | None = None,
             seed: int = 0, n_targets: int | None = None, t0: float = DEFAULT_T0,
             max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> dict:
    """Write a log (and optionally the truth) for ``site``; returns counts for the summary.
    ``max_payload_bytes``: the largest message written (a radar scan beyond it goes as sectors)."""
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s: expected a finite number of seconds > 0, got {duration_s!r}")
    if n_targets is None:
        n_targets = default_targets(duration_s)
    if n_targets < 0:
        raise ValueError(f"n_targets: expected 0 (clutter only) or more, got {n_targets!r}")
    truth = make_scenario(site.jurisdictions, default_area(site), duration_s, t0, n_targets, seed,
                          covered=covered_by_radar(site))
    messages = 0
    with LogWriter(out, site.name) as writer:
        for t_rx, topic, payload in sensor_messages(site, truth, seed, duration_s, max_payload_bytes):
            writer.write(t_rx, topic, payload)
            messages += 1
    truth_lines = write_truth(truth, site, truth_path) if truth_path else 0
    return {"targets": n_targets, "messages": messages, "truth_lines": truth_lines, "truth": truth}
