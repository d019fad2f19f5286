"""Track-to-track fusion: covariance intersection and the association test, over arrays of tracks.

Two estimates ``(a, A)`` and ``(b, B)`` of one target's state (east, north, v_east,
v_north) come from two trackers that may have used common information (the same
target dynamics, hence correlated process noise; a detection both received).  Their
cross-covariance is unknown, so the Kalman combination ``(A⁻¹ + B⁻¹)⁻¹``, which
assumes it is zero, can be overconfident.  **Covariance intersection** (Julier &
Uhlmann 1997) fuses in information form with a weight ω ∈ [0, 1]::

    C⁻¹ = ω A⁻¹ + (1 − ω) B⁻¹,      c = C (ω A⁻¹ a + (1 − ω) B⁻¹ b)

and is consistent (``C ⪰ E[(c − x)(c − x)ᵀ]`` whenever ``A`` and ``B`` are) for
*every* cross-covariance, because for any ω the ellipsoid of ``C`` contains the
intersection of those of ``A`` and ``B``.

**The weight** (:func:`ci_weight`) minimises ``det C`` (the volume of the fused
ellipsoid; unlike the trace it does not depend on the units chosen for position
against velocity, m against m/s).  With information matrices ``Iₐ = A⁻¹``,
``I_b = B⁻¹`` and the generalised eigenvalues λᵢ of ``Iₐ x = λ I_b x`` (those of the
symmetric ``L⁻¹ Iₐ L⁻ᵀ``, ``I_b = L Lᵀ``), put ``aᵢ = λᵢ − 1``.  Then

    det C(ω)⁻¹ = det(I_b + ω (Iₐ − I_b)) = det I_b · p(ω),     p(ω) = Πᵢ (1 + ω aᵢ)

so ω minimising ``det C`` maximises the polynomial ``p`` (degree d = 4) on [0, 1].
``ln p`` is concave there (a sum of logs of positive affine functions), so its
derivative ``Σ aᵢ / (1 + ω aᵢ)`` decreases and has at most one zero in (0, 1): the
maximiser is 0, 1, or the one root of the cubic ``p′(ω) = e₁ + 2e₂ω + 3e₃ω² + 4e₄ω³``
(eᵢ the elementary symmetric functions of the aᵢ) that lies in (0, 1).  The roots are
the eigenvalues of the cubic's companion matrix; the weight is whichever of the
candidates {0, 1, real roots in (0, 1)} gives the largest ``p`` — the exact optimum in
closed form, no search.  ``ω = ½`` for ``A = B``; ω → 1 when ``A`` is much the smaller.

For comparison :func:`ci_weight_fast` is the improved fast CI of Franken & Hüpper
(2005), ``ω₀ = (det(Iₐ + I_b) − det(I_b) + det(Iₐ)) / (2 det(Iₐ + I_b))``, which sets
each side's weight by the information it adds to the other.  It is exact in the
proportional case but, for the elongated, differently oriented ellipses of two radars
looking from opposite banks, its ``det C`` is often 20 % (up to several times) above
the optimum in four dimensions, so it is not the one used.

**Association** (:func:`difference_distance2`): if ``a`` and ``b`` are the same
target, their difference has mean 0 and covariance ``A + B − Cab − Cabᵀ``; with the
cross-covariance unknown, ``S = A + B`` is used (Bar-Shalom & Li, *Multitarget-
Multisensor Tracking*, §8.3; the positive correlation that is left out only makes
``S`` larger, so the test errs towards accepting, which the multi-scan
confirmation then checks).  ``d² = Δᵀ S⁻¹ Δ`` is χ² with ``dims`` degrees of
freedom (2: position only, 4: position and velocity).

Arrays at the seams, no I/O, no ids: the caller keeps who is who.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaincinv

from tracking.associate import assign
from tracking.kernels import predict_row

__all__ = ["ci_weight", "ci_weight_fast", "covariance_intersection", "difference_distance2", "chi2_gate",
           "assign_tracks", "predict_states"]


def _information(P: np.ndarray) -> np.ndarray:
    return np.linalg.inv(P)


def ci_weight_fast(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """ω₀ of the improved fast CI (Franken & Hüpper 2005) for (n, d, d) covariances ``A``, ``B``: (n,).

    Written with log-determinants, ``ω₀ = ½ (1 + e^{ln det Iₐ − ln det S} − e^{ln det I_b − ln det S})``
    with ``S = Iₐ + I_b``, so that no determinant over- or underflows.
    """
    Ia, Ib = _information(A), _information(B)
    _, ld_a = np.linalg.slogdet(Ia)
    _, ld_b = np.linalg.slogdet(Ib)
    _, ld_s = np.linalg.slogdet(Ia + Ib)
    return np.clip(0.5 * (1.0 + np.exp(ld_a - ld_s) - np.exp(ld_b - ld_s)), 0.0, 1.0)


def ci_weight(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The CI weight ω on ``A`` (n,) minimising ``det C`` for (n, d, d) covariances (module docstring:
    the best of 0, 1 and the roots in (0, 1) of ``p′``, from the generalised eigenvalues)."""
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    n, d = A.shape[0], A.shape[1]
    Ia, Ib = _information(A), _information(B)
    L_inv = np.linalg.inv(np.linalg.cholesky(Ib))
    a = np.linalg.eigvalsh(L_inv @ Ia @ np.swapaxes(L_inv, 1, 2)) - 1.0  # (n, d)
    p = np.zeros((n, d + 1))  # p[:, k]: coefficient of ω^k in Π (1 + ω aᵢ)
    p[:, 0] = 1.0
    for i in range(d):
        p[:, 1:] = p[:, 1:] + a[:, i:i + 1] * p[:, :-1]
    slope = p[:, 1:] * np.arange(1, d + 1)  # p′ coefficients, ascending
    candidates = [np.full(n, 0.5), np.zeros(n), np.ones(n)]  # ½ first: it wins ties (A = B, p constant)
    lead = slope[:, -1]
    scale = np.abs(slope).max(axis=1)
    usable = np.abs(lead) > 1e-300 + 1e-14 * scale  # a vanishing leading term: its huge root is far outside [0, 1]
    lead = np.where(usable, lead, 1e-14 * scale + 1e-300)
    companion = np.zeros((n, d - 1, d - 1))
    companion[:, 1:, :-1] = np.eye(d - 2)
    companion[:, :, -1] = -slope[:, :-1] / lead[:, None]
    for root in np.linalg.eigvals(companion).T:
        real = np.real(root)
        ok = (np.abs(np.imag(root)) <= 1e-9 * (1.0 + np.abs(real))) & (real > 0.0) & (real < 1.0)
        candidates.append(np.where(ok, real, 0.0))
    omega = np.stack(candidates, axis=1)  # (n, k)
    value = np.polynomial.polynomial.polyval(omega.T, p.T, tensor=False).T
    best = np.argmax(value, axis=1)
    best[value[:, 0] >= value[np.arange(n), best] * (1.0 - 1e-12)] = 0  # a tie within rounding
    return omega[np.arange(n), best]


