"""A publisher's memory of what the broker may have acknowledged without saving it.

An MQTT QoS 1 PUBACK hands a message to the broker, but Mosquitto (2.0) keeps its
state in memory and writes all of it to ``mosquitto.db`` only every
``autosave_interval`` seconds (time-based; with ``autosave_on_changes`` after that
many changes), at shutdown and on SIGUSR1; the write goes to a new file that is
synced and renamed, so a kill mid-write leaves the previous save.  A broker killed
with SIGKILL (or a power cut) therefore restarts with the sessions, subscriptions
and queued messages of its last completed save and has forgotten every message it
acknowledged after it, although the publisher saw the PUBACK.  Its save loop runs
after each pass over the sockets and compares whole seconds (``last + interval <
now``), so a message acknowledged at time a is on disk once a save that starts
after a has finished: at the latest ``autosave_interval`` + 1 s (the comparison's
rounding) + one pass of the loop + the save's own write and fsync later.

A publisher that must not lose a message across a broker kill therefore keeps
each one ``window_s`` ≥ that bound after sending it, and on every reconnect sends
again, in order and before anything newer, what it sent within ``window_s`` before
the connection was lost.  Copies the broker did keep arrive twice; the receivers
deduplicate (the node's ingestor by the sensor's ``seq``, alert consumers by
``alert_id``).  While the connection is down the memory is not trimmed, and the
sender waits for the reconnect instead of letting paho queue newer messages ahead
of the ones to send again.

What this does not cover: a session (a subscription) the broker never saved.  A
consumer or node that subscribes for the first time and a broker killed before its
next save restart without that subscription; what is published after the restart
and before the client subscribes again has no subscriber and is dropped, PUBACK and
all.  Clients re-subscribe on every connect (the node does), so the gap is their
reconnect delay, and only once per new session.
"""

from __future__ import annotations

import collections
import time

__all__ = ["RecentlySent"]


class RecentlySent:
    """What a publisher sent within ``window_s``, to send again after a reconnect (0: keep nothing).

    ``on_connect`` runs on paho's network thread at every (re)connect and only counts;
    everything else is the publishing thread's.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.connects = 0  # (re)connects so far, counted by paho's thread
        self._seen = 0  # connects the publishing thread has dealt with
        self._sent: collections.deque[tuple[float, str, bytes]] = collections.deque()  # (monotonic s, topic, payload)
        self.resent = 0

    def on_connect(self, client=None) -> None:
        self.connects += 1

    def sent(self, topic: str, payload: bytes, connected: bool) -> None:
        """Remember a message just handed to paho; trim what is older than the window, while ``connected``."""
        if not self.window_s:
            return
        now = time.monotonic()
        self._sent.append((now, topic, payload))
        while connected and self._sent and self._sent[0][0] < now - self.window_s:
            self._sent.popleft()

    def to_resend(self, client, timeout_s: float = 120.0) -> list[tuple[str, bytes]]:
        """Before the next publish: (topic, payload) to send again first, oldest first; [] if none.

        Waits (up to ``timeout_s``, then :class:`OSError`) while ``client`` is disconnected,
        so that newer messages do not overtake the ones that will be sent again.
        """
        if not self.window_s:
            return []
        if not client.is_connected():
            deadline = time.monotonic() + timeout_s
            while not client.is_connected():
                if time.monotonic() > deadline:
                    raise OSError(f"the MQTT broker has been unreachable for {timeout_s:.0f} s")
                time.sleep(0.02)
        if self.connects == self._seen:
            return []
        first = self._seen == 0
        self._seen = self.connects
        if first:
            return []
        again = [(topic, payload) for _, topic, payload in self._sent]
        self.resent += len(again)
        return again
