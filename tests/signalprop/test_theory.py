"""The (q, p) map, its fixed points and lambda_a: properties, and theory against simulation.

Theory-vs-simulation tolerances: each comparison uses S independent seeds of a finite-width
simulation; the seed-to-seed standard deviation s gives the standard error s / sqrt(S) of the
seed mean, and the test allows 4 standard errors (two-sided false-alarm probability 6e-5 per
comparison, under 0.5% over the ~60 comparisons of this file).  Finite-width corrections are
O(1/d) and, at the widths used, well below one standard error (checked at d = 128...1024).
"""

import numpy as np
import pytest

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.gradients import gradient_exponents, lambda_common, lambda_differential
from tdyn.signalprop.measure import measured_angle_exponent
from tdyn.signalprop.simulate import simulate
from tdyn.signalprop.theory import (
    angle_exponent,
    attention_map,
    collapsed_fixed_point,
    giorlandino_goldt_architecture,
    lambda_a,
    lambda_a_from_map,
    layer_map,
    layer_map_grid,
    phase,
    phase_diagram,
    simplex_fixed_point,
    softmax_overlaps,
    trajectory,
)
from tests.helpers import assert_within_standard_errors

Z = 4.0  # standard errors allowed in theory-vs-simulation comparisons (see module docstring)
BASE = Architecture(n=16, d=256, alpha_A=0.5, alpha_M=0.5, sigma_A=1.0)
ORDERED, CHAOTIC = 1.5, 3.0  # sigma_w of an ordered and a chaotic point at alpha = 0.5
FORMS = [(r, nm) for r in ("interp", "plain") for nm in ("pre", "post")]


def within(sim_values, theory, what):
    """Assert the seed mean of sim_values (P, S) is within Z standard errors of theory (P,)."""
    s = sim_values.shape[1]
    mean = sim_values.mean(axis=1)
    sem = sim_values.std(axis=1, ddof=1) / np.sqrt(s)
    assert_within_standard_errors(mean, theory, sem, what, z_max=Z)


# ---------------------------------------------------------------- softmax overlaps


def test_overlaps_at_collapse_are_uniform_attention():
    for mode in ("annealed", "large_n", "sampled"):
        s2, s11 = softmax_overlaps(16, 1.0, 2.0, mode)
        assert s2 == pytest.approx(1 / 16) and s11 == pytest.approx(1 / 16)


def test_annealed_overlaps_tend_to_the_large_n_form():
    rho = np.linspace(0, 1, 11)
    a = np.array(softmax_overlaps(10**6, rho, 1.5, "annealed"))
    b = np.array(softmax_overlaps(10**6, rho, 1.5, "large_n"))
    np.testing.assert_allclose(a, b, rtol=1e-4)


def test_annealed_average_holds_near_collapse_and_fails_at_large_logits():
    """Near collapse (sigma_A^2 (1 - rho) << log n) the annealed S2 matches the exact average;
    at large sigma_A and rho = 0 it overshoots it (the regime the annealed average misses)."""
    n, samples = 64, 40000
    exact_near = softmax_overlaps(n, 0.95, 1.0, "sampled", n_samples=samples)[0]
    assert softmax_overlaps(n, 0.95, 1.0)[0] == pytest.approx(exact_near, rel=0.01)
    exact_far = softmax_overlaps(n, 0.0, 2.5, "sampled", n_samples=samples)[0]
    assert softmax_overlaps(n, 0.0, 2.5)[0] > 1.5 * exact_far


def test_unknown_softmax_mode_and_bad_inputs_raise():
    with pytest.raises(ValueError, match="mode"):
        softmax_overlaps(8, 0.5, 1.0, "quenched")
    with pytest.raises(ValueError, match="rho"):
        softmax_overlaps(8, -0.1, 1.0, "sampled")
    with pytest.raises(ValueError, match="n="):
        softmax_overlaps(1, 0.5, 1.0)


# ---------------------------------------------------------------- map properties


@pytest.mark.parametrize(("residual", "norm"), FORMS)
@pytest.mark.parametrize("softmax", ["annealed", "sampled"])
def test_attention_only_map_never_decreases_rho(residual, norm, softmax):
    rng = np.random.default_rng(0)
    for _ in range(25):
        arch = BASE.replace(residual=residual, norm=norm, n=int(rng.integers(2, 64)),
                            alpha_A=float(rng.uniform(0, 1)), sigma_A=float(rng.uniform(0.1, 4)),
                            sigma_V=float(rng.uniform(0.2, 3)))
        q = rng.uniform(0.2, 5, size=8)
        rho = rng.uniform(0, 1, size=8)
        q1, p1 = attention_map(q, rho * q, arch, softmax, n_samples=2000)
        assert np.all(p1 / q1 >= rho - 1e-12)


