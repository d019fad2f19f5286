"""Track existence, IPDA-style (Mušicki, Evans & Stanković 1994), one track at a time.

Each track carries ε, the probability that its target exists.  Between looks ε
decays with the targets' mean lifetime τ (a Markov chain 'exists → gone')::

    ε ← ε · exp(−Δt / τ)

A scan from a sensor with detection probability P_D and gate probability P_G either
brings the track a detection z (assigned by the association) or not.  With
ℓ = N(z; ẑ, S) / P_G the detection's likelihood under the track and λ the clutter
density (false detections per m²) the IPDA update is::

    δ = P_D P_G (1 − ℓ/λ)          a detection (δ < 0 when z is likelier from the track than from clutter)
    δ = P_D P_G                    no detection, track inside the sensor's coverage
    ε ← (1 − δ) ε / (1 − δ ε)

and a track outside the coverage is left alone: a sensor that did not look says
nothing about it.  With several detections in the gate IPDA sums their ratios.  The
state follows the GNN assignment: a track assigned a detection sums that one; a
confirmed track detected within the last few seconds that lost its gated detections
to confirmed rival tracks sums each of them divided by the number of tracks that
gated it (a crude marginal association probability, as in JIPDA), so a target in a
tight group whose plot another track took is not counted as missed, while a
vanished target's track, silent for longer, is.  A new track from a detection
starts at ε₀ = β / (β + λ), β the density of new targets: the probability that an
unexplained detection is a new target rather than clutter.  All functions are pure numba scalars, used by
:func:`tracking.manage.manage_scan`.
"""

from __future__ import annotations

import math

from numba import njit

__all__ = ["survive", "likelihood_ratio", "detected", "missed", "initial"]


@njit(cache=True)
def survive(existence, dt, lifetime):
    """ε after ``dt`` seconds without a look."""
    return existence * math.exp(-max(dt, 0.0) / lifetime)


@njit(cache=True)
def _update(existence, delta):
    return (1.0 - delta) * existence / (1.0 - delta * existence)


@njit(cache=True)
def likelihood_ratio(log_likelihood, clutter_density, pg):
    """ℓ/λ of one detection, from ln N(z; ẑ, S) (bounded, so that exp cannot overflow)."""
    return math.exp(min(log_likelihood - math.log(clutter_density), 700.0)) / pg


@njit(cache=True)
def detected(existence, pd, pg, ratio):
    """ε after a scan whose detections in the track's gate have likelihood ratios summing to ``ratio``."""
    return _update(existence, pd * pg * (1.0 - ratio))


@njit(cache=True)
def missed(existence, pd, pg):
    """ε after a scan whose sensor looked at the track and brought it no detection."""
    return _update(existence, pd * pg)


@njit(cache=True)
def initial(birth_density, clutter_density):
    """ε₀ of a track started from one unexplained detection."""
    return birth_density / (birth_density + clutter_density)
