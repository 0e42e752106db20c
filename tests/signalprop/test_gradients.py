"""Gradient exponent: mode gains in theory against autograd on finite-width random transformers.

Tolerances.  A measured rate is (1/L) log of the seed mean of a squared Frobenius norm; its
standard error (SE) is the delta-method SE from the seed-to-seed spread.  We accept |measured -
theory| < 4 SE: each comparison then fails by chance with probability about 6e-5 if the spread
is Gaussian, so the dozen comparisons below fail together by chance less than 0.1% of the time.
Width d = 128 keeps the O(1/d) finite-width bias (about 0.005 per layer here, measured at
d = 512) below one SE.
"""

import math

import numpy as np
import pytest

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.gradients import (
    finite_depth_exponent,
    gradient_exponents,
    joint_phase,
    lambda_common,
    lambda_differential,
    lambda_g,
    layer_gains,
    mode_log_gains,
    normalization_floor,
    tokens_for_exponent_gap,
    unnormalized_exponent,
)
from tdyn.signalprop.measure import measure_jacobian
from tdyn.signalprop.theory import angle_exponent, collapsed_fixed_point, lambda_a
from tests.helpers import assert_within_standard_errors

Z = 4.0


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize(("alpha_A", "alpha_M", "sigma_w"),
                         [(0.5, 0.5, 2.0), (0.2, 0.9, 1.1), (0.8, 0.3, 3.5)])
def test_differential_mode_rate_is_the_angle_exponent(norm, alpha_A, alpha_M, sigma_w):
    arch = Architecture(alpha_A=alpha_A, alpha_M=alpha_M, sigma_w=sigma_w, norm=norm)
    # Two independent derivations: the (q, p) map's angle rate and the Jacobian's mode gain.
    assert lambda_differential(arch) == pytest.approx(lambda_a(arch), abs=1e-10)


def test_common_minus_differential_is_the_attention_value_path():
    alpha = np.linspace(0.05, 0.95, 10)[:, None]
    sigma_w = np.linspace(0.3, 5.0, 13)[None, :]
    for norm in ("pre", "post"):
        grid = Architecture(alpha_A=alpha, alpha_M=alpha, sigma_w=sigma_w, norm=norm)
        lam_c, lam_d = gradient_exponents(grid)
        c2 = 1.0 - alpha**2
        if norm == "pre":
            q_star = np.array([[collapsed_fixed_point(Architecture(
                alpha_A=float(a), alpha_M=float(a), sigma_w=float(s))).q
                for s in sigma_w[0]] for a in alpha[:, 0]])
            expected = np.log1p(alpha**2 / (c2 * q_star))
        else:
            expected = np.broadcast_to(np.log1p(alpha**2 / c2), lam_c.shape)
        np.testing.assert_allclose(lam_c - lam_d, expected, atol=1e-9)
        assert np.all(lam_c > lam_d)  # strictly, wherever alpha_A > 0
        np.testing.assert_allclose(lam_d, angle_exponent(grid), atol=1e-9)


def test_vectorized_exponents_match_the_layer_gains():
    for kw in ({}, {"norm": "post"}, {"residual": "plain", "alpha_A": 0.7, "alpha_M": 1.3}):
        arch = Architecture(**kw)
        lam_c, lam_d = gradient_exponents(arch)
        assert float(lam_c) == pytest.approx(lambda_common(arch), abs=1e-10)
        assert float(lam_d) == pytest.approx(lambda_differential(arch), abs=1e-10)


def test_finite_depth_exponent_interpolates_between_the_modes():
    arch = Architecture(n=64)
    lam_c, lam_d = lambda_common(arch), lambda_differential(arch)
    assert lam_d < lambda_g(arch, 1) < lam_c
    rates = [lambda_g(arch, depth) for depth in (1, 4, 16, 64, 1024)]
    assert np.all(np.diff(rates) > 0)  # the common mode takes over with depth
    assert rates[-1] == pytest.approx(lam_c, abs=math.log(arch.n) / 1024 + 1e-12)
    many_tokens = arch.replace(n=10**12)
    assert lambda_g(many_tokens, 8) == pytest.approx(lam_d, abs=1e-6)


