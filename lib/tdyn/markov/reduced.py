"""Part II: the reduced (e, w, b) model of Makkuva et al. (2024) and its gradient flow.

The paper's canonical parameters (e, w) plus a scalar bias b give the
logit of x_{n+1} = 1 after symbol x_n as

    logit(x_n) = e^2 (1 + 2 w|w|) x_n - e^2 / 2 + b,

(the formula of the official code's ``Markov-Fixed`` model; it is what a single-layer
transformer with tied weights computes on its rank-one manifold, see
:func:`tdyn.markov.transformer.canonical_state`).  Everything the chapters need about it is here in
closed form: the population loss, the optimal bias b*(e, w), the gradient, the gradient flow
(scipy's adaptive integrators, and plain or momentum gradient descent vectorized over many
initializations), the conserved energy E(e, w) = e^2 - w^2 - sign(w) log|w|, the critical
points and their type, and the basin of attraction of the global minima.

Conventions: ``c(w) = 1 + 2 w|w|``; f0 and f1 are the logits after x_n = 0 and x_n = 1; the
"optimal-bias" flow is the gradient flow of L~(e, w) = min_b L(e, w, b), along which the
energy is exactly conserved; the "joint" flow also trains b.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import expit, log_expit

from tdyn.markov.chain import (
    as_rng,
    check_positive_int,
    check_pq,
    entropy_rate,
    logit_gap,
    predictor_loss,
    sample,
    stationary,
    unigram_loss,
)

# --------------------------------------------------------------------------------------------
# The reduced (canonical) model
# --------------------------------------------------------------------------------------------

W_SADDLE = -1.0 / math.sqrt(2.0)
"""The w at which c(w) = 1 + 2 w|w| changes sign: the saddle point is (e, w) = (0, W_SADDLE)."""

SADDLE_ENERGY = -0.5 * (1.0 + math.log(2.0))
"""E(0, -1/sqrt 2) = -(1 + log 2)/2 ~ -0.8466: the energy of the separatrices."""


def gain(w) -> np.ndarray:
    """c(w) = 1 + 2 w|w|: the signed gain of the skip path plus the feed-forward path."""
    w = np.asarray(w, dtype=float)
    return 1.0 + 2.0 * w * np.abs(w)


def reduced_logits(e, w, b) -> tuple[np.ndarray, np.ndarray]:
    """(f0, f1) = (b - e^2/2, b - e^2/2 + c(w) e^2): the logits after x_n = 0 and x_n = 1."""
    e = np.asarray(e, dtype=float)
    b = np.asarray(b, dtype=float)
    f0 = b - 0.5 * e**2
    return f0, f0 + gain(w) * e**2


def reduced_loss(e, w, b, p, q) -> np.ndarray:
    """Population loss L(e, w, b) of the reduced model on the stationary chain (nats)."""
    f0, f1 = reduced_logits(e, w, b)
    return predictor_loss(f0, f1, p, q)


def reduced_grad(e, w, b, p, q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dL/de, dL/dw, dL/db) in closed form.

    With g0 = pi_0 (s(f0) - p) and g1 = pi_1 (s(f1) - (1 - q)):
    dL/de = e (-g0 + (1 + 4 w|w|) g1),  dL/dw = 4 e^2 |w| g1,  dL/db = g0 + g1.
    """
    pi0, pi1 = stationary(p, q)
    e = np.asarray(e, dtype=float)
    w = np.asarray(w, dtype=float)
    f0, f1 = reduced_logits(e, w, b)
    g0 = pi0 * (expit(f0) - p)
    g1 = pi1 * (expit(f1) - (1 - q))
    de = e * (-g0 + (1.0 + 4.0 * w * np.abs(w)) * g1)
    dw = 4.0 * e**2 * np.abs(w) * g1
    return de, dw, g0 + g1


