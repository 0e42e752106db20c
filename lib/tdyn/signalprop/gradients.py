"""The gradient exponent lambda_g of the transformer family of :mod:`tdyn.signalprop.architecture`.

Theory (OUR DERIVATION; the paper's own equations could not be read).  Linearize the network
around the collapsed line, where all n tokens equal one vector x with |x|^2 = q d.  Attention
is then exactly uniform and its weights do not move to first order (sum_j dA_ij = 0 and every
value is the same), so a perturbation dX = (dx_1 .. dx_n) splits into two invariant modes:

* the common mode (the same dx on every token, d directions), which the attention branch
  passes on through W_V, and
* the (n - 1) d differential modes (sum_i dx_i = 0), which the attention branch annihilates.

At infinite width every sub-block multiplies the expected squared norm of a perturbation by a
gain that depends only on the norm q of the collapsed state (fresh Gaussian weights per layer,
branch input independent of the perturbation's direction).  With c_A, c_M the skip
coefficients, chi = sigma_2^2 sigma_w^2 E[phi'(sigma_w z)^2] and K(1) = sigma_2^2 E[phi(sigma_w
z)^2] (branch variance sigma_w^2 q_b):

    pre-LN (branch sees LN(x), whose Jacobian is P_perp / sqrt(q)):
        attention   common: c_A^2 + alpha_A^2 sigma_V^2 / q      differential: c_A^2
        MLP         both:   c_M^2 + alpha_M^2 chi / q_1,         q_1 = c_A^2 q + alpha_A^2 sigma_V^2
    post-LN (x <- LN(c x + alpha f(x)), branch variance q_b = 1):
        attention   common: 1                                     differential: c_A^2 / q_z,
                    q_z = c_A^2 + alpha_A^2 sigma_V^2
        MLP         both:   (c_M^2 + alpha_M^2 chi) / (c_M^2 + alpha_M^2 K(1))

The layer gains are G_c (common) and G_d (differential), products of the sub-block gains.  For
a depth-L network started on the collapsed line the expected squared Frobenius norm of the
input-output Jacobian J = dX_L / dX_0 is

    E ||J||_F^2 / (n d) = [ prod_l G_c,l + (n - 1) prod_l G_d,l ] / n,

and we define the gradient exponent at depth L as lambda_g(L) = (1/L) log of that, and its
infinite-depth limit lambda_g = log max(G_c, G_d) = log G_c.  For ``interp`` pre-LN at the
collapsed fixed point q* and for post-LN, G_d = e^{lambda_a} exactly, so

    lambda_g - lambda_a = log(1 + alpha_A^2 sigma_V^2 / (c_A^2 q*))   (pre-LN)
                        = log(1 + alpha_A^2 sigma_V^2 / c_A^2)         (post-LN)   > 0,

the two zero lines can meet only where alpha_A = 0 (at a norm fixed point).  Off the fixed point
(``at="ln-scale"``: from the LayerNorm scale q = 1, as the re-implementations measure) the
same gains give, at input norm q with output norm q_out = c_M^2 q_1 + alpha_M^2 K(1),

    log G_d(q) - lambda_a(q) = log(q_out / q),

so the differential-mode gradient rate vanishes with lambda_a exactly where the block
preserves the norm, which a free value scale sigma_V or an untied readout sigma_2 can arrange.
Parameter gradients see only the common
mode at collapse: the gradient of a loss with respect to W_V, W_1 or W_2 of any layer depends on
the back-propagated signal g_i only through sum_i g_i (every token has the same branch input).

"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.gaussian import kernel_diagonal, kernel_slope
from tdyn.signalprop.theory import check_protocol, collapsed_fixed_point, collapsed_line


@dataclass(frozen=True)
class LayerGains:
    """Per-sub-block gains of the expected squared norm of a perturbation (module docstring).

    ``q`` is the collapsed state's norm at the layer input, ``q_next`` at its output.
    """

    q: float
    attention_common: float
    attention_differential: float
    mlp: float
    q_next: float

    @property
    def common(self) -> float:
        """G_c: the layer's gain on the common mode."""
        return self.attention_common * self.mlp

    @property
    def differential(self) -> float:
        """G_d: the layer's gain on each differential mode."""
        return self.attention_differential * self.mlp


