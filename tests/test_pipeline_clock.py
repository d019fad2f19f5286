"""The reorder clock: quiet sensors still release their scans one window later, and the
live node's idle ticks change when scans are processed, never which or in what order."""

import numpy as np

from fusion.logio import read_log
from fusion.pipeline import Outputs, Pipeline


def run(site, records, ticks_per_gap=0, seed=0):
    """Feed ``records``; between two messages optionally tick at random earlier receive times."""
    rng = np.random.default_rng(seed)
    pipeline, out = Pipeline(site), Outputs()
    previous = None
    for record in records:
        if ticks_per_gap and previous is not None:
            for now in np.sort(rng.uniform(previous, record.t_rx, ticks_per_gap)):
                out.extend(pipeline.tick(float(now)))
        out.extend(pipeline.feed(record.t_rx, record.topic, record.payload))
        previous = record.t_rx
    return pipeline, out


def fingerprint(pipeline, out):
    return (dict(pipeline.counters), [a.alert_id for a in out.alerts], [s.t for s in out.snapshots],
            [r.reason for r in out.rejected])


def test_idle_ticks_release_the_same_scans_in_the_same_order(demo_site, demo_log):
    records = list(read_log(demo_log[0]))
    plain = run(demo_site, records)
    ticked = run(demo_site, records, ticks_per_gap=3)
    assert plain[0].counters["scans"] > 0 and plain[1].alerts
    assert fingerprint(*plain) == fingerprint(*ticked)


def test_quiet_sensors_release_after_one_window_of_receive_time(demo_site, demo_log):
    window = demo_site.config.ingest.reorder_window_s
    assert window > 0
    records = list(read_log(demo_log[0]))[:200]
    pipeline, _ = run(demo_site, records)
    held = len(pipeline.buffer)
    assert held > 0, "the newest window of scans is still held"
    last_rx = records[-1].t_rx
    due = pipeline.next_release()
    assert last_rx <= due <= last_rx + window
    pipeline.tick(due - 1e-3)
    assert len(pipeline.buffer) == held, "nothing falls due early"
    scans = pipeline.counters["scans"]
    pipeline.tick(due + 1e-6)
    assert len(pipeline.buffer) < held and pipeline.counters["scans"] > scans
    pipeline.tick(last_rx + window + 1.0)  # a second past the window: nothing is held any more
    assert len(pipeline.buffer) == 0 and pipeline.next_release() == float("inf")


def test_a_snapshot_at_t_reflects_the_detections_stamped_t(demo_site):
    """A radar reports one target at whole seconds; the snapshot at t must hold the update of the
    scan stamped exactly t (before, it went out just before that scan: a one-step prediction)."""
    import msgspec

    pipeline, out = Pipeline(demo_site), Outputs()
    prefix = demo_site.config.mqtt.prefix
    radar = next(s.spec for s in demo_site.sensors if s.kind == "radar")
    t0 = 1_795_000_000.0
    for k in range(20):
        t = t0 + k
        plot = {"range_m": 1000.0 + 3.0 * k, "azimuth_deg": 45.0}
        payload = msgspec.json.encode({"sensor_id": radar.id, "t": t, "seq": k, "plots": [plot]})
        out.extend(pipeline.feed(t + 0.1, f"{prefix}/raw/radar/{radar.id}", payload))
    out.extend(pipeline.flush())
    shown = [s for s in out.snapshots if len(s.estimates)]
    assert len(shown) >= 10
    for snapshot in shown:
        assert snapshot.estimates.last_update.max() == snapshot.t  # the scan at t is in it, none later