def optimal_bias(e, w, p, q) -> np.ndarray:
    """b*(e, w) = argmin_b L(e, w, b), in closed form and overflow-free.

    With s = c(w) e^2 the first-order condition q s(f0) + p s(f0 + s) = p is a quadratic in
    exp(f0) whose positive root is f0 = log[(p - q + sqrt((p-q)^2 + 4 p q e^s)) / (2 q e^s)]
    (the official code's formula); b* = f0 + e^2/2.  Evaluated here in log space, with the
    cancellation for p < q removed by rationalizing, so it stays accurate for |s| in the
    thousands.
    """
    p, q = check_pq(p, q)
    e = np.asarray(e, dtype=float)
    s = gain(w) * e**2
    log_root = 0.5 * np.logaddexp(2.0 * math.log(abs(p - q)) if p != q else -np.inf,
                                  math.log(4.0 * p * q) + s)  # log sqrt((p-q)^2 + 4pq e^s)
    if p >= q:
        log_num = np.logaddexp(math.log(p - q) if p > q else -np.inf, log_root)
        f0 = log_num - math.log(2.0 * q) - s
    else:  # p - q + r = 4 p q e^s / (r + q - p)
        f0 = math.log(2.0 * p) - np.logaddexp(log_root, math.log(q - p))
    return f0 + 0.5 * e**2


def reduced_loss_opt(e, w, p, q) -> np.ndarray:
    """L~(e, w) = L(e, w, b*(e, w)): the loss with the bias minimized out."""
    return reduced_loss(e, w, optimal_bias(e, w, p, q), p, q)


