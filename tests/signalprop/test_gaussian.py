"""tdyn.signalprop.gaussian: closed forms vs Gauss-Hermite quadrature vs seeded Monte Carlo."""

import numpy as np
import pytest
from scipy import integrate

from tdyn.signalprop import gaussian
from tdyn.signalprop.nonlinearity import NONLINEARITIES, nonlinearity

RHOS = np.array([-1.0, -0.7, -0.2, 0.0, 0.3, 0.8, 0.99, 1.0])


@pytest.mark.parametrize(("rule", "order"), [("trapezoid", 401), ("hermite", 20)])
def test_rules_integrate_gaussian_moments(rule, order):
    z, w = gaussian.quadrature_nodes(order, rule)
    np.testing.assert_allclose(
        [w.sum(), np.sum(w * z**2), np.sum(w * z**4), np.sum(w * z**6)],
        [1.0, 1.0, 3.0, 15.0],  # E z^0, E z^2, E z^4, E z^6
        rtol=1e-12,
    )


@pytest.mark.parametrize("q", [0.3, 2.3, 16.0])
def test_expect_1d_matches_adaptive_integration(q):
    # tanh is analytic in a strip, so the trapezoid rule converges exponentially: at order 401
    # the error is at round-off level (~1e-14) for q up to 16.
    exact, _ = integrate.quad(
        lambda u: np.tanh(u) ** 2 * np.exp(-(u**2) / (2 * q)) / np.sqrt(2 * np.pi * q),
        -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13, limit=400,
    )
    assert gaussian.expect_1d(lambda u: np.tanh(u) ** 2, q) == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize("q", [0.1, 1.0, 4.0, 16.0])
def test_erf_quadrature_matches_closed_form(q):
    # erf is entire: the default rule reproduces the closed form to round-off for q <= 16.
    quad = gaussian.kernel_quadrature("erf", q, RHOS)
    closed = gaussian.kernel_closed_form("erf", q, RHOS)
    np.testing.assert_allclose(quad, closed, atol=1e-12)


def test_gauss_hermite_agrees_at_moderate_variance():
    # Gauss-Hermite of order 200 is exact to ~1e-14 at q = 1 (checked against the closed form).
    quad = gaussian.kernel_quadrature("erf", 1.0, RHOS, order=200, rule="hermite")
    np.testing.assert_allclose(quad, gaussian.kernel_closed_form("erf", 1.0, RHOS), atol=1e-12)


def test_relu_quadrature_converges_to_closed_form():
    # ReLU has a kink, so the trapezoid rule converges only as h^2: doubling the order must
    # cut the error by about 4 (we require > 3), and at order 401 it is below 1e-4.
    q = 1.5
    closed = gaussian.kernel_closed_form("relu", q, RHOS)
    errors = [
        np.max(np.abs(gaussian.kernel_quadrature("relu", q, RHOS, order=n) - closed))
        for n in (201, 401)
    ]
    assert errors[0] / errors[1] > 3
    assert errors[1] < 1e-4


def test_relu_closed_form_known_values():
    q = 2.0
    assert gaussian.kernel_closed_form("relu", q, 1.0) == pytest.approx(q / 2)  # E[relu(u)^2]
    assert gaussian.kernel_closed_form("relu", q, 0.0) == pytest.approx(q / (2 * np.pi))
    assert gaussian.kernel_closed_form("relu", q, -1.0) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("phi", ["tanh", "erf", "relu"])
def test_kernel_agrees_with_monte_carlo_within_sampling_error(phi):
    # With n samples the Monte Carlo mean has standard error s/sqrt(n); we accept |z| < 4.5
    # at each of 8 correlations (a false alarm probability below 1e-4 for the whole test).
    rng = np.random.default_rng(12345)
    f = nonlinearity(phi).numpy
    q = 1.7
    for rho in RHOS:
        mean, stderr = gaussian.monte_carlo_2d(f, f, q, q, q * rho, 40_000, rng)
        theory = float(gaussian.kernel(phi, q, rho))
        assert abs(mean - theory) < 4.5 * stderr + 1e-12, (phi, rho, mean, theory, stderr)


def test_expect_2d_unequal_variances_against_monte_carlo():
    rng = np.random.default_rng(7)
    f, g = np.tanh, np.sin
    q1, q2, c = 0.8, 2.5, 0.9
    mean, stderr = gaussian.monte_carlo_2d(f, g, q1, q2, c, 100_000, rng)
    quad = float(gaussian.expect_2d(f, g, q1, q2, c))
    assert abs(mean - quad) < 4.5 * stderr


