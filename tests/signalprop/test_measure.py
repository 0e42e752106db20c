"""The fast measured angle exponent (float32, shared weights, chunks) against the float64
Gram-matrix estimator of the simulator, at every (n, d).

Tolerances.  The fast path draws its networks in float64 from the same seeded generators, in
the same order, as :func:`tdyn.signalprop.simulate.simulate`, so against the float64 simulator
only float32 rounding separates the two: each point's seed mean must agree within 0.05 of its
standard error (rounding of 1 - rho ~ 1e-3 in float32 moves lambda_a by ~1e-5, the standard
errors here are ~1e-2).  Across samplers the networks are independent draws: the two seed
means must agree within 4 combined standard errors (two-sided false alarm 6e-5 per point).
"""

import numpy as np
import pytest
import torch

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.measure import (
    choose_chunk,
    choose_sampler,
    collapsed_line_norms,
    measure_jacobian,
    measured_angle_exponent,
)
from tdyn.signalprop.simulate import Simulation, simplex_init, simulate
from tdyn.signalprop.theory import collapsed_fixed_point
from tests.helpers import assert_within_standard_errors

GAP = 1e-3


def points(n: int, d: int, norm: str) -> list[Architecture]:
    return [Architecture(n=n, d=d, alpha_A=a, alpha_M=a, sigma_w=s, norm=norm)
            for a, s in ((0.3, 1.5), (0.7, 3.0), (0.5, 2.0))]


def gram_estimator(archs, sampler: str, n_seeds: int, seed: int):
    """Per seed log[(1 - rho_1) / (1 - rho_0)] from the float64 simulator's Gram matrices."""
    q0 = [1.0 if np.isnan(collapsed_fixed_point(a).q) else collapsed_fixed_point(a).q
          for a in archs]
    sim = simulate(archs, depth=1, q0=q0, rho0=1.0 - GAP, n_seeds=n_seeds, seed=seed,
                   init=simplex_init(archs[0].n, archs[0].d), sampler=sampler)
    return np.log((1.0 - sim.rho[:, :, 2]) / (1.0 - sim.rho[:, :, 0]))


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize(("n", "d"), [(8, 64), (64, 16)])
def test_float32_fast_path_matches_the_float64_simulator(n, d, norm):
    archs = points(n, d, norm)
    sampler = choose_sampler(n, d)
    assert sampler == ("projected" if d >= 4 * n else "weights")
    reference = gram_estimator(archs, sampler, n_seeds=12, seed=4)
    ref_mean, ref_sem = Simulation.mean_sem(reference)
    for dtype in (torch.float32, torch.float64):
        for chunk in (1, None):
            mean, sem = measured_angle_exponent(archs, gap=GAP, n_seeds=12, seed=4, dtype=dtype,
                                                chunk=chunk)
            assert np.all(np.abs(mean - ref_mean) <= 0.05 * ref_sem), (dtype, chunk)
            np.testing.assert_allclose(sem, ref_sem, rtol=0.05)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_both_samplers_measure_the_same_exponent(norm):
    archs = points(16, 128, norm)
    a, a_sem = measured_angle_exponent(archs, gap=GAP, n_seeds=24, seed=1, sampler="projected")
    b, b_sem = measured_angle_exponent(archs, gap=GAP, n_seeds=24, seed=1, sampler="weights")
    assert_within_standard_errors(a - b, np.zeros(len(archs)), np.hypot(a_sem, b_sem),
                                  "projected - weights", z_max=4.0)


@pytest.mark.parametrize("residual", ["interp", "plain"])
def test_more_tokens_than_width_is_measured(residual):
    """n >= d: Gaussian start tokens (rho_0 measured), dense weights; plain pre-LN at q = 1."""
    archs = [Architecture(n=128, d=32, sigma_w=s, residual=residual) for s in (1.0, 3.0)]
    mean, sem = measured_angle_exponent(archs, gap=GAP, n_seeds=6, seed=2)
    assert np.all(np.isfinite(mean)) and np.all(sem > 0)
    jac = measure_jacobian(archs[:1], 1, n_seeds=2, method="probe", n_probes=2, rho0=0.99)
    assert np.all(np.isfinite(jac.common))


def test_vectorized_fixed_point_norms_and_choices():
    archs = [Architecture(alpha_A=a, alpha_M=m, sigma_w=s, sigma_bV=b, residual=r)
             for a, m, s, b, r in ((0.5, 0.5, 2.0, 0.0, "interp"), (0.0, 0.0, 1.0, 0.0, "interp"),
                                   (0.9, 0.2, 3.0, 0.3, "interp"))]
    expected = [1.0 if np.isnan(collapsed_fixed_point(a).q) else collapsed_fixed_point(a).q
                for a in archs]
    np.testing.assert_allclose(collapsed_line_norms(archs), expected, rtol=1e-13)
    assert collapsed_line_norms([archs[0].replace(residual="plain")])[0] == 1.0
    assert choose_chunk(256, 64, 64, 1) * 256 * 64 <= 2**19
    assert choose_chunk(4096, 512, 512, 64) == 1
    with pytest.raises(ValueError, match="sampler"):
        measured_angle_exponent(archs[0], sampler="magic")
    with pytest.raises(ValueError, match="chunk"):
        measured_angle_exponent(archs[0], chunk=0)
