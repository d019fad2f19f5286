"""--tracks-out / --alerts-out X.parquet: read back, row for row the JSON Lines output."""

from __future__ import annotations

import json
import stat
import sys

import pytest

from fusion.cli import main
from tests.conftest import DEMO_SITE

pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, demo_log):
    out = tmp_path_factory.mktemp("parquet")
    log = str(demo_log[0])
    common = ["replay", log, "--config", str(DEMO_SITE)]
    assert main([*common, "--tracks-out", str(out / "t.jsonl"), "--alerts-out", str(out / "a.jsonl")]) == 0
    assert main([*common, "--tracks-out", str(out / "t.parquet"), "--alerts-out", str(out / "a.parquet")]) == 0
    return out


def test_tracks_parquet_holds_one_row_per_track_per_snapshot_equal_to_the_json(outputs):
    snapshots = [json.loads(line) for line in (outputs / "t.jsonl").read_text().splitlines()]
    expected = [(s["node_id"], s["t"], track) for s in snapshots for track in s["tracks"]]
    table = pq.read_table(outputs / "t.parquet")
    assert table.num_rows == len(expected) > 1000
    schema = table.schema
    assert schema.field("lat").type == pa.float64() and schema.field("covariance").type == pa.list_(pa.float64(), 16)
    assert schema.field("sensors").type == pa.list_(pa.string())
    assert pa.types.is_dictionary(schema.field("status").type)
    rows = table.to_pylist()
    for (node, t, track), row in zip(expected, rows):
        assert row["node_id"] == node and row["t"] == t
        assert row["covariance"] == [v for line in track["covariance"] for v in line]
        assert {name: row[f"class_{name}"] for name in track["classification"]} == track["classification"]
        for key, value in track.items():
            if key not in ("covariance", "classification"):
                assert row[key] == value, (t, key)
    assert {row["jurisdiction"] for row in rows} >= {None, "country-a", "country-b"}
    assert stat.S_IMODE((outputs / "t.parquet").stat().st_mode) == 0o600


def test_alerts_parquet_equals_the_json(outputs):
    alerts = [json.loads(line) for line in (outputs / "a.jsonl").read_text().splitlines()]
    rows = pq.read_table(outputs / "a.parquet").to_pylist()
    assert len(rows) == len(alerts) > 0
    for alert, row in zip(alerts, rows):
        classes = alert.pop("classification")
        assert {name: row[f"class_{name}"] for name in classes} == classes
        extra = json.loads(row["extra"]) if row["extra"] else {}
        for key, value in alert.items():
            assert (row[key] if key in row else extra[key]) == value, key
        if "eta_s" not in alert:
            assert row["eta_s"] is None


def test_without_pyarrow_the_message_names_the_extra(tmp_path, demo_log, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code = main(["replay", str(demo_log[0]), "--config", str(DEMO_SITE), "--tracks-out", str(tmp_path / "t.parquet")])
    err = capsys.readouterr().err
    assert code == 2
    assert "t.parquet" in err and "pyarrow" in err and "borderfusion[parquet]" in err
    assert not (tmp_path / "t.parquet").exists()


def test_rejected_out_parquet_is_refused(tmp_path, demo_log, capsys):
    code = main(["replay", str(demo_log[0]), "--config", str(DEMO_SITE), "--rejected-out", str(tmp_path / "r.parquet")])
    assert code == 2 and "JSON Lines only" in capsys.readouterr().err
