"""The operator picture: a map served by the node (aiohttp, own thread), one view per agency.

:mod:`fusion.web.server` the server and its hand-over from the node, :mod:`fusion.web.views`
tokens and the per-agency filter, :mod:`fusion.web.acks` acknowledgements,
:mod:`fusion.web.replay` the replay player behind ``replay --web``; ``static/`` the pages
and the vendored map libraries (with their licences).
"""

from fusion.web.acks import Ack, AckStore
from fusion.web.server import WebServer

__all__ = ["WebServer", "Ack", "AckStore"]
