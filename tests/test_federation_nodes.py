"""Two sovereign nodes end to end (issue 16): the ingress wired into the node, offline and live.

Offline: :func:`fusion.federation.pair.replay_pair` (both pipelines, each node's egress gateway,
releases fed to the other node as the bridge would).  Live: two ``borderfusion run`` processes on
two real Mosquitto brokers bridged both ways (the egress helper's :class:`BridgedPair` and its
bridge stanza), fed the split log in real time (×4), with a bridge outage mid-run.
"""

from __future__ import annotations

import heapq
import json
import threading
import time

import msgspec
import pytest

from fusion.config import ConfigError, load_site
from fusion.federation import paircheck
from fusion.federation.pair import NODE_ID, PREFIX, SIDES, replay_pair, simulate_pair, write_sites
from fusion.live.checkpoint import decode, encode
from fusion.logio import read_log
from fusion.pipeline import Outputs, Pipeline
from fusion.replay import replay_file
from tests.conftest import DEMO_SITE

GEOJSON = DEMO_SITE.parent / "jurisdictions.geojson"
DURATION_S = 110.0


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pair")
    sites = write_sites(directory, GEOJSON)
    logs, _, truth = simulate_pair(sites, DURATION_S, directory / "logs")
    return sites, logs, truth, replay_pair(sites, logs)


def _without_federation(snapshot: dict) -> dict:
    tracks = [{k: v for k, v in tr.items() if k not in ("partner_tracks", "fused")} for tr in snapshot["tracks"]]
    return {"node_id": snapshot["node_id"], "t": snapshot["t"], "tracks": tracks}


# -- offline ------------------------------------------------------------------------------
def test_a_crossing_vehicle_stays_one_linked_identity_across_the_border(pair_run):
    _, _, truth, runs = pair_run
    for row in paircheck.identities(runs, truth):
        assert row["sender_track"] and row["receiver_track"], row
        assert row["linked"] and row["linked_snapshots"] >= 5 and row["other_links"] == [], row


def test_the_partners_incoming_alert_comes_well_before_our_sensors_can_see_the_vehicle(pair_run):
    _, _, truth, runs = pair_run
    leads = paircheck.incoming_lead_s(runs, truth)
    assert all(lead is not None and lead >= 20.0 for lead in leads.values()), leads
    for side, agency in (("a", "agency-a"), ("b", "agency-b")):
        incoming = runs[side].incoming
        partner = NODE_ID["b" if side == "a" else "a"]
        assert incoming and all(a["node_id"] == NODE_ID[side] and a["source"] == partner
                                and a["track_id"].startswith(f"{partner}/") for a in incoming)
        # to the agencies of our jurisdiction it concerns (and of a shared sector at its entry point, who share)
        assert all(agency in a["recipients"] for a in incoming)
        assert any(a["recipients"] == [agency] for a in incoming), incoming


def test_nothing_released_outside_the_agreement(pair_run):
    _, _, _, runs = pair_run
    violations, checked = paircheck.leaks(runs)
    assert violations == [] and checked > 200
    released_tracks = sum(len(m["tracks"]) for side in SIDES for t, m in runs[side].released if t.endswith("/tracks"))
    # partner data are never released back (originator control): what a node passes on is its own
    for side in SIDES:
        own = {tr["track_id"] for s in runs[side].snapshots for tr in s["tracks"]}
        assert own and all(m["label"]["originator"] == NODE_ID[side] for _, m in runs[side].released)
    assert released_tracks > 100


def test_the_joint_picture_beats_either_node_alone(pair_run):
    _, _, truth, runs = pair_run
    score = paircheck.gospa_by_picture(runs, truth)
    best_alone = min(score["edge-a"], score["edge-b"])
    for side in SIDES:
        assert score[f"{NODE_ID[side]}+partner"] <= 0.9 * best_alone, score


def test_the_own_estimate_is_never_overwritten_and_partner_tracks_carry_provenance(pair_run):
    sites, logs, _, runs = pair_run
    alone = Outputs()
    replay_file(load_site(sites.b), logs["b"], keep=alone, progress=False)
    assert [s.to_dict() for s in alone.snapshots] == [_without_federation(s) for s in runs["b"].snapshots]
    partner_only = [p for s in runs["b"].snapshots for p in s.get("partner_tracks", ())]
    assert partner_only and all(p["source"] == "partner" and p["origin"] == "edge-a"
                                and p["label"]["originator"] == "edge-a" for p in partner_only)
    fused = [tr for s in runs["b"].snapshots for tr in s["tracks"] if "fused" in tr]
    assert fused and all(tr["partner_tracks"] for tr in fused)
    assert any(abs(tr["fused"]["east_m"] - tr["east_m"]) > 0.01 for tr in fused)  # fused is not a copy of ours


