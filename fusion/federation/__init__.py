"""Federation: sharing agreements and the egress gateway (what this node releases to partner nodes).

* :mod:`fusion.federation.agreement` — ``[[federation.partners]]``: typed, checked at start-up.
* :mod:`fusion.federation.gateway` — agreement + snapshot/alert → released messages (pure), and
  the originator-control check for data that came from a partner.
* :mod:`fusion.federation.audit` — an independent check of released messages against the agreement.

Topics: ``PREFIX/release/{partner_id}/tracks`` and ``…/alerts``; a Mosquitto bridge
(``configs/federation/``) carries them to the partner's broker as ``PREFIX/partner/{origin}/…``.
"""
