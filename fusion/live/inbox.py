"""Raw input acknowledged to the broker only once a checkpoint holds it (at-least-once input).

paho 2.x with ``manual_ack_set(True)`` sends no PUBACK by itself: a QoS 1 message
stays the broker's responsibility until :meth:`AckedInbox.acknowledge` calls
``client.ack``.  The live loop calls it right after a checkpoint, for every message
taken from the queue before that checkpoint (they are all in the checkpointed
state: fed to the pipeline, held in its reorder buffer, or rejected).  After a
crash the broker redelivers the rest to the persistent session, and the restored
pipeline, being deterministic, decides the same alerts with the same ids; a
message redelivered although the checkpoint held it is caught by the ingestor's
duplicate window, which is in the checkpoint too.

Messages the node will never process are acknowledged at the next checkpoint as
well, so they do not sit in the broker's in-flight window: those shed (counted in
``dropped``, and per sensor in ``shed_by_sensor``) and *retained* messages
(``retained``), which a sensor account could otherwise have fed to the node again at
every restart.

Acknowledgements belong to the connection that delivered the message.  Each message
is stamped with the number of the connection it came on (:meth:`AckedInbox.on_connect`
counts them), and only those of the current connection are acknowledged: after a
reconnect the broker sends again whatever it had not seen acknowledged (MQTT v5 §4.4,
session present), and the copy is acknowledged instead (the ingestor rejects it as a
duplicate).  A packet identifier from the old connection may name another message on
the new one: a broker restarted from its last save (Mosquitto after a SIGKILL) hands
out again the identifiers it had given since, and acknowledging by the old number
would discard a message the node has not seen.

Overload.  Shedding is fair per sensor, and happens as a message arrives, before
anything decodes it.  By rate (:mod:`fusion.live.fairshare`): while the sensors
together send more than the node's budget (set by feedback on how long processed
messages waited: beyond ``max_age_s``/4 with a growing backlog, the budget falls),
the lightest sensors keep all their data and the heaviest lose the excess, so a
flooding sensor pays alone; this is what bounds the work admitted, since the costly
part of a scan comes after the reorder window, out of sight of the queue.  By what
waits (the memory bound, and before the budget is set): once the queue is half full
(in messages or bytes), a message from the sensor that already has the most queued
(in bytes, each message counted 512 B more for its fixed cost: one 27 KB flood scan
outweighs a dozen ground-sensor reports) is shed; a full queue sheds whatever
arrives.  (Shedding the sensor with the most queued once the oldest message had
waited ``max_age_s``/2 was tried and dropped: in a short queue behind a slow main
thread that sensor is often a good one.)  And input never waits longer than
``max_age_s`` (``[mqtt] max_input_age_s``): the main thread sheds what has waited
longer instead of processing it, so the time from receipt to alert stays bounded
however long the overload lasts.
"""

from __future__ import annotations

import collections
import queue
import time

from fusion.live.fairshare import MESSAGE_BYTES, FairShare
from fusion.mqtt import _Inbox

__all__ = ["AckedInbox", "send_acks"]



