"""The MLP nonlinearities phi of Part I: one record per name, the only place that reads it.

Each :class:`Nonlinearity` holds phi and phi' for NumPy arrays, phi for torch tensors (through
tensor methods, so that importing the theory does not import torch), and, where a closed form
exists, the two-point kernel K(rho) = E[phi(u) phi(v)] (Var u = Var v = q, Corr(u, v) = rho),
its diagonal K(1) = E[phi(u)^2] and its slope K'(1) = q E[phi'(u)^2]:

    erf:   K = (2/pi) arcsin(2 q rho / (1 + 2 q)),  K(1) = (2/pi) arcsin(2q / (1 + 2q)),
           K'(1) = q (4/pi) / sqrt(1 + 4q)                                      (Williams 1997)
    relu:  K = (q / 2pi) (sqrt(1 - rho^2) + (pi - arccos rho) rho),  K(1) = K'(1) = q / 2
                                                                                (Cho & Saul 2009)
    tanh:  none; its product has the sum-difference form
           tanh(u) tanh(v) = 1 - 2 sech(u + v) / (sech(u + v) + sech(u - v)),
           which :mod:`tdyn.signalprop.gaussian` integrates with one division per node pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

ArrayFunction = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Nonlinearity:
    """One nonlinearity: ``numpy`` phi, ``derivative`` phi' (NumPy), ``torch`` phi on tensors,
    and the closed forms ``kernel(q, rho)``, ``diagonal(q)`` = K(1), ``slope(q)`` = K'(1), or
    None where there is none; ``product_form``: an even, positive g with phi(u) phi(v) =
    1 - 2 g(u + v) / (g(u + v) + g(u - v)), or None (module docstring)."""

    name: str
    numpy: ArrayFunction
    derivative: ArrayFunction
    torch: Callable
    kernel: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    diagonal: ArrayFunction | None = None
    slope: ArrayFunction | None = None
    product_form: ArrayFunction | None = None


def _tanh_tensor(x):
    """tanh(x) = 2 sigmoid(2x) - 1 (absolute error at the dtype's resolution; torch's CPU tanh
    is 3 to 10 times slower than its sigmoid); in place on the intermediate where autograd does
    not track x (the same arithmetic)."""
    if x.requires_grad:
        return 2.0 * (2.0 * x).sigmoid() - 1.0
    return (2.0 * x).sigmoid_().mul_(2.0).sub_(1.0)


NONLINEARITIES: dict[str, Nonlinearity] = {
    "tanh": Nonlinearity(
        "tanh", np.tanh, lambda x: 1.0 - np.tanh(x) ** 2, _tanh_tensor,
        product_form=lambda x: 1.0 / np.cosh(x)),
    "erf": Nonlinearity(
        "erf", erf, lambda x: 2.0 / np.sqrt(np.pi) * np.exp(-(x**2)), lambda x: x.erf(),
        kernel=lambda q, rho: (2.0 / np.pi) * np.arcsin(2.0 * q * rho / (1.0 + 2.0 * q)),
        diagonal=lambda q: (2.0 / np.pi) * np.arcsin(2.0 * q / (1.0 + 2.0 * q)),
        slope=lambda q: q * (4.0 / np.pi) / np.sqrt(1.0 + 4.0 * q)),
    "relu": Nonlinearity(
        "relu", lambda x: np.maximum(x, 0.0), lambda x: np.heaviside(x, 0.5),
        lambda x: x.relu(),
        kernel=lambda q, rho: q / (2.0 * np.pi) * (np.sqrt(1.0 - rho**2)
                                                   + (np.pi - np.arccos(rho)) * rho),
        diagonal=lambda q: q / 2.0,
        slope=lambda q: q / 2.0),
}
"""The MLP nonlinearities the book supports, by name (ReLU's derivative: the step, 1/2 at 0)."""


def nonlinearity(name: str) -> Nonlinearity:
    """The record of the nonlinearity called ``name`` (one of :data:`NONLINEARITIES`)."""
    try:
        return NONLINEARITIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"phi={name!r} is not a known nonlinearity; allowed: "
                         f"{sorted(NONLINEARITIES)}") from None
