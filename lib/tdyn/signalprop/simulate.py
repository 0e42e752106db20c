"""Finite-width simulation of random transformers of the family in
:mod:`tdyn.signalprop.architecture`.

The simulator starts n tokens from a permutation-symmetric simplex with Gram matrix
C = (q0 - p0) I + p0 11^T (p0 = rho0 q0), pushes them through ``depth`` freshly drawn random
blocks and records C = X X^T / d after every half-block (attention, then MLP).  It is batched
over hyperparameter points and seeds: one call runs P architectures x S seeds as a single
batch of P*S transformers.  Replicate k uses the same standard-normal draws for every
architecture (common random numbers), from a torch generator seeded by (seed, k), so a result
does not depend on which other points share the batch.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tdyn.devices import resolve_device, torch_threads
from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.nonlinearity import nonlinearity

INITS = ("exact", "gaussian")


def replicate_seed(seed: int, k: int) -> int:
    """The torch seed of replicate k of a run with base ``seed`` (via numpy's SeedSequence)."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1, dtype=np.uint64)[0] >> 1)


def initial_tokens(n: int, d: int, q: float, rho: float, generator: torch.Generator,
                   init: str = "exact", dtype=torch.float64, device="cpu") -> torch.Tensor:
    """n tokens in R^d forming a simplex with C_ii = q, C_ij = rho q (C = X X^T / d).

    ``exact``: x_i = sqrt(q d) (sqrt(rho) e_0 + sqrt(1 - rho) e_i) for random orthonormal
    e_0..e_n (needs d >= n + 1), so C is exactly the simplex.  ``gaussian``: x_i =
    sqrt(q) (sqrt(rho) g + sqrt(1 - rho) z_i) with g, z_i ~ N(0, I_d), so only E[C] is
    (paper digest, Appendix A [TP]).
    """
    if not q > 0:
        raise ValueError(f"q0={q!r} must be positive (range (0, inf))")
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho0={rho!r} must lie in [0, 1]")
    if init == "exact":
        if d < n + 1:
            raise ValueError(f"init='exact' needs d >= n + 1; got d={d}, n={n}")
        g = torch.randn(d, n + 1, generator=generator, dtype=dtype, device=device)
        basis = torch.linalg.qr(g).Q.T  # (n + 1, d), orthonormal rows
        x = np.sqrt(rho) * basis[:1] + np.sqrt(1.0 - rho) * basis[1:]
        return np.sqrt(q * d) * x
    if init == "gaussian":
        g = torch.randn(n + 1, d, generator=generator, dtype=dtype, device=device)
        return np.sqrt(q) * (np.sqrt(rho) * g[:1] + np.sqrt(1.0 - rho) * g[1:])
    raise ValueError(f"init={init!r} is not allowed; choose one of {INITS}")


def simplex_init(n: int, d: int) -> str:
    """The start :func:`initial_tokens` can give n tokens of width d: ``exact`` where d > n,
    else ``gaussian``."""
    return "exact" if d >= n + 1 else "gaussian"


def _untracked(*tensors) -> bool:
    """Whether autograd tracks none of ``tensors``, so that an intermediate made from them may
    be overwritten in place (the same arithmetic, without a fresh allocation, whose page faults
    cost more than the operation at the sizes of the measurements)."""
    return not any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def _times(fresh: torch.Tensor, factor) -> torch.Tensor:
    """fresh * factor, in place where autograd tracks neither (``fresh``: an intermediate no one
    else holds)."""
    return fresh.mul_(factor) if _untracked(fresh, factor) else fresh * factor


def _plus(fresh: torch.Tensor, other) -> torch.Tensor:
    """fresh + other, in place where autograd tracks neither (as :func:`_times`)."""
    return fresh.add_(other) if _untracked(fresh, other) else fresh + other


def layer_norm(x: torch.Tensor) -> torch.Tensor:
    """LN(x) = sqrt(d) x / |x| along the last axis (no gain, no bias)."""
    scaled = x * (x.shape[-1] ** 0.5)  # before the norm, as autograd orders its gradients
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return scaled.div_(norm) if _untracked(scaled, norm) else scaled / norm


@dataclass(frozen=True)
class BatchScales:
    """Per-transformer scalars of a batch, each of shape (B, 1, 1)."""

    sigma_A: torch.Tensor
    sigma_V: torch.Tensor
    sigma_w: torch.Tensor
    sigma_2: torch.Tensor
    alpha_A: torch.Tensor
    alpha_M: torch.Tensor
    skip_A: torch.Tensor
    skip_M: torch.Tensor
    sigma_bV: torch.Tensor | None = None
    sigma_b1: torch.Tensor | None = None
    sigma_b2: torch.Tensor | None = None

    @classmethod
    def of(cls, archs: Sequence[Architecture], repeat: int, dtype, device) -> BatchScales:
        def column(values):
            t = torch.tensor(values, dtype=dtype, device=device).repeat_interleave(repeat)
            return t.reshape(-1, 1, 1)

        return cls(
            sigma_A=column([a.sigma_A for a in archs]),
            sigma_V=column([a.sigma_V for a in archs]),
            sigma_w=column([a.sigma_w for a in archs]),
            sigma_2=column([a.readout_scale for a in archs]),
            alpha_A=column([a.alpha_A for a in archs]),
            alpha_M=column([a.alpha_M for a in archs]),
            skip_A=column([a.skip_A for a in archs]),
            skip_M=column([a.skip_M for a in archs]),
            **({name: column([getattr(a, name) for a in archs])
                for name in ("sigma_bV", "sigma_b1", "sigma_b2")}
               if any(a.has_biases for a in archs) else {}),
        )


SAMPLERS = ("projected", "weights")


def _draw_biases(d: int, hidden: int, generators: Sequence[torch.Generator], dtype, device,
                 repeat: int) -> dict[str, torch.Tensor]:
    """Unit-variance bias vectors ``bV`` (d), ``b1`` (hidden), ``b2`` (d) of one layer, shape
    (B, 1, size): drawn after that layer's matrices from the same generators, and only when a
    batch has biases (so a bias-free run draws exactly what it drew before biases existed)."""
    return _gaussian_matrices({"bV": (1, d), "b1": (1, hidden), "b2": (1, d)}, generators,
                              dtype, device, repeat)


def _gaussian_matrices(sizes: dict[str, tuple[int, int]], generators: Sequence[torch.Generator],
                       dtype, device, repeat: int) -> dict[str, torch.Tensor]:
    """Named i.i.d. N(0, 1) matrices of the given shapes, stacked on axis 0: one draw per
    generator (all matrices from one flat vector, in the order of ``sizes``), the whole stack
    repeated ``repeat`` times."""
    total = sum(a * b for a, b in sizes.values())
    flat = torch.stack([torch.randn(total, generator=g, dtype=dtype, device=device)
                        for g in generators]).repeat(repeat, 1)
    matrices, start = {}, 0
    for key, (a, b) in sizes.items():
        matrices[key] = flat[:, start:start + a * b].reshape(-1, a, b)
        start += a * b
    return matrices


class _LayerWeights:
    """What :class:`DenseWeights` and :class:`ProjectedWeights` share: one drawn set per
    generator (times ``repeat``), stacked on axis 0.  A batch of B transformers with S drawn
    sets is seed-major: transformer b uses set b // (B / S), so one set may serve several
    transformers (common random numbers), each set applied as one product over their tokens."""

    matrices: dict[str, torch.Tensor]
    biases: dict[str, torch.Tensor] | None

    def shared(self, per: int, dtype) -> _LayerWeights:
        """These weights in ``dtype`` for a seed-major batch in which each drawn set serves
        ``per`` consecutive transformers (the bias rows repeated to match)."""
        other = copy.copy(self)
        other.matrices = {k: v.to(dtype) for k, v in self.matrices.items()}
        if self.biases is not None:
            other.biases = {k: v.to(dtype).repeat_interleave(per, 0)
                            for k, v in self.biases.items()}
        return other


class DenseWeights(_LayerWeights):
    """One layer's weight matrices for each transformer of a batch, drawn explicitly.

    Unit-variance Gaussian matrices ``Q``, ``K``, ``V`` (d x d), ``W1`` (D x d), ``W2`` (d x D),
    stacked on axis 0, one per generator.  :meth:`apply` returns y W^T.
    """

    def __init__(self, d: int, hidden: int, generators: Sequence[torch.Generator], dtype,
                 device, repeat: int = 1, biases: bool = False):
        sizes = {"Q": (d, d), "K": (d, d), "V": (d, d), "W1": (hidden, d), "W2": (d, hidden)}
        self.matrices = _gaussian_matrices(sizes, generators, dtype, device, repeat)
        self.biases = (_draw_biases(d, hidden, generators, dtype, device, repeat) if biases
                       else None)

    def apply(self, name: str, y: torch.Tensor) -> torch.Tensor:
        """y W^T for inputs y of shape (B, n, fan_in) (seed-major, :class:`_LayerWeights`)."""
        w = self.matrices[name]
        out = y.reshape(w.shape[0], -1, y.shape[-1]) @ w.transpose(1, 2)
        return out.reshape(*y.shape[:-1], w.shape[1])

    def query_key(self, y: torch.Tensor, scale) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, k) with u k^T = scale (y W_Q^T)(y W_K^T)^T, the attention logits: u = scale y
        W_Q^T W_K and k = y, through the d x d product W_Q^T W_K where its d^3 cost is below
        that of one product with the tokens of the transformers sharing the set."""
        q, k = self.matrices["Q"], self.matrices["K"]
        rows = y.reshape(q.shape[0], -1, y.shape[-1])
        if y.shape[-1] <= rows.shape[1]:
            u = rows @ (q.transpose(1, 2) @ k)
        else:
            u = (rows @ q.transpose(1, 2)) @ k
        return _times(u.reshape(y.shape), scale), y


class ProjectedWeights(_LayerWeights):
    """One layer's weights, sampled only where the n tokens see them (exact in distribution).

    A weight matrix W with i.i.d. N(0, 1) entries is applied once, to the n x fan_in input Y.
    With the reduced QR factorization Y^T = Q R (Q orthonormal, fan_in x k, k = min(fan_in, n)),
    W Y^T = (W Q) R and W Q has i.i.d. N(0, 1) entries, so drawing Z = W Q (fan_out x k)
    directly gives the same joint law of the layer's outputs at a cost of fan_out * k normals
    instead of fan_out * fan_in.  Every layer draws fresh weights, so whole trajectories have
    the law of :class:`DenseWeights` too.
    """

    def __init__(self, d: int, hidden: int, n: int, generators: Sequence[torch.Generator],
                 dtype, device, repeat: int = 1, biases: bool = False):
        kd, kh = min(d, n), min(hidden, n)
        sizes = {"Q": (d, kd), "K": (d, kd), "V": (d, kd), "W1": (hidden, kd), "W2": (d, kh)}
        self.matrices = _gaussian_matrices(sizes, generators, dtype, device, repeat)
        self.biases = (_draw_biases(d, hidden, generators, dtype, device, repeat) if biases
                       else None)

    def apply(self, name: str, y: torch.Tensor) -> torch.Tensor:
        """A sample of y W^T for inputs y of shape (B, n, fan_in) (seed-major)."""
        r = torch.linalg.qr(y.transpose(1, 2), mode="reduced").R  # (B, k, n)
        z = self.matrices[name]  # (S, fan_out, k)
        out = z[:, None] @ r.reshape(z.shape[0], -1, *r.shape[1:])
        return out.reshape(y.shape[0], z.shape[1], -1).transpose(1, 2)

    def query_key(self, y: torch.Tensor, scale) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, k) with u k^T a sample of the attention logits scale (y W_Q^T)(y W_K^T)^T =
        scale R^T Z_Q^T Z_K R: one QR factorization of y (both projections see it)."""
        r = torch.linalg.qr(y.transpose(1, 2), mode="reduced").R  # (B, k, n)
        m = self.matrices["Q"].transpose(1, 2) @ self.matrices["K"]  # (S, k, k)
        u = (m[:, None] @ r.reshape(m.shape[0], -1, *r.shape[1:])).reshape(r.shape)
        return (u * scale).transpose(1, 2), r.transpose(1, 2)


