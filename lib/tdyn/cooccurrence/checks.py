"""Measured forms of the quantitative Phase-1 and Phase-2 statements of Yang, Kailkhura, Wang
& Liang (2024): Theorem 3.1's bounds, Lemma 4.3's two-sided inequality, Proposition E.21,
Corollary F.13 and Lemma 4.1's rate.  Each function turns a statement into one number (or a
few) that the chapter tabulates and the tests check; the paper's constants are unspecified,
so the functions return ratios to the stated orders, not pass/fail verdicts."""

from __future__ import annotations

import numpy as np

from tdyn.cooccurrence.data import CooccurrenceData, sample_distribution, sample_training_set
from tdyn.cooccurrence.model import (
    Params,
    attention_change,
    balancing_ratios,
    condition1_sigmas,
    forward,
    g_sums,
    init_params,
    reduced_velocities,
    score_matrix,
    train,
    type_losses,
    uniform_attention_flow,
    value_gram,
    word_values,
)
from tdyn.devices import torch_threads

GRAM_SIGNS = np.array([1, -1, -1, 1, 1])
"""Corollary F.13: signs of d/dt of the value-Gram entries (1,2), (1,3), (2,3), (1,1), (2,2),
in the order of the history's ``gram`` column."""


def theorem31_orders(m: int, L: int) -> dict:
    """Theorem 3.1's orders without constants or logs: neuron correlations and value Gram
    entries change by O(1/m), scores by O(m^{-3/2} (1/L + m^{-1/2})), the K-K and Q-Q
    self-correlations by O(1/m^2), over [0, T1]."""
    return {"neuron_corr": 1 / m, "value_gram": 1 / m,
            "scores": m ** -1.5 * (1 / L + m ** -0.5), "self_corr": 1 / m ** 2}


def phase1_changes(params0: Params, params: Params, embeddings: np.ndarray) -> dict:
    """Largest changes between ``params0`` and ``params`` (at T1) of the quantities Theorem 3.1
    bounds: ``neuron_corr`` = max_{j1,j2} |<w_j1, w_j2> - init|, ``value_gram`` = max over
    all words |mu^T W_V^T W_V nu - init| (``value_gram_11`` the (1,1) entry,
    ||W_V mu_1||^2), ``scores`` = max |mu^T W_K^T W_Q nu - init|, ``self_corr`` = the larger
    of the K-K and Q-Q Gram changes; and ``kappa_ratio`` = ||W^T a||^2 / its initial value
    (Theorem E.27: Theta(sigma_1^2 m m1) at T1, i.e. a ratio of order one)."""
    E = embeddings
    dWW = params.W @ params.W.T - params0.W @ params0.W.T
    dgram = value_gram(params, E) - value_gram(params0, E)
    dA = score_matrix(params, E) - score_matrix(params0, E)
    K, K0, Q, Q0 = params.WK @ E, params0.WK @ E, params.WQ @ E, params0.WQ @ E
    self_corr = max(np.abs(K.T @ K - K0.T @ K0).max(), np.abs(Q.T @ Q - Q0.T @ Q0).max())
    return {"neuron_corr": float(np.abs(dWW).max()), "value_gram": float(np.abs(dgram).max()),
            "value_gram_11": float(dgram[0, 0]), "scores": float(np.abs(dA).max()),
            "self_corr": float(self_corr),
            "kappa_ratio": float((params.u @ params.u) / (params0.u @ params0.u))}


def lemma43_constant(history: dict, T_half: float, T1: float) -> float:
    """The largest C for which Lemma 4.3's inequality
    (1 + C) max(G1', G2') <= -G3' <= (1 - C)(G1' + G2') holds at every recorded time of
    [T_half, T1] (G' = dG(mu)/dt from the history's ``Gdot``).  Positive: the lemma holds with
    that constant; negative: it fails somewhere in the window."""
    t, Gd = np.asarray(history["t"]), np.asarray(history["Gdot"])
    window = (t >= T_half) & (t <= T1)
    if not window.any():
        raise ValueError(f"no recorded time in [T_half, T1] = [{T_half}, {T1}]")
    g1, g2, g3 = Gd[window, 0], Gd[window, 1], -Gd[window, 2]
    lower = g3 / np.maximum(g1, g2) - 1
    upper = 1 - g3 / (g1 + g2)
    return float(np.minimum(lower, upper).min())