def _kernels(arch: Architecture) -> tuple[float, float]:
    """(K(1), chi) of the MLP branch, whose input has unit norm per coordinate (q_b = 1) in
    both LN placements of the collapsed state (with the biases of ``arch``)."""
    return _kernels_cached(arch.phi, arch.sigma_w, arch.readout_scale, arch.sigma_b1,
                           arch.sigma_b2)


@lru_cache(maxsize=4096)
def _kernels_cached(phi: str, sigma_w: float, sigma_2: float, sigma_b1: float = 0.0,
                    sigma_b2: float = 0.0) -> tuple[float, float]:
    var = sigma_w**2 + sigma_b1**2
    return (sigma_2**2 * float(kernel_diagonal(phi, var)) + sigma_b2**2,
            sigma_2**2 * float(kernel_slope(phi, var)) * (sigma_w**2 / var))


def layer_gains(arch: Architecture, q: float = 1.0) -> LayerGains:
    """The gains of one layer on the collapsed line at input norm ``q`` (infinite width).

    For post-LN the state always has q = 1 and ``q`` is ignored.
    """
    if not (math.isfinite(q) and q > 0):
        raise ValueError(f"q={q!r} must be a positive finite number (range (0, inf))")
    c2a, c2m = arch.skip_A**2, arch.skip_M**2
    a2a, a2m, v2 = arch.alpha_A**2, arch.alpha_M**2, arch.sigma_V**2
    vb2 = arch.sigma_bV**2  # the value bias adds to the norm, not to a perturbation
    if arch.norm == "post":
        qz = c2a + a2a * (v2 + vb2)
        k1, chi = _kernels(arch)
        mlp = (c2m + a2m * chi) / (c2m + a2m * k1)
        common = 1.0 if not vb2 else (c2a + a2a * v2) / qz
        return LayerGains(1.0, common, c2a / qz, mlp, 1.0)
    q1 = c2a * q + a2a * (v2 + vb2)
    k1, chi = _kernels(arch)
    return LayerGains(q, c2a + a2a * v2 / q, c2a, c2m + a2m * chi / q1, c2m * q1 + a2m * k1)


def default_start(arch: Architecture, at: str = "fixed-point") -> float:
    """The norm where the theory starts by default: q* of the collapsed fixed point, or 1 where
    there is none (``plain`` pre-LN, the identity map) or with ``at="ln-scale"``."""
    check_protocol(at)
    if at == "ln-scale":
        return 1.0
    q_star = collapsed_fixed_point(arch).q
    return 1.0 if math.isnan(q_star) else q_star


def _log_gain(gain: float) -> float:
    """log of a mode's gain; -inf for a mode that one layer removes (alpha = 1 with interp)."""
    return math.log(gain) if gain > 0 else -math.inf


def mode_log_gains(arch: Architecture, depth: int, q0: float | None = None
                   ) -> tuple[float, float]:
    """(log prod_l G_c,l, log prod_l G_d,l) over ``depth`` layers on the collapsed line from norm
    ``q0`` (default :func:`default_start`), following q_l through the layers."""
    if not (isinstance(depth, int | np.integer) and depth >= 1):
        raise ValueError(f"depth={depth!r} must be an integer >= 1")
    q = default_start(arch) if q0 is None else float(q0)
    log_c = log_d = 0.0
    for done in range(depth):
        g = layer_gains(arch, q)
        if abs(g.q_next - q) <= 1e-12 * q:  # at a fixed point: the remaining layers repeat
            remaining = depth - done
            return (log_c + remaining * _log_gain(g.common),
                    log_d + remaining * _log_gain(g.differential))
        log_c += _log_gain(g.common)
        log_d += _log_gain(g.differential)
        q = g.q_next
    return log_c, log_d


