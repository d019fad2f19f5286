"""Two sovereign nodes, one truth: what node B gains from node A's released tracks (issue 16).

The scenario (:func:`two_nodes`, seeded) is built from :mod:`fusion.families`' generators:
the border is north = 0, country A south of it, B north.  Targets: vehicles (5–12 m/s)
and walkers crossing the border north- or southbound, and wanderers on both sides.
Node A has one radar at (0, −2500 m), node B one at (0, +2500 m), each with range
3.5 km (Pd 0.9, 5 false alarms a scan, σr 15 m, σβ 0.3°): each sees its own country
and 1 km into the other's, so the band |north| < 1 km is seen by both.  Each node runs
its own :class:`tracking.Tracker` on its own radar only.

Every second A releases its shown tracks as the contract says (:func:`release`): a
pseudonym per track, the position coarsened to a ``grid_m`` grid in A's frame and sent
as lat/lon, the covariance's position block inflated by Δ²/12.  B ingests it
(:class:`fusion.federation.partner.PartnerPicture`), fuses with its own estimates and
raises ``incoming`` alerts.  Measured at B, every second from ``SCORE_FROM_S``:

* **GOSPA** (c = 100 m, p = 1, α = 2; :func:`fusion.evaluate.gospa`) of truth and
  estimates inside the joint area (either radar's disc): A alone, B alone, and B's
  joint picture (own tracks, fused where linked, plus partner-only tracks); the same
  over the band both see (where fusion, not coverage, is what helps);
* **incoming lead time**: per target that crosses into B, from the first ``incoming``
  alert about it (the partner track nearest it at that time, within 100 m) to the
  first moment it is inside B's radar coverage — the earliest B's own sensors could
  detect it, so the lead time measured is a lower bound on the lead over the first
  detection;
* **link correctness**: per crossing target, the joint-picture identity following it
  each second (the nearest joint entry within 50 m: an own track id, or a partner
  track); a change of identity that is not a hand-over between a partner track and the
  own track linked to it (or being linked: assigned, short of ``confirm_scans``) is a
  hand-over break (the federation layer's doing); a change from one own track id to
  another is our tracker's identity switch, counted apart; a second with an own track and a partner-only
  track both within 50 m of it is a duplicate.  The goal: 0 breaks at the border and no
  lasting duplicate;
* **consistency**: the mean position NEES (2 dof; 2 for a consistent estimate) of the
  fused tracks against the nearest true target, and of B's own estimates of the same
  tracks (samples of a track are correlated in time: a figure, not a test);
* the time of one ``fuse`` call (median and max).

One JSON object per line per seed, then a summary::

    python benchmarks/federation_fusion.py [--seeds 0,1,2] [--grid-m 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import shapely

from fusion.evaluate import gospa
from fusion.families import (PERSON, VEHICLE, Family, _crossers, _every_second, _family, _radar, _Truth,
                             _wanderers)
from fusion.federation.partner import PartnerFusionConfig, PartnerPicture
from geo.frame import LocalFrame
from geo.jurisdictions import Jurisdiction
from tracking import Tracker, TrackerConfig

__all__ = ["two_nodes", "release", "jurisdictions", "run", "TwoNodes", "SITE_ORIGIN", "RADAR_A", "RADAR_B",
           "RANGE_M"]

SITE_ORIGIN = (47.0, 8.0)
RADAR_A, RADAR_B, RANGE_M = (0.0, -2500.0), (0.0, 2500.0), 3500.0
DURATION_S = 240.0
SCORE_FROM_S = 10.0
C_M, P_ORDER = 100.0, 1.0
FOLLOW_M = 50.0
STATUS = ("tentative", "confirmed", "coasting")
CLASS_NAMES = ("person", "vehicle", "animal", "uav", "unknown")


@dataclass(frozen=True, eq=False)
class TwoNodes:
    """One truth (:class:`fusion.families.Family` with both radars) and each node's own scans."""

    family: Family
    scans_a: list
    scans_b: list


