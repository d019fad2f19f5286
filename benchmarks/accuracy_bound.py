"""How low can GOSPA go on appearing/vanishing targets?  A clairvoyant tracker against the tuned Stone Soup.

Issue 13 asks for GOSPA ≤ 0.8 × the tuned Stone Soup in every family of
``benchmarks/accuracy_suite.py``.  In ``appearing_vanishing`` (100 targets at 1–15 m/s,
one position sensor, σ 10 m, Pd 0.9, 20 false alarms per scan, 30 % appear late, 30 %
vanish early) nothing manoeuvres: each target keeps its speed v and its heading
random-walks with σ_θ = 0.01 rad/√s, so the acceleration across its path is white
with spectral density v² σ_θ², and a nearly-constant-velocity Kalman filter with
that process noise is close to the best possible estimator.  This script gives a
tracker everything a real one has to work out, and scores it with the suite's GOSPA
(c = 100 m, p = 1, α = 2, from t = 5 s):

* **association by truth**: each target takes the detection nearest its true
  position, within 4 σ, one-to-one (an assignment); clutter is never used;
* **its own motion model**: a Kalman filter per target, started at its first
  detection (velocity 0 ± 6 m/s), process noise ``q = scale · v²`` from the target's
  true speed (or a constant q; both are searched, and the best on the *scored*
  seeds is reported, which flatters the bound);
* **the reporting rule**, three of them:

  - ``clairvoyant``: shown from its first detection until the moment it vanishes;
  - ``confirm_2``: shown from its second detection (one detection cannot tell a
    target from a false alarm) until it vanishes;
  - ``confirm_2_delete_2s``: and, once it has vanished, kept until 2 s after its
    last detection, as any tracker must: with Pd 0.9 a present target misses two
    scans in a row 1 % of the time, so a tracker cannot drop a track at its first
    empty scan.  A present target is never dropped (which flatters the bound again).

The ratio of each to the tuned Stone Soup (the suite's grid search on seed 100,
results from its cache) is how far below Stone Soup any tracker could be under that
rule.  Our tracker with its defaults is printed alongside.

Findings (seeds 0, 1, 2, commit after edf3309): the clairvoyant reaches 0.78×, the
same with two-detection confirmation 0.80×, and with a 2 s deletion delay 0.85×;
our defaults 0.94×.  The localisation term alone is 385–395 for the clairvoyant
against 405 for Stone Soup (whose tracks cover fewer targets): the tuned Stone Soup
filters these targets about as well as a filter told each target's true noise, so
0.8× would need a tracker with no false alarms, no confirmation delay and no
deletion delay.

One JSON object per line.

    python benchmarks/accuracy_bound.py [--seeds 0,1,2] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accuracy_suite import CACHE_DIR, Snapshots, StoneSoupCache, gospa_terms, run_ours, stonesoup_score, tune  # noqa: E402
from fusion.families import FAMILIES, Family  # noqa: E402

FAMILY = "appearing_vanishing"
GATE_SIGMAS = 4.0
INITIAL_SPEED_SIGMA_MPS = 6.0
#: (first detection shown, seconds a vanished target stays shown after its last detection)
RULES = {"clairvoyant": (1, 0.0), "confirm_2": (2, 0.0), "confirm_2_delete_2s": (2, 2.0)}
#: process noise q (m²/s³): ``("speed", s)`` is s · v², ``("constant", q)`` is q
NOISES = [("speed", s) for s in (2.5e-5, 5e-5, 1e-4, 2e-4)] + [("constant", q) for q in (0.001, 0.003, 0.01)]


def _cv(dt: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Transition F and process noise Q (white acceleration of density q) of n targets over dt, per axis pair."""
    n = dt.size
    F = np.tile(np.eye(4), (n, 1, 1))
    F[:, 0, 2] = F[:, 1, 3] = dt
    Q = np.zeros((n, 4, 4))
    for a in (0, 1):
        Q[:, a, a] = q * dt**3 / 3.0
        Q[:, a, a + 2] = Q[:, a + 2, a] = q * dt**2 / 2.0
        Q[:, a + 2, a + 2] = q * dt
    return F, Q


