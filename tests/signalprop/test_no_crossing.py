"""The no-crossing theorem at a norm fixed point, on grids over every convention the library
has, and the parameter-gradient laws (W_V, W_1, W_2 follow the common mode; W_Q, W_K vanish on
the collapsed line)."""

import itertools
import math

import numpy as np
import pytest

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.gradients import (
    finite_depth_exponent,
    gradient_exponents,
    lambda_common,
)
from tdyn.signalprop.measure import measure_parameter_gradients
from tdyn.signalprop.theory import (
    angle_exponent,
    collapsed_fixed_point,
    collapsed_line,
    lambda_a,
    lambda_a_from_map,
)

ALPHA = np.linspace(0.05, 0.95, 10)[None, :]
SIGMA_W = np.geomspace(0.2, 10.0, 12)[:, None]
# (residual, norm) pairs with a collapsed norm fixed point ('plain' pre-LN has none)
FIXED_POINT_FORMS = [("interp", "pre"), ("interp", "post"), ("plain", "post")]
CONVENTIONS = list(itertools.product(("tanh", "erf", "relu"), FIXED_POINT_FORMS,
                                     (0.3, 1.0, 2.0), (None, 0.5, 3.0)))


@pytest.mark.parametrize(("phi", "form", "sigma_V", "sigma_2"), CONVENTIONS)
def test_common_minus_angle_rate_is_the_value_path_on_every_convention(phi, form, sigma_V,
                                                                       sigma_2):
    residual, norm = form
    alpha_A, alpha_M = ALPHA, ALPHA.T[::-1].T  # alpha_M runs the other way: alpha_A != alpha_M
    grid = Architecture(alpha_A=alpha_A, alpha_M=alpha_M, sigma_w=SIGMA_W, sigma_V=sigma_V,
                        sigma_2=sigma_2, phi=phi, residual=residual, norm=norm)
    log_c, log_d = gradient_exponents(grid)
    lam_a = angle_exponent(grid)
    c = collapsed_line(grid)
    q = c.q if norm == "pre" else 1.0
    gap = np.log1p(c.a2a * c.v2 / (c.c2a * q))
    np.testing.assert_allclose(log_d, lam_a, atol=1e-10)  # G_d = e^lambda_a at q*
    np.testing.assert_allclose(log_c - lam_a, gap, rtol=1e-10, atol=1e-12)
    assert np.all(gap > 0)
    # at every finite depth and token count lambda_g(L) > lambda_a: no crossing
    for depth, n in ((1, 2), (4, 16), (16, 256)):
        lam_g = finite_depth_exponent(log_c, log_d, n, depth)
        assert np.all(lam_g > lam_a)


@pytest.mark.parametrize(("phi", "form"), list(itertools.product(("tanh", "relu"),
                                                                 FIXED_POINT_FORMS)))
def test_angle_rate_from_the_map_confirms_the_gap_independently(phi, form):
    # The (q, p) map's own one-layer rate from rho = 1 - 1e-5 at q* (finite-n attention terms
    # included) equals log G_d, so log G_c - lambda_a > 0 does not rest on the closed form.
    residual, norm = form
    for alpha, sigma_w, sigma_V, sigma_2 in [(0.3, 1.2, 0.5, None), (0.7, 2.5, 1.0, 1.0),
                                             (0.9, 3.0, 2.0, 3.0)]:
        arch = Architecture(alpha_A=alpha, alpha_M=alpha, sigma_w=sigma_w, sigma_V=sigma_V,
                            sigma_2=sigma_2, phi=phi, residual=residual, norm=norm)
        from_map = lambda_a_from_map(arch)
        tol = 5e-3 if phi == "relu" else 1e-3  # ReLU's kernel has a (1 - rho)^(3/2) term
        assert from_map == pytest.approx(lambda_a(arch), abs=tol)
        q = collapsed_fixed_point(arch).q if norm == "pre" else 1.0
        gap = math.log1p(alpha**2 * sigma_V**2 / (arch.skip_A**2 * q))
        assert lambda_common(arch) - from_map == pytest.approx(gap, abs=tol)


