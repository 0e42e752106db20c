"""The premise regime of Theorem F.8 and Theorem 3.3 (Yang, Kailkhura, Wang & Liang 2024): a
sweep over the width m at fixed m1, and over a common rescaling of (sigma_0, sigma_1), toward
kappa(0) = sigma_1^2 m m1 >> sqrt(m1) ||G||, where the balance of
:mod:`tdyn.cooccurrence.theory` lets kappa stay of the order of its initial value.

Each configuration trains the model of Eq. 1 by full-batch gradient descent (the Euler scheme
of the gradient flow) at the paper's n, L, d, m1 and the width m, with (sigma_0, sigma_1) =
scale (1/sqrt(L m), 1/sqrt(m1)) and step lr = min(lr_max, lr_kappa / kappa(0)) (a larger
kappa needs a smaller step).  Training runs in torch (float64, autograd of Eq. 1) so that the
GPU profile can reach m = 16384; :func:`train_torch` is checked against the numpy closed forms
of :mod:`tdyn.cooccurrence.model`.  Used by ``notebooks/cooccurrence_msweep.ipynb``.
"""

from __future__ import annotations

import numpy as np

from tdyn.cooccurrence.data import sample_distribution, sample_training_set
from tdyn.cooccurrence.model import condition1_sigmas, init_params, record_steps
from tdyn.cooccurrence.theory import log_growth_exponent
from tdyn.devices import resolve_device

EXPERIMENT = "cooccurrence_msweep"
C_PAIRS = ("C12", "C21", "C31", "C32")
"""Theorem 3.3's named coefficients, key index first: C_{i1 i2} = mu_i1^T Delta mu_i2."""
_C_INDEX = ((0, 1), (1, 0), (2, 0), (2, 1))


def parse_ints(text: str) -> list[int]:
    """Integers of a comma-separated parameter string ("128,256")."""
    return [int(x) for x in str(text).split(",") if x.strip()]


def parse_floats(text: str) -> list[float]:
    """Floats of a comma-separated parameter string ("0.4,0.8")."""
    return [float(x) for x in str(text).split(",") if x.strip()]


def configurations(params: dict) -> list[dict]:
    """One configuration per (width m, init scale): ``params["ms"]`` and ``params["scales"]``
    are comma-separated lists."""
    return [{"m": m, "scale": s} for m in parse_ints(params["ms"])
            for s in parse_floats(params["scales"])]


def seeds(config: dict, params: dict) -> dict[str, int]:
    """Seeds a configuration draws from: the training set, the initialization (the same for
    every scale, so the two scales of one m start from proportional weights) and the test
    set."""
    base = int(params["seed"])
    return {"data": base, "init": base + 1000 + int(config["m"]), "test": base + 2000}


def theorem33_scale(L: int, m: int, m1: int, sigma0: float, sigma1: float) -> float:
    """Theorem 3.3's Theta expression for C_12, C_21, -C_31, -C_32 without constants:
    sigma0^2 m / (sqrt(m) L sigma1^2 m m1) + sigma0^2 sqrt(m) / (sqrt(m) sigma1^2 m m1).
    Invariant under (sigma0, sigma1) -> c (sigma0, sigma1)."""
    k = sigma1 ** 2 * m * m1
    return sigma0 ** 2 * m / (np.sqrt(m) * L * k) + sigma0 ** 2 * np.sqrt(m) / (np.sqrt(m) * k)


def _forward_torch(W, WV, WK, WQ, a, E, tok):
    """Eq. 1 in torch: F (n,), the word values G = u^T W_V E and the scores A = (W_K E)^T
    (W_Q E) / sqrt(m) (``E=None`` stands for the identity, one-hot words)."""
    import torch

    u = W.T @ a
    if E is None:  # one-hot words: the token maps are the weight columns themselves
        K_tok, Q_tok, V_tok = WK, WQ, WV
    else:
        K_tok, Q_tok, V_tok = WK @ E, WQ @ E, WV @ E
    A = K_tok.T @ Q_tok / np.sqrt(WV.shape[0])
    S = A[tok[:, None, :], tok[:, :, None]]
    P = torch.softmax(S, dim=2)
    G = u @ V_tok
    F = torch.einsum("ilh,ih->i", P, G[tok])
    return F, G, A


def train_torch(params0, data, lr: float, steps: int, record, test=None, device="cpu"):
    """Full-batch gradient descent on the mean logistic loss of Eq. 1 (Eq. 2), by torch
    autograd in float64 on ``device``; continuous time t = lr * step.  Returns a history of
    numpy arrays at the ``record`` steps: ``t``, ``loss``, ``min_margin``, ``G`` (G(mu_1..3)),
    ``G_norm2`` (sum over all words of G^2), ``kappa`` (||W^T a||^2), ``value_norm2``
    (||W_V||_F^2), ``C`` (the four coefficients :data:`C_PAIRS` relative to t = 0),
    ``test_loss`` (with ``test``), and the final weights as numpy arrays (``final``).

    torch is imported here, where training needs it, so that a chapter reading stored results
    of this experiment (or of :mod:`tdyn.cooccurrence.generalization`) does not pay its import
    (1.2 s)."""
    import torch

    dev = torch.device(device)
    t64 = dict(dtype=torch.float64, device=dev)
    leaves = {k: torch.tensor(getattr(params0, k), **t64, requires_grad=True)
              for k in ("W", "WV", "WK", "WQ")}
    a = torch.tensor(params0.a, **t64)
    onehot = np.array_equal(data.embeddings, np.eye(data.d))
    E = None if onehot else torch.tensor(data.embeddings, **t64)
    tok = torch.tensor(data.tokens, dtype=torch.long, device=dev)
    y = torch.tensor(data.y, **t64)
    if test is not None:
        tok_test = torch.tensor(test.tokens, dtype=torch.long, device=dev)
        y_test = torch.tensor(test.y, **t64)
    wanted = set(int(s) for s in record)
    rows, A0 = [], None
    for step in range(steps + 1):
        F, G, A = _forward_torch(leaves["W"], leaves["WV"], leaves["WK"], leaves["WQ"], a, E, tok)
        loss = torch.nn.functional.softplus(-y * F).mean()
        if step in wanted:
            with torch.no_grad():
                if A0 is None:
                    A0 = A.clone()
                # Theorem 3.3's C is the change of W_K^T W_Q itself, without the 1/sqrt(m)
                C = np.sqrt(params0.m) * torch.stack([A[i, j] - A0[i, j] for i, j in _C_INDEX])
                u = leaves["W"].T @ a
                row = {"t": lr * step, "loss": loss.item(), "min_margin": (y * F).min().item(),
                       "G": G[:3].cpu().numpy(), "G_norm2": (G @ G).item(),
                       "kappa": (u @ u).item(), "value_norm2": (leaves["WV"] ** 2).sum().item(),
                       "C": C.cpu().numpy()}
                if test is not None:
                    Ft, _, _ = _forward_torch(leaves["W"], leaves["WV"], leaves["WK"],
                                              leaves["WQ"], a, E, tok_test)
                    row["test_loss"] = torch.nn.functional.softplus(-y_test * Ft).mean().item()
                rows.append(row)
        if not torch.isfinite(F).all():
            raise FloatingPointError(f"training diverged at step {step} (lr={lr})")
        if step == steps:
            break
        grads = torch.autograd.grad(loss, list(leaves.values()))
        with torch.no_grad():
            for leaf, grad in zip(leaves.values(), grads, strict=True):
                leaf -= lr * grad
    history = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    history["final"] = {k: v.detach().cpu().numpy() for k, v in leaves.items()}
    return history


def late_slope(t, loss, decades: float = 1.0) -> float:
    """Least-squares slope of log L against log t over the last ``decades`` of recorded
    time (t > 0)."""
    t, loss = np.asarray(t, float), np.asarray(loss, float)
    keep = (t > 0) & (t >= t[-1] / 10 ** decades)
    return float(np.polyfit(np.log(t[keep]), np.log(loss[keep]), 1)[0])


def rounded(value, digits: int = 6):
    """Nested lists of floats rounded to ``digits`` significant digits (compact JSON)."""
    return np.vectorize(lambda x: float(f"{x:.{digits}g}"))(np.asarray(value, float)).tolist()


def run_configuration(config: dict, params: dict) -> dict:
    """Train one (m, scale) configuration; JSON-ready summary:

    ``kappa0`` = ||W^T a||^2 at t = 0 and ``sigma1^2 m m1``; ``lr``; ``T1`` (first recorded time
    with every entry classified and G(mu_1), G(mu_2) > 0 > G(mu_3)); ``kappa_T1_ratio`` and
    ``kappa_end_ratio`` = kappa / kappa(0) at T1 and at the end; ``premise`` = kappa(0) /
    (sqrt(m1) ||G||) at the end (>> 1 is Theorem F.8's premise); ``late_slope`` (fit of log L
    on log t over the last decade) against ``slope_log_law`` (:func:`log_growth_exponent` at
    the final loss) ; ``T_star`` (first recorded time with L <= ``loss_star``) and the named
    coefficients there, raw (``C_T_star``) and divided by :func:`theorem33_scale`
    (``C_T_star_scaled``); the conserved quantity kappa - m1 ||W_V||_F^2 at start and end;
    the final training and test losses; a compact history."""
    m, scale = int(config["m"]), float(config["scale"])
    n, L, d, m1 = (int(params[k]) for k in ("n", "L", "d", "m1"))
    sd = seeds(config, params)
    data = sample_training_set(n, L, d, seed=sd["data"], random_tokens=params["random_tokens"])
    sigma0, sigma1 = condition1_sigmas(L, m, m1, scale)
    p0 = init_params(d, m, m1, seed=sd["init"], sigma0=sigma0, sigma1=sigma1)
    test = sample_distribution(int(params["n_test"]), L, d, seed=sd["test"],
                               embeddings=data.embeddings)
    kappa0 = float(p0.u @ p0.u)
    lr = min(float(params["lr_max"]), float(params["lr_kappa"]) / kappa0)
    steps = int(params["steps"])
    device = resolve_device(params.get("device", "cpu"))
    h = train_torch(p0, data, lr, steps, record_steps(steps, int(params["n_record"])), test,
                    device=str(device))
    t, loss = h["t"], h["loss"]
    G = h["G"]
    end1 = (h["min_margin"] > 0) & (G[:, 0] > 0) & (G[:, 1] > 0) & (G[:, 2] < 0)
    k1 = int(np.argmax(end1)) if end1.any() else None
    below = loss <= float(params["loss_star"])
    ks = int(np.argmax(below)) if below.any() else None
    theta = theorem33_scale(L, m, m1, sigma0, sigma1)
    conserved = h["kappa"] - m1 * h["value_norm2"]
    result = {
        "seeds": sd,
        "m1": m1, "lr": lr, "steps": steps, "t_end": float(t[-1]),
        "device": str(device),
        "sigma0": sigma0, "sigma1": sigma1,
        "kappa0": kappa0, "sigma1sq_m_m1": sigma1 ** 2 * m * m1,
        "T1": float(t[k1]) if k1 is not None else float("nan"),
        "kappa_T1_ratio": float(h["kappa"][k1] / kappa0) if k1 is not None else float("nan"),
        "kappa_end_ratio": float(h["kappa"][-1] / kappa0),
        "sqrt_m1_G_end": float(np.sqrt(m1 * h["G_norm2"][-1])),
        "premise": float(kappa0 / np.sqrt(m1 * h["G_norm2"][-1])),
        "loss_final": float(loss[-1]),
        "test_loss_final": float(h["test_loss"][-1]),
        "late_slope": late_slope(t, loss),
        "slope_log_law": float(log_growth_exponent(loss[-1])) if loss[-1] < np.exp(-1)
        else float("nan"),
        "T_star": float(t[ks]) if ks is not None else float("nan"),
        "theorem33_scale": theta,
        "C_T_star": h["C"][ks].tolist() if ks is not None else [float("nan")] * 4,
        "C_T_star_scaled": (h["C"][ks] / theta).tolist() if ks is not None
        else [float("nan")] * 4,
        "C_end": h["C"][-1].tolist(),
        "conserved_start": float(conserved[0]),
        "conserved_end": float(conserved[-1]),
        "history": {k: rounded(h[k]) for k in ("t", "loss", "kappa", "G_norm2", "test_loss")},
    }
    return result
