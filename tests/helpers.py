"""Helpers shared by the tests: comparisons of an estimate with theory in standard errors.

A seeded Monte Carlo or finite-width estimate agrees with theory when every z-score
(estimate - theory) / standard error is small.  ``Z_MAX`` = 4 standard errors: a Gaussian
|z| > 4 has probability 6e-5, so a test comparing a few dozen values fails by chance less
than once in 500 runs (and, being seeded, either always or never).
"""

import numpy as np

Z_MAX = 4.0


def z_scores(estimate, expected, sem) -> np.ndarray:
    """(estimate - expected) / sem, elementwise."""
    return (np.asarray(estimate, dtype=float) - np.asarray(expected, dtype=float)) / np.asarray(
        sem, dtype=float)


def assert_within_standard_errors(estimate, expected, sem, what: str, z_max: float = Z_MAX):
    """Fail naming ``what`` and the z-scores when any exceeds ``z_max`` in absolute value."""
    z = z_scores(estimate, expected, sem)
    assert np.all(np.abs(z) <= z_max), f"{what}: z-scores {np.round(z, 2)} exceed {z_max}"
