"""A replay pays only for what it writes: no snapshot without --tracks-out, no renderer's kernel
without JSON snapshots, start-up without the cyclic GC; the outputs stay those of the full pipeline."""

from __future__ import annotations

import gc
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fusion.render
from fusion.cli import _start_up, main
from fusion.config import load_site
from fusion.logio import read_log
from fusion.pipeline import Outputs, Pipeline, _alive_rows
from tests.conftest import DEMO_SITE, ROOT
from tracking.table import sensor_bits


def _feed(pipeline: Pipeline, log) -> Outputs:
    out = Outputs()
    for record in read_log(log):
        out.extend(pipeline.feed(record.t_rx, record.topic, record.payload))
    out.extend(pipeline.flush())
    return out


def test_without_snapshots_the_alerts_counters_and_snapshot_clock_are_the_same(demo_site, short_log):
    log, _ = short_log
    full = Pipeline(demo_site)
    lean = Pipeline(demo_site, emit_snapshots=False)

    def no_prediction(*args, **kwargs):
        raise AssertionError("a pipeline without snapshots predicted the tracks for one")
    lean.tracker.estimates = no_prediction
    expected, got = _feed(full, log), _feed(lean, log)
    assert expected.snapshots and expected.alerts
    assert got.snapshots == []
    assert [a.to_dict() for a in got.alerts] == [a.to_dict() for a in expected.alerts]
    assert [r.to_dict() for r in got.rejected] == [r.to_dict() for r in expected.rejected]
    assert lean.counters == full.counters
    assert lean.export_state()[1]["next_snapshot"] == full.export_state()[1]["next_snapshot"]


def test_a_federated_pipeline_makes_its_snapshots_anyway(tmp_path, demo_site):
    """Its partners' fusion runs at each snapshot and raises ``incoming`` alerts."""
    from fusion.federation.pair import write_sites

    sites = write_sites(tmp_path, DEMO_SITE.parent / "jurisdictions.geojson")
    site = load_site(sites.b)
    assert site.config.federation.fusion is not None
    assert Pipeline(site, emit_snapshots=False).emit_snapshots
    assert not Pipeline(demo_site, emit_snapshots=False).emit_snapshots


def test_replay_file_makes_snapshots_only_for_tracks_out_or_keep(demo_site, short_log, tmp_path):
    from fusion.replay import replay_file

    log, expected = short_log
    assert not replay_file(demo_site, log, alerts_out=tmp_path / "a.jsonl", progress=False).emit_snapshots
    assert replay_file(demo_site, log, tracks_out=tmp_path / "t.jsonl", progress=False).emit_snapshots
    lines = (tmp_path / "t.jsonl").read_bytes().splitlines()
    assert lines == [s.to_json() for s in expected.snapshots]


@given(st.lists(st.booleans(), min_size=1, max_size=64), st.data())
def test_alive_rows_is_the_union_of_the_row_sets_that_are_alive(alive, data):
    alive = np.array(alive)
    rows = st.lists(st.integers(0, alive.size - 1), max_size=80).map(lambda r: np.array(r, np.int64))
    updated, confirmed = data.draw(rows), data.draw(rows)
    union = np.union1d(updated, confirmed)
    np.testing.assert_array_equal(_alive_rows(alive, updated, confirmed), union[alive[union]])


def test_alert_sensors_are_those_of_the_alerted_track_only(demo_site, short_log):
    """Checked against a plain reading of the bitmask, for tracks that exist and one that does not."""
    log, _ = short_log
    pipeline = Pipeline(demo_site)
    alerts = []
    for record in read_log(log):
        alerts += pipeline.feed(record.t_rx, record.topic, record.payload).alerts
    tab = pipeline.tracker.table.cols
    rows = np.flatnonzero(tab.alive)
    assert rows.size >= 2 and alerts
    ids = [s.spec.id for s in demo_site.sensors]
    node = demo_site.node_id
    probes = [replace(alerts[0], track_id=f"{node}-{int(tab.track_id[r])}") for r in rows[:3]]
    probes.append(replace(alerts[0], track_id=f"{node}-999999999"))  # no such track: no sensors
    probes.append(replace(alerts[0], track_id=f"partner-{int(tab.track_id[rows[0]])}"))  # not ours
    got = pipeline._with_sensors(probes, rows)
    for probe, alert in zip(probes, got):
        prefix, _, number = probe.track_id.rpartition("-")
        row = rows[tab.track_id[rows] == int(number)] if prefix == node else rows[:0]
        expected = [] if row.size == 0 else [ids[i] for i in np.flatnonzero(sensor_bits(tab.sensor_mask[row], len(ids))[0])]
        assert alert.extra["sensors"] == expected
    assert got[0].extra["sensors"]  # a live track has at least one sensor


def test_start_up_pauses_the_collector_and_always_turns_it_back_on():
    assert gc.isenabled()
    with _start_up():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with _start_up():
            raise RuntimeError("a bad configuration")
    assert gc.isenabled()
    gc.unfreeze()


def test_a_command_runs_with_the_collector_on(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("fusion.cli.cmd_validate_config", lambda args: seen.append(gc.isenabled()) or 0)
    parser_main_status = main(["validate-config", str(ROOT / "configs" / "demo" / "site.toml")])
    gc.unfreeze()
    assert parser_main_status == 0 and seen == [True]


def test_the_renderers_kernel_is_warmed_up_only_when_asked(monkeypatch):
    stages = []
    monkeypatch.setattr(fusion.render, "warm_up",
                        lambda extra, progress, cold: stages.extend(label for label, _ in extra) or 0.0)
    fusion.render.warm_up_kernels(extra=[("geofence", lambda: None)], rendering=False)
    assert stages == ["geofence"]
    stages.clear()
    fusion.render.warm_up_kernels(extra=[("geofence", lambda: None)])
    assert stages == ["snapshot rendering", "geofence"]
