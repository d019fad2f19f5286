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
well, so they do not sit in the broker's in-flight window: those shed because the
queue was full (counted in ``dropped``) and *retained* messages (``retained``),
which a sensor account could otherwise have fed to the node again at every restart.
"""

from __future__ import annotations

import collections

from fusion.mqtt import _Inbox

__all__ = ["AckedInbox"]


class AckedInbox(_Inbox):
    """:class:`fusion.mqtt._Inbox` that remembers each message's (mid, qos) until it may be acknowledged.

    Threads: ``on_message`` (paho's thread, the only producer) sets ``_incoming`` and
    puts; ``_put``/``_get`` run under the queue's mutex, so ``_queued`` stays in step
    with the queue; ``taken`` is the main thread's; ``_unused`` is a deque (its
    appends and pops are atomic) handed from the network thread to the main thread.
    """

    def __init__(self, maxsize: int, max_bytes: int) -> None:
        super().__init__(maxsize, max_bytes)
        self.retained = 0
        self._incoming: tuple[int, int] = (0, 0)
        self._queued: collections.deque[tuple[int, int]] = collections.deque()  # (mid, qos) of queued items, in order
        self._unused: collections.deque[tuple[int, int]] = collections.deque()  # shed or retained: ack, never process
        self.taken: list[tuple[int, int]] = []  # taken by the main thread since the last checkpoint

    def on_message(self, client, userdata, message) -> None:
        ack = (message.mid, message.qos)
        if message.retain:  # stored by the broker, not sent now: never input
            self.retained += 1
            self._unused.append(ack)
            return
        dropped = self.dropped
        self._incoming = ack
        super().on_message(client, userdata, message)
        if self.dropped != dropped:
            self._unused.append(ack)

    def _put(self, item) -> None:
        self._queued.append(self._incoming)
        super()._put(item)

    def _get(self):
        item = super()._get()
        self.taken.append(self._queued.popleft())
        return item

    @property
    def unacknowledged(self) -> int:
        """Messages taken or discarded, waiting for the next checkpoint's acknowledgement."""
        return len(self.taken) + len(self._unused)

    def acknowledge(self, client) -> int:
        """PUBACK everything taken (now checkpointed) or discarded so far; returns how many."""
        acks, self.taken = self.taken, []
        while self._unused:
            acks.append(self._unused.popleft())
        for mid, qos in acks:
            if qos > 0:
                client.ack(mid, qos)
        return len(acks)
