"""tdyn.markov, reduced (e, w, b) model: loss, gradient, flow, energy, critical points, basins."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from tdyn.markov import chain, reduced

REGIMES = [(0.5, 0.8), (0.2, 0.3), (0.9, 0.9), (0.1, 0.1)]  # p + q > 1, < 1, > 1, < 1
RNG = np.random.default_rng(20240605)
POINTS = RNG.normal(size=(40, 3)) * np.array([1.2, 1.2, 1.5])  # (e, w, b)


def _torch_loss(e, w, b, p, q):
    """The population loss written independently, in torch, for autograd."""
    pi0, pi1 = q / (p + q), p / (p + q)
    f0 = b - 0.5 * e**2
    f1 = f0 + (1 + 2 * w * torch.abs(w)) * e**2
    ls = torch.nn.functional.logsigmoid
    return (pi0 * (-p * ls(f0) - (1 - p) * ls(-f0))
            + pi1 * (-(1 - q) * ls(f1) - q * ls(-f1)))


@pytest.mark.parametrize(("p", "q"), REGIMES)
def test_loss_matches_an_independent_torch_formula(p, q):
    e, w, b = POINTS.T
    ours = reduced.reduced_loss(e, w, b, p, q)
    theirs = _torch_loss(*(torch.tensor(v, dtype=torch.float64) for v in (e, w, b)), p, q)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-13)


@pytest.mark.parametrize(("p", "q"), REGIMES)
def test_gradient_matches_autograd(p, q):
    for e, w, b in POINTS:
        params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (e, w, b)]
        _torch_loss(*params, p, q).backward()
        auto = [t.grad.item() for t in params]
        np.testing.assert_allclose(reduced.reduced_grad(e, w, b, p, q), auto, rtol=1e-10,
                                   atol=1e-14)


@pytest.mark.parametrize(("p", "q"), REGIMES)
def test_gradient_matches_finite_differences(p, q):
    h = 1e-6
    for e, w, b in POINTS:
        grad = reduced.reduced_grad(e, w, b, p, q)
        fd = [
            (reduced.reduced_loss(e + h, w, b, p, q) - reduced.reduced_loss(e - h, w, b, p, q)),
            (reduced.reduced_loss(e, w + h, b, p, q) - reduced.reduced_loss(e, w - h, b, p, q)),
            (reduced.reduced_loss(e, w, b + h, p, q) - reduced.reduced_loss(e, w, b - h, p, q)),
        ]
        np.testing.assert_allclose(grad, np.array(fd) / (2 * h), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("p", "q"), REGIMES)
def test_reduced_gradient_with_optimal_bias(p, q):
    # Envelope theorem: the gradient of L~(e, w) = min_b L is the partial gradient at b*.
    h = 1e-6
    for e, w, _ in POINTS:
        de, dw = reduced.reduced_grad_opt(e, w, p, q)
        fd_e = (reduced.reduced_loss_opt(e + h, w, p, q) - reduced.reduced_loss_opt(e - h, w, p, q))
        fd_w = (reduced.reduced_loss_opt(e, w + h, p, q) - reduced.reduced_loss_opt(e, w - h, p, q))
        np.testing.assert_allclose([de, dw], [fd_e / (2 * h), fd_w / (2 * h)], rtol=1e-5,
                                   atol=1e-8)
        # and the closed form 2 c e g1, 4 e^2 |w| g1
        pi1 = p / (p + q)
        f1 = reduced.reduced_logits(e, w, reduced.optimal_bias(e, w, p, q))[1]
        g1 = pi1 * (1 / (1 + math.exp(-f1)) - (1 - q))
        np.testing.assert_allclose([de, dw], [2 * reduced.gain(w) * e * g1,
                                              4 * e**2 * abs(w) * g1], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize(("p", "q"), REGIMES + [(0.3, 0.3), (0.9, 0.2)])
def test_optimal_bias_is_the_root_of_the_bias_gradient(p, q):
    for e, w, _ in POINTS:
        s = reduced.gain(w) * e**2
        if abs(s) > 20:  # the loss is flat in b to machine precision there; see next test
            continue
        root = brentq(lambda b, e=e, w=w: reduced.reduced_grad(e, w, b, p, q)[2], -60, 60,
                      xtol=1e-14)
        assert reduced.optimal_bias(e, w, p, q) == pytest.approx(root, abs=1e-9)


@pytest.mark.parametrize(("p", "q"), [(0.5, 0.8), (0.2, 0.3), (0.4, 0.4), (0.8, 0.1)])
def test_optimal_bias_is_finite_and_minimal_far_out(p, q):
    e = np.array([6.0, 8.0, 20.0, 30.0, 3.0])
    w = np.array([3.0, -3.0, 2.0, -1.0, 1e-3])  # s = c e^2 up to ~ +-1800
    b = reduced.optimal_bias(e, w, p, q)
    assert np.all(np.isfinite(b))
    # Far out both logits saturate and the loss is linear in b with slope
    # pi_1 q - pi_0 p = 0: flat to rounding, so compare with a relative tolerance.
    base = reduced.reduced_loss(e, w, b, p, q) * (1 - 1e-14)
    for delta in (1e-2, 1.0):
        assert np.all(reduced.reduced_loss(e, w, b + delta, p, q) >= base)
        assert np.all(reduced.reduced_loss(e, w, b - delta, p, q) >= base)


@pytest.mark.parametrize(("p", "q"), REGIMES)
def test_critical_values(p, q):
    w = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(reduced.reduced_loss_opt(0.0, w, p, q), chain.unigram_loss(p, q),
                               rtol=1e-13)
    np.testing.assert_allclose(reduced.optimal_bias(0.0, w, p, q), math.log(p / q), atol=1e-13)
    e_star = reduced.global_min_e(w, p, q)
    ok = np.isfinite(e_star)
    assert ok.sum() >= 5
    # The global-minimum curve lies on the side of -1/sqrt 2 where c(w) has the gap's sign.
    assert np.all((reduced.gain(w[ok]) > 0) == (p + q < 1))
    np.testing.assert_allclose(reduced.reduced_loss_opt(e_star[ok], w[ok], p, q),
                               chain.entropy_rate(p, q), rtol=1e-12)
    for e, ww in zip(e_star[ok], w[ok], strict=True):
        assert np.allclose(reduced.reduced_grad_opt(e, ww, p, q), 0, atol=1e-13)


@pytest.mark.parametrize(("p", "q"), REGIMES)
def test_curvature_across_the_unigram_line(p, q):
    h = 1e-3
    for w in (-2.0, -0.9, -0.3, 0.4, 1.7):
        second = (reduced.reduced_loss_opt(h, w, p, q) - 2 * reduced.reduced_loss_opt(0, w, p, q)
                  + reduced.reduced_loss_opt(-h, w, p, q)) / h**2
        assert second == pytest.approx(reduced.unigram_curvature(w, p, q), rel=1e-4)


@pytest.mark.parametrize(("p", "q"), REGIMES)
def test_types_of_the_critical_points(p, q):
    unigram = chain.unigram_loss(p, q)
    for w in (-2.5, -1.0, -0.75, -0.6, -0.2, 0.0, 0.5, 2.0):
        kind = str(reduced.critical_point_type(w, p, q))
        around = reduced.reduced_loss_opt(np.array([-0.05, -1e-3, 1e-3, 0.05]), w, p, q)
        flat_in_w = reduced.reduced_loss_opt(0.0, np.array([w - 0.1, w + 0.1]), p, q)
        np.testing.assert_allclose(flat_in_w, unigram, rtol=1e-13)
        if kind == "local min":
            assert np.all(around > unigram)
        else:
            assert kind == "local max" and np.all(around < unigram)
    assert str(reduced.critical_point_type(reduced.W_SADDLE, p, q)) == "saddle"
    # Near the saddle, the curvature across e = 0 changes sign along w.
    left = reduced.unigram_curvature(reduced.W_SADDLE - 1e-3, p, q)
    right = reduced.unigram_curvature(reduced.W_SADDLE + 1e-3, p, q)
    assert left * right < 0
    info = reduced.critical_points(p, q)
    lo, hi = info["local_min_w"]
    expected = (reduced.W_SADDLE, math.inf) if p + q > 1 else (-math.inf, reduced.W_SADDLE)
    assert (lo, hi) == expected


def test_saddle_energy_and_separatrix():
    assert reduced.energy(0.0, reduced.W_SADDLE) == pytest.approx(reduced.SADDLE_ENERGY, rel=1e-14)
    assert reduced.SADDLE_ENERGY == pytest.approx(-0.8466, abs=1e-4)
    w = np.linspace(-3, -0.05, 50)
    e = reduced.separatrix_e(w)
    ok = np.isfinite(e)
    np.testing.assert_allclose(reduced.energy(e[ok], w[ok]), reduced.SADDLE_ENERGY, atol=1e-12)
    # E(0, w) <= E_saddle for every w < 0, with equality only at the saddle
    assert np.all(reduced.energy(0.0, w) <= reduced.SADDLE_ENERGY + 1e-15)


@pytest.mark.parametrize(("p", "q"), REGIMES)
def test_energy_derivative_along_the_joint_flow(p, q):
    # dE/dt = grad E . (-grad L) = 2 e^2 dL/db: zero exactly when the bias is optimal.
    for e, w, b in POINTS:
        de, dw, db = reduced.reduced_grad(e, w, b, p, q)
        grad_energy = np.array([2 * e, -2 * w - 1 / abs(w)])
        rate = grad_energy @ np.array([-de, -dw])
        assert rate == pytest.approx(2 * e**2 * db, rel=1e-9, abs=1e-14)


@pytest.mark.parametrize(("p", "q"), REGIMES)
def test_energy_is_conserved_to_the_integrator_tolerance(p, q):
    drifts = {}
    for rtol in (1e-6, 1e-10):
        worst = 0.0
        for e0, w0 in [(0.5, -0.5), (1.5, 0.8), (-0.7, -1.6), (0.3, 2.0), (2.0, -0.3)]:
            flow = reduced.integrate_flow(e0, w0, p, q, t_max=500, rtol=rtol, atol=rtol * 1e-3)
            scale = 1 + abs(flow.energy[0])
            worst = max(worst, np.max(np.abs(flow.energy - flow.energy[0])) / scale)
        drifts[rtol] = worst
        assert worst < 100 * rtol
    assert drifts[1e-10] < drifts[1e-6]


@pytest.mark.parametrize(("p", "q"), REGIMES)
def test_flow_decreases_the_loss_and_ends_at_a_critical_point(p, q):
    for e0, w0 in [(0.5, -0.5), (1.5, 0.8), (-0.7, -1.6)]:
        flow = reduced.integrate_flow(e0, w0, p, q, t_max=3000)
        assert np.all(np.diff(flow.loss) <= 1e-12)
        assert np.allclose(reduced.reduced_grad_opt(flow.e[-1], flow.w[-1], p, q), 0, atol=1e-6)
        assert np.all(np.sign(flow.w) == np.sign(w0))  # w never changes sign


def _grid_starts():
    """A grid of starts, off the measure-zero boundaries of the basins."""
    e, w = np.meshgrid(np.linspace(-2.4, 2.4, 9), np.linspace(-2.6, 2.2, 13))
    e, w = e.ravel(), w.ravel()
    keep = ((np.abs(e) > 0.1) & (np.abs(w) > 0.05) & (np.abs(w - reduced.W_SADDLE) > 0.05)
            & (np.abs(reduced.energy(e, w) - reduced.SADDLE_ENERGY) > 0.05))
    return e[keep], w[keep]


@pytest.mark.slow
@pytest.mark.parametrize(("p", "q"), REGIMES)
def test_predicted_basins_match_simulated_flow_end_points(p, q):
    e0, w0 = _grid_starts()
    predicted = reduced.basin(e0, w0, p, q)
    ends = np.array([reduced.integrate_flow(e, w, p, q, t_max=3000).loss[-1]
                     for e, w in zip(e0, w0, strict=True)])
    simulated = reduced.reaches_global(ends, p, q)
    assert np.array_equal(predicted, simulated)
    assert 0.15 < predicted.mean() < 0.95  # both basins are represented
    # and the losses at the end are the two critical values
    np.testing.assert_allclose(ends[simulated], chain.entropy_rate(p, q), atol=1e-6)
    np.testing.assert_allclose(ends[~simulated], chain.unigram_loss(p, q), atol=1e-6)


def test_basin_naive_agrees_with_vectorized():
    e, w = RNG.normal(size=(2, 2000)) * 2
    for p, q in REGIMES:
        fast = reduced.basin(e, w, p, q)
        slow = np.array([reduced.basin_naive(a, b, p, q) for a, b in zip(e, w, strict=True)])
        assert np.array_equal(fast, slow)


@pytest.mark.parametrize(("p", "q", "expected"), [((0.5, 0.8, 0.0)), (0.2, 0.3, 1.0)])
def test_small_gaussian_init_near_the_origin(p, q, expected):
    # The paper's point: near the origin, p + q > 1 flows to the unigram minimum and
    # p + q < 1 to the bigram minimum.  Discrete gradient descent on many starts at once.
    rng = np.random.default_rng(0)
    e0, w0 = 0.02 * rng.normal(size=(2, 64))
    assert reduced.basin(e0, w0, p, q).mean() == expected
    run = reduced.gradient_descent(e0, w0, p, q, lr=0.5, steps=4000, record_every=4000)
    assert reduced.reaches_global(run.loss[-1], p, q).mean() == expected


def test_gradient_descent_approaches_the_flow_as_the_step_shrinks():
    p, q, e0, w0 = 0.5, 0.8, 0.9, -0.6
    flow = reduced.integrate_flow(e0, w0, p, q, t_max=20.0, rtol=1e-11, atol=1e-13)
    errors = []
    for lr in (0.02, 0.01):
        gd = reduced.gradient_descent(e0, w0, p, q, lr=lr, steps=round(20.0 / lr))
        errors.append(abs(gd.e[-1] - flow.e[-1]) + abs(gd.w[-1] - flow.w[-1]))
    assert errors[1] < 0.6 * errors[0] and errors[1] < 5e-3


def test_joint_gradient_descent_trains_the_bias():
    # Momentum SGD on (e, w, b), as in the official Markov-Fixed runs, but on the population
    # loss: from (1, -1, 0) at (0.5, 0.8) it reaches the bigram loss.
    run = reduced.gradient_descent(1.0, -1.0, 0.5, 0.8, lr=0.01, steps=3000, b0=0.0,
                                  momentum=0.9, record_every=100)
    assert run.loss[-1] == pytest.approx(chain.entropy_rate(0.5, 0.8), abs=1e-4)
    assert not run.optimal_bias


@pytest.mark.parametrize(
    "kwargs", [{"lr": 0.0}, {"steps": 0}, {"momentum": 1.0}, {"record_every": 0}]
)
def test_gradient_descent_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        reduced.gradient_descent(0.1, 0.1, 0.5, 0.8, **kwargs)


def test_reduced_functions_validate_p_and_q():
    with pytest.raises(ValueError, match="p="):
        reduced.reduced_loss(0.1, 0.1, 0.0, 1.2, 0.5)
    with pytest.raises(ValueError, match="q="):
        reduced.basin(0.1, 0.1, 0.5, 0.0)


@pytest.mark.parametrize(("p", "q"), REGIMES)
def test_sample_gradient_from_counts(p, q):
    # With the population counts pi_i P_ij the sample loss and gradient are the population's.
    population = chain.stationary(p, q)[:, None] * chain.transition_matrix(p, q)
    for e, w, b in POINTS[:10]:
        loss, *grad = reduced.reduced_grad_from_counts(e, w, b, 1000 * population)
        assert loss == pytest.approx(float(reduced.reduced_loss(e, w, b, p, q)), rel=1e-12)
        np.testing.assert_allclose(grad, reduced.reduced_grad(e, w, b, p, q), rtol=1e-10,
                                   atol=1e-15)
    # On a sample: the gradient of the empirical cross-entropy, by autograd.
    x = chain.sample(p, q, 4, 300, rng=1)
    e, w, b = POINTS[0]
    params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (e, w, b)]
    logits = (params[0] ** 2 * (1 + 2 * params[1] * torch.abs(params[1]))
              * torch.tensor(x[:, :-1], dtype=torch.float64) - params[0] ** 2 / 2 + params[2])
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.tensor(x[:, 1:], dtype=torch.float64))
    loss.backward()
    ours = reduced.reduced_grad_from_counts(e, w, b, chain.transition_counts(x))
    assert ours[0] == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(ours[1:], [t.grad.item() for t in params], rtol=1e-10)


def test_sgd_on_sampled_sequences_mirrors_the_official_canonical_runs():
    # Markov-Fixed's setting (SGD lr 0.01, momentum 0.9, 16 x 512 fresh targets per step):
    # a small init is trapped at the unigram loss for (0.5, 0.8) but not for (0.2, 0.3), and
    # an init with w < -1/sqrt 2 does the opposite.
    for (p, q), small, negative in [((0.5, 0.8), "unigram", "bigram"),
                                    ((0.2, 0.3), "bigram", "unigram")]:
        run = reduced.sgd_sampled([0.01, 0.5], [0.01, -2.0], [0.0, 0.0], p, q, rng=3,
                                 steps=400, record_every=400)
        target = {"unigram": chain.unigram_loss(p, q), "bigram": chain.entropy_rate(p, q)}
        assert run.loss[-1, 0] == pytest.approx(target[small], abs=2e-3)
        assert run.loss[-1, 1] == pytest.approx(target[negative], abs=2e-3)
    a = reduced.sgd_sampled(0.3, -1.0, 0.0, 0.5, 0.8, rng=5, steps=20)
    b = reduced.sgd_sampled(0.3, -1.0, 0.0, 0.5, 0.8, rng=5, steps=20)
    assert np.array_equal(a.e, b.e)


@pytest.mark.parametrize(("p", "q"), [(0.5, 0.8), (0.2, 0.3)])
@pytest.mark.parametrize("w", [-1.5, -0.3, 0.8])
def test_unigram_line_in_e_w_b_space_has_no_strict_extremum(p, q, w):
    # With the bias trained rather than optimized, the unigram line (0, w, b*) is a saddle
    # where the bias-optimized loss has a "local max" (curvatures: -, 0 along w, + along b)
    # and a non-strict minimum (flat along w) where it has a "local min".  Central finite
    # differences of step 1e-4 on a smooth loss: error O(h^2) ~ 1e-8, far below the
    # eigenvalues (> 0.1 in absolute value) whose signs are checked.
    pi1 = chain.stationary(p, q)[1]
    x0 = np.array([0.0, w, np.log(pi1 / (1 - pi1))])
    h, eye = 1e-4, np.eye(3) * 1e-4
    loss = lambda x: float(reduced.reduced_loss(x[0], x[1], x[2], p, q))  # noqa: E731
    hess = np.array([[(loss(x0 + eye[i] + eye[j]) - loss(x0 + eye[i] - eye[j])
                       - loss(x0 - eye[i] + eye[j]) + loss(x0 - eye[i] - eye[j])) / (4 * h * h)
                      for j in range(3)] for i in range(3)])
    eig = np.linalg.eigvalsh(hess)
    kind = str(reduced.critical_point_type(w, p, q))
    assert abs(eig).min() < 1e-6  # flat along w
    if kind == "local max":
        assert eig[0] < -0.1 and eig[2] > 0.1  # a saddle of the (e, w, b) loss
    else:
        assert kind == "local min" and eig[1] > 0.1  # non-strict minimum


def test_gradient_descent_lets_a_diverging_start_diverge_without_warnings():
    rng = np.random.default_rng(0)
    e0, w0 = rng.normal(size=(2, 600)) * 4.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = reduced.gradient_descent(e0, w0, 0.1, 0.1, lr=0.02, steps=10_000,
                                       record_every=10_000)
    diverged = np.isnan(run.loss[-1])
    assert 0 < diverged.sum() < diverged.size
    assert not reduced.reaches_global(run.loss[-1], 0.1, 0.1)[diverged].any()
