"""The finite-width torch simulator: initial simplex, determinism, batching, symmetry."""

import numpy as np
import pytest
import torch

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.simulate import (
    BatchScales,
    DenseWeights,
    ProjectedWeights,
    attention_update,
    forward,
    gram,
    initial_tokens,
    mlp_update,
    simplex_plane,
    simulate,
)

SMALL = Architecture(n=8, d=64, sigma_w=2.5, alpha_A=0.6, alpha_M=0.7)


@pytest.mark.parametrize(("q", "rho"), [(1.0, 0.0), (2.5, 0.3), (0.7, 1.0)])
def test_exact_initial_simplex_has_the_requested_gram_matrix(q, rho):
    g = torch.Generator().manual_seed(0)
    x = initial_tokens(8, 64, q, rho, g)
    expected = (q - rho * q) * np.eye(8) + rho * q * np.ones((8, 8))
    np.testing.assert_allclose(gram(x).numpy(), expected, atol=1e-12)


def test_invalid_simulation_inputs_raise():
    with pytest.raises(ValueError, match="rho0"):
        simulate(SMALL, depth=1, rho0=1.5)
    with pytest.raises(ValueError, match="d >= n"):
        simulate(SMALL.replace(d=4), depth=1)
    with pytest.raises(ValueError, match="share n"):
        simulate([SMALL, SMALL.replace(n=4)], depth=1)
    with pytest.raises(ValueError, match="sampler"):
        simulate(SMALL, depth=1, sampler="magic")


def test_same_seed_same_numbers_other_seed_other_numbers():
    a = simulate(SMALL, depth=3, n_seeds=2, seed=7)
    b = simulate(SMALL, depth=3, n_seeds=2, seed=7)
    c = simulate(SMALL, depth=3, n_seeds=2, seed=8)
    np.testing.assert_array_equal(a.gram, b.gram)
    assert not np.allclose(a.gram, c.gram)
    assert a.gram.shape == (1, 2, 7, 8, 8)


