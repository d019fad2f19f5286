"""The node's outputs besides MQTT: what the live loop hands its snapshots, alerts and statuses to.

A sink takes each item without blocking (it stores it in a bounded place and wakes its
own thread), so the live loop's timing does not depend on browsers or a TAK link.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Protocol

from fusion.config import Site
from fusion.web.acks import Ack

__all__ = ["Sink", "node_sinks", "acks_path"]

log = logging.getLogger(__name__)


class Sink(Protocol):
    def on_snapshot(self, snapshot: dict) -> None: ...  # interface §3.1
    def on_alerts(self, alerts: list[dict]) -> None: ...  # interface §3.2
    def on_status(self, status: dict) -> None: ...  # interface §3.4
    def on_ack(self, ack: Ack) -> None: ...  # an operator's ack, from MQTT
    def close(self) -> None: ...


def acks_path(site: Site) -> Path:
    """``[web] acks``, or ``NODE-acks.sqlite`` beside the outbox."""
    web = site.config.web
    if web is not None and web.acks:
        return site.resolve(web.acks)
    return site.resolve(site.config.mqtt.outbox) / f"{site.node_id}-acks.sqlite"


def node_sinks(site: Site, publish_ack: Callable[[Ack], None] | None = None, *, listen: str | None = None,
               controls=None, acks: Path | None = None) -> list[Sink]:
    """Start what the site configures: the map server (``[web]``, or ``listen`` given; its acks in
    ``acks`` or :func:`acks_path`) and the TAK feed (``[outputs.cot]``).  Raises
    :class:`~fusion.config.ConfigError` / OSError if one cannot start."""
    from fusion.config import WebConfig
    from fusion.web.server import WebServer

    sinks: list[Sink] = []
    try:
        web = site.config.web
        if web is not None or listen is not None:
            server = WebServer(site, web or WebConfig(), acks=acks or acks_path(site), publish_ack=publish_ack,
                               controls=controls, listen=listen).start()
            log.info("operator map at %s (lite page: %slite)", server.url, server.url)
            sinks.append(server)
        if site.config.outputs.cot is not None:
            from fusion.interop.cot import CotFeed

            sinks.append(CotFeed(site, site.config.outputs.cot).start())
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks
