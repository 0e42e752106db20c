"""Part II: which path of the transformer carries the prediction.

The logit of :class:`~tdyn.markov.transformer.MarkovTransformer` is a sum over its three
residual paths, because the readout is linear:

    logit_n = <e, h_n>             (skip: token embedding and position)
            + <e, W_O attn_n>      (attention)
            + <e, W_2 ReLU(W_1 y_n)>  (MLP)
            + b.

The *logit gap* of a model on a batch is the mean logit over positions with x_n = 1 minus the
mean over positions with x_n = 0 (the Bayes predictor's gap is
log((1-p)(1-q)/(pq)), negative for a switching chain).  The same difference taken for each
term splits the gap into a skip, an attention and an MLP part that sum to it exactly (the
bias cancels).  Alongside: the fraction of (position, hidden unit) pairs whose ReLU is active,
and the share of the squared singular values carried by the top one, s_1^2 / sum_i s_i^2, of
W_1 and W_V (1 for a rank-one matrix, the manifold of the reduced model).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

PATHS = ("skip", "attention", "mlp")


@torch.no_grad()
def path_logits(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-position contributions (batch, T) of each path to the logit, and the bias term
    ``"bias"``; their sum is ``model(x)``.  Also ``"preactivation"``: W_1 y_n (batch, T, 4d)."""
    t = x.shape[-1]
    e = model.embedding
    h = x.to(e.dtype).unsqueeze(-1) * e + model.positions[:t]
    q, k, v = model.qkv(h).split(model.d, dim=-1)
    a = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1),
                                       is_causal=True).squeeze(1)
    attn = model.attn_out(a)
    pre = model.fc1(h + attn)
    mlp = model.fc2(F.relu(pre))
    return {"skip": h @ e, "attention": attn @ e, "mlp": mlp @ e,
            "bias": model.bias.expand(x.shape), "preactivation": pre}


def conditional_gap(values: torch.Tensor, x: torch.Tensor) -> float:
    """Mean of ``values`` over positions with x_n = 1 minus the mean over x_n = 0 (NaN if
    either symbol is absent)."""
    ones = x == 1
    n1, n0 = int(ones.sum()), int((~ones).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    values = values.double()
    return float(values[ones].sum() / n1 - values[~ones].sum() / n0)


def top_singular_share(matrix: torch.Tensor) -> float:
    """s_1^2 / sum_i s_i^2 of a matrix (1 for rank one; NaN for the zero matrix)."""
    s = torch.linalg.svdvals(matrix.detach().double())
    total = float((s ** 2).sum())
    return float(s[0] ** 2) / total if total > 0 else float("nan")


@torch.no_grad()
def mechanism(model, x: torch.Tensor) -> dict[str, float]:
    """The logit gap of ``model`` on inputs ``x`` and its parts by path (``gap_skip``,
    ``gap_attention``, ``gap_mlp``, summing to ``gap``), the fraction of active ReLUs
    (``relu_active``), the top singular-value shares of W_1 and W_V (``sv_share_W1``,
    ``sv_share_WV``), the norm of W_V, and e's sign-defining scalar <e, p_mean>."""
    parts = path_logits(model, x)
    total = parts["skip"] + parts["attention"] + parts["mlp"] + parts["bias"]
    out = {"gap": conditional_gap(total, x)}
    for path in PATHS:
        out[f"gap_{path}"] = conditional_gap(parts[path], x)
    out["relu_active"] = float((parts["preactivation"] > 0).double().mean())
    d = model.d
    w_v = model.qkv.weight[2 * d:]
    out["sv_share_W1"] = top_singular_share(model.fc1.weight)
    out["sv_share_WV"] = top_singular_share(w_v)
    out["norm_WV"] = float(w_v.double().norm())
    return out


def mechanism_table(records: list[dict]) -> dict[str, list]:
    """A list of :func:`mechanism` dicts (one per recorded step) as JSON-ready lists by key,
    an undefined value (NaN: the singular-value share of a zero W_V) as None."""
    if not records:
        return {}
    return {key: [None if not np.isfinite(r[key]) else float(r[key]) for r in records]
            for key in records[0]}
