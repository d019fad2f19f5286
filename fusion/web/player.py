"""``replay LOG --web HOST:PORT``: a recorded log paced through the pipeline onto the map.

The page's controls (play, pause, speed, a time slider) come back over the feed as
``(action, value)`` items on a bounded queue that this loop reads between records.
Data time advances as wall time × speed; a record is fed once its receive time
``t_rx`` is reached, and :meth:`~fusion.pipeline.Pipeline.tick` releases held scans
as the live node would.  Seeking forward feeds the records up to the new time at
once (only the newest snapshot is drawn); seeking back restarts the pipeline from
the start of the log (the pipeline is deterministic: the same time shows the same
tracks and alerts) and tells the browsers to forget what they showed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

from fusion.config import Site
from fusion.logio import LogError, read_log
from fusion.pipeline import Outputs, Pipeline

__all__ = ["ReplayPlayer"]

log = logging.getLogger(__name__)
_STATUS_EVERY_S = 1.0
_STATE_EVERY_S = 0.25


class ReplayPlayer:
    """Plays ``log_path`` into ``server`` (a :class:`~fusion.web.server.WebServer` given ``controls``)."""

    def __init__(self, site: Site, log_path: str | Path, server, controls: queue.Queue, speed: float = 1.0) -> None:
        self.site = site
        self.records = [(r.t_rx, r.topic, r.payload) for r in read_log(log_path)]
        if not self.records:
            raise LogError(f"{log_path}: no records to replay")
        self.server = server
        self.controls = controls
        self.speed = speed
        self.t_start, self.t_end = self.records[0][0], self.records[-1][0]
        self.playing = True
        self._restart()

    def _restart(self) -> None:
        self.pipeline = Pipeline(self.site)
        self.next_record = 0
        self.t = self.t_start
        self.flushed = False

    def state(self) -> dict:
        return {"t": round(self.t, 3), "t_start": self.t_start, "t_end": self.t_end, "playing": self.playing,
                "speed": self.speed, "records": len(self.records), "fed": self.next_record}

    def advance(self, until_t: float) -> Outputs:
        """Feed every record received up to data time ``until_t``; flush at the end of the log."""
        out = Outputs()
        while self.next_record < len(self.records) and self.records[self.next_record][0] <= until_t:
            out.extend(self.pipeline.feed(*self.records[self.next_record]))
            self.next_record += 1
        out.extend(self.pipeline.tick(until_t))
        self.t = max(self.t, until_t)
        if self.next_record == len(self.records) and not self.flushed:
            out.extend(self.pipeline.flush())
            self.flushed = True
            self.playing = False
        return out

    def hand(self, out: Outputs) -> None:
        if out.alerts:
            self.server.on_alerts([a.to_dict() for a in out.alerts])
        if out.snapshots:
            self.server.on_snapshot_json(out.snapshots[-1].to_json())  # decoded by the server if a browser takes it

    def control(self, action: str, value) -> None:
        if action == "play":
            if self.flushed:  # at the end: play again from the start
                self.seek(self.t_start)
            self.playing = True
        elif action == "pause":
            self.playing = False
        elif action == "speed":
            self.speed = float(value)
        elif action == "seek":
            self.seek(min(max(float(value), self.t_start), self.t_end))
        self.server.on_replay(self.state())

    def seek(self, target_t: float) -> None:
        if target_t < self.t:
            self._restart()
            self.server.on_replay(self.state(), reset=True)
        self.hand(self.advance(target_t))

    def run(self, stop: threading.Event) -> int:
        last_wall = time.monotonic()
        last_status = last_state = 0.0
        while not stop.is_set():
            try:
                self.control(*self.controls.get(timeout=0.05))
            except queue.Empty:
                pass
            now = time.monotonic()
            if self.playing:
                self.hand(self.advance(min(self.t_end, self.t + (now - last_wall) * self.speed)))
            last_wall = now
            if now - last_status >= _STATUS_EVERY_S:
                status = self.pipeline.status(self.t)
                status["state"] = "replay"
                self.server.on_status(status)
                last_status = now
            if now - last_state >= _STATE_EVERY_S:
                self.server.on_replay(self.state())
                last_state = now
        return 0


def serve_replay(site: Site, log_path: str | Path, listen: str, speed: float = 1.0, on_ready=None,
                 stop: threading.Event | None = None, acks: Path | None = None) -> int:
    """Serve the map at ``listen`` and play ``log_path`` on it until ``stop`` (or Ctrl-C/SIGTERM).

    ``on_ready(url)`` is called once the server listens; operators' acks are kept in ``acks``
    (default: as the live node keeps them, see :func:`~fusion.web.sinks.acks_path`).
    """
    import signal

    from fusion.web.sinks import node_sinks

    controls: queue.Queue = queue.Queue(maxsize=100)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    (server,) = [s for s in node_sinks(site, listen=listen, controls=controls, acks=acks) if hasattr(s, "url")]
    try:
        player = ReplayPlayer(site, log_path, server, controls, speed=speed)
        if on_ready:
            on_ready(server.url)
        return player.run(stop)
    finally:
        server.close()
