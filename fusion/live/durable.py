"""The live node's checkpoint rhythm: restore at start, checkpoint then acknowledge while running.

Order matters: a raw message is acknowledged to the broker only after a checkpoint
that includes its effect is on disk (:mod:`fusion.live.checkpoint`, written
atomically).  A crash between the two only makes the broker redeliver what the
checkpoint already holds, which the restored duplicate window rejects.  Nothing is
written while no message was taken since the last checkpoint: releases by the
receive clock alone are re-derived after a restart, in the same order.

The state is encoded in the main thread (a consistent copy, a few ms), and written,
synced and acknowledged by one writer thread, so a slow disk sync never holds up
the loop (and its alerts); while a write is under way no other starts.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

from fusion.config import Site
from fusion.live.checkpoint import checkpoint_file, load, state_bytes, write_atomic
from fusion.live.inbox import AckedInbox, send_acks

__all__ = ["Durable"]

log = logging.getLogger(__name__)


class Durable:
    """Checkpoints of ``pipeline`` every ``[checkpoint] interval_s`` while input arrives (sooner once
    ``max_unacknowledged`` messages wait), and at shutdown.

    The broker delivers at most its ``max_inflight_messages`` unacknowledged messages to a client
    (Mosquitto's default: 20), so the input rate is bounded by that over ``interval_s``: a node's
    broker needs ``max_inflight_messages`` ≥ input rate × ``interval_s`` (0: no bound).
    """

    def __init__(self, site: Site, pipeline, inbox: AckedInbox) -> None:
        self.site = site
        self.pipeline = pipeline
        self.inbox = inbox
        self.interval_s = site.config.checkpoint.interval_s
        self.max_unacknowledged = site.config.checkpoint.max_unacknowledged
        self.path = checkpoint_file(site)
        self.written = 0  # checkpoints written by this process
        self.failed = 0
        self._due = time.monotonic() + self.interval_s
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._writing: tuple[Future, list[AckedInbox.Ack]] | None = None

    def restore(self) -> bool:
        """Take over the last checkpoint (ConfigError if it does not fit); True if there was one."""
        started = time.monotonic()
        restored = load(self.site, self.pipeline, now_rx=time.time())
        if restored:
            log.info("resumed from %s in %.2f s: %d tracks, %d scans held, next track id %d",
                     self.path, time.monotonic() - started, self.pipeline.tracker.table.count,
                     len(self.pipeline.buffer), self.pipeline.tracker._next_id)
        return restored

    def maybe_checkpoint(self, client, force: bool = False) -> None:
        """When due (or ``force``, which also waits for the write): checkpoint if input was taken since
        the last one, and acknowledge once it is on disk."""
        if self._writing is not None:
            if not (force or self._writing[0].done()):
                return
            self._settle()
        waiting = self.inbox.unacknowledged
        if not force and (not waiting or (time.monotonic() < self._due and waiting < self.max_unacknowledged)):
            return
        self._due = time.monotonic() + self.interval_s
        if not (self.inbox.taken or force):
            self.inbox.acknowledge(client)  # only shed or retained input: nothing to write
            return
        data = state_bytes(self.site, self.pipeline)
        acks = self.inbox.take_acks()
        self._writing = (self._writer.submit(self._write_then_ack, client, data, acks), acks)
        if force:
            self._settle()

    def _write_then_ack(self, client, data: bytes, acks: list[AckedInbox.Ack]) -> None:  # writer thread
        write_atomic(self.path, data)
        send_acks(client, acks, self.inbox.connection)

    def _settle(self) -> None:
        """Wait for the write under way; on failure its input goes back to wait for the next one."""
        future, acks = self._writing
        self._writing = None
        try:
            future.result()
        except OSError as error:
            self.failed += 1
            self.inbox.taken[:0] = acks  # acknowledged by the next checkpoint that succeeds
            log.error("checkpoint to %s failed (%s); %d input messages stay unacknowledged",
                      self.path, error, self.inbox.unacknowledged)
        else:
            self.written += 1
