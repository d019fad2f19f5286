"""One sensor's clock running ahead must not make the other sensors' good data "too old"."""

from __future__ import annotations

import msgspec
import pytest

from fusion.logio import read_log
from fusion.pipeline import Pipeline

_encode = msgspec.json.Encoder().encode


@pytest.fixture(scope="module")
def records(short_log):
    log, _ = short_log
    return list(read_log(log))


def _feed(site, items):
    pipeline, rejected = Pipeline(site), []
    for t_rx, topic, payload in items:
        rejected += pipeline.feed(t_rx, topic, payload).rejected
    return pipeline, rejected


def _of(rejected, sensor):
    return [r for r in rejected if r.topic.endswith("/" + sensor)]


def test_one_scan_stamped_29_s_ahead_costs_the_other_radar_no_scan(demo_site, records):
    items = [(r.t_rx, r.topic, r.payload) for r in records]
    k = next(i for i, r in enumerate(records) if r.topic.endswith("/radar-n1") and i > len(records) // 4)
    n1 = msgspec.json.decode(records[k].payload)
    ahead = _encode({"sensor_id": "radar-n1", "t": n1["t"] + 29.0, "seq": n1["seq"] + 100_000, "plots": []})
    items.insert(k + 1, (records[k].t_rx + 0.001, records[k].topic, ahead))  # inside the 30 s future limit
    pipeline, rejected = _feed(demo_site, items)
    later_s1 = [r for r in records[k + 1:] if r.topic.endswith("/radar-s1")]
    assert len(later_s1) >= 70
    assert _of(rejected, "radar-s1") == [], [r.reason for r in _of(rejected, "radar-s1")][:3]
    assert [r.payload for r in _of(rejected, "radar-n1")] == [ahead.decode()]
    assert "ahead of the other sensors' clocks" in _of(rejected, "radar-n1")[0].reason
    assert pipeline.status(0.0)["sensor_clocks"]["rejected"] == {"radar-n1": 1}


def test_a_radar_running_10_s_fast_loses_only_its_own_scans(demo_site, records):
    start = len(records) // 4  # the others' clocks are known by then
    items = []
    for i, r in enumerate(records):
        payload = r.payload
        if i >= start and r.topic.endswith("/radar-n1"):
            message = msgspec.json.decode(payload)
            payload = _encode({**message, "t": message["t"] + 10.0})
        items.append((r.t_rx, r.topic, payload))
    _, rejected = _feed(demo_site, items)
    others = [r for r in rejected if not r.topic.endswith("/radar-n1")]
    assert others == [], [(r.topic, r.reason) for r in others][:3]
    fast = sum(1 for r in records[start:] if r.topic.endswith("/radar-n1"))
    assert len(_of(rejected, "radar-n1")) == fast


def test_a_clean_log_loses_nothing_to_the_clock_check(demo_site, records, short_log):
    _, expected = short_log
    assert not [r for r in expected.rejected if "clock" in r.reason]


def test_when_every_clock_shifts_at_once_only_the_first_message_after_it_is_lost(demo_site, records):
    """E.g. the node's own clock stepped back 6 s: every sensor now looks 6 s ahead of what was recorded."""
    shift_at = len(records) // 3
    items = [(r.t_rx - (6.0 if i >= shift_at else 0.0), r.topic, r.payload) for i, r in enumerate(records)]
    _, rejected = _feed(demo_site, items)
    clock = [r for r in rejected if "clock" in r.reason]
    assert len(clock) <= 1, [(r.topic, r.reason) for r in clock]
