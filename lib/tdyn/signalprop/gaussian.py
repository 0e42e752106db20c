"""Gaussian expectations, computed three independent ways.

Everything in the mean-field theory of Part I reduces to expectations of the form

    K(q1, q2, c) = E[f(u) g(v)],   (u, v) ~ N(0, [[q1, c], [c, q2]]),

and their one-dimensional special case E[f(sqrt(q) z)], z ~ N(0, 1).  This module evaluates
them by quadrature (deterministic, exponentially accurate for smooth f), by
seeded Monte Carlo (with a standard error, for tests), and in closed form for the
nonlinearities that have one (erf: Williams 1997; ReLU: Cho & Saul 2009), which
:mod:`tdyn.signalprop.nonlinearity` holds with phi and phi'.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from tdyn.signalprop.nonlinearity import ArrayFunction, nonlinearity


def _check_variance(name: str, value: float) -> None:
    if not np.all(np.asarray(value) > 0):
        raise ValueError(f"{name}={value!r} must be a positive variance")


def _check_correlation(rho: np.ndarray) -> None:
    if np.any(np.abs(rho) > 1 + 1e-12):
        raise ValueError(f"rho={rho!r} must lie in [-1, 1]")


QUADRATURE_RULES = ("trapezoid", "hermite")


def quadrature_nodes(order: int = 401, rule: str = "trapezoid") -> tuple[np.ndarray, np.ndarray]:
    """Nodes z_k and weights w_k with sum_k w_k f(z_k) ~= E[f(z)], z ~ N(0, 1).

    ``"trapezoid"``: the trapezoidal rule for f(z) exp(-z^2/2)/sqrt(2 pi) on the uniform grid
    of ``order`` points in [-10, 10].  For analytic f it converges exponentially in ``order``
    (Trefethen & Weideman 2014) and, unlike Gauss-Hermite, keeps that accuracy when f(sqrt(q) z)
    varies on the short scale 1/sqrt(q) of a large variance q; the tail beyond |z| = 10 weighs
    below 1e-22.  ``"hermite"``: Gauss-Hermite (probabilists') nodes and weights, exact for
    polynomials of degree < 2 order, accurate for smooth f and moderate q (order <= 250).
    """
    if order < 2:
        raise ValueError(f"order={order!r} must be an integer >= 2")
    if rule == "trapezoid":
        nodes = np.linspace(-10.0, 10.0, order)
        weights = np.exp(-(nodes**2) / 2.0) * (nodes[1] - nodes[0]) / np.sqrt(2.0 * np.pi)
        return nodes, weights
    if rule == "hermite":
        if order > 250:
            raise ValueError(f"order={order!r}: Gauss-Hermite weights underflow above 250")
        nodes, weights = hermegauss(order)
        return nodes, weights / np.sqrt(2.0 * np.pi)
    raise ValueError(f"rule={rule!r} is not a quadrature rule; allowed: {QUADRATURE_RULES}")


def expect_1d(f: ArrayFunction, q: float, order: int = 401, rule: str = "trapezoid") -> float:
    """E[f(u)] for u ~ N(0, q), by quadrature (see :func:`quadrature_nodes`)."""
    _check_variance("q", q)
    z, w = quadrature_nodes(order, rule)
    return float(np.sum(w * f(np.sqrt(q) * z)))


def expect_2d(
    f: ArrayFunction,
    g: ArrayFunction,
    q1: float,
    q2: float,
    c: np.ndarray | float,
    order: int = 401,
    rule: str = "trapezoid",
) -> np.ndarray:
    """E[f(u) g(v)] for (u, v) ~ N(0, [[q1, c], [c, q2]]), by tensor-product quadrature.

    Uses the Cholesky factorization u = sqrt(q1) z1, v = (c / sqrt(q1)) z1 + s z2 with
    s = sqrt(q2 - c^2 / q1).  ``c`` may be an array; the result has its shape.
    """
    _check_variance("q1", q1)
    _check_variance("q2", q2)
    c = np.asarray(c, dtype=float)
    _check_correlation(c / np.sqrt(q1 * q2))
    z, w = quadrature_nodes(order, rule)
    u = np.sqrt(q1) * z  # (k,)
    fu = f(u)
    slope = (c / np.sqrt(q1))[..., None, None]  # (..., 1, 1)
    spread = np.sqrt(np.clip(q2 - c**2 / q1, 0.0, None))[..., None, None]
    v = slope * z[:, None] + spread * z[None, :]  # (..., k, k): rows z1, columns z2
    inner = g(v) @ w  # E over z2, shape (..., k)
    return np.asarray(inner @ (w * fu))


def monte_carlo_2d(
    f: ArrayFunction,
    g: ArrayFunction,
    q1: float,
    q2: float,
    c: float,
    n_samples: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Seeded Monte Carlo estimate of E[f(u) g(v)]; returns (mean, standard error)."""
    _check_variance("q1", q1)
    _check_variance("q2", q2)
    _check_correlation(np.asarray(c) / np.sqrt(q1 * q2))
    if n_samples < 2:
        raise ValueError(f"n_samples={n_samples!r} must be at least 2")
    cov = np.array([[q1, c], [c, q2]], dtype=float)
    uv = rng.multivariate_normal(np.zeros(2), cov, size=n_samples, method="eigh")
    values = f(uv[:, 0]) * g(uv[:, 1])
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(n_samples))


