"""Measurements at initialization on finite-width random transformers of the family in
:mod:`tdyn.signalprop.architecture`: the angle exponent lambda_a from the simulator of
:mod:`tdyn.signalprop.simulate`, and the input-output Jacobian by autograd.

:func:`measured_angle_exponent`: per seed, log[(1 - rho_L) / (1 - rho_0)] / L over L layers
from rho_0 close to 1.

:func:`measure_jacobian`: autograd through the same random blocks, either the exact Frobenius
norms (all n d vector-Jacobian products) or unbiased random-probe estimates
E_r |P J^T r|^2 = ||J P||_F^2 with r ~ N(0, I) and error bars, split into the common and the
differential modes of :mod:`tdyn.signalprop.gradients`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tdyn.devices import resolve_device, torch_threads
from tdyn.signalprop.architecture import Architecture, stack
from tdyn.signalprop.gradients import default_start
from tdyn.signalprop.simulate import (
    SAMPLERS,
    BatchScales,
    DenseWeights,
    ProjectedWeights,
    Simulation,
    check_batch,
    forward,
    initial_tokens,
    replicate_seed,
    simplex_init,
)
from tdyn.signalprop.theory import check_protocol, collapsed_line


def measured_angle_exponent(archs: Architecture | Sequence[Architecture], layers: int = 1,
                            gap: float = 1e-3, n_seeds: int = 8, seed: int = 0,
                            device: str = "cpu", at: str = "fixed-point",
                            dtype=torch.float32, sampler: str = "auto", chunk: int | None = None,
                            cpu_threads: int | None = 1) -> tuple[np.ndarray, np.ndarray]:
    """lambda_a measured in simulation: per seed, log[(1 - rho_L) / (1 - rho_0)] / L over
    ``layers`` layers from rho_0 = 1 - ``gap`` at the collapsed fixed point q* of each
    architecture (at q = 1 where there is none: ``plain`` pre-LN); ``at="ln-scale"``: from
    q = 1, the LayerNorm scale (the re-implementations use gap = 0.01, one layer).

    Any (n, d): the tokens start on the exact simplex where d > n, else from the Gaussian one
    (:func:`tdyn.signalprop.simulate.initial_tokens`; rho_0 is then the measured start).
    ``sampler``: ``projected``, ``weights`` or ``auto`` (:func:`choose_sampler`).  Random draws
    are float64 whatever ``dtype`` (the networks of float32 and float64 runs are the same);
    the blocks run in ``dtype``, ``chunk`` architectures at a time (None: :func:`choose_chunk`),
    every chunk with the same weights of each seed (common random numbers).

    Returns the seed mean and its standard error, one per architecture.
    """
    archs = check_batch(archs, layers, n_seeds, min_depth=1)
    check_protocol(at)
    if not 0 < gap < 1:
        raise ValueError(f"gap={gap!r} must lie in (0, 1)")
    a0 = archs[0]
    sampler = choose_sampler(a0.n, a0.d) if sampler == "auto" else sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not allowed; choose one of "
                         f"{('auto', *SAMPLERS)}")
    chunk = choose_chunk(a0.n, a0.d, a0.hidden, n_seeds) if chunk is None else chunk
    if not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk={chunk!r} must be an integer >= 1")
    q0 = np.ones(len(archs)) if at == "ln-scale" else collapsed_line_norms(archs)
    dev = resolve_device(device)
    with torch_threads(dev, cpu_threads):
        rates = _angle_rates(archs, layers, q0, gap, n_seeds, seed, sampler, chunk, dtype, dev)
    return Simulation.mean_sem(rates)


def choose_sampler(n: int, d: int) -> str:
    """``projected`` where its QR factorizations are cheaper than dense products (d >= 4 n),
    else ``weights`` (dense Gaussian matrices, shared by the architectures of a batch)."""
    return "projected" if d >= 4 * n else "weights"


def choose_chunk(n: int, d: int, hidden: int, n_seeds: int) -> int:
    """Architectures per block evaluation: the largest count whose token arrays (S chunk n
    max(d, D) entries; attention never forms the n x n logits) stay within about 2^19 entries
    (2 MiB of float32, a core's L2 cache)."""
    return max(1, 2**19 // (n_seeds * n * max(d, hidden)))


def collapsed_line_norms(archs: Sequence[Architecture]) -> np.ndarray:
    """q* of every architecture (1 where there is none), vectorized: the norm of
    :func:`tdyn.signalprop.theory.collapsed_line`."""
    return np.broadcast_to(collapsed_line(stack(archs)).q, (len(archs),)).astype(float)


def _one_minus_rho(x: torch.Tensor) -> torch.Tensor:
    """1 - p/q of tokens x (..., n, d) from the centred tokens (no cancellation near rho = 1):
    q - p = sum_i |x_i - mean|^2 / ((n - 1) d), q = sum_i |x_i|^2 / (n d); float64 result."""
    n = x.shape[-2]
    spread = torch.linalg.vector_norm(x - x.mean(-2, keepdim=True), dim=(-2, -1)).double()
    return spread**2 * n / ((n - 1) * torch.linalg.vector_norm(x, dim=(-2, -1)).double() ** 2)


def _angle_rates(archs, layers, q0, gap, n_seeds, seed, sampler, chunk, dtype,
                 dev) -> np.ndarray:
    """Per architecture and seed (P, S), log[(1 - rho_L) / (1 - rho_0)] / L: seed-major
    batches of ``chunk`` architectures through the blocks of :func:`forward`."""
    a0 = archs[0]
    n, d, hidden = a0.n, a0.d, a0.hidden
    gens = [torch.Generator(device=dev).manual_seed(replicate_seed(seed, k))
            for k in range(n_seeds)]
    init = simplex_init(n, d)
    x0 = torch.stack([initial_tokens(n, d, 1.0, 1.0 - gap, g, init, torch.float64, dev)
                      for g in gens]).to(dtype)[:, None]  # (S, 1, n, d)
    start = _one_minus_rho(x0)  # (S, 1)
    biases = any(a.has_biases for a in archs)
    drawn = [ProjectedWeights(d, hidden, n, gens, torch.float64, dev, biases=biases)
             if sampler == "projected" else
             DenseWeights(d, hidden, gens, torch.float64, dev, biases=biases)
             for _ in range(layers)]
    rates = []
    with torch.no_grad():
        for lo in range(0, len(archs), chunk):
            part = archs[lo:lo + chunk]
            scale = torch.tensor(np.sqrt(q0[lo:lo + chunk]), dtype=dtype, device=dev)
            x = (x0 * scale[:, None, None]).reshape(-1, n, d)  # (S P, n, d), seed-major
            weights = [w.shared(len(part), dtype) for w in drawn]
            x = forward(x, weights, BatchScales.of(part * n_seeds, 1, dtype, dev), a0)
            end = _one_minus_rho(x.reshape(n_seeds, len(part), n, d))
            rates.append((torch.log(end / start) / layers).T)
    return torch.cat(rates).cpu().numpy()


# --------------------------------------------------------------------------------------------
# Measurement by autograd on finite-width random transformers


@dataclass(frozen=True)
class JacobianMeasurement:
    """Squared Frobenius norms of dX_L/dX_0 split into modes, one value per architecture and
    seed (shape (P, S)): ``common`` = ||J P_c||_F^2 / d and ``differential`` = ||J P_d||_F^2 /
    ((n - 1) d), each an estimate of prod G; ``total`` = ||J||_F^2 / (n d).  For the probe
    method ``*_sem`` holds the standard error of each value over the probes (zero when exact).
    ``param_grads[P, S, l]``: ||d(r . X_L) / dW_2^(l)||_F^2 of layer l = 1..L for one probe r,
    whose ratio across layers follows the common mode (module docstring)."""

    archs: tuple[Architecture, ...]
    depth: int
    common: np.ndarray
    differential: np.ndarray
    common_sem: np.ndarray
    differential_sem: np.ndarray
    param_grads: np.ndarray

    @property
    def total(self) -> np.ndarray:
        """||J||_F^2 / (n d)."""
        n = self.archs[0].n
        return (self.common + (n - 1) * self.differential) / n

    def exponents(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per-layer rates (1/L) log of the seed means of common, differential and total, each
        with a delta-method standard error over seeds: {name: (mean, sem)} per architecture."""
        out = {}
        for name in ("common", "differential", "total"):
            values = getattr(self, name)
            mean = values.mean(axis=1)
            s = values.shape[1]
            sem = values.std(axis=1, ddof=1) / np.sqrt(s) if s > 1 else np.full_like(mean,
                                                                                     np.nan)
            out[name] = (np.log(mean) / self.depth, sem / mean / self.depth)
        return out


METHODS = ("exact", "probe")


def _start_norms(archs, q0, at: str) -> np.ndarray:
    """One positive start norm per architecture: ``q0`` broadcast, or :func:`default_start`."""
    if q0 is None:
        q0 = [default_start(a, at) for a in archs]
    q0 = np.broadcast_to(np.asarray(q0, dtype=float), (len(archs),))
    if not np.all(q0 > 0):
        raise ValueError(f"q0={q0!r} must be positive (range (0, inf))")
    return q0


def _collapsed_tokens(n: int, d: int, q: float, generator: torch.Generator, dtype,
                      device) -> torch.Tensor:
    """n identical tokens x with |x|^2 = q d (a random direction)."""
    x = torch.randn(d, generator=generator, dtype=dtype, device=device)
    x = x * math.sqrt(q * d) / torch.linalg.vector_norm(x)
    return x.expand(n, d).clone()


def measure_jacobian(archs: Architecture | Sequence[Architecture], depth: int,
                     q0: float | Sequence[float] | None = None, n_seeds: int = 8,
                     seed: int = 0, method: str = "exact", n_probes: int = 16,
                     device: str = "cpu", dtype=torch.float64,
                     cpu_threads: int | None = 1, at: str = "fixed-point",
                     rho0: float | None = None) -> JacobianMeasurement:
    """Measure the mode-resolved Jacobian norms of ``depth`` random blocks by autograd.

    Tokens start on the collapsed line at norm ``q0`` (default :func:`default_start` per
    architecture and protocol ``at``: q* or, for ``ln-scale``, 1); with ``rho0`` < 1 they start
    instead from the simplex of cosine ``rho0`` at that norm (exact where d > n, else
    Gaussian: :func:`tdyn.signalprop.simulate.simplex_init`; the re-implementations use 0.99).
    Weights are dense Gaussian draws (:class:`tdyn.signalprop.simulate.DenseWeights`),
    seeded per replicate like :func:`tdyn.signalprop.simulate.simulate`.  ``exact``: all n d
    vector-Jacobian products (use for n d up to a few hundred); ``probe``: ``n_probes``
    Gaussian probes r, each giving the unbiased estimates |P_c J^T r|^2 and |P_d J^T r|^2.
    ``cpu_threads``: torch's intra-op threads on the CPU, as in
    :func:`tdyn.signalprop.simulate.simulate`.
    """
    archs = check_batch(archs, depth, n_seeds, min_depth=1)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not allowed; choose one of {METHODS}")
    if not (isinstance(n_probes, int) and n_probes >= 2):
        raise ValueError(f"n_probes={n_probes!r} must be an integer >= 2")
    check_protocol(at)
    if rho0 is not None and not 0.0 <= rho0 < 1.0:
        raise ValueError(f"rho0={rho0!r} must lie in [0, 1) (None: exactly collapsed)")
    q0 = _start_norms(archs, q0, at)
    dev = resolve_device(device)
    with torch_threads(dev, cpu_threads):
        return _measure(archs, depth, q0, n_seeds, seed, method, n_probes, dev, dtype, rho0)


def _measure(archs, depth, q0, n_seeds, seed, method, n_probes, dev,
             dtype, rho0=None) -> JacobianMeasurement:
    """The autograd measurement of :func:`measure_jacobian`."""
    a0 = archs[0]
    n, d, hidden, n_arch = a0.n, a0.d, a0.hidden, len(archs)
    gens = [torch.Generator(device=dev).manual_seed(replicate_seed(seed, k))
            for k in range(n_seeds)]
    if rho0 is None:
        x0 = torch.stack([_collapsed_tokens(n, d, 1.0, g, dtype, dev) for g in gens])
    else:
        x0 = torch.stack([initial_tokens(n, d, 1.0, rho0, g, simplex_init(n, d), dtype, dev)
                          for g in gens])
    scale = torch.tensor(np.sqrt(q0), dtype=dtype, device=dev).repeat_interleave(n_seeds)
    x0 = (x0.repeat(n_arch, 1, 1) * scale[:, None, None]).requires_grad_(True)
    scales = BatchScales.of(archs, n_seeds, dtype, dev)
    biases = any(a.has_biases for a in archs)
    layers = [DenseWeights(d, hidden, gens, dtype, dev, repeat=n_arch, biases=biases)
              for _ in range(depth)]
    w2 = [w.matrices["W2"].requires_grad_(True) for w in layers]
    x = forward(x0, layers, scales, a0)
    batch = x.shape[0]
    if method == "exact":
        eye = torch.eye(n * d, dtype=dtype, device=dev).reshape(n * d, 1, n, d)
        cotangents = eye.expand(n * d, batch, n, d)
    else:
        # Probes of replicate k come from (seed, k) alone and are shared by every architecture
        # (like the weights): a grid point's result never depends on the rest of the batch.
        cotangents = torch.stack([
            torch.randn(n_probes, n, d, dtype=dtype, device=dev, generator=torch.Generator(
                device=dev).manual_seed(replicate_seed(replicate_seed(seed, k), -1 % 2**31)))
            for k in range(n_seeds)], dim=1).repeat(1, n_arch, 1, 1)
    (rows,) = torch.autograd.grad(x, x0, cotangents, is_grads_batched=True, retain_graph=True)
    mean = rows.mean(dim=2, keepdim=True)  # P_c J^T r: the token average, repeated
    common = (mean**2).sum(dim=(2, 3)) * n  # |P_c v|^2 = n |mean|^2, shape (K, batch)
    differential = ((rows - mean) ** 2).sum(dim=(2, 3))
    if method == "exact":
        c_val, d_val = common.sum(0), differential.sum(0)
        c_sem = d_sem = torch.zeros_like(c_val)
    else:
        k = cotangents.shape[0]
        c_val, d_val = common.mean(0), differential.mean(0)
        c_sem, d_sem = common.std(0) / math.sqrt(k), differential.std(0) / math.sqrt(k)
    grads = torch.autograd.grad(x, w2, cotangents[0])
    param = torch.stack([(g**2).sum(dim=(1, 2)) for g in grads], dim=-1)

    def shaped(t, norm):
        return (t.detach().cpu().numpy() / norm).reshape(n_arch, n_seeds, *t.shape[1:])

    return JacobianMeasurement(
        archs=archs, depth=depth,
        common=shaped(c_val, d), differential=shaped(d_val, (n - 1) * d),
        common_sem=shaped(c_sem, d), differential_sem=shaped(d_sem, (n - 1) * d),
        param_grads=shaped(param, 1.0))


PROBES = ("gaussian", "common")

PARAMETER_NAMES = ("Q", "K", "V", "W1", "W2")
"""The weight matrices of a block, as named by :class:`tdyn.signalprop.simulate.DenseWeights`."""


def measure_parameter_gradients(archs: Architecture | Sequence[Architecture], depth: int,
                                gap: float = 1e-3, q0: float | Sequence[float] | None = None,
                                n_seeds: int = 16, seed: int = 0, at: str = "fixed-point",
                                probe: str = "gaussian", device: str = "cpu",
                                dtype=torch.float64,
                                cpu_threads: int | None = 1) -> dict[str, np.ndarray]:
    """Squared gradient norms ||d(r . X_L) / dW^(l)||_F^2 of every weight matrix of every layer
    l = 1..L, for one Gaussian probe r per network: {name: array (P, S, L)}, names
    :data:`PARAMETER_NAMES` (unit-variance matrices; the scale of each is a constant factor).

    Tokens start from the simplex of cosine 1 - ``gap`` (exact where d > n, else Gaussian) at
    norm ``q0`` (default :func:`default_start` of ``at``), so that W_Q and W_K, whose
    gradients vanish on the collapsed line, get gradients of order ``gap``.  Weights are dense
    Gaussian draws seeded per replicate like :func:`measure_jacobian`.  ``probe``:
    ``gaussian`` (r ~ N(0, I) on every token) or ``common`` (one Gaussian vector repeated on
    every token: only the common mode is back-propagated from the output).
    """
    archs = check_batch(archs, depth, n_seeds, min_depth=1)
    check_protocol(at)
    if probe not in PROBES:
        raise ValueError(f"probe={probe!r} is not allowed; choose one of {PROBES}")
    if not 0 < gap < 1:
        raise ValueError(f"gap={gap!r} must lie in (0, 1)")
    q0 = _start_norms(archs, q0, at)
    dev = resolve_device(device)
    with torch_threads(dev, cpu_threads):
        a0 = archs[0]
        n, d, n_arch = a0.n, a0.d, len(archs)
        gens = [torch.Generator(device=dev).manual_seed(replicate_seed(seed, k))
                for k in range(n_seeds)]
        x0 = torch.stack([initial_tokens(n, d, 1.0, 1.0 - gap, g, simplex_init(n, d), dtype,
                                         dev) for g in gens])
        scale = torch.tensor(np.sqrt(q0), dtype=dtype, device=dev).repeat_interleave(n_seeds)
        x0 = x0.repeat(n_arch, 1, 1) * scale[:, None, None]
        scales = BatchScales.of(archs, n_seeds, dtype, dev)
        layers = [DenseWeights(d, a0.hidden, gens, dtype, dev, repeat=n_arch,
                               biases=any(a.has_biases for a in archs)) for _ in range(depth)]
        leaves = [[w.matrices[name].requires_grad_(True) for name in PARAMETER_NAMES]
                  for w in layers]
        x = forward(x0, layers, scales, a0)
        rows = 1 if probe == "common" else n
        probes = torch.stack([
            torch.randn(rows, d, dtype=dtype, device=dev, generator=torch.Generator(
                device=dev).manual_seed(replicate_seed(replicate_seed(seed, k), -2 % 2**31)))
            for k in range(n_seeds)]).expand(n_seeds, n, d).repeat(n_arch, 1, 1)
        flat = [m for layer in leaves for m in layer]
        grads = torch.autograd.grad((x * probes).sum(), flat)
    k = len(PARAMETER_NAMES)
    out = {}
    for j, name in enumerate(PARAMETER_NAMES):
        norms = torch.stack([(grads[i * k + j] ** 2).sum(dim=(1, 2)) for i in range(depth)],
                            dim=-1)
        out[name] = norms.detach().cpu().numpy().reshape(n_arch, n_seeds, depth)
    return out
