"""The conserved balance u u^T - m1 W_V W_V^T of the co-occurrence model, the bounds it puts
on kappa = ||W^T a||^2, and the late-time exponent of the loss (tdyn.cooccurrence.theory)."""

from dataclasses import replace

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from tdyn.cooccurrence.data import sample_training_set
from tdyn.cooccurrence.model import Params, forward, gradients, init_params, word_values
from tdyn.cooccurrence.theory import (
    balance_matrix,
    conserved_quantity,
    euler_drift,
    kappa_interval,
    log_growth_exponent,
    premise_ratio,
)


def _point(seed, kind="onehot", sigma=0.4):
    """A small instance; at sigma = 0.4 attention is far from uniform, so every term of the
    gradients, the softmax ones included, is exercised."""
    data = sample_training_set(12, 4, 30, seed=seed, embedding_kind=kind)
    return data, init_params(30, 8, 6, seed=seed + 10, sigma0=sigma, sigma1=sigma)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", ["onehot", "random"])
def test_balance_matrix_has_zero_velocity(seed, kind):
    """d/dt (u u^T - m1 W_V W_V^T) = 0 for the exact weight velocities -grad, to rounding,
    while each of the two terms moves at order one."""
    data, params = _point(seed, kind)
    grads = gradients(params, data)
    u, du, dV = params.u, -grads["W"].T @ params.a, -grads["WV"]
    term_u = np.outer(du, u) + np.outer(u, du)
    term_v = params.m1 * (dV @ params.WV.T + params.WV @ dV.T)
    scale = np.abs(term_u).max()
    assert scale > 1e-3
    assert np.abs(term_u - term_v).max() <= 1e-12 * scale
    assert np.trace(term_u - term_v) == pytest.approx(0.0, abs=1e-12 * scale)


def _flow(data, params0, t_eval, rtol):
    """Gradient flow of all four weight matrices (Appendix B), integrated by RK45."""
    shapes = [getattr(params0, k).shape for k in Params.TRAINABLE]
    sizes = [int(np.prod(s)) for s in shapes]

    def unpack(z):
        parts = np.split(z, np.cumsum(sizes)[:-1])
        return replace(params0, **{k: p.reshape(s) for k, p, s in
                                   zip(Params.TRAINABLE, parts, shapes, strict=True)})

    def rhs(_, z):
        grads = gradients(unpack(z), data)
        return -np.concatenate([grads[k].ravel() for k in Params.TRAINABLE])

    z0 = np.concatenate([getattr(params0, k).ravel() for k in Params.TRAINABLE])
    sol = solve_ivp(rhs, (0.0, t_eval[-1]), z0, t_eval=t_eval, rtol=rtol, atol=rtol * 1e-3)
    return [unpack(z) for z in sol.y.T]


def test_conserved_along_integrated_flows():
    """Along RK45-integrated gradient flows, kappa - m1 ||W_V||_F^2 drifts only at the
    integrator's tolerance: relative to kappa + m1 ||W_V||_F^2, the drift is below 10 rtol at
    rtol = 1e-6 and falls at least 100-fold at rtol = 1e-9, while kappa itself grows by
    half or more (the quantity is not trivially constant)."""
    data, params0 = _point(5)
    t = np.linspace(0.0, 8.0, 9)
    q0 = conserved_quantity(params0)
    drifts = {}
    for rtol in (1e-6, 1e-9):
        path = _flow(data, params0, t, rtol)
        scale = np.array([p.u @ p.u + p.m1 * np.sum(p.WV ** 2) for p in path])
        drifts[rtol] = max(abs(conserved_quantity(p) - q0) for p in path) / scale.min()
        kappa = np.array([p.u @ p.u for p in path])
        assert kappa[-1] > 1.5 * kappa[0]
        # the m x m matrix itself is conserved, not only its trace
        B0 = balance_matrix(params0)
        assert max(np.abs(balance_matrix(p) - B0).max() for p in path) <= 10 * rtol * scale.max()
    assert drifts[1e-6] < 1e-5
    assert drifts[1e-9] < drifts[1e-6] / 100


