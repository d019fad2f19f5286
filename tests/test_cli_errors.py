"""Argument errors of ``simulate``, ``demo`` and ``evaluate``: exit 2 with a message saying what is valid,
never a traceback; a demo that stops midway says its output is partial."""

from __future__ import annotations

import json

import pytest

from fusion import demo
from fusion.cli import main
from tests.conftest import DEMO_SITE


@pytest.mark.parametrize("argv,expected", [
    (["simulate", "--duration", "-5"], "argument --duration: expected a number of seconds greater than 0"),
    (["simulate", "--duration", "0"], "argument --duration: expected a number of seconds greater than 0"),
    (["simulate", "--duration", "nan"], "argument --duration: expected a number of seconds greater than 0"),
    (["simulate", "--duration", "1e9"], "at most 21,600"),
    (["simulate", "--duration", "ten"], "argument --duration: expected a number of seconds"),
    (["simulate", "--duration", "60", "--seed", "-1"], "argument --seed: expected a whole number ≥ 0"),
    (["simulate", "--duration", "60", "--targets", "-3"], "argument --targets: expected a whole number of targets"),
    (["demo", "--duration", "-5"], "argument --duration: expected a number of seconds greater than 0"),
    (["evaluate", "--truth", "t", "--tracks", "k", "--cutoff", "-1"], "argument --cutoff: expected a distance"),
])
def test_bad_numbers_exit_2_saying_what_is_valid(tmp_path, capsys, argv, expected):
    if argv[0] == "simulate":
        argv = [*argv, "--config", str(DEMO_SITE), "--out", str(tmp_path / "log.jsonl")]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "log.jsonl").exists()


def test_a_simulation_too_large_for_memory_is_refused_before_it_starts(tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    assert main(["simulate", "--config", str(DEMO_SITE), "--duration", "20000", "--targets", "5000",
                 "--out", str(log)]) == 2
    assert "target-seconds" in capsys.readouterr().err and not log.exists()


def test_a_demo_that_stops_midway_says_its_output_is_partial(tmp_path, monkeypatch, capsys):
    def broken_replay(*args, **kwargs):
        raise RuntimeError("replay broke")

    monkeypatch.setattr(demo, "replay_file", broken_replay)
    out = tmp_path / "demo-out"
    with pytest.raises(RuntimeError):
        main(["demo", "--out", str(out), "--duration", "30"])
    assert (out / "sensors.jsonl.gz").exists()  # the simulation was written before the failure
    marker = (out / demo.INCOMPLETE).read_text()
    assert "replay broke" in marker and "partial" in marker
    assert f"the files in {out}/ are partial" in capsys.readouterr().err


@pytest.mark.slow
def test_a_short_demo_writes_every_output_and_no_marker(tmp_path, capsys):
    out = tmp_path / "demo-out"
    assert main(["demo", "--out", str(out), "--duration", "120"]) == 0
    assert not (out / demo.INCOMPLETE).exists()
    assert (out / "rejected.jsonl").exists()  # empty: the simulated sensors send nothing invalid
    for name in ("alerts.jsonl", "tracks.jsonl", "map.png", "sensors.jsonl.gz", "truth.jsonl"):
        assert (out / name).stat().st_size > 0, name
    scores = json.loads((out / "scores.json").read_text())
    assert scores["gospa"]["units"]["mean"] == "m" and scores["frames"] > 100
    assert "borderfusion demo" in capsys.readouterr().out
