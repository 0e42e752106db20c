"""The four phases at the LayerNorm scale: the identity lambda_g - lambda_a = log(q_out / q),
the crossing of the zero lines, and one simulated point per region."""

import math

import numpy as np
import pytest
from scipy.optimize import fsolve

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.gradients import (
    JOINT_PHASES,
    joint_phase,
    lambda_differential,
    lambda_g,
    layer_gains,
)
from tdyn.signalprop.measure import measure_jacobian, measured_angle_exponent
from tdyn.signalprop.phases import (
    crossing_value_scale_limit,
    crossings,
    edge_sigma_w,
    four_phase_exponents,
)
from tdyn.signalprop.theory import lambda_a
from tests.helpers import assert_within_standard_errors

# One point per region at sigma_V = 0.3 (tied readout), chosen by the book's diagram.
REGION_POINTS = {"ordered-vanishing": (0.8, 0.7), "ordered-exploding": (0.97, 2.3),
                 "chaotic-vanishing": (0.7, 1.3), "chaotic-exploding": (0.6, 3.0)}
SIGMA_V = 0.3


def test_lambda_g_minus_lambda_a_is_the_log_norm_growth_on_a_grid():
    alpha = np.linspace(0.05, 0.95, 7)[None, :]
    sigma_w = np.geomspace(0.5, 8.0, 9)[:, None]
    for sigma_V, sigma_2 in ((0.3, None), (1.0, None), (1.0, 1.1), (0.7, 2.0)):
        lam_a, lam_g = four_phase_exponents(Architecture(
            alpha_A=alpha, alpha_M=alpha, sigma_w=sigma_w, sigma_V=sigma_V, sigma_2=sigma_2))
        for i, s in enumerate(sigma_w[:, 0]):
            for j, a in enumerate(alpha[0]):
                arch = Architecture(alpha_A=a, alpha_M=a, sigma_w=s, sigma_V=sigma_V,
                                    sigma_2=sigma_2)
                q_out = layer_gains(arch, 1.0).q_next
                assert lam_g[i, j] - lam_a[i, j] == pytest.approx(math.log(q_out), abs=1e-10)
                assert lam_g[i, j] == pytest.approx(lambda_differential(arch, at="ln-scale"),
                                                    abs=1e-10)


def test_at_the_fixed_point_lambda_g_stays_above_lambda_a():
    alpha = np.linspace(0.05, 0.95, 19)[None, :]
    sigma_w = np.geomspace(0.3, 10.0, 25)[:, None]
    for sigma_V in (0.3, 0.5, 0.7, 1.0):
        lam_a, lam_g = four_phase_exponents(Architecture(
            alpha_A=alpha, alpha_M=alpha, sigma_w=sigma_w, sigma_V=sigma_V), at="fixed-point")
        assert np.all(lam_g > lam_a)


@pytest.mark.parametrize(("kw", "alpha"), [({"sigma_V": 0.3}, 0.893), ({"sigma_V": 0.5}, 0.737),
                                           ({"sigma_V": 0.7}, 0.425),
                                           ({"sigma_V": 1.0, "sigma_2": 1.1}, 0.684)])
def test_crossings_solve_both_equations(kw, alpha):
    (found,) = crossings(Architecture(**kw))
    assert found.alpha == pytest.approx(alpha, abs=1e-3)
    arch = Architecture(alpha_A=found.alpha, alpha_M=found.alpha, sigma_w=found.sigma_w, **kw)
    assert abs(lambda_a(arch, at="ln-scale")) < 1e-9
    # At n tokens the one-layer total keeps the common mode's 1/n share: G_d = 1 there, so
    # lambda_g(1) = log[(G_c + n - 1) / n] > 0.
    g = layer_gains(arch, 1.0)
    assert g.differential == pytest.approx(1.0, abs=1e-9)
    assert lambda_g(arch, 1, at="ln-scale") == pytest.approx(
        math.log((g.common + arch.n - 1) / arch.n), abs=1e-9)
    # An independent solve of lambda_a = 0 and q_out = 1 (the identity), from a nearby guess.
    def equations(x):
        a = Architecture(alpha_A=x[0], alpha_M=x[0], sigma_w=x[1], **kw)
        return [lambda_a(a, at="ln-scale"), math.log(layer_gains(a, 1.0).q_next)]

    root = fsolve(equations, [found.alpha + 0.02, found.sigma_w * 1.05], xtol=1e-12)
    np.testing.assert_allclose(root, [found.alpha, found.sigma_w], atol=1e-7)
    # The block preserves q = 1 there, so every layer repeats: the crossing is depth-free.
    lam_a16, lam_g16 = four_phase_exponents(arch, depth=16)
    assert abs(float(lam_a16)) < 1e-8 and abs(float(lam_g16)) < 1e-8


def test_no_crossing_with_unit_value_scale_and_a_tied_readout():
    assert crossings(Architecture(sigma_V=1.0)) == []
    assert crossings(Architecture(sigma_V=1.0, sigma_2=1.0)) == []  # q_out < 1 on the whole edge
    limit = crossing_value_scale_limit(Architecture())
    assert 0.76 < limit < 0.78
    assert (crossings(Architecture(sigma_V=limit - 0.02))
            and not crossings(Architecture(sigma_V=limit + 0.02)))


def test_edge_sigma_w_is_nan_without_a_sign_change():
    assert math.isnan(edge_sigma_w(Architecture(alpha_A=0.5, alpha_M=0.5, sigma_V=0.3), lo=0.3,
                                   hi=0.4))


def test_region_points_lie_where_the_diagram_says():
    for region, (a, s) in REGION_POINTS.items():
        arch = Architecture(alpha_A=a, alpha_M=a, sigma_w=s, sigma_V=SIGMA_V)
        lam_a, lam_g = four_phase_exponents(arch)
        assert str(joint_phase(lam_a, lam_g)) == region
        lam_a16, lam_g16 = four_phase_exponents(arch.replace(n=16), many_tokens=False)
        assert str(joint_phase(lam_a16, lam_g16)) == region  # also at n = 16 tokens


@pytest.mark.slow
def test_four_regions_in_finite_width_simulation():
    # One layer from q = 1: lambda_a from rho0 = 0.99 (d = 512, 64 networks), lambda_g from
    # 8 random probes of the Jacobian of each of 32 networks (d = 128, collapsed tokens).
    # z-scores against the seed standard errors, then the sign of each mean must be the
    # predicted one and more than 3 standard errors from zero.
    archs = [Architecture(n=16, d=512, alpha_A=a, alpha_M=a, sigma_w=s, sigma_V=SIGMA_V)
             for a, s in REGION_POINTS.values()]
    la, la_sem = measured_angle_exponent(archs, layers=1, gap=0.01, n_seeds=64, seed=1,
                                         at="ln-scale")
    jac = measure_jacobian([a.replace(d=128) for a in archs], 1, n_seeds=32, seed=2,
                           method="probe", n_probes=8, at="ln-scale")
    lg, lg_sem = jac.exponents()["total"]
    theory_a = [lambda_a(a, at="ln-scale", rho0=0.99) for a in archs]
    theory_g = [lambda_g(a, 1, at="ln-scale") for a in archs]
    assert_within_standard_errors(la, theory_a, la_sem, "lambda_a, one layer from q = 1")
    assert_within_standard_errors(lg, theory_g, lg_sem, "lambda_g, one layer from q = 1")
    assert list(joint_phase(la, lg)) == list(REGION_POINTS) == list(JOINT_PHASES)
    assert np.all(np.abs(la) > 3 * la_sem) and np.all(np.abs(lg) > 3 * lg_sem)