class AckedInbox(_Inbox):
    """:class:`fusion.mqtt._Inbox` that remembers each message's (mid, qos) until it may be acknowledged.

    Threads: ``on_message`` (paho's thread, the only producer) sets ``_incoming`` and
    puts; ``_put``/``_get`` run under the queue's mutex, so ``_queued`` stays in step
    with the queue; ``taken`` is the main thread's; ``_unused`` is a deque (its
    appends and pops are atomic) handed from the network thread to the main thread.
    """

    #: (mid, qos, connection number) of a message to acknowledge
    Ack = tuple[int, int, int]

    def __init__(self, maxsize: int, max_bytes: int, max_age_s: float = 0.0) -> None:
        super().__init__(maxsize, max_bytes)
        self.max_age_s = max_age_s  # 0: no bound
        self.shed_by_sensor: collections.Counter[str] = collections.Counter()  # changed under the mutex
        #: payload bytes + MESSAGE_BYTES queued per sensor (changed under the mutex)
        self._queued_by_sensor: collections.Counter[str] = collections.Counter()
        self.aged = 0  # shed for having waited longer than max_age_s (main thread)
        self.retained = 0
        #: admit() under the mutex (network thread); served() by the main thread; waits beyond a quarter
        #: of max_age_s (default 0.5 s) lower the rate admitted under overload
        self.fair = FairShare(target_wait_s=max_age_s / 4 if max_age_s else 0.5)
        self.longest_wait_s = 0.0  # the longest a message waited in the queue, since the status last reset it
        self.connection = 0  # connections so far (paho's thread counts, everyone reads)
        self._incoming: AckedInbox.Ack = (0, 0, 0)
        self._queued: collections.deque[AckedInbox.Ack] = collections.deque()  # of queued items, in order
        self._unused: collections.deque[AckedInbox.Ack] = collections.deque()  # shed or retained: ack, never process
        self.taken: list[AckedInbox.Ack] = []  # taken by the main thread since the last checkpoint

    def on_connect(self) -> None:
        """A (re)connect (paho's thread, before the new connection delivers anything)."""
        self.connection += 1

    def on_message(self, client, userdata, message) -> None:
        ack = (message.mid, message.qos, self.connection)
        if message.retain:  # stored by the broker, not sent now: never input
            self.retained += 1
            self._unused.append(ack)
            return
        sensor = _sensor_of(message.topic)
        with self.mutex:
            unfair = not self.fair.admit(sensor, len(message.payload), time.monotonic()) or (
                self._over_half() and self._queued_by_sensor[sensor] >= max(self._queued_by_sensor.values(), default=0))
        dropped = self.dropped
        if unfair:
            self.dropped += 1
        else:
            self._incoming = ack
            super().on_message(client, userdata, message)
        if self.dropped != dropped:
            with self.mutex:
                self.shed_by_sensor[sensor] += 1
            self._unused.append(ack)

    def _over_half(self) -> bool:
        return 2 * self._qsize() >= self.maxsize or 2 * self.queued_bytes >= self.max_bytes

    def served(self, seconds: float, payload_bytes: int, waited_s: float) -> None:
        """The main thread spent ``seconds`` on a message of ``payload_bytes`` that waited ``waited_s``."""
        self.fair.served(time.monotonic(), seconds, payload_bytes, waited_s)

    def _put(self, item) -> None:
        self._queued.append(self._incoming)
        self._queued_by_sensor[_sensor_of(item[1])] += len(item[2]) + MESSAGE_BYTES
        super()._put(item)

    def _get(self):
        item = super()._get()
        self.taken.append(self._queued.popleft())
        sensor = _sensor_of(item[1])
        self._queued_by_sensor[sensor] -= len(item[2]) + MESSAGE_BYTES
        if not self._queued_by_sensor[sensor]:
            del self._queued_by_sensor[sensor]
        return item

    def get(self, block: bool = True, timeout: float | None = None):
        """The next message that has waited at most ``max_age_s``; older ones are shed on the way.

        Only when blocking (the live loop): the drain at shutdown (``get_nowait``) takes everything.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            item = super().get(block, None if deadline is None else max(0.0, deadline - time.monotonic()))
            waited_s = time.time() - item[0]
            self.longest_wait_s = max(self.longest_wait_s, waited_s)
            if not block or not self.max_age_s or waited_s <= self.max_age_s:
                return item
            self.aged += 1
            with self.mutex:
                self.shed_by_sensor[_sensor_of(item[1])] += 1
            if deadline is not None and time.monotonic() >= deadline:
                raise queue.Empty

    def shed_counts(self) -> dict[str, int]:
        """Messages shed per sensor (the last topic level), for the status."""
        with self.mutex:
            return dict(sorted(self.shed_by_sensor.items()))

    @property
    def unacknowledged(self) -> int:
        """Messages taken or discarded, waiting for the next checkpoint's acknowledgement."""
        return len(self.taken) + len(self._unused)

    def take_acks(self) -> list[Ack]:
        """(mid, qos, connection) of everything taken or discarded so far, forgotten here (main thread)."""
        acks, self.taken = self.taken, []
        while self._unused:
            acks.append(self._unused.popleft())
        return acks

    def acknowledge(self, client) -> int:
        """PUBACK everything taken (now checkpointed) or discarded so far on this connection; how many."""
        return send_acks(client, self.take_acks(), self.connection)


def send_acks(client, acks: list[AckedInbox.Ack], connection: int) -> int:
    """PUBACK each QoS 1 message of ``acks`` that came on ``connection`` (the current one); how many.

    paho's ``ack`` may be called from any thread.  Those of earlier connections are left
    for the broker to send again (see the module's docstring).
    """
    sent = 0
    for mid, qos, came_on in acks:
        if came_on == connection:
            sent += 1
            if qos > 0:
                client.ack(mid, qos)
    return sent


def _sensor_of(topic: str) -> str:
    """``…/raw/<kind>/<sensor_id>`` → the sensor id (any topic: its last level)."""
    return topic.rpartition("/")[2]
