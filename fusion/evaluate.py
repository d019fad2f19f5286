"""``borderfusion evaluate``: tracks and alerts scored against ground truth (interface §4).

* GOSPA (García-Fernández, Svensson, Morelande, 2017) with α = 2, order p and
  cut-off c, per snapshot time, via an optimal assignment:

      d = ( Σ_assigned min(dᵢ, c)ᵖ + (cᵖ/2)·(#missed + #false) )^(1/p)

  reported as the mean over time (metres) with its localisation / missed / false
  parts (means of the three terms inside the bracket, in mᵖ: the ``units`` entry
  says so), and the mean number of missed targets and false tracks per frame.
* CLEAR MOT accuracy (MOTA), IDF1, identity switches and fragmentations from
  ``motmetrics``, matching within c.
* Border crossings: a true crossing is a change of the ``jurisdiction`` field
  between consecutive truth samples of a target (written by ``simulate``); an
  alert matches one with the same from/to countries within ``match_s`` seconds and
  ``match_m`` metres.  Precision, recall, the crossing-time error (alert ``t``
  minus true time) and the decision delay (``raised_t`` minus true time), median
  and 95th percentile.

Files that do not belong together are refused (:class:`EvaluationError`, naming
both files) rather than scored into meaningless numbers: at least half of the
snapshots and of the alerts must fall within the truth's time span (± a few
seconds), some snapshot time must equal a truth time, the local frame implied
by each file's (lat, lon) ↔ (east_m, north_m) pairs must be the same site's, and
at least 5 % of the true positions must have a track within c or 5 % of the
track positions a target (two seeds of one site match about 1 %).  ``check=False``
(``--no-check``) scores them anyway.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import motmetrics as mm
import msgspec
import numpy as np
from scipy.optimize import linear_sum_assignment

from geo.frame import WGS84, LocalFrame

__all__ = ["evaluate", "score_frames", "gospa", "true_crossings", "EvaluationError", "frame_origin"]

#: how far outside the truth's time span a snapshot or alert may lie and still count as within it
SPAN_SLACK_S = 5.0
#: two files whose implied frame origins are farther apart than this are from different sites
SAME_SITE_M = 100.0
#: tracks of which less than this share is matched, matching less than this share of the truth,
#: over at least MIN_FRAMES frames, are from another run
MIN_MATCHED = 0.05
MIN_FRAMES = 10


class EvaluationError(ValueError):
    """Input files that cannot be scored (unreadable, or not from the same run); the message names them."""


class _TruthLine(msgspec.Struct):
    t: float
    target_id: str
    lat: float
    lon: float
    east_m: float
    north_m: float


class _Track(msgspec.Struct):
    track_id: str
    lat: float
    lon: float
    east_m: float
    north_m: float


class _Snapshot(msgspec.Struct):
    t: float
    tracks: list[_Track]


class _Alert(msgspec.Struct):
    type: str
    t: float
    raised_t: float
    lat: float
    lon: float


def _lines(path: str | Path, schema: type | None = None, what: str = "JSON Lines") -> list[dict]:
    """Every non-blank line of ``path`` as a dict, each checked against ``schema`` (required fields)."""
    decoder = msgspec.json.Decoder()
    out = []
    try:
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = decoder.decode(line)
                    if schema is not None:
                        msgspec.convert(record, schema)
                except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as error:
                    raise EvaluationError(f"{path}:{number}: not a {what} line: {error}") from None
                out.append(record)
    except OSError as error:
        raise EvaluationError(f"{path}: cannot read: {error.strerror}") from None
    return out


def frame_origin(lat, lon, east_m, north_m) -> tuple[float, float]:
    """The (lat, lon) origin of the local frame in which the point (lat, lon) has the given east/north.

    Start from the point moved back by (−east, −north) along the geodesic, then
    correct once with the exact frame about that guess (its error is the meridian
    convergence times the distance, a few metres; after the correction about a metre
    at 15 km, from the heights of point and origin, which the files do not carry).
    """
    distance = float(np.hypot(east_m, north_m))
    azimuth = float(np.degrees(np.arctan2(-east_m, -north_m)))
    lon0, lat0, _ = WGS84.fwd(lon, lat, azimuth, distance)
    e, n, _ = LocalFrame(lat0, lon0).to_enu(lat, lon)
    miss_e, miss_n = float(e) - east_m, float(n) - north_m
    lon0, lat0, _ = WGS84.fwd(lon0, lat0, float(np.degrees(np.arctan2(miss_e, miss_n))), float(np.hypot(miss_e, miss_n)))
    return lat0, lon0


def _nearest_origin(points: list[dict]) -> tuple[float, float] | None:
    """The frame origin implied by the point closest to it (least sensitive to rounding)."""
    if not points:
        return None
    best = min(points, key=lambda r: r["east_m"] ** 2 + r["north_m"] ** 2)
    return frame_origin(best["lat"], best["lon"], best["east_m"], best["north_m"])


def _span(times) -> str:
    return f"t {min(times):.1f} … {max(times):.1f}"


def _check_matched(truth_path, tracks_path, result: dict, c: float) -> None:
    """Refuse tracks that match almost none of the truth *and* almost none of whose positions are near
    a target: what two runs with different seeds of one site look like (a tracker that tracks anything
    scores far above it; one that tracks nothing has no precision to speak of)."""
    recall, precision = result.get("detection_recall"), result.get("detection_precision")
    if result["frames"] >= MIN_FRAMES and recall is not None and precision is not None \
            and recall < MIN_MATCHED and precision < MIN_MATCHED:
        raise EvaluationError(
            f"{tracks_path} matches almost none of {truth_path}: {recall:.1%} of the true positions have a "
            f"track within {c:g} m and {precision:.1%} of the track positions a target; these look like "
            "different runs (another seed or site?); --no-check scores them anyway")


def _check_together(truth_path, truth_lines: list[dict], tracks_path, snapshots: list[dict],
                    alerts_path, alerts: list[dict] | None) -> None:
    """Raise :class:`EvaluationError` when the files cannot be from the same site and run (see the module doc)."""
    if not truth_lines:
        raise EvaluationError(f"{truth_path}: no truth lines")
    if not snapshots:
        raise EvaluationError(f"{tracks_path}: no track snapshots")
    truth_t = [r["t"] for r in truth_lines]
    lo, hi = min(truth_t) - SPAN_SLACK_S, max(truth_t) + SPAN_SLACK_S
    for path, times, what in ((tracks_path, [s["t"] for s in snapshots], "snapshots"),
                              (alerts_path, [a["t"] for a in alerts or []], "alerts")):
        inside = sum(lo <= t <= hi for t in times)
        if times and inside < len(times) / 2:
            raise EvaluationError(
                f"{path} and {truth_path} are not from the same run: only {inside} of {len(times)} {what} "
                f"({_span(times)}) fall within the truth's time span ({_span(truth_t)})")
    exact = {round(t, 3) for t in truth_t}
    if not any(round(s["t"], 3) in exact for s in snapshots):
        raise EvaluationError(
            f"{tracks_path}: no snapshot time equals a truth time of {truth_path} (truth one line per target per "
            "second; snapshots at outputs.tracks_rate_hz from a replay of the same log): were they made from the "
            "same run?")
    a = _nearest_origin(truth_lines)
    b = _nearest_origin([k for s in snapshots for k in s["tracks"]])
    if a is not None and b is not None:
        apart = WGS84.inv(a[1], a[0], b[1], b[0])[2]
        if apart > SAME_SITE_M:
            raise EvaluationError(
                f"{truth_path} and {tracks_path} are from different sites: their east_m/north_m are about "
                f"origins ({a[0]:.5f}, {a[1]:.5f}) and ({b[0]:.5f}, {b[1]:.5f}), {apart / 1000:.1f} km apart")


def gospa(truth: np.ndarray, estimates: np.ndarray, c: float = 100.0, p: float = 2.0) -> tuple[float, float, int, int]:
    """(GOSPA, localisation term, missed count, false count) for two point sets (n,2), (m,2)."""
    n, m = len(truth), len(estimates)
    if n == 0 or m == 0:
        penalty = (c**p / 2.0) * (n + m)
        return penalty ** (1.0 / p), 0.0, n, m
    d = np.minimum(np.hypot(*(truth[:, None, :] - estimates[None, :, :]).transpose(2, 0, 1)), c)
    rows, cols = linear_sum_assignment(d**p)
    assigned = d[rows, cols] < c
    local = float(np.sum(d[rows, cols][assigned] ** p))
    matched = int(assigned.sum())
    missed, false = n - matched, m - matched
    total = local + (c**p / 2.0) * (missed + false)
    return total ** (1.0 / p), local, missed, false


def true_crossings(truth_lines: list[dict]) -> list[dict]:
    """Changes of country between consecutive samples of each target (time and point at the midpoint)."""
    by_target: dict[str, list[dict]] = defaultdict(list)
    for line in truth_lines:
        by_target[line["target_id"]].append(line)
    out = []
    for target, lines in by_target.items():
        lines.sort(key=lambda r: r["t"])
        for a, b in zip(lines, lines[1:]):
            ja, jb = a.get("jurisdiction"), b.get("jurisdiction")
            if ja and jb and ja != jb and b["t"] - a["t"] <= 1.5:
                out.append({"target_id": target, "t": (a["t"] + b["t"]) / 2, "from": ja, "to": jb,
                            "lat": (a["lat"] + b["lat"]) / 2, "lon": (a["lon"] + b["lon"]) / 2})
    return sorted(out, key=lambda r: r["t"])


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"median": None, "p95": None, "count": 0}
    arr = np.asarray(values)
    return {"median": round(float(np.median(arr)), 3), "p95": round(float(np.percentile(arr, 95)), 3), "count": len(values)}


def _crossing_scores(truth_lines: list[dict], alerts: list[dict], match_s: float, match_m: float) -> dict:
    truths = true_crossings(truth_lines)
    raised = [a for a in alerts if a["type"] == "border_crossing"]
    candidates = []
    for i, a in enumerate(raised):
        for j, c in enumerate(truths):
            dt = a["t"] - c["t"]
            dist = WGS84.inv(a["lon"], a["lat"], c["lon"], c["lat"])[2]
            if a.get("from_jurisdiction") == c["from"] and a.get("to_jurisdiction") == c["to"] \
                    and abs(dt) <= match_s and dist <= match_m:
                candidates.append((abs(dt), i, j))
    used_a, used_t, time_error, delay = set(), set(), [], []
    for _, i, j in sorted(candidates):
        if i in used_a or j in used_t:
            continue
        used_a.add(i)
        used_t.add(j)
        time_error.append(raised[i]["t"] - truths[j]["t"])
        delay.append(raised[i]["raised_t"] - truths[j]["t"])
    return {
        "true_crossings": len(truths), "alerts": len(raised), "matched": len(used_a),
        "precision": round(len(used_a) / len(raised), 4) if raised else None,
        "recall": round(len(used_t) / len(truths), 4) if truths else None,
        "latency_s": _percentiles(time_error), "decision_delay_s": _percentiles(delay),
    }


def score_frames(frames, c: float = 100.0, p: float = 2.0) -> dict:
    """Tracking scores over ``frames`` = iterable of (truth ids, truth xy (n,2), track ids, track xy (m,2))."""
    acc = mm.MOTAccumulator(auto_id=True)
    numeric: dict[tuple[str, object], int] = {}  # motmetrics wants numeric ids
    g_total, g_local, g_missed, g_false, n_missed, n_false = [], [], [], [], [], []
    for truth_ids, tx, track_ids, ex in frames:
        tx, ex = np.asarray(tx, float).reshape(-1, 2), np.asarray(ex, float).reshape(-1, 2)
        g, loc, miss, false = gospa(tx, ex, c, p)
        g_total.append(g)
        g_local.append(loc)
        g_missed.append(miss * c**p / 2)
        g_false.append(false * c**p / 2)
        n_missed.append(miss)
        n_false.append(false)
        acc.update([numeric.setdefault(("truth", i), len(numeric)) for i in truth_ids],
                   [numeric.setdefault(("track", i), len(numeric)) for i in track_ids],
                   mm.distances.norm2squared_matrix(tx, ex, max_d2=c * c))
    result: dict = {"frames": len(g_total), "gospa": {"c_m": c, "p": p}}
    if not g_total:
        return result
    power = f"m^{p:g}"
    result["gospa"].update({
        "mean": round(float(np.mean(g_total)), 3), "localisation": round(float(np.mean(g_local)), 3),
        "missed": round(float(np.mean(g_missed)), 3), "false": round(float(np.mean(g_false)), 3),
        "units": {"mean": "m", "localisation": power, "missed": power, "false": power},
        "missed_targets_per_frame": round(float(np.mean(n_missed)), 3),
        "false_tracks_per_frame": round(float(np.mean(n_false)), 3)})
    row = mm.metrics.create().compute(
        acc, metrics=["mota", "motp", "idf1", "num_switches", "num_fragmentations", "precision", "recall"],
        name="all").loc["all"]
    result.update({
        "mota": round(float(row["mota"]), 4), "idf1": round(float(row["idf1"]), 4),
        "identity_switches": int(row["num_switches"]), "fragmentations": int(row["num_fragmentations"]),
        "detection_precision": round(float(row["precision"]), 4), "detection_recall": round(float(row["recall"]), 4),
        "motp_m": round(float(np.sqrt(row["motp"])), 3) if np.isfinite(row["motp"]) else None,
    })
    return result


def evaluate(truth_path, tracks_path, alerts_path=None, c: float = 100.0, p: float = 2.0,
             match_s: float = 30.0, match_m: float = 250.0, check: bool = True) -> dict:
    """All scores of a truth file, a track-snapshot file and optionally an alert file, as a dict.

    Raises :class:`EvaluationError` for an unreadable file, and (with ``check``) for files not from
    the same site and run (see the module doc).
    """
    truth_lines = _lines(truth_path, _TruthLine, "ground-truth")
    snapshots = _lines(tracks_path, _Snapshot, "track-snapshot")
    alerts = _lines(alerts_path, _Alert, "alert") if alerts_path is not None else None
    if check:
        _check_together(truth_path, truth_lines, tracks_path, snapshots, alerts_path, alerts)
    truth_at: dict[float, list[dict]] = defaultdict(list)
    for line in truth_lines:
        truth_at[round(float(line["t"]), 3)].append(line)

    def frames():
        for snap in snapshots:
            truths = truth_at.get(round(float(snap["t"]), 3))
            if truths is None:
                continue
            yield ([r["target_id"] for r in truths], [[r["east_m"], r["north_m"]] for r in truths],
                   [k["track_id"] for k in snap["tracks"]], [[k["east_m"], k["north_m"]] for k in snap["tracks"]])

    result = score_frames(frames(), c, p)
    if check:
        _check_matched(truth_path, tracks_path, result, c)
    if alerts_path is not None:
        result["border_crossings"] = _crossing_scores(truth_lines, alerts, match_s, match_m)
    return result
