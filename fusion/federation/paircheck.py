"""The checks of a two-node run (live or :func:`~fusion.federation.pair.replay_pair`) against its truth.

* :func:`leaks` — every released message held against the agreement by the independent
  :class:`~fusion.federation.audit.Auditor`, with the node's own snapshot and alerts it came from;
* :func:`identities` — per crossing vehicle, the track of each node following it (nearest
  within ``FOLLOW_M``, most seconds), and whether the receiving node's track is linked to
  the sender's pseudonym of its track (``partner_tracks`` in the snapshot): one identity
  across the border;
* :func:`incoming_lead_s` — from the receiving node's first ``incoming`` alert about a
  crossing vehicle (the alert's position within ``ABOUT_M`` of it) to the moment it enters the
  receiving node's radar coverage, the earliest its own sensors could see it (a lower bound
  on the lead over their first detection);
* :func:`gospa_by_picture` — mean GOSPA (c = 100 m, p = 1) over the joint area (either radar's
  disc), every second: each node's own tracks alone, and each node's joint picture (own tracks,
  fused where fused, plus the partner-only tracks).
"""

from __future__ import annotations

import collections

import msgspec
import numpy as np

from fusion.evaluate import gospa
from fusion.federation.audit import Auditor
from fusion.federation.gateway import compile_policies, pseudonym
from fusion.federation.pair import NODE_ID, OTHER, RADAR_XY, RANGE_M, SIDES, SideRun
from fusion.scenario import Truth

__all__ = ["leaks", "identities", "incoming_lead_s", "gospa_by_picture", "CROSSERS", "FOLLOW_M"]

FOLLOW_M = 60.0
ABOUT_M = 200.0
C_M, P_ORDER = 100.0, 1.0
#: the crossing vehicles of the pair's scenario: (target id, the side it starts in)
CROSSERS = (("crosser-north", "a"), ("crosser-south", "b"))


def leaks(runs: dict[str, SideRun]) -> tuple[list[str], int]:
    """(violations, items checked) of every side's released messages against its agreement."""
    violations: list[str] = []
    checked = 0
    for side, run in runs.items():
        by_t = {s["t"]: s for s in run.snapshots}
        for policy in compile_policies(run.site):
            auditor = Auditor(run.site, policy.agreement, policy.key)
            for topic, message in run.released:
                payload = msgspec.json.encode(message)
                if topic.endswith("/tracks"):
                    snapshot = by_t.get(message.get("t"))
                    if snapshot is None:
                        violations.append(f"{NODE_ID[side]}: released tracks at t={message.get('t')} "
                                          "of no snapshot the node published")
                        continue
                    auditor.tracks(topic, payload, snapshot)
                else:
                    auditor.alert(topic, payload, run.alerts)
            violations += auditor.violations
            checked += auditor.checked
    return violations, checked


def _nearest(tracks: list[dict], xy: np.ndarray) -> str | None:
    best, best_d = None, FOLLOW_M
    for tr in tracks:
        d = float(np.hypot(tr["east_m"] - xy[0], tr["north_m"] - xy[1]))
        if d <= best_d:
            best, best_d = tr["track_id"], d
    return best


def _position(truth: Truth, target: str, t: float) -> np.ndarray | None:
    k = int(round(t - truth.t0))
    i = truth.target_ids.index(target)
    if not 0 <= k < truth.steps or not np.isfinite(truth.position[i, k, 0]):
        return None
    return truth.position[i, k]


def _follower(run: SideRun, truth: Truth, target: str) -> tuple[str | None, list[dict]]:
    """The own track following ``target`` most seconds, and the snapshot entries of it."""
    counts: collections.Counter = collections.Counter()
    entries: dict[str, list[dict]] = collections.defaultdict(list)
    for snapshot in run.snapshots:
        xy = _position(truth, target, snapshot["t"])
        if xy is None:
            continue
        track = _nearest(snapshot["tracks"], xy)
        if track is not None:
            counts[track] += 1
            entries[track] += [tr for tr in snapshot["tracks"] if tr["track_id"] == track]
    if not counts:
        return None, []
    best = counts.most_common(1)[0][0]
    return best, entries[best]


