"""The live node's input queue: fair shedding per sensor, a bound on input age, retained input ignored,
acknowledgement only when asked (after a checkpoint).  Pure: messages are paho ``MQTTMessage`` objects."""

from __future__ import annotations

import queue
import time

import paho.mqtt.client as mqtt
import pytest

from fusion.live.inbox import AckedInbox

PREFIX = "borderfusion/v1/raw/radar/"


def _message(sensor: str, mid: int, payload: bytes = b"{}", retain: bool = False) -> mqtt.MQTTMessage:
    m = mqtt.MQTTMessage(mid, (PREFIX + sensor).encode())
    m.payload, m.qos, m.retain = payload, 1, retain
    return m


class _Acks:
    def __init__(self) -> None:
        self.acked: list[tuple[int, int]] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append((mid, qos))


def _drain(inbox: AckedInbox) -> list[tuple]:
    out = []
    while not inbox.empty():
        out.append(inbox.get_nowait())
    return out


def test_a_flooding_sensor_loses_its_own_messages_first():
    inbox = AckedInbox(maxsize=20, max_bytes=1 << 20)
    for k in range(100):
        inbox.on_message(None, None, _message("flood", k))
    for k in range(5):
        inbox.on_message(None, None, _message("good", 1000 + k))
    got = _drain(inbox)
    assert sum(1 for _, topic, _ in got if topic.endswith("/good")) == 5
    assert inbox.shed_counts() == {"flood": 90}
    assert inbox.dropped == 90


def test_fair_shedding_also_holds_for_bytes():
    inbox = AckedInbox(maxsize=10_000, max_bytes=1 << 20)
    for k in range(100):
        inbox.on_message(None, None, _message("flood", k, b"x" * 30_000))  # 3 MB offered, 1 MB fits
    inbox.on_message(None, None, _message("good", 1000, b"x" * 30_000))
    assert any(topic.endswith("/good") for _, topic, _ in _drain(inbox))
    assert inbox.shed_counts()["flood"] > 80 and "good" not in inbox.shed_counts()


def test_input_older_than_the_age_bound_is_shed_not_processed():
    inbox = AckedInbox(maxsize=100, max_bytes=1 << 20, max_age_s=0.2)
    inbox.on_message(None, None, _message("a", 1))
    inbox.on_message(None, None, _message("b", 2))
    time.sleep(0.3)
    inbox.on_message(None, None, _message("c", 3))
    t_rx, topic, _ = inbox.get(timeout=1)
    assert topic.endswith("/c") and time.time() - t_rx < 0.2
    assert inbox.aged == 2 and inbox.shed_counts() == {"a": 1, "b": 1}
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.05)


def test_retained_input_is_ignored_and_everything_is_acknowledged_only_when_asked():
    inbox = AckedInbox(maxsize=3, max_bytes=1 << 20)
    inbox.on_message(None, None, _message("a", 1, retain=True))
    for k in range(2, 7):
        inbox.on_message(None, None, _message("a", k))
    assert inbox.retained == 1
    taken = inbox.get(timeout=1)
    assert taken[1].endswith("/a")
    client = _Acks()
    assert inbox.unacknowledged == 1 + 1 + 3  # taken 1; retained 1; shed 3 (half of 3 is reached at 2)
    assert inbox.acknowledge(client) == 5
    assert sorted(client.acked) == [(1, 1), (2, 1), (4, 1), (5, 1), (6, 1)]
    assert inbox.acknowledge(client) == 0  # nothing twice
    inbox.get(timeout=1)
    assert inbox.acknowledge(client) == 1 and client.acked[-1] == (3, 1)


def test_only_acknowledgements_of_the_current_connection_are_sent():
    """A broker restarted from its last save hands out old packet ids again: an ack by an old id
    would discard another message, so what came on an earlier connection is left to be redelivered."""
    inbox = AckedInbox(maxsize=10, max_bytes=1 << 20)
    inbox.on_connect()
    inbox.on_message(None, None, _message("a", 7))
    inbox.get(timeout=1)  # taken on connection 1, not yet checkpointed
    inbox.on_connect()  # the broker came back
    inbox.on_message(None, None, _message("a", 7))  # the same id now names another message (or the copy)
    inbox.get(timeout=1)
    client = _Acks()
    assert inbox.acknowledge(client) == 1
    assert client.acked == [(7, 1)] and inbox.unacknowledged == 0
