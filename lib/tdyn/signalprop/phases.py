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

Here alpha_A = alpha_M = alpha; the other hyperparameters are keywords as in
:func:`tdyn.signalprop.theory.angle_exponent`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from tdyn.signalprop.gradients import finite_depth_exponent, gradient_exponents
from tdyn.signalprop.theory import angle_exponent, check_protocol


def four_phase_exponents(alpha, sigma_w, *, sigma_V=1.0, sigma_2=None, phi: str = "tanh",
                         residual: str = "interp", norm: str = "pre", at: str = "ln-scale",
                         depth: int = 1, n: int | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(lambda_a, lambda_g) on broadcast grids of alpha and sigma_w (vectorized).

    lambda_g is the per-layer rate of E||dX_L/dX_0||_F^2 / (n d).  ``at="fixed-point"``: at q*
    over infinite depth, log G_c.  ``at="ln-scale"``: over ``depth`` = L layers from q = 1,
    (1/L) log{[prod G_c + (n - 1) prod G_d] / n} (:func:`finite_depth_exponent`), or with
    ``n=None`` its many-token limit (1/L) sum_l log G_d(q_l).
    """
    check_protocol(at, depth)
    kw = {"sigma_V": sigma_V, "sigma_2": sigma_2, "phi": phi, "residual": residual,
          "norm": norm, "at": at, "depth": depth}
    lam_a = angle_exponent(alpha, alpha, sigma_w, **kw)
    log_c, log_d = gradient_exponents(alpha, alpha, sigma_w, **kw)
    if at == "fixed-point":
        lam_g = log_c
    elif n is None:
        lam_g = log_d
    else:
        lam_g = finite_depth_exponent(log_c, log_d, n, depth)
    return np.broadcast_arrays(lam_a, lam_g)


def _scalar_exponents(alpha: float, sigma_w: float, kw: dict) -> tuple[float, float]:
    lam_a, lam_g = four_phase_exponents(alpha, sigma_w, **kw)
    return float(lam_a), float(lam_g)


def edge_sigma_w(alpha: float, lo: float = 0.3, hi: float = 200.0, **kw) -> float:
    """sigma_w on the edge of chaos lambda_a(alpha, sigma_w) = 0 (Brent's root in [lo, hi];
    keywords as :func:`four_phase_exponents`).  NaN when lambda_a keeps its sign there."""
    def rate(s: float) -> float:
        return _scalar_exponents(alpha, s, kw)[0]

    a, b = rate(lo), rate(hi)
    if not a * b < 0:
        return float("nan")
    return float(brentq(rate, lo, hi, xtol=1e-12))


@dataclass(frozen=True)
class Crossing:
    """A point (alpha, sigma_w) where lambda_a = 0 and lambda_g = 0 together."""

    alpha: float
    sigma_w: float


def crossings(alpha_lo: float = 0.02, alpha_hi: float = 0.99, n_scan: int = 60,
              **kw) -> list[Crossing]:
    """Every crossing of the two zero lines for alpha in [alpha_lo, alpha_hi].

    Walks the edge of chaos sigma_w = :func:`edge_sigma_w` (alpha) on ``n_scan`` points, finds
    the sign changes of lambda_g along it and refines each by Brent's method in alpha
    (keywords as :func:`four_phase_exponents`).  A crossing closer than the scan step to
    another, or tangent to the edge, can be missed.
    """
    def on_edge(alpha: float) -> float:
        s = edge_sigma_w(alpha, **kw)
        return float("nan") if np.isnan(s) else _scalar_exponents(alpha, s, kw)[1]

    grid = np.linspace(alpha_lo, alpha_hi, n_scan)
    values = [on_edge(float(a)) for a in grid]
    found = []
    for a0, a1, v0, v1 in zip(grid[:-1], grid[1:], values[:-1], values[1:], strict=True):
        if np.isfinite(v0) and np.isfinite(v1) and v0 * v1 < 0:
            alpha = float(brentq(on_edge, a0, a1, xtol=1e-12))
            found.append(Crossing(alpha, edge_sigma_w(alpha, **kw)))
    return found


def crossing_value_scale_limit(alpha: float = 0.02, lo: float = 0.3, hi: float = 1.0,
                               **kw) -> float:
    """The value scale sigma_V at which lambda_g on the edge of chaos changes sign at small
    ``alpha`` (Brent's root in [lo, hi]; keywords as :func:`four_phase_exponents`, without
    sigma_V).  Below it lambda_g < 0 on the edge at small alpha, while it is > 0 at alpha near
    1, so the zero lines cross; above it they do not cross at small alpha.
    """
    def on_edge(sigma_V: float) -> float:
        args = {**kw, "sigma_V": sigma_V}
        s = edge_sigma_w(alpha, **args)
        return _scalar_exponents(alpha, s, args)[1]

    return float(brentq(on_edge, lo, hi, xtol=1e-10))