@pytest.mark.parametrize("phi", ["tanh", "erf", "relu"])
@pytest.mark.parametrize(("residual", "norm"), FORMS)
def test_closed_form_lambda_a_matches_the_map(phi, residual, norm):
    """The closed form against the one-layer rate measured on the map from rho = 1 - 1e-5; the
    difference is O(1e-5) (nonlinear and finite-n attention terms)."""
    rng = np.random.default_rng(1)
    for _ in range(6):
        arch = BASE.replace(phi=phi, residual=residual, norm=norm,
                            alpha_A=float(rng.uniform(0.05, 0.95)),
                            alpha_M=float(rng.uniform(0.05, 0.95)),
                            sigma_w=float(rng.uniform(0.5, 4)), sigma_A=float(rng.uniform(0.5, 3)))
        assert lambda_a(arch) == pytest.approx(lambda_a_from_map(arch), abs=1e-3)


def test_collapsed_fixed_point_is_fixed():
    for arch in (BASE, BASE.replace(sigma_w=CHAOTIC), BASE.replace(norm="post"),
                 BASE.replace(residual="plain", norm="post")):
        fixed = collapsed_fixed_point(arch)
        q1, p1 = layer_map(fixed.q, fixed.q, arch)
        assert q1 == pytest.approx(fixed.q, rel=1e-12) and p1 == pytest.approx(q1, rel=1e-12)
        qa, _ = attention_map(fixed.q, fixed.q, arch)
        assert qa == pytest.approx(fixed.q_attn, rel=1e-12)
    assert np.isnan(collapsed_fixed_point(BASE.replace(residual="plain")).q)


def test_lambda_a_does_not_depend_on_sigma_A_or_n():
    values = {lambda_a(BASE.replace(sigma_A=s, n=n)) for s in (0.3, 1.0, 3.0) for n in (2, 64)}
    assert max(values) - min(values) < 1e-14


def test_phase_diagram_is_the_pointwise_closed_form():
    x, y = np.linspace(0.05, 0.95, 7), np.linspace(0.5, 4.0, 5)
    grid = phase_diagram(BASE, ("alpha", x), ("sigma_w", y))
    loop = [[lambda_a(BASE.replace(alpha_A=a, alpha_M=a, sigma_w=s)) for a in x] for s in y]
    np.testing.assert_allclose(grid, loop, rtol=1e-12)
    grid2 = phase_diagram(BASE.replace(norm="post"), ("alpha_A", x), ("alpha_M", x[:3]))
    assert grid2.shape == (3, 7)
    assert grid2[1, 2] == pytest.approx(lambda_a(BASE.replace(norm="post", alpha_A=x[2],
                                                              alpha_M=x[1])))
    with pytest.raises(ValueError, match="alpha"):
        phase_diagram(BASE, ("alpha", [0.5, 1.5]), ("sigma_w", y))
    with pytest.raises(ValueError, match="grid parameter"):
        phase_diagram(BASE, ("d", x), ("sigma_w", y))
    flat = phase_diagram(BASE, ("sigma_A", x + 0.1), ("n", [2, 16, 64]))
    np.testing.assert_allclose(flat, lambda_a(BASE), rtol=1e-14)
    with pytest.raises(ValueError, match="n values"):
        phase_diagram(BASE, ("sigma_A", x), ("n", [1.5]))


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_one_architecture_of_arrays_is_the_loop_over_its_entries(norm):
    """angle_exponent, gradient_exponents and phase_diagram on an Architecture whose fields are
    broadcast arrays (with biases and an untied readout) against the scalar functions."""
    alpha = np.array([0.2, 0.6, 0.9])
    sigma_w = np.array([[0.8], [2.5]])
    grid = BASE.replace(alpha_A=alpha, alpha_M=alpha[::-1], sigma_w=sigma_w, norm=norm,
                        sigma_2=np.array([1.5, 1.0, 3.0]), sigma_bV=0.3, sigma_b1=0.4,
                        sigma_b2=0.2)
    lam_a = angle_exponent(grid)
    log_c, log_d = gradient_exponents(grid)
    assert lam_a.shape == log_c.shape == grid.shape == (2, 3)
    for i, j in np.ndindex(grid.shape):
        arch = grid.replace(alpha_A=float(alpha[j]), alpha_M=float(alpha[::-1][j]),
                            sigma_w=float(sigma_w[i, 0]), sigma_2=float(grid.sigma_2[j]))
        assert lam_a[i, j] == pytest.approx(lambda_a(arch), abs=1e-12)
        assert log_c[i, j] == pytest.approx(lambda_common(arch), abs=1e-12)
        assert log_d[i, j] == pytest.approx(lambda_differential(arch), abs=1e-12)
    biased = grid.replace(alpha_A=0.5, alpha_M=0.5, sigma_w=2.0, sigma_2=None)
    diagram = phase_diagram(biased, ("alpha", alpha), ("sigma_w", sigma_w[:, 0]))
    loop = [[lambda_a(biased.replace(alpha_A=a, alpha_M=a, sigma_w=s)) for a in alpha]
            for s in sigma_w[:, 0]]
    np.testing.assert_allclose(diagram, loop, rtol=1e-12)