def two_nodes(seed: int, duration_s: float = DURATION_S) -> TwoNodes:
    """The seeded scenario of the module docstring."""
    rng = np.random.default_rng([16, seed])
    truth = _Truth.join(
        _crossers(rng, 10, (-2500, 2500), (5.0, 12.0), duration_s, VEHICLE, cross_at=(0.4, 0.8)),
        _crossers(rng, 4, (-2500, 2500), (1.0, 2.0), duration_s, PERSON, cross_at=(0.3, 0.7),
                  jitter_rad_per_sqrt_s=0.05),
        _wanderers(rng, 5, RADAR_A, 2500.0, (1.0, 8.0), duration_s, PERSON, jitter_rad_per_sqrt_s=0.05),
        _wanderers(rng, 5, RADAR_B, 2500.0, (1.0, 8.0), duration_s, VEHICLE, jitter_rad_per_sqrt_s=0.05),
    )
    radar_a = _radar(rng, truth, _every_second(duration_s, 0.0), 0, "radar-a", RADAR_A, RANGE_M, 0.9, 5.0)
    radar_b = _radar(rng, truth, _every_second(duration_s, 0.5), 1, "radar-b", RADAR_B, RANGE_M, 0.9, 5.0)
    family = _family("federation", seed, truth, [radar_a, radar_b])
    # each node numbers its own sensors from 0
    scans_b = [dataclasses.replace(s, sensor_index=0) for s in radar_b[0]]
    return TwoNodes(family, radar_a[0], scans_b)


def jurisdictions() -> tuple[Jurisdiction, ...]:
    """Country A (north < 0) and country B (north > 0), 12 km wide, in the shared site frame."""
    def country(cid: str, agency: str, box) -> Jurisdiction:
        return Jurisdiction(id=cid, name=cid, kind="country", agency=agency, share_with=(), severity="high",
                            dwell_s=None, alerts=frozenset({"border_crossing", "approach"}),
                            polygon=shapely.box(*box))
    return (country("country-a", "agency-a", (-6000.0, -6000.0, 6000.0, 0.0)),
            country("country-b", "agency-b", (-6000.0, 0.0, 6000.0, 6000.0)))


def pseudonym(key: str, track_id: str) -> str:
    """A keyed hash standing in for the egress gateway's per-partner pseudonym."""
    return hashlib.sha256(f"{key}|{track_id}".encode()).hexdigest()[:20]


def release(estimates, frame: LocalFrame, origin: str, partner: str, grid_m: float) -> dict:
    """A's shown tracks as released to ``partner`` (the contract): coarsened positions as lat/lon,
    covariance position block + Δ²/12, pseudonymous ids, a label."""
    x = estimates.x
    coarse = np.round(x[:, :2] / grid_m) * grid_m if grid_m > 0 else x[:, :2]
    lat, lon, _ = frame.to_geodetic(coarse[:, 0], coarse[:, 1])
    tracks = []
    for k in range(len(estimates)):
        P = estimates.P[k].copy()
        P[0, 0] += grid_m**2 / 12.0
        P[1, 1] += grid_m**2 / 12.0
        tracks.append({
            "track_id": pseudonym(f"{origin}>{partner}", f"{origin}-{int(estimates.track_id[k])}"),
            "status": STATUS[int(estimates.status[k])], "lat": float(lat[k]), "lon": float(lon[k]),
            "vel_east_mps": float(x[k, 2]), "vel_north_mps": float(x[k, 3]), "covariance": P.tolist(),
            "classification": {c: round(float(p), 3) for c, p in zip(CLASS_NAMES, estimates.class_prob[k])},
            "existence": float(estimates.existence[k]), "first_seen": float(estimates.first_seen[k]),
            "last_update": float(estimates.last_update[k])})
    return {"origin": origin, "t": float(estimates.t),
            "label": {"policy": f"{origin}-to-{partner}", "originator": origin, "releasable_to": []},
            "tracks": tracks}


def _in_area(xy: np.ndarray, both: bool) -> np.ndarray:
    da = np.hypot(xy[:, 0] - RADAR_A[0], xy[:, 1] - RADAR_A[1]) <= RANGE_M
    db = np.hypot(xy[:, 0] - RADAR_B[0], xy[:, 1] - RADAR_B[1]) <= RANGE_M
    return (da & db) if both else (da | db)


@dataclass
class _Scores:
    gospa: dict = field(default_factory=lambda: {k: [] for k in ("a", "b", "fused", "a_band", "b_band", "fused_band")})


def _step_until(tracker: Tracker, scans: list, i: int, t: float) -> int:
    while i < len(scans) and scans[i].time <= t:
        tracker.step(scans[i])
        i += 1
    return i


