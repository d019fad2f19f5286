"""The static map of a run (``borderfusion map``, and the demo's ``map.png``).

Drawn in longitude/latitude with the axes' aspect set to 1/cos(latitude of the site
origin), so that over a site of tens of km a kilometre east is as long as a
kilometre north; the ticks are degrees and a scale bar gives kilometres.  Every
layer has a legend entry: jurisdictions (by name, kind and agency), sensors and their
coverage, the drone's flown path (from the sensor log), true paths (the demo), tracks
(coloured by their most likely class, a hollow circle where they start, an arrow where
they end, their id beside it) and alerts (a marker per type, coloured by severity).
Alert markers that would cover one another are moved apart on screen, each tied to
where it was raised by a thin leader line.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import matplotlib
import msgspec

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from fusion.config import Site  # noqa: E402

__all__ = ["draw_map", "drone_paths", "spread_markers", "scale_bar_km", "SnapshotLine", "AlertLine"]


class _TrackFields(msgspec.Struct):
    track_id: str
    lat: float
    lon: float


class SnapshotLine(msgspec.Struct):
    """What the map needs of a track snapshot line (interface §3.1)."""

    t: float
    tracks: list[_TrackFields]


class AlertLine(msgspec.Struct):
    """What the map needs of an alert line (interface §3.2)."""

    alert_id: str
    type: str
    t: float
    lat: float
    lon: float
    severity: str

_KIND_STYLE = {"country": dict(alpha=0.13, lw=2.0, ls="-"), "sector": dict(alpha=0.16, lw=1.3, ls="--"),
               "zone": dict(alpha=0.35, lw=1.2, ls="-")}
_KIND_COLOURS = {"sector": "#6c3483", "zone": "#c0392b"}
_COUNTRY_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf"]
_CLASS_COLOURS = {"person": "#8e44ad", "vehicle": "#d35400", "animal": "#27ae60", "uav": "#2c3e50",
                  "unknown": "#7f8c8d"}
_ALERT_MARKERS = {"border_crossing": "X", "zone_entry": "v", "zone_exit": "^", "dwell": "s", "approach": "D"}
_SEVERITY_COLOURS = {"high": "#c0392b", "medium": "#e67e22", "low": "#2e86c1"}
_MAX_LABELS = 80
_MARKER_SPACING_PX = 13.0


def _polygons(geometry):
    return list(geometry.geoms) if hasattr(geometry, "geoms") else [geometry]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def scale_bar_km(width_km: float) -> float:
    """A round length (1, 2 or 5 × 10ⁿ km) near a fifth of the map's width."""
    target = max(width_km / 5.0, 1e-3)
    power = 10.0 ** math.floor(math.log10(target))
    return max((m * power for m in (1.0, 2.0, 5.0) if m * power <= target), default=power)


def spread_markers(points_px: np.ndarray, spacing_px: float = _MARKER_SPACING_PX,
                   occupied_px: np.ndarray | None = None) -> np.ndarray:
    """Screen positions for markers at ``points_px`` (N×2 pixels) that are at least ``spacing_px`` apart
    from each other and from the spots in ``occupied_px`` (markers already drawn).

    Greedy, in the given order: a marker stays where it belongs if that spot is free,
    else takes the nearest free spot on rings of radius spacing, 2·spacing, … around it
    (12 directions a ring).  Deterministic; O(N²), fine for the few hundred alerts of a run.
    """
    placed: list[np.ndarray] = [] if occupied_px is None else list(np.asarray(occupied_px, dtype=float))
    out = np.empty_like(points_px, dtype=float)
    angles = np.radians(np.arange(0, 360, 30))
    for i, point in enumerate(points_px):
        candidates = [point] + [point + ring * spacing_px * np.array([math.cos(a), math.sin(a)])
                                for ring in range(1, 40) for a in angles]
        for spot in candidates:
            if all(np.hypot(*(spot - other)) >= spacing_px for other in placed):
                break
        placed.append(spot)
        out[i] = spot
    return out


def drone_paths(log_path: str | Path) -> dict[str, np.ndarray]:
    """Each drone's platform positions (N×2 lon, lat) in the order of a sensor log."""
    from fusion.logio import read_log

    paths: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for record in read_log(log_path):
        if "/raw/drone/" not in record.topic:
            continue
        try:
            platform = json.loads(record.payload)["platform"]
            paths[record.topic.rsplit("/", 1)[-1]].append((float(platform["lon"]), float(platform["lat"])))
        except (ValueError, KeyError, TypeError):
            continue  # a rejected input: not the drone's path
    return {sensor: np.asarray(points) for sensor, points in paths.items()}


