"""What the broker acknowledged shortly before it was lost is sent again (Mosquitto saves only every
``autosave_interval`` s): the node's outbox keeps acknowledged alerts, a publisher its recent messages."""

from __future__ import annotations

import time

import pytest

from fusion.live.resend import RecentlySent
from fusion.mqtt import Outbox


def test_the_outbox_keeps_acknowledged_alerts_for_the_window_then_forgets_them(tmp_path):
    outbox = Outbox(tmp_path / "edge-1.sqlite", keep_acked_s=5.0)
    rows = outbox.add([("t/a", b"1"), ("t/b", b"2")])
    outbox.done(rows[:1], now=100.0)
    assert len(outbox) == 1  # one not yet acknowledged
    assert [row for row, _, _ in outbox.pending()] == rows  # both sent again after a reconnect
    outbox.forget(now=104.0)
    assert [row for row, _, _ in outbox.pending()] == rows
    outbox.forget(now=105.5)
    assert [row for row, _, _ in outbox.pending()] == rows[1:]
    outbox.close()
    reopened = Outbox(tmp_path / "edge-1.sqlite", keep_acked_s=5.0)  # and across a restart of the node
    assert [row for row, _, _ in reopened.pending()] == rows[1:]
    reopened.close()


def test_without_a_window_an_acknowledged_alert_is_deleted_at_once(tmp_path):
    outbox = Outbox(tmp_path / "edge-1.sqlite")
    rows = outbox.add([("t/a", b"1")])
    outbox.done(rows, now=100.0)
    assert outbox.pending() == [] and len(outbox) == 0
    outbox.close()


class _Link:
    """Stands for paho's client: only whether it is connected."""

    def __init__(self) -> None:
        self.up = True

    def is_connected(self) -> bool:
        return self.up


def test_a_publisher_sends_again_what_it_sent_within_the_window_before_the_connection_was_lost():
    link, recent = _Link(), RecentlySent(window_s=0.3)
    recent.on_connect()
    assert recent.to_resend(link) == []  # the first connection: nothing to send again
    recent.sent("t", b"old", connected=True)
    time.sleep(0.35)
    recent.sent("t", b"a", connected=True)  # trims b"old", which the broker has saved by now
    recent.sent("t", b"b", connected=True)
    link.up = False
    time.sleep(0.35)  # down longer than the window: what was sent just before the loss is still kept
    link.up = True
    recent.on_connect()
    assert recent.to_resend(link) == [("t", b"a"), ("t", b"b")]
    assert recent.to_resend(link) == []  # once per reconnect


def test_a_publisher_waits_for_the_reconnect_and_says_so_when_it_does_not_come():
    link, recent = _Link(), RecentlySent(window_s=1.0)
    recent.on_connect()
    link.up = False
    started = time.monotonic()
    with pytest.raises(OSError, match="broker has been unreachable"):
        recent.to_resend(link, timeout_s=0.2)
    assert time.monotonic() - started >= 0.2
