"""Tracker tuning, the ``[tracker]`` table of a site file; the defaults serve."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

__all__ = ["TrackerConfig", "ClassAgility", "ImmConfig"]

Positive = Annotated[float, Meta(gt=0.0, le=1e7)]
Fraction = Annotated[float, Meta(gt=0.0, lt=1.0)]


class ClassAgility(Struct, frozen=True, forbid_unknown_fields=True):
    """Acceleration noise σ_a (m/s²) of the nearly-constant-velocity model per class."""

    person: Positive = 0.5
    vehicle: Positive = 2.0
    animal: Positive = 1.0
    uav: Positive = 3.0
    unknown: Positive = 1.0


class ImmConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The interacting-multiple-model option (``[tracker.imm]``): a quiet and a manoeuvring model.

    Both are nearly-constant-velocity; their acceleration σ is the track class's
    agility times ``quiet_scale`` and ``manoeuvre_scale``.  The model chain leaves
    each model after a mean ``*_sojourn_s`` of data time (see :mod:`tracking.imm`).
    """

    enabled: bool = False
    quiet_scale: Positive = 0.2
    manoeuvre_scale: Positive = 8.0
    quiet_sojourn_s: Positive = 20.0
    manoeuvre_sojourn_s: Positive = 5.0


class TrackerConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: probability mass of the chi-square (2 dof) validation gate
    gate_probability: Fraction = 0.999
    agility: ClassAgility = ClassAgility()
    imm: ImmConfig = ImmConfig()
    #: confirmation: ``confirm_hits`` detections within the first ``confirm_window`` looks
    confirm_hits: Annotated[int, Meta(ge=1, le=100)] = 3
    confirm_window: Annotated[int, Meta(ge=1, le=100)] = 5
    #: a confirmed track without update for this long is 'coasting'
    coast_after_s: Positive = 4.0
    #: deletion: no update for this long (tentative, confirmed tracks)
    delete_tentative_after_s: Positive = 6.0
    delete_after_s: Positive = 30.0
    #: a confirmed track silent this long needs a second hit within this time of the first
    #: before it counts as alive again (a lone hit after a long coast is often clutter in its
    #: grown gate); until then its deletion clock keeps running and its alerts are held
    reacquire_gap_s: Positive = 8.0
    #: deletion when the position σ (sqrt of the covariance's largest eigenvalue) exceeds this
    max_position_sigma_m: Positive = 300.0
    #: initiation: fastest plausible target; bounds the two-point velocity
    max_speed_mps: Positive = 60.0
    #: velocity σ of a one-point track before a second detection
    initial_speed_sigma_mps: Positive = 20.0
    #: floor of the class confusion matrix (one wrong label cannot flip a track)
    class_confusion_floor: Fraction = 0.05
    #: size of the preallocated track table (live tracks at once)
    capacity: Annotated[int, Meta(ge=16, le=10_000_000)] = 4096
