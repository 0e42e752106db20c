"""The conserved balance of the co-occurrence model (Yang, Kailkhura, Wang & Liang 2024) and
the late-time loss law it implies.  Derivations are ours (book chapter on the gradient flow);
the paper's Theorem F.8 assumes instead that kappa = ||W^T a||^2 stays Theta(sigma_1^2 m m1).

With u = W^T a and s = sum_i c_i sum_l X^(i) p^(i)_l (c_i = g_i y_i / n), the flow of
Appendix B gives du/dt = m1 W_V s and dW_V/dt = u s^T, hence

    d/dt (u u^T - m1 W_V W_V^T) = 0          (the balance matrix, m x m),
    d/dt (kappa - m1 ||W_V||_F^2) = 0        (its trace; ||W_V||_F^2 = tr Gamma).

Everything is numpy float64.
"""

from __future__ import annotations

import numpy as np

from tdyn.cooccurrence.model import Params


def balance_matrix(params: Params) -> np.ndarray:
    """B = u u^T - m1 W_V W_V^T (m x m), constant along the gradient flow (our Proposition:
    du/dt = m1 W_V s and dW_V/dt = u s^T make both terms change by m1 (W_V s u^T + u s^T W_V^T))."""
    u = params.u
    return np.outer(u, u) - params.m1 * params.WV @ params.WV.T


def conserved_quantity(params: Params) -> float:
    """tr B = kappa - m1 tr Gamma = ||W^T a||^2 - m1 ||W_V||_F^2, conserved by the flow
    (tr Gamma over an orthonormal basis of all d words equals ||W_V||_F^2)."""
    return float(params.u @ params.u - params.m1 * np.sum(params.WV ** 2))


def euler_drift(params: Params, grads: dict, lr: float) -> float:
    """Exact change of :func:`conserved_quantity` in one gradient-descent step of size lr
    (the Euler scheme of the flow): with b = -grad_W^T a / m1 = W_V s and s^T = u^T
    (-grad_WV) / kappa, the first-order terms cancel and

        Delta = lr^2 (||m1 b||^2 - m1 kappa ||s||^2) = lr^2 m1 (m1 ||W_V s||^2 - kappa ||s||^2).

    Written from the gradients themselves: lr^2 (||grad_W^T a||^2 - m1 ||grad_WV||_F^2)."""
    du = grads["W"].T @ params.a
    return float(lr ** 2 * (du @ du - params.m1 * np.sum(grads["WV"] ** 2)))


def kappa_interval(G_norm2, balance_eigs, m1: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on kappa from ||G||^2 (all d words) and the spectrum of the conserved B.

    G = W_V^T u (one-hot words; for any orthonormal E the same with E^T), so m1 ||G||^2 =
    u^T (m1 W_V W_V^T) u = kappa^2 - u^T B u, and lambda_min(B) kappa <= u^T B u <=
    lambda_max(B) kappa.  Solving kappa^2 - lambda kappa - m1 ||G||^2 = 0:

        kappa in [(l_min + sqrt(l_min^2 + 4 m1 ||G||^2)) / 2,
                  (l_max + sqrt(l_max^2 + 4 m1 ||G||^2)) / 2].

    Both ends tend to sqrt(m1) ||G|| once sqrt(m1) ||G|| >> |lambda| (the late-time regime)."""
    G_norm2 = np.asarray(G_norm2, dtype=float)
    lo, hi = float(np.min(balance_eigs)), float(np.max(balance_eigs))
    return ((lo + np.sqrt(lo ** 2 + 4 * m1 * G_norm2)) / 2,
            (hi + np.sqrt(hi ** 2 + 4 * m1 * G_norm2)) / 2)


def log_growth_exponent(loss) -> np.ndarray:
    """Local exponent d log L / d log t predicted late in Phase 2 (our derivation).

    With the rate law d(1/L)/dt = r kappa (Theorem F.8's mechanism), kappa ~ sqrt(m1) ||G||
    (the balance) and ||G|| ~ gamma log(1/L) (margins grow like the log of the inverse loss),
    X = 1/L obeys dX/dt = c log X.  With l = log X this is e^l / l dl = c dt, so
    Ei(l) = c t + const (Ei the exponential integral), and

        d log L / d log t = -c t l / X = -l e^{-l} Ei(l) = -(1 + 1/l + 2/l^2 + ...)

    up to a transient that decays like 1/t: a correction to the 1/t law that depends only on
    the current loss, L ~ 1/(c t log t).  Needs loss < 1/e (l > 1)."""
    from scipy.special import expi

    x = np.log(1 / np.asarray(loss, dtype=float))
    if np.any(x <= 1):
        raise ValueError("loss must be below 1/e for the late-time law (log(1/L) > 1)")
    return -x * np.exp(-x) * expi(x)


def premise_ratio(kappa0: float, m1: int, margin) -> np.ndarray:
    """kappa(0) / (sqrt(m1) * margin): Theorem F.8's constant-kappa premise needs this >> 1
    for the margins (of order log of the inverse loss, so log T*) that Phase 2 reaches;
    below 1, the balance forces kappa to grow like sqrt(m1) ||G||."""
    return kappa0 / (np.sqrt(m1) * np.asarray(margin, dtype=float))
