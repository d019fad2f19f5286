"""Tracker tuning, the ``[tracker]`` table of a site file; the defaults serve.

Nothing here is tuned to one data set: the existence numbers follow from what the
sensors declare (detection probability, false alarms) and from how often targets
appear and vanish; the motion model is an IMM whose quiet model fits smooth
movers and whose manoeuvre model fits the agility of the track's likely class.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

__all__ = ["TrackerConfig", "ClassAgility", "ClassTopSpeed", "ImmConfig", "ExistenceConfig"]

Positive = Annotated[float, Meta(gt=0.0, le=1e7)]
Fraction = Annotated[float, Meta(gt=0.0, lt=1.0)]


class ClassAgility(Struct, frozen=True, forbid_unknown_fields=True):
    """Acceleration noise σ_a (m/s²) of the nearly-constant-velocity model per class."""

    person: Positive = 0.5
    vehicle: Positive = 2.0
    animal: Positive = 1.0
    uav: Positive = 3.0
    unknown: Positive = 1.0


class ClassTopSpeed(Struct, frozen=True, forbid_unknown_fields=True):
    """Fastest plausible speed (m/s) per class: a track seen faster makes the class unlikely.

    The kinematic class likelihood is 1 up to this speed and falls as a half-normal of
    scale ¼ of it beyond (see :mod:`tracking.manage`); ``unknown`` has no limit.
    """

    person: Positive = 4.0
    vehicle: Positive = 50.0
    animal: Positive = 15.0
    uav: Positive = 40.0


class ImmConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The interacting-multiple-model motion model (``[tracker.imm]``): quiet, moderate and manoeuvring.

    All three are nearly-constant-velocity.  The quiet model's acceleration σ is
    ``quiet_accel_sigma_mps2`` (any target moving smoothly) plus, in quadrature, the
    track class's agility times ``quiet_scale``; the moderate model's is the class's
    agility times ``moderate_scale`` (wandering walkers, weaving vehicles); the
    manoeuvring model's is the class's agility times ``manoeuvre_scale`` (an unclassified
    track: the mixture over classes, σ ≈ 1.75 m/s², so ≈ 5 m/s²: turns and stops of
    vehicles).  The model chain leaves each model after a mean ``*_sojourn_s`` of data
    time (see :mod:`tracking.imm`).  ``moderate_scale = 0`` drops the moderate model (two
    models); ``enabled = false`` gives one model with the class's agility.

    Why three models and a long quiet sojourn: on a smoothly moving target the models
    explain the plots about equally well, so an agile model's probability settles near
    its prior floor (≈ 1 − exp(−Δt/τ_quiet), divided by how much worse it fits), and each
    scan's mixing pulls the quiet estimate that far towards the agile model's noisy one.
    With two models (quiet, manoeuvre) that cost +13 % position error against a matched
    Kalman filter at τ_quiet = 100 s, and a longer τ_quiet let a vehicle weaving along a
    border (≈ 1 m/s² lateral) hold the quiet model and its too-small covariance long enough
    for a false crossing (``tests/test_geofence.py``).  A moderate model takes the weaving
    and the wandering, so the quiet model can keep a long sojourn (300 s) and the
    manoeuvring one a short one (10 s) that leaves it as soon as a turn is over.  On the
    accuracy suite's tuning seed (100), not on the seeds it scores
    (``benchmarks/accuracy_suite.py``), this cut GOSPA by 2–10 % in every family against
    the two-model chain (the worst family's ratio to the tuned Stone Soup from 0.996 to 0.937);
    moderate scales 1–1.5, moderate sojourns 20–60 s and quiet sojourns 200–500 s were
    within ±2 % of each other.  The quiet σ of 0.1 m/s² rather than 0.05 costs nothing there
    and keeps the covariance honest: at 0.05 the NEES of tracks fused with a partner's rose
    from ≈ 2.0 to 2.8 (``benchmarks/federation_fusion.py``).
    """

    enabled: bool = True
    quiet_scale: Annotated[float, Meta(ge=0.0, le=1e7)] = 0.0
    #: the quiet model's σ_a whatever the class (m/s²), added in quadrature to its class part
    quiet_accel_sigma_mps2: Annotated[float, Meta(ge=0.0, le=1e3)] = 0.1
    #: the moderate model's σ_a as a multiple of the class's agility; 0: no moderate model
    moderate_scale: Annotated[float, Meta(ge=0.0, le=1e7)] = 1.0
    manoeuvre_scale: Positive = 3.0
    quiet_sojourn_s: Positive = 300.0
    moderate_sojourn_s: Positive = 30.0
    manoeuvre_sojourn_s: Positive = 10.0

    def chain(self) -> tuple[tuple[float, float], ...]:
        """(σ scale, mean sojourn s) of each model in the chain's order: quiet, moderate (unless its
        scale is 0), manoeuvring; the most agile last, which the tracker gates with."""
        moderate = ((self.moderate_scale, self.moderate_sojourn_s),) if self.moderate_scale > 0.0 else ()
        return ((self.quiet_scale, self.quiet_sojourn_s), *moderate, (self.manoeuvre_scale, self.manoeuvre_sojourn_s))


class ExistenceConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Track existence (``[tracker.existence]``), IPDA-style (see :mod:`tracking.existence`).

    A track's probability of existence rises with detections that are likelier from
    it than from clutter and falls where a sensor with detection probability Pd looked
    and saw nothing; outside every sensor's coverage it decays only with the target's
    mean lifetime.  Detection probabilities and clutter densities come from the
    sensors (the site file's ``detection_probability`` and false-alarm figures).
    """

    #: new targets per km² per scan where a track may start: ε₀ = β / (β + λ_clutter).  0.0005
    #: rather than 0.0002 confirms a new target one scan sooner where clutter is dense (the accuracy
    #: suite's tuning seed: the missed term of appearing/vanishing targets −40 %, no more false tracks)
    birth_per_km2: Positive = 0.0005
    #: clutter density assumed when a sensor declares none (false detections per km²)
    default_clutter_per_km2: Positive = 0.01
    #: mean time a target stays in the area: ε decays as exp(−Δt / lifetime) between looks
    mean_lifetime_s: Positive = 1000.0
    #: a tentative track is confirmed when its existence reaches this
    confirm: Fraction = 0.95
    #: a confirmed track is shown (snapshots, estimates) while its existence is at least this
    show: Fraction = 0.5
    #: a confirmed track's alerts go out while its existence is at least this
    release: Fraction = 0.9
    #: a track is deleted when its existence falls below this
    delete: Fraction = 0.01
    #: a track detected within this long that lost the plots in its gate to confirmed rivals keeps
    #: existence from them (a tight group); a track silent longer takes such a scan as a miss
    share_within_s: Annotated[float, Meta(ge=0.0, le=1e4)] = 2.5


class TrackerConfig(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: probability mass of the chi-square (2 dof) validation gate
    gate_probability: Fraction = 0.999
    agility: ClassAgility = ClassAgility()
    top_speed: ClassTopSpeed = ClassTopSpeed()
    imm: ImmConfig = ImmConfig()
    existence: ExistenceConfig = ExistenceConfig()
    #: a confirmed track without update for this long is reported as 'coasting'
    coast_after_s: Positive = 4.0
    #: deletion when the position σ (sqrt of the covariance's largest eigenvalue) exceeds this
    max_position_sigma_m: Positive = 300.0
    #: initiation: fastest plausible target; bounds the two-point velocity
    max_speed_mps: Positive = 60.0
    #: the strongest manoeuvre of a target at speed v is about v × this turn rate, plus
    #: ``accel_floor_mps2`` (starting, stopping): the motion noise never assumes more
    max_turn_rate_dps: Positive = 20.0
    accel_floor_mps2: Positive = 0.5
    #: velocity σ of a one-point track before a second detection
    initial_speed_sigma_mps: Positive = 20.0
    #: floor of the class confusion matrix (one wrong label cannot flip a track)
    class_confusion_floor: Fraction = 0.05
    #: two confirmed tracks whose states stay this close (chi-square 4 dof probability of
    #: the difference) for ``merge_after_s``, one of them without detections all that time,
    #: are one target: the younger is merged into the older
    merge_probability: Fraction = 0.5
    merge_after_s: Positive = 3.0
    #: size of the preallocated track table (live tracks at once); the table grows past it
    #: only up to ``max_capacity``, beyond which new tracks are not started (counted)
    capacity: Annotated[int, Meta(ge=16, le=10_000_000)] = 4096
    max_capacity: Annotated[int, Meta(ge=16, le=10_000_000)] = 1_000_000