def identities(runs: dict[str, SideRun], truth: Truth) -> list[dict]:
    """Per crossing vehicle: the sender's and the receiver's track, the pseudonym the receiver should hold,
    and ``linked``: the receiver's track carried that link in some snapshot."""
    out = []
    for target, sender in CROSSERS:
        receiver = OTHER[sender]
        sent_id, _ = _follower(runs[sender], truth, target)
        received_id, entries = _follower(runs[receiver], truth, target)
        (policy,) = [p for p in compile_policies(runs[sender].site) if p.partner_id == NODE_ID[receiver]]
        expected = pseudonym(policy.key, sent_id) if sent_id else None
        held = {p["track_id"] for e in entries for p in e.get("partner_tracks", ())
                if p["origin"] == NODE_ID[sender]}
        linked_s = sum(1 for e in entries if any(p["track_id"] == expected for p in e.get("partner_tracks", ())))
        out.append({"target": target, "sender": NODE_ID[sender], "receiver": NODE_ID[receiver],
                    "sender_track": sent_id, "receiver_track": received_id, "pseudonym": expected,
                    "linked": expected is not None and expected in held, "linked_snapshots": linked_s,
                    "other_links": sorted(held - {expected})})
    return out


def _covered(side: str, xy: np.ndarray) -> bool:
    return bool(np.hypot(xy[0] - RADAR_XY[side][0], xy[1] - RADAR_XY[side][1]) <= RANGE_M)


def incoming_lead_s(runs: dict[str, SideRun], truth: Truth) -> dict[str, float | None]:
    """Per crossing vehicle: the receiver's first incoming alert about it, seconds before it enters the
    receiver's radar coverage (None: no such alert)."""
    out: dict[str, float | None] = {}
    for target, sender in CROSSERS:
        receiver = OTHER[sender]
        site = runs[receiver].site
        i = truth.target_ids.index(target)
        alive = np.flatnonzero(np.isfinite(truth.position[i, :, 0]))
        enters = next((truth.t0 + k for k in alive.tolist() if _covered(receiver, truth.position[i, k])), None)
        about = []
        for alert in runs[receiver].incoming:
            xy = _position(truth, target, alert["t"])
            east, north, _ = site.frame.to_enu(alert["lat"], alert["lon"])
            if xy is not None and np.hypot(float(east) - xy[0], float(north) - xy[1]) <= ABOUT_M:
                about.append(alert["t"])
        out[target] = round(enters - min(about), 1) if about and enters is not None else None
    return out


def _joint_area(xy: np.ndarray) -> np.ndarray:
    return np.logical_or.reduce([np.hypot(xy[:, 0] - RADAR_XY[s][0], xy[:, 1] - RADAR_XY[s][1]) <= RANGE_M
                                 for s in SIDES]) if len(xy) else np.zeros(0, bool)


def _pictures(snapshot: dict) -> tuple[np.ndarray, np.ndarray]:
    """(own tracks alone, joint picture) positions of a snapshot."""
    own = np.array([[tr["east_m"], tr["north_m"]] for tr in snapshot["tracks"]]).reshape(-1, 2)
    best = [tr.get("fused", tr) for tr in snapshot["tracks"]]  # fused where fused, else our own estimate
    fused = np.array([[tr["east_m"], tr["north_m"]] for tr in best]).reshape(-1, 2)
    partner = np.array([[p["east_m"], p["north_m"]] for p in snapshot.get("partner_tracks", ())]).reshape(-1, 2)
    return own, np.concatenate((fused, partner))


def gospa_by_picture(runs: dict[str, SideRun], truth: Truth, from_s: float = 10.0) -> dict[str, float]:
    """Mean GOSPA over the joint area on the seconds both nodes have a snapshot of (from ``from_s``):
    ``{edge-a, edge-b}`` alone and ``{edge-a, edge-b}+partner`` joint pictures."""
    by_t = {side: {s["t"]: s for s in runs[side].snapshots} for side in SIDES}
    times = sorted(set(by_t["a"]) & set(by_t["b"]))
    scores: dict[str, list[float]] = collections.defaultdict(list)
    for t in times:
        if t - truth.t0 < from_s:
            continue
        alive, position, _ = truth.at(t)
        real = position[alive]
        real = real[_joint_area(real)]
        for side in SIDES:
            own, joint = _pictures(by_t[side][t])
            scores[NODE_ID[side]].append(gospa(real, own[_joint_area(own)], C_M, P_ORDER)[0])
            scores[f"{NODE_ID[side]}+partner"].append(gospa(real, joint[_joint_area(joint)], C_M, P_ORDER)[0])
    return {name: round(float(np.mean(v)), 2) for name, v in scores.items()}