def kernel_closed_form(phi: str, q: float, rho: np.ndarray | float) -> np.ndarray:
    """K(rho) = E[phi(u) phi(v)], Var u = Var v = q, Corr(u, v) = rho, where a closed form exists
    (erf: Williams 1997; relu: Cho & Saul 2009; :mod:`tdyn.signalprop.nonlinearity`)."""
    record = nonlinearity(phi)
    _check_variance("q", q)
    rho = np.asarray(rho, dtype=float)
    _check_correlation(rho)
    if record.kernel is None:
        raise ValueError(f"phi={phi!r} has no closed-form kernel; use kernel_quadrature")
    return record.kernel(q, np.clip(rho, -1.0, 1.0))


def kernel_quadrature(
    phi: str, q: float, rho: np.ndarray | float, order: int = 401, rule: str = "trapezoid"
) -> np.ndarray:
    """K(rho) = E[phi(u) phi(v)] with Var u = Var v = q, Corr(u, v) = rho, by quadrature."""
    f = nonlinearity(phi).numpy
    return expect_2d(f, f, q, q, q * np.asarray(rho, dtype=float), order=order, rule=rule)


PRODUCT_FORM_VARIANCES = (1e-4, 1000.0)
"""The q for which :func:`kernel` uses :func:`kernel_product_form`; outside, it falls back to
:func:`kernel_quadrature`.  Above, g could underflow on the nodes (a 0/0 ratio); below, the
rule's error, absolute and about 1e-16 (K = W_s W_d - 2 w^T R w cancels), exceeds 1e-12 of K
~ q."""


