import numpy as np
import pytest

from sensors.batch import Scan
from sensors.reorder import ReorderBuffer


def scan(t, sensor="s"):
    z = np.zeros((0,))
    return Scan(sensor, 0, t, z, np.zeros((0, 2)), np.zeros((0, 2, 2)), z, z, np.zeros((0, 2)),
                np.zeros((0, 5)), np.zeros(0, bool), (0.0, 0.0), 0.0, 0.0, 0.0)


def test_releases_in_sensor_time_order_after_window():
    buf = ReorderBuffer(window_s=3.0)
    rng = np.random.default_rng(0)
    times = np.arange(100.0)
    released = []
    # each scan arrives with a delay of up to 2 s
    arrivals = sorted((t + rng.uniform(0, 2.0), t) for t in times)
    for t_rx, t in arrivals:
        buf.push(scan(t), t_rx)
        out = buf.pop_ready(t_rx)
        assert all(s.time <= t_rx - 3.0 for s in out)
        released += out
    released += buf.drain()
    assert [s.time for s in released] == list(times)
    assert buf.released_until == 99.0 and buf.forced == 0


def test_ties_keep_arrival_order_and_window_zero_passes_through():
    buf = ReorderBuffer(window_s=0.0)
    a, b = scan(5.0, "a"), scan(5.0, "b")
    buf.push(a, 5.0)
    buf.push(b, 5.0)
    assert [s.sensor_id for s in buf.pop_ready(5.0)] == ["a", "b"]


def test_memory_is_bounded_by_forcing_oldest_out():
    buf = ReorderBuffer(window_s=1000.0, max_items=10)
    out = []
    for t in range(25):
        buf.push(scan(float(t)), float(t))
        out += buf.pop_ready(float(t))
    assert len(buf) == 10 and buf.forced == 15
    assert [s.time for s in out] == [float(t) for t in range(15)]


def test_receive_queue_is_bounded_behind_a_held_scan_stamped_far_ahead():
    """A scan stamped far ahead is held (it is received first, so it heads the receive queue);
    thousands of scans behind it are released by the data clock.  Their receive entries must not
    pile up behind it, and the held scan must still be released by the receive clock."""
    buf = ReorderBuffer(window_s=3.0, max_items=10)
    buf.push(scan(1e6), 0.0)  # a sensor clock far ahead
    released = []
    for k in range(1, 2000):
        buf.push(scan(float(k)), float(k) * 1e-4)  # received within 0.2 s: the receive clock never fires
        released += buf.pop_ready(float(k), float(k) * 1e-4)
        assert len(buf._received) <= 2 * buf.max_items + 1
    assert [s.time for s in released] == [float(k) for k in range(1, 1997)] and buf.forced == 0
    assert [s.time for s in buf.pop_ready(1999.0, 3.0)] == [1997.0, 1998.0, 1999.0, 1e6]  # held 3 s: due
    assert len(buf) == 0


def test_negative_window_is_an_error():
    with pytest.raises(ValueError):
        ReorderBuffer(window_s=-1)


def test_quiet_sensors_are_released_after_a_window_of_receive_time():
    buf = ReorderBuffer(window_s=3.0)
    buf.push(scan(10.0), 10.5)
    buf.push(scan(12.0), 12.1)
    assert buf.pop_ready(12.0, 13.4) == [] and buf.next_due() == 13.5  # data clock: only t <= 9
    assert [s.time for s in buf.pop_ready(12.0, 13.5)] == [10.0]  # held 3 s of receive time
    buf.push(scan(11.0), 13.6)  # late, but still after what was released
    assert buf.pop_ready(12.0, 15.0) == []
    # the scan received at 12.1 times out: it goes with the earlier-stamped one received later
    assert [s.time for s in buf.pop_ready(12.0, 15.1)] == [11.0, 12.0]
    assert len(buf) == 0 and buf.next_due() == float("inf") and buf.released_until == 12.0


def test_a_restored_buffer_releases_what_the_original_would_in_the_same_order():
    from sensors.reorder import ReorderBuffer as Buffer

    def _scan(t, sensor):  # k + 1 detections at distinct places, to check the arrays come back to their scans
        n = int(t * 10) % 3 + 1
        pos = np.arange(2.0 * n).reshape(n, 2) + t
        return Scan(sensor, 0, t, np.full(n, t), pos, np.tile(np.eye(2), (n, 1, 1)), np.zeros(n), np.ones(n),
                    np.tile([1.0, 0.0], (n, 1)), np.full((n, 5), 0.2), np.ones(n, bool), (1.0, 2.0), 9.0, 0.9, 1e-6)

    original, t_rx = Buffer(window_s=2.0), 100.0
    for k, t in enumerate([10.0, 9.5, 10.0, 11.0, 9.8]):  # ties at 10.0 keep their arrival order
        original.push(_scan(t, f"s{k}"), t_rx + 0.1 * k)
    assert [s.sensor_id for s in original.pop_ready(11.6, t_rx + 0.5)] == ["s1"]
    arrays, meta = original.export_state()
    restored = Buffer(window_s=2.0)
    restored.import_state({k: v.copy() for k, v in arrays.items()}, meta)
    assert restored.released_until == original.released_until and len(restored) == len(original)
    assert restored.next_due() == original.next_due()
    a, b = original.pop_ready(13.0, t_rx + 1.0), restored.pop_ready(13.0, t_rx + 1.0)
    assert [(s.sensor_id, s.time) for s in a] == [(s.sensor_id, s.time) for s in b] and len(a) == 4
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.position, y.position)
        assert (x.coverage_center, x.coverage_radius_m, x.detection_probability) == \
            (y.coverage_center, y.coverage_radius_m, y.detection_probability)
    restored.push(_scan(12.0, "late"), t_rx + 2.0)
    assert [s.sensor_id for s in restored.drain()] == ["late"]
