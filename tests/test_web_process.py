"""The live node's map server in a process of its own (:mod:`fusion.web.process`), over real sockets."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

from fusion.config import ConfigError, load_site
from fusion.web.acks import Ack
from fusion.web.process import MAP_NICE, MapProcess
from fusion.web.sinks import hand_snapshot, node_sinks
from tests.broker import free_port, make_certificates, write_site
from tests.test_web import TOKENS, collect, visible_to, write_tokens


def web_site(tmp_path: Path, web: str):
    """The demo site with ``[web]`` (``web``: its keys, as TOML lines)."""
    (tmp_path / "site").mkdir(parents=True, exist_ok=True)
    path = write_site(tmp_path / "site", 1883, outbox=tmp_path / "outbox")
    path.write_text(path.read_text() + f"\n[web]\n{web}\n")
    return load_site(path)


@pytest.fixture
def map_process(tmp_path):
    (tmp_path / "site").mkdir()
    write_tokens(tmp_path / "site")
    site = web_site(tmp_path, 'listen = "127.0.0.1:0"\ntokens = "tokens.toml"\ntrack_margin_m = 500.0')
    published: list[Ack] = []
    (sink,) = node_sinks(site, publish_ack=published.append)
    sink.published, sink.site = published, site
    yield sink
    sink.close()


def _threads_named(pid: int, name: str) -> list[str]:
    return [t.name for t in Path(f"/proc/{pid}/task").iterdir() if (t / "comm").read_text().strip() == name]


def hello_when(url: str, token: str, predicate, timeout_s: float = 10.0) -> dict:
    """The first frame of a browser that connects once ``predicate(hello)`` holds (reconnecting till then)."""
    deadline = time.monotonic() + timeout_s
    while True:
        hello = collect(url, token, 2.0, until=lambda f: True)[0]
        if predicate(hello) or time.monotonic() > deadline:
            return hello
        time.sleep(0.1)


def _wait(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return bool(predicate())


def test_the_live_nodes_map_runs_in_a_process_of_its_own_and_serves_each_agency_its_view(map_process, short_log):
    """No map thread in the node; the snapshot goes over as the node's JSON bytes and each agency sees its part."""
    _, expected = short_log
    assert isinstance(map_process, MapProcess)
    child = map_process._process.pid
    assert Path(f"/proc/{child}/comm").read_text().strip() == "bf-web"
    assert not _threads_named(os.getpid(), "bf-web"), "the map server runs as a thread of the node"
    # when both want a core, the node's loop goes first
    assert os.getpriority(os.PRIO_PROCESS, child) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + MAP_NICE)
    snapshot = max(expected.snapshots, key=lambda s: len(s.to_dict()["tracks"]))
    alerts = [a.to_dict() for a in expected.alerts]
    handed = time.time()
    map_process.on_alerts(alerts)
    map_process.on_status({"node_id": "edge-1", "state": "online"})
    map_process.on_snapshot_json(snapshot.to_json())
    hello = hello_when(map_process.url, TOKENS["agency-b"], lambda h: h["snapshot"] and h["status"])
    assert hello["view"] == "agency-b" and hello["snapshot"]["t"] == snapshot.t
    assert handed - 0.001 <= hello["snapshot"]["produced"] <= time.time()  # stamped by the node when handed over
    tracks = hello["snapshot"]["tracks"]
    assert tracks and all(visible_to(map_process.site, "agency-b", t["lat"], t["lon"]) for t in tracks)
    assert len(tracks) < len(snapshot.to_dict()["tracks"])  # the filter ran: some tracks are not B's
    assert {a["alert_id"] for a in hello["alerts"]} == \
        {a["alert_id"] for a in alerts if "agency-b" in a["recipients"]}