def lambda_g(arch: Architecture, depth: int | None = None, q0: float | None = None,
             at: str = "fixed-point") -> float:
    """The gradient exponent lambda_g (module docstring).

    ``depth=None``: the infinite-depth rate log G_c at the start norm ``q0`` (default q*, or 1
    for ``plain`` pre-LN, where q grows and this is a one-layer rate, as for lambda_a).
    ``depth=L``: (1/L) log{[prod G_c + (n - 1) prod G_d] / n}, the per-layer growth of
    E ||dX_L/dX_0||_F^2 / (n d).  ``at="ln-scale"`` starts at q0 = 1 (the LayerNorm scale)
    and needs a finite ``depth`` (default 1: one layer, the re-implementations' protocol).
    """
    check_protocol(at)
    if at == "ln-scale":
        return lambda_g(arch, 1 if depth is None else depth, 1.0 if q0 is None else q0)
    if depth is None:
        q = default_start(arch) if q0 is None else float(q0)
        return _log_gain(layer_gains(arch, q).common)
    log_c, log_d = mode_log_gains(arch, depth, q0)
    return float(finite_depth_exponent(log_c / depth, log_d / depth, arch.n, depth))


def finite_depth_exponent(lam_c, lam_d, n, depth):
    """lambda_g(L) = (1/L) log{[e^{L lam_c} + (n - 1) e^{L lam_d}] / n} for constant per-layer
    rates (vectorized; stable for large L)."""
    if not (isinstance(depth, int | np.integer) and depth >= 1):
        raise ValueError(f"depth={depth!r} must be an integer >= 1")
    lam_c, lam_d, n = (np.asarray(v, dtype=float) for v in (lam_c, lam_d, n))
    if np.any(n < 2):
        raise ValueError(f"n={n!r} must be >= 2 (number of tokens)")
    return (np.logaddexp(depth * lam_c, np.log(n - 1) + depth * lam_d) - np.log(n)) / depth


def tokens_for_exponent_gap(delta, depth: int, eps: float) -> int:
    """The fewest tokens n for which lambda_g(L) - lambda_d < eps when log G_c - lambda_d =
    ``delta`` (:func:`finite_depth_exponent`): n > (e^{L delta} - 1) / (e^{L eps} - 1)."""
    if not eps > 0:
        raise ValueError(f"eps={eps!r} must be positive")
    if not (isinstance(depth, int | np.integer) and depth >= 1):
        raise ValueError(f"depth={depth!r} must be an integer >= 1")
    bound = np.expm1(depth * float(delta)) / np.expm1(depth * eps)
    return max(2, int(np.floor(bound)) + 1)


def normalization_floor(n, depth):
    """-log(n) / L: the floor of lambda_g(L) wherever G_c >= 1 (every odd phi at a fixed point,
    :func:`finite_depth_exponent`): [prod G_c + (n - 1) prod G_d] / n >= prod G_c / n, so
    lambda_g(L) >= log G_c - log(n) / L, reached when the differential modes die (G_d -> 0)
    and G_c -> 1 (alpha -> 1 with a nearly linear MLP)."""
    n = np.asarray(n, dtype=float)
    if np.any(n < 2):
        raise ValueError(f"n={n!r} must be >= 2 (number of tokens)")
    if not (isinstance(depth, int | np.integer) and depth >= 1):
        raise ValueError(f"depth={depth!r} must be an integer >= 1")
    return -np.log(n) / depth


def unnormalized_exponent(lam_g, n, d, depth):
    """(1/L) log E||dX_L/dX_0||_F^2 = lambda_g(L) + log(n d) / L: the re-implementations'
    estimator (1/L) log||grad_{X_0}(X_L . R)||^2 in expectation over R, which lacks the 1/(n d)
    of lambda_g.  It is >= log G_c + log(d) / L > 0 where G_c >= 1: it can never show vanishing
    gradients."""
    for name, value in (("n", n), ("d", d)):
        if np.any(np.asarray(value) < 1):
            raise ValueError(f"{name}={value!r} must be >= 1")
    return np.asarray(lam_g, dtype=float) - normalization_floor(n, depth) + np.log(d) / depth