def test_plain_pre_ln_gains_follow_the_growing_norm():
    arch = Architecture(residual="plain", alpha_A=0.5, alpha_M=0.5)
    log_c, _ = mode_log_gains(arch, 50)
    per_layer = [math.log(layer_gains(arch, q).common) for q in (1.0, 5.0, 20.0)]
    assert np.all(np.diff(per_layer) < 0) and per_layer[-1] > 0  # gains > 1, tending to 1
    assert 0 < log_c / 50 < per_layer[0]


def test_identity_network_has_unit_jacobian_exactly():
    arch = Architecture(n=3, d=8, alpha_A=0.0, alpha_M=0.0)
    m = measure_jacobian(arch, depth=2, q0=1.0, n_seeds=2, method="exact")
    np.testing.assert_allclose(m.common, 1.0, atol=1e-12)
    np.testing.assert_allclose(m.differential, 1.0, atol=1e-12)


@pytest.mark.slow
def test_probe_estimates_match_exact_norms():
    arch = Architecture(n=3, d=16, alpha_A=0.6, alpha_M=0.6, sigma_w=2.5)
    exact = measure_jacobian(arch, depth=3, n_seeds=4, method="exact")
    probe = measure_jacobian(arch, depth=3, n_seeds=4, method="probe", n_probes=400)
    # Same seeds give the same weights; the probe means are unbiased with the stated SE.
    for name in ("common", "differential"):
        assert_within_standard_errors(getattr(probe, name), getattr(exact, name),
                                      getattr(probe, name + "_sem"), name, z_max=Z)


@pytest.mark.slow
@pytest.mark.parametrize("kw", [{}, {"norm": "post"},
                                {"residual": "plain", "alpha_A": 0.4, "alpha_M": 0.4},
                                {"alpha_A": 0.3, "alpha_M": 0.8, "sigma_w": 1.2},
                                {"sigma_bV": 0.5, "sigma_b1": 0.7, "sigma_b2": 0.4}])
def test_measured_mode_rates_match_theory(kw):
    arch = Architecture(n=4, d=128, **kw)
    depth = 6
    m = measure_jacobian(arch, depth, n_seeds=32, method="probe", n_probes=8)
    log_c, log_d = mode_log_gains(arch, depth)
    theory = {"common": log_c / depth, "differential": log_d / depth,
              "total": lambda_g(arch, depth)}
    for name, (mean, sem) in m.exponents().items():
        assert abs(mean[0] - theory[name]) < Z * sem[0], (name, mean[0], theory[name], sem[0])


def test_parameter_gradients_follow_the_common_mode():
    arch = Architecture(n=4, d=128, alpha_A=0.6, alpha_M=0.6, sigma_w=2.5)
    depth = 5
    m = measure_jacobian(arch, depth, n_seeds=48, method="probe", n_probes=2)
    first, last = m.param_grads[0, :, 0], m.param_grads[0, :, -1]
    rate = math.log(first.mean() / last.mean()) / (depth - 1)
    # Delta-method SE of the log of each seed mean; the two are correlated through the seeds,
    # so adding the standard errors (not in quadrature) bounds the SE of the difference.
    sem = sum(v.std(ddof=1) / math.sqrt(v.size) / v.mean() for v in (first, last)) / (depth - 1)
    assert abs(rate - lambda_common(arch)) < Z * sem
    assert abs(rate - lambda_differential(arch)) > Z * sem  # and not the differential mode


def test_joint_phase_labels():
    labels = joint_phase([-0.1, -0.1, 0.2, 0.2], [-0.3, 0.1, -0.1, 0.4])
    assert list(labels) == ["ordered-vanishing", "ordered-exploding", "chaotic-vanishing",
                            "chaotic-exploding"]


