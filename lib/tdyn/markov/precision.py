"""Part II: what reduced precision does to the gradients of the Markov transformer.

The official training loop (``Markov-Simple/src/optim/base.py`` of github.com/Bond1995/Markov)
runs forward and backward under ``torch.autocast(dtype=torch.float16)`` on a GPU and uses no
gradient scaler.  Under autocast the weights stay float32; the matrix products (``linear``,
``matmul``, attention) cast their inputs to the low-precision type, so the gradient that flows
back through them is a float16 tensor, whose smallest normal number is 2^-14 ~ 6.1e-5 and
smallest subnormal 2^-24 ~ 6.0e-8.  A per-position gradient of the mean loss over
B x T = 16 x 1024 positions is about |sigma - y| / 16384 <= 6e-5: it lives in the subnormal
range, and products of it with small activations round to zero ("flush").  A
``torch.amp.GradScaler`` multiplies the loss by S (2^16 by default) before the backward pass
and divides the float32 gradients by S afterwards, which moves them back into float16's
normal range.  bfloat16 has float32's exponent range (8 bits) and 8 bits of mantissa.

Precisions (``PRECISIONS``):

* ``"float32"``: no autocast (the reference);
* ``"float16"``: float16 autocast, no scaler (the official loop);
* ``"float16-scaled"``: float16 autocast, loss multiplied by ``scale`` before backward and the
  gradients divided by it after (what ``torch.amp.GradScaler`` does at a fixed scale);
* ``"bfloat16"``: bfloat16 autocast, no scaler.

CPU and CUDA autocast differ: each has its own list of operations run in low precision and of
operations forced to float32, and the CPU kernels of float16 matrix products accumulate in
float32.  Results of this module on the CPU are therefore CPU-autocast results; the book says
which device produced each number.
"""

from __future__ import annotations

import contextlib

import torch
from torch.nn import functional as F

PRECISIONS = ("float32", "float16", "float16-scaled", "bfloat16")
AUTOCAST_DTYPES = {"float32": None, "float16": torch.float16, "float16-scaled": torch.float16,
                   "bfloat16": torch.bfloat16}
DEFAULT_SCALE = 2.0 ** 16
"""GradScaler's initial scale (``init_scale=2**16``)."""


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not allowed; choose one of {PRECISIONS}")
    return precision


def autocast(precision: str, device_type: str):
    """The autocast context of ``precision`` on ``device_type`` (a no-op for float32)."""
    dtype = AUTOCAST_DTYPES[check_precision(precision)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


def parameter_groups(model) -> dict[str, torch.Tensor]:
    """Views of a :class:`~tdyn.markov.transformer.MarkovTransformer`'s parameters by role:
    e, p_n, W_Q, W_K, W_V (the row blocks of ``qkv``), W_O, W_1, W_2, b."""
    d = model.d
    qkv = model.qkv.weight
    return {"e": model.embedding, "p": model.positions, "W_Q": qkv[:d], "W_K": qkv[d:2 * d],
            "W_V": qkv[2 * d:], "W_O": model.attn_out.weight, "W_1": model.fc1.weight,
            "W_2": model.fc2.weight, "b": model.bias}


def _group_grads(model, grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    d = model.d
    qkv = grads["qkv.weight"]
    return {"e": grads["embedding"], "p": grads["positions"], "W_Q": qkv[:d],
            "W_K": qkv[d:2 * d], "W_V": qkv[2 * d:], "W_O": grads["attn_out.weight"],
            "W_1": grads["fc1.weight"], "W_2": grads["fc2.weight"], "b": grads["bias"]}


def _backward(model, seq, precision, factor):
    params = dict(model.named_parameters())
    with autocast(precision, seq.device.type):
        logits = model(seq[:, :-1])
        loss = F.binary_cross_entropy_with_logits(logits.float(), seq[:, 1:].float())
    grads = torch.autograd.grad(loss * factor, list(params.values()), allow_unused=True)
    out = {name: (torch.zeros_like(param) if grad is None else grad.float()) / factor
           for (name, param), grad in zip(params.items(), grads, strict=True)}
    return float(loss.detach()), out


def gradients(model, seq: torch.Tensor, precision: str = "float32",
              scale: float = DEFAULT_SCALE) -> tuple[float, dict[str, torch.Tensor], float]:
    """(loss, gradient of the mean loss per parameter group, scale used) of one batch ``seq``
    under ``precision``.  The gradients are float32.  For ``"float16-scaled"`` the backward
    pass is of ``scale * loss`` and the gradients are divided by ``scale`` afterwards; while
    any of them is infinite or NaN the scale is halved and the pass repeated (GradScaler's
    back-off, which skips such steps in training).  The model's ``.grad`` fields are not
    touched."""
    check_precision(precision)
    factor = scale if precision == "float16-scaled" else 1.0
    while True:
        loss, grads = _backward(model, seq, precision, factor)
        finite = all(bool(torch.isfinite(g).all()) for g in grads.values())
        if finite or precision != "float16-scaled" or factor <= 1.0:
            return loss, _group_grads(model, grads), factor
        factor /= 2.0


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """<a, b> / (|a| |b|) in float64; 0 when exactly one of them is zero (a gradient flushed
    entirely carries no direction), NaN when both are."""
    a, b = a.detach().double().flatten(), b.detach().double().flatten()
    na, nb = float(a.norm()), float(b.norm())
    if na == 0 or nb == 0:
        return float("nan") if na == nb else 0.0
    return float(a @ b) / (na * nb)


def gradient_agreement(model, seq: torch.Tensor, precisions=PRECISIONS,
                       scale: float = DEFAULT_SCALE) -> dict[str, dict[str, dict[str, float]]]:
    """Per precision and parameter group: the cosine of its gradient with the float32 one,
    the fraction of entries it flushes to zero (exactly 0 where the float32 gradient is not),
    the norm ratio |g| / |g_32| and the loss scale used.  ``{precision: {group: {"cosine",
    "flushed", "norm_ratio", "scale"}}}``, on the same batch ``seq`` for every precision.
    Groups whose float32 gradient is exactly zero (for example W_1 and W_2 once every ReLU is
    off) have nothing to compare and are left out."""
    _, reference, _ = gradients(model, seq, "float32")
    table = {}
    for precision in precisions:
        _, grads, used = gradients(model, seq, precision, scale=scale)
        rows = {}
        for name, ref in reference.items():
            ref_norm = float(ref.double().norm())
            if ref_norm == 0:
                continue
            g = grads[name]
            nonzero = ref != 0
            rows[name] = {"cosine": cosine(g, ref),
                          "flushed": float(((g == 0) & nonzero).sum()) / int(nonzero.sum()),
                          "norm_ratio": float(g.double().norm()) / ref_norm, "scale": used}
        table[precision] = rows
    return table


def agreement_table(agreement: dict) -> list[dict]:
    """:func:`gradient_agreement`'s nested dict as rows (precision, group, cosine, flushed,
    norm_ratio), ready for a DataFrame."""
    return [{"precision": precision, "group": group, **values}
            for precision, groups in agreement.items() for group, values in groups.items()]

