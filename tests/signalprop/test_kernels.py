"""K(1) and chi = K'(1) of the MLP kernels: closed forms, quadrature and Monte Carlo agree."""

import numpy as np
import pytest

from tdyn.signalprop.gaussian import (
    expect_1d,
    kernel_diagonal,
    kernel_quadrature,
    kernel_slope,
)
from tdyn.signalprop.nonlinearity import nonlinearity

VARIANCES = np.array([0.3, 1.0, 4.0, 9.0])


@pytest.mark.parametrize("phi", ["erf", "relu"])
def test_closed_forms_match_one_dimensional_quadrature(phi):
    f, df = nonlinearity(phi).numpy, nonlinearity(phi).derivative
    # an even number of nodes puts none on ReLU's kink at 0, where the trapezoid rule errs
    diag = [expect_1d(lambda u: f(u) ** 2, q, order=400) for q in VARIANCES]
    slope = [q * expect_1d(lambda u: df(u) ** 2, q, order=400) for q in VARIANCES]
    np.testing.assert_allclose(kernel_diagonal(phi, VARIANCES), diag, rtol=1e-6)
    np.testing.assert_allclose(kernel_slope(phi, VARIANCES), slope, rtol=1e-6)


@pytest.mark.parametrize("phi", ["tanh", "erf", "relu"])
def test_slope_is_the_derivative_of_the_two_dimensional_kernel(phi):
    """chi against a one-sided finite difference of K: the error is O(eps) = 1e-4 relative."""
    eps = 1e-5
    for q in VARIANCES:
        fd = (kernel_quadrature(phi, q, 1.0) - kernel_quadrature(phi, q, 1.0 - eps)) / eps
        assert kernel_slope(phi, q) == pytest.approx(fd, rel=2e-4 if phi != "relu" else 2e-3)
        assert kernel_diagonal(phi, q) == pytest.approx(kernel_quadrature(phi, q, 1.0), rel=1e-9)


@pytest.mark.parametrize("phi", ["tanh", "erf", "relu"])
def test_against_seeded_monte_carlo(phi):
    """Within 5 standard errors of 200,000 samples (false alarm ~ 6e-7 per comparison)."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal(200_000)
    f, df = nonlinearity(phi).numpy, nonlinearity(phi).derivative
    for q in (0.5, 4.0):
        u = np.sqrt(q) * z
        for values, theory in ((f(u) ** 2, kernel_diagonal(phi, q)),
                               (q * df(u) ** 2, kernel_slope(phi, q))):
            se = values.std(ddof=1) / np.sqrt(values.size)
            assert abs(values.mean() - theory) <= 5 * se


def test_vectorized_over_arrays_of_any_shape():
    q = np.array([[0.5, 1.0], [4.0, 0.5]])
    np.testing.assert_allclose(kernel_slope("tanh", q)[1, 1], kernel_slope("tanh", 0.5))
    assert kernel_diagonal("tanh", q).shape == (2, 2)
    with pytest.raises(ValueError, match="positive"):
        kernel_slope("tanh", np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="phi"):
        kernel_diagonal("gelu", 1.0)
