"""Bias variances: the (q, p) map and the gradient gains against finite-width simulation, and
the no-crossing identity with biases."""

import math

import pytest

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.gradients import (
    gradient_exponents,
    lambda_common,
    lambda_differential,
)
from tdyn.signalprop.simulate import simulate
from tdyn.signalprop.theory import (
    angle_exponent,
    collapsed_fixed_point,
    lambda_a,
    lambda_a_from_map,
    layer_map,
)
from tests.helpers import assert_within_standard_errors

BIASED = {"sigma_bV": 0.5, "sigma_b1": 0.7, "sigma_b2": 0.4}


def test_biases_default_to_none_and_are_validated():
    assert not Architecture().has_biases and Architecture(sigma_b1=0.1).has_biases
    with pytest.raises(ValueError, match="sigma_bV"):
        Architecture(sigma_bV=-0.1)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_one_layer_map_with_biases_matches_simulation(norm):
    # 32 networks at d = 512, n = 8; z-scores of the seed mean of (q, p) after one block.
    arch = Architecture(n=8, d=512, alpha_A=0.6, alpha_M=0.6, sigma_w=2.0, norm=norm, **BIASED)
    for rho0 in (0.3, 0.8):
        sim = simulate(arch, depth=1, q0=1.0, rho0=rho0, n_seeds=32, seed=4)
        q_th, p_th = layer_map(1.0, rho0, arch)
        for values, theory in ((sim.q, q_th), (sim.p, p_th)):
            mean, sem = sim.mean_sem(values[:, :, -1])
            assert_within_standard_errors(mean, float(theory), sem, f"{norm}, rho0 = {rho0}")
    # and the biases move the map (the test is not blind to them)
    assert abs(float(layer_map(1.0, 0.3, arch)[1]) - float(
        layer_map(1.0, 0.3, arch.replace(sigma_bV=0.0, sigma_b1=0.0, sigma_b2=0.0))[1])) > 0.05


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_angle_and_mode_rates_with_biases(norm):
    arch = Architecture(alpha_A=0.5, alpha_M=0.7, sigma_w=2.5, norm=norm, **BIASED)
    # closed form against the map's own rate, and the differential mode against both
    assert lambda_a(arch) == pytest.approx(lambda_a_from_map(arch), abs=1e-3)
    assert lambda_differential(arch) == pytest.approx(lambda_a(arch), abs=1e-10)
    q = collapsed_fixed_point(arch).q if norm == "pre" else 1.0
    gap = math.log1p(arch.alpha_A**2 * arch.sigma_V**2 / (arch.skip_A**2 * q))
    assert lambda_common(arch) - lambda_a(arch) == pytest.approx(gap, abs=1e-10)
    log_c, log_d = gradient_exponents(arch)
    assert float(log_c) == pytest.approx(lambda_common(arch), abs=1e-10)
    assert float(angle_exponent(arch)) == pytest.approx(lambda_a(arch))