def test_a_point_does_not_depend_on_its_batch_companions():
    alone = simulate(SMALL, depth=2, n_seeds=3, seed=1)
    batch = simulate([SMALL.replace(sigma_w=0.5), SMALL], depth=2, n_seeds=3, seed=1)
    np.testing.assert_allclose(batch.gram[1], alone.gram[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_a_fixed_random_transformer_is_permutation_equivariant(norm):
    """Permuting the input tokens permutes the output Gram matrix the same way (no mask)."""
    arch = SMALL.replace(norm=norm)
    g = torch.Generator().manual_seed(3)
    x = initial_tokens(8, 64, 1.0, 0.4, g) + 0.1 * torch.randn(8, 64, generator=g,
                                                               dtype=torch.float64)
    perm = torch.randperm(8, generator=g)
    scales = BatchScales.of([arch], 1, torch.float64, "cpu")
    weights = [DenseWeights(64, 64, [g], torch.float64, "cpu") for _ in range(3)]

    def forward(tokens):
        y = tokens[None]
        for w in weights:
            y = mlp_update(attention_update(y, w, scales, norm), w, scales, "tanh", norm, 64)
        return gram(y)[0]

    out, out_perm = forward(x), forward(x[perm])
    np.testing.assert_allclose(out_perm.numpy(), out[perm][:, perm].numpy(), atol=1e-10)
    assert not np.allclose(out.numpy(), gram(x).numpy())  # the network did something


def test_post_ln_keeps_every_token_on_the_sphere():
    sim = simulate(SMALL.replace(norm="post"), depth=2, q0=3.0, n_seeds=2)
    np.testing.assert_allclose(np.diagonal(sim.gram[:, :, 1:], axis1=-2, axis2=-1), 1.0,
                               atol=1e-12)


def test_projected_and_dense_samplers_agree_in_distribution():
    """Both samplers draw the same law; their seed means of (q, p) after two layers must agree
    within 4 combined standard errors (the seeds are independent between the two runs)."""
    arch = Architecture(n=8, d=96, sigma_w=2.0)
    runs = [simulate(arch, depth=2, rho0=0.5, n_seeds=48, seed=s, sampler=m)
            for s, m in ((11, "projected"), (12, "weights"))]
    for stat in ("q", "p"):
        (m1, e1), (m2, e2) = (r.mean_sem(getattr(r, stat)[..., -1]) for r in runs)
        assert abs(m1[0] - m2[0]) <= 4 * np.hypot(e1[0], e2[0]), stat


def test_auto_device_runs():
    sim = simulate(SMALL, depth=1, n_seeds=1, device="auto")
    assert np.isfinite(sim.q).all()


def test_one_initial_norm_per_architecture():
    sim = simulate([SMALL, SMALL], depth=0, q0=[1.0, 4.0], rho0=0.3, n_seeds=2)
    np.testing.assert_allclose(sim.q[:, :, 0], [[1.0, 1.0], [4.0, 4.0]], rtol=1e-12)
    np.testing.assert_allclose(sim.rho[:, :, 0], 0.3, rtol=1e-12)
    with pytest.raises(ValueError, match="q0"):
        simulate([SMALL, SMALL], depth=0, q0=[1.0, -1.0])


def test_attention_leaves_a_width_independent_scatter_at_fixed_n():
    # particles.md: the logits are O(1) random at every width, so one attention layer's
    # within-network cosine spread (n = 8, sigma_A = 2) does not shrink from d = 64 to 1024,
    # while the MLP's does (like d^-1/2: a factor 4 over this range).
    def spread(arch):
        c = simulate(arch, depth=1, rho0=0.5, n_seeds=16, seed=1).gram[0, :, -1]
        norms = np.sqrt(np.einsum("sii->si", c))
        cos = (c / norms[:, :, None] / norms[:, None, :])[:, ~np.eye(arch.n, dtype=bool)]
        return cos.std(axis=1).mean()

    attn = Architecture(n=8, alpha_A=1.0, alpha_M=0.0, sigma_A=2.0)
    mlp = Architecture(n=8, alpha_A=0.0, alpha_M=0.7, sigma_w=2.5)
    a64, a1024 = spread(attn.replace(d=64)), spread(attn.replace(d=1024))
    m64, m1024 = spread(mlp.replace(d=64)), spread(mlp.replace(d=1024))
    assert a1024 > 0.7 * a64 and a1024 > 0.03
    assert m1024 < 0.4 * m64


def test_simplex_plane_shows_a_simplex_as_a_regular_polygon_and_a_line_as_a_point():
    n = 7
    for rho in (-0.1, 0.0, 0.4, 0.9):
        c = 3.0 * ((1 - rho) * np.eye(n) + rho * np.ones((n, n)))
        xy = simplex_plane(c)
        np.testing.assert_allclose(np.hypot(*xy.T), np.sqrt(2 * (1 - rho) / n), rtol=1e-12)
        angles = np.unwrap(np.arctan2(xy[:, 1], xy[:, 0]))
        np.testing.assert_allclose(np.diff(angles), 2 * np.pi / n, rtol=1e-12)
    np.testing.assert_allclose(simplex_plane(np.full((n, n), 2.0)), 0.0, atol=1e-12)


def test_simplex_plane_is_exact_for_tokens_in_the_plane_and_ignores_rotations():
    rng = np.random.default_rng(0)
    n, d = 6, 20
    x = rng.standard_normal((n, d))
    rotation = np.linalg.qr(rng.standard_normal((d, d)))[0]
    grams = np.stack([x @ x.T / d, (x @ rotation) @ (x @ rotation).T / d])
    a, b = simplex_plane(grams)
    np.testing.assert_allclose(a, b, atol=1e-12)
    # Direct projection of the unit tokens onto the orthonormalized plane.
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    angle = 2 * np.pi * np.arange(n) / n
    plane = np.stack([np.cos(angle), np.sin(angle)]) @ unit  # (2, d)
    values, vectors = np.linalg.eigh(plane @ plane.T)
    basis = vectors @ np.diag(values ** -0.5) @ vectors.T @ plane
    np.testing.assert_allclose(a, unit @ basis.T, atol=1e-12)


@pytest.mark.parametrize("kw", [{}, {"norm": "post"}, {"phi": "erf"},
                                {"sigma_b1": 0.3, "sigma_bV": 0.2, "sigma_b2": 0.1}])
@pytest.mark.parametrize("sampler", ["weights", "projected"])
def test_blocks_overwrite_intermediates_only_with_the_same_arithmetic(kw, sampler):
    """Outside autograd the blocks scale and add in place; tracked by autograd they do not.
    Both must give the same tokens bit for bit."""
    arch = Architecture(n=8, d=16, alpha_A=0.6, alpha_M=0.7, sigma_w=2.0, **kw)
    gens = [torch.Generator().manual_seed(k) for k in range(2)]
    weights_class = DenseWeights if sampler == "weights" else ProjectedWeights
    extra = () if sampler == "weights" else (arch.n,)
    layers = [weights_class(arch.d, arch.hidden, *extra, gens, torch.float64, "cpu",
                            biases=arch.has_biases) for _ in range(2)]
    scales = BatchScales.of([arch] * 2, 1, torch.float64, "cpu")
    x = torch.randn(2, arch.n, arch.d, dtype=torch.float64, generator=gens[0])
    untracked = forward(x, layers, scales, arch)
    tracked = forward(x.clone().requires_grad_(True), layers, scales, arch)
    assert tracked.requires_grad and not untracked.requires_grad
    assert torch.equal(untracked, tracked.detach())