def proposition_e21_ratio(history: dict, T1: float, n: int, F0: float) -> float:
    """Proposition E.21: |S_I2 - S_I3| / n <= O(F) over Phase 1 with F = max_i |F_i(0)|.
    Returns max_{t <= T1} |S_I2 - S_I3| / (n F), which the proposition says is O(1)."""
    t, S = np.asarray(history["t"]), np.asarray(history["S"])
    phase1 = t <= T1
    return float(np.abs(S[phase1, 1] - S[phase1, 2]).max() / (n * F0))


def corollary_f13_fractions(history: dict, T1: float) -> np.ndarray:
    """Corollary F.13: in Phase 2 the value-Gram entries (1,2), ||W_V mu_1||^2, ||W_V mu_2||^2
    increase and (1,3), (2,3) decrease.  Returns, for the five entries in the order of
    :data:`GRAM_SIGNS`, the fraction of recorded Phase-2 intervals on which the entry moves
    with the stated sign."""
    t, gram = np.asarray(history["t"]), np.asarray(history["gram"])
    steps = np.diff(gram[t >= T1], axis=0)
    return (np.sign(steps) == GRAM_SIGNS).mean(axis=0)


def lemma41_ratio(params0: Params, data, sigma0: float, sigma1: float) -> float:
    """Lemma 4.1: dG(mu_1)/dt = Theta((sigma0^2 + sigma1^2) m m1) at initialization.  Returns
    the measured dG(mu_1)/dt at t = 0 divided by (sigma0^2 + sigma1^2) m m1 (about 1/6 at
    g = 1/2 and uniform attention, where D(mu_1) = 1/6)."""
    rate = reduced_velocities(params0, data)["G"][0]
    return float(rate / ((sigma0 ** 2 + sigma1 ** 2) * params0.m * params0.m1))


def attention_change_by_scale(scales, lrs, steps: int = 3000, n: int = 48, L: int = 4,
                              d: int = 83, m: int = 32, m1: int = 32, data_seed: int = 0,
                              init_seed: int = 100) -> dict:
    """Train the small configuration of the learned-attention chapter from the Gaussian
    initialization at each ``scale`` x Condition 1 (step ``lrs[k]``, ``steps`` steps) and
    return, per scale, the attention change ``C12`` of Eq. 3 (key mu_1, query mu_2) and the
    largest ``random`` |C| among the random words."""
    data = sample_training_set(n, L, d, seed=data_seed)
    c12, random = [], []
    for scale, lr in zip(scales, lrs, strict=True):
        sigma0, sigma1 = condition1_sigmas(L, m, m1, scale)
        start = init_params(d, m, m1, seed=init_seed, sigma0=sigma0, sigma1=sigma1)
        end, _ = train(start, data, lr=lr, steps=steps, record=[steps])
        change = attention_change(end, start, data.embeddings)
        c12.append(float(change[0, 1]))
        random.append(float(np.abs(change[3:, 3:]).max()))
    return {"C12": c12, "random": random}


def random_word_effect(d: int, random_tokens: str, n: int = 48, L: int = 4, m: int = 32,
                       m1: int = 32, steps: int = 3000, lr: float = 0.05, n_test: int = 2000
                       ) -> dict:
    """Train at the Condition-1 scales 0.1 (data seed 0, initialization seed 100) with random
    words drawn ``random_tokens`` ("iid" or "distinct") from a vocabulary of ``d``; returns
    the largest |G| over the random words (``max_random``) and the per-type loss on
    ``n_test`` fresh entries (``test_type_loss``, seed 1)."""
    data = sample_training_set(n, L, d, seed=0, random_tokens=random_tokens)
    sigma0, sigma1 = condition1_sigmas(L, m, m1, 0.1)
    end, _ = train(init_params(d, m, m1, seed=100, sigma0=sigma0, sigma1=sigma1), data, lr=lr,
                   steps=steps, record=[steps])
    test = sample_distribution(n_test, L, d, seed=1, embeddings=data.embeddings)
    return {"max_random": float(np.abs(word_values(end, data.embeddings)[3:]).max()),
            "test_type_loss": type_losses(end, test)}


