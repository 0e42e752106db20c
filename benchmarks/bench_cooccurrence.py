"""Speed of one gradient evaluation of the co-occurrence transformer at the paper's sizes.

Baseline: Eq. 1 written literally in torch (float64, CPU) and differentiated by autograd.
Ours: the closed-form gradients of Appendix B accumulated per word
(``tdyn.cooccurrence.model.gradients``, numpy).  Both give the same gradient (checked); the ratio
is the speed-up that makes the 30000-step runs of Part III fit on a CPU.  Run:

    .venv/bin/python benchmarks/bench_cooccurrence.py

(On a loaded machine set OMP_NUM_THREADS=1: the matrices are small and BLAS threads contend.)
"""

import timeit

import numpy as np
import torch

from tdyn.cooccurrence.data import sample_training_set
from tdyn.cooccurrence.model import Params, condition1_sigmas, gradients, init_params


def autograd_gradients(params: Params, data) -> dict:
    """Gradient of the mean logistic loss of Eq. 1 by torch autograd."""
    leaves = {k: torch.tensor(getattr(params, k), requires_grad=True) for k in Params.TRAINABLE}
    a, X = torch.tensor(params.a), torch.tensor(data.X)
    scores = X.transpose(1, 2) @ leaves["WQ"].T @ leaves["WK"] @ X / params.m ** 0.5
    p = torch.softmax(scores, dim=2)  # p[i, l, h]: query l, key h
    F = torch.einsum("j,jm,imh,ilh->i", a, leaves["W"], leaves["WV"] @ X, p)
    y = torch.tensor(data.y, dtype=torch.float64)
    torch.nn.functional.softplus(-y * F).mean().backward()
    return {k: v.grad.numpy() for k, v in leaves.items()}


def main(repeat: int = 5) -> None:
    n, L, d, m, m1 = 60, 5, 64, 128, 256
    data = sample_training_set(n, L, d, seed=0, random_tokens="iid")
    s0, s1 = condition1_sigmas(L, m, m1, 0.05)
    params = init_params(d, m, m1, seed=0, sigma0=s0, sigma1=s1)
    ours, auto = gradients(params, data), autograd_gradients(params, data)
    for k in Params.TRAINABLE:
        np.testing.assert_allclose(ours[k], auto[k], rtol=1e-8, atol=1e-14)
    base = min(timeit.repeat(lambda: autograd_gradients(params, data), number=5, repeat=repeat))
    fast = min(timeit.repeat(lambda: gradients(params, data), number=5, repeat=repeat))
    print(f"gradient of L(W, W_V, W_K, W_Q) at n={n}, L={L}, d={d}, m={m}, m1={m1} "
          f"(best of {repeat} x 5):")
    print(f"  baseline, torch autograd of Eq. 1 : {base / 5 * 1e3:8.2f} ms")
    print(f"  closed form per word (numpy)      : {fast / 5 * 1e3:8.2f} ms")
    print(f"  speed-up                          : {base / fast:8.2f}x")


if __name__ == "__main__":
    main()
