"""The check of ``notebooks/kernel_check.ipynb``: the closed-form two-point Gaussian kernel
K(rho) = E[phi(u) phi(v)], (u, v) ~ N(0, q [[1, rho], [rho, 1]])
(:func:`tdyn.signalprop.gaussian.kernel`), against seeded Monte Carlo on a grid of
correlations rho in [-1, 1].
"""

from __future__ import annotations

import numpy as np

from tdyn.signalprop.gaussian import kernel, monte_carlo_2d
from tdyn.signalprop.nonlinearity import nonlinearity

EXPERIMENT = "kernel_check"
"""The name of its notebook, spec and data folder."""


def configurations(params: dict) -> list[dict]:
    """One configuration per grid point: ``n_rho`` correlations evenly spaced in [-1, 1]."""
    return [{"point": i, "rho": float(r)}
            for i, r in enumerate(np.linspace(-1.0, 1.0, params["n_rho"]))]


def seeds(config: dict, params: dict) -> dict:
    """The Monte Carlo draws of a grid point come from numpy's generator [seed, point]."""
    return {"monte_carlo": [params["seed"], config["point"]]}


def run_configuration(config: dict, params: dict) -> dict:
    """K(rho) in closed form and by ``n_samples`` Monte Carlo draws (mean and standard error)."""
    f = nonlinearity(params["phi"]).numpy
    q, rho = params["q"], config["rho"]
    rng = np.random.default_rng(seeds(config, params)["monte_carlo"])
    mean, stderr = monte_carlo_2d(f, f, q, q, q * rho, params["n_samples"], rng)
    return {"theory": float(kernel(params["phi"], q, rho)), "mc_mean": mean,
            "mc_stderr": stderr, "seeds": seeds(config, params)}
