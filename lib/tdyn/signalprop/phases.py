"""The four phases of (lambda_a, lambda_g) and where their zero lines cross.

OUR DERIVATION (Cowsik et al. 2024 name the four phases; their equations could not be read).
On the collapsed line at input norm q, a pre-LN block multiplies a differential perturbation's
squared norm by G_d(q) (:mod:`tdyn.signalprop.gradients`) and the gap 1 - rho by
e^{lambda_a(q)} (:mod:`tdyn.signalprop.theory`); the two differ only by the norm growth,

    log G_d(q) - lambda_a(q) = log(q_out / q),   q_out = c_M^2 (c_A^2 q + alpha_A^2 sigma_V^2)
                                                          + alpha_M^2 K(1),

because the gap is measured relative to q (1 - rho = g / q) and the perturbation is not.
At the fixed point q_out = q* = q and the common mode, which attention passes through W_V,
dominates: lambda_g = log G_c > lambda_a (no crossing).  At the LayerNorm scale q = 1, one layer
and many tokens, E||J||_F^2 / (n d) = [G_c + (n - 1) G_d] / n -> G_d, so lambda_g = lambda_a +
log q_out: both vanish where lambda_a = 0 and the block preserves the norm, q_out = 1, which a
value scale sigma_V < 1 or a readout sigma_2 > 1 untied from sigma_w can arrange.

Every function takes one :class:`tdyn.signalprop.architecture.Architecture`, as
:func:`tdyn.signalprop.theory.angle_exponent` does; :func:`crossings` and
:func:`crossing_value_scale_limit` walk the diagonal alpha_A = alpha_M = alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.gradients import finite_depth_exponent, gradient_exponents
from tdyn.signalprop.theory import angle_exponent, check_protocol


def four_phase_exponents(arch: Architecture, *, at: str = "ln-scale", depth: int = 1,
                         many_tokens: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(lambda_a, lambda_g) over the broadcast fields of ``arch`` (vectorized).

    lambda_g is the per-layer rate of E||dX_L/dX_0||_F^2 / (n d).  ``at="fixed-point"``: at q*
    over infinite depth, log G_c.  ``at="ln-scale"``: over ``depth`` = L layers from q = 1,
    (1/L) log{[prod G_c + (n - 1) prod G_d] / n} with the n of ``arch``
    (:func:`finite_depth_exponent`), or with ``many_tokens`` its many-token limit
    (1/L) sum_l log G_d(q_l).
    """
    check_protocol(at, depth)
    lam_a = angle_exponent(arch, at=at, depth=depth)
    log_c, log_d = gradient_exponents(arch, at=at, depth=depth)
    if at == "fixed-point":
        lam_g = log_c
    elif many_tokens:
        lam_g = log_d
    else:
        lam_g = finite_depth_exponent(log_c, log_d, arch.n, depth)
    return np.broadcast_arrays(lam_a, lam_g)


def _on_diagonal(arch: Architecture, alpha: float, **changes) -> Architecture:
    return arch.replace(alpha_A=alpha, alpha_M=alpha, **changes)


def _scalar_exponents(arch: Architecture, protocol: dict) -> tuple[float, float]:
    lam_a, lam_g = four_phase_exponents(arch, **protocol)
    return float(lam_a), float(lam_g)


def edge_sigma_w(arch: Architecture, lo: float = 0.3, hi: float = 200.0, **protocol) -> float:
    """sigma_w on the edge of chaos lambda_a = 0 of ``arch`` with its other hyperparameters
    fixed (Brent's root in [lo, hi]; ``protocol``: the keywords of
    :func:`four_phase_exponents`).  NaN when lambda_a keeps its sign there."""
    def rate(s: float) -> float:
        return _scalar_exponents(arch.replace(sigma_w=s), protocol)[0]

    a, b = rate(lo), rate(hi)
    if not a * b < 0:
        return float("nan")
    return float(brentq(rate, lo, hi, xtol=1e-12))


@dataclass(frozen=True)
class Crossing:
    """A point (alpha, sigma_w) where lambda_a = 0 and lambda_g = 0 together."""

    alpha: float
    sigma_w: float


def crossings(arch: Architecture, alpha_lo: float = 0.02, alpha_hi: float = 0.99,
              n_scan: int = 60, **protocol) -> list[Crossing]:
    """Every crossing of the two zero lines for alpha = alpha_A = alpha_M in [alpha_lo,
    alpha_hi], the other hyperparameters from ``arch`` (its sigma_w and alphas are not used).

    Walks the edge of chaos sigma_w = :func:`edge_sigma_w` (alpha) on ``n_scan`` points, finds
    the sign changes of lambda_g along it and refines each by Brent's method in alpha
    (``protocol``: the keywords of :func:`four_phase_exponents`).  A crossing closer than the
    scan step to another, or tangent to the edge, can be missed.
    """
    def on_edge(alpha: float) -> float:
        line = _on_diagonal(arch, alpha)
        s = edge_sigma_w(line, **protocol)
        return (float("nan") if np.isnan(s)
                else _scalar_exponents(line.replace(sigma_w=s), protocol)[1])

    grid = np.linspace(alpha_lo, alpha_hi, n_scan)
    values = [on_edge(float(a)) for a in grid]
    found = []
    for a0, a1, v0, v1 in zip(grid[:-1], grid[1:], values[:-1], values[1:], strict=True):
        if np.isfinite(v0) and np.isfinite(v1) and v0 * v1 < 0:
            alpha = float(brentq(on_edge, a0, a1, xtol=1e-12))
            found.append(Crossing(alpha, edge_sigma_w(_on_diagonal(arch, alpha), **protocol)))
    return found


def crossing_value_scale_limit(arch: Architecture, alpha: float = 0.02, lo: float = 0.3,
                               hi: float = 1.0, **protocol) -> float:
    """The value scale sigma_V at which lambda_g on the edge of chaos changes sign at small
    ``alpha`` = alpha_A = alpha_M (Brent's root in [lo, hi]; the other hyperparameters from
    ``arch``, whose sigma_V, sigma_w and alphas are not used; ``protocol``: the keywords of
    :func:`four_phase_exponents`).  Below it lambda_g < 0 on the edge at small alpha, while it
    is > 0 at alpha near 1, so the zero lines cross; above it they do not cross at small alpha.
    """
    def on_edge(sigma_V: float) -> float:
        line = _on_diagonal(arch, alpha, sigma_V=sigma_V)
        s = edge_sigma_w(line, **protocol)
        return _scalar_exponents(line.replace(sigma_w=s), protocol)[1]

    return float(brentq(on_edge, lo, hi, xtol=1e-10))
