"""The operator picture: a map served by the node (aiohttp, own process), one view per agency.

:mod:`fusion.web.server` the server and its hand-over from the node, :mod:`fusion.web.views`
tokens and the per-agency filter, :mod:`fusion.web.acks` acknowledgements,
:mod:`fusion.web.process` the live node's map server in a process of its own,
:mod:`fusion.web.sinks` what the node hands its outputs to,
:mod:`fusion.web.player` the replay player behind ``replay --web``; ``static/`` the pages
and the vendored map libraries (with their licences).
"""

from fusion.web.acks import Ack, AckStore
from fusion.web.server import WebServer

__all__ = ["WebServer", "Ack", "AckStore"]
