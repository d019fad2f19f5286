"""The node side of the ingress: partner tracks in, links and fused states out with each snapshot.

``[federation.fusion]`` in the site file turns it on (:class:`~fusion.federation.settings.FusionSettings`)::

    [federation.fusion]
    own_jurisdictions = ["country-b"]   # the territory an ``incoming`` alert is about
    confirm_scans = 3                    # the tuning of :class:`~fusion.federation.settings.PartnerFusionConfig`

The live node then subscribes to ``PREFIX/partner/+/tracks`` (what the bridge brings
from each partner's egress gateway) and feeds every message to the pipeline like any
other input, so replay and live take partner messages at the same point of the
stream.  :class:`Ingress` is what the pipeline holds:

* :meth:`Ingress.feed` — one received message → :class:`~sensors.ingest.Rejection` s
  (published like every other rejection, interface §3.3);
* :meth:`Ingress.at_snapshot` — at each snapshot's data time ``t``: our estimates are
  fused with the partners' tracks (:meth:`PartnerPicture.fuse`) and the ``incoming``
  alerts due are raised (they go out like every other alert: outbox, per agency);
* :func:`annotate` — the snapshot JSON (interface §3.1) with, per own track that has
  links, ``partner_tracks: [{origin, track_id}]`` and, when fused at ``t``, ``fused``
  (state and covariance, our frame), and a top-level ``partner_tracks`` list of the
  partner-only tracks (``"source": "partner"``, ``origin``, ``label``).  Our own
  estimate is never changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import numpy as np

from fusion.federation.partner import FusedPicture, PartnerPicture
from fusion.federation.settings import FusionSettings, settings_problem
from geo.alerts import Alert
from sensors.ingest import Rejection

if TYPE_CHECKING:
    from fusion.config import Site

__all__ = ["FusionSettings", "Ingress", "annotate", "partner_topic_filter"]  # FusionSettings: re-exported

_encode = msgspec.json.Encoder().encode


def partner_topic_filter(prefix: str) -> str:
    """The subscription of the partner tracks the bridges bring: ``PREFIX/partner/+/tracks``."""
    return f"{prefix}/partner/+/tracks"


class Ingress:
    """The pipeline's holder of its partners' pictures (module docstring)."""

    def __init__(self, site: Site) -> None:
        from fusion.config import ConfigError  # fusion.config embeds FusionSettings

        settings = site.config.federation.fusion
        if settings is None:
            raise ValueError("Ingress needs [federation.fusion] in the site file")
        if problem := settings_problem(settings, {j.id: j.kind for j in site.jurisdictions}):
            raise ConfigError(f"{site.path}: {problem}")
        self.node_id = site.node_id
        self._head = f"{site.config.mqtt.prefix}/partner/"
        self.picture = PartnerPicture(site.frame, site.node_id, settings.partner_config(), site.jurisdictions,
                                      tuple(settings.own_jurisdictions))
        self.received = 0

    def accepts(self, topic: str) -> bool:
        """Is ``topic`` a partner's released tracks (``PREFIX/partner/{origin}/tracks``)?"""
        if not topic.startswith(self._head) or not topic.endswith("/tracks"):
            return False
        return topic[len(self._head):-len("/tracks")].count("/") == 0

    def feed(self, t_rx: float, topic: str, payload: bytes) -> list[Rejection]:
        """One partner message; what of it was not used (never raises: see :meth:`PartnerPicture.ingest`)."""
        self.received += 1
        return self.picture.ingest(payload, topic, t_rx)

    def at_snapshot(self, estimates) -> tuple[FusedPicture, list[Alert]]:
        """Our estimates at ``estimates.t`` fused with every partner's tracks, and the ``incoming`` alerts due."""
        picture = self.picture.fuse(estimates)
        return picture, self.picture.incoming_alerts(float(estimates.t))

    def merge_own(self, absorbed_id: int, survivor_id: int) -> None:
        self.picture.merge_own(absorbed_id, survivor_id)

    def export_state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays, meta = self.picture.export_state()
        meta["received"] = self.received
        return arrays, meta

    def import_state(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        self.picture.import_state(arrays, meta)
        self.received = int(meta.get("received", 0))

    def annotate(self, snapshot_json: bytes, fused: FusedPicture) -> bytes:
        return annotate(snapshot_json, fused, self.node_id, self.picture.partner_only_tracks(fused))


def annotate(snapshot_json: bytes, fused: FusedPicture, node_id: str, partner_only: list[dict]) -> bytes:
    """The snapshot JSON with the links, fused states and partner-only tracks of ``fused`` (module docstring).

    Without links or partner tracks the bytes come back unchanged (no re-encoding)."""
    links = fused.links_by_track(node_id)
    if not links and not partner_only:
        return snapshot_json
    snapshot = msgspec.json.decode(snapshot_json)
    for track in snapshot["tracks"]:
        if (entry := links.get(track["track_id"])) is not None:
            track.update(entry)
    snapshot["partner_tracks"] = [{"source": "partner", **item} for item in partner_only]
    return _encode(snapshot)
