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
import numpy as np
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


def test_a_bad_partner_message_is_a_rejection_and_the_node_goes_on(pair_run):
    sites, logs, _, runs = pair_run
    pipeline = Pipeline(load_site(sites.b))
    t0 = next(iter(read_log(logs["b"]))).t_rx
    out = pipeline.feed(t0, f"{PREFIX}/partner/edge-a/tracks", b'{"origin": "edge-a", "t": "soon"}')
    (rejection,) = out.rejected
    assert rejection.topic == f"{PREFIX}/partner/edge-a/tracks" and "t" in rejection.reason
    assert pipeline.counters["rejected"] == 1
    out = pipeline.feed(t0, f"{PREFIX}/partner/edge-a/alerts", b"{}")  # not a partner-tracks topic: a raw one
    assert out.rejected and pipeline.counters["rejected"] == 2


def test_fusion_settings_are_checked_at_load(tmp_path):
    sites = write_sites(tmp_path, GEOJSON)
    text = sites.b.read_text()
    for old, new, field in (('own_jurisdictions = ["country-b"]', 'own_jurisdictions = ["country-c"]',
                             "federation.fusion.own_jurisdictions[0]"),
                            ('own_jurisdictions = ["country-b"]', 'confirm_scans = 0', "federation.fusion.confirm_scans"),
                            ('own_jurisdictions = ["country-b"]', 'colour = 1', "federation.fusion")):
        sites.b.write_text(text.replace(old, new))
        with pytest.raises(ConfigError) as error:
            load_site(sites.b)
        assert str(sites.b.name) in str(error.value) and field in str(error.value), str(error.value)
