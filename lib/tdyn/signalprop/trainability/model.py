"""Part I trainability model and its ensemble training.

Model.  Embedding E (V + 1 words, N(0, 1) entries, so |x|^2 ~ d), ``depth`` blocks of the
family (pre-LN ``interp`` residual by default, the block of :mod:`tdyn.signalprop.simulate`, weights
initialized with the family's variances and all trained), a final LN and a linear readout
W_out ~ N(0, 1/d).  The residual strengths alpha_A, alpha_M are fixed architecture constants.

Training.  One batched ensemble: every configuration (hyperparameters x seed) has its own
stacked weights, and all of them see the same training batches (common random numbers), trained
with Adam on the cross-entropy of the masked positions, at a constant learning rate or with a
cosine decay to zero over the run.  A configuration whose loss becomes non-finite is recorded as
diverged (its loss is NaN from then on); the others are unaffected.  An optional validation set
(its own seed) gives the loss by which a learning rate is chosen, apart from the test set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tdyn.devices import resolve_device, torch_threads
from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.simulate import replicate_seed
from tdyn.signalprop.trainability.task import TopicTask

SCHEDULES = ("constant", "cosine")
"""Learning-rate schedules: constant, or lr_t = lr (1 + cos(pi t / steps)) / 2 (t = 0 .. steps)."""

VALUE_LR_RULES = ("fixed", "scaled")
"""The learning rate of W_V: the same as every other weight's (``fixed``), or multiplied by the
ensemble's value scale sigma_V (``scaled``: Adam then moves W_V by the same amount relative to
its initial scale whatever sigma_V is)."""


def learning_rate_factor(step: int, steps: int, schedule: str) -> float:
    """lr_t / lr after ``step`` of ``steps`` updates (:data:`SCHEDULES`): 1, or the cosine
    (1 + cos(pi t / steps)) / 2, which falls from 1 at t = 0 to 0 at t = steps."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not allowed; choose one of {SCHEDULES}")
    if schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * step / steps))


@dataclass(frozen=True)
class TrainSettings:
    """Sizes and optimizer of one sweep: width d, depth, Adam learning rate, steps, batch size
    (sequences), test set size, evaluation every ``eval_every`` steps, data seed, learning-rate
    schedule (:data:`SCHEDULES`), the rule for W_V's learning rate (:data:`VALUE_LR_RULES`) and
    the validation set size (0: none)."""

    d: int = 32
    depth: int = 6
    lr: float = 1e-3
    steps: int = 300
    batch: int = 32
    test_size: int = 512
    eval_every: int = 100
    data_seed: int = 0
    schedule: str = "constant"
    value_lr: str = "fixed"
    validation_size: int = 0

    def __post_init__(self) -> None:
        for name in ("d", "depth", "steps", "batch", "test_size", "eval_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr={self.lr!r} must be a positive finite number")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not allowed; choose one of "
                             f"{SCHEDULES}")
        if self.value_lr not in VALUE_LR_RULES:
            raise ValueError(f"value_lr={self.value_lr!r} is not allowed; choose one of "
                             f"{VALUE_LR_RULES}")
        if not (isinstance(self.validation_size, int) and self.validation_size >= 0):
            raise ValueError(f"validation_size={self.validation_size!r} must be an integer >= 0")


@dataclass(frozen=True)
class Member:
    """One configuration of the ensemble: the block's hyperparameters and an init seed."""

    alpha_A: float
    alpha_M: float
    sigma_w: float
    sigma_A: float = 1.0
    seed: int = 0
    sigma_V: float = 1.0

    def architecture(self, task: TopicTask, settings: TrainSettings, **kw) -> Architecture:
        """The :class:`Architecture` of this member at the run's sizes (n = seq_len)."""
        return Architecture(n=task.seq_len, d=settings.d, sigma_A=self.sigma_A,
                            sigma_w=self.sigma_w, alpha_A=self.alpha_A, alpha_M=self.alpha_M,
                            sigma_V=self.sigma_V, **kw)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma_V) and self.sigma_V > 0):
            raise ValueError(f"sigma_V={self.sigma_V!r} must be a positive finite number")