def test_invalid_inputs_raise():
    arch = Architecture(n=3, d=8)
    with pytest.raises(ValueError, match="depth"):
        lambda_g(arch, 0)
    with pytest.raises(ValueError, match="q="):
        layer_gains(arch, -1.0)
    with pytest.raises(ValueError, match="method"):
        measure_jacobian(arch, 1, method="magic")
    with pytest.raises(ValueError, match="n_probes"):
        measure_jacobian(arch, 1, method="probe", n_probes=1)
    with pytest.raises(ValueError, match="share n"):
        measure_jacobian([arch, arch.replace(n=4)], 1)
    with pytest.raises(ValueError, match="norm"):
        gradient_exponents(Architecture(alpha_A=0.5, alpha_M=0.5, sigma_w=2.0, norm="mid"))


def test_joint_phase_index_orders_the_regions_and_counts_zero_as_positive():
    from tdyn.signalprop.gradients import JOINT_PHASES, joint_phase_index

    lam_a = np.array([-0.1, -0.1, 0.2, 0.2, 0.0])
    lam_g = np.array([-0.3, 0.1, -0.1, 0.4, 0.0])
    index = joint_phase_index(lam_a, lam_g)
    assert list(index) == [0, 1, 2, 3, 3]
    assert list(joint_phase(lam_a, lam_g)) == [JOINT_PHASES[k] for k in index]


def test_normalization_floor_bounds_lambda_g_and_is_reached():
    alpha = np.linspace(0.05, 0.99, 30)[None, :]
    sigma_w = np.geomspace(0.05, 8.0, 40)[:, None]
    lam_c, lam_d = gradient_exponents(Architecture(alpha_A=alpha, alpha_M=alpha, sigma_w=sigma_w))
    for n, depth in ((16, 8), (48, 16)):
        floor = normalization_floor(n, depth)
        lam_g = finite_depth_exponent(lam_c, lam_d, n, depth)
        assert np.all(lam_g >= floor - 1e-12)
        assert np.all(lam_g >= lam_c + floor - 1e-12)
        # alpha -> 1, sigma_w -> 0: G_d -> 0 and G_c -> 1, the floor itself
        assert lam_g[0, -1] == pytest.approx(floor, abs=0.01)
        # without 1/(n d) the estimator is positive everywhere (d = 64)
        assert np.all(unnormalized_exponent(lam_g, n, 64, depth) > 0)
        assert unnormalized_exponent(floor, n, 64, depth) == pytest.approx(math.log(64) / depth)


@pytest.mark.slow
def test_measured_lambda_g_sits_on_the_floor_where_the_differential_modes_die():
    arch = Architecture(n=16, d=64, alpha_A=0.95, alpha_M=0.95, sigma_w=0.3)
    depth = 8
    mean, sem = measure_jacobian(arch, depth, n_seeds=16, method="probe",
                                 n_probes=8).exponents()["total"]
    # theory is 0.003 above the floor, far below the standard error
    assert lambda_g(arch, depth) - normalization_floor(16, depth) < 0.01
    assert_within_standard_errors(mean, normalization_floor(16, depth), sem, "floor", z_max=Z)


@pytest.mark.parametrize("delta, eps", [(0.2, 0.01), (0.1, 0.01), (0.3, 0.01), (0.05, 0.02)])
def test_tokens_for_exponent_gap_is_the_fewest_tokens_below_the_gap(delta, eps):
    n = tokens_for_exponent_gap(delta, 16, eps)
    lam_d = -0.4  # the count depends only on log G_c - lambda_d
    below = finite_depth_exponent(lam_d + delta, lam_d, [n - 1, n], 16) - lam_d
    assert below[1] < eps <= below[0]
    with pytest.raises(ValueError, match="eps"):
        tokens_for_exponent_gap(delta, 16, 0.0)