GRID_CASES = [
    (BASE, ("alpha", np.linspace(0.05, 0.95, 5)), ("sigma_w", np.linspace(0.5, 4.0, 4)), {}),
    (BASE.replace(phi="erf", norm="post", residual="plain", sigma_b1=0.3, sigma_b2=0.2),
     ("sigma_A", [0.5, 2.0, 4.0]), ("sigma_V", [0.3, 1.0]), {}),
    (BASE.replace(phi="relu", sigma_2=1.5), ("alpha_A", [0.1, 0.6, 0.9]),
     ("sigma_2", [0.7, 2.5]), {}),
    (giorlandino_goldt_architecture(1.0, 1.0, 1.0, 0.01), ("sigma_A", [0.5, 3.0, 6.0]),
     ("alpha_M", [0.5, 1.0]), {"softmax": "entropy_collapse"}),
]


@pytest.mark.parametrize("case", range(len(GRID_CASES)))
def test_layer_map_grid_is_the_loop_over_architectures(case):
    arch, x, y, kw = GRID_CASES[case]
    q, p = layer_map_grid(arch, x, y, q=1.3, p=0.6, **kw)
    assert q.shape == p.shape == (len(y[1]), len(x[1]))
    for iy, vy in enumerate(y[1]):
        for ix, vx in enumerate(x[1]):
            changes = {}
            for name, value in ((x[0], vx), (y[0], vy)):
                changes.update({"alpha_A": value, "alpha_M": value} if name == "alpha"
                               else {name: float(value)})
            loop = layer_map(1.3, 0.6, arch.replace(**changes), **kw)
            np.testing.assert_allclose([q[iy, ix], p[iy, ix]], [float(v) for v in loop],
                                       rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="sweep n"):
        layer_map_grid(arch, ("n", [4, 8]), y)


def test_phase_labels():
    assert phase(-0.1) == "ordered" and phase(0.2) == "chaotic" and phase(0.0) == "critical"
    assert list(phase(np.array([-1.0, 1.0]))) == ["ordered", "chaotic"]
    lam = angle_exponent(Architecture(alpha_A=0.5, alpha_M=0.5,
                                      sigma_w=np.array([ORDERED, CHAOTIC])))
    assert list(phase(lam)) == ["ordered", "chaotic"]


def test_chaotic_phase_has_a_regular_simplex_fixed_point():
    """p* is O(1/n): attention gives p_A = sigma_V^2 S11 ~ 1/n and K(0) = 0 for odd phi."""
    arch = BASE.replace(sigma_w=CHAOTIC)
    q, p, converged = simplex_fixed_point(arch)
    assert converged and 0 < p / q < 4 / arch.n
    q_o, p_o, converged_o = simplex_fixed_point(BASE.replace(sigma_w=ORDERED))
    assert converged_o and p_o / q_o > 0.999  # the ordered phase flows to the collapsed line
    with pytest.raises(ValueError, match="plain"):
        simplex_fixed_point(BASE.replace(residual="plain"))


# ---------------------------------------------------------------- theory against simulation


@pytest.mark.parametrize(("residual", "norm"), FORMS)
def test_one_layer_map_matches_simulation_in_both_phases(residual, norm):
    """One layer from (q0, rho0) = (1, 0.5), 32 seeds, n = 16, d = 256: (q, p) after the
    attention sub-block and after the full layer, at an ordered and a chaotic point."""
    archs = [BASE.replace(sigma_w=s, residual=residual, norm=norm) for s in (ORDERED, CHAOTIC)]
    sim = simulate(archs, depth=1, q0=1.0, rho0=0.5, n_seeds=32, seed=1)
    theory = np.array([trajectory(a, 1, 1.0, 0.5) for a in archs])  # (P, 2, T)
    for t in (1, 2):
        within(sim.p[:, :, t], theory[:, 1, t], f"p at half-step {t}")
        if norm == "pre":  # post-LN fixes q = 1 exactly
            within(sim.q[:, :, t], theory[:, 0, t], f"q at half-step {t}")


