"""Fault injection with real parts: the node and the broker are SIGKILLed at seeded random moments.

An alert-heavy simulated log is published live (5 × real time) to a real Mosquitto;
``borderfusion run`` runs as a subprocess and is killed with SIGKILL five times, and
the broker is killed with SIGKILL once while the node runs (no final save: it restarts
on the same port from its last autosave, every ``autosave_interval 1`` s, as
configs/mosquitto/mosquitto.conf advises), all while input flows.  What the broker
acknowledged and then forgot is sent again by the publisher and by the node's outbox
(``[mqtt] resend_window_s``, default 5 s).  Durable consumers (one persistent session
per agency) must receive exactly the ``alert_id``\\ s that an uninterrupted ``replay``
of the same log decides, each at least once, and nothing else.
"""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from fusion.config import load_site
from fusion.mqtt import publish_log
from fusion.pipeline import Outputs
from fusion.replay import replay_file
from fusion.simulate import simulate
from tests.broker import PREFIX, Broker, Collector, agency_watchers, alert_ids, start_node, stop_node, write_site

pytestmark = pytest.mark.broker

SPEED = 5.0
KILLS = 5
BROKER_KILL_BEFORE = 2  # the broker is killed just before the third node kill
BROKER_CONF = "autosave_interval 1\n"
# a window longer than the broker's restart (≈ 1–2 s until every client is back), so that the
# outage does not release held scans by the receive clock before late ones arrive (a gap replay
# would not see); the kills are what is tested here, not the window
SITE_EXTRA = "[ingest]\nreorder_window_s = 10.0\n"


def _online_count(ops: Collector) -> int:
    return sum(1 for s in ops.of(f"{PREFIX}/status/edge-1") if s.get("state") == "online")


def _start_and_time(site_path, ops: Collector) -> tuple[object, float]:
    """Start the node; (process, seconds from exec to its 'online' status — connected, state restored)."""
    before = _online_count(ops)
    started = time.monotonic()
    node = start_node(site_path)
    assert ops.wait_for(lambda: _online_count(ops) > before or node.poll() is not None, 60), "never online"
    assert node.poll() is None, node.communicate()[1][-3000:]
    return node, time.monotonic() - started


def _with_ingest(site_path, extra: str):
    text = site_path.read_text()
    site_path.write_text(text.replace("[ingest]\n", extra) if "[ingest]\n" in text else text + "\n" + extra)
    return site_path


def test_node_and_broker_sigkills_deliver_exactly_the_alert_ids_of_replay(tmp_path, demo_site, request):
    log = tmp_path / "heavy.jsonl.gz"
    simulate(demo_site, 150.0, log, None, seed=11, n_targets=80)
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", extra=BROKER_CONF).start()
    request.addfinalizer(broker.stop)
    site_path = _with_ingest(write_site(tmp_path / "node", broker.port, outbox=tmp_path / "outbox"), SITE_EXTRA)
    site = load_site(site_path)
    expected = Outputs()
    replay_file(site, log, keep=expected, progress=False)
    assert len(expected.alerts) >= 30, "the scenario should be alert-heavy"
    want = {a: {x.alert_id for x in expected.alerts if a in x.recipients}
            for a in {a for x in expected.alerts for a in x.recipients}}
    watchers = agency_watchers(broker.port, expected.alerts, "kills")
    ops = Collector(broker.port, [f"{PREFIX}/status/+"], "ops-kills")
    ops.client.reconnect_delay_set(0.2, 1)
    feeder = load_site(write_site(tmp_path / "feeder", broker.port, outbox=tmp_path / "unused"))
    rng = random.Random(12)
    restart_s: list[float] = []
    node, _ = _start_and_time(site_path, ops)  # cold: numba caches may compile
    try:
        publisher = threading.Thread(target=publish_log, args=(feeder, log, SPEED), daemon=True)
        publisher.start()
        for k in range(KILLS):
            time.sleep(rng.uniform(0.5, 3.0))
            assert publisher.is_alive(), "every kill must come while input is flowing"
            if k == BROKER_KILL_BEFORE:  # the broker, once, while the node runs: what it acknowledged since its save is gone
                broker.kill()
                time.sleep(rng.uniform(0.2, 1.0))
                broker.start()
                time.sleep(rng.uniform(1.0, 3.0))
            node.send_signal(signal.SIGKILL)
            node.communicate()
            node, seconds = _start_and_time(site_path, ops)
            restart_s.append(seconds)
        publisher.join(120)
        assert not publisher.is_alive(), "the publisher did not finish"
        for a, w in watchers.items():
            w.wait_for(lambda: alert_ids({a: w})[a] >= want[a], 45)
        code, err = stop_node(node)
        assert code == 0, err[-3000:]
    finally:
        if node.poll() is None:
            node.kill()
            node.communicate()
    got = alert_ids(watchers)
    missing = {a: want[a] - got[a] for a in want if want[a] - got[a]}
    unexpected = {a: got[a] - want[a] for a in want if got[a] - want[a]}
    print(f"\nalerts {len(expected.alerts)}, node kills {KILLS}, broker kills 1, "
          f"missing ids per agency {dict((a, len(m)) for a, m in missing.items())}, "
          f"unexpected ids per agency {dict((a, len(u)) for a, u in unexpected.items())}, "
          f"restart-to-online s {[round(s, 2) for s in restart_s]}")
    for w in (*watchers.values(), ops):
        w.close()
    assert not missing, f"missing alert ids: {missing}"
    assert not unexpected, f"alert ids replay does not decide: {unexpected}"