def lambda_common(arch: Architecture, q0: float | None = None, at: str = "fixed-point") -> float:
    """log G_c: the common-mode rate (= lambda_g at infinite depth, and the rate of the
    parameter gradients), one layer from ``q0`` (default :func:`default_start` of ``at``)."""
    q = default_start(arch, at) if q0 is None else float(q0)
    return _log_gain(layer_gains(arch, q).common)


def lambda_differential(arch: Architecture, q0: float | None = None,
                        at: str = "fixed-point") -> float:
    """log G_d: the rate of each differential mode (= lambda_a for ``interp`` pre-LN at q* and
    for post-LN; = lambda_a + log(q_out / q) at any norm q, one layer from ``q0``)."""
    q = default_start(arch, at) if q0 is None else float(q0)
    return _log_gain(layer_gains(arch, q).differential)


def gradient_exponents(arch: Architecture, *, q=1.0, at: str = "fixed-point",
                       depth: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(log G_c, log G_d) at the collapsed fixed point, vectorized over the broadcast fields of
    ``arch`` (for phase diagrams).  ``q`` is the norm used for ``plain`` pre-LN (no fixed
    point).  ``at="ln-scale"``: the per-layer means (1/L) sum_l log G_{c,d}(q_l) over
    ``depth`` = L layers from norm ``q`` (1 by default), q_{l+1} = c_M^2 q_1,l + alpha_M^2
    K(1); combine them with :func:`finite_depth_exponent` for lambda_g(L)."""
    check_protocol(at, depth)
    c = collapsed_line(arch, q=q, at=at)
    if arch.norm == "post":
        mlp = np.log((c.c2m + c.a2m * c.chi) / (c.c2m + c.a2m * c.k1))
        qz = c.c2a + c.a2a * (c.v2 + c.vb2)
        return (mlp + np.log((c.c2a + c.a2a * c.v2) / qz),
                mlp + np.log(c.c2a / qz))
    layers = depth if at == "ln-scale" else 1
    log_c = log_d = 0.0
    q_l = c.q
    with np.errstate(divide="ignore"):
        for _ in range(layers):
            q1 = c.c2a * q_l + c.a2a * (c.v2 + c.vb2)
            mlp = np.log(c.c2m + c.a2m * c.chi / q1)
            log_c = log_c + np.log(c.c2a + c.a2a * c.v2 / q_l) + mlp
            log_d = log_d + np.log(c.c2a) + mlp
            q_l = c.c2m * q1 + c.a2m * c.k1
    return log_c / layers, log_d / layers


JOINT_PHASES = ("ordered-vanishing", "ordered-exploding", "chaotic-vanishing",
                "chaotic-exploding")
"""The four regions of (lambda_a, lambda_g), in the order of :func:`joint_phase_index`."""


def joint_phase_index(lam_a, lam_g) -> np.ndarray:
    """Index into :data:`JOINT_PHASES`: 2 [lambda_a >= 0] + [lambda_g >= 0] (a zero exponent
    counts as chaotic, exploding)."""
    lam_a, lam_g = np.broadcast_arrays(np.asarray(lam_a), np.asarray(lam_g))
    return 2 * (lam_a >= 0).astype(int) + (lam_g >= 0).astype(int)


def joint_phase(lam_a, lam_g) -> np.ndarray:
    """Region labels: ``ordered``/``chaotic`` (sign of lambda_a) x ``vanishing``/``exploding``
    (sign of lambda_g), e.g. ``ordered-vanishing``."""
    return np.array(JOINT_PHASES)[joint_phase_index(lam_a, lam_g)]
