"""Released alerts survive a crash of the node (issue 16): they go through the node's outbox.

Real parts: ``borderfusion run`` with an agreement, on a real Mosquitto, reached through a TCP
relay (:class:`tests.broker.Link`) whose node → broker direction is stalled, so that every
alert the node decides and releases stays unacknowledged; the node checkpoints the input
that decided them, is killed (SIGKILL) and restarted on a good link.  The partner side (a
persistent session on ``PREFIX/release/edge-b/alerts``, as the bridge holds) must then
receive every alert id the agreement releases for that log, at least once.
"""

from __future__ import annotations

import re
import signal
import time

import pytest

from fusion.config import load_site
from fusion.federation.gateway import compile_policies, release_alert
from fusion.live.checkpoint import checkpoint_file
from fusion.mqtt import publish_log
from tests.broker import (PREFIX, Broker, Collector, Link, persistent_collector, start_node, stop_node, wait_online,
                          write_site)
from tests.test_federation_gateway import AGREEMENT, make_site

pytestmark = pytest.mark.broker

#: every class, both alert types of the demo log, the whole area: each alert the node decides is released
PERMISSIVE = (AGREEMENT
              .replace('classes = ["person", "unknown"]', 'classes = ["person", "vehicle", "animal", "unknown"]')
              .replace('alert_types = ["border_crossing"]', 'alert_types = ["border_crossing", "approach"]')
              .replace("max_border_distance_m = 1500.0", "max_border_distance_m = 20000.0"))


def _point_at(path, port: int, outbox) -> None:
    """The site's ``[mqtt] port`` set to ``port`` (its outbox kept in ``outbox``)."""
    text = re.sub(r"(?m)^port = \d+\n(outbox = .*\n)?", f'port = {port}\noutbox = "{outbox}"\n', path.read_text(), 1)
    path.write_text(text)


def _settled(path, quiet_s: float, timeout_s: float) -> bool:
    """The checkpoint file exists and has not changed for ``quiet_s`` (no input taken since it was written)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and time.time() - path.stat().st_mtime > quiet_s:
            return True
        time.sleep(0.1)
    return False


def test_released_alerts_decided_before_a_sigkill_reach_the_partner_after_the_restart(tmp_path, short_log):
    log, expected = short_log
    # no bound on unacknowledged deliveries: with the node's PUBACKs stalled the broker must still feed it
    broker = Broker(tmp_path / "broker", max_inflight=0)
    (tmp_path / "broker").mkdir()
    broker.start()
    link = Link(broker.port)
    path = make_site(tmp_path / "site", PERMISSIVE)
    _point_at(path, link.port, tmp_path / "outbox")
    site = load_site(path)
    (policy,) = compile_policies(site)
    want = {m["alert_id"] for a in expected.alerts if (m := release_alert(a.to_dict(), policy)) is not None}
    assert len(want) >= 3, "the log should make the node release a few alerts"
    feeder = load_site(write_site(tmp_path / "feeder", broker.port, outbox=tmp_path / "unused"))
    partner = persistent_collector(broker.port, [f"{PREFIX}/release/edge-b/alerts"], "bridge-to-edge-b")
    ops = Collector(broker.port, [f"{PREFIX}/status/+"], "ops-crash")
    node = start_node(path)
    try:
        wait_online(ops, node)
        link.stall_upstream()  # from now on nothing the node sends reaches the broker
        publish_log(feeder, log)
        assert _settled(checkpoint_file(site), 2.5, 60), "the node did not checkpoint its input"
        assert node.poll() is None, node.communicate()[1][-3000:]
        assert partner.of(f"{PREFIX}/release/edge-b/alerts") == []  # decided, released, not delivered
        node.send_signal(signal.SIGKILL)
        node.communicate()
        _point_at(path, broker.port, tmp_path / "outbox")
        node = start_node(path)
        got = lambda: {m["alert_id"] for m in partner.of(f"{PREFIX}/release/edge-b/alerts")}  # noqa: E731
        partner.wait_for(lambda: want <= got() or node.poll() is not None, 60)
        code, err = stop_node(node)
        assert code == 0, err[-3000:]
    finally:
        if node.poll() is None:
            node.kill()
            node.communicate()
        for c in (partner, ops):
            c.close()
        link.close()
        broker.stop()
    assert want <= got(), f"released alert ids lost in the crash: {sorted(want - got())}"