def test_an_operators_ack_is_stored_by_the_map_process_and_handed_back_to_the_node(map_process, short_log,
                                                                                   tmp_path):
    _, expected = short_log
    alert = next(a.to_dict() for a in expected.alerts if "agency-b" in a.recipients)
    map_process.on_alerts([alert])
    hello_when(map_process.url, TOKENS["agency-b"], lambda h: h["alerts"])
    collect(map_process.url, TOKENS["agency-b"], 1.0,
            [{"type": "ack", "alert_id": alert["alert_id"], "state": "dismissed"}])
    assert _wait(lambda: map_process.published), "the node was not handed the operator's ack"
    (ack,) = map_process.published
    assert (ack.alert_id, ack.agency_id, ack.state, ack.operator) == \
        (alert["alert_id"], "agency-b", "dismissed", "desk-agency-b")
    stored = sqlite3.connect(tmp_path / "outbox" / "edge-1-acks.sqlite").execute(
        "SELECT alert_id, agency_id, state FROM acks").fetchall()
    assert stored == [(alert["alert_id"], "agency-b", "dismissed")]
    # an ack from another node's map (via MQTT): stored and shown
    map_process.on_ack(Ack(alert_id=alert["alert_id"], agency_id="agency-b", state="acknowledged",
                           operator="night-desk", t=ack.t + 1))
    hello = hello_when(map_process.url, TOKENS["agency-b"], lambda h: h["acks"][0]["operator"] == "night-desk")
    assert [(a["alert_id"], a["state"]) for a in hello["acks"]] == [(alert["alert_id"], "acknowledged")]


def test_the_hand_over_never_waits_for_a_stuck_map_process_and_it_gets_the_newest_snapshot(map_process, short_log):
    """With the child stopped (SIGSTOP) 500 snapshots and statuses are handed over at once; once it
    runs again a browser receives the newest snapshot, not the backlog."""
    _, expected = short_log
    payload = max(expected.snapshots, key=lambda s: len(s.to_dict()["tracks"])).to_dict()
    payloads = [msgspec.json.encode(dict(payload, t=float(i))) for i in range(500)]
    os.kill(map_process._process.pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        for i, one in enumerate(payloads):
            map_process.on_snapshot_json(one)
            map_process.on_status({"node_id": "edge-1", "state": "online", "n": i})
        elapsed = time.perf_counter() - started
    finally:
        os.kill(map_process._process.pid, signal.SIGCONT)
    assert elapsed < 0.2, f"500 hand-overs took {elapsed:.3f} s while the map process was stopped"
    def shown(frames: list[dict]) -> list[float]:  # the snapshots a browser was sent, the hello's first
        return [f["snapshot"]["t"] for f in frames[:1] if f["snapshot"]] + \
            [f["t"] for f in frames if f["type"] == "snapshot"]

    shown = shown(collect(map_process.url, TOKENS["agency-b"], 10.0, until=lambda f: 499.0 in shown(f)))
    assert shown[-1] == 499.0
    # the hello's (what reached the child before it stopped), at most one that was in the socket, the newest
    assert len(shown) <= 2, shown


def test_a_dead_map_process_is_started_again_on_the_same_address(map_process, short_log, caplog):
    """The node keeps going (its hand-over calls never raise); the new process listens where the old one
    did and shows the recent alerts again."""
    _, expected = short_log
    alert = next(a.to_dict() for a in expected.alerts if "agency-b" in a.recipients)
    map_process.on_alerts([alert])
    hello_when(map_process.url, TOKENS["agency-b"], lambda h: h["alerts"])
    url, old = map_process.url, map_process._process.pid
    with caplog.at_level(logging.ERROR, logger="fusion.web.process"):
        os.kill(old, signal.SIGKILL)
        for i in range(50):  # the node goes on handing over while the map is down
            map_process.on_status({"node_id": "edge-1", "state": "online", "n": i})
            time.sleep(0.02)
        assert _wait(lambda: map_process.restarts == 1, 20), "the map process was not started again"
    assert "the map server process ended (exit code -9)" in caplog.text
    assert map_process._process.pid != old and map_process.url == url
    map_process.on_status({"node_id": "edge-1", "state": "online", "n": 99})
    hello = hello_when(url, TOKENS["agency-b"], lambda h: h["status"] and h["status"]["n"] == 99)
    assert [a["alert_id"] for a in hello["alerts"]] == [alert["alert_id"]]
    assert hello["status"]["n"] == 99


def test_hand_snapshot_decodes_only_for_sinks_that_take_a_dict():
    class Takes:
        def __init__(self, json_too: bool) -> None:
            self.got: list = []
            if json_too:
                self.on_snapshot_json = self.got.append

        def on_snapshot(self, snapshot: dict) -> None:
            self.got.append(snapshot)

    raw = Takes(json_too=True)
    hand_snapshot([raw], b"not JSON at all")  # never decoded: nobody wants a dict
    assert raw.got == [b"not JSON at all"]
    dicts = [Takes(json_too=False), Takes(json_too=False)]
    payload = b'{"t": 5.0, "tracks": []}'
    hand_snapshot([raw, *dicts], payload)
    assert raw.got[-1] is payload
    assert dicts[0].got == [{"t": 5.0, "tracks": []}] and dicts[0].got[0] is dicts[1].got[0]  # decoded once


def test_start_up_errors_of_the_map_process_stop_the_node_naming_what_is_wrong(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        site = web_site(tmp_path / "a", f'listen = "127.0.0.1:{port}"')
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}.*choose another"):
            node_sinks(site)
    (tmp_path / "b" / "site").mkdir(parents=True)
    write_tokens(tmp_path / "b" / "site", mode=0o644)
    site = web_site(tmp_path / "b", 'listen = "127.0.0.1:0"\ntokens = "tokens.toml"')
    with pytest.raises(ConfigError, match=r"site\.toml: web\.tokens: .*tokens\.toml may be read by other users"):
        node_sinks(site)
    (tmp_path / "c").mkdir()
    files = make_certificates(tmp_path / "c")
    Path(files["server.key"]).write_text("not a key\n")
    site = web_site(tmp_path / "c", f'listen = "127.0.0.1:{free_port()}"\ntls_cert = "{files["server.crt"]}"\n'
                                    f'tls_key = "{files["server.key"]}"')
    with pytest.raises(ConfigError, match=r"site\.toml: web\.tls_cert, web\.tls_key: cannot load for TLS"):
        node_sinks(site)
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_our_map_child(p)]