def attention_update(x: torch.Tensor, w, s: BatchScales, norm: str) -> torch.Tensor:
    """x <- c_A x + alpha_A W_V softmax(s) y (then LN for post-LN); x has shape (B, n, d)."""
    d = x.shape[-1]
    y = layer_norm(x) if norm == "pre" else x
    queries, keys = w.query_key(y, s.sigma_A / d**1.5)
    attended = torch.nn.functional.scaled_dot_product_attention(queries, keys, y, scale=1.0)
    values = _times(w.apply("V", attended), s.sigma_V / d**0.5)
    if getattr(w, "biases", None) is not None:
        values = _plus(values, s.sigma_bV * w.biases["bV"])
    x = _plus(s.skip_A * x, _times(values, s.alpha_A))
    return layer_norm(x) if norm == "post" else x


def mlp_update(x: torch.Tensor, w, s: BatchScales, phi: str, norm: str,
               hidden: int) -> torch.Tensor:
    """x <- c_M x + alpha_M W_2 phi(W_1 y) token-wise (then LN for post-LN)."""
    d = x.shape[-1]
    y = layer_norm(x) if norm == "pre" else x
    biases = getattr(w, "biases", None)
    pre = _times(w.apply("W1", y), s.sigma_w / d**0.5)
    if biases is not None:
        pre = _plus(pre, s.sigma_b1 * biases["b1"])
    out = _times(w.apply("W2", nonlinearity(phi).torch(pre)), s.sigma_2 / hidden**0.5)
    if biases is not None:
        out = _plus(out, s.sigma_b2 * biases["b2"])
    x = _plus(s.skip_M * x, _times(out, s.alpha_M))
    return layer_norm(x) if norm == "post" else x