def test_gradient_descent_drift_is_the_euler_term():
    """Gradient descent (the Euler scheme) changes the conserved quantity by exactly
    lr^2 (||grad_W^T a||^2 - m1 ||grad_WV||_F^2) per step: summed over 300 steps this matches
    the measured change to rounding, and the change shrinks like lr^2 * steps ~ lr."""
    data, params0 = _point(2)
    changes = {}
    for lr in (0.02, 0.01):
        params, predicted = params0, 0.0
        for _ in range(int(6 / lr)):
            grads = gradients(params, data)
            predicted += euler_drift(params, grads, lr)
            params = replace(params, **{k: getattr(params, k) - lr * grads[k]
                                        for k in Params.TRAINABLE})
        measured = conserved_quantity(params) - conserved_quantity(params0)
        assert measured == pytest.approx(predicted, rel=1e-9, abs=1e-13)
        changes[lr] = measured
    # first-order scheme: the accumulated drift over a fixed time halves with the step
    assert abs(changes[0.01] / changes[0.02]) == pytest.approx(0.5, rel=0.1)


def test_kappa_interval_holds_along_the_flow_and_tightens():
    """kappa(t) lies in the interval set by ||G(t)||^2 and the spectrum of B(0) (up to the
    integrator's tolerance), and the interval's relative width shrinks as ||G|| grows: late
    in training kappa ~ sqrt(m1) ||G||.  Small initialization (sigma = 0.1), as in Condition 1."""
    data, params0 = _point(3, sigma=0.1)
    eig = np.linalg.eigvalsh(balance_matrix(params0))
    path = _flow(data, params0, np.array([0.0, 5.0, 20.0, 60.0]), 1e-10)
    kappa = np.array([p.u @ p.u for p in path])
    G2 = np.array([np.sum(word_values(p, data.embeddings) ** 2) for p in path])
    lo, hi = kappa_interval(G2, eig, params0.m1)
    slack = 1e-7 * kappa
    assert np.all((lo - slack <= kappa) & (kappa <= hi + slack))
    width = (hi - lo) / kappa
    assert width[-1] < 0.2 * width[0]
    assert kappa[-1] == pytest.approx(np.sqrt(params0.m1 * G2[-1]), rel=width[-1])


def test_kappa_identity_at_any_point():
    """kappa^2 - m1 ||G||^2 = u^T B u is an identity of the weights (orthonormal words)."""
    data, params = _point(1, "random")
    G = word_values(params, data.embeddings)
    B = balance_matrix(params)
    kappa = params.u @ params.u
    assert kappa ** 2 - params.m1 * G @ G == pytest.approx(params.u @ B @ params.u, rel=1e-10)


def test_log_growth_exponent_matches_the_log_ode():
    """dX/dt = c log X (X = 1/L), integrated numerically from X = 3: its local exponent
    d log X / d log t approaches l e^{-l} Ei(l) (l = log X); the remaining transient decays
    like 1/t, so by t = 1e5 the two agree within 2e-3 while the exponent itself still
    differs from 1 by more than 0.05 (the correction to the 1/t law is not small)."""
    for c in (1.0, 50.0):
        sol = solve_ivp(lambda _, x, c=c: c * np.log(x), (0.0, 1e7), [3.0], rtol=1e-11,
                        atol=1e-12, dense_output=True)
        errors = []
        for t in (1e3, 1e5, 1e7):
            X = sol.sol(t)[0]
            measured = c * t * np.log(X) / X
            predicted = -log_growth_exponent(1 / X)
            errors.append(abs(measured - predicted))
            assert measured - 1 > 0.04
        assert errors[1] < 2e-3
        assert errors[2] < errors[1] < errors[0]


def test_log_growth_exponent_series_and_domain():
    """-exponent = 1 + 1/l + 2/l^2 + O(1/l^3) (asymptotic series of l e^{-l} Ei(l))."""
    ell = np.array([20.0, 40.0])
    exponent = log_growth_exponent(np.exp(-ell))
    assert np.all(np.abs(-exponent - (1 + 1 / ell + 2 / ell ** 2)) < 10 / ell ** 3)
    with pytest.raises(ValueError, match="below 1/e"):
        log_growth_exponent(0.5)
    assert premise_ratio(32.0, 16, 2.0) == pytest.approx(4.0)


def test_forward_values_consistent():
    """G = W_V^T u on one-hot words: the vector that enters the identity above."""
    data, params = _point(0)
    G = word_values(params, data.embeddings)
    np.testing.assert_allclose(G, params.WV.T @ params.u, rtol=1e-12)
    assert forward(params, data).F.shape == (data.n,)
