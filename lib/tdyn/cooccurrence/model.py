"""The one-layer transformer of Yang, Kailkhura, Wang & Liang (2024), its gradient flow, and
the quantities their proofs track.

Model (Eq. 1), for X = [x_1..x_L] in R^{d x L}:

    F(X) = sum_l sum_j a_j w_j^T W_V X softmax(X^T W_K^T W_Q x_l / sqrt(m)),

W_Q, W_K, W_V in R^{m x d}, W in R^{m1 x m} (rows w_j), fixed a_j in {+1, -1}.  With
u = W^T a and G(mu) = u^T W_V mu, F(X) = sum_l sum_h G(x_h) p_{l,h}, p_l the softmax over keys
h for query l.  Loss: mean logistic loss l(yF) = log(1 + exp(-yF)) (Eq. 2), g = -l'(yF) =
1 / (1 + exp(yF)).  Everything is numpy float64; the data live in
:mod:`tdyn.cooccurrence.data`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdyn.cooccurrence.data import (
    COMMON,
    TYPE_LABELS,
    TYPE_PROBABILITIES,
    TYPE_TARGETS,
    CooccurrenceData,
)

INIT_KINDS = ("gaussian", "kaiming_uniform", "kaiming_normal")
SCORE_PAIRS = ((1, 0), (0, 1), (2, 0), (2, 1), (0, 0), (1, 1))
"""(key, query) 0-based word pairs whose score nu^T W_K^T W_Q mu is tracked: mu_2<-mu_1,
mu_1<-mu_2, mu_3<-mu_1, mu_3<-mu_2 (Theorem 3.2 and Figure 1(a)) and the two diagonals."""


@dataclass(frozen=True)
class Params:
    """Trainable W (m1 x m), W_V, W_K, W_Q (m x d) and the fixed output signs a (m1,)."""

    W: np.ndarray
    WV: np.ndarray
    WK: np.ndarray
    WQ: np.ndarray
    a: np.ndarray

    TRAINABLE = ("W", "WV", "WK", "WQ")

    @property
    def m(self) -> int:
        return self.WV.shape[0]

    @property
    def m1(self) -> int:
        return self.W.shape[0]

    @property
    def u(self) -> np.ndarray:
        """u = W^T a = sum_j a_j w_j; ||u||^2 = sum_{j1,j2} <a_j1 w_j1, a_j2 w_j2> (Eq. 5)."""
        return self.W.T @ self.a


def condition1_sigmas(L: int, m: int, m1: int, scale: float = 1.0) -> tuple[float, float]:
    """(sigma_0, sigma_1) = scale * (1/sqrt(L m), 1/sqrt(m1)): Condition 1 with the hidden
    polylog factors replaced by one number ``scale`` (the paper leaves them unspecified)."""
    if not scale > 0:
        raise ValueError(f"scale={scale!r} is not allowed; need scale > 0")
    return scale / np.sqrt(L * m), scale / np.sqrt(m1)


def init_params(
    d: int,
    m: int,
    m1: int,
    seed: int,
    init: str = "gaussian",
    sigma0: float | None = None,
    sigma1: float | None = None,
) -> Params:
    """Initial weights (Section 2): a_j uniform on {+1, -1}, fixed.

    ``init="gaussian"``: (W_V, W_K, W_Q) entries N(0, sigma0^2), W entries N(0, sigma1^2), the
    paper's theory.  The experiment's "Kaiming initialization" is not specified further; we
    offer ``"kaiming_uniform"`` (PyTorch's default for ``nn.Linear``: U(+-1/sqrt(fan_in))) and
    ``"kaiming_normal"`` (N(0, 2/fan_in)), with fan_in = d for W_V, W_K, W_Q and m for W.
    """
    for name, value in (("d", d), ("m", m), ("m1", m1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name}={value!r} is not allowed; need an integer >= 1")
    if init not in INIT_KINDS:
        raise ValueError(f"init={init!r} is not allowed; choose one of {INIT_KINDS}")
    rng = np.random.default_rng(seed)
    a = rng.choice(np.array([-1.0, 1.0]), size=m1)
    if init == "gaussian":
        for name, value in (("sigma0", sigma0), ("sigma1", sigma1)):
            if value is None or not value > 0:
                raise ValueError(f"{name}={value!r} is not allowed; init='gaussian' needs > 0")
        draws = [rng.normal(0.0, s, size) for s, size in
                 ((sigma1, (m1, m)), (sigma0, (m, d)), (sigma0, (m, d)), (sigma0, (m, d)))]
    elif init == "kaiming_uniform":
        draws = [rng.uniform(-b, b, size) for b, size in
                 ((1 / np.sqrt(m), (m1, m)),) + ((1 / np.sqrt(d), (m, d)),) * 3]
    else:
        draws = [rng.normal(0.0, s, size) for s, size in
                 ((np.sqrt(2 / m), (m1, m)),) + ((np.sqrt(2 / d), (m, d)),) * 3]
    return Params(*draws, a=a)


@dataclass(frozen=True)
class Forward:
    """Outputs F (n,), attention P (n, L, L) with P[i, l, h] = p^{(i)}_{l,h} (query l, key h),
    values Gx (n, L) = G(x_h), per-sample g = 1/(1+exp(yF)), and the token maps
    K_tok = W_K E, Q_tok = W_Q E, V_tok = W_V E (m x d, column k is k(mu_k), q(mu_k), v(mu_k))."""

    F: np.ndarray
    P: np.ndarray
    Gx: np.ndarray
    g: np.ndarray
    K_tok: np.ndarray
    Q_tok: np.ndarray
    V_tok: np.ndarray


@dataclass(frozen=True)
class _Tokens:
    """What the forward and backward passes need of a data set, computed once per data set
    (:func:`_tokens`; :func:`train` reuses it for every step): ``tokens`` (n, L), labels
    ``y``, the token vectors ``E`` (``None`` for the one-hot words E = I, where W E = W), their
    number ``d`` and the flattened (key, query) index x_h * d + x_l of every query l and key h
    of every entry i, in (i, l, h) order (``pairs``) and in (h, l, i) order (``pairs_hli``)."""

    tokens: np.ndarray
    y: np.ndarray
    E: np.ndarray | None
    d: int
    pairs: np.ndarray
    pairs_hli: np.ndarray


def _tokens(data: CooccurrenceData) -> _Tokens:
    """The :class:`_Tokens` of ``data``."""
    E, d, tok = data.embeddings, data.n_vectors, data.tokens
    pairs = tok[:, None, :] * d + tok[:, :, None]
    onehot = E.shape == (d, d) and np.array_equal(E, np.eye(d))
    return _Tokens(tokens=tok, y=data.y, E=None if onehot else E, d=d, pairs=pairs.ravel(),
                   pairs_hli=pairs.transpose(2, 1, 0).ravel())


def _embed(W: np.ndarray, tk: _Tokens) -> np.ndarray:
    """The token map W E (W itself for one-hot words: W I = W exactly, for finite W)."""
    return W if tk.E is None else W @ tk.E


def forward(params: Params, data: CooccurrenceData) -> Forward:
    """Eq. 1: scores s_l = X^T W_K^T W_Q x_l / sqrt(m), p_l = softmax(s_l) over the keys,
    F = sum_l u^T W_V X p_l.  Because every column of X is a word vector, W X = (W E)[:, tokens]
    and s_l[h] = A[x_h, x_l] / sqrt(m) with A = (W_K E)^T (W_Q E); this is computed that way."""
    return _forward(params, _tokens(data), params.u)


def _forward(params: Params, tk: _Tokens, u: np.ndarray) -> Forward:
    """:func:`forward` (Eq. 1) on prepared tokens, given u = W^T a.  The scores are laid out
    keys first, S[h, l, i], so that the softmax's max over the keys runs over the leading axis
    (fast, and a max does not depend on the order); its sum runs over the last axis of P as
    before, so that the terms are added in numpy's order for that axis at every L."""
    K_tok, Q_tok, V_tok = _embed(params.WK, tk), _embed(params.WQ, tk), _embed(params.WV, tk)
    n, L = tk.tokens.shape
    S = (K_tok.T @ Q_tok).take(tk.pairs_hli).reshape(L, L, n)
    S /= np.sqrt(params.m)  # A / sqrt(m) at the pairs present only
    S -= np.maximum.reduce(S)
    np.exp(S, out=S)
    P = S.transpose(2, 1, 0).copy()
    P /= np.add.reduce(P, axis=2, keepdims=True)
    Gx = (u @ V_tok).take(tk.tokens)
    F = np.einsum("ilh,ih->i", P, Gx)
    g = 1.0 / (1.0 + np.exp(tk.y * F))
    return Forward(F=F, P=P, Gx=Gx, g=g, K_tok=K_tok, Q_tok=Q_tok, V_tok=V_tok)


def logistic_loss(margins: np.ndarray) -> np.ndarray:
    """l(x) = log(1 + exp(-x)), elementwise and overflow-safe."""
    return np.logaddexp(0.0, -margins)


def _word_sums(tk: _Tokens, fwd: Forward) -> tuple[np.ndarray, np.ndarray]:
    """Per-word sums of the loss derivative, c_i = g_i y_i / n:
    D[k] = sum_i c_i sum_{h: x_h = mu_k} sum_l p_{l,h} (value path) and
    B[k, q] = sum_i c_i sum_{(l, h): x_h = mu_k, x_l = mu_q} p_{l,h} (G(x_h) - p_l . G)
    (score path, key word k, query word q).  One entry per token vector (d = n_vectors)."""
    d = tk.d
    c = fwd.g * tk.y / len(tk.y)
    # sum_l p_{l,h}, over the middle axis of a keys-first copy (faster than over P's, same sums)
    received = np.add.reduce(fwd.P.transpose(2, 1, 0).copy(), axis=1).T
    D = np.bincount(tk.tokens.ravel(), (c[:, None] * received).ravel(), minlength=d)
    M = fwd.Gx[:, None, :] - np.einsum("ilh,ih->il", fwd.P, fwd.Gx)[:, :, None]
    M *= fwd.P
    M *= c[:, None, None]
    B = np.bincount(tk.pairs, M.ravel(), minlength=d * d).reshape(d, d)
    return D, B


def gradients(params: Params, data: CooccurrenceData, fwd: Forward | None = None) -> dict:
    """Gradients of the empirical loss (Eq. 2): the closed forms of Appendix B.

    Gradient flow is d/dt theta = -grad.  With c_i = g_i y_i / n and M_l = J(p_l) G =
    p_l * (G - p_l . G) (softmax Jacobian J(p) = diag(p) - p p^T applied to the values),
      -dL/dW   = sum_i c_i sum_l a (W_V X p_l)^T
      -dL/dW_V = sum_i c_i sum_l u (X p_l)^T
      -dL/dW_K = sum_i c_i / sqrt(m) sum_l q_l M_l^T X^T
      -dL/dW_Q = sum_i c_i / sqrt(m) sum_l K M_l x_l^T.
    Each sum over positions is accumulated per word (X = E[:, tokens], see
    :func:`_word_sums`): -dL/dW = a (V_tok D)^T, -dL/dW_V = u (E D)^T,
    -dL/dW_K = Q_tok B^T E^T / sqrt(m), -dL/dW_Q = K_tok B E^T / sqrt(m).
    """
    tk, u = _tokens(data), params.u
    fwd = _forward(params, tk, u) if fwd is None else fwd
    return {k: -v for k, v in _velocities(params, tk, fwd, u).items()}


def _velocities(params: Params, tk: _Tokens, fwd: Forward, u: np.ndarray) -> dict:
    """The gradient-flow velocities -dL/dtheta of :func:`gradients` (Appendix B) on prepared
    tokens, given u = W^T a."""
    D, B = _word_sums(tk, fwd)
    vK, vQ = fwd.Q_tok @ B.T, fwd.K_tok @ B
    xp = D  # sum_i c_i sum_l X p_l = E D
    if tk.E is not None:
        xp, vK, vQ = tk.E @ D, vK @ tk.E.T, vQ @ tk.E.T
    root = np.sqrt(params.m)
    vK /= root
    vQ /= root
    return {"W": np.multiply.outer(params.a, fwd.V_tok @ D), "WV": np.multiply.outer(u, xp),
            "WK": vK, "WQ": vQ}


def reduced_velocities(params: Params, data: CooccurrenceData, fwd: Forward | None = None) -> dict:
    """Time derivatives under gradient flow of the paper's reduced variables (Appendix C),
    written with the per-word sums D, B of :func:`_word_sums`:

        dG/dt     = kappa D + m1 Gamma D               (Eq. 4),
        dGamma/dt = D G^T + G D^T                      (Lemma F.11),
        dkappa/dt = 2 m1 D . G = (2 m1/n) sum_i g_i y_i F_i   (Eq. 5),
        dA/dt     = (B Gamma_Q + Gamma_K B) / sqrt(m)  (Eq. 7),

    with G_k = G(mu_k), Gamma = V_tok^T V_tok, kappa = ||W^T a||^2, A = K_tok^T Q_tok (key
    first), Gamma_Q = Q_tok^T Q_tok, Gamma_K = K_tok^T K_tok.  Also returns D and B.
    """
    tk, u = _tokens(data), params.u
    fwd = _forward(params, tk, u) if fwd is None else fwd
    D, B = _word_sums(tk, fwd)
    G = u @ fwd.V_tok
    gram = fwd.V_tok.T @ fwd.V_tok
    gram_k, gram_q = fwd.K_tok.T @ fwd.K_tok, fwd.Q_tok.T @ fwd.Q_tok
    return {
        "G": (u @ u) * D + params.m1 * gram @ D,
        "Gamma": np.outer(D, G) + np.outer(G, D),
        "kappa": 2 * params.m1 * D @ G,
        "A": (B @ gram_q + gram_k @ B) / np.sqrt(params.m),
        "D": D,
        "B": B,
    }


def loss(params: Params, data: CooccurrenceData) -> float:
    """Empirical (or, on fresh samples, estimated generalization) loss: mean l(y F)."""
    return _mean_loss(params, _tokens(data), params.u)


def _mean_loss(params: Params, tk: _Tokens, u: np.ndarray) -> float:
    """:func:`loss` (Eq. 2) on prepared tokens, given u = W^T a."""
    return float(logistic_loss(tk.y * _forward(params, tk, u).F).mean())


def type_losses(params: Params, data: CooccurrenceData) -> np.ndarray:
    """Mean loss of each sample type 1-4 (NaN for a type with no samples)."""
    per = logistic_loss(data.y * forward(params, data).F)
    return np.array([per[data.types == k].mean() if np.any(data.types == k) else np.nan
                     for k in range(1, 5)])


def word_values(params: Params, embeddings: np.ndarray) -> np.ndarray:
    """G(mu_k) = u^T W_V mu_k for every word (the linear-MLP "sub-network")."""
    return params.u @ params.WV @ embeddings


def score_matrix(params: Params, embeddings: np.ndarray) -> np.ndarray:
    """A[k, q] = mu_k^T W_K^T W_Q mu_q: attention score correlation of key mu_k, query mu_q
    (no 1/sqrt(m); Figure 1(a) plots this quantity)."""
    return (params.WK @ embeddings).T @ (params.WQ @ embeddings)


def value_gram(params: Params, embeddings: np.ndarray) -> np.ndarray:
    """Gamma[k, l] = mu_k^T W_V^T W_V mu_l."""
    v = params.WV @ embeddings
    return v.T @ v


def g_sums(g: np.ndarray, types: np.ndarray) -> np.ndarray:
    """S_I = sum_{i in I_k} g_i for types k = 1..4 (the paper's sum_{I_k} g)."""
    return np.array([g[types == k].sum() for k in range(1, 5)])


def balancing_ratios(S: np.ndarray) -> dict:
    """Automatic balancing (Lemmas 4.4, 4.5) from S = (S_I1, S_I2, S_I3, S_I4):
    ``lemma44`` = |S_I2 - S_I3| / min(S_I2, S_I3) (small in Phase 2) and
    ``R`` = (S_I2 + S_I3 + S_I4 - S_I1) / (S_I1 - S_I2), ~ -dG(mu_3)/dG(mu_1), which the proof
    shows contracts to a root R* in (1, 2)."""
    S = np.asarray(S)
    lemma44 = np.abs(S[..., 1] - S[..., 2]) / np.minimum(S[..., 1], S[..., 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        R = (S[..., 1] + S[..., 2] + S[..., 3] - S[..., 0]) / (S[..., 0] - S[..., 1])
    return {"lemma44": lemma44, "R": R}


def lemma44_bound(margins: np.ndarray, types: np.ndarray) -> float:
    """The proof's bound of Lemma 4.4 (F.5): S_I2/S_I3 lies in 1 +- 6 (r - 1) with r ranging
    over [(1 + min_I2 e^{-yF}) / (1 + max_I3 e^{-yF}), (1 + max_I2 e^{-yF}) / (1 + min_I3
    e^{-yF})]; returns 6 max |r - 1| (a bound on |S_I2/S_I3 - 1| in Phase 2)."""
    e2, e3 = np.exp(-margins[types == 2]), np.exp(-margins[types == 3])
    lo = (1 + e2.min()) / (1 + e3.max())
    hi = (1 + e2.max()) / (1 + e3.min())
    return 6.0 * max(abs(lo - 1), abs(hi - 1))


def _snapshot(params, data, fwd, velocities, u) -> dict:
    """Tracked quantities at one step (see :func:`train`), from the forward pass, the
    velocities -grad (:func:`_velocities`) and u = W^T a."""
    E = data.embeddings
    margins = data.y * fwd.F
    per = logistic_loss(margins)
    G = word_values(params, E)
    A = score_matrix(params, E)
    gram = value_gram(params, E)
    # dG(mu)/dt = u'^T v(mu) + u^T v'(mu) with u' = -grad_W^T a, v' = -grad_WV mu
    Gdot = (velocities["W"].T @ params.a) @ fwd.V_tok[:, :3] + u @ velocities["WV"] @ E[:, :3]
    S = g_sums(fwd.g, data.types)
    return {
        "loss": per.mean(),
        "type_loss": np.array([per[data.types == k].mean() for k in range(1, 5)]),
        "type_margin": np.array([margins[data.types == k].min() for k in range(1, 5)]),
        "min_margin": margins.min(),
        "G": G[:3],
        "G_random_maxabs": np.abs(G[3:]).max(),
        "Gdot": Gdot,
        "scores": np.array([A[k, q] for k, q in SCORE_PAIRS]),
        "gram": np.array([gram[0, 1], gram[0, 2], gram[1, 2], gram[0, 0], gram[1, 1]]),
        "u_norm2": u @ u,
        "value_norm2": np.sum(params.WV ** 2),
        "G_norm2": G @ G,
        "S": S,
        "g_ratio": fwd.g.max() / fwd.g.min(),
        "g_ratio_type": np.array([fwd.g[data.types == k].max() / fwd.g[data.types == k].min()
                                  for k in range(1, 5)]),
        "lemma44_bound": lemma44_bound(margins, data.types),
        "attn_dev": np.abs(fwd.P - 1.0 / data.L).max(),
        "attn_common": (fwd.P * (data.tokens == COMMON)[:, None, :]).sum(axis=2).mean(),
    }


def record_steps(steps: int, n_points: int = 400) -> np.ndarray:
    """Steps 0..steps at which to record: every step up to 50, then about n_points
    log-spaced ones (the dynamics have an early and a late time scale)."""
    if steps < 1:
        raise ValueError(f"steps={steps!r} is not allowed; need an integer >= 1")
    early = np.arange(min(steps, 50) + 1)
    late = np.geomspace(max(min(steps, 50), 1), steps, n_points).round().astype(int)
    return np.unique(np.concatenate([early, late, [steps]]))


def train(
    params: Params,
    data: CooccurrenceData,
    lr: float,
    steps: int,
    record: np.ndarray | None = None,
    test: CooccurrenceData | None = None,
) -> tuple[Params, dict]:
    """Full-batch gradient descent with step ``lr``: the Euler discretization of gradient flow,
    continuous time t = lr * step.  Returns the final parameters and a history of arrays
    (one row per recorded step): time ``t``, ``loss``, ``type_loss`` (types 1-4),
    ``type_margin`` (smallest y F per type), ``min_margin``, ``G`` (G(mu_1..3)), ``Gdot``,
    ``G_random_maxabs``, ``scores`` (:data:`SCORE_PAIRS`), ``gram`` (W_V Gram entries 12, 13,
    23, 11, 22), ``u_norm2`` (||W^T a||^2), ``value_norm2`` (||W_V||_F^2, the trace of the
    value Gram matrix over all d words), ``G_norm2`` (sum of G(mu)^2 over all d words),
    ``S`` (g sums per type), ``lemma44``, ``R``,
    ``g_ratio`` (max_i g_i / min_i g_i over all samples), ``g_ratio_type`` (the same within
    each type), ``lemma44_bound``, ``attn_dev`` (max |p - 1/L|),
    ``attn_common`` (mean attention on mu_3) and, with ``test``, ``test_loss``.  The data
    sets' index arrays (:func:`_tokens`) are built once; each step computes the forward pass
    and the velocities -grad once and turns the velocity arrays, in place, into the new
    weights theta + lr (-grad): bit for bit theta - lr grad from :func:`forward` and
    :func:`gradients`.
    """
    if not lr > 0:
        raise ValueError(f"lr={lr!r} is not allowed; need lr > 0")
    record = record_steps(steps) if record is None else np.asarray(record)
    wanted = set(int(s) for s in record)
    tk = _tokens(data)
    tk_test = None if test is None else _tokens(test)
    rows: list[dict] = []
    for step in range(steps + 1):
        u = params.u
        fwd = _forward(params, tk, u)
        vel = _velocities(params, tk, fwd, u)
        if step in wanted:
            row = _snapshot(params, data, fwd, vel, u)
            row["t"] = lr * step
            row["step"] = step
            if test is not None:
                row["test_loss"] = _mean_loss(params, tk_test, u)
            rows.append(row)
        if not np.isfinite(fwd.F).all():
            raise FloatingPointError(f"training diverged at step {step} (lr={lr})")
        if step < steps:
            # theta - lr grad = theta + lr (-grad), the same floating-point result
            for k, v in vel.items():
                v *= lr
                v += getattr(params, k)
            params = Params(**vel, a=params.a)
    history = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    history.update(balancing_ratios(history["S"]))
    return params, history


def phase_times(history: dict) -> dict:
    """Operational phase boundaries from a history (the paper's constants are unspecified):

    ``T1``: first recorded time at which every training sample is classified correctly
    (min y_i F_i > 0) with G(mu_1), G(mu_2) > 0 > G(mu_3), the end-of-Phase-1 state of
    Theorem 3.1.  ``T_half``: first time with -dG(mu_3)/dt >= max(dG(mu_1)/dt, dG(mu_2)/dt),
    the start of Lemma 4.3's window.  NaN when not reached.
    """
    t = history["t"]
    G, Gdot = history["G"], history["Gdot"]
    end1 = (history["min_margin"] > 0) & (G[:, 0] > 0) & (G[:, 1] > 0) & (G[:, 2] < 0)
    half = -Gdot[:, 2] >= np.maximum(Gdot[:, 0], Gdot[:, 1])
    return {"T1": float(t[np.argmax(end1)]) if end1.any() else np.nan,
            "T_half": float(t[np.argmax(half)]) if half.any() else np.nan}


def phase2_loss_rate(history: dict) -> dict:
    """Finite-difference checks of Theorem F.8 on a recorded history (times t > 0): the rate
    ``inv_rate`` = (d(1/L)/dt) / ||W^T a||^2, which the theorem says is Theta(1) in Phase 2
    (from dL/dt = -||u||^2 Theta(L^2)), and the local exponent ``slope`` = d log L / d log t,
    which is -1 for the 1/t law at constant ||u||^2.  Both at the interval midpoints ``t``."""
    t, loss_ = np.asarray(history["t"]), np.asarray(history["loss"])
    keep = t > 0
    t, loss_, kappa = t[keep], loss_[keep], np.asarray(history["u_norm2"])[keep]
    mid = np.sqrt(t[1:] * t[:-1])
    inv_rate = np.diff(1 / loss_) / np.diff(t) / (0.5 * (kappa[1:] + kappa[:-1]))
    slope = np.diff(np.log(loss_)) / np.diff(np.log(t))
    return {"t": mid, "inv_rate": inv_rate, "slope": slope}


def attention_change(params: Params, params0: Params, embeddings: np.ndarray) -> np.ndarray:
    """C = mu^T (W_K^T W_Q - W_K0^T W_Q0) nu over all words (Eq. 3, key index first)."""
    return score_matrix(params, embeddings) - score_matrix(params0, embeddings)


def _frozen_flow(N: np.ndarray, y: np.ndarray, weights: np.ndarray, m1: int, z0: np.ndarray,
                 t: np.ndarray):
    """Integrate the uniform-attention flow (:func:`uniform_attention_flow`) for entries with
    word counts ``N`` (entries x words), labels ``y`` and weights ``weights`` (D = N^T (w g y))
    from z0 = (G, Gamma, kappa); returns (t, G (times x words), kappa, per-entry losses)."""
    from scipy.integrate import solve_ivp

    d = N.shape[1]

    def rhs(_, z):
        G, Gam, kap = z[:d], z[d:d + d * d].reshape(d, d), z[-1]
        g = 1.0 / (1.0 + np.exp(y * (N @ G)))
        D = N.T @ (weights * g * y)
        return np.concatenate([kap * D + m1 * Gam @ D,
                               (np.outer(D, G) + np.outer(G, D)).ravel(), [2 * m1 * D @ G]])

    sol = solve_ivp(rhs, (0.0, float(t[-1])), z0, t_eval=t, rtol=1e-8, atol=1e-10)
    G = sol.y[:d].T
    return sol.t, G, sol.y[-1], logistic_loss((N @ G.T).T * y)


def uniform_attention_flow(params: Params, data: CooccurrenceData, t: np.ndarray) -> dict:
    """Gradient flow of the reduced variables with attention frozen at exactly uniform
    (p = 1/L, so F_i = sum_h G(x_h)): G in R^d, Gamma = V^T V (d x d), kappa = ||u||^2, with
    D_k = (1/n) sum_i (count of word k in X_i) g_i y_i:

        dG/dt = kappa D + m1 Gamma D,  dGamma/dt = D G^T + G D^T,  dkappa/dt = 2 m1 D . G.

    This follows from Appendix B's gradients (our derivation, cf. Eqs. 4, 5 and Lemma F.11);
    integrated with scipy's RK45 from the values at ``params``.  Returns G and kappa at ``t``
    and the per-type losses.
    """
    E = data.embeddings
    z0 = np.concatenate([word_values(params, E), value_gram(params, E).ravel(),
                         [params.u @ params.u]])
    weights = np.full(data.n, 1.0 / data.n)
    times, G, kappa, per = _frozen_flow(data.counts(), data.y, weights, params.m1, z0, t)
    type_loss = np.stack([per[:, data.types == k].mean(axis=1) for k in range(1, 5)], axis=1)
    return {"t": times, "G": G[:, :3], "u_norm2": kappa, "type_loss": type_loss,
            "loss": per.mean(axis=1)}


def special_word_flow(kappa0: float, m1: int, t: np.ndarray) -> dict:
    """The uniform-attention flow (:func:`uniform_attention_flow`) with the random words
    dropped and the exact type fractions (1/2, 1/6, 1/6, 1/6) of Assumption 2.3(i): one
    entry per type, holding mu_3 and its targets among mu_1, mu_2, weighted by its fraction,
    from G = 0, Gamma = 0 and kappa = ``kappa0`` (the limit of small initial W_V).  Returns
    G(mu_1..3), kappa and the per-type losses (types 1-4) at ``t``, and the mean ``loss``."""
    if not kappa0 > 0:
        raise ValueError(f"kappa0={kappa0!r} is not allowed; need kappa0 > 0")
    N = np.zeros((4, 3))
    for k, targets in enumerate(TYPE_TARGETS):
        N[k, [COMMON, *targets]] = 1.0
    weights = np.asarray(TYPE_PROBABILITIES)
    z0 = np.concatenate([np.zeros(3 + 9), [kappa0]])
    times, G, kappa, per = _frozen_flow(N, np.asarray(TYPE_LABELS, dtype=float), weights, m1,
                                        z0, np.asarray(t, dtype=float))
    return {"t": times, "G": G, "u_norm2": kappa, "type_loss": per, "loss": per @ weights}