def covariance_intersection(xa: np.ndarray, A: np.ndarray, xb: np.ndarray, B: np.ndarray,
                            omega: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fused ``(c, C, ω)`` of pairs ``(xa[i], A[i])``, ``(xb[i], B[i])``: ``C⁻¹ = ω A⁻¹ + (1 − ω) B⁻¹``,
    ``c = C (ω A⁻¹ a + (1 − ω) B⁻¹ b)``, with ω from :func:`ci_weight` unless given.

    Shapes (n, d), (n, d, d); ω (n,) in [0, 1].  ``C`` is symmetrised against rounding.
    """
    xa, xb = np.asarray(xa, np.float64), np.asarray(xb, np.float64)
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    w = ci_weight(A, B) if omega is None else np.broadcast_to(np.asarray(omega, np.float64), xa.shape[:1])
    Ia, Ib = _information(A), _information(B)
    wa, wb = w[:, None, None] * Ia, (1.0 - w)[:, None, None] * Ib
    C = np.linalg.inv(wa + wb)
    C = 0.5 * (C + np.swapaxes(C, 1, 2))
    c = np.einsum("nij,nj->ni", C, np.einsum("nij,nj->ni", wa, xa) + np.einsum("nij,nj->ni", wb, xb))
    return c, C, np.array(w, np.float64)


def difference_distance2(xa: np.ndarray, A: np.ndarray, xb: np.ndarray, B: np.ndarray, dims: int = 4) -> np.ndarray:
    """(n, m) ``d²[i, j] = Δᵀ (A_i + B_j)⁻¹ Δ`` over the first ``dims`` components, ``Δ = xa[i] − xb[j]``.

    χ² with ``dims`` degrees of freedom when ``i`` and ``j`` are one target (module docstring).
    A singular ``A_i + B_j`` gives ``inf`` (never associated).
    """
    n, m = xa.shape[0], xb.shape[0]
    if n == 0 or m == 0:
        return np.zeros((n, m))
    delta = xa[:, None, :dims] - xb[None, :, :dims]
    S = A[:, None, :dims, :dims] + B[None, :, :dims, :dims]
    out = np.full((n, m), np.inf)
    ok = np.linalg.det(S) > 0.0
    solved = np.linalg.solve(S[ok], delta[ok][..., None])[..., 0]
    out[ok] = np.einsum("ki,ki->k", delta[ok], solved)
    return out


def chi2_gate(probability: float, dims: int) -> float:
    """The χ² quantile of ``probability`` with ``dims`` degrees of freedom: 2·P⁻¹(dims/2, p)."""
    return float(2.0 * gammaincinv(dims / 2.0, probability))


def assign_tracks(distance2: np.ndarray, gate: float) -> tuple[np.ndarray, np.ndarray]:
    """GNN pairs (row, column) minimising Σ d² over pairs inside the gate, each row and column used
    at most once; the tracker's own solver (:func:`tracking.associate.assign`: clusters of rival
    pairs, ``linear_sum_assignment`` per cluster), the rows playing tracks and the columns detections."""
    rows, cols = np.nonzero(distance2 <= gate)
    if rows.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    r, c, _ = assign(rows.astype(np.int64), cols.astype(np.int64), distance2[rows, cols].astype(np.float64),
                     distance2.shape[0], distance2.shape[1])
    order = np.argsort(r, kind="stable")
    return r[order].astype(np.int64), c[order].astype(np.int64)


def predict_states(x: np.ndarray, P: np.ndarray, dt_s: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Copies of ``x`` (n, 4), ``P`` (n, 4, 4) predicted by ``dt_s`` (n,) under the tracker's nearly
    constant velocity model with noise density ``q`` (m²/s³) (:func:`tracking.kernels.predict_row`).
    A negative ``dt_s`` (a state newer than the time asked for) is left as it is."""
    x, P = np.array(x, np.float64), np.array(P, np.float64)
    for i, dt in enumerate(np.asarray(dt_s, np.float64).tolist()):
        if dt > 0.0:
            predict_row(x[i], P[i], dt, q)
    return x, P
