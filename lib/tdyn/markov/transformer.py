"""Part II: the single-layer transformer of Makkuva et al. trained on a binary Markov chain.

The model of the paper's framework, as the official code builds it (``Markov-Simple``,
commit 5807025 of github.com/Bond1995/Markov, the arXiv-v2 date): a scalar input
x_n in {0, 1}, no LayerNorm, one single-head causal attention layer and one ReLU MLP, both
with residual connections and without biases, a readout tied to the embedding and a scalar
bias, and a sigmoid on the logit:

    h_n   = x_n e + p_n                                  (token embedding e, positions p_n)
    y_n   = h_n + W_O sum_{i<=n} softmax_i(<W_Q h_n, W_K h_i> / sqrt d) W_V h_i
    z_n   = y_n + W_2 ReLU(W_1 y_n)                      (W_1: 4d x d, W_2: d x 4d)
    logit = <e, z_n> + b,     P(x_{n+1} = 1 | x_1..x_n) = sigmoid(logit)

Initializations:

* ``"standard"``: every weight N(0, 0.02^2), the two output projections (W_O and W_2)
  N(0, (0.02 / sqrt 2)^2), b = 0 (nanoGPT's, the code's ``base``);
* ``"proposed"``: the code's ``good`` of 5807025: every entry of e is 0.5, of p_n -0.25, of
  W_1 1, of W_2 -1, the rest standard; for d = 8 this is the rank-one point
  (e, w) = (sqrt 2, -8) of the reduced model (see :func:`canonical_state`);
* ``"canonical"``: the exact rank-one embedding of a reduced-model point (e, w) with W_V = 0,
  on which the model computes e^2 (1 + 2 w|w|) x_n - e^2/2 + b (for e >= 0).

Training (:func:`train`) follows the official settings: AdamW (betas 0.9, 0.95, weight
decay 1e-3 on the weights of linear maps, the scalar-input embedding included, not on the
positions or b), a one-cycle schedule (2 % warm-up from lr/100, cosine down to lr/5), a
fresh batch of sequences at every step, and the binary cross-entropy of every position.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tdyn.devices import resolve_device, torch_threads
from tdyn.markov.chain import (
    check_pq,
    entropy_rate,
    sample,
    unigram_loss,
)
from tdyn.markov.precision import DEFAULT_SCALE, autocast, check_precision

INITS = ("standard", "proposed", "canonical")


class MarkovTransformer(nn.Module):
    """Single-layer, single-head transformer on binary sequences with a tied sigmoid head."""

    def __init__(self, d: int = 8, max_len: int = 1024, mlp_ratio: int = 4):
        super().__init__()
        if d < 1 or max_len < 1 or mlp_ratio < 1:
            raise ValueError(f"d={d!r}, max_len={max_len!r}, mlp_ratio={mlp_ratio!r} must be >= 1")
        self.d, self.max_len, self.hidden = d, max_len, mlp_ratio * d
        self.embedding = nn.Parameter(torch.zeros(d))  # e (also the readout: tied)
        self.positions = nn.Parameter(torch.zeros(max_len, d))  # p_1 .. p_N
        self.qkv = nn.Linear(d, 3 * d, bias=False)  # rows: W_Q, W_K, W_V
        self.attn_out = nn.Linear(d, d, bias=False)  # W_O
        self.fc1 = nn.Linear(d, self.hidden, bias=False)  # W_1
        self.fc2 = nn.Linear(self.hidden, d, bias=False)  # W_2
        self.bias = nn.Parameter(torch.zeros(()))  # b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of x_{n+1} = 1 for every position of x (batch, T) in {0, 1}."""
        t = x.shape[-1]
        if t > self.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len={self.max_len}")
        h = x.to(self.embedding.dtype).unsqueeze(-1) * self.embedding + self.positions[:t]
        q, k, v = self.qkv(h).split(self.d, dim=-1)
        a = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1),
                                           is_causal=True).squeeze(1)
        y = h + self.attn_out(a)
        z = y + self.fc2(F.relu(self.fc1(y)))
        return z @ self.embedding + self.bias

    def loss(self, seq: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy on sequences of T + 1 symbols (T predictions each)."""
        logits = self(seq[:, :-1])
        return F.binary_cross_entropy_with_logits(logits, seq[:, 1:].to(logits.dtype))

    def decay_parameters(self) -> list[nn.Parameter]:
        """The parameters the official code decays: weights of its nn.Linear modules (the
        scalar-input embedding is one of them); not the positions, not the bias."""
        return [self.embedding, self.qkv.weight, self.attn_out.weight, self.fc1.weight,
                self.fc2.weight]

    def no_decay_parameters(self) -> list[nn.Parameter]:
        return [self.positions, self.bias]


def _normal(param: torch.Tensor, std: float, generator: torch.Generator) -> None:
    with torch.no_grad():
        param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * std)


def canonical_state(e: float, w: float, d: int, mlp_ratio: int = 4) -> dict[str, torch.Tensor]:
    """Weights that make the transformer compute the reduced model at (e, w) exactly.

    With alpha = 1/sqrt(d) (1, .., 1) and beta = 2/sqrt(hidden) (1, .., 1) (so |beta|^2 = 4):
    e-vector = e alpha, every p_n = -(e/2) alpha, W_1 = |w| beta alpha^T, W_2 = w alpha beta^T,
    W_V = 0.  The residual stream of a symbol x is e (x - 1/2) alpha; for e >= 0 the ReLU
    passes the x = 1 half; the readout along e gives e^2 (1 + 2 w|w|) x - e^2/2.
    W_Q, W_K, W_O are not set here (they do not matter while W_V = 0).
    """
    hidden = mlp_ratio * d
    alpha = torch.full((d,), 1.0 / math.sqrt(d), dtype=torch.float64)
    beta = torch.full((hidden,), 2.0 / math.sqrt(hidden), dtype=torch.float64)
    return {
        "embedding": e * alpha,
        "positions_row": -0.5 * e * alpha,
        "fc1": abs(w) * torch.outer(beta, alpha),
        "fc2": w * torch.outer(alpha, beta),
    }


def build_model(init: str = "standard", d: int = 8, max_len: int = 1024, seed: int = 0,
                canonical: tuple[float, float] = (1.0, -1.0), bias: float = 0.0,
                device: str = "cpu", dtype: torch.dtype = torch.float32) -> MarkovTransformer:
    """A :class:`MarkovTransformer` initialized by ``init`` (see the module docstring).

    ``seed`` drives every random weight (a ``torch.Generator``; the same seed gives the same
    model on any device).  ``canonical`` is the (e, w) of ``init="canonical"``.
    """
    if init not in INITS:
        raise ValueError(f"init={init!r} is not allowed; choose one of {INITS}")
    model = MarkovTransformer(d=d, max_len=max_len).to(dtype=dtype)
    gen = torch.Generator().manual_seed(int(seed))
    std = 0.02
    for param in (model.embedding, model.positions, model.qkv.weight, model.fc1.weight):
        _normal(param, std, gen)
    for param in (model.attn_out.weight, model.fc2.weight):
        _normal(param, std / math.sqrt(2.0), gen)  # nanoGPT: 0.02 / sqrt(2 n_layer)
    with torch.no_grad():
        model.bias.fill_(bias)
        if init == "proposed":
            model.embedding.fill_(0.5)
            model.positions.fill_(-0.25)
            model.fc1.weight.fill_(1.0)
            model.fc2.weight.fill_(-1.0)
            model.attn_out.weight.normal_(0.0, std, generator=gen)  # the code leaves W_O at std
        elif init == "canonical":
            state = {k: v.to(dtype) for k, v in
                     canonical_state(*canonical, d=d, mlp_ratio=model.hidden // d).items()}
            model.embedding.copy_(state["embedding"])
            model.positions.copy_(state["positions_row"].expand(max_len, d))
            model.fc1.weight.copy_(state["fc1"])
            model.fc2.weight.copy_(state["fc2"])
            model.qkv.weight[2 * d:].zero_()  # W_V = 0
    return model.to(device=resolve_device(device))


def one_cycle(optimizer: torch.optim.Optimizer, lr: float, steps: int,
              warmup: float = 0.02) -> torch.optim.lr_scheduler.OneCycleLR:
    """The official schedule: cosine warm-up from lr/100 over ``warmup`` of the steps, then
    cosine annealing to lr/5 (OneCycleLR with div_factor 100, final_div_factor 0.05)."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=warmup, anneal_strategy="cos",
        cycle_momentum=False, div_factor=100.0, final_div_factor=0.05)


