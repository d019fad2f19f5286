"""The pipeline's checkpoint: a resumed pipeline decides exactly what an uninterrupted one does."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from fusion.config import ConfigError, load_site
from fusion.live import checkpoint as ck
from fusion.logio import read_log
from fusion.pipeline import Outputs, Pipeline


@pytest.fixture(scope="module")
def records(short_log):
    log, _ = short_log
    return list(read_log(log))


def _run(site, records, restart_at: set[int]) -> Outputs:
    """Feed ``records``; before each index in ``restart_at``, checkpoint to bytes and continue in a new pipeline."""
    pipeline, out = Pipeline(site), Outputs()
    for i, r in enumerate(records):
        if i in restart_at:
            arrays, meta = pipeline.export_state()
            arrays, meta = ck.decode(ck.encode(arrays, meta))
            pipeline = Pipeline(site)
            pipeline.import_state(arrays, meta)
        out.extend(pipeline.feed(r.t_rx, r.topic, r.payload))
    out.extend(pipeline.flush())
    return out


def test_a_pipeline_resumed_from_checkpoints_decides_what_an_uninterrupted_one_does(demo_site, records, short_log):
    _, expected = short_log
    assert expected.alerts
    out = _run(demo_site, records, {40, 151, 152, 260, 333, len(records) - 5})
    assert [a.to_dict() for a in out.alerts] == [a.to_dict() for a in expected.alerts]
    assert [s.to_dict() for s in out.snapshots] == [s.to_dict() for s in expected.snapshots]
    assert [r.to_dict() for r in out.rejected] == [r.to_dict() for r in expected.rejected]


def test_track_ids_continue_after_a_restore(demo_site, records):
    pipeline = Pipeline(demo_site)
    for r in records[:200]:
        pipeline.feed(r.t_rx, r.topic, r.payload)
    arrays, meta = pipeline.export_state()
    resumed = Pipeline(demo_site)
    resumed.import_state(*ck.decode(ck.encode(arrays, meta)))
    assert resumed.tracker._next_id == pipeline.tracker._next_id > 1
    tab = resumed.tracker.table
    assert set(tab.track_id[tab.alive].tolist()) == set(pipeline.tracker.table.track_id[pipeline.tracker.table.alive].tolist())


def test_a_redelivered_message_is_a_duplicate_after_a_restore(demo_site, records):
    pipeline = Pipeline(demo_site)
    for r in records[:30]:
        pipeline.feed(r.t_rx, r.topic, r.payload)
    resumed = Pipeline(demo_site)
    resumed.import_state(*ck.decode(ck.encode(*pipeline.export_state())))
    last = records[29]
    out = resumed.feed(last.t_rx + 1.0, last.topic, last.payload)
    assert len(out.rejected) == 1 and "duplicate" in out.rejected[0].reason
    assert resumed.counters["accepted"] == pipeline.counters["accepted"]


def test_held_scans_wait_the_rest_of_their_window_after_a_pause(demo_site, records):
    pipeline = Pipeline(demo_site)
    for r in records[:20]:
        pipeline.feed(r.t_rx, r.topic, r.payload)
    assert len(pipeline.buffer) > 0
    due = pipeline.next_release()
    arrays, meta = ck.decode(ck.encode(*pipeline.export_state()))
    resumed = Pipeline(demo_site)
    resumed.import_state(arrays, meta, now_rx=records[19].t_rx + 500.0)  # restarted 500 s later
    assert resumed.next_release() == pytest.approx(due + 500.0)
    assert len(resumed.buffer) == len(pipeline.buffer)
    assert resumed.tick(records[19].t_rx + 500.0).alerts == [] and len(resumed.buffer) == len(pipeline.buffer)


def test_the_file_is_replaced_atomically_and_private(tmp_path):
    path = tmp_path / "cp" / "node.npz"
    ck.write_atomic(path, b"old")
    ck.write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["node.npz"]  # no temporary file left behind


def test_a_checkpoint_holds_no_pickled_objects():
    with pytest.raises(ValueError, match="not a checkpoint"):
        ck.decode(ck.encode({"x": np.array([object()], dtype=object)}, {}))
    with pytest.raises(ValueError, match="not a checkpoint"):
        ck.decode(b"garbage")


def _site_with_checkpoint(tmp_path, demo_site, sensors_edit=None):
    from tests.conftest import DEMO_SITE
    import shutil

    shutil.copy(DEMO_SITE.parent / "jurisdictions.geojson", tmp_path)
    text = DEMO_SITE.read_text() + f'\n[checkpoint]\npath = "{tmp_path / "cp"}"\n'
    if sensors_edit:
        text = sensors_edit(text)
    (tmp_path / "site.toml").write_text(text)
    return load_site(tmp_path / "site.toml")


def test_save_then_load_through_the_site_file(tmp_path, demo_site, records):
    site = _site_with_checkpoint(tmp_path, demo_site)
    pipeline = Pipeline(site)
    for r in records[:50]:
        pipeline.feed(r.t_rx, r.topic, r.payload)
    assert not ck.load(site, Pipeline(site))  # nothing saved yet
    path, size = ck.save(site, pipeline)
    assert path == tmp_path / "cp" / "edge-1.npz" and size == path.stat().st_size
    resumed = Pipeline(site)
    assert ck.load(site, resumed)
    assert resumed.counters == pipeline.counters


def test_a_checkpoint_of_another_layout_stops_start_up_naming_file_and_field(tmp_path, demo_site, records):
    site = _site_with_checkpoint(tmp_path, demo_site)
    ck.save(site, Pipeline(site))
    other = _site_with_checkpoint(tmp_path, demo_site, lambda t: t.replace('node_id = "edge-1"', 'node_id = "edge-2"'))
    (tmp_path / "cp" / "edge-1.npz").rename(tmp_path / "cp" / "edge-2.npz")
    with pytest.raises(ConfigError, match=r"edge-2\.npz: checkpoint made for node_id 'edge-1'"):
        ck.load(other, Pipeline(other))
    (tmp_path / "cp" / "edge-2.npz").write_bytes(b"truncated")
    with pytest.raises(ConfigError, match=r"edge-2\.npz: not a checkpoint"):
        ck.load(other, Pipeline(other))


def test_run_with_an_unreadable_checkpoint_stops_with_the_file_named(tmp_path, demo_site, capsys):
    from fusion.cli import main

    site = _site_with_checkpoint(tmp_path, demo_site)
    (tmp_path / "cp").mkdir()
    (tmp_path / "cp" / "edge-1.npz").write_bytes(b"not a zip")
    assert main(["run", "--config", str(site.path)]) == 2  # before any connection is tried
    err = capsys.readouterr().err
    assert "edge-1.npz: not a checkpoint" in err and "move it away" in err


def test_input_is_acknowledged_only_after_its_checkpoint_is_on_disk(tmp_path, demo_site):
    import shutil

    import paho.mqtt.client as mqtt

    from fusion.live.durable import Durable
    from fusion.live.inbox import AckedInbox
    from tests.conftest import DEMO_SITE

    shutil.copy(DEMO_SITE.parent / "jurisdictions.geojson", tmp_path)
    (tmp_path / "blocked").write_text("a file where the checkpoint folder should be")
    (tmp_path / "site.toml").write_text(DEMO_SITE.read_text() + '\n[checkpoint]\npath = "blocked/cp"\n')
    site = load_site(tmp_path / "site.toml")

    class Client:
        acked: list = []

        def ack(self, mid, qos):
            self.acked.append(mid)

    inbox, client = AckedInbox(100, 1 << 20), Client()
    message = mqtt.MQTTMessage(7, b"borderfusion/v1/raw/radar/radar-n1")
    message.qos = 1
    inbox.on_message(None, None, message)
    inbox.get(timeout=1)
    durable = Durable(site, Pipeline(site), inbox)
    durable.maybe_checkpoint(client, force=True)  # cannot write: nothing acknowledged, kept for the next try
    assert (durable.failed, durable.written, client.acked, inbox.unacknowledged) == (1, 0, [], 1)
    (tmp_path / "blocked").unlink()
    durable.maybe_checkpoint(client, force=True)
    assert (durable.written, client.acked) == (1, [7])
    assert (tmp_path / "blocked" / "cp" / "edge-1.npz").is_file()
