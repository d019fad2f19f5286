"""Max-min fair admission by rate (fusion.live.fairshare): pure, with a simulated clock."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from fusion.live.fairshare import (DECREASE, HEADROOM, INCREASE, MESSAGE_BYTES, FairShare, lightest_first,
                                   revised_budget, water_fill)


@given(st.lists(st.floats(0.0, 1e6), min_size=1, max_size=20), st.floats(1.0, 1e7))
def test_the_water_level_shares_the_capacity_exactly_when_the_rates_exceed_it(rates, capacity):
    level = water_fill(sorted(rates), capacity)
    if sum(rates) <= capacity:
        assert level == math.inf
    else:
        assert math.isclose(sum(min(r, level) for r in rates), capacity, rel_tol=1e-9)


def _measured(capacity_Bps: float) -> FairShare:
    """A FairShare whose main thread processed ``capacity_Bps`` bytes per busy second for 0.5 s, waits short."""
    fair = FairShare(seed=1)
    for k in range(11):
        fair.served(now=0.05 * k, seconds=0.05, payload_bytes=int(0.05 * capacity_Bps) - MESSAGE_BYTES)
    assert math.isclose(fair.budget_Bps, HEADROOM * capacity_Bps, rel_tol=1e-6)
    return fair


def test_a_flooding_sensor_is_cut_to_its_share_and_the_others_lose_nothing():
    fair = _measured(1_000_000.0)  # 1 MB/s
    admitted = {"flood": 0, "good-1": 0, "good-2": 0}
    offered = dict.fromkeys(admitted, 0)
    size = 10_000 - MESSAGE_BYTES
    for ms in range(10_000):  # 10 s: the flood 1000 msg/s (10 MB/s, 10× capacity), the others 10 msg/s each
        now = 100.0 + ms / 1000
        for sensor in ("flood", "good-1", "good-2") if ms % 100 == 0 else ("flood",):
            offered[sensor] += 1
            admitted[sensor] += fair.admit(sensor, size, now)
    assert admitted["good-1"] == offered["good-1"] and admitted["good-2"] == offered["good-2"]
    flood_Bps = admitted["flood"] * 10_000 / 10.0
    assert 0.8 * HEADROOM * 1e6 - 200_000 < flood_Bps < 1.2 * HEADROOM * 1e6, flood_Bps


def test_nothing_is_shed_while_the_sensors_together_fit():
    fair = _measured(1_000_000.0)
    # 5 sensors, 100 messages/s of 1.5 KB in all: 151 KB/s, well inside HEADROOM × 1 MB/s
    shed = sum(not fair.admit(f"s{k % 5}", 1_000, 100.0 + k / 100) for k in range(2_000))
    assert shed == 0 and fair.fair_Bps == math.inf


def test_a_burst_shorter_than_the_averaging_time_is_not_a_flood():
    fair = _measured(1_000_000.0)
    for k in range(200):  # a steady 10 messages/s of 1.5 KB from one sensor ...
        assert fair.admit("radar", 1_000, 100.0 + k / 10)
    # ... then 100 messages at once (a restart's redelivery): 150 KB in 10 ms, ~150 KB/s averaged over 1 s
    assert all(fair.admit("radar", 1_000, 120.0 + k / 10_000) for k in range(100))


def test_before_the_capacity_is_measured_nothing_is_shed_by_rate():
    fair = FairShare()
    assert all(fair.admit("flood", 100_000, k / 1000) for k in range(1_000))  # 100 MB/s


def test_lightest_first_protects_every_sensor_that_fits_and_the_heaviest_pays():
    # two ordinary sensors (100 and 450 KB/s) and a flooder (50 MB/s) against 810 KB/s:
    # max-min would cap the 450 KB/s sensor at 355; lightest first keeps it whole
    protected, alpha = lightest_first([100.0, 450.0, 50_000.0], 810.0)
    assert protected == 450.0 and alpha == 260.0
    assert water_fill([100.0, 450.0, 50_000.0], 810.0) == 355.0
    assert lightest_first([1.0, 2.0], 10.0) == (math.inf, math.inf)
    # two flooders share what the light ones leave
    assert lightest_first([10.0, 1_000.0, 2_000.0], 110.0) == (10.0, 50.0)


def test_the_budget_falls_when_a_backlog_made_waits_long_and_grows_back_when_they_are_short():
    # processed 1 MB/s, 5 MB/s busy throughput, 10 MB/s arriving, waits too long: a backlog
    assert revised_budget(3e6, 1e6, 5e6, 10e6, wait_ratio=1.5) == 1e6  # down to what was processed
    assert revised_budget(3e6, 2.5e6, 5e6, 10e6, wait_ratio=1.5) == DECREASE * 3e6  # at least DECREASE
    assert revised_budget(3e6, 0.0, 5e6, 10e6, wait_ratio=1.5) == 3e6 / 4  # a window spent in one release
    # the same long wait with arrivals no faster than processing is a stall: no cut
    assert revised_budget(3e6, 1e6, 5e6, 1e6, wait_ratio=1.5) == 3e6
    # short waits: growth, which stops at HEADROOM × the busy throughput, where the budget starts
    assert revised_budget(3e6, 1e6, 5e6, 10e6, wait_ratio=0.2) == INCREASE * 3e6
    assert revised_budget(3.9e6, 1e6, 5e6, 10e6, wait_ratio=0.2) == HEADROOM * 5e6
    assert revised_budget(0.0, 1e6, 5e6, 10e6, wait_ratio=3.0) == HEADROOM * 5e6
    assert revised_budget(3e6, 1e6, 5e6, 10e6, wait_ratio=0.7) == 3e6  # near the target: hold


def test_the_budget_never_cuts_the_sensors_other_than_the_heaviest():
    fair = _measured(1_000_000.0)
    for k in range(400):  # 4 s: waits always too long, a flood of 5 MB/s and a sensor of 300 KB/s
        now = 100.0 + k / 100
        fair.admit("flood", 50_000 - MESSAGE_BYTES, now)
        fair.admit("good", 3_000 - MESSAGE_BYTES, now)
        fair.served(now, seconds=0.01, payload_bytes=1_000, waited_s=5.0)
    assert 250_000 < fair.budget_Bps < 350_000  # cut down to what the good sensor sends, no lower