@pytest.mark.parametrize(("residual", "norm"), FORMS)
def test_lambda_a_matches_simulation_in_both_phases(residual, norm):
    """Per seed, lambda_a is estimated as log[(1 - rho_1) / (1 - rho_0)] over one layer from
    rho_0 = 0.999 at the collapsed fixed point q* (at q = 1 for plain pre-LN); 32 seeds."""
    archs = [BASE.replace(sigma_w=s, residual=residual, norm=norm) for s in (ORDERED, CHAOTIC)]
    mean, sem = measured_angle_exponent(archs, layers=1, gap=1e-3, n_seeds=32, seed=2)
    assert_within_standard_errors(mean, [lambda_a(a) for a in archs], sem, "lambda_a", z_max=Z)


@pytest.mark.parametrize(("residual", "norm"), FORMS)
def test_sign_of_lambda_a_predicts_collapse_or_repulsion(residual, norm):
    """Over 6 layers from rho_0 = 0.99, 1 - rho shrinks in every seed where lambda_a < 0 and
    grows where lambda_a > 0 (points with |lambda_a| > 0.1, 8 seeds)."""
    points = [BASE.replace(sigma_w=s, alpha_A=a, alpha_M=a, residual=residual, norm=norm)
              for s in (1.0, 1.5, 3.0, 4.0) for a in (0.3, 0.7)]
    points = [p for p in points if abs(lambda_a(p)) > 0.1]
    assert any(lambda_a(p) < 0 for p in points) and any(lambda_a(p) > 0 for p in points)
    for arch in points:
        fixed = collapsed_fixed_point(arch).q
        sim = simulate(arch, depth=6, q0=1.0 if np.isnan(fixed) else fixed, rho0=0.99,
                       n_seeds=8, seed=3)
        growth = (1.0 - sim.rho[0, :, -1]) / 0.01
        assert np.all(growth < 1) if lambda_a(arch) < 0 else np.all(growth > 1), arch


def test_sampled_softmax_repairs_the_annealed_map_at_large_logits():
    """Attention only (alpha_A = 1), sigma_A = 3, rho0 = 0.3, n = 16: the exact softmax average
    agrees with simulation within Z standard errors, the annealed average does not."""
    arch = BASE.replace(alpha_A=1.0, alpha_M=0.0, sigma_A=3.0)
    sim = simulate(arch, depth=1, q0=1.0, rho0=0.3, n_seeds=32, seed=4)
    p_sampled = attention_map(1.0, 0.3, arch, "sampled")[1]
    p_annealed = attention_map(1.0, 0.3, arch, "annealed")[1]
    within(sim.p[:, :, 1], np.array([p_sampled]), "p, sampled softmax")
    sem = sim.p[0, :, 1].std(ddof=1) / np.sqrt(32)
    assert abs(sim.p[0, :, 1].mean() - p_annealed) > Z * sem


def test_edge_of_chaos_is_the_root_of_lambda_a():
    from tdyn.signalprop.theory import edge_of_chaos

    for residual, norm in (("interp", "pre"), ("interp", "post"), ("plain", "post")):
        arch = BASE.replace(alpha_A=0.5, alpha_M=0.5, residual=residual, norm=norm)
        edge = edge_of_chaos(arch)
        assert abs(lambda_a(arch.replace(sigma_w=edge))) < 1e-10
        assert lambda_a(arch.replace(sigma_w=0.9 * edge)) < 0 < lambda_a(
            arch.replace(sigma_w=1.1 * edge))
    with pytest.raises(ValueError, match="does not change sign"):
        edge_of_chaos(BASE, lo=0.3, hi=0.4)
    with pytest.raises(ValueError, match="0 < lo < hi"):
        edge_of_chaos(BASE, lo=2.0, hi=1.0)


def test_n_rho_star_of_the_simplex_settles_only_at_large_n():
    # mlp_phases.md, exercise part1-ex-simplex-n: n rho* = 1.56 (n = 8) ... 5.00 (n = 4096)
    from tdyn.signalprop.theory import scaled_simplex_overlap, simplex_fixed_point

    chaotic = Architecture(n=16, d=256, alpha_A=0.5, alpha_M=0.5, sigma_w=3.0)
    expected = {8: 1.56, 16: 2.12, 64: 3.39, 256: 4.40, 1024: 4.86, 4096: 5.00}
    for n, value in expected.items():
        q, p, converged = simplex_fixed_point(chaotic.replace(n=n))
        assert converged
        assert n * p / q == pytest.approx(value, abs=0.006)
    assert scaled_simplex_overlap(chaotic, (8, 256)) == pytest.approx([1.56, 4.40], abs=0.006)
