"""The IMM option: kernels against filterpy's IMMEstimator, and its benefit on manoeuvring targets."""

import numpy as np
import pytest
from filterpy.kalman import IMMEstimator, KalmanFilter

from fusion.evaluate import score_frames
from fusion.synthetic import manoeuvre_scenario, ncv_scenario, position_scans
from tests.test_kernels import random_spd
from tracking import Tracker, TrackerConfig
from tracking.config import ImmConfig
from tracking.imm import mode_transition, pair_log_likelihood, predict_tracks, update_track
from tracking.kernels import process_noise, transition


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("models", [2, 3])
def test_imm_kernels_match_filterpy(seed, models):
    """Predict/update cycles of one track with two or three models (the default chain: quiet,
    moderate, manoeuvring): every model's state, μ and the mixture."""
    rng = np.random.default_rng(seed)
    dt, q = 1.3, rng.uniform(0.5, 4.0)
    scales, sojourn = np.array([0.04, 1.0, 16.0]), np.array([20.0, 10.0, 5.0])
    if models == 2:
        scales, sojourn = scales[[0, 2]], sojourn[[0, 2]]
    Pi = np.empty((models, models))
    mode_transition(dt, sojourn, Pi)
    assert Pi[0, 0] == pytest.approx(np.exp(-dt / 20.0)) and np.allclose(Pi.sum(axis=1), 1.0)

    x0, P0 = rng.normal(0, 50, 4), random_spd(rng, 4, 30.0)
    mu0 = np.array([0.8, 0.2]) if models == 2 else np.array([0.7, 0.2, 0.1])
    filters = []
    for scale in scales:
        kf = KalmanFilter(dim_x=4, dim_z=2)
        kf.x, kf.P = x0.reshape(4, 1).copy(), P0.copy()
        kf.F, kf.Q = transition(dt), process_noise(dt, q * scale)
        kf.H = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
        filters.append(kf)
    imm = IMMEstimator(filters, mu0.copy(), Pi.copy())

    x, P = x0[None].copy(), P0[None].copy()
    xm, Pm = np.repeat(x0[None, None], models, axis=1), np.repeat(P0[None, None], models, axis=1)
    mu, t_state = mu0[None].copy(), np.zeros(1)
    loglik = np.empty(models)
    for k in range(6):
        imm.predict()
        predict_tracks(x, P, xm, Pm, mu, t_state, np.ones(1, bool), np.array([q]), scales, sojourn, (k + 1) * dt)
        for m, kf in enumerate(filters):  # each model's prior from the mixed initial conditions
            np.testing.assert_allclose(xm[0, m], kf.x[:, 0], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(Pm[0, m], kf.P, rtol=1e-9, atol=1e-9)
        jump = np.array([90.0, -70.0]) if k == 3 else np.zeros(2)  # one surprising detection
        z = x[0, :2] + rng.normal(0, 5, 2) + jump
        before = mu[0, -1]
        R = random_spd(rng, 2, 40.0)
        for kf in filters:
            kf.R = R
        imm.update(z.reshape(2, 1))
        update_track(x, P, xm, Pm, mu, 0, z, R, np.nan, 1.0, 1.0, 0.0, loglik)
        np.testing.assert_allclose(mu[0], imm.mu, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(x[0], imm.x[:, 0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(P[0], imm.P, rtol=1e-9, atol=1e-9)
        for m, kf in enumerate(filters):
            np.testing.assert_allclose(xm[0, m], kf.x[:, 0], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(Pm[0, m], kf.P, rtol=1e-9, atol=1e-9)
        if k == 3:
            assert mu[0, -1] > before + 0.2  # the jump is the manoeuvring model's evidence


def test_the_default_chain_is_quiet_moderate_manoeuvring_most_agile_last():
    """The tracker gates with the last model (:meth:`tracking.Tracker.step`), so the chain must end
    with the most agile one; ``moderate_scale = 0`` leaves the two-model chain."""
    three = Tracker(TrackerConfig(), 1)
    imm = TrackerConfig().imm
    assert three._scales.tolist() == [imm.quiet_scale**2, imm.moderate_scale**2, imm.manoeuvre_scale**2]
    assert np.all(np.diff(three._scales) > 0) and three.table.cols.mu.shape[1] == 3
    assert three._sojourn.tolist() == [imm.quiet_sojourn_s, imm.moderate_sojourn_s, imm.manoeuvre_sojourn_s]
    two = Tracker(TrackerConfig(imm=ImmConfig(moderate_scale=0.0)), 1)
    assert two._scales.tolist() == [imm.quiet_scale**2, imm.manoeuvre_scale**2] and two.table.cols.mu.shape[1] == 2


def test_imm_missed_detection_moves_mu_to_the_predicted_mode_probabilities():
    """Without an update, μ becomes c̄ = Πᵀμ (filterpy keeps the old μ; the textbook IMM does not)."""
    sojourn, scales = np.array([20.0, 5.0]), np.array([0.04, 16.0])
    x, P = np.zeros((1, 4)), np.eye(4)[None] * 10.0
    xm, Pm = np.zeros((1, 2, 4)), np.repeat(P[:, None], 2, axis=1)
    mu = np.array([[1.0, 0.0]])
    predict_tracks(x, P, xm, Pm, mu, np.zeros(1), np.ones(1, bool), np.ones(1), scales, sojourn, 2.0)
    Pi = np.empty((2, 2))
    mode_transition(2.0, sojourn, Pi)
    np.testing.assert_allclose(mu[0], Pi[0])
    # the mixture's covariance lies between the two models' (weighted by μ)
    assert Pm[0, 0, 2, 2] < P[0, 2, 2] < Pm[0, 1, 2, 2]


@pytest.mark.parametrize("seed", range(3))
def test_pair_log_likelihood_is_the_model_mixture_density(seed):
    """The association cost: ln Σ_m μ_m N(z; H x_m, H P_m Hᵀ + R) per gated pair, against scipy."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(seed)
    n_tracks, n_det, M = 4, 5, 2
    xm = rng.normal(0, 30, (n_tracks, M, 4))
    Pm = np.array([[random_spd(rng, 4, 20.0 * (1 + 5 * m)) for m in range(M)] for _ in range(n_tracks)])
    mu = rng.dirichlet(np.ones(M), n_tracks)
    z = rng.normal(0, 40, (n_det, 2))
    R = np.array([random_spd(rng, 2, 15.0) for _ in range(n_det)])
    ti, dj = np.repeat(np.arange(n_tracks), n_det), np.tile(np.arange(n_det), n_tracks)
    got = pair_log_likelihood(ti, dj, xm, Pm, mu, z, R)
    want = [np.log(sum(mu[i, m] * multivariate_normal(xm[i, m, :2], Pm[i, m, :2, :2] + R[j]).pdf(z[j])
                       for m in range(M))) for i, j in zip(ti, dj)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def _scores(scenario, scans, config):
    tracker = Tracker(config, 1)
    frames = []
    for k, scan in enumerate(scans):
        tracker.step(scan)
        if k >= 10:
            est = tracker.estimates(scan.time)
            frames.append((list(range(scenario.position.shape[1])), scenario.position[k],
                           est.track_id.tolist(), est.x[:, :2]))
    return score_frames(frames, c=100.0)


def test_imm_default_is_better_on_smooth_targets_and_close_on_manoeuvres():
    """The default motion model (the IMM: quiet, moderate and manoeuvring near-constant-velocity models)
    against one model with the class agility.  On straight nearly-constant-velocity targets it is
    clearly more accurate.  On 90° turns at up to 20 °/s and stops at 1 Hz it keeps identities at
    least as well as the agile single model, at about the same GOSPA: the quiet model lags the first
    second of a turn, but the gate is the agile model's and the association cost the mixture's, so
    the turning target's plot is still found (README, 'The tracker out of the box')."""
    imm = TrackerConfig()
    plain = TrackerConfig(imm=ImmConfig(enabled=False))
    assert imm.imm.enabled
    gospa = {"manoeuvre": [], "straight": []}
    idf1 = []
    for seed in range(2):
        for kind, scenario in (("manoeuvre", manoeuvre_scenario(30, 300.0, seed=seed)),
                               ("straight", ncv_scenario(30, 300.0, seed=seed, half_width_m=5000.0))):
            scans = position_scans(scenario, pd=0.9, sigma_m=10.0, clutter_per_scan=10.0, seed=seed + 100)
            with_imm, without = _scores(scenario, scans, imm), _scores(scenario, scans, plain)
            gospa[kind].append((with_imm["gospa"]["mean"], without["gospa"]["mean"]))
            if kind == "manoeuvre":
                idf1.append((with_imm["idf1"], without["idf1"]))
    ratio = {kind: sum(a for a, _ in pairs) / sum(b for _, b in pairs) for kind, pairs in gospa.items()}
    assert ratio["straight"] < 0.75, gospa  # measured 0.61 (two models: 0.68)
    assert ratio["manoeuvre"] < 1.1, gospa  # measured 1.01 (two models: 1.03)
    # measured 0.93 / 0.89 and 1.00 / 1.00; gated and costed by the mixture alone: 0.68 / 0.89 and 0.82 / 1.00
    assert all(a > b - 0.02 for a, b in idf1), idf1
