"""Speed of Part I's theory and simulator.

1. A 200 x 200 phase diagram of lambda_a over (alpha = alpha_A = alpha_M, sigma_w) for tanh
   (kernels by quadrature): ``tdyn.signalprop.theory.phase_diagram`` (vectorized over the grid)
   against the naive loop that builds an ``Architecture`` per point and calls ``lambda_a``,
   side by side, with their agreement checked.  Target: the vectorized grid under 1 s on one
   CPU core.
2. The one-layer (q, p) map over the same grid from (q, p) = (1, 0.5):
   ``tdyn.signalprop.theory.layer_map_grid`` (vectorized) against ``layer_map`` called once per
   architecture (on every ``--loop-every``-th row, extrapolated), checked equal to 1e-12, for
   tanh (the MLP kernel by the sum-difference rule of ``gaussian.kernel_product_form``) and erf
   (closed form).  Target: well under 1 s for 200 x 200.  For tanh it also times, on the same
   rows, the 201 x 201-node tensor trapezoid rule per point that the map used before, and
   prints both rules' largest error against the 1601-node rule.
3. The finite-width simulator: layers x tokens x width processed per second on the CPU, for
   both weight samplers.

Run:  .venv/bin/python benchmarks/bench_signalprop.py [--grid 200] [--repeat 3] [--loop-every 10]
"""

import argparse
import os
import time
import timeit

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target is stated

import numpy as np
import torch

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.gaussian import kernel, kernel_quadrature
from tdyn.signalprop.simulate import simulate
from tdyn.signalprop.theory import (
    attention_map,
    grid_architecture,
    lambda_a,
    layer_map,
    layer_map_grid,
    phase_diagram,
)


def bench_phase_diagram(size: int, repeat: int) -> None:
    arch = Architecture()
    alpha = np.linspace(0.01, 0.99, size)
    sigma_w = np.linspace(1.0, 4.0, size)
    grid_args = (arch, ("alpha", alpha), ("sigma_w", sigma_w))
    vectorized = min(timeit.repeat(lambda: phase_diagram(*grid_args), number=1, repeat=repeat))
    start = time.perf_counter()
    loop = np.array([[lambda_a(arch.replace(alpha_A=a, alpha_M=a, sigma_w=s)) for a in alpha]
                     for s in sigma_w])
    naive = time.perf_counter() - start
    np.testing.assert_allclose(phase_diagram(*grid_args), loop, rtol=1e-12, atol=1e-14)
    print(f"lambda_a phase diagram, {size} x {size} = {size * size} points, tanh by quadrature:")
    print(f"  naive loop, one point at a time   : {naive:9.3f} s")
    print(f"  vectorized, best of {repeat:<2}            : {vectorized:9.3f} s"
          f"   (target < 1 s: {'met' if vectorized < 1 else 'NOT met'})")
    print(f"  speed-up                          : {naive / vectorized:9.1f}x")


def bench_layer_map(size: int, loop_every: int) -> None:
    alpha = np.linspace(0.01, 0.99, size)
    sigma_w = np.linspace(1.0, 4.0, size)
    print(f"one-layer (q, p) map from (1, 0.5), {size} x {size} architectures "
          f"(load {os.getloadavg()[0]:.2f}):")
    for phi in ("tanh", "erf"):
        arch = Architecture(phi=phi)
        start = time.perf_counter()
        q, p = layer_map_grid(arch, ("alpha", alpha), ("sigma_w", sigma_w), 1.0, 0.5)
        vectorized = time.perf_counter() - start
        rows = sigma_w[::loop_every]
        start = time.perf_counter()
        loop = np.array([[layer_map(1.0, 0.5, arch.replace(alpha_A=a, alpha_M=a, sigma_w=s))
                          for a in alpha] for s in rows])
        naive = (time.perf_counter() - start) * size / len(rows)
        np.testing.assert_allclose(np.stack([q, p], -1)[::loop_every], loop, rtol=0, atol=1e-12)
        print(f"  {phi:>4}: loop {naive:8.3f} s (extrapolated from {len(rows)} rows), "
              f"vectorized {vectorized:8.3f} s, speed-up {naive / vectorized:7.1f}x "
              f"(target < 1 s: {'met' if vectorized < 1 else 'NOT met'})")
        if phi == "tanh":
            bench_tanh_kernel_rules(rows, alpha, size)


def bench_tanh_kernel_rules(rows: np.ndarray, alpha: np.ndarray, size: int) -> None:
    """The MLP kernel on the map's (variance, correlation) pairs of ``rows``: the sum-difference
    rule against the 201 x 201-node tensor rule, timed, and both against the 1601-node rule."""
    arch = Architecture(phi="tanh")
    assert arch.norm == "pre" and arch.sigma_b1 == 0  # so Var = sigma_w^2, Corr = p / q
    grid, shape = grid_architecture(arch, ("alpha", alpha), ("sigma_w", rows))
    q_attn, p_attn = attention_map(1.0, 0.5, grid)
    var = np.broadcast_to(grid.sigma_w**2, shape).ravel()
    corr = np.broadcast_to(p_attn / q_attn, shape).ravel()
    pairs = list(zip(var, corr, strict=True))
    start = time.perf_counter()
    new = kernel("tanh", var, corr)
    t_new = time.perf_counter() - start
    start = time.perf_counter()
    old = np.array([kernel_quadrature("tanh", v, c, order=201) for v, c in pairs])
    t_old = time.perf_counter() - start
    every = max(1, len(pairs) // 200)
    ref = np.array([kernel_quadrature("tanh", v, c, order=1601) for v, c in pairs[::every]])
    print(f"        kernel on {len(rows)} rows x {len(alpha)}: sum-difference rule {t_new:.3f} s "
          f"(error {np.max(np.abs(new[::every] - ref)):.1e}), 201 x 201 tensor rule "
          f"{t_old:.3f} s (error {np.max(np.abs(old[::every] - ref)):.1e}): "
          f"{t_old / t_new:.0f}x; the full {size} x {size} grid with the tensor rule: "
          f"{t_old * size / len(rows):.0f} s extrapolated")


def bench_simulator(n: int, d: int, seeds: int, depth: int) -> None:
    torch.set_num_threads(1)
    arch = Architecture(n=n, d=d)
    print(f"simulator, n = {n} tokens, d = {d}, {seeds} seeds x {depth} layers, float64, CPU:")
    for sampler in ("projected", "weights"):
        simulate(arch, depth=1, n_seeds=seeds, sampler=sampler)  # warm-up
        start = time.perf_counter()
        simulate(arch, depth=depth, n_seeds=seeds, sampler=sampler)
        elapsed = time.perf_counter() - start
        rate = seeds * depth * n * d / elapsed
        print(f"  sampler {sampler:>9}: {elapsed:7.3f} s, {rate:12.3e} layer*token*width / s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=200, help="grid points per axis")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (best taken)")
    parser.add_argument("--loop-every", type=int, default=10,
                        help="time the per-architecture loop on every k-th row only")
    args = parser.parse_args()
    bench_phase_diagram(args.grid, args.repeat)
    bench_layer_map(args.grid, args.loop_every)
    bench_simulator(n=32, d=256, seeds=8, depth=10)
    bench_simulator(n=32, d=1024, seeds=4, depth=5)


if __name__ == "__main__":
    main()
