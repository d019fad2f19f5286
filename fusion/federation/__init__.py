"""Federation (issue 16): sovereign nodes share a released picture and fuse each other's tracks.

Egress — what this node releases to partner nodes:

* :mod:`fusion.federation.agreement` — ``[[federation.partners]]``: typed, checked at start-up.
* :mod:`fusion.federation.gateway` — agreement + snapshot/alert → released messages (pure), the
  originator-control check for data that came from a partner, and the node's sink
  (released alerts go through the node's outbox, like its own).
* :mod:`fusion.federation.audit` — an independent check of released messages against the agreement.

Ingress — what this node does with what partners release to it:

* :mod:`fusion.federation.partner` — intake of a partner's tracks, association over several
  scans, covariance-intersection fusion (:mod:`tracking.track_fusion`), ``incoming`` alerts.
* :mod:`fusion.federation.ingress` — ``[federation.fusion]``: the pipeline's holder of its
  partners' pictures, and the snapshot's links, fused states and partner-only tracks.

Two nodes together:

* :mod:`fusion.federation.pair` — two sites on one simulated border, the log split by country,
  and the offline two-node replay (``borderfusion replay --federation``).
* :mod:`fusion.federation.paircheck` — the checks of a two-node run (leaks, linked identities,
  ``incoming`` lead time, GOSPA of the joint pictures).
* :mod:`fusion.federation.demo` — ``borderfusion demo --federation``: two nodes, two bridged
  brokers on loopback.

Topics: ``PREFIX/release/{partner_id}/tracks`` and ``…/alerts``; a Mosquitto bridge
(``configs/federation/``) carries them to the partner's broker as ``PREFIX/partner/{origin}/…``.
The contract: ``docs/interface.md`` §5 (keys) and §7 (topics, label).
"""
