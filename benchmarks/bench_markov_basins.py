"""Speed of the reduced model's basin map (Part II, chapters 2-3) on a 400 x 400 grid.

Two comparisons, each printed side by side with its ratio:

1. The closed-form basin rule, ``tdyn.markov.reduced.basin`` (vectorized numpy over the grid),
   against ``tdyn.markov.reduced.basin_naive`` called in a Python loop over the 160 000 points.
2. The *simulated* basin map, every start's end point under gradient descent on the
   optimal-bias loss, vectorized over the whole grid (``tdyn.markov.reduced.gradient_descent``),
   against integrating each start on its own with scipy's adaptive LSODA
   (``tdyn.markov.reduced.integrate_flow``).  The per-point integrator is timed on a random sample
   of the grid and extrapolated to all 160 000 points (it would take tens of minutes).

Both pairs are checked to agree before timing.  Run:

    .venv/bin/python benchmarks/bench_markov_basins.py
"""

import time
import timeit

import numpy as np

from tdyn.markov import reduced

P, Q = 0.5, 0.8
N = 400


def grid(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    e, w = np.meshgrid(np.linspace(-3, 3, n), np.linspace(-3, 3, n))
    return e.ravel(), w.ravel()


def main(repeat: int = 3, n_sample: int = 200, steps: int = 2000, lr: float = 0.05) -> None:
    e, w = grid()
    # 1. the closed-form rule
    fast_rule = reduced.basin(e, w, P, Q)
    slow_rule = np.array([reduced.basin_naive(a, b, P, Q) for a, b in zip(e, w, strict=True)])
    assert np.array_equal(fast_rule, slow_rule)
    t_fast = min(timeit.repeat(lambda: reduced.basin(e, w, P, Q), number=1, repeat=repeat))
    t_slow = min(timeit.repeat(
        lambda: [reduced.basin_naive(a, b, P, Q) for a, b in zip(e, w, strict=True)],
        number=1, repeat=repeat))
    print(f"basin rule on a {N} x {N} grid, p = {P}, q = {Q} (best of {repeat}):")
    print(f"  baseline, Python loop over points : {t_slow * 1e3:10.1f} ms")
    print(f"  vectorized numpy                  : {t_fast * 1e3:10.1f} ms")
    print(f"  speed-up                          : {t_slow / t_fast:10.1f}x")

    # 2. the simulated map
    start = time.perf_counter()
    run = reduced.gradient_descent(e, w, P, Q, lr=lr, steps=steps, record_every=steps)
    t_vec = time.perf_counter() - start
    simulated = reduced.reaches_global(run.loss[-1], P, Q)
    rng = np.random.default_rng(0)
    pick = rng.choice(e.size, size=n_sample, replace=False)
    pick = pick[e[pick] != 0]
    start = time.perf_counter()
    ends = [reduced.integrate_flow(e[i], w[i], P, Q, t_max=lr * steps, n_points=2).loss[-1]
            for i in pick]
    t_ode = (time.perf_counter() - start) / pick.size * e.size
    agree = np.mean(reduced.reaches_global(np.array(ends), P, Q) == simulated[pick])
    print(f"simulated basin map ({steps} steps of size {lr}, i.e. flow time {lr * steps:g}):")
    print(f"  baseline, LSODA per point (extrapolated from {pick.size}) : {t_ode:10.1f} s")
    print(f"  gradient descent vectorized over the grid          : {t_vec:10.1f} s")
    print(f"  speed-up                                           : {t_ode / t_vec:10.1f}x")
    print(f"  the two agree on {100 * agree:.1f}% of the sampled starts; the simulated map "
          f"agrees with the rule on {100 * np.mean(simulated == fast_rule):.2f}% of the grid")


if __name__ == "__main__":
    main()