def _track_paths(snapshots: list[dict]) -> dict[str, dict]:
    paths: dict[str, dict] = {}
    for snap in snapshots:
        for track in snap["tracks"]:
            entry = paths.setdefault(track["track_id"], {"lonlat": [], "classification": {}})
            entry["lonlat"].append((track["lon"], track["lat"]))
            entry["classification"] = track.get("classification") or entry["classification"]
    return paths


def draw_map(site: Site, snapshots: list[dict], alerts: list[dict], path: str | Path,
             truth_xy: list[np.ndarray] | None = None, drones: dict[str, np.ndarray] | None = None) -> None:
    """Write a PNG of the site with the tracks of ``snapshots``, the ``alerts``, and optionally the true
    paths (local metres) and the drones' flown paths (lon, lat)."""
    frame = site.frame
    origin = site.config.site.origin
    fig, ax = plt.subplots(figsize=(13, 10), dpi=110)
    ax.set_aspect(1.0 / math.cos(math.radians(origin.lat)))
    handles: list = []

    countries = iter(_COUNTRY_COLOURS)
    for j in site.jurisdictions:
        colour = _KIND_COLOURS.get(j.kind) or next(countries, "#555555")
        style = _KIND_STYLE[j.kind]
        for poly in _polygons(j.polygon):
            x, y = np.asarray(poly.exterior.xy)
            lat, lon, _ = frame.to_geodetic(x, y)
            ax.fill(lon, lat, alpha=style["alpha"], color=colour, lw=0)
            ax.plot(lon, lat, color=colour, lw=style["lw"], ls=style["ls"])
        handles.append(Patch(facecolor=colour, alpha=min(1.0, style["alpha"] * 3), edgecolor=colour, ls=style["ls"],
                             label=f"{j.name} ({j.kind}, {j.agency})"))

    kinds_drawn: set[str] = set()
    for s in site.sensors:
        spec = s.spec
        if s.kind in ("radar", "ground"):
            radius = spec.max_range_m if s.kind == "radar" else spec.radius_m
            ring = np.radians(np.linspace(0, 360, 181))
            lat, lon, _ = frame.to_geodetic(s.east_m + radius * np.sin(ring), s.north_m + radius * np.cos(ring))
            ax.plot(lon, lat, ls=":", color="0.35", lw=0.9)
            ax.plot(spec.lon, spec.lat, "k^" if s.kind == "radar" else "ks", ms=9 if s.kind == "radar" else 5, zorder=6)
            ax.annotate(spec.id, (spec.lon, spec.lat), xytext=(5, -10), textcoords="offset points", fontsize=7, color="0.2")
            kinds_drawn.add(s.kind)
    if "radar" in kinds_drawn:
        handles.append(Line2D([], [], marker="^", color="k", ls=":", lw=0.9, label="radar (dotted: range)"))
    if "ground" in kinds_drawn:
        handles.append(Line2D([], [], marker="s", color="k", ls="", ms=5, label="ground sensor"))
    for sensor, lonlat in (drones or {}).items():
        if len(lonlat):
            ax.plot(lonlat[:, 0], lonlat[:, 1], color="#16a085", lw=0.8, alpha=0.7)
            handles.append(Line2D([], [], color="#16a085", lw=0.8, label=f"drone {sensor}: flown path"))

    if truth_xy:
        for xy in truth_xy:
            lat, lon, _ = frame.to_geodetic(xy[:, 0], xy[:, 1])
            ax.plot(lon, lat, color="0.55", lw=0.8, ls="--")
        handles.append(Line2D([], [], color="0.55", lw=0.8, ls="--", label="true paths (simulation)"))

    paths = _track_paths(snapshots)
    longest = sorted(paths, key=lambda k: -len(paths[k]["lonlat"]))[:_MAX_LABELS]
    classes_drawn: set[str] = set()
    labels: list[tuple[str, np.ndarray, str]] = []  # (text, end point, colour): placed once the view is fixed
    for track_id, entry in paths.items():
        lonlat = np.asarray(entry["lonlat"])
        classes = entry["classification"]
        cls = max(classes, key=classes.get) if classes else "unknown"
        colour = _CLASS_COLOURS.get(cls, "#7f8c8d")
        classes_drawn.add(cls)
        ax.plot(lonlat[:, 0], lonlat[:, 1], color=colour, lw=1.4, zorder=4)
        ax.plot(*lonlat[0], marker="o", mfc="white", mec=colour, ms=5, zorder=5)
        if len(lonlat) >= 2:
            ax.annotate("", xy=lonlat[-1], xytext=lonlat[-2], zorder=5,
                        arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.4, mutation_scale=12))
        if track_id in longest:
            labels.append((track_id.rsplit("-", 1)[-1], lonlat[-1], colour))
    for cls in sorted(classes_drawn):
        handles.append(Line2D([], [], color=_CLASS_COLOURS.get(cls, "#7f8c8d"), lw=1.4, label=f"track: {cls}"))
    if paths:
        handles.append(Line2D([], [], color="0.3", marker="o", mfc="white", ls="", label="track start"))
        handles.append(Line2D([], [], color="0.3", marker=r"$\rightarrow$", ls="", ms=10,
                              label="track end, direction (label: track number)"))

    ax.autoscale_view()
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    alert_px = _alerts(fig, ax, alerts, handles)
    _labels(fig, ax, labels, alert_px)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    _scale_bar(ax, origin.lat)

    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.ticklabel_format(useOffset=False)
    times = [s["t"] for s in snapshots]
    span = f"{_iso(min(times))} – {_iso(max(times))}" if times else "no snapshots"
    ax.set_title(f"{site.name} (node {site.node_id}): {len(paths)} tracks, {len(alerts)} alerts\n{span}", fontsize=11)
    ax.grid(alpha=0.25)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def _alerts(fig, ax, alerts: list[dict], handles: list) -> np.ndarray:
    """Alert markers, spread on screen so none hides another, each tied to its true spot; their pixels."""
    if not alerts:
        return np.zeros((0, 2))
    ordered = sorted(alerts, key=lambda a: (a["t"], a["alert_id"]))
    fig.canvas.draw()  # fixes the data → pixel transform
    true_px = ax.transData.transform(np.array([(a["lon"], a["lat"]) for a in ordered]))
    shown_px = spread_markers(true_px)
    shown = ax.transData.inverted().transform(shown_px)
    for alert, (lon, lat) in zip(ordered, shown):
        colour = _SEVERITY_COLOURS.get(alert["severity"], "0.4")
        if (lon, lat) != (alert["lon"], alert["lat"]):
            ax.plot([alert["lon"], lon], [alert["lat"], lat], color=colour, lw=0.6, zorder=7)
            ax.plot(alert["lon"], alert["lat"], ".", color=colour, ms=3, zorder=7)
        ax.scatter(lon, lat, marker=_ALERT_MARKERS.get(alert["type"], "o"), color=colour, s=55, zorder=8,
                   edgecolors="k", linewidths=0.5)
    counts: dict[str, int] = defaultdict(int)
    for alert in ordered:
        counts[alert["type"]] += 1
    for kind, n in counts.items():
        handles.append(Line2D([], [], marker=_ALERT_MARKERS.get(kind, "o"), color="w", mfc="0.5", mec="k", ms=8,
                              label=f"alert {kind.replace('_', ' ')} ({n})"))
    for severity, colour in _SEVERITY_COLOURS.items():
        handles.append(Patch(facecolor=colour, label=f"alert severity {severity}"))
    return shown_px


