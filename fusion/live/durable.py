"""The live node's checkpoint rhythm: restore at start, checkpoint then acknowledge while running.

Order matters: a raw message is acknowledged to the broker only after a checkpoint
that includes its effect is on disk (:mod:`fusion.live.checkpoint`, written
atomically).  A crash between the two only makes the broker redeliver what the
checkpoint already holds, which the restored duplicate window rejects.  Nothing is
written while no message was taken since the last checkpoint: releases by the
receive clock alone are re-derived after a restart, in the same order.
"""

from __future__ import annotations

import logging
import time

from fusion.config import Site
from fusion.live.checkpoint import checkpoint_file, load, save
from fusion.live.inbox import AckedInbox

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
        self.written = 0  # checkpoints written by this process
        self.failed = 0
        self.last_duration_s = 0.0
        self._due = time.monotonic() + self.interval_s

    def restore(self) -> bool:
        """Take over the last checkpoint (ConfigError if it does not fit); True if there was one."""
        started = time.monotonic()
        restored = load(self.site, self.pipeline, now_rx=time.time())
        if restored:
            log.info("resumed from %s in %.2f s: %d tracks, %d scans held, next track id %d",
                     checkpoint_file(self.site), time.monotonic() - started, self.pipeline.tracker.table.count,
                     len(self.pipeline.buffer), self.pipeline.tracker._next_id)
        return restored

    def maybe_checkpoint(self, client, force: bool = False) -> None:
        """When due (or ``force``): write the state if input was taken since the last one, then acknowledge.

        A failed write (disk full, permissions) is logged and acknowledges nothing: the
        broker keeps the input, and the next attempt comes one interval later.
        """
        waiting = self.inbox.unacknowledged
        if not force and (not waiting or (time.monotonic() < self._due and waiting < self.max_unacknowledged)):
            return
        self._due = time.monotonic() + self.interval_s
        if self.inbox.taken or force:
            started = time.monotonic()
            try:
                save(self.site, self.pipeline)
            except OSError as error:
                self.failed += 1
                log.error("checkpoint to %s failed (%s); %d input messages stay unacknowledged",
                          checkpoint_file(self.site), error, self.inbox.unacknowledged)
                return
            self.written += 1
            self.last_duration_s = time.monotonic() - started
        self.inbox.acknowledge(client)
