"""Sharing agreements (``[[federation.partners]]`` in the site file): what this node releases to whom.

A sovereign node releases to each partner only what the agreement with that partner
names.  One agreement per partner::

    [[federation.partners]]
    partner_id = "edge-b"                      # the partner node: topics PREFIX/release/edge-b/…
    policy_id = "a-b-2026-01"                  # carried in every released message's label
    jurisdictions = ["country-a", "country-b"] # a released item lies in one of these
    border = ["country-a", "country-b"]        # the two sides of the border distances are measured from
    max_border_distance_m = 3000.0
    classes = ["person", "vehicle"]            # by the most probable class
    statuses = ["confirmed", "coasting"]
    alert_types = ["border_crossing", "approach"]
    grid_m = 100.0                             # positions snapped to a Δ grid
    delay_s = 0.0
    releasable_to = []                         # whom the partner may pass it on to
    key_file = "keys/edge-b.key"               # secret for the per-partner pseudonyms (mode 0600)

Zones (``kind = "zone"``) not listed in ``jurisdictions`` are withheld: an item
inside one is not released even when it also lies in a listed country.

This module only declares and checks; :mod:`fusion.federation.gateway` applies.  It
imports nothing from :mod:`fusion.config` (which embeds these types).
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta, Struct

from fusion.federation.settings import FusionSettings, settings_problem

__all__ = ["PartnerAgreement", "FederationConfig", "federation_problem", "read_key", "MIN_KEY_BYTES",
           "CLASS_NAMES", "STATUS_NAMES"]

Name = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
ClassName = Literal["person", "vehicle", "animal", "uav", "unknown"]
Status = Literal["tentative", "confirmed", "coasting"]
AlertType = Literal["border_crossing", "zone_entry", "zone_exit", "dwell", "approach", "incoming"]
CLASS_NAMES = ("person", "vehicle", "animal", "uav", "unknown")
STATUS_NAMES = ("tentative", "confirmed", "coasting")
#: a pseudonym key shorter than this could be guessed; 32 random bytes is what ``head -c 32 /dev/urandom`` gives
MIN_KEY_BYTES = 16


class PartnerAgreement(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What this node releases to one partner, and how."""

    #: the partner node's id; released messages go to ``PREFIX/release/{partner_id}/…``
    partner_id: Name
    #: the agreement's reference, carried in every released message's label
    policy_id: Name
    #: jurisdiction ids (countries, sectors, zones) inside which tracks and alerts are released
    jurisdictions: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1)]
    #: the two countries whose common border ``max_border_distance_m`` is measured from
    border: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=2, max_length=2)]
    #: an item farther than this from that border is not released
    max_border_distance_m: Annotated[float, Meta(ge=0.0, le=1_000_000.0)]
    #: classes released, by the track's (or alert's) most probable class
    classes: Annotated[list[ClassName], Meta(min_length=1)]
    #: track statuses released
    statuses: tuple[Status, ...] = ("confirmed", "coasting")
    #: alert types released (empty: no alerts)
    alert_types: tuple[AlertType, ...] = ()
    #: Δ: positions snapped to a Δ-metre grid of the local frame, covariance inflated by Δ²/12 per axis
    grid_m: Annotated[float, Meta(ge=1.0, le=100_000.0)] = 100.0
    #: released items are held this long (data time) before they leave
    delay_s: Annotated[float, Meta(ge=0.0, le=86_400.0)] = 0.0
    #: node ids the partner may pass released items on to (default: nobody)
    releasable_to: tuple[Name, ...] = ()
    #: a file (relative to the site file, mode 0600) of at least 16 secret bytes: the HMAC key of the
    #: partner's pseudonymous track ids
    key_file: str


class FederationConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[federation]``: the node's sharing agreements, one per partner."""

    partners: tuple[PartnerAgreement, ...] = ()
    #: ``[federation.fusion]``: take partners' released tracks in (:mod:`fusion.federation.ingress`); absent: not
    fusion: FusionSettings | None = None


def read_key(path: Path) -> bytes:
    """The secret bytes of a key file (a trailing newline is not part of the key).

    Raises ValueError with the reason when the file cannot serve: unreadable, readable
    by other users (like ssh, a key others can read is no secret), or too short.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        key = path.read_bytes().rstrip(b"\r\n")
    except OSError as error:
        raise ValueError(f"cannot read {path} ({error.strerror})") from None
    if mode & 0o077:
        raise ValueError(f"{path} may be read by other users (mode {mode:04o}); run: chmod 600 {path}")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{path} holds {len(key)} bytes, at least {MIN_KEY_BYTES} are needed; make one with: "
                         f"head -c 32 /dev/urandom > {path} && chmod 600 {path}")
    return key


def federation_problem(federation: FederationConfig, node_id: str, kinds: dict[str, str],
                       site_dir: Path) -> str | None:
    """The first agreement setting that cannot work, as ``field: why``; None if all can.

    ``kinds`` maps every jurisdiction id of the site to its kind (country, sector, zone);
    ``site_dir`` is the folder key files are relative to.
    """
    seen: set[str] = set()
    for i, p in enumerate(federation.partners):
        where = f"federation.partners[{i}]"
        if p.partner_id == node_id:
            return f"{where}.partner_id: {p.partner_id!r} is this node's own id (site.node_id)"
        if p.partner_id in seen:
            return f"{where}.partner_id: a second agreement with {p.partner_id!r}; one per partner"
        seen.add(p.partner_id)
        for field in ("jurisdictions", "border"):
            for k, jid in enumerate(getattr(p, field)):
                if jid not in kinds:
                    return (f"{where}.{field}[{k}]: no jurisdiction {jid!r} in the site's jurisdictions "
                            f"(known: {', '.join(sorted(kinds))})")
        for k, jid in enumerate(p.border):
            if kinds[jid] != "country":
                return f"{where}.border[{k}]: {jid!r} is a {kinds[jid]}; the border is between two countries"
        if p.border[0] == p.border[1]:
            return f"{where}.border: the two sides must differ (got {p.border[0]!r} twice)"
        try:
            read_key((site_dir / p.key_file).resolve())
        except ValueError as error:
            return f"{where}.key_file: {error}"
    return settings_problem(federation.fusion, kinds) if federation.fusion is not None else None