def _labels(fig, ax, labels: list[tuple[str, np.ndarray, str]], alert_px: np.ndarray) -> None:
    """Track numbers beside their ends, spread so that none covers another or an alert marker
    (a leader line when moved)."""
    if not labels:
        return
    fig.canvas.draw()
    ends_px = ax.transData.transform(np.array([end for _, end, _ in labels]))
    anchors_px = ends_px + np.array([12.0, 6.0])  # up and to the right of the arrow head
    placed = ax.transData.inverted().transform(spread_markers(anchors_px, spacing_px=14.0, occupied_px=alert_px))
    for (text, end, colour), spot, anchor in zip(labels, placed, ax.transData.inverted().transform(anchors_px)):
        if np.hypot(*(spot - anchor)) > 0:
            ax.plot([end[0], spot[0]], [end[1], spot[1]], color=colour, lw=0.4, alpha=0.7, zorder=6)
        ax.annotate(text, spot, fontsize=7, color=colour, ha="center", va="center", zorder=9,
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.7))


def _scale_bar(ax, lat0_deg: float) -> None:
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    km_per_deg_lon = 111.32 * math.cos(math.radians(lat0_deg))
    length_km = scale_bar_km((x1 - x0) * km_per_deg_lon)
    length_deg = length_km / km_per_deg_lon
    x, y = x0 + 0.04 * (x1 - x0), y0 + 0.04 * (y1 - y0)
    ax.plot([x, x + length_deg], [y, y], color="k", lw=3, solid_capstyle="butt", zorder=9)
    ax.annotate(f"{length_km:g} km", (x + length_deg / 2, y), xytext=(0, 4), textcoords="offset points",
                ha="center", fontsize=8, zorder=9)