def test_monte_carlo_is_deterministic_given_seed():
    a = gaussian.monte_carlo_2d(np.tanh, np.tanh, 1, 1, 0.5, 1000, np.random.default_rng(3))
    b = gaussian.monte_carlo_2d(np.tanh, np.tanh, 1, 1, 0.5, 1000, np.random.default_rng(3))
    assert a == b


def test_the_sum_difference_form_is_the_product_of_phi():
    """phi(u) phi(v) = 1 - 2 g(u + v) / (g(u + v) + g(u - v)) wherever a record gives g."""
    u, v = np.random.default_rng(0).normal(0.0, 3.0, (2, 1000))
    for name, record in NONLINEARITIES.items():
        if record.product_form is not None:
            g_s, g_d = record.product_form(u + v), record.product_form(u - v)
            np.testing.assert_allclose(1.0 - 2.0 * g_s / (g_s + g_d),
                                       record.numpy(u) * record.numpy(v), atol=1e-14, err_msg=name)


@pytest.mark.parametrize("q", [0.01, 0.25, 1.0, 4.0, 16.0, 100.0])
def test_the_sum_difference_rule_matches_the_fine_tensor_rule(q):
    """Against the 801-node tensor trapezoid rule (within 7e-14 of the 1201-node rule at these
    q), for rho on a grid and within 1e-8 of +-1, where one axis of the rule collapses."""
    rho = np.concatenate([np.linspace(-1.0, 1.0, 41), 1.0 - np.logspace(-8, -1, 8),
                          -1.0 + np.logspace(-8, -1, 8)])
    fine = [gaussian.kernel_quadrature("tanh", q, r, order=801) for r in rho]
    np.testing.assert_allclose(gaussian.kernel("tanh", q, rho), fine, rtol=0, atol=5e-13)


def test_kernel_over_arrays_of_variances_falls_back_outside_the_rule_s_range():
    q = np.array([[0.5, 2000.0, 1e-6], [4.0, 0.5, 1e-4]])
    rho = np.array([[0.3, 0.3, -0.4], [-0.7, 0.9, 0.8]])
    expected = [[gaussian.kernel_quadrature("tanh", a, b) for a, b in zip(qr, rr, strict=True)]
                for qr, rr in zip(q, rho, strict=True)]
    out = gaussian.kernel("tanh", q, rho)
    np.testing.assert_allclose(out, expected, rtol=1e-11, atol=0)  # relative, as K ~ q
    assert out[0, 1] == expected[0][1] and out[0, 2] == expected[0][2]  # the tensor rule
    # widths 0 (rho = +-1) and tiny ones share no block: a block spans a factor sqrt(2)
    tiny = gaussian.kernel("tanh", 1e-4, np.array([1.0, 1.0 - 2e-16, -1.0, 0.2]))
    np.testing.assert_allclose(tiny, [gaussian.kernel_quadrature("tanh", 1e-4, r)
                                      for r in (1.0, 1.0 - 2e-16, -1.0, 0.2)], rtol=1e-11)


def test_kernel_is_vectorized_over_rho():
    out = gaussian.kernel("tanh", 1.0, RHOS.reshape(2, 4))
    assert out.shape == (2, 4)
    # tanh is odd and increasing: K is odd in rho and increasing.
    flat = gaussian.kernel("tanh", 1.0, RHOS)
    assert np.all(np.diff(flat) > 0)
    np.testing.assert_allclose(gaussian.kernel("tanh", 1.0, -RHOS), -flat, atol=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gaussian.kernel("softplus", 1.0, 0.5), "phi='softplus'"),
        (lambda: gaussian.kernel("tanh", -1.0, 0.5), "q=-1.0"),
        (lambda: gaussian.kernel("tanh", 1.0, 1.5), "rho="),
        (lambda: gaussian.kernel("erf", 0.0, 0.5), "q=0.0"),
        (lambda: gaussian.kernel("erf", 1.0, 1.5), "rho="),
        (lambda: gaussian.kernel_closed_form("tanh", 1.0, 0.5), "no closed-form"),
        (lambda: gaussian.quadrature_nodes(1), "order=1"),
        (lambda: gaussian.quadrature_nodes(300, "hermite"), "order=300"),
        (lambda: gaussian.quadrature_nodes(11, "simpson"), "rule='simpson'"),
        (lambda: gaussian.monte_carlo_2d(np.tanh, np.tanh, 1, 1, 0, 1,
                                         np.random.default_rng(0)), "n_samples=1"),
    ],
)
def test_bad_input_raises_value_error_naming_it(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call()
