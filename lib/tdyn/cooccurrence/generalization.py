"""The generalization loss of the co-occurrence model (Yang, Kailkhura, Wang & Liang 2024,
Theorem 3.3) followed over long times, for several training-set sizes n and vocabularies d.

Each configuration trains the model of Eq. 1 by gradient descent with a staged step (the
Euler scheme of the same gradient flow, with larger steps once the loss, and with it the
curvature, has fallen), records the training loss and the loss on fresh entries of D, and fits
log L against log t over a stated window.  Random words are distinct (Assumption 2.3(ii))
when the vocabulary allows it and drawn i.i.d. (Definition 2.1) otherwise.  Training runs in
torch (:func:`tdyn.cooccurrence.msweep.train_torch`).  Used by
``notebooks/cooccurrence_generalization.ipynb``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tdyn.cooccurrence.data import (
    N_SPECIAL,
    random_slot_count,
    sample_distribution,
    sample_training_set,
    type_counts,
)
from tdyn.cooccurrence.model import condition1_sigmas, init_params
from tdyn.cooccurrence.msweep import parse_ints, rounded, train_torch
from tdyn.devices import resolve_device

EXPERIMENT = "cooccurrence_generalization"


def stages(text: str) -> list[tuple[float, int]]:
    """Parse a step schedule ``"lr:steps,lr:steps,..."`` into (step size, number of steps)."""
    out = []
    for part in str(text).split(","):
        lr, steps = part.split(":")
        out.append((float(lr), int(steps)))
    if not out or any(lr <= 0 or steps < 1 for lr, steps in out):
        raise ValueError(f"stages={text!r} is not allowed; need lr:steps pairs, lr > 0, steps >= 1")
    return out


def configurations(params: dict) -> list[dict]:
    """One configuration per (n, d) from the comma lists ``ns`` and ``ds``; random words are
    distinct where n L random slots fit in the vocabulary, i.i.d. otherwise."""
    L = int(params["L"])
    out = []
    for n in parse_ints(params["ns"]):
        for d in parse_ints(params["ds"]):
            fits = random_slot_count(type_counts(n), L) <= d - N_SPECIAL
            out.append({"n": n, "d": d, "random_tokens": "distinct" if fits else "iid"})
    return out


def seeds(config: dict, params: dict) -> dict[str, int]:
    """Seeds a configuration draws from: training set, initialization, test set."""
    base = int(params["seed"])
    return {"data": base, "init": base + 100, "test": base + 1000}


def power_law_exponent(t, values, t_lo: float, t_hi: float) -> float:
    """Least-squares slope of log(values) against log t over t in [t_lo, t_hi]."""
    t, values = np.asarray(t, float), np.asarray(values, float)
    keep = (t >= t_lo) & (t <= t_hi)
    if keep.sum() < 2:
        raise ValueError(f"fewer than two recorded times in [{t_lo}, {t_hi}]")
    return float(np.polyfit(np.log(t[keep]), np.log(values[keep]), 1)[0])


def run_configuration(config: dict, params: dict) -> dict:
    """Train one (n, d) configuration through the staged schedule ``params["stages"]``;
    JSON-ready result: the fitted exponents of the test and training losses over
    [``t_fit_lo``, ``t_fit_hi``], the test loss at the window's ends and at the end, and the
    history (t, training loss, test loss) at ``n_record`` points per stage."""
    n, d = int(config["n"]), int(config["d"])
    L, m, m1 = (int(params[k]) for k in ("L", "m", "m1"))
    sd = seeds(config, params)
    data = sample_training_set(n, L, d, seed=sd["data"], random_tokens=config["random_tokens"])
    test = sample_distribution(int(params["n_test"]), L, d, seed=sd["test"],
                               embeddings=data.embeddings)
    s0, s1 = condition1_sigmas(L, m, m1, float(params["scale"]))
    p = init_params(d, m, m1, seed=sd["init"], sigma0=s0, sigma1=s1)
    device = str(resolve_device(params.get("device", "cpu")))
    t_all, train_all, test_all, t_start = [], [], [], 0.0
    for lr, steps in stages(params["stages"]):
        record = np.unique(np.geomspace(1, steps, int(params["n_record"])).round().astype(int))
        h = train_torch(p, data, lr, steps, record=np.concatenate([[0], record]), test=test,
                        device=device)
        t_all += list(t_start + h["t"][1:])
        train_all += list(h["loss"][1:])
        test_all += list(h["test_loss"][1:])
        t_start += lr * steps
        p = replace(p, **h["final"])
    t_all, train_all, test_all = map(np.array, (t_all, train_all, test_all))
    lo, hi = float(params["t_fit_lo"]), float(params["t_fit_hi"])
    return {
        "seeds": sd,
        "device": device,
        "test_exponent": power_law_exponent(t_all, test_all, lo, hi),
        "train_exponent": power_law_exponent(t_all, train_all, lo, hi),
        "test_loss_lo": float(np.interp(lo, t_all, test_all)),
        "test_loss_hi": float(np.interp(hi, t_all, test_all)),
        "test_loss_final": float(test_all[-1]),
        "train_loss_final": float(train_all[-1]),
        "t_end": float(t_all[-1]),
        "history": {"t": rounded(t_all), "train_loss": rounded(train_all),
                    "test_loss": rounded(test_all)},
    }