def run(seed: int, grid_m: float = 50.0, config: PartnerFusionConfig | None = None) -> dict:
    """The scenario for ``seed`` through both nodes and B's ingress; the figures of the module docstring."""
    nodes = two_nodes(seed)
    fam = nodes.family
    frame = LocalFrame(*SITE_ORIGIN)
    tracker_a, tracker_b = Tracker(TrackerConfig(), 1), Tracker(TrackerConfig(), 1)
    picture = PartnerPicture(frame, "node-b", config or PartnerFusionConfig(), jurisdictions(), ("country-b",))
    ia = ib = 0
    scores = _Scores()
    alerts: list[tuple[float, np.ndarray]] = []  # (t, position of the partner track alerted about)
    follow: list[list] = [[] for _ in range(fam.position.shape[1])]  # per target, per second: identity
    duplicates = np.zeros(fam.position.shape[1], np.int64)
    fused_rows = linked_rows = 0
    fuse_s: list[float] = []
    nees: dict[str, list[float]] = {"fused": [], "own": []}
    for k, t in enumerate(fam.times.tolist()):
        ia = _step_until(tracker_a, nodes.scans_a, ia, t)
        ib = _step_until(tracker_b, nodes.scans_b, ib, t)
        est_a, est_b = tracker_a.estimates(t), tracker_b.estimates(t)
        rejected = picture.ingest(release(est_a, frame, "node-a", "node-b", grid_m), "fed/partner/node-a/tracks")
        if rejected:
            raise RuntimeError(f"the ingress rejected a released message: {rejected[0].reason}")
        start = time.perf_counter()
        joint = picture.fuse(est_b)
        fuse_s.append(time.perf_counter() - start)
        for alert in picture.incoming_alerts(t):
            alerts.append((t, np.array(frame.to_enu(alert.lat, alert.lon)[:2], float)))
        fused_rows += int(joint.fused.sum())
        linked_rows += sum(1 for lk in joint.links if lk)
        present = fam.present(k)
        truth = fam.position[k][present]
        if t >= SCORE_FROM_S:
            for band, suffix in ((False, ""), (True, "_band")):
                tr = truth[_in_area(truth, band)]
                for name, xy in (("a", est_a.x[:, :2]), ("b", est_b.x[:, :2]), ("fused", joint.joint_xy())):
                    scores.gospa[name + suffix].append(gospa(tr, xy[_in_area(xy, band)], C_M, P_ORDER)[0])
        _identities(fam.position[k], present, joint, follow, duplicates)
        if t >= SCORE_FROM_S:
            _nees(truth, joint, est_b, nees)
    result = _summary(seed, fam, scores, alerts, follow, duplicates, fused_rows, linked_rows)
    result["nees_position_fused_mean"] = round(float(np.mean(nees["fused"])), 3) if nees["fused"] else None
    result["nees_position_own_mean"] = round(float(np.mean(nees["own"])), 3) if nees["own"] else None
    result["nees_samples"] = len(nees["fused"])
    result["fuse_ms_median"] = round(1e3 * float(np.median(fuse_s)), 3)
    result["fuse_ms_max"] = round(1e3 * float(np.max(fuse_s)), 3)
    return result


def _nees(truth: np.ndarray, joint, own, out: dict[str, list[float]]) -> None:
    """Position NEES (2 dof) of the fused rows and of B's own estimate on the same rows, against
    the nearest true target within FOLLOW_M (one per truth)."""
    rows = np.flatnonzero(joint.fused)
    if rows.size == 0 or truth.size == 0:
        return
    d = np.hypot(*(joint.x[rows, None, :2] - truth[None]).transpose(2, 0, 1))
    nearest = np.argmin(d, axis=1)
    for n, r in enumerate(rows.tolist()):
        if d[n, nearest[n]] > FOLLOW_M:
            continue
        for name, x, P in (("fused", joint.x[r], joint.P[r]), ("own", own.x[r], own.P[r])):
            e = x[:2] - truth[nearest[n]]
            out[name].append(float(e @ np.linalg.solve(P[:2, :2], e)))


def _identities(position: np.ndarray, present: np.ndarray, joint, follow: list[list], duplicates: np.ndarray) -> None:
    """Per target: the joint-picture entry following it now (nearest within FOLLOW_M), and duplicates."""
    own_xy, partner_xy = joint.x[:, :2], joint.partner_x[:, :2]
    only = joint.partner_only
    for target in np.flatnonzero(present).tolist():
        p = position[target]
        d_own = np.hypot(*(own_xy - p).T) if own_xy.size else np.zeros(0)
        d_par = np.hypot(*(partner_xy - p).T) if partner_xy.size else np.zeros(0)
        d_only = np.where(only, d_par, np.inf)
        near_own = d_own.size and d_own.min() <= FOLLOW_M
        near_partner = d_only.size and d_only.min() <= FOLLOW_M
        if near_own and near_partner:
            duplicates[target] += 1
        if near_own:
            r = int(np.argmin(d_own))
            own_id = int(joint.own_track_id[r])
            pending = tuple((o, p) for o, p, w in zip(joint.partner_origin, joint.partner_track_id,
                                                      joint.partner_pending.tolist()) if w == own_id)
            follow[target].append(("own", own_id, joint.links[r] + pending))
        elif near_partner:
            j = int(np.argmin(d_only))
            follow[target].append(("partner", (joint.partner_origin[j], joint.partner_track_id[j]), ()))
        else:
            follow[target].append(None)


