"""The Figure-1 experiment of Yang et al. (2024) and its seed sweep, as JSON-ready results for
the run store (used by ``notebooks/cooccurrence.ipynb``; the chapters of Part III plot them).

Three regimes (the paper's "Kaiming initialization" is not specified further, and its sizes
n = 60, L = 5, d = 64 leave 61 random words for 160 random slots, so Assumption 2.3(ii) cannot
hold at d = 64):

* ``theory-iid``: Gaussian init at Condition-1 scales times ``theory_scale``, vocabulary d,
  random words drawn i.i.d. as in Definition 2.1 (they repeat across entries);
* ``theory-distinct``: the same init, the vocabulary enlarged to the smallest d for which
  every random word is distinct (Assumption 2.3(ii));
* ``kaiming-iid``: PyTorch's default ``nn.Linear`` init (U(+-1/sqrt(fan_in))), vocabulary d.
"""

from __future__ import annotations

import numpy as np

from tdyn.cooccurrence.data import (
    N_SPECIAL,
    random_slot_count,
    sample_distribution,
    sample_training_set,
    type_counts,
)
from tdyn.cooccurrence.model import (
    condition1_sigmas,
    forward,
    init_params,
    logistic_loss,
    phase_times,
    record_steps,
    score_matrix,
    train,
)

EXPERIMENT = "cooccurrence"
"""The name of its notebook, spec and data folder."""

REGIMES = {
    "theory-iid": ("gaussian", "iid"),
    "theory-distinct": ("gaussian", "distinct"),
    "kaiming-iid": ("kaiming_uniform", "iid"),
}


def experiment_configs(n_seeds: int, steps: int, sweep_steps: int) -> list[dict]:
    """One configuration per (regime, seed index); seed 0 runs ``steps`` and keeps its
    history, the others run ``sweep_steps`` and keep a summary."""
    return [{"regime": r, "seed_index": s, "steps": steps if s == 0 else sweep_steps,
             "keep_history": s == 0} for r in REGIMES for s in range(n_seeds)]


def _round(value, digits: int = 7):
    """Nested lists of floats rounded to ``digits`` significant digits (compact JSON)."""
    return np.vectorize(lambda x: float(f"{x:.{digits}g}"))(np.asarray(value, float)).tolist()


def configurations(params: dict) -> list[dict]:
    """The experiment's configurations (:func:`experiment_configs`) from its parameters."""
    return experiment_configs(params["n_seeds"], params["steps"], params["sweep_steps"])


def seeds(config: dict, params: dict) -> dict:
    """The seeds of one configuration (seed index s): the training set (seed + s), the
    initial weights (seed + 1000 + s) and the fresh test entries (seed + 2000 + s)."""
    s = params["seed"] + config["seed_index"]
    return {"data": s, "init": s + 1000, "test": s + 2000}


def run_configuration(config: dict, params: dict) -> dict:
    """Train one configuration of :func:`experiment_configs`; returns a JSON-ready summary:
    vocabulary ``d_used``, max |F^(0)|, phase times ``T1``, ``T_half`` and ``C_T1`` = T1
    sigma_1^2 m m1 (Phase 1 ends at C_T1 / (sigma_1^2 m m1) in the paper; sigma_1 is the
    entry s.d. of W), final training/type losses, generalization loss on ``n_test`` fresh
    entries (before/after, per type), final G(mu_1..3), the learned attention coefficients
    C = W_K^T W_Q - W_K0^T W_Q0 for (key, query) = (1,2), (2,1), (3,1), (3,2) and the largest
    |C| with a random word, the signs of the score and value-Gram changes over Phase 2, the
    largest Lemma-4.4 ratio in Phase 2, the last R, its ``seeds`` and (with ``keep_history``)
    the history.
    """
    n, L, d, m, m1 = (params[k] for k in ("n", "L", "d", "m", "m1"))
    seed_of = seeds(config, params)
    init, mode = REGIMES[config["regime"]]
    d_used = d
    if mode == "distinct":
        d_used = max(d, random_slot_count(type_counts(n), L) + N_SPECIAL)
    data = sample_training_set(n, L, d_used, seed=seed_of["data"], random_tokens=mode)
    sigma0, sigma1 = condition1_sigmas(L, m, m1, params["theory_scale"])
    params0 = init_params(d_used, m, m1, seed=seed_of["init"], init=init, sigma0=sigma0,
                          sigma1=sigma1)
    test = sample_distribution(params["n_test"], L, d_used, seed=seed_of["test"],
                               embeddings=data.embeddings)
    steps = config["steps"]
    weights, h = train(params0, data, params["lr"], steps,
                       record=record_steps(steps, params["n_record"]), test=test)
    times = phase_times(h)
    k = int(np.searchsorted(h["t"], times["T1"])) if np.isfinite(times["T1"]) else 0
    E = data.embeddings
    C = score_matrix(weights, E) - score_matrix(params0, E)
    test_margin = test.y * forward(weights, test).F
    test_per = logistic_loss(test_margin)
    w_sd = float(params0.W.std())
    result = {
        "d_used": d_used,
        "F0_max": float(np.abs(forward(params0, data).F).max()),
        "T1": times["T1"],
        "T_half": times["T_half"],
        "C_T1": times["T1"] * w_sd ** 2 * m * m1,
        "loss_final": float(h["loss"][-1]),
        "type_loss_final": h["type_loss"][-1].tolist(),
        "test_loss_init": float(h["test_loss"][0]),
        "test_loss_final": float(h["test_loss"][-1]),
        "test_type_loss_final": [float(test_per[test.types == t].mean()) for t in range(1, 5)],
        "G_final": h["G"][-1].tolist(),
        "C12": float(C[0, 1]), "C21": float(C[1, 0]), "C31": float(C[2, 0]),
        "C32": float(C[2, 1]),
        "C_random_maxabs": float(np.abs(np.concatenate([C[3:].ravel(), C[:3, 3:].ravel()]))
                                 .max()),
        "score_change_sign": np.sign(h["scores"][-1] - h["scores"][k]).astype(int).tolist(),
        "gram_change_sign": np.sign(h["gram"][-1] - h["gram"][k]).astype(int).tolist(),
        "lemma44_max_phase2": float(h["lemma44"][k:].max()),
        "R_final": float(h["R"][-1]),
        "G_random_maxabs_final": float(h["G_random_maxabs"][-1]),
        "seeds": seed_of,
    }
    if config["keep_history"]:
        result["history"] = {key: _round(value) for key, value in h.items()}
    return result


def regime_history(table, regime: str) -> tuple[dict[str, np.ndarray], object]:
    """The stored history of the long (seed-0, ``keep_history``) run of ``regime`` in a run's
    table, as numpy arrays, and that run's row."""
    rows = table[(table.regime == regime) & table.keep_history]
    if rows.empty:
        raise ValueError(f"regime={regime!r} has no run with a stored history; regimes: "
                         f"{sorted(set(table.regime))}")
    row = rows.iloc[0]
    return {k: np.asarray(v, dtype=float) for k, v in row["history"].items()}, row