def _truth_association(truth: np.ndarray, z: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(target, detection) pairs: an assignment on distance, pairs within ``GATE_SIGMAS`` of the detection's σ."""
    alive = np.flatnonzero(np.isfinite(truth[:, 0]))
    if not alive.size or not z.shape[0]:
        return np.zeros(0, int), np.zeros(0, int)
    d = np.hypot(*(truth[alive, None, :] - z[None]).transpose(2, 0, 1))
    gate = GATE_SIGMAS * np.sqrt(np.maximum(R[:, 0, 0], R[:, 1, 1]))
    cost = np.where(d <= gate[None], d, 1e9)
    ti, di = linear_sum_assignment(cost)
    keep = cost[ti, di] < 1e9
    return alive[ti[keep]], di[keep]


def clairvoyant_runs(family: Family, noise: tuple[str, float]) -> dict[str, Snapshots]:
    """Snapshots at every integer second under each rule of :data:`RULES`, one Kalman filter per target."""
    n = family.position.shape[1]
    speed = np.nanmax(np.hypot(family.velocity[..., 0], family.velocity[..., 1]), axis=0)
    q = noise[1] * speed**2 if noise[0] == "speed" else np.full(n, noise[1])
    x, P = np.zeros((n, 4)), np.zeros((n, 4, 4))
    hits, last = np.zeros(n, int), np.full(n, np.nan)
    H = np.eye(2, 4)
    frames: dict[str, list] = {rule: [] for rule in RULES}
    scans = iter(family.scans)
    scan = next(scans, None)
    for k, t in enumerate(family.times):
        while scan is not None and scan.time <= t + 1e-9:
            target, det = _truth_association(family.position[int(round(scan.time))], scan.position, scan.covariance)
            z, R = scan.position[det], scan.covariance[det]
            new = hits[target] == 0
            if new.any():
                i = target[new]
                x[i] = np.column_stack((z[new], np.zeros((new.sum(), 2))))
                P[i] = 0.0
                P[i, :2, :2] = R[new]
                P[i, 2, 2] = P[i, 3, 3] = INITIAL_SPEED_SIGMA_MPS**2
            i, z, R = target[~new], z[~new], R[~new]
            F, Q = _cv(scan.time - last[i], q[i])
            xp = np.einsum("nij,nj->ni", F, x[i])
            Pp = F @ P[i] @ F.transpose(0, 2, 1) + Q
            S = Pp[:, :2, :2] + R
            K = Pp[:, :, :2] @ np.linalg.inv(S)
            x[i] = xp + np.einsum("nij,nj->ni", K, z - xp[:, :2])
            P[i] = Pp - K @ H @ Pp
            hits[target] += 1
            last[target] = scan.time
            scan = next(scans, None)
        present = family.present(k)
        for rule, (first, linger_s) in RULES.items():
            shown = np.flatnonzero((hits >= first) & (present | (t - last <= linger_s + 1e-9)))
            F, _ = _cv(t - last[shown], np.zeros(shown.size))
            frames[rule].append((shown, np.einsum("nij,nj->ni", F, x[shown]), np.tile(np.eye(4), (shown.size, 1, 1))))
    return {rule: Snapshots.build(f, 0.0) for rule, f in frames.items()}


def _mean_terms(results: list[dict]) -> dict[str, float]:
    return {key: round(float(np.mean([r[key] for r in results])), 2) for key in results[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="scored seeds, comma-separated (default 0,1,2)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help=f"the accuracy suite's Stone Soup results (default {CACHE_DIR}); filled when missing")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    cache = StoneSoupCache(args.cache_dir)
    config, _ = tune(FAMILY, False, cache)
    families = [FAMILIES[FAMILY](seed) for seed in seeds]
    stonesoup = _mean_terms([{k: v for k, v in stonesoup_score(f, config, cache, mot=False).items()
                              if k.startswith("gospa")} for f in families])
    print(json.dumps({"benchmark": "accuracy_bound", "family": FAMILY, "seeds": seeds, "tracker": "stonesoup",
                      "config": config.key, **stonesoup}), flush=True)
    ours = _mean_terms([gospa_terms(f, run_ours(f)) for f in families])
    print(json.dumps({"benchmark": "accuracy_bound", "family": FAMILY, "seeds": seeds, "tracker": "ours",
                      "config": "defaults", **ours, "ratio": round(ours["gospa"] / stonesoup["gospa"], 3)}), flush=True)
    per_rule: dict[str, list[tuple[tuple[str, float], dict]]] = {rule: [] for rule in RULES}
    for noise in NOISES:
        runs = [clairvoyant_runs(f, noise) for f in families]
        for rule in RULES:
            per_rule[rule].append((noise, _mean_terms([gospa_terms(f, r[rule]) for f, r in zip(families, runs)])))
    for rule, results in per_rule.items():
        noise, best = min(results, key=lambda nr: nr[1]["gospa"])
        print(json.dumps({"benchmark": "accuracy_bound", "family": FAMILY, "seeds": seeds, "tracker": rule,
                          "process_noise": f"{noise[0]} {noise[1]:g}", **best,
                          "ratio": round(best["gospa"] / stonesoup["gospa"], 3),
                          "tried": {f"{n[0]} {n[1]:g}": r["gospa"] for n, r in results}}), flush=True)


if __name__ == "__main__":
    main()