def _breaks(sequence: list) -> tuple[int, int]:
    """(hand-over breaks, own-tracker switches) along a target's sequence of identities.

    A hand-over break: the identity passes between a partner track and an own track that
    is not linked (or being linked) to it, or from one partner track to another — what
    the federation layer is answerable for.  An own-tracker switch: one own track id to
    another (our tracker's own identity switch, which no link can mend).  Gaps (None: a
    target nobody sees) are skipped.
    """
    seen = [s for s in sequence if s is not None]
    handover = switches = 0
    for a, b in zip(seen, seen[1:]):
        if a[:2] == b[:2]:
            continue
        if a[0] == "own" and b[0] == "own":
            switches += 1
        elif a[0] == "partner" and b[0] == "own":
            handover += a[1] not in b[2]
        elif a[0] == "own" and b[0] == "partner":
            handover += b[1] not in a[2]
        else:
            handover += 1
    return handover, switches


def _summary(seed: int, fam: Family, scores: _Scores, alerts, follow, duplicates, fused_rows, linked_rows) -> dict:
    north = fam.position[:, :, 1]
    leads, crossing_breaks, crossing_switches, crossing_dups = [], [], [], []
    for target in range(north.shape[1]):
        track = north[:, target]
        valid = np.isfinite(track)
        if not (valid.any() and np.nanmin(track) < -1100.0 and np.nanmax(track) > 0.0 and track[valid][0] < 0):
            continue  # northbound crossers that start out of B's coverage: the cueing case
        xy = fam.position[:, target]
        covered = np.flatnonzero(np.hypot(xy[:, 0] - RADAR_B[0], xy[:, 1] - RADAR_B[1]) <= RANGE_M)
        first_cover = float(fam.times[covered[0]])
        about = [t for t, p in alerts
                 if np.isfinite(xy[int(t), 0]) and np.hypot(*(xy[int(t)] - p)) <= 100.0]
        leads.append(first_cover - min(about) if about else -math.inf)
        crossing_breaks.append(_breaks(follow[target])[0])
        crossing_switches.append(_breaks(follow[target])[1])
        crossing_dups.append(int(duplicates[target]))
    mean = {k: float(np.mean(v)) for k, v in scores.gospa.items()}
    best = min(mean["a"], mean["b"])
    best_band = min(mean["a_band"], mean["b_band"])
    return {
        "seed": seed, "gospa_a": round(mean["a"], 2), "gospa_b": round(mean["b"], 2),
        "gospa_fused": round(mean["fused"], 2), "ratio_fused_to_best": round(mean["fused"] / best, 3),
        "band_gospa_a": round(mean["a_band"], 2), "band_gospa_b": round(mean["b_band"], 2),
        "band_gospa_fused": round(mean["fused_band"], 2),
        "band_ratio_fused_to_best": round(mean["fused_band"] / best_band, 3),
        "crossing_targets": len(leads), "incoming_lead_s": [round(x, 1) for x in leads],
        "incoming_lead_min_s": round(min(leads), 1) if leads else None,
        "crossing_handover_breaks": crossing_breaks, "crossing_own_tracker_switches": crossing_switches,
        "crossing_duplicate_s": crossing_dups,
        "all_targets_handover_breaks": int(sum(_breaks(f)[0] for f in follow)),
        "all_targets_duplicate_s": int(duplicates.sum()), "fused_track_seconds": fused_rows,
        "linked_track_seconds": linked_rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--grid-m", type=float, default=50.0)
    args = parser.parse_args(argv)
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        results.append(run(seed, args.grid_m))
        print(json.dumps(results[-1]), flush=True)
    leads = [x for r in results for x in r["incoming_lead_s"]]
    print(json.dumps({
        "summary": True, "seeds": len(results), "grid_m": args.grid_m,
        "ratio_fused_to_best_max": max(r["ratio_fused_to_best"] for r in results),
        "band_ratio_fused_to_best_max": max(r["band_ratio_fused_to_best"] for r in results),
        "incoming_lead_min_s": min(leads) if leads else None,
        "incoming_lead_median_s": float(np.median(leads)) if leads else None,
        "crossing_handover_breaks": sum(sum(r["crossing_handover_breaks"]) for r in results),
        "crossing_own_tracker_switches": sum(sum(r["crossing_own_tracker_switches"]) for r in results),
        "crossing_targets": sum(r["crossing_targets"] for r in results),
        "nees_position_fused_mean": round(float(np.mean([r["nees_position_fused_mean"] for r in results])), 3),
        "nees_position_own_mean": round(float(np.mean([r["nees_position_own_mean"] for r in results])), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