@dataclass
class TrainResult:
    """History of one training run: losses at the recorded steps and the throughput."""

    record_steps: list[int]
    eval_loss: list[float]
    train_loss: list[float]
    logit_gap: list[float]
    final_eval_loss: float
    wall_time_s: float
    tokens_per_s: float
    device: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@torch.no_grad()
def _evaluate(model: MarkovTransformer, eval_seq: torch.Tensor, chunk: int = 64):
    """Mean loss on the held-out sequences, and the mean logit after a 1 minus after a 0."""
    total, n, sum1, n1, sum0, n0 = 0.0, 0, 0.0, 0, 0.0, 0
    for start in range(0, eval_seq.shape[0], chunk):
        seq = eval_seq[start:start + chunk]
        x = seq[:, :-1]
        logits = model(x)
        total += F.binary_cross_entropy_with_logits(
            logits, seq[:, 1:].to(logits.dtype), reduction="sum").item()
        n += logits.numel()
        ones = x == 1
        sum1 += logits[ones].sum().item()
        n1 += int(ones.sum())
        sum0 += logits[~ones].sum().item()
        n0 += int((~ones).sum())
    return total / n, sum1 / max(n1, 1) - sum0 / max(n0, 1)


def sampled_loss(model: MarkovTransformer, p: float, q: float, batch: int = 64,
                 length: int = 256, seed: int = 0) -> float:
    """The model's mean next-symbol loss on ``batch`` fresh stationary sequences of ``length``
    predictions from the chain (p, q), drawn from ``seed``."""
    seq = torch.as_tensor(sample(p, q, batch, length + 1, rng=seed), dtype=torch.long)
    with torch.no_grad():
        return _evaluate(model, seq.to(next(model.parameters()).device))[0]


