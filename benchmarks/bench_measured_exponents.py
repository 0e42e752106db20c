"""Speed of the measured angle exponent lambda_a (finite-width simulation, one layer from
rho_0 = 0.999) per grid point, at n = 256 tokens of width d = 64, one network per point, on
one CPU core.

Side by side in this process, interleaved (A B A B ...), on the same grid of (alpha, sigma_w):

* before: the simulation ``measured_angle_exponent`` ran until issue 21, float64 with the
  projected sampler (``tdyn.signalprop.simulate.simulate``, Gaussian start tokens because the
  exact simplex needs d > n);
* now: ``tdyn.signalprop.measure.measured_angle_exponent`` with its defaults (float32, the
  sampler and chunk it chooses for the sizes).

Prints ms per grid point (min and median over the pairs), their ratio pair by pair, and the
target: at most 1.3 / 3 = 0.43 ms per point (a third-party script takes 1.3-1.6 ms).  On a
loaded machine the ratio is steadier than the absolute numbers; ``uptime``'s load is printed.

Run:  .venv/bin/python benchmarks/bench_measured_exponents.py [--points 400] [--pairs 5]
"""

import argparse
import os
import time

import numpy as np
import torch

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.measure import choose_chunk, choose_sampler, measured_angle_exponent
from tdyn.signalprop.simulate import simulate

N, D, GAP = 256, 64, 1e-3
ANCHOR_MS = 1.3


def grid(points: int) -> list[Architecture]:
    side = int(np.ceil(np.sqrt(points)))
    alpha, sigma_w = np.linspace(0.05, 0.95, side), np.linspace(0.5, 4.0, side)
    return [Architecture(n=N, d=D, alpha_A=a, alpha_M=a, sigma_w=s)
            for s in sigma_w for a in alpha][:points]


def before(archs) -> None:
    simulate(archs, depth=1, q0=1.0, rho0=1.0 - GAP, n_seeds=1, init="gaussian",
             sampler="projected", dtype=torch.float64)


def now(archs) -> None:
    measured_angle_exponent(archs, layers=1, gap=GAP, n_seeds=1)


def timed(f, archs) -> float:
    start = time.perf_counter()
    f(archs)
    return (time.perf_counter() - start) * 1e3 / len(archs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=400, help="grid points per run")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved before/now pairs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    archs = grid(args.points)
    now(archs[:20])  # warm-up
    before(archs[:20])
    pairs = [(timed(before, archs), timed(now, archs)) for _ in range(args.pairs)]
    b, a = np.array(pairs).T
    print(f"measured lambda_a, n = {N}, d = {D}, {args.points} grid points, one network each, "
          f"one thread; load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"  now: sampler {choose_sampler(N, D)!r}, float32, chunk "
          f"{choose_chunk(N, D, D, 1)}")
    print(f"  before (float64, projected) : min {b.min():7.3f}  median {np.median(b):7.3f} "
          "ms/point")
    print(f"  now                         : min {a.min():7.3f}  median {np.median(a):7.3f} "
          "ms/point")
    ratio = b / a
    print(f"  speed-up, pair by pair      : min {ratio.min():6.2f}x  median "
          f"{np.median(ratio):6.2f}x")
    target = ANCHOR_MS / 3
    print(f"  target <= {target:.2f} ms/point (3x under the {ANCHOR_MS} ms anchor): "
          f"{'met' if a.min() <= target else 'NOT met'} (min), "
          f"{'met' if np.median(a) <= target else 'NOT met'} (median); "
          f"200 x 200 points in about {np.median(a) * 40:.0f} s")


if __name__ == "__main__":
    main()