def frozen_attention_error(lrs, t_end: float = 3.0, n: int = 48, L: int = 4, d: int = 83,
                           m: int = 32, m1: int = 32) -> list[float]:
    """Largest |G(mu_k) from gradient descent - G(mu_k) from the uniform-attention flow| at
    time ``t_end``, started from W_K = W_Q = 0 (Condition-1 scales 0.3, data seed 7,
    initialization seed 8), for each step size of ``lrs``."""
    data = sample_training_set(n, L, d, seed=7)
    sigma0, sigma1 = condition1_sigmas(L, m, m1, 0.3)
    start = init_params(d, m, m1, seed=8, sigma0=sigma0, sigma1=sigma1)
    start = Params(W=start.W, WV=start.WV, WK=np.zeros_like(start.WK),
                   WQ=np.zeros_like(start.WQ), a=start.a)
    flow = uniform_attention_flow(start, data, np.array([0.0, t_end]))
    errors = []
    for lr in lrs:
        steps = int(round(t_end / lr))
        _, history = train(start, data, lr, steps, record=[steps])
        errors.append(float(np.abs(history["G"][-1] - flow["G"][-1]).max()))
    return errors


def unequal_type_counts(keep_type3: int = 8, n: int = 96, L: int = 4, d: int = 200, m: int = 32,
                        m1: int = 32, lr: float = 0.05, steps: int = 3000, every: int = 250,
                        data_seed: int = 0, init_seed: int = 100,
                        cpu_threads: int | None = 1) -> dict:
    """Automatic balancing without Assumption 2.3(i): the training set of ``n`` entries (data
    seed ``data_seed``) keeps only its first ``keep_type3`` type-3 entries, and gradient
    descent at the Condition-1 scales 0.1 (initialization seed ``init_seed``, step ``lr``)
    runs ``steps`` steps (by :func:`tdyn.cooccurrence.msweep.train_torch`, in segments of
    ``every``).  Returns, at t = 0 and after every segment, the time ``t``, the g sums ``S``
    per type (:func:`~tdyn.cooccurrence.model.g_sums`), Lemma 4.4's ratio ``lemma44`` and
    G(mu_1..3) (``G``), and the entries per type (``counts``).  ``cpu_threads``: torch's
    threads while training (one: these small products slow down when threads contend)."""
    from tdyn.cooccurrence.msweep import train_torch  # imports torch

    full = sample_training_set(n, L, d, seed=data_seed)
    keep = np.ones(full.n, dtype=bool)
    keep[np.flatnonzero(full.types == 3)[keep_type3:]] = False
    data = CooccurrenceData(full.tokens[keep], full.types[keep], full.y[keep], full.embeddings)
    sigma0, sigma1 = condition1_sigmas(L, m, m1, 0.1)
    params = init_params(d, m, m1, seed=init_seed, sigma0=sigma0, sigma1=sigma1)
    times, sums, values = [], [], []
    with torch_threads("cpu", cpu_threads):
        for done in range(0, steps + 1, every):
            if done:
                final = train_torch(params, data, lr, every, record=[every])["final"]
                params = Params(**final, a=params.a)
            times.append(lr * done)
            sums.append(g_sums(forward(params, data).g, data.types))
            values.append(word_values(params, data.embeddings)[:3])
    sums = np.array(sums)
    return {"t": np.array(times), "S": sums, "lemma44": balancing_ratios(sums)["lemma44"],
            "G": np.array(values), "counts": np.bincount(data.types, minlength=5)[1:]}