def _half_line_rules(sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shared nodes x_k = k h >= 0 and, per row, trapezoid weights for E[f(x)], x ~ N(0,
    sigma^2), f even: h = 0.5 min(1, smallest sigma > 0), nodes to 8 (largest sigma) (tail below
    2e-15); sigma = 0 puts all weight on x = 0."""
    positive = sigma[sigma > 0]
    step = 0.5 * min(1.0, positive.min()) if positive.size else 1.0
    x = np.arange(0.0, 8.0 * sigma.max() + step / 2, step)
    scale = np.where(sigma > 0, sigma, 1.0)[:, None]
    w = np.exp(-((x / scale) ** 2) / 2.0) * step / (scale * np.sqrt(2.0 * np.pi))
    w[:, 1:] *= 2.0
    return x, np.where(sigma[:, None] > 0, w, x == 0.0)


def _octave_blocks(sigma_s: np.ndarray, sigma_d: np.ndarray, largest: int = 256) -> list:
    """Index blocks of the (sorted, so monotone) widths in which each width varies by less than
    a factor sqrt(2), so the shared rule of :func:`_half_line_rules` costs at most twice a
    member's own per axis; at most ``largest`` members each."""
    widths = np.stack([sigma_s, sigma_d])
    with np.errstate(divide="ignore"):
        key = np.where(widths > 0, np.floor(2.0 * np.log2(widths)), -1e9)  # 0: a block of its own
    cuts = np.flatnonzero(np.any(np.diff(key, axis=1) != 0, axis=0)) + 1
    return [piece for run in np.split(np.arange(sigma_s.size), cuts)
            for piece in np.array_split(run, -(-run.size // largest))]


def kernel_product_form(g: ArrayFunction, q: float, rho: np.ndarray | float) -> np.ndarray:
    """K(rho) = E[phi(u) phi(v)], Var u = Var v = q, Corr(u, v) = rho, for a phi whose product
    has the sum-difference form phi(u) phi(v) = 1 - 2 g(s) / (g(s) + g(d)), s = u + v, d = u - v
    (tanh: g = sech; :mod:`tdyn.signalprop.nonlinearity`).

    s and d are independent, N(0, 2q(1 + rho)) and N(0, 2q(1 - rho)), so a tensor-product
    trapezoid rule needs g on one set of nodes per axis and one division per node pair; g even
    halves each axis to x >= 0.  Step min(0.5, 0.5 sigma) per axis in x (sech has its poles at
    |Im x| = pi/2), nodes to 8 sigma.  Correlations whose widths are within a factor sqrt(2)
    share the nodes (:func:`_octave_blocks`), so the ratio matrix R_ij = g(s_i) / (g(s_i) +
    g(d_j)) is built once per block and K = sum w_s sum w_d - 2 w_s^T R w_d.  Within 2e-13 of
    the 801-node rule of :func:`kernel_quadrature` for q in [0.01, 100] (tested).
    """
    _check_variance("q", q)
    rho = np.asarray(rho, dtype=float)
    _check_correlation(rho)
    flat = np.clip(rho, -1.0, 1.0).reshape(-1)
    order = np.argsort(flat)
    sigma_s = np.sqrt(2.0 * q * (1.0 + flat[order]))
    sigma_d = np.sqrt(2.0 * q * (1.0 - flat[order]))
    out = np.empty(flat.size)
    for block in _octave_blocks(sigma_s, sigma_d):
        part = order[block]
        x_s, w_s = _half_line_rules(sigma_s[block])
        x_d, w_d = _half_line_rules(sigma_d[block])
        g_s, g_d = g(x_s)[:, None], g(x_d)[None, :]
        ratio = g_s / (g_s + g_d)
        out[part] = w_s.sum(1) * w_d.sum(1) - 2.0 * np.sum((w_s @ ratio) * w_d, axis=1)
    return out.reshape(rho.shape)


def kernel(phi: str, q: np.ndarray | float, rho: np.ndarray | float) -> np.ndarray:
    """K(rho) over broadcast arrays q, rho: the closed form where one exists (erf, relu), the
    sum-difference rule where phi has one (tanh, q in :data:`PRODUCT_FORM_VARIANCES`),
    :func:`kernel_quadrature` otherwise (both once per distinct q)."""
    record = nonlinearity(phi)
    if record.kernel is not None:
        return kernel_closed_form(phi, q, rho)
    _check_variance("q", q)
    q, rho = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(rho, dtype=float))
    out = np.empty(q.shape)
    low, high = PRODUCT_FORM_VARIANCES
    for value in np.unique(q):
        at = q == value
        if record.product_form is not None and low <= value <= high:
            out[at] = kernel_product_form(record.product_form, value, rho[at])
        else:
            for part in np.array_split(np.flatnonzero(at), -(-at.sum() // 16)):
                out.flat[part] = kernel_quadrature(phi, value, rho.flat[part])
    return out


def _expect_1d_many(f: ArrayFunction, q: np.ndarray, order: int) -> np.ndarray:
    """E[f(sqrt(q) z)] for every entry of an array q (trapezoid rule, once per distinct q)."""
    unique, inverse = np.unique(q, return_inverse=True)
    z, w = quadrature_nodes(order, "trapezoid")
    values = f(np.sqrt(unique)[:, None] * z[None, :]) @ w
    return values[inverse].reshape(q.shape)


def kernel_diagonal(phi: str, q: np.ndarray | float, order: int = 401) -> np.ndarray:
    """K(1) = E[phi(u)^2], u ~ N(0, q), for an array of variances q: the closed form where one
    exists (erf, relu), 1-D trapezoid quadrature otherwise (tanh)."""
    record = nonlinearity(phi)
    q = np.asarray(q, dtype=float)
    _check_variance("q", q)
    if record.diagonal is not None:
        return record.diagonal(q)
    f = record.numpy
    return _expect_1d_many(lambda u: f(u) ** 2, q, order)


def kernel_slope(phi: str, q: np.ndarray | float, order: int = 401) -> np.ndarray:
    """dK/drho at rho = 1: q E[phi'(u)^2], u ~ N(0, q), for an array of variances q.

    This is chi / sigma_2^2 of Poole et al. (2016) with q = sigma_w^2 (pre-activation variance):
    the closed form where one exists (erf, relu), 1-D trapezoid quadrature otherwise (tanh).
    """
    record = nonlinearity(phi)
    q = np.asarray(q, dtype=float)
    _check_variance("q", q)
    if record.slope is not None:
        return record.slope(q)
    df = record.derivative
    return q * _expect_1d_many(lambda u: df(u) ** 2, q, order)