def _inputs(logs, runs, side):
    """Node ``side``'s whole input in receive order: its sensors and the partner messages it took."""
    own = ((r.t_rx, 0, n, r.topic, r.payload) for n, r in enumerate(read_log(logs[side])))
    partner = ((t, 1, n, topic, msgspec.json.encode(m)) for n, (t, topic, m) in enumerate(runs[side].received)
               if topic.endswith("/tracks"))
    return [(t, topic, payload) for t, _, _, topic, payload in heapq.merge(own, partner)]


def _feed(pipeline, inputs, out: Outputs) -> None:
    for t_rx, topic, payload in inputs:
        out.extend(pipeline.feed(t_rx, topic, payload))


def test_a_restart_from_the_checkpoint_keeps_the_partners_links(pair_run):
    sites, logs, _, runs = pair_run
    site = load_site(sites.b)
    inputs = _inputs(logs, runs, "b")
    straight = Outputs()
    _feed(Pipeline(site), inputs, straight)
    half = len(inputs) // 2
    first, second = Pipeline(site), Outputs()
    _feed(first, inputs[:half], second)
    arrays, meta = decode(encode(*first.export_state()))
    assert "federation" in meta and meta["federation"]["origins"]
    restarted = Pipeline(site)
    restarted.import_state(arrays, meta)
    _feed(restarted, inputs[half:], second)
    assert [a.alert_id for a in second.alerts] == [a.alert_id for a in straight.alerts]
    assert [s.to_json() for s in second.snapshots] == [s.to_json() for s in straight.snapshots]
    assert any(b"partner_tracks" in s.to_json() for s in second.snapshots[len(second.snapshots) // 2:])


def test_replay_of_a_log_holding_the_partners_messages_gives_the_two_node_result(pair_run, tmp_path):
    """``borderfusion record`` keeps what arrives on PREFIX/partner/+/tracks with the raw input, so a plain
    ``replay`` of the node's log re-derives what it did with its partner's tracks."""
    from fusion.logio import LogWriter

    sites, logs, _, runs = pair_run
    log = tmp_path / "b-with-partner.jsonl.gz"
    with LogWriter(log, "federation-b") as writer:
        for t_rx, topic, payload in _inputs(logs, runs, "b"):
            writer.write(t_rx, topic, payload)
    kept = Outputs()
    replay_file(load_site(sites.b), log, keep=kept, progress=False)
    assert [s.to_dict() for s in kept.snapshots] == runs["b"].snapshots
    assert [a.to_dict() for a in kept.alerts] == runs["b"].alerts
    assert any("partner_tracks" in s for s in runs["b"].snapshots)


def test_replay_federation_on_the_command_line_gives_the_two_node_result(pair_run, tmp_path, capsys):
    from fusion.cli import main

    sites, logs, _, runs = pair_run
    tracks = tmp_path / "tracks.jsonl"
    assert main(["replay", str(logs["b"]), "--config", str(sites.b), "--federation", str(sites.a), str(logs["a"]),
                 "--tracks-out", str(tracks)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [json.loads(line) for line in tracks.read_text().splitlines()] == runs["b"].snapshots
    assert summary["node_id"] == "edge-b" and summary["incoming_alerts"] == len(runs["b"].incoming) > 0
    (crosser,) = [r for r in paircheck.identities(runs, pair_run[2]) if r["receiver"] == "edge-b"]
    assert {"track_id": crosser["receiver_track"], "origin": "edge-a", "partner_track": crosser["pseudonym"],
            "snapshots": crosser["linked_snapshots"]} in summary["links"]


@pytest.mark.broker
def test_record_keeps_the_partners_tracks_with_the_raw_input(broker, tmp_path):
    import paho.mqtt.client as mqtt

    from fusion.mqtt import record

    sites = write_sites(tmp_path / "sites", GEOJSON, {"a": broker.port, "b": broker.port})
    out = tmp_path / "rec.jsonl.gz"

    def send() -> None:
        sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sender", protocol=mqtt.MQTTv5)
        sender.connect("127.0.0.1", broker.port)
        sender.loop_start()
        try:
            for topic in (f"{PREFIX}/partner/edge-a/tracks", f"{PREFIX}/raw/radar/radar-n1", f"{PREFIX}/tracks"):
                sender.publish(topic, b'{"x": 1}', qos=1).wait_for_publish(5)
        finally:
            sender.disconnect()
            sender.loop_stop()

    record(load_site(sites.b), out, 4.0, lambda topic: threading.Thread(target=send).start())
    assert [r.topic for r in read_log(out)] == [f"{PREFIX}/partner/edge-a/tracks", f"{PREFIX}/raw/radar/radar-n1"]


def test_a_bad_partner_message_is_a_rejection_and_the_node_goes_on(pair_run):
    sites, logs, _, runs = pair_run
    pipeline = Pipeline(load_site(sites.b))
    t0 = next(iter(read_log(logs["b"]))).t_rx
    out = pipeline.feed(t0, f"{PREFIX}/partner/edge-a/tracks", b'{"origin": "edge-a", "t": "soon"}')
    (rejection,) = out.rejected
    assert rejection.topic == f"{PREFIX}/partner/edge-a/tracks" and rejection.reason.startswith("t: expected `float`")
    assert pipeline.counters["rejected"] == 1
    out = pipeline.feed(t0, f"{PREFIX}/partner/edge-a/alerts", b"{}")  # not a partner-tracks topic: a raw one
    assert out.rejected and pipeline.counters["rejected"] == 2


def test_fusion_settings_are_checked_at_load(tmp_path):
    sites = write_sites(tmp_path, GEOJSON)
    text = sites.b.read_text()
    own = 'own_jurisdictions = ["country-b"]'
    for old, new, field in ((own, 'own_jurisdictions = ["country-c"]', "federation.fusion.own_jurisdictions[0]"),
                            (own, "confirm_scans = 0", "federation.fusion.confirm_scans"),
                            (own, "colour = 1", "federation.fusion")):
        sites.b.write_text(text.replace(old, new))
        with pytest.raises(ConfigError) as error:
            load_site(sites.b)
        assert str(error.value).startswith(str(sites.b)) and field in str(error.value), str(error.value)


# -- live: two `borderfusion run` nodes, two bridged brokers --------------------------------
SPEED = 4.0
OBSERVER = ("observer", "observer-secret")
FEEDER = ("feeder", "feeder-secret")


def _brokers(directory):
    """The egress helper's bridged pair (A → B), plus B's mirror bridge (B → A) from mosquitto-b.conf, and
    two more accounts on each broker: a feeder that writes raw input, an observer that reads everything."""
    from tests.broker import write_passwords
    from tests.test_federation_bridge import EXAMPLES, PASSWORDS, BridgedPair, bridge_stanza

    pair = BridgedPair(directory)
    for side, broker in (("a", pair.a), ("b", pair.b)):
        acl = broker.directory / f"acl-{side}.acl"
        acl.write_text(acl.read_text() + f"\nuser {FEEDER[0]}\ntopic write {PREFIX}/raw/#\n"
                                          f"\nuser {OBSERVER[0]}\ntopic read {PREFIX}/#\n")
        partner = "edge-b" if side == "a" else "edge-a"
        write_passwords(broker.directory / "passwd", {"pipeline": PASSWORDS["pipeline"], partner: PASSWORDS[partner],
                                                      FEEDER[0]: FEEDER[1], OBSERVER[0]: OBSERVER[1]})
    pair.b.extra += bridge_stanza((EXAMPLES / "mosquitto-b.conf").read_text(), f"127.0.0.1:{pair.a.port}",
                                  PASSWORDS["edge-b"])
    for broker in (pair.a, pair.b):
        broker.stop()
        broker.start()
    return pair, PASSWORDS["pipeline"]


def _live_sites(directory, pair, password: str, keys: dict[str, bytes]):
    """The pair's sites on the two brokers with the node's account, and a feeder's copy of each."""
    extra = 'username = "pipeline"\npassword_file = "pipeline.pw"\n'
    sites = write_sites(directory, GEOJSON, {"a": pair.a.port, "b": pair.b.port}, {s: extra for s in SIDES}, keys)
    feeders = {}
    for side in SIDES:
        folder = sites.of(side).parent
        for name, secret in (("pipeline.pw", password), ("feeder.pw", FEEDER[1])):
            (folder / name).write_text(secret)
            (folder / name).chmod(0o600)
        feeders[side] = folder / "feeder.toml"
        feeders[side].write_text(sites.of(side).read_text().replace(extra, f'username = "{FEEDER[0]}"\n'
                                                                           'password_file = "feeder.pw"\n'))
    return sites, feeders


@pytest.mark.broker
def test_two_live_nodes_over_bridged_brokers_link_cue_release_within_the_agreement_and_lose_nothing(
        tmp_path, pair_run):
    from fusion.federation.demo import Observer, side_run
    from fusion.mqtt import publish_log
    from tests.broker import running_node, stop_node
    from tests.test_federation_bridge import wait_for

    offline_sites, logs, truth, offline = pair_run
    keys = {side: (offline_sites.of(side).parent / "keys" / f"{NODE_ID['b' if side == 'a' else 'a']}.key").read_bytes()
            for side in SIDES}
    pair, password = _brokers(tmp_path / "brokers")
    sites, feeders = _live_sites(tmp_path / "sites", pair, password, keys)
    site = {side: load_site(sites.of(side)) for side in SIDES}
    ports = {"a": pair.a.port, "b": pair.b.port}
    observers = {side: Observer(ports[side], (f"{PREFIX}/#",), f"observer-{side}", OBSERVER) for side in SIDES}
    try:
        with running_node(sites.a) as node_a, running_node(sites.b) as node_b:
            for side, node in (("a", node_a), ("b", node_b)):
                status = f"{PREFIX}/status/{NODE_ID[side]}"
                assert wait_for(lambda: any(m.get("state") == "online" for _, _, m in observers[side].of(status))
                             or node.poll() is not None, 90), f"{NODE_ID[side]} not online"
                assert node.poll() is None, node.communicate()
            feeding = [threading.Thread(target=publish_log, args=(load_site(feeders[side]), logs[side], SPEED))
                       for side in SIDES]
            for thread in feeding:
                thread.start()
            time.sleep(0.4 * DURATION_S / SPEED)  # mid-run: B's broker (and the bridges' far end) goes away
            pair.b.stop()
            time.sleep(3.0)
            pair.b.start()
            back_at = time.time()
            for thread in feeding:
                thread.join(120)
            time.sleep(3.0)  # the last snapshots and releases cross
            for node in (node_a, node_b):
                code, err = stop_node(node)
                assert code == 0, err[-3000:]
        time.sleep(1.0)
        runs = {side: side_run(site[side], observers[side]) for side in SIDES}
    finally:
        for observer in observers.values():
            observer.close()
        pair.stop()

    # one linked identity per crossing vehicle, the same as the offline two-node replay
    live_ids, offline_ids = paircheck.identities(runs, truth), paircheck.identities(offline, truth)
    for live, off in zip(live_ids, offline_ids):
        assert live["linked"] and live["linked_snapshots"] >= 3, live
        assert (live["sender_track"], live["receiver_track"], live["pseudonym"]) == \
            (off["sender_track"], off["receiver_track"], off["pseudonym"]), (live, off)
    # the partner's incoming alert well before our sensors could see the vehicle (data time) ...
    leads = paircheck.incoming_lead_s(runs, truth)
    assert all(lead is not None and lead >= 20.0 for lead in leads.values()), leads
    # ... and on the wire before our own first track of it
    for row in live_ids:
        receiver = "a" if row["receiver"] == "edge-a" else "b"
        first_own = min(t for t, _, m in observers[receiver].of(f"{PREFIX}/tracks")
                        if any(tr["track_id"] == row["receiver_track"] for tr in m["tracks"]))
        incoming = [t for t, _, m in observers[receiver].of(f"{PREFIX}/alerts/") if m["type"] == "incoming"]
        assert incoming and min(incoming) < first_own
    # every release within the agreement
    violations, checked = paircheck.leaks(runs)
    assert violations == [] and checked > 100, violations[:5]
    # nothing lost across the outage: each node's own alerts are those of the offline replay (their ids
    # depend on its own sensors only), and every alert A released for B arrived on B's broker
    for side in SIDES:
        own = lambda alerts: {a["alert_id"] for a in alerts if a["type"] != "incoming"}  # noqa: E731
        assert own(runs[side].alerts) == own(offline[side].alerts), side
    # after the outage the partner pictures flow again both ways, and the links hold
    for side in SIDES:
        assert any(t > back_at + 2.0 for t, topic, _ in runs[side].received if topic.endswith("/tracks")), side
    sent = [m["alert_id"] for topic, m in runs["a"].released if topic.endswith("/alerts")]
    arrived = {m["alert_id"] for _, topic, m in runs["b"].received if topic.endswith("/alerts")}
    assert sent and set(sent) <= arrived



# -- the demo --------------------------------------------------------------------------------
@pytest.mark.broker
def test_the_federation_demo_runs_end_to_end_and_its_checks_hold(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "fusion.cli", "demo", "--federation", "--out", str(out)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    checks = json.loads((out / "checks.json").read_text())
    assert all(checks["ok"].values()) and checks["leaks"] == 0, checks
    for node in ("edge-a", "edge-b"):
        for name in ("tracks.jsonl", "fused.jsonl", "released.jsonl", "received.jsonl", "alerts.jsonl",
                     "incoming.jsonl", "map.png"):
            assert (out / node / name).stat().st_size > 0, (node, name)
    assert "leaks        0 of" in done.stdout and "[FAILED]" not in done.stdout
    assert not (out / "INCOMPLETE").exists()


def test_the_federation_demo_without_mosquitto_says_what_to_install(monkeypatch, tmp_path):
    from pathlib import Path

    from fusion.federation import demo

    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    monkeypatch.setattr(Path, "exists", lambda self: False if str(self) == "/usr/sbin/mosquitto" else True)
    with pytest.raises(demo.FederationDemoError, match="apt-get install mosquitto"):
        demo.run_federation_demo(tmp_path / "out", GEOJSON)
    monkeypatch.undo()
    assert not (tmp_path / "out").exists()  # nothing written before the check
