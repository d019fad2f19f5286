"""The node's outputs besides MQTT: what the live loop hands its snapshots, alerts and statuses to.

A sink takes each item without blocking (it stores it in a bounded place and wakes its
own thread), so the live loop's timing does not depend on browsers or a TAK link.  A sink
that has ``on_snapshot_json(payload)`` takes the snapshot as the JSON the node already
encoded for MQTT; the others get it decoded to a dict, once for all of them
(:func:`hand_snapshot`), and only if there is one: decoding 2,000 tracks costs the
node's loop ~15 ms.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Protocol

import msgspec

from fusion.config import Site
from fusion.web.acks import Ack

__all__ = ["Sink", "node_sinks", "acks_path", "hand_snapshot"]

log = logging.getLogger(__name__)


class Sink(Protocol):
    """May also have ``on_snapshot_json(payload: bytes)``: then it gets that instead (see :func:`hand_snapshot`)."""

    def on_snapshot(self, snapshot: dict) -> None: ...  # interface §3.1
    def on_alerts(self, alerts: list[dict]) -> None: ...  # interface §3.2
    def on_status(self, status: dict) -> None: ...  # interface §3.4
    def on_ack(self, ack: Ack) -> None: ...  # an operator's ack, from MQTT
    def close(self) -> None: ...


def hand_snapshot(sinks: list[Sink], payload: bytes, published: bool = True) -> None:
    """Give every sink the snapshot ``payload`` (interface §3.1 JSON): as it is to those with
    ``on_snapshot_json``, decoded (once, only if needed) to the others' ``on_snapshot``.

    ``published``: whether the node published it on MQTT (it sheds snapshots its bulk link cannot
    take).  A sink with ``published_only`` set (the federation's egress gateway, which releases
    only what the node published, so that an auditor can hold each release against its original)
    is not given one the node shed; the map and the TAK feed are."""
    as_dict = None
    for sink in sinks:
        if not published and getattr(sink, "published_only", False):
            continue
        take_json = getattr(sink, "on_snapshot_json", None)
        if take_json is not None:
            take_json(payload)
            continue
        if as_dict is None:
            as_dict = msgspec.json.decode(payload)
        sink.on_snapshot(as_dict)


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
    :class:`~fusion.config.ConfigError` / OSError if one cannot start.

    The live node's map server runs in a process of its own (:mod:`fusion.web.process`), so its
    work never holds the node's interpreter; a replay's (``controls`` given: the page's replay
    controls are read by the player) runs as a thread beside the player."""
    from fusion.config import WebConfig
    from fusion.web.process import MapProcess
    from fusion.web.server import WebServer

    sinks: list[Sink] = []
    try:
        web = site.config.web
        if web is not None or listen is not None:
            if controls is None:
                server = MapProcess(site, web or WebConfig(), acks=acks or acks_path(site), publish_ack=publish_ack,
                                    listen=listen).start()
            else:
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
