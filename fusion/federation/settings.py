"""``[federation.fusion]`` of the site file: typed and checked without importing the fusion kernels.

:mod:`fusion.config` embeds these types (through :mod:`fusion.federation.agreement`), so
this module stays light: ``validate-config`` and ``--help`` must not load numba.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

__all__ = ["PartnerFusionConfig", "FusionSettings", "settings_problem"]


class PartnerFusionConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Tuning of the ingress (the defaults serve a 1 Hz partner picture); the tuning fields of
    ``[federation.fusion]``.

    Built in Python (tests, benchmarks) rather than read from a site file, it is held to the
    same bounds: an invalid value raises ``ValueError`` naming the field.
    """

    #: the χ² test on the difference of two tracks (probability of the gate)
    gate_probability: Annotated[float, Meta(gt=0.0, lt=1.0)] = 0.999
    #: dimensions of that test: 2 (position) or 4 (position and velocity)
    gate_dims: Annotated[int, Meta(ge=2, le=4, multiple_of=2)] = 4
    #: consecutive partner messages a pair must be assigned on to be linked
    confirm_scans: Annotated[int, Meta(ge=1, le=1000)] = 3
    #: consecutive partner messages a link may fail before it is broken
    break_scans: Annotated[int, Meta(ge=1, le=1000)] = 5
    #: noise density (m²/s³) when predicting a partner track to our time
    partner_q: Annotated[float, Meta(ge=0.0, le=1e4)] = 0.5
    #: a partner silent this long (data time) is dropped with its links
    stale_after_s: Annotated[float, Meta(gt=0.0, le=86_400.0)] = 15.0
    #: how far ahead the straight path of a partner track is followed for ``incoming``
    incoming_horizon_s: Annotated[float, Meta(ge=0.0, le=86_400.0)] = 300.0
    #: a partner track slower than this raises no ``incoming``
    min_speed_mps: Annotated[float, Meta(ge=0.0, le=1000.0)] = 0.5
    #: a partner track less likely to exist than this raises no ``incoming``
    min_existence: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.9

    def __post_init__(self) -> None:
        for field in msgspec.structs.fields(self):  # each value against its annotated bounds
            try:
                msgspec.convert(getattr(self, field.name), field.type)
            except msgspec.ValidationError as error:
                raise ValueError(f"{type(self).__name__}: invalid {field.name}: {error}") from None


class FusionSettings(PartnerFusionConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[federation.fusion]``: take partners' released tracks in (interface §5): the ingress
    tuning of :class:`PartnerFusionConfig` and the node's own jurisdictions."""

    #: jurisdiction ids that are ours: a partner track heading into one raises ``incoming``
    #: (none: no incoming alert)
    own_jurisdictions: tuple[Annotated[str, Meta(min_length=1)], ...] = ()

    def partner_config(self) -> PartnerFusionConfig:
        return PartnerFusionConfig(**{name: getattr(self, name) for name in PartnerFusionConfig.__struct_fields__})


def settings_problem(settings: FusionSettings, kinds: dict[str, str]) -> str | None:
    """The first setting that cannot work, as ``field: why``; None if all can (``kinds``: id → kind)."""
    for k, jid in enumerate(settings.own_jurisdictions):
        if jid not in kinds:
            return (f"federation.fusion.own_jurisdictions[{k}]: no jurisdiction {jid!r} in the site's "
                    f"jurisdictions (known: {', '.join(sorted(kinds))})")
    return None