def train(p: float, q: float, init: str = "standard", d: int = 8, seq_len: int = 1024,
          batch: int = 16, steps: int = 1000, lr: float = 2e-3, weight_decay: float = 1e-3,
          seed: int = 0, eval_every: int = 25, eval_batch: int = 64, device: str = "cpu",
          canonical: tuple[float, float] = (1.0, -1.0), progress=None,
          cpu_threads: int | None = None, precision: str = "float32",
          monitor=None) -> TrainResult:
    """Train a fresh :class:`MarkovTransformer` by next-token prediction on the chain (p, q).

    Every step draws ``batch`` new sequences of ``seq_len`` + 1 symbols (stationary start).
    The test loss is measured every ``eval_every`` steps (and at the end) on ``eval_batch``
    held-out sequences drawn once from their own seed; ``train_loss`` is the mean training
    loss over the steps since the previous record (at step 0: the first batch's loss).
    Seeds: the model from ``seed``, training data from ``seed + 1``, test data from
    ``seed + 2`` (numpy generators), so a run is the same on CPU and GPU up to
    floating-point reduction order.  ``cpu_threads``: torch's intra-op threads while training
    on the CPU (restored afterwards; None, the default, keeps the current setting).  On two
    idle cores torch's default of two threads is faster (14 against 23 ms a step at T = 256);
    when another process holds a core, one thread is (23 against 40 ms).

    ``precision`` (:data:`tdyn.markov.precision.PRECISIONS`): ``"float32"`` (the default) trains
    without autocast; ``"float16"`` runs forward and backward under float16 autocast without a
    gradient scaler (the official loop on a GPU); ``"float16-scaled"`` adds a
    ``torch.amp.GradScaler`` (initial scale 2^16, dynamic); ``"bfloat16"`` uses bfloat16
    autocast.  The test loss is always evaluated in float32, so it measures the weights.
    ``monitor(step, model)``, if given, is called at every recorded step (step 0 included),
    under ``torch.no_grad``, for measurements along training.
    """
    p, q = check_pq(p, q)
    for name, value in (("d", d), ("seq_len", seq_len), ("batch", batch), ("steps", steps),
                        ("eval_every", eval_every), ("eval_batch", eval_batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if not lr > 0:
        raise ValueError(f"lr={lr!r} must be positive")
    check_precision(precision)
    dev = resolve_device(device)
    with torch_threads(dev, cpu_threads):
        model = build_model(init, d=d, max_len=seq_len, seed=seed, canonical=canonical,
                            device=str(dev.type))
        optimizer = torch.optim.AdamW(
            [{"params": model.decay_parameters(), "weight_decay": weight_decay},
             {"params": model.no_decay_parameters(), "weight_decay": 0.0}],
            lr=lr, betas=(0.9, 0.95))
        scheduler = one_cycle(optimizer, lr, steps)
        scaler = (torch.amp.GradScaler(dev.type, init_scale=DEFAULT_SCALE)
                  if precision == "float16-scaled" else None)
        data_rng = np.random.default_rng(seed + 1)
        eval_seq = torch.as_tensor(sample(p, q, eval_batch, seq_len + 1, rng=seed + 2),
                                   dtype=torch.long, device=dev)
        record_steps, eval_losses, train_losses, gaps = [], [], [], []
        loss0, gap0 = _evaluate(model, eval_seq)
        record_steps.append(0)
        eval_losses.append(loss0)
        train_losses.append(0.0)  # replaced below by the loss of the first batch at the init
        gaps.append(gap0)
        if monitor is not None:
            with torch.no_grad():
                monitor(0, model)
        running, count = 0.0, 0
        start = time.perf_counter()
        for step in range(1, steps + 1):
            seq = torch.as_tensor(sample(p, q, batch, seq_len + 1, rng=data_rng), dtype=torch.long,
                                  device=dev)
            with autocast(precision, dev.type):
                loss = model.loss(seq)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            scheduler.step()
            running += loss.item()
            count += 1
            if step == 1:
                train_losses[0] = loss.item()
            if step % eval_every == 0 or step == steps:
                ev, gap = _evaluate(model, eval_seq)
                record_steps.append(step)
                eval_losses.append(ev)
                train_losses.append(running / count)
                gaps.append(gap)
                if monitor is not None:
                    with torch.no_grad():
                        monitor(step, model)
                running, count = 0.0, 0
                if progress is not None:
                    progress(step, ev)
    wall = time.perf_counter() - start
    return TrainResult(record_steps=record_steps, eval_loss=eval_losses, train_loss=train_losses,
                       logit_gap=gaps, final_eval_loss=eval_losses[-1], wall_time_s=wall,
                       tokens_per_s=steps * batch * seq_len / wall, device=str(dev))


def reference_losses(p: float, q: float) -> dict[str, float]:
    """The two horizontal lines of every training plot: unigram and bigram (entropy rate)."""
    return {"unigram": unigram_loss(p, q), "bigram": entropy_rate(p, q)}