def reduced_grad_opt(e, w, p, q) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of L~(e, w).  At b = b* we have g0 = -g1 (envelope theorem), hence

    dL~/de = 2 c(w) e g1,   dL~/dw = 4 e^2 |w| g1,   g1 = pi_1 (s(f1) - (1 - q)).
    """
    de, dw, _ = reduced_grad(e, w, optimal_bias(e, w, p, q), p, q)
    return de, dw


def energy(e, w) -> np.ndarray:
    """E(e, w) = e^2 - w^2 - sign(w) log|w|, conserved by the optimal-bias gradient flow.

    dE/dt = 2 e^2 dL/db, which vanishes at b = b*.  E is +inf on w = 0+ and -inf on w = 0-
    (returned as +-inf; the line w = 0 is itself invariant).
    """
    e = np.asarray(e, dtype=float)
    w = np.asarray(w, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = e**2 - w**2 - np.sign(w) * np.log(np.abs(w))
    return np.where(w == 0, np.inf, out)


def global_min_e(w, p, q) -> np.ndarray:
    """The e >= 0 with c(w) e^2 = f1* - f0* (a global minimum at this w), or nan if none.

    The global minima of L~ are exactly the set c(w) e^2 = log((1-p)(1-q)/(pq)), with
    e != 0; it lies in w > -1/sqrt 2 when p + q < 1 and in w < -1/sqrt 2 when p + q > 1
    (and is empty when p + q = 1, where bigram = unigram).
    """
    gap = logit_gap(p, q)
    c = gain(w)
    with np.errstate(divide="ignore", invalid="ignore"):
        e2 = gap / c
    return np.where((e2 > 0) & np.isfinite(e2), np.sqrt(np.where(e2 > 0, e2, 0.0)), np.nan)


def separatrix_e(w) -> np.ndarray:
    """The e >= 0 on the level set E = E_saddle at this w (nan where it does not exist)."""
    w = np.asarray(w, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        e2 = SADDLE_ENERGY + w**2 + np.sign(w) * np.log(np.abs(w))
    return np.where(e2 >= 0, np.sqrt(np.where(e2 >= 0, e2, 0.0)), np.nan)


def unigram_curvature(w, p, q) -> np.ndarray:
    """d^2 L~/de^2 at e = 0: 2 pi_0 pi_1 (p + q - 1) c(w).

    L~(e, w) = H(pi) + pi_0 pi_1 (p + q - 1) c(w) e^2 + O(e^4); L~ is flat along w at e = 0.
    """
    pi0, pi1 = stationary(p, q)
    return 2.0 * pi0 * pi1 * (p + q - 1.0) * gain(w)


def critical_point_type(w, p, q) -> np.ndarray:
    """Type of the critical point (e, w) = (0, w) of L~ on the unigram line e = 0.

    Returns an array of strings: ``"local min"`` where the curvature across the line is
    positive, ``"local max"`` where it is negative, ``"saddle"`` at w = -1/sqrt 2 (where it
    changes sign) and ``"degenerate"`` when p + q = 1 (the line is then the global minimum).
    """
    curv = unigram_curvature(w, p, q)
    w = np.asarray(w, dtype=float)
    out = np.where(curv > 0, "local min", np.where(curv < 0, "local max", "degenerate"))
    out = np.where(np.isclose(w, W_SADDLE, rtol=0, atol=1e-12) & (p + q != 1), "saddle", out)
    return out


def critical_points(p, q) -> dict:
    """Description of every critical point of L~ for the chain (p, q).

    Keys: ``unigram_loss`` and ``bigram_loss`` (the two critical values), ``local_min_w`` and
    ``local_max_w`` (intervals of w on the line e = 0), ``saddle`` ((e, w)), ``global_min``
    (a human-readable equation of the global-minimum curve).
    """
    p, q = check_pq(p, q)
    left = (-math.inf, W_SADDLE)
    right = (W_SADDLE, math.inf)
    if p + q > 1:
        local_min, local_max = right, left
    elif p + q < 1:
        local_min, local_max = left, right
    else:
        local_min = local_max = None
    return {
        "unigram_loss": unigram_loss(p, q),
        "bigram_loss": entropy_rate(p, q),
        "local_min_w": local_min,
        "local_max_w": local_max,
        "saddle": (0.0, W_SADDLE),
        "global_min": f"(1 + 2 w|w|) e^2 = {logit_gap(p, q):.6g}, e != 0",
    }


def basin(e, w, p, q) -> np.ndarray:
    """True where the optimal-bias gradient flow from (e, w) converges to a global minimum.

    The flow moves along level sets of E, which cannot cross the invariant line w = 0, so the
    end point is decided by sign(w), by the side of -1/sqrt 2 and by E against E_saddle:

    * p + q > 1: global iff w < -1/sqrt 2, or -1/sqrt 2 < w < 0 and E(e, w) > E_saddle;
    * p + q < 1: global unless w < -1/sqrt 2 and E(e, w) < E_saddle.

    Points with e = 0 are critical and stay put (False).  The boundaries (measure zero) are
    assigned arbitrarily.  For p + q = 1 the unigram line is already optimal: all True.
    """
    p, q = check_pq(p, q)
    e = np.asarray(e, dtype=float)
    w = np.asarray(w, dtype=float)
    if p + q == 1:
        return np.ones(np.broadcast(e, w).shape, dtype=bool)
    high = energy(e, w) > SADDLE_ENERGY
    if p + q > 1:
        good = (w < W_SADDLE) | ((w < 0) & high)
    else:
        good = ~((w < W_SADDLE) & ~high)
    return good & (e != 0)


def basin_naive(e: float, w: float, p: float, q: float) -> bool:
    """:func:`basin` for one point, in plain Python (the baseline of the benchmark)."""
    if e == 0:
        return False
    if p + q == 1:
        return True
    big_e = math.inf if w == 0 else e * e - w * w - math.copysign(1.0, w) * math.log(abs(w))
    high = big_e > SADDLE_ENERGY
    if p + q > 1:
        return w < W_SADDLE or (w < 0 and high)
    return not (w < W_SADDLE and not high)


# --------------------------------------------------------------------------------------------
# Gradient flow and gradient descent
# --------------------------------------------------------------------------------------------


@dataclass
class Flow:
    """A trajectory of the reduced model: times (or steps) and the parameters along them."""

    t: np.ndarray
    e: np.ndarray
    w: np.ndarray
    b: np.ndarray
    loss: np.ndarray
    energy: np.ndarray
    p: float
    q: float
    optimal_bias: bool

    @property
    def end(self) -> tuple[float, float, float]:
        return float(self.e[..., -1].squeeze()), float(self.w[..., -1].squeeze()), float(
            self.b[..., -1].squeeze())


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _optimal_f0(s: float, p: float, q: float) -> float:
    """Scalar :func:`optimal_bias` minus e^2/2 (the logit after a 0), in plain Python."""
    a = math.log(4.0 * p * q) + s
    if p != q:
        c = 2.0 * math.log(abs(p - q))
        hi = max(a, c)
        log_root = 0.5 * (hi + math.log(math.exp(a - hi) + math.exp(c - hi)))
    else:
        log_root = 0.5 * a
    if p > q:
        d = math.log(p - q)
        hi = max(d, log_root)
        return hi + math.log(math.exp(d - hi) + math.exp(log_root - hi)) - math.log(2 * q) - s
    if p == q:
        return log_root - math.log(2 * q) - s
    d = math.log(q - p)
    hi = max(d, log_root)
    return math.log(2.0 * p) - (hi + math.log(math.exp(d - hi) + math.exp(log_root - hi)))


def flow_rhs(p, q, optimal: bool = True) -> Callable[[float, np.ndarray], np.ndarray]:
    """Right-hand side of the gradient flow for ``solve_ivp`` (scalar math, for speed).

    ``optimal=True``: state (e, w), bias b*(e, w) (the flow of L~; E is conserved).
    ``optimal=False``: state (e, w, b), all three trained (the joint flow).
    The formulas are those of :func:`reduced_grad_opt` and :func:`reduced_grad`.
    """
    p, q = check_pq(p, q)
    pi0, pi1 = q / (p + q), p / (p + q)
    if optimal:
        def rhs(t, y):
            e, w = float(y[0]), float(y[1])
            c = 1.0 + 2.0 * w * abs(w)
            f1 = _optimal_f0(c * e * e, p, q) + c * e * e
            g1 = pi1 * (_sigmoid(f1) - (1.0 - q))
            return np.array([-2.0 * c * e * g1, -4.0 * e * e * abs(w) * g1])
    else:
        def rhs(t, y):
            e, w, b = float(y[0]), float(y[1]), float(y[2])
            c = 1.0 + 2.0 * w * abs(w)
            f0 = b - 0.5 * e * e
            f1 = f0 + c * e * e
            g0 = pi0 * (_sigmoid(f0) - p)
            g1 = pi1 * (_sigmoid(f1) - (1.0 - q))
            return np.array([-e * (-g0 + (2.0 * c - 1.0) * g1), -4.0 * e * e * abs(w) * g1,
                             -(g0 + g1)])
    return rhs


def integrate_flow(e0: float, w0: float, p, q, t_max: float = 200.0, b0: float | None = None,
                   n_points: int = 400, method: str = "LSODA", rtol: float = 1e-9,
                   atol: float = 1e-12) -> Flow:
    """Integrate the gradient flow from (e0, w0) with an adaptive scipy integrator.

    ``b0=None`` follows the optimal-bias flow of L~(e, w); a number starts the joint flow of
    (e, w, b) from b0.  The trajectory is reported at ``n_points`` times spaced evenly in
    log(1 + t) (the flow has fast early and slow late phases).  The default integrator is
    LSODA, which switches to a stiff method near the global-minimum curve, where the
    explicit Runge-Kutta methods need ten times more steps.
    """
    p, q = check_pq(p, q)
    if not t_max > 0:
        raise ValueError(f"t_max={t_max!r} must be positive")
    optimal = b0 is None
    y0 = [e0, w0] if optimal else [e0, w0, b0]
    t_eval = np.expm1(np.linspace(0.0, math.log1p(t_max), n_points))
    t_eval[-1] = t_max
    sol = solve_ivp(flow_rhs(p, q, optimal), (0.0, t_max), y0, method=method, t_eval=t_eval,
                    rtol=rtol, atol=atol)
    if not sol.success:  # pragma: no cover - the flow is smooth away from w = 0
        raise RuntimeError(f"integration failed: {sol.message}")
    e, w = sol.y[0], sol.y[1]
    b = optimal_bias(e, w, p, q) if optimal else sol.y[2]
    return Flow(t=sol.t, e=e, w=w, b=b, loss=reduced_loss(e, w, b, p, q), energy=energy(e, w),
                p=p, q=q, optimal_bias=optimal)


def gradient_descent(e0, w0, p, q, lr: float = 0.1, steps: int = 1000, b0=None,
                     momentum: float = 0.0, record_every: int = 1) -> Flow:
    """Discrete gradient descent (optionally heavy-ball momentum) on many starts at once.

    ``e0``, ``w0`` (and ``b0``) are arrays of the same shape, one entry per initialization.
    ``b0=None`` descends L~(e, w) (bias always optimal); otherwise (e, w, b) are all trained,
    as in the official ``Markov-Fixed`` runs (SGD, lr 0.01, momentum 0.9, there on sampled
    batches instead of the population loss).  Arrays in the result have a leading axis of
    recorded steps.  A start whose steps diverge (too large a step for its curvature) runs
    to inf/nan without a warning: its loss is nan and it counts as not reaching either
    minimum.
    """
    p, q = check_pq(p, q)
    if not lr > 0:
        raise ValueError(f"lr={lr!r} must be positive")
    steps = check_positive_int("steps", steps)
    record_every = check_positive_int("record_every", record_every)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum={momentum!r} must lie in [0, 1)")
    optimal = b0 is None
    e = np.array(e0, dtype=float)
    w = np.array(w0, dtype=float)
    e, w = np.broadcast_arrays(e, w)
    e, w = e.copy(), w.copy()
    b = optimal_bias(e, w, p, q) if optimal else np.broadcast_to(
        np.asarray(b0, dtype=float), e.shape).copy()
    ve, vw, vb = np.zeros_like(e), np.zeros_like(e), np.zeros_like(e)
    rec_t, rec_e, rec_w, rec_b = [0], [e.copy()], [w.copy()], [b.copy()]
    with np.errstate(over="ignore", invalid="ignore"):
        for step in range(1, steps + 1):
            # with the bias optimal, b = b*(e, w) already, so this is reduced_grad_opt
            de, dw, db = reduced_grad(e, w, b, p, q)
            if optimal:
                db = 0.0
            ve = momentum * ve + de
            vw = momentum * vw + dw
            vb = momentum * vb + db
            e = e - lr * ve
            w = w - lr * vw
            if optimal:
                b = optimal_bias(e, w, p, q)
            else:
                b = b - lr * vb
            if step % record_every == 0 or step == steps:
                rec_t.append(step)
                rec_e.append(e.copy())
                rec_w.append(w.copy())
                rec_b.append(b.copy())
        E, W, B = np.array(rec_e), np.array(rec_w), np.array(rec_b)
        loss = reduced_loss(E, W, B, p, q)
    return Flow(t=np.array(rec_t, dtype=float), e=E, w=W, b=B, loss=loss, energy=energy(E, W),
                p=p, q=q, optimal_bias=optimal)


def reduced_grad_from_counts(e, w, b, counts) -> tuple[np.ndarray, ...]:
    """Loss and gradient of the reduced model on a *sample*, from its transition counts.

    The reduced model's prediction depends only on the current symbol, so its average
    cross-entropy over a batch depends on the sequences only through counts[..., i, j], the
    number of positions with x_n = i and x_{n+1} = j (:func:`transition_counts`):

        L^ = (1/N) sum_ij counts_ij * (-log s(+-f_i)),
        dL^/df_i = (1/N) (counts_i. s(f_i) - counts_i1).

    Returns (loss, dL/de, dL/dw, dL/db).  With counts_ij = pi_i P_ij it is the population
    loss and gradient (:func:`reduced_loss`, :func:`reduced_grad`).
    """
    counts = np.asarray(counts, dtype=float)
    n = counts.sum(axis=(-2, -1))
    e = np.asarray(e, dtype=float)
    w = np.asarray(w, dtype=float)
    f0, f1 = reduced_logits(e, w, b)
    loss = (counts[..., 0, 1] * -log_expit(f0) + counts[..., 0, 0] * -log_expit(-f0)
            + counts[..., 1, 1] * -log_expit(f1) + counts[..., 1, 0] * -log_expit(-f1)) / n
    h0 = (counts[..., 0, :].sum(-1) * expit(f0) - counts[..., 0, 1]) / n
    h1 = (counts[..., 1, :].sum(-1) * expit(f1) - counts[..., 1, 1]) / n
    de = e * (-h0 + (1.0 + 4.0 * w * np.abs(w)) * h1)
    dw = 4.0 * e**2 * np.abs(w) * h1
    return loss, de, dw, h0 + h1


def sgd_sampled(e0, w0, b0, p, q, rng, lr: float = 0.01, momentum: float = 0.9,
                steps: int = 500, batch: int = 16, length: int = 512,
                record_every: int = 1) -> Flow:
    """Stochastic gradient descent of (e, w, b) on freshly sampled sequences.

    The setting of the official ``Markov-Fixed`` runs (SGD, lr 0.01, momentum 0.9, batch 16
    sequences of 512 next-token targets, a fresh batch every step), vectorized over many
    independent runs: ``e0``, ``w0``, ``b0`` are arrays with one entry per run, and each run
    draws its own batches from ``rng``.  Unlike the official code, the first symbol is
    stationary and every target is filled.  The recorded ``loss`` is the *population* loss.
    """
    p, q = check_pq(p, q)
    rng = as_rng(rng)
    if not lr > 0:
        raise ValueError(f"lr={lr!r} must be positive")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum={momentum!r} must lie in [0, 1)")
    steps = check_positive_int("steps", steps)
    batch = check_positive_int("batch", batch)
    length = check_positive_int("length", length)
    record_every = check_positive_int("record_every", record_every)
    e, w, b = (np.array(v, dtype=float) for v in np.broadcast_arrays(e0, w0, b0))
    shape = e.shape
    runs = int(np.prod(shape))
    ve, vw, vb = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    run_offset = 4 * np.repeat(np.arange(runs), batch)[:, None]  # sequence -> its run
    rec_t, rec = [0], [(e.copy(), w.copy(), b.copy())]
    for step in range(1, steps + 1):
        x = sample(p, q, runs * batch, length + 1, rng)
        # transition counts of each run's batch, with one bincount
        pair = 2 * x[:, :-1].astype(np.int64) + x[:, 1:] + run_offset
        counts = np.bincount(pair.ravel(), minlength=4 * runs).reshape(*shape, 2, 2)
        _, de, dw, db = reduced_grad_from_counts(e, w, b, counts)
        ve, vw, vb = momentum * ve + de, momentum * vw + dw, momentum * vb + db
        e, w, b = e - lr * ve, w - lr * vw, b - lr * vb
        if step % record_every == 0 or step == steps:
            rec_t.append(step)
            rec.append((e.copy(), w.copy(), b.copy()))
    E, W, B = (np.array(v) for v in zip(*rec, strict=True))
    return Flow(t=np.array(rec_t, dtype=float), e=E, w=W, b=B, loss=reduced_loss(E, W, B, p, q),
                energy=energy(E, W), p=p, q=q, optimal_bias=False)


def reaches_global(loss, p, q) -> np.ndarray:
    """True where a final loss is nearer the bigram (global) than the unigram (local) value."""
    lo, hi = entropy_rate(p, q), unigram_loss(p, q)
    return np.asarray(loss) < 0.5 * (lo + hi)
