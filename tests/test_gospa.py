"""GOSPA (:func:`fusion.evaluate.gospa`) against hand-computed cases and Stone Soup's ``GOSPAMetric``.

Every accuracy threshold in the suite relies on it.  With α = 2 and cut-off c:

    d_p = ( Σ_assigned min(dᵢ, c)ᵖ + (cᵖ/2)·(#missed + #false) )^(1/p)
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest

from fusion.evaluate import gospa

EMPTY = np.zeros((0, 2))


def test_two_empty_sets_are_at_distance_zero():
    assert gospa(EMPTY, EMPTY) == (0.0, 0.0, 0, 0)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_no_estimates_misses_every_target_at_half_c_to_the_p(p):
    truth = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 900.0]])
    d, local, missed, false = gospa(truth, EMPTY, c=100.0, p=p)
    assert (local, missed, false) == (0.0, 3, 0)
    assert d == pytest.approx((3 * 100.0**p / 2) ** (1 / p))


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_estimates_without_targets_are_all_false(p):
    d, local, missed, false = gospa(EMPTY, np.array([[1.0, 2.0], [3.0, 4.0]]), c=40.0, p=p)
    assert (missed, false) == (0, 2)
    assert d == pytest.approx((2 * 40.0**p / 2) ** (1 / p))


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_a_pair_beyond_c_counts_as_one_missed_and_one_false_not_as_a_distance(p):
    """min(d, c)ᵖ would be cᵖ; GOSPA with α = 2 charges the same cᵖ as a miss plus a false
    track, and reports them as such: the distance is exactly c."""
    d, local, missed, false = gospa(np.array([[0.0, 0.0]]), np.array([[300.0, 400.0]]), c=100.0, p=p)
    assert (local, missed, false) == (0.0, 1, 1)
    assert d == pytest.approx(100.0)


def test_an_exact_match_is_at_distance_zero():
    points = np.array([[0.0, 0.0], [10.0, -3.0], [1e4, 5.0]])
    assert gospa(points, points[::-1].copy()) == (0.0, 0.0, 0, 0)


def test_p1_hand_computed():
    """Truth (0,0), (10,0); one estimate (3,4): it goes to (0,0) at 5 m (not to (10,0) at √65 m),
    the other target is missed: 5 + 100/2 = 55."""
    d, local, missed, false = gospa(np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[3.0, 4.0]]), c=100.0, p=1.0)
    assert (d, local, missed, false) == (pytest.approx(55.0), pytest.approx(5.0), 1, 0)


def test_p2_hand_computed():
    """Same sets, p = 2: √(5² + 100²/2) = √5025."""
    d, local, missed, false = gospa(np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[3.0, 4.0]]), c=100.0, p=2.0)
    assert (d, local, missed, false) == (pytest.approx(math.sqrt(5025.0)), pytest.approx(25.0), 1, 0)


def test_the_assignment_is_optimal_for_the_sum_not_greedy():
    """Greedy nearest-first pairs (0,0)-(6,0) at 6 m and leaves (12,0)-(−5,0) at 17 m (sum 23, p = 1);
    the optimal pairs (0,0)-(−5,0) and (12,0)-(6,0): 5 + 6 = 11."""
    d, local, _, _ = gospa(np.array([[0.0, 0.0], [12.0, 0.0]]), np.array([[6.0, 0.0], [-5.0, 0.0]]), c=100.0, p=1.0)
    assert d == pytest.approx(11.0)


def _stonesoup_gospa(truth: np.ndarray, estimates: np.ndarray, c: float, p: float) -> dict:
    from stonesoup.metricgenerator.ospametric import GOSPAMetric
    from stonesoup.types.state import State

    when = datetime(2026, 1, 1)
    metric = GOSPAMetric(c=c, p=p)
    single, _ = metric.compute_gospa_metric([State(e.reshape(2, 1), timestamp=when) for e in estimates],
                                            [State(t.reshape(2, 1), timestamp=when) for t in truth])
    return single.value


@pytest.mark.parametrize("seed", range(60))
def test_agrees_with_stone_soup_on_random_point_sets(seed):
    pytest.importorskip("stonesoup")
    rng = np.random.default_rng(seed)
    c, p = float(rng.choice([20.0, 100.0])), float(rng.choice([1.0, 2.0, 3.0]))
    truth = rng.uniform(0, 150, (int(rng.integers(0, 7)), 2))
    near = truth[: int(rng.integers(0, len(truth) + 1))]  # some estimates near targets, some anywhere
    estimates = np.concatenate((near + rng.normal(0, 15, near.shape), rng.uniform(0, 150, (int(rng.integers(0, 5)), 2))))
    if not len(truth) and not len(estimates):
        estimates = rng.uniform(0, 150, (1, 2))  # Stone Soup needs one state to know the time
    ours = gospa(truth, estimates, c=c, p=p)
    theirs = _stonesoup_gospa(truth, estimates, c, p)
    assert ours[0] == pytest.approx(theirs["distance"], rel=1e-9, abs=1e-9)
    assert ours[1] == pytest.approx(theirs["localisation"], rel=1e-9, abs=1e-9)
    assert ours[2] * c**p / 2 == pytest.approx(theirs["missed"])
    assert ours[3] * c**p / 2 == pytest.approx(theirs["false"])
