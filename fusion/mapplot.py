"""The demo's map picture: jurisdictions, sensors, track paths and alerts, in local km."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402

from fusion.config import Site  # noqa: E402
from sensors.specs import RadarSpec  # noqa: E402

__all__ = ["draw_map"]

_FILL = {"country": 0.10, "sector": 0.12, "zone": 0.30}
_COLORS = {"country": None, "sector": "tab:purple", "zone": "tab:red"}
_ALERT_MARKERS = {"border_crossing": ("X", "red"), "zone_entry": ("v", "darkred"), "zone_exit": ("^", "darkred"),
                  "dwell": ("s", "orange"), "approach": ("d", "gold")}


def _polygons(geometry):
    return list(geometry.geoms) if hasattr(geometry, "geoms") else [geometry]


def draw_map(site: Site, snapshots: list[dict], alerts: list[dict], path: str | Path,
             truth_xy: list[np.ndarray] | None = None) -> None:
    """Write a PNG of the site with the tracks of ``snapshots`` and the ``alerts``."""
    fig, ax = plt.subplots(figsize=(10, 9), dpi=110)
    palette = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for j in site.jurisdictions:
        color = _COLORS[j.kind] or next(palette)
        for poly in _polygons(j.polygon):
            x, y = np.asarray(poly.exterior.xy) / 1000.0
            ax.fill(x, y, alpha=_FILL[j.kind], color=color, lw=0)
            ax.plot(x, y, color=color, lw=1.8 if j.kind == "country" else 1.0,
                    ls="-" if j.kind != "sector" else "--")
        c = shapely.centroid(j.polygon)
        ax.annotate(j.name, (c.x / 1000, c.y / 1000), fontsize=8, ha="center", color="0.25")
    for s in site.sensors:
        if isinstance(s.spec, RadarSpec):
            ax.plot(s.east_m / 1000, s.north_m / 1000, "k^", ms=9)
            ax.add_patch(plt.Circle((s.east_m / 1000, s.north_m / 1000), s.spec.max_range_m / 1000,
                                    fill=False, ls=":", color="0.5"))
            ax.annotate(s.spec.id, (s.east_m / 1000, s.north_m / 1000), xytext=(4, 4), textcoords="offset points", fontsize=8)
        elif s.kind == "ground":
            ax.plot(s.east_m / 1000, s.north_m / 1000, "ks", ms=4)
    for xy in truth_xy or []:
        ax.plot(xy[:, 0] / 1000, xy[:, 1] / 1000, color="0.6", lw=0.8, ls="--")
    paths: dict[str, list] = {}
    for snap in snapshots:
        for track in snap["tracks"]:
            paths.setdefault(track["track_id"], []).append((track["east_m"], track["north_m"]))
    for points in paths.values():
        xy = np.asarray(points) / 1000.0
        ax.plot(xy[:, 0], xy[:, 1], lw=1.4)
    frame = site.frame
    for kind, (marker, color) in _ALERT_MARKERS.items():
        chosen = [a for a in alerts if a["type"] == kind]
        if chosen:
            e, n, _ = frame.to_enu([a["lat"] for a in chosen], [a["lon"] for a in chosen])
            ax.scatter(e / 1000, n / 1000, marker=marker, color=color, s=70, zorder=5, label=f"{kind} ({len(chosen)})",
                       edgecolors="k", linewidths=0.5)
    ax.set_xlabel("east (km)")
    ax.set_ylabel("north (km)")
    ax.set_title(f"{site.name}: {len(paths)} tracks, {len(alerts)} alerts")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