def init_ensemble(members: Sequence[Member], task: TopicTask, settings: TrainSettings,
                  device="cpu", dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Stacked trainable weights, axis 0 = member.  Member m draws from a torch generator
    seeded by (m.seed, 0), so its weights do not depend on the rest of the ensemble.

    W_Q, W_K ~ N(0, sigma_A / d) (logit variance sigma_A^2 at |y|^2 = d),
    W_V ~ N(0, sigma_V^2 / d), W_1 ~ N(0, sigma_w^2 / d), W_2 ~ N(0, sigma_w^2 / d) (readout
    tied to sigma_w, D = d).
    """
    d, depth, vocab = settings.d, settings.depth, task.vocab
    shapes = {"E": (vocab + 1, d), "Q": (depth, d, d), "K": (depth, d, d), "V": (depth, d, d),
              "W1": (depth, d, d), "W2": (depth, d, d), "out": (d, vocab)}
    out = {key: [] for key in shapes}
    for m in members:
        g = torch.Generator(device=device).manual_seed(replicate_seed(m.seed, 0))
        std = {"E": 1.0, "Q": math.sqrt(m.sigma_A / d), "K": math.sqrt(m.sigma_A / d),
               "V": m.sigma_V / math.sqrt(d), "W1": m.sigma_w / math.sqrt(d),
               "W2": m.sigma_w / math.sqrt(d), "out": 1 / math.sqrt(d)}
        for key, shape in shapes.items():
            out[key].append(std[key] * torch.randn(shape, generator=g, dtype=dtype,
                                                   device=device))
    return {key: torch.stack(v).requires_grad_(True) for key, v in out.items()}


def _layer_norm(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LN(x) = r x with r = sqrt(d) / |x| along the last axis; returns (LN(x), r)."""
    r = x.shape[-1] ** 0.5 / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return x * r, r


def _layer_norm_backward(grad: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The gradient through y = LN(x) = r x: r (g - y (g . y) / d), since
    dy/dx = r (I - y y^T / d)."""
    dot = torch.linalg.vecdot(grad, y).unsqueeze(-1) / -y.shape[-1]
    return torch.addcmul(grad, y, dot).mul_(r)


class _Network(torch.autograd.Function):
    """The ``depth`` pre-LN ``interp`` blocks and the final LN of every member at once, with
    the backward written out (the chain rule of the products below, without autograd's
    intermediates).

    Tokens x (M, T, d) in sequences of n.  Block l: y = LN(x); the logits of a sequence are
    y A y^T with A = W_Q^T W_K / sqrt(d) (= (y W_Q^T)(y W_K^T)^T / sqrt(d)); x' = c_A x + z
    (alpha_A W_V)^T with z = softmax(y A y^T) y; y' = LN(x'); h = tanh(y' W_1^T), computed as
    2 sigmoid(y' (2 W_1)^T) - 1 (absolute error at the dtype's resolution; torch's CPU tanh is
    about 6 times slower than its sigmoid); x'' = c_M x' + h (alpha_M W_2)^T; c = sqrt(1 -
    alpha^2).  Weights (M, depth, d, d); ``coef`` (M, 4, 1, 1) holds (c_A, alpha_A, c_M,
    alpha_M).  The intermediates are kept for the backward only where ``grad_enabled``.
    """

    @staticmethod
    def forward(ctx, x, q, k, v, w1, w2, coef, n, grad_enabled):
        keep = [] if grad_enabled else None
        d = x.shape[-1]
        c_A, a_A, c_M, a_M = coef.unbind(1)
        for layer in range(q.shape[1]):
            y1, r1 = _layer_norm(x)
            a = torch.bmm(q[:, layer].transpose(1, 2), k[:, layer]).mul_(d**-0.5)
            u = torch.bmm(y1, a)
            y1s = y1.view(-1, n, d)
            p = torch.softmax(torch.bmm(u.view(-1, n, d), y1s.transpose(1, 2)), dim=-1)
            z = torch.bmm(p, y1s).view(x.shape)
            v_scaled = v[:, layer] * a_A
            x = torch.mul(x, c_A).baddbmm_(z, v_scaled.transpose(1, 2))
            y2, r2 = _layer_norm(x)
            h = torch.bmm(y2, w1[:, layer].transpose(1, 2) * 2.0).sigmoid_().mul_(2.0).sub_(1.0)
            w2_scaled = w2[:, layer] * a_M
            x = torch.mul(x, c_M).baddbmm_(h, w2_scaled.transpose(1, 2))
            if keep is not None:
                keep.append((y1, r1, a, u, p, z, v_scaled, y2, r2, h, w2_scaled))
        y, r = _layer_norm(x)
        if keep is not None:
            ctx.n, ctx.layers, ctx.final = n, keep, (y, r)
            ctx.save_for_backward(q, k, w1, coef)
        return y

    @staticmethod
    def backward(ctx, grad):
        q, k, w1, coef = ctx.saved_tensors
        n, d = ctx.n, grad.shape[-1]
        c_A, a_A, c_M, a_M = coef.unbind(1)
        g_q, g_k, g_v, g_w1, g_w2 = (torch.empty_like(q) for _ in range(5))
        g_x = _layer_norm_backward(grad, *ctx.final)
        layers, ctx.layers, ctx.final = ctx.layers, None, None  # freed as the loop goes
        for layer in reversed(range(q.shape[1])):
            y1, r1, a, u, p, z, v_scaled, y2, r2, h, w2_scaled = layers.pop()
            # MLP: x'' = c_M x' + h W2s^T, h = tanh(y2 W1^T), y2 = LN(x')
            g_w2[:, layer] = torch.bmm(g_x.transpose(1, 2), h).mul_(a_M)
            g_pre = torch.ops.aten.tanh_backward(torch.bmm(g_x, w2_scaled), h)
            g_w1[:, layer] = torch.bmm(g_pre.transpose(1, 2), y2)
            g_x1 = _layer_norm_backward(torch.bmm(g_pre, w1[:, layer]), y2, r2)
            g_x1.addcmul_(g_x, c_M)
            # attention: x' = c_A x + z Vs^T, z = P y1, P = softmax(u y1^T), u = y1 A
            g_v[:, layer] = torch.bmm(g_x1.transpose(1, 2), z).mul_(a_A)
            g_z = torch.bmm(g_x1, v_scaled).view(-1, n, d)
            y1s = y1.view(-1, n, d)
            g_y1 = torch.bmm(p.transpose(1, 2), g_z)
            g_s = torch._softmax_backward_data(torch.bmm(g_z, y1s.transpose(1, 2)), p, -1,
                                               p.dtype)
            g_u = torch.bmm(g_s, y1s)
            g_y1.baddbmm_(g_s.transpose(1, 2), u.view(-1, n, d))
            g_u = g_u.view(y1.shape)
            g_a = torch.bmm(y1.transpose(1, 2), g_u).mul_(d**-0.5)
            g_y1 = g_y1.view(y1.shape).baddbmm_(g_u, a.transpose(1, 2))
            g_x = _layer_norm_backward(g_y1, y1, r1).addcmul_(g_x1, c_A)
            g_q[:, layer] = torch.bmm(k[:, layer], g_a.transpose(1, 2))
            g_k[:, layer] = torch.bmm(q[:, layer], g_a)
        return g_x, g_q, g_k, g_v, g_w1, g_w2, None, None, None


def forward(params: dict[str, torch.Tensor], alphas: torch.Tensor, inputs: torch.Tensor
            ) -> torch.Tensor:
    """Logits (members, batch, n, V) for word ids ``inputs`` (batch, n): pre-LN ``interp``
    blocks x <- sqrt(1 - a_A^2) x + a_A W_V softmax(s) LN(x), x <- sqrt(1 - a_M^2) x + a_M W_2
    tanh(W_1 LN(x)) (:class:`_Network`), then LN and the readout.  ``alphas``: (members, 2) =
    (alpha_A, alpha_M)."""
    batch, n = inputs.shape
    members, _, d = params["E"].shape
    x = params["E"][:, inputs].view(members, batch * n, d)
    a = alphas.reshape(members, 2, 1, 1)
    coef = torch.stack([torch.sqrt(1 - a[:, 0]**2), a[:, 0], torch.sqrt(1 - a[:, 1]**2),
                        a[:, 1]], dim=1)
    y = _Network.apply(x, *(params[key] for key in ("Q", "K", "V", "W1", "W2")), coef, n,
                       torch.is_grad_enabled())
    return (y @ params["out"]).view(members, batch, n, -1)


def masked_losses(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor
                  ) -> torch.Tensor:
    """Per-member mean cross-entropy over the masked positions, shape (members,)."""
    logp = torch.log_softmax(logits, dim=-1)
    picked = torch.gather(logp, -1, targets.expand(logits.shape[0], *targets.shape)[..., None])
    return -(picked[..., 0] * masked).sum(dim=(1, 2)) / masked.sum()


EVAL_SLICE = 512
"""Test sequences evaluated at once: bounds the memory of an evaluation of a large ensemble
(a test set of at most this size is evaluated in one pass, as before slicing existed)."""


@dataclass(frozen=True)
class TrainResult:
    """Per member: final test and train loss (NaN if diverged), the step of divergence (-1 if
    none), the test loss at every evaluation (shape (members, evaluations)) and the final
    validation loss (NaN without a validation set)."""

    test_loss: np.ndarray
    train_loss: np.ndarray
    diverged_at: np.ndarray
    eval_steps: np.ndarray
    test_curve: np.ndarray
    seconds: float
    validation_loss: np.ndarray | None = None


def train_ensemble(members: Sequence[Member], task: TopicTask, settings: TrainSettings,
                   device: str = "cpu", dtype=torch.float32,
                   cpu_threads: int | None = 1) -> TrainResult:
    """Train all ``members`` as one batched ensemble with Adam (module docstring).

    ``cpu_threads``: torch's intra-op threads while training on the CPU (restored afterwards;
    None keeps the current setting); one is the default because many small batched products
    run far slower when torch's threads contend with other processes for a few cores.
    """
    members = list(members)
    if not members:
        raise ValueError("members must contain at least one Member")
    dev = resolve_device(device)
    with torch_threads(dev, cpu_threads):
        return _train(members, task, settings, dev, dtype)


def _train(members, task, settings, dev, dtype) -> TrainResult:
    """The training loop of :func:`train_ensemble`."""
    start = time.perf_counter()
    params = init_ensemble(members, task, settings, dev, dtype)
    alphas = torch.tensor([[m.alpha_A, m.alpha_M] for m in members], dtype=dtype, device=dev)
    opt = _optimizer(params, members, settings)
    schedule = None if settings.schedule == "constant" else torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: learning_rate_factor(t, settings.steps, settings.schedule))
    data_rng = np.random.default_rng([settings.data_seed, 1])
    test = [torch.as_tensor(a, device=dev) for a in
            task.sample(settings.test_size, np.random.default_rng([settings.data_seed, 2]))]
    validation = [torch.as_tensor(a, device=dev) for a in
                  task.sample(settings.validation_size,
                              np.random.default_rng([settings.data_seed, 3]))]
    diverged_at = np.full(len(members), -1)
    eval_steps, curve = [], []
    train_loss = torch.full((len(members),), math.nan)

    def evaluate(held_out) -> np.ndarray:
        with torch.no_grad():
            if len(held_out[0]) <= EVAL_SLICE:
                loss = masked_losses(forward(params, alphas, held_out[0]), held_out[1],
                                     held_out[2])
            else:  # mean over all masked positions = (sum of slice means x counts) / count
                loss = sum(masked_losses(forward(params, alphas, x), y, m) * m.sum()
                           for x, y, m in zip(*(t.split(EVAL_SLICE) for t in held_out),
                                              strict=True)) / held_out[2].sum()
        loss = loss.cpu().numpy().astype(float)
        loss[diverged_at >= 0] = math.nan
        return loss

    for step in range(1, settings.steps + 1):
        inputs, targets, masked = (torch.as_tensor(a, device=dev) for a in
                                   task.sample(settings.batch, data_rng))
        losses = masked_losses(forward(params, alphas, inputs), targets, masked)
        finite = torch.isfinite(losses)
        newly = (~finite.cpu().numpy()) & (diverged_at < 0)
        diverged_at[newly] = step
        opt.zero_grad(set_to_none=True)
        torch.where(finite, losses, torch.zeros_like(losses)).sum().backward()
        opt.step()
        if schedule is not None:
            schedule.step()
        train_loss = losses.detach()
        if step % settings.eval_every == 0 or step == settings.steps:
            eval_steps.append(step)
            curve.append(evaluate(test))
    final_train = train_loss.cpu().numpy().astype(float)
    final_train[diverged_at >= 0] = math.nan
    curve = np.stack(curve, axis=1)
    return TrainResult(test_loss=curve[:, -1], train_loss=final_train, diverged_at=diverged_at,
                       eval_steps=np.array(eval_steps), test_curve=curve,
                       seconds=time.perf_counter() - start,
                       validation_loss=evaluate(validation) if settings.validation_size
                       else None)


def _optimizer(params: dict[str, torch.Tensor], members: Sequence[Member],
               settings: TrainSettings) -> torch.optim.Adam:
    """Adam at ``settings.lr``; with ``value_lr="scaled"`` W_V's group runs at lr x sigma_V,
    which needs one sigma_V in the whole ensemble.  Torch's fused Adam (one pass over each
    tensor) where the device has it."""
    fused = next(iter(params.values())).device.type in ("cpu", "cuda")
    if settings.value_lr == "fixed":
        return torch.optim.Adam(params.values(), lr=settings.lr, fused=fused)
    scales = {m.sigma_V for m in members}
    if len(scales) != 1:
        raise ValueError(f"value_lr='scaled' needs one sigma_V per ensemble, got "
                         f"{sorted(scales)}")
    others = [t for key, t in params.items() if key != "V"]
    return torch.optim.Adam([{"params": others},
                             {"params": [params["V"]], "lr": settings.lr * scales.pop()}],
                            lr=settings.lr, fused=fused)


def task_reference_losses(task: TopicTask, settings: TrainSettings) -> dict[str, float]:
    """Bayes-optimal and unigram losses on the run's test set (the floor and the no-context
    baseline of the test loss)."""
    inputs, targets, masked = task.sample(settings.test_size,
                                          np.random.default_rng([settings.data_seed, 2]))
    return {"bayes": task.bayes_loss(inputs, targets, masked),
            "unigram": task.unigram_loss(targets, masked)}
