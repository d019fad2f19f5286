"""``borderfusion evaluate``: tracks and alerts scored against ground truth (interface §4).

* GOSPA (García-Fernández, Svensson, Morelande, 2017) with α = 2, order p and
  cut-off c, per snapshot time, via an optimal assignment:

      d = ( Σ_assigned min(dᵢ, c)ᵖ + (cᵖ/2)·(#missed + #false) )^(1/p)

  reported as the mean over time with its localisation / missed / false parts
  (means of the three terms inside the bracket, in m^p).
* CLEAR MOT accuracy (MOTA), IDF1, identity switches and fragmentations from
  ``motmetrics``, matching within c.
* Border crossings: a true crossing is a change of the ``jurisdiction`` field
  between consecutive truth samples of a target (written by ``simulate``); an
  alert matches one with the same from/to countries within ``match_s`` seconds and
  ``match_m`` metres.  Precision, recall, the crossing-time error (alert ``t``
  minus true time) and the decision delay (``raised_t`` minus true time), median
  and 95th percentile.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import msgspec
import numpy as np
from scipy.optimize import linear_sum_assignment

from geo.frame import WGS84

__all__ = ["evaluate", "score_frames", "gospa", "true_crossings"]


def _lines(path: str | Path) -> list[dict]:
    decoder = msgspec.json.Decoder()
    with open(path, "rb") as handle:
        return [decoder.decode(line) for line in handle if line.strip()]


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
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    numeric: dict[tuple[str, object], int] = {}  # motmetrics wants numeric ids
    g_total, g_local, g_missed, g_false = [], [], [], []
    for truth_ids, tx, track_ids, ex in frames:
        tx, ex = np.asarray(tx, float).reshape(-1, 2), np.asarray(ex, float).reshape(-1, 2)
        g, loc, miss, false = gospa(tx, ex, c, p)
        g_total.append(g)
        g_local.append(loc)
        g_missed.append(miss * c**p / 2)
        g_false.append(false * c**p / 2)
        acc.update([numeric.setdefault(("truth", i), len(numeric)) for i in truth_ids],
                   [numeric.setdefault(("track", i), len(numeric)) for i in track_ids],
                   mm.distances.norm2squared_matrix(tx, ex, max_d2=c * c))
    result: dict = {"frames": len(g_total), "gospa": {"c_m": c, "p": p}}
    if not g_total:
        return result
    result["gospa"].update({
        "mean": round(float(np.mean(g_total)), 3), "localisation": round(float(np.mean(g_local)), 3),
        "missed": round(float(np.mean(g_missed)), 3), "false": round(float(np.mean(g_false)), 3)})
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
             match_s: float = 30.0, match_m: float = 250.0) -> dict:
    """All scores of a truth file, a track-snapshot file and optionally an alert file, as a dict."""
    truth_lines = _lines(truth_path)
    truth_at: dict[float, list[dict]] = defaultdict(list)
    for line in truth_lines:
        truth_at[round(float(line["t"]), 3)].append(line)

    def frames():
        for snap in _lines(tracks_path):
            truths = truth_at.get(round(float(snap["t"]), 3))
            if truths is None:
                continue
            yield ([r["target_id"] for r in truths], [[r["east_m"], r["north_m"]] for r in truths],
                   [k["track_id"] for k in snap["tracks"]], [[k["east_m"], k["north_m"]] for k in snap["tracks"]])

    result = score_frames(frames(), c, p)
    if alerts_path is not None:
        result["border_crossings"] = _crossing_scores(truth_lines, _lines(alerts_path), match_s, match_m)
    return result
