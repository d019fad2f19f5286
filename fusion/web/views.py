"""What each operator's browser may see: tokens → agencies, and the per-agency filter.

The filter runs on the server (never in the page).  An agency sees

* the alerts it is a recipient of (interface §3.2 ``recipients``), and
* the tracks inside, or within ``[web] track_margin_m`` of, the jurisdictions whose
  alerts it receives: those it is responsible for and those that ``share_with`` it.

The second rule is one polygon per agency, the union of those jurisdictions buffered
by the margin, so a whole snapshot is tested in one vectorised call
(:func:`shapely.contains_xy` on the tracks' local east/north metres).

A browser without a tokens file gets the whole picture (:data:`ALL`); the config
allows that only on a loopback address.
"""

from __future__ import annotations

import hmac
import math
import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from fusion.config import ConfigError, Site

__all__ = ["ALL", "AgencyView", "Operator", "load_tokens", "agency_views", "compact_tracks",
           "ELLIPSE_SIGMA_SCALE"]

#: the view of a node without a tokens file: everything
ALL = "*"
#: the page draws the uncertainty ellipse at this many σ: the 95 % region of a 2-D Gaussian
#: (√χ²₂(0.95) = √5.991)
ELLIPSE_SIGMA_SCALE = math.sqrt(5.991)
_MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Operator:
    """One line of the tokens file: whoever holds ``token`` works for ``agency``."""

    token: str
    agency: str
    name: str


@dataclass(frozen=True, eq=False)
class AgencyView:
    """The area an agency may see tracks in (local metres); ``None`` for :data:`ALL`."""

    agency: str
    area: BaseGeometry | None

    def sees_alert(self, alert: dict) -> bool:
        return self.area is None or self.agency in alert.get("recipients", ())

    def sees(self, east_m: np.ndarray, north_m: np.ndarray) -> np.ndarray:
        """Boolean mask of the positions this agency may see."""
        if self.area is None:
            return np.ones(len(east_m), dtype=bool)
        return shapely.contains_xy(self.area, east_m, north_m)


def agency_views(site: Site, margin_m: float) -> dict[str, AgencyView]:
    """One view per agency named in the jurisdictions (responsible or shared with), plus :data:`ALL`."""
    areas: dict[str, list[BaseGeometry]] = {}
    for j in site.jurisdictions:
        for agency in j.recipients:
            areas.setdefault(agency, []).append(j.polygon)
    views = {ALL: AgencyView(ALL, None)}
    for agency, polygons in areas.items():
        area = shapely.union_all(polygons)
        if margin_m > 0:
            area = area.buffer(margin_m, quad_segs=8)
        shapely.prepare(area)
        views[agency] = AgencyView(agency, area)
    return views


def load_tokens(site: Site, path: Path) -> dict[str, Operator]:
    """Read the tokens file (TOML, ``[[operator]]`` tables with ``token``, ``agency``, optional ``name``).

    Like the MQTT password file it must be readable by its owner only.  Every agency
    must be one the jurisdictions name, so a typo cannot silently show nothing.
    Raises :class:`ConfigError` naming the file and the entry.
    """
    where = f"{site.path}: web.tokens"
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{where}: cannot read {path} ({'no such file' if not path.exists() else 'not readable'})")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{where}: {path} may be read by other users (mode {mode:04o}); run: chmod 600 {path}")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error} (web.tokens in {site.path})") from None
    known = {agency for j in site.jurisdictions for agency in j.recipients}
    entries = document.get("operator")
    if not isinstance(entries, list) or not entries or set(document) != {"operator"}:
        raise ConfigError(f"{path}: expected only [[operator]] tables with token and agency "
                          f"(web.tokens in {site.path})")
    operators: dict[str, Operator] = {}
    for i, entry in enumerate(entries):
        at = f"{path}: operator[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"token", "agency", "name"}:
            raise ConfigError(f"{at}: only the keys token, agency and name are allowed")
        token, agency = entry.get("token"), entry.get("agency")
        if not isinstance(token, str) or len(token) < _MIN_TOKEN_CHARS or not token.isprintable() or " " in token:
            raise ConfigError(f"{at}.token: expected a string of at least {_MIN_TOKEN_CHARS} printable characters "
                              "without spaces (e.g. from: openssl rand -hex 16)")
        if agency not in known:
            raise ConfigError(f"{at}.agency: {agency!r} is not an agency of the jurisdictions "
                              f"(known: {', '.join(sorted(known))})")
        if token in operators:
            raise ConfigError(f"{at}.token: the same token is given twice")
        operators[token] = Operator(token, agency, str(entry.get("name", f"operator-{i}")))
    return operators


def find_operator(operators: dict[str, Operator], token: str) -> Operator | None:
    """The operator of ``token``, compared in constant time against every token."""
    found = None
    for known, operator in operators.items():
        if hmac.compare_digest(known.encode(), token.encode()):
            found = operator
    return found


def compact_tracks(tracks: list[dict]) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Interface §3.1 tracks → what the page draws, and their east/north metres for the filter.

    The 4×4 covariance becomes the 1-σ position ellipse: the eigenvalues λ₁ ≥ λ₂ of its
    east/north block [[a, c], [c, d]] give the semi-axes √λ₁, √λ₂, and the major axis's
    direction (e, n) its bearing atan2(e, n) clockwise from north.  In closed form (one
    pass over arrays, no per-track solver): λ = (a + d)/2 ± √(((a − d)/2)² + c²), and
    the major axis lies at θ = ½·atan2(2c, a − d) from east, i.e. bearing 90° − θ.
    ``class`` is the most likely class and ``class_p`` its probability.
    """
    n = len(tracks)
    if n == 0:
        return [], np.zeros(0), np.zeros(0)
    east = np.fromiter((t["east_m"] for t in tracks), float, n)
    north = np.fromiter((t["north_m"] for t in tracks), float, n)
    a, c_en, c_ne, d = np.array([(c[0][0], c[0][1], c[1][0], c[1][1]) for c in (t["covariance"] for t in tracks)],
                                dtype=float).reshape(n, 4).T
    c = 0.5 * (c_en + c_ne)
    mean, radius = 0.5 * (a + d), np.hypot(0.5 * (a - d), c)
    major_m, minor_m = np.sqrt(np.maximum(mean + radius, 0.0)), np.sqrt(np.maximum(mean - radius, 0.0))
    bearing = (90.0 - np.degrees(0.5 * np.arctan2(2.0 * c, a - d))) % 180.0
    out = []
    for t, a, b, o in zip(tracks, np.round(major_m, 1).tolist(), np.round(minor_m, 1).tolist(),
                          np.round(bearing, 1).tolist()):
        classes = t.get("classification") or {}
        best = max(classes, key=classes.get) if classes else "unknown"
        out.append({
            "track_id": t["track_id"], "status": t["status"], "lat": t["lat"], "lon": t["lon"],
            "heading_deg": t["heading_deg"], "speed_mps": t["speed_mps"], "class": best,
            "class_p": classes.get(best, 0.0), "ellipse_m": [a, b, o], "jurisdiction": t.get("jurisdiction"),
            "sensors": t.get("sensors", []), "last_update": t.get("last_update"),
        })
    return out, east, north