def _is_our_map_child(proc: Path) -> bool:
    """A ``fusion.web.process`` child of this test process still alive (start-up failures leave none)."""
    try:
        stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        alive = int(stat[1]) == os.getpid() and stat[0] != "Z"
        return alive and b"fusion.web.process" in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def test_json_of_the_snapshot_is_what_the_page_reads():
    """The map process decodes the node's JSON itself: a dict and its JSON give the same frame."""
    from fusion.web.server import _Compact

    snapshot = {"t": 3.0, "tracks": [{"track_id": "x", "status": "confirmed", "lat": 47.0, "lon": 8.0, "east_m": 1.0,
                                      "north_m": 2.0, "heading_deg": 0.0, "speed_mps": 1.0,
                                      "covariance": [[4.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}]}
    from_dict, from_json = _Compact.of(snapshot, 1.0), _Compact.of(json.dumps(snapshot).encode(), 1.0)
    assert from_dict.tracks == from_json.tracks and from_dict.t == from_json.t == 3.0


def test_the_writer_sends_the_newest_snapshot_only_urgent_frames_first_and_the_recent_to_a_new_child():
    """The node-side hand-over holds one snapshot and one status whatever it is given, and a restarted
    child is sent the alerts already sent to the one before and the newest status."""
    from fusion.web.process import _ACK, _ALERTS, _SNAPSHOT, _STATUS, _Pending

    pending = _Pending(recent_alerts=2)
    for i in range(500):
        pending.snapshot = (float(i), b'{"t": %d}' % i)
        pending.status = b'{"n": %d}' % i
    pending.alerts.extend([b"[1]", b"[2]", b"[3]"])
    pending.acks.append(b"ack")
    frames = pending.take()
    assert [kind for kind, _ in frames] == [_ACK, _ALERTS, _ALERTS, _ALERTS, _STATUS, _SNAPSHOT]
    assert frames[-1][1][1] == b'{"t": 499}' and frames[-2][1] == (b'{"n": 499}',)
    assert not pending.waiting() and pending.take() == []
    pending.resend = True  # a new child
    assert pending.take() == [(_ALERTS, (b"[2]",)), (_ALERTS, (b"[3]",)), (_STATUS, (b'{"n": 499}',))]


def test_a_killed_node_leaves_no_map_process_holding_its_port(tmp_path):
    """kill -9 of the node: its map process sees the socket close and ends, so a restarted node can listen."""
    import subprocess
    import sys

    port = free_port()
    site = web_site(tmp_path, f'listen = "127.0.0.1:{port}"')
    script = ("import sys, time\nfrom fusion.config import load_site\nfrom fusion.web.sinks import node_sinks\n"
              f"(sink,) = node_sinks(load_site({str(site.path)!r}))\n"
              "print(sink._process.pid, flush=True)\ntime.sleep(60)\n")
    node = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    child = None
    try:
        child = int(node.stdout.readline())
        node.kill()
        node.wait(10)
        assert _wait(lambda: not Path(f"/proc/{child}").exists() or
                     (Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"), 10), \
            "the map process outlived its node"
        with socket.socket() as again:  # the address is free for the next node
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", port))
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        if child is not None and Path(f"/proc/{child}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
