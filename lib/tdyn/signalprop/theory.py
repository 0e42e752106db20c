"""Mean-field signal propagation through the transformer family of
:mod:`tdyn.signalprop.architecture`.

State: the permutation-symmetric Gram matrix C = (q - p) I + p 11^T of n tokens (C = X X^T / d),
rho = p / q.  At infinite width each half-block maps (q, p) to new values; together they give
the two-dimensional layer map of Cowsik et al. (2024).  The equations below are OUR
RECONSTRUCTION (paper digest, sections 2-3, tag [R]); the paper's own equations could not be
read.  They are checked against finite-width simulation (:mod:`tdyn.signalprop.simulate`) in
the tests.

Branch input.  A branch sees y = LN(x) (pre-LN: Gram (1, rho)) or y = x (post-LN: Gram (q, p)).
Write (q_b, p_b) for its Gram entries and rho_b = p_b / q_b.

Attention.  The logits s_ij have variance (sigma_A q_b)^2 and covariance
(sigma_A q_b)^2 rho_ik rho_jl.  With the softmax overlaps S2 = E sum_j A_ij^2 and
S11 = E sum_j A_ij A_kj (i != k), the branch output has Gram entries
    q_A = sigma_V^2 [p_b + (q_b - p_b) S2],    p_A = sigma_V^2 [p_b + (q_b - p_b) S11],
and the residual sum gives q' = c_A^2 q + alpha_A^2 q_A, p' = c_A^2 p + alpha_A^2 p_A (the cross
terms vanish in expectation over W_V); post-LN then rescales to (1, p'/q').

MLP.  With K_b(rho) = sigma_2^2 E[phi(u) phi(v)], Var u = Var v = sigma_w^2 q_b,
Corr(u, v) = rho:  q'' = c_M^2 q' + alpha_M^2 K_b(1),  p'' = c_M^2 p' + alpha_M^2 K_b(rho_b).

Angle exponent.  lambda_a is the growth rate per layer of 1 - rho near the collapsed line
p = q, where attention is exactly uniform and changes token differences only at second order:
    pre-LN:  e^lambda_a = c_A^2 q (c_M^2 q_1 + alpha_M^2 chi) / (q_1 q_2),
             q_1 = c_A^2 q + alpha_A^2 sigma_V^2,  q_2 = c_M^2 q_1 + alpha_M^2 K(1),
             evaluated at the collapsed fixed point q = q* (q_2 = q*) for ``interp``, at a given
             q for ``plain`` (q grows linearly there and has no fixed point);
    post-LN: e^lambda_a = [c_A^2 / (c_A^2 + alpha_A^2 sigma_V^2)] [(c_M^2 + alpha_M^2 chi)
             / (c_M^2 + alpha_M^2 K(1))],
with chi = dK/drho at rho = 1 (sigma_A and n drop out).  lambda_a < 0: ordered (tokens
collapse to a line); lambda_a > 0: chaotic (tokens repel towards a regular simplex).

Where the exponents are evaluated (``at``, one of :data:`EVALUATION_PROTOCOLS`).
``fixed-point`` (the default everywhere): at the collapsed fixed point q = q* (at norm ``q`` for
``plain`` pre-LN, which has none).  ``ln-scale``: the protocol of the re-implementations, from
tokens at the LayerNorm scale q0 = 1 with cosine rho0 over ``depth`` = L layers, following the
norm q_l of the collapsed line; for ``interp`` pre-LN this differs from the fixed point because
q* != 1 (at (alpha_A, alpha_M, sigma_w, sigma_2) = (0.9, 0.9, 4, 4), q* = 11.0 and lambda_a =
+0.60 at q* but -0.71 one layer from q = 1).  Post-LN has q = 1 always: both protocols agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tdyn.signalprop.architecture import Architecture, skip_coefficient
from tdyn.signalprop.gaussian import (
    kernel,
    kernel_diagonal,
    kernel_slope,
)

EVALUATION_PROTOCOLS = ("fixed-point", "ln-scale")
"""Where an exponent is evaluated: at the collapsed fixed point q* or at the LayerNorm scale
q0 = 1 over a stated depth (module docstring)."""


def check_protocol(at: str, depth=1) -> None:
    """Raise ValueError unless ``at`` is an evaluation protocol and ``depth`` an integer >= 1."""
    if at not in EVALUATION_PROTOCOLS:
        raise ValueError(f"at={at!r} is not an evaluation protocol; choose one of "
                         f"{EVALUATION_PROTOCOLS}")
    if not (isinstance(depth, int | np.integer) and depth >= 1):
        raise ValueError(f"depth={depth!r} must be an integer >= 1")


SOFTMAX_MODES = ("annealed", "large_n", "sampled", "entropy_collapse")
"""How S2, S11 are computed: see :func:`softmax_overlaps`."""

def softmax_overlaps(n: int, rho, sigma, mode: str = "annealed", n_samples: int = 20000,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(S2, S11): E sum_j A_ij^2 and E sum_j A_ij A_kj for n tokens with logit cosine rho.

    The logits of query i are s_ij = sigma (a_j + b_ij) up to a j-independent shift, with
    independent a_j ~ N(0, rho(1 - rho)) (shared by all queries) and b_ij ~ N(0, (1 - rho)^2);
    write v = 1 - rho.

    ``annealed``: average numerator and denominator of the softmax separately,
        S2 = e^{sigma^2 v} / (e^{sigma^2 v} + n - 1),  S11 = e^{sigma^2 rho v} / (e^{sigma^2 rho v}
        + n - 1),
    which keeps the j = k terms of the denominator, so S2 <= 1.  ``large_n``: their n >> 1 form
    e^{sigma^2 v} / n, e^{sigma^2 rho v} / n (the digest's formula; can exceed 1).
    ``sampled``: the exact Gaussian average of the softmax, by seeded Monte Carlo over
    ``n_samples`` draws of (a, b) (the same draws for every rho); needs rho in [0, 1].
    ``entropy_collapse``: the n -> infinity limit of Giorlandino & Goldt (2025, their code's
    ``get_attention_update``) with inverse temperature beta = sigma / sqrt(log n) (their query
    and key scale, so that the logit variance is beta^2 log n) and threshold
    beta_c = sqrt(2 / (1 - rho)): S2 = max(0, 1 - beta_c / beta) (the participation ratio of
    the frozen random-energy model), S11 = 0.
    """
    if not (isinstance(n, int | np.integer) and n >= 2):
        raise ValueError(f"n={n!r} must be an integer >= 2")
    rho = np.asarray(rho, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    v = 1.0 - rho
    if mode == "annealed":
        e2, e11 = np.exp(sigma**2 * v), np.exp(sigma**2 * rho * v)
        return e2 / (e2 + n - 1), e11 / (e11 + n - 1)
    if mode == "large_n":
        return np.exp(sigma**2 * v) / n, np.exp(sigma**2 * rho * v) / n
    if mode == "entropy_collapse":
        beta = sigma / np.sqrt(np.log(n))
        with np.errstate(divide="ignore"):
            beta_c = np.sqrt(2.0 / v)  # infinite on the collapsed line
        s2 = np.where(beta > beta_c, 1.0 - beta_c / beta, 0.0)
        return s2, np.zeros_like(s2)
    if mode == "sampled":
        if np.any((rho < 0) | (rho > 1)):
            raise ValueError(f"rho={rho!r} must lie in [0, 1] for mode='sampled'")
        a, b = _logit_draws(n, n_samples, seed)
        rho_b, sigma_b = np.broadcast_arrays(rho, sigma)
        s2, s11 = np.empty(rho_b.shape), np.empty(rho_b.shape)
        for idx in np.ndindex(rho_b.shape):
            attn = _sampled_attention(a, b, rho_b[idx], sigma_b[idx])
            s2[idx] = _sampled_s2(attn)
            s11[idx] = np.mean(np.sum(attn[:, 0] * attn[:, 1], axis=-1))
        return s2, s11
    raise ValueError(f"mode={mode!r} is not a softmax mode; allowed: {SOFTMAX_MODES}")


def _logit_draws(n: int, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The seeded draws of :func:`softmax_overlaps` (``sampled``): a (n_samples, 1, n), shared
    by the queries, and b (n_samples, 2, n), one row per query i, k."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_samples, 1, n)), rng.standard_normal((n_samples, 2, n))


def _sampled_attention(a: np.ndarray, b: np.ndarray, rho: float, sigma: float) -> np.ndarray:
    """Softmax over j of the logits sigma (sqrt(rho (1 - rho)) a_j + (1 - rho) b_ij), for each
    draw and each query row of ``b``."""
    logits = sigma * (np.sqrt(rho * (1 - rho)) * a + (1 - rho) * b)
    logits -= logits.max(axis=-1, keepdims=True)
    attn = np.exp(logits)
    attn /= attn.sum(axis=-1, keepdims=True)
    return attn


def _sampled_s2(attn: np.ndarray) -> float:
    """S2 = E sum_j A_ij^2 over the draws, from the first query row of
    :func:`_sampled_attention`."""
    return float(np.mean(np.sum(attn[:, 0] ** 2, axis=-1)))


def giorlandino_goldt_architecture(beta: float, var_w: float, var_v: float, var_b: float,
                                   alpha_A: float = 1.0, alpha_MLP: float = 1.0,
                                   phi: str = "tanh", n: int = 256) -> Architecture:
    """Giorlandino & Goldt's (2025) block as a member of our family (our mapping of their
    theory code, ``get_block_update_wres``): post-LN, x <- LN(alpha x + f(x)), which is our
    ``plain`` post-LN x <- LN(x + f(x) / alpha), so our alpha is 1 / theirs; weight variances
    var_v (values), var_w (both MLP matrices: sigma_w^2 = sigma_2^2 = var_w) and one bias
    variance var_b for the value, hidden and output biases; their attention inverse
    temperature beta scales the logits to variance beta^2 log n, so sigma_A = beta sqrt(log n)
    (``n`` only matters outside their large-n softmax, :func:`softmax_overlaps` with
    ``entropy_collapse``).  Needs alpha_A, alpha_MLP > 0.
    """
    if not (alpha_A > 0 and alpha_MLP > 0):
        raise ValueError(f"alpha_A={alpha_A!r} and alpha_MLP={alpha_MLP!r} must be > 0 "
                         "(their skip weights; ours are the inverses)")
    sb = math.sqrt(var_b)
    return Architecture(n=n, sigma_A=beta * math.sqrt(math.log(n)), sigma_w=math.sqrt(var_w),
                        sigma_2=math.sqrt(var_w), sigma_V=math.sqrt(var_v), sigma_bV=sb,
                        sigma_b1=sb, sigma_b2=sb, alpha_A=1.0 / alpha_A,
                        alpha_M=1.0 / alpha_MLP, phi=phi, residual="plain", norm="post")


def annealed_excess_threshold(n: int, rho: float = 0.0, excess: float = 0.5, lo: float = 0.1,
                              hi: float = 6.0, n_samples: int = 20000, seed: int = 0) -> float:
    """The smallest logit scale sigma at which the annealed S2 exceeds the exact (sampled) one
    by the fraction ``excess``: the first sign change of S2_annealed / S2_exact - 1 - excess on
    a grid of step 0.1 in [lo, hi], refined by Brent's method (:func:`softmax_overlaps`; the
    same seeded draws at every sigma, so the function is smooth).  The ratio rises and then
    falls back to 1 (both S2 -> 1 as sigma grows), hence the scan.  NaN if never exceeded."""
    from scipy.optimize import brentq

    if not 0 <= rho <= 1:
        raise ValueError(f"rho={rho!r} must lie in [0, 1]")
    # the draws of softmax_overlaps(..., "sampled", n_samples, seed), made once, and only the
    # first query's row, which is all S2 reads
    shared, per_query = _logit_draws(n, n_samples, seed)
    first_query = per_query[:, :1]

    def gap(sigma: float) -> float:
        annealed = float(softmax_overlaps(n, rho, sigma)[0])
        exact = _sampled_s2(_sampled_attention(shared, first_query, float(rho), sigma))
        return annealed / exact - 1.0 - excess

    grid = np.arange(lo, hi + 1e-9, 0.1)
    previous = gap(float(grid[0]))
    for a, b in zip(grid[:-1], grid[1:], strict=True):
        current = gap(float(b))
        if previous < 0 <= current:
            return float(brentq(gap, float(a), float(b), xtol=1e-6))
        previous = current
    return float("nan")


MAP_FIELDS = ("sigma_A", "sigma_V", "sigma_w", "sigma_2", "alpha_A", "alpha_M", "sigma_bV",
              "sigma_b1", "sigma_b2")
"""The hyperparameters the (q, p) map reads (``sigma_2`` the readout scale); the map takes
each as a scalar or as an array broadcast with q and p (one architecture per entry)."""


def map_fields(arch: Architecture) -> dict:
    """The :data:`MAP_FIELDS` of an architecture (scalars or arrays)."""
    return {name: arch.readout_scale if name == "sigma_2" else getattr(arch, name)
            for name in MAP_FIELDS}


def _mlp_diagonal(h: dict, phi: str, q_b) -> np.ndarray:
    """K_b(1) = sigma_2^2 E[phi(u)^2] + sigma_b2^2, Var u = sigma_w^2 q_b + sigma_b1^2."""
    var = h["sigma_w"] ** 2 * q_b + h["sigma_b1"] ** 2
    return h["sigma_2"] ** 2 * kernel_diagonal(phi, var) + h["sigma_b2"] ** 2


def _mlp_kernel(h: dict, phi: str, q_b, rho) -> np.ndarray:
    """K_b(rho) = sigma_2^2 E[phi(u) phi(v)] + sigma_b2^2, Var u = Var v = sigma_w^2 q_b +
    sigma_b1^2, Cov(u, v) = sigma_w^2 q_b rho + sigma_b1^2, elementwise over broadcast arrays
    (:func:`tdyn.signalprop.gaussian.kernel`)."""
    var = h["sigma_w"] ** 2 * q_b + h["sigma_b1"] ** 2
    corr = np.clip(rho, -1.0, 1.0)
    corr = np.where(h["sigma_b1"] != 0, (h["sigma_w"] ** 2 * q_b * corr + h["sigma_b1"] ** 2)
                    / var, corr)
    return h["sigma_2"] ** 2 * kernel(phi, var, corr) + h["sigma_b2"] ** 2


def _branch_input(q, p, norm: str):
    return (np.ones_like(q), p / q) if norm == "pre" else (q, p)


def attention_map(q, p, arch: Architecture, softmax: str = "annealed", n_samples: int = 20000,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(q, p) after the attention sub-block (module docstring); q, p and the fields of
    ``arch`` broadcast."""
    h = map_fields(arch)
    q, p = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(p, dtype=float))
    q_b, p_b = _branch_input(q, p, arch.norm)
    s2, s11 = softmax_overlaps(arch.n, p_b / q_b, h["sigma_A"] * q_b, softmax, n_samples, seed)
    q_attn = h["sigma_V"] ** 2 * (p_b + (q_b - p_b) * s2) + h["sigma_bV"] ** 2
    p_attn = h["sigma_V"] ** 2 * (p_b + (q_b - p_b) * s11) + h["sigma_bV"] ** 2
    c2, a2 = skip_coefficient(h["alpha_A"], arch.residual) ** 2, h["alpha_A"] ** 2
    q_new, p_new = c2 * q + a2 * q_attn, c2 * p + a2 * p_attn
    if arch.norm == "post":
        return np.ones_like(q_new), p_new / q_new
    return q_new, p_new


def mlp_map(q, p, arch: Architecture) -> tuple[np.ndarray, np.ndarray]:
    """(q, p) after the MLP sub-block (module docstring); q, p and the fields of ``arch``
    broadcast."""
    h = map_fields(arch)
    q, p = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(p, dtype=float))
    q_b, p_b = _branch_input(q, p, arch.norm)
    k1, kp = _mlp_diagonal(h, arch.phi, q_b), _mlp_kernel(h, arch.phi, q_b, p_b / q_b)
    c2, a2 = skip_coefficient(h["alpha_M"], arch.residual) ** 2, h["alpha_M"] ** 2
    q_new, p_new = c2 * q + a2 * k1, c2 * p + a2 * kp
    if arch.norm == "post":
        return np.ones_like(q_new), p_new / q_new
    return q_new, p_new


def layer_map(q, p, arch: Architecture, softmax: str = "annealed", n_samples: int = 20000,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One full block: the MLP sub-map after the attention sub-map."""
    return mlp_map(*attention_map(q, p, arch, softmax, n_samples, seed), arch)


def layer_map_grid(arch: Architecture, x: tuple[str, np.ndarray], y: tuple[str, np.ndarray],
                   q=1.0, p=0.5, softmax: str = "annealed", n_samples: int = 20000,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`layer_map` of (q, p) for every architecture of the grid y x x, vectorized:
    (q', p'), each of shape (len(y values), len(x values)).  ``x``, ``y`` as in
    :func:`phase_diagram` (any of :data:`GRID_PARAMETERS` but ``n``); ``q``, ``p`` broadcast
    with the grid."""
    if "n" in (x[0], y[0]):
        raise ValueError("layer_map_grid cannot sweep n (the softmax takes one n); loop over n")
    grid, shape = grid_architecture(arch, x, y)
    q, p = (np.broadcast_to(np.asarray(v, dtype=float), shape) for v in (q, p))
    return layer_map(q, p, grid, softmax, n_samples, seed)


def trajectory(arch: Architecture, depth: int, q0: float = 1.0, rho0: float = 0.5,
               softmax: str = "annealed", n_samples: int = 20000,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(q, p) at every half-step t = 0..2 depth, indexed like
    :class:`tdyn.signalprop.simulate.Simulation`.

    t = 2l is the output of layer l (t = 0 the input simplex, p0 = rho0 q0), t = 2l + 1 the state
    after the attention sub-block of layer l + 1.
    """
    if not (isinstance(depth, int | np.integer) and depth >= 0):
        raise ValueError(f"depth={depth!r} must be an integer >= 0")
    if not q0 > 0:
        raise ValueError(f"q0={q0!r} must be positive (range (0, inf))")
    if not -1.0 / (arch.n - 1) <= rho0 <= 1.0:
        raise ValueError(f"rho0={rho0!r} must lie in [-1/(n-1), 1] = [{-1 / (arch.n - 1)}, 1]")
    qs, ps = [q0], [rho0 * q0]
    q, p = q0, rho0 * q0
    for _ in range(depth):
        q, p = attention_map(q, p, arch, softmax, n_samples, seed)
        qs.append(float(q))
        ps.append(float(p))
        q, p = mlp_map(q, p, arch)
        qs.append(float(q))
        ps.append(float(p))
    return np.array(qs), np.array(ps)


@dataclass(frozen=True)
class CollapsedFixedPoint:
    """The collapsed line p = q: its norm q* and the norm q_1* after the attention sub-block.

    NaN where the map has no (unique) fixed point in q: ``plain`` pre-LN (q grows by
    alpha_A^2 sigma_V^2 + alpha_M^2 K(1) per layer) and the identity map alpha_A = alpha_M = 0.
    """

    q: float
    q_attn: float


def collapsed_fixed_point(arch: Architecture) -> CollapsedFixedPoint:
    """q* of the collapsed line (exact at any n: identical tokens attend uniformly).

    pre-LN ``interp``: q* = [c_M^2 alpha_A^2 sigma_V^2 + alpha_M^2 K(1)] / (1 - c_A^2 c_M^2),
    q_1* = c_A^2 q* + alpha_A^2 sigma_V^2.  post-LN: q* = q_1* = 1.
    """
    if arch.norm == "post":
        return CollapsedFixedPoint(1.0, 1.0)
    c2a, c2m = arch.skip_A**2, arch.skip_M**2
    denom = 1.0 - c2a * c2m
    if arch.residual == "plain" or denom <= 0:
        return CollapsedFixedPoint(math.nan, math.nan)
    k1 = float(_mlp_diagonal(map_fields(arch), arch.phi, 1.0))
    v2 = arch.sigma_V**2 + arch.sigma_bV**2
    q_star = (c2m * arch.alpha_A**2 * v2 + arch.alpha_M**2 * k1) / denom
    return CollapsedFixedPoint(q_star, c2a * q_star + arch.alpha_A**2 * v2)


@dataclass(frozen=True)
class CollapsedLine:
    """Per-layer constants of the (q, p) map on the collapsed line, as broadcast arrays.

    ``k1`` = K(1) and ``chi`` = K'(1) (with the readout variance), ``c2a``, ``c2m`` the squared
    skip coefficients, ``a2a``, ``a2m`` the squared branch strengths, ``v2`` = sigma_V^2, ``q``
    the norm entering a layer (q* for ``interp`` pre-LN when it exists), ``q1`` the norm
    after the attention sub-block, q1 = c_A^2 q + alpha_A^2 (sigma_V^2 + sigma_bV^2), and
    ``vb2`` = sigma_bV^2 (the value bias adds to the norm but carries no perturbation).
    """

    k1: np.ndarray
    chi: np.ndarray
    c2a: np.ndarray
    c2m: np.ndarray
    a2a: np.ndarray
    a2m: np.ndarray
    v2: np.ndarray
    q: np.ndarray
    q1: np.ndarray
    vb2: np.ndarray = 0.0


def collapsed_line(arch: Architecture, *, q=1.0, at: str = "fixed-point") -> CollapsedLine:
    """The constants shared by lambda_a and the gradient gains, vectorized over the broadcast
    fields of ``arch`` (and ``q``).  ``at="fixed-point"``: the layer enters at q* where it
    exists (``q`` where it does not); ``at="ln-scale"``: at the given norm ``q``."""
    check_protocol(at)
    alpha_A, alpha_M, sigma_w, sigma_V, q = np.broadcast_arrays(
        *(np.asarray(v, dtype=float)
          for v in (arch.alpha_A, arch.alpha_M, arch.sigma_w, arch.sigma_V, q)))
    s2 = sigma_w if arch.sigma_2 is None else np.asarray(arch.sigma_2, dtype=float)
    var = sigma_w**2 + np.asarray(arch.sigma_b1, dtype=float) ** 2  # preactivation variance
    k1 = s2**2 * kernel_diagonal(arch.phi, var) + np.asarray(arch.sigma_b2, dtype=float) ** 2
    # chi = sigma_2^2 sigma_w^2 E[phi'(u)^2]; kernel_slope returns var E[phi'(u)^2]
    chi = s2**2 * kernel_slope(arch.phi, var) * (sigma_w**2 / var)
    c2a = skip_coefficient(alpha_A, arch.residual) ** 2
    c2m = skip_coefficient(alpha_M, arch.residual) ** 2
    a2a, a2m, v2 = alpha_A**2, alpha_M**2, sigma_V**2
    vb2 = np.asarray(arch.sigma_bV, dtype=float) ** 2
    if arch.norm == "pre" and arch.residual == "interp" and at == "fixed-point":
        denom = 1.0 - c2a * c2m
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(denom > 0, (c2m * a2a * (v2 + vb2) + a2m * k1) / denom, 1.0)
    return CollapsedLine(k1, chi, c2a, c2m, a2a, a2m, v2, q, c2a * q + a2a * (v2 + vb2), vb2)


def angle_exponent(arch: Architecture, *, q=1.0, at: str = "fixed-point",
                   depth: int = 1) -> np.ndarray:
    """lambda_a in closed form (module docstring), vectorized over the broadcast fields of
    ``arch`` (a tied readout follows sigma_w; biases enter through q, K(1) and chi).

    ``at="fixed-point"``: at q* (for ``plain`` pre-LN, which has no collapsed fixed point, the
    one-layer rate at norm ``q``).  ``at="ln-scale"``: the mean rate (1/L) sum_l log[(1 -
    rho_{l+1}) / (1 - rho_l)] over ``depth`` = L layers of the linearized map (rho0 -> 1) from
    norm ``q`` (the LayerNorm scale 1 by default), with q_{l+1} = c_M^2 (c_A^2 q_l + alpha_A^2
    sigma_V^2) + alpha_M^2 K(1) for pre-LN.  For ``interp`` pre-LN with alpha_A = alpha_M = 0
    (the identity map) lambda_a = 0.
    """
    check_protocol(at, depth)
    c = collapsed_line(arch, q=q, at=at)
    with np.errstate(divide="ignore"):  # alpha_A = 1 (interp): lambda_a = -inf
        if arch.norm == "post":
            return (np.log(c.c2a / (c.c2a + c.a2a * (c.v2 + c.vb2)))
                    + np.log((c.c2m + c.a2m * c.chi) / (c.c2m + c.a2m * c.k1)))
        total, q_l = 0.0, c.q
        for _ in range(depth if at == "ln-scale" else 1):
            q1 = c.c2a * q_l + c.a2a * (c.v2 + c.vb2)
            q2 = c.c2m * q1 + c.a2m * c.k1
            total = total + np.log(c.c2a * q_l * (c.c2m * q1 + c.a2m * c.chi) / (q1 * q2))
            q_l = q2
        return total / (depth if at == "ln-scale" else 1)


def lambda_a(arch: Architecture, q: float = 1.0, at: str = "fixed-point", depth: int = 1,
             rho0: float | None = None, softmax: str = "annealed") -> float:
    """lambda_a of an architecture.

    ``at="fixed-point"`` (default): the closed form at q* (``q`` only matters for ``plain``
    pre-LN).  ``at="ln-scale"``: from tokens at norm ``q`` (1, the LayerNorm scale) over
    ``depth`` = L layers; with ``rho0=None`` the linearized closed form (rho0 -> 1,
    :func:`angle_exponent`), with ``rho0`` < 1 the mean-field map itself,
    (1/L) log[(1 - rho_L) / (1 - rho0)] along :func:`trajectory` from (q, rho0 q) (the
    re-implementations' estimator with rho0 = 0.99, L = 1; it includes the finite-gap
    attention terms, so it depends weakly on n and sigma_A).
    """
    check_protocol(at, depth)
    if at == "ln-scale" and rho0 is not None:
        if not -1.0 / (arch.n - 1) <= rho0 < 1.0:
            raise ValueError(f"rho0={rho0!r} must lie in [-1/(n-1), 1)")
        qs, ps = trajectory(arch, depth, q0=q, rho0=rho0, softmax=softmax)
        with np.errstate(divide="ignore"):
            return float(np.log((1.0 - ps[-1] / qs[-1]) / (1.0 - rho0)) / depth)
    return float(angle_exponent(arch, q=q, at=at, depth=depth))


def edge_of_chaos(arch: Architecture, lo: float = 0.3, hi: float = 30.0, q: float = 1.0,
                  at: str = "fixed-point", depth: int = 1, rho0: float | None = None) -> float:
    """The MLP weight scale sigma_w on the edge of chaos, lambda_a = 0, of ``arch`` with its
    other hyperparameters fixed: Brent's root of sigma_w -> :func:`lambda_a` in [lo, hi]
    (``at``, ``depth``, ``rho0`` as there: sigma_w = 2.74 at q* but 9.07 one layer from q = 1
    for alpha = 0.9 with a tied readout).

    Raises ValueError when lambda_a has the same sign at both ends (no edge in the bracket).
    """
    from scipy.optimize import brentq

    if not 0 < lo < hi:
        raise ValueError(f"need 0 < lo < hi, got lo={lo!r}, hi={hi!r}")

    def rate(sigma_w: float) -> float:
        return lambda_a(arch.replace(sigma_w=sigma_w), q=q, at=at, depth=depth, rho0=rho0)

    at_lo, at_hi = rate(lo), rate(hi)
    if not (at_lo < 0 < at_hi or at_hi < 0 < at_lo):
        raise ValueError(f"lambda_a does not change sign for sigma_w in [{lo}, {hi}] "
                         f"({at_lo:+.3g} and {at_hi:+.3g}): no edge of chaos in that bracket")
    return float(brentq(rate, lo, hi))


def lambda_a_from_map(arch: Architecture, q: float = 1.0, eps: float = 1e-5,
                      softmax: str = "annealed", at: str = "fixed-point") -> float:
    """lambda_a measured on the map: log[(1 - rho') / (1 - rho)] for one layer from
    rho = 1 - eps at the collapsed fixed point (at norm ``q`` for ``plain`` pre-LN, or with
    ``at="ln-scale"``).

    Needs no closed form (it includes the finite-n attention terms, which vanish as eps -> 0).
    """
    check_protocol(at)
    if not 0 < eps < 0.5:
        raise ValueError(f"eps={eps!r} must lie in (0, 0.5)")
    fixed = collapsed_fixed_point(arch)
    q0 = q if (math.isnan(fixed.q) or at == "ln-scale") else fixed.q
    q1, p1 = layer_map(q0, (1.0 - eps) * q0, arch, softmax)
    return float(np.log((1.0 - p1 / q1) / eps))


def phase(lam) -> str | np.ndarray:
    """``ordered`` (lambda_a < 0), ``chaotic`` (> 0) or ``critical`` (= 0)."""
    labels = np.where(lam < 0, "ordered", np.where(lam > 0, "chaotic", "critical"))
    return str(labels) if labels.ndim == 0 else labels


GRID_PARAMETERS = ("alpha", "alpha_A", "alpha_M", "sigma_w", "sigma_V", "sigma_2", "sigma_A",
                   "n")
"""Hyperparameters a phase diagram can sweep; ``alpha`` sets alpha_A = alpha_M together.
lambda_a does not depend on ``sigma_A`` or ``n`` (it is constant along such an axis)."""


def phase_diagram(arch: Architecture, x: tuple[str, np.ndarray], y: tuple[str, np.ndarray],
                  q: float = 1.0, at: str = "fixed-point", depth: int = 1) -> np.ndarray:
    """lambda_a on the grid y x x (shape (len(y values), len(x values))), vectorized.

    ``x`` and ``y`` are (name, values) with names from :data:`GRID_PARAMETERS`; the other
    hyperparameters come from ``arch``.  Values are validated like :class:`Architecture`.
    ``at``, ``depth``: the evaluation protocol of :func:`angle_exponent`.
    """
    check_protocol(at, depth)
    grid, shape = grid_architecture(arch, x, y)
    return np.broadcast_to(angle_exponent(grid, q=q, at=at, depth=depth), shape).copy()


def grid_architecture(arch: Architecture, x: tuple[str, np.ndarray],
                      y: tuple[str, np.ndarray]) -> tuple[Architecture, tuple[int, int]]:
    """``arch`` on the grid y x x (the y values down axis 0, the x values along axis 1, its
    other float fields as 0-d arrays) and the grid's shape; a tied readout
    (``sigma_2=None``) follows sigma_w."""
    (xn, xv), (yn, yv) = x, y
    for name in (xn, yn):
        if name not in GRID_PARAMETERS:
            raise ValueError(f"grid parameter {name!r} is not allowed; choose from "
                             f"{GRID_PARAMETERS}")
    xv, yv = np.asarray(xv, dtype=float), np.asarray(yv, dtype=float)
    h = {name: np.asarray(value, dtype=float) for name, value in map_fields(arch).items()}
    if arch.sigma_2 is None:
        h["sigma_2"] = None
    for name, grid in ((xn, xv[None, :]), (yn, yv[:, None])):
        _check_grid(name, grid, arch.residual)
        if name == "alpha":
            h["alpha_A"] = h["alpha_M"] = grid
        elif name != "n":
            h[name] = grid
    return arch.replace(**h), (yv.size, xv.size)


def _check_grid(name: str, grid: np.ndarray, residual: str) -> None:
    if name.startswith("alpha"):
        bad = (grid < 0) | (grid > 1) if residual == "interp" else grid < 0
        if np.any(bad):
            allowed = "[0, 1]" if residual == "interp" else "[0, inf)"
            raise ValueError(f"{name} values must lie in {allowed} for residual={residual!r}")
    elif name == "n":
        if np.any((grid < 2) | (grid != np.round(grid))):
            raise ValueError("n values must be integers >= 2")
    elif np.any(grid <= 0):
        raise ValueError(f"{name} values must be positive (range (0, inf))")


def simplex_fixed_point(arch: Architecture, q0: float = 1.0, rho0: float = 0.0,
                        softmax: str = "annealed", max_layers: int = 5000,
                        tol: float = 1e-10) -> tuple[float, float, bool]:
    """Iterate the layer map from (q0, rho0 q0) to a fixed point; returns (q, p, converged).

    From rho0 = 0 in the chaotic phase this finds the regular-simplex fixed point (p* = O(1/n)
    for odd phi: mutually almost orthogonal tokens of equal norm); in the ordered phase the
    iteration flows to the collapsed line p = q.  Not for ``plain`` pre-LN (q grows).
    """
    if arch.residual == "plain" and arch.norm == "pre":
        raise ValueError("residual='plain' with norm='pre' has no fixed point (q grows "
                         "linearly); use norm='post' or residual='interp'")
    q, p = q0, rho0 * q0
    for _ in range(max_layers):
        q_new, p_new = (float(v) for v in layer_map(q, p, arch, softmax))
        if abs(q_new - q) < tol * q and abs(p_new - p) < tol * q:
            return q_new, p_new, True
        q, p = q_new, p_new
    return q, p, False


def scaled_simplex_overlap(arch: Architecture, ns) -> list[float]:
    """n rho* of the regular-simplex fixed point (:func:`simplex_fixed_point` from rho0 = 0)
    of ``arch`` with n tokens, for each n of ``ns``."""
    scaled = []
    for n in ns:
        q, p, _ = simplex_fixed_point(arch.replace(n=int(n)))
        scaled.append(n * p / q)
    return scaled
