"""Speed of the Gaussian kernel evaluations that phase diagrams call on whole grids.

Prints, side by side, the baseline (a Python loop over correlations, one quadrature each)
and the vectorized call over the same grid, and their ratio.  Run:

    .venv/bin/python benchmarks/bench_gaussian.py
"""

import timeit

import numpy as np

from tdyn.signalprop.gaussian import kernel_quadrature


def main(n_rho: int = 101, repeat: int = 3) -> None:
    rho = np.linspace(-1.0, 1.0, n_rho)
    loop = min(timeit.repeat(lambda: [kernel_quadrature("tanh", 1.0, r) for r in rho],
                             number=1, repeat=repeat))
    vectorized = min(timeit.repeat(lambda: kernel_quadrature("tanh", 1.0, rho),
                                   number=1, repeat=repeat))
    np.testing.assert_allclose([kernel_quadrature("tanh", 1.0, r) for r in rho],
                               kernel_quadrature("tanh", 1.0, rho), atol=1e-14)
    print(f"K(rho) for tanh on {n_rho} correlations (best of {repeat}):")
    print(f"  baseline, loop over rho : {loop * 1e3:8.1f} ms")
    print(f"  vectorized over rho     : {vectorized * 1e3:8.1f} ms")
    print(f"  speed-up                : {loop / vectorized:8.2f}x")


if __name__ == "__main__":
    main()