def test_only_alpha_a_zero_closes_the_gap():
    log_c, log_d = gradient_exponents(Architecture(alpha_A=0.0, alpha_M=np.linspace(0.1, 0.9, 5),
                                                   sigma_w=2.0))
    np.testing.assert_allclose(log_c, log_d, atol=1e-14)


@pytest.mark.slow
def test_parameter_gradients_follow_the_common_mode_and_query_key_gradients_the_gap():
    # One common Gaussian probe per network (only the common mode leaves the output), 64
    # networks of depth 5 from the simplex at q* with gap 1e-3.  Rates across layers 1 -> 4 with
    # the delta-method standard error of the two seed means (added, not in quadrature: they
    # are correlated).
    archs = [Architecture(n=8, d=128, alpha_A=0.5, alpha_M=0.5, sigma_w=1.5),
             Architecture(n=8, d=128, alpha_A=0.8, alpha_M=0.8, sigma_w=1.5, sigma_V=0.7)]
    depth = 5
    g3 = measure_parameter_gradients(archs, depth, gap=1e-3, n_seeds=64, seed=1,
                                     probe="common")
    g4 = measure_parameter_gradients(archs, depth, gap=1e-4, n_seeds=64, seed=1,
                                     probe="common")
    for k, arch in enumerate(archs):
        for name in ("V", "W1", "W2"):
            first, last = g3[name][k, :, 0], g3[name][k, :, depth - 2]
            rate = math.log(last.mean() / first.mean()) / (depth - 2)
            sem = sum(v.std(ddof=1) / math.sqrt(v.size) / v.mean() for v in (first, last))
            assert abs(rate + lambda_common(arch)) < 4 * sem / (depth - 2), (name, rate)
            # the gap does not enter at leading order
            assert g3[name][k].mean() / g4[name][k].mean() == pytest.approx(1.0, abs=0.05)
        for name in ("Q", "K"):
            # amplitude O(gap): the squared norm scales as gap^2, 100x per decade (the
            # same weights and probes at both gaps; a 5% allowance for the O(gap) correction)
            ratio = g3[name][k, :, 0].mean() / g4[name][k, :, 0].mean()
            assert ratio == pytest.approx(100.0, rel=0.05)


def test_parameter_gradient_measurement_refuses_bad_input():
    arch = Architecture(n=3, d=8)
    with pytest.raises(ValueError, match="probe"):
        measure_parameter_gradients(arch, 1, probe="uniform")
    with pytest.raises(ValueError, match="gap"):
        measure_parameter_gradients(arch, 1, gap=0.0)


@pytest.mark.slow
def test_query_key_gradient_rate_approaches_the_law():
    # |dL/dW_Q^(l)|^2 ~ (1 - rho_l)^2 G_c^(L - l): per-layer rate 2 lambda_a - log G_c towards
    # the output.  48 networks of width 256 (the finite-width excess measured there, 0.06 per
    # layer, is about one standard error), depth 5, common probe, layers 1 -> 4; delta-method
    # standard error of the two seed means, added (they are correlated).
    arch = Architecture(n=8, d=256, alpha_A=0.8, alpha_M=0.8, sigma_w=1.5)
    depth = 5
    grads = measure_parameter_gradients(arch, depth, gap=1e-3, n_seeds=48, seed=3,
                                        probe="common")
    law = 2 * lambda_a(arch) - lambda_common(arch)
    for name in ("Q", "K"):
        first, last = grads[name][0, :, 0], grads[name][0, :, depth - 2]
        rate = math.log(last.mean() / first.mean()) / (depth - 2)
        sem = sum(v.std(ddof=1) / math.sqrt(v.size) / v.mean() for v in (first, last))
        assert abs(rate - law) < 4 * sem / (depth - 2), (name, rate, law)
        # and it is not the common-mode rate of the other matrices
        assert abs(rate + lambda_common(arch)) > 4 * sem / (depth - 2)