def forward(x: torch.Tensor, layers: Sequence, scales: BatchScales,
            arch: Architecture) -> torch.Tensor:
    """Tokens x of shape (B, n, d) through one block per entry of ``layers`` (the weights of a
    layer, :class:`DenseWeights` or :class:`ProjectedWeights`): attention, then MLP, with the
    residual form and LayerNorm placement of ``arch`` and the per-transformer ``scales``."""
    for w in layers:
        x = attention_update(x, w, scales, arch.norm)
        x = mlp_update(x, w, scales, arch.phi, arch.norm, arch.hidden)
    return x


def gram(x: torch.Tensor) -> torch.Tensor:
    """C = X X^T / d for tokens stacked as rows (batched over leading axes)."""
    return x @ x.transpose(-1, -2) / x.shape[-1]


def gram_qp(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(q, p): the mean diagonal and mean off-diagonal entries of Gram matrices (..., n, n)."""
    n = c.shape[-1]
    diag = np.diagonal(c, axis1=-2, axis2=-1).sum(-1)
    return diag / n, (c.sum((-1, -2)) - diag) / (n * (n - 1))


def simplex_plane(c: np.ndarray) -> np.ndarray:
    """Coordinates (..., n, 2) of the unit-normalized tokens in the plane spanned by
    sum_i cos(2 pi i / n) x_i and sum_i sin(2 pi i / n) x_i, from Gram matrices (..., n, n).

    The plane is orthogonal to the tokens' mean for a permutation-symmetric simplex, which it
    shows as a regular n-gon of radius sqrt(2 (1 - rho) / n); tokens collapsed onto a line
    all sit at the origin.  Only the Gram matrix is used, so the picture does not depend on
    the rotation of R^d that fresh random weights apply at every layer.
    """
    c = np.asarray(c, dtype=float)
    n = c.shape[-1]
    norms = np.sqrt(np.einsum("...ii->...i", c))
    cosines = c / norms[..., :, None] / norms[..., None, :]
    angle = 2 * np.pi * np.arange(n) / n
    modes = np.stack([np.cos(angle), np.sin(angle)], axis=-1)  # (n, 2)
    inner = cosines @ modes  # x_j . u_k
    metric = modes.T @ inner  # u_k . u_l, (..., 2, 2)
    values, vectors = np.linalg.eigh(metric)
    scale = np.where(values > 1e-14 * n, 1 / np.sqrt(np.maximum(values, 1e-300)), 0.0)
    whiten = vectors @ (scale[..., :, None] * np.swapaxes(vectors, -1, -2))
    return inner @ whiten


@dataclass(frozen=True)
class Simulation:
    """Gram matrices of a batch of simulated transformers.

    ``gram[P, S, t]`` is C for architecture P, seed S, after half-step t: t = 2l is the output
    of layer l (t = 0 the input), t = 2l + 1 the state after the attention sub-block of layer
    l + 1.  ``q`` and ``p`` are the mean diagonal and off-diagonal entries, shape (P, S, T).
    """

    archs: tuple[Architecture, ...]
    gram: np.ndarray
    q: np.ndarray
    p: np.ndarray

    @property
    def rho(self) -> np.ndarray:
        """p / q per architecture, seed and half-step."""
        return self.p / self.q

    def layers(self, values: np.ndarray) -> np.ndarray:
        """The layer outputs (even half-steps) of an array indexed like ``q``."""
        return values[..., ::2]

    @staticmethod
    def mean_sem(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean over seeds (axis 1) and its standard error (seed-to-seed spread / sqrt(S))."""
        s = values.shape[1]
        sem = values.std(axis=1, ddof=1) / np.sqrt(s) if s > 1 else np.full_like(
            values[:, 0], np.nan)
        return values.mean(axis=1), sem


def check_batch(archs, depth, n_seeds, min_depth: int) -> tuple[Architecture, ...]:
    """The architectures of one batched simulation, as a tuple, after checking that they share
    every shape-setting field and that ``depth`` >= ``min_depth`` and ``n_seeds`` >= 1."""
    if isinstance(archs, Architecture):
        archs = [archs]
    archs = tuple(archs)
    if not archs:
        raise ValueError("archs must contain at least one Architecture")
    for key in ("n", "d", "phi", "residual", "norm", "mlp_ratio"):
        values = {getattr(a, key) for a in archs}
        if len(values) > 1:
            raise ValueError(f"all architectures of a batch must share {key}; got {values}")
    if not (isinstance(depth, int) and depth >= min_depth):
        raise ValueError(f"depth={depth!r} must be an integer >= {min_depth}")
    if not (isinstance(n_seeds, int) and n_seeds >= 1):
        raise ValueError(f"n_seeds={n_seeds!r} must be an integer >= 1")
    return archs


def simulate(archs: Architecture | Sequence[Architecture], depth: int,
             q0: float | Sequence[float] = 1.0, rho0: float = 0.5, n_seeds: int = 4,
             seed: int = 0, init: str = "exact",
             sampler: str = "projected", device: str = "cpu", dtype=torch.float64,
             cpu_threads: int | None = 1) -> Simulation:
    """Simulate ``n_seeds`` random transformers of ``depth`` blocks for each architecture.

    All architectures must share n, d, phi, residual, norm and mlp_ratio (they are batched
    together); the scalar hyperparameters may differ.  ``q0`` is one initial norm for all, or
    one per architecture (the simplex is then rescaled per architecture).  ``sampler``:
    ``projected`` draws each weight matrix only on the span of its n inputs
    (:class:`ProjectedWeights`, exact in distribution and far cheaper when n << d);
    ``weights`` draws the full matrices
    (:class:`DenseWeights`).  ``cpu_threads``: torch's intra-op threads while simulating on
    the CPU (restored afterwards; None keeps the current setting).  One thread is the default
    because torch's batched QR of many small matrices runs tens of times slower when its
    threads contend.  Returns a :class:`Simulation`.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not allowed; choose one of {SAMPLERS}")
    archs = check_batch(archs, depth, n_seeds, min_depth=0)
    q0 = np.broadcast_to(np.asarray(q0, dtype=float), (len(archs),))
    if not np.all(q0 > 0):
        raise ValueError(f"q0={q0!r} must be positive (range (0, inf))")
    dev = resolve_device(device)
    gens = []
    for k in range(n_seeds):
        g = torch.Generator(device=dev)
        g.manual_seed(replicate_seed(seed, k))
        gens.append(g)
    with torch_threads(dev, cpu_threads):
        c = _run(archs, depth, q0, rho0, gens, init, sampler, dev, dtype)
    q, p = gram_qp(c)
    return Simulation(archs=archs, gram=c, q=q, p=p)


def _run(archs, depth, q0, rho0, gens, init, sampler, dev, dtype) -> np.ndarray:
    """The simulation loop of :func:`simulate`; returns the Gram matrices (P, S, T, n, n)."""
    a0 = archs[0]
    n, d, hidden, n_seeds = a0.n, a0.d, a0.hidden, len(gens)
    x0 = torch.stack([initial_tokens(n, d, 1.0, rho0, g, init, dtype, dev) for g in gens])
    scale = torch.tensor(np.sqrt(q0), dtype=dtype, device=dev).repeat_interleave(n_seeds)
    x = x0.repeat(len(archs), 1, 1) * scale[:, None, None]  # (P*S, n, d), architecture-major
    scales = BatchScales.of(archs, n_seeds, dtype, dev)
    biases = any(a.has_biases for a in archs)
    grams = [gram(x)]
    with torch.no_grad():
        for _ in range(depth):
            if sampler == "projected":
                w = ProjectedWeights(d, hidden, n, gens, dtype, dev, repeat=len(archs),
                                     biases=biases)
            else:
                w = DenseWeights(d, hidden, gens, dtype, dev, repeat=len(archs), biases=biases)
            x = attention_update(x, w, scales, a0.norm)
            grams.append(gram(x))
            x = mlp_update(x, w, scales, a0.phi, a0.norm, hidden)
            grams.append(gram(x))
    c = torch.stack(grams, dim=1).reshape(len(archs), n_seeds, 2 * depth + 1, n, n)
    return c.cpu().numpy()
