"""Training throughput of Part II's single-layer transformer on CPU, at the paper's T = 1024.

Tokens per second of a full training step (sample a fresh batch, forward, backward, AdamW
step) at the official sizes (d = 8, batch 16, sequence length 1024), for

* the baseline: the same model with attention written out (T x T scores, causal mask,
  softmax, weighted sum) and sequences sampled by a loop over positions, one
  ``torch.multinomial`` draw per position as in the official code;
* ours: ``tdyn.markov.transformer.MarkovTransformer`` (fused ``scaled_dot_product_attention``)
  fed by ``tdyn.markov.chain.sample`` (run-length sampling with no loop over positions).

The two models compute the same logits (checked).  It also prints the sampling step alone, and
the attention alone (forward and backward at head size d) through torch's fused kernel against
causal attention written as blocked products that skip the upper triangle, to show where a
step's time goes.

With ``--official-src DIR`` (the official sources, ``Markov-Simple/src`` of a clone of
github.com/Bond1995/Markov; see data/markov/official_harness) it also times the official
code's training step (their ``get_batch``, ``GPTBase`` built by their argument parser with
``--n_embd 8 --sequence_length 1024 --batch_size 16 --no_compile``, AdamW as their main.py
builds it) side by side with ours on one thread, and prints the most any model that calls
torch's fused attention kernel can gain on it: the official step over the attention alone.
Run (on a loaded machine the ratios are more stable than the absolute numbers):

    .venv/bin/python benchmarks/bench_markov_training.py [--official-src DIR]
"""

import argparse
import contextlib
import importlib
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from tdyn.markov import chain
from tdyn.markov.transformer import MarkovTransformer, build_model

P, Q = 0.5, 0.8
D, T, B = 8, 1024, 16


class NaiveAttentionTransformer(MarkovTransformer):
    """The same model with attention written out instead of the fused kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        h = x.to(self.embedding.dtype).unsqueeze(-1) * self.embedding + self.positions[:t]
        q, k, v = self.qkv(h).split(self.d, dim=-1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d)
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
        y = h + self.attn_out(torch.softmax(scores, dim=-1) @ v)
        z = y + self.fc2(F.relu(self.fc1(y)))
        return z @ self.embedding + self.bias


def sample_loop_torch(batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """One categorical draw per position from the row of the transition matrix."""
    kernel = torch.tensor([[1 - P, P], [Q, 1 - Q]])
    data = torch.zeros(batch, length, dtype=torch.long)
    data[:, 0] = torch.bernoulli(torch.full((batch,), P / (P + Q)), generator=generator).long()
    for n in range(1, length):
        data[:, n] = torch.multinomial(kernel[data[:, n - 1]], 1, generator=generator).squeeze(1)
    return data


def blocked_causal_attention(q, k, v, block: int = 128) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + causal mask) v, one block of queries at a time against the keys
    up to the block's end (the scores above the diagonal blocks are never formed)."""
    t, d = q.shape[-2], q.shape[-1]
    above = ~torch.ones(block, block, dtype=torch.bool).tril()
    out = []
    for start in range(0, t, block):
        end = min(start + block, t)
        scores = q[:, start:end] @ k[:, :end].transpose(1, 2) / math.sqrt(d)
        scores[:, :, start:end] = scores[:, :, start:end].masked_fill(
            above[:end - start, :end - start], float("-inf"))
        out.append(torch.softmax(scores, dim=-1) @ v[:, :end])
    return torch.cat(out, dim=1)


def fused_causal_attention(q, k, v) -> torch.Tensor:
    """torch's scaled_dot_product_attention with the causal mask (the model's path)."""
    return F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1),
                                          is_causal=True).squeeze(1)


def best_cpu_seconds(work, repeats: int = 4) -> float:
    """The least CPU time of ``repeats`` calls of ``work`` (steadier than wall time when other
    processes share the cores)."""
    best = math.inf
    for _ in range(repeats):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def attention_seconds(attend) -> float:
    """CPU seconds of one forward and backward of ``attend`` at (B, T, D)."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, T, D, generator=gen, requires_grad=True) for _ in range(3))
    return best_cpu_seconds(lambda: attend(q, k, v).sum().backward())


def training_step(model, draw):
    """A zero-argument training step of ``model``: a fresh batch from ``draw()``, forward,
    backward, AdamW step."""
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95))

    def step():
        loss = model.loss(draw())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def throughput(model, draw, steps: int) -> float:
    """Tokens per second (wall time) of ``steps`` training steps after one warm-up step."""
    step = training_step(model, draw)
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * B * T / (time.perf_counter() - start)


STUBS = Path(__file__).resolve().parents[1] / "data/markov/official_harness/stubs"


def official_step(src: Path):
    """A zero-argument training step of the official code (one thread, float32 on the CPU, as
    their train_base runs it there): their batch sampler, model and optimizer."""
    sys.path[:0] = [str(src), str(STUBS)]
    sys.argv = ["main.py", "--device", "cpu", "--no_compile", "--n_embd", "8",
                "--sequence_length", str(T), "--batch_size", str(B), "--p", str(P),
                "--q", str(Q)]
    main_module = importlib.import_module("main")
    get_batch = importlib.import_module("optim.utils").get_batch
    args = main_module.get_args()
    model = importlib.import_module("models.utils").get_model(args)
    named = dict(model.named_parameters())  # their main.py maps the groups' names to tensors
    groups = [{**g, "params": [named[name] for name in g["params"]]}
              for g in model.get_parameter_group_specs()]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2),
                            weight_decay=args.weight_decay)
    kernel = torch.tensor([[1 - P, P], [Q, 1 - Q]])
    generator = torch.Generator().manual_seed(0)
    model.train()

    def step():
        x, y = get_batch(kernel, T, B, generator, args, device="cpu")
        model(x, targets=y)["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def compare_official(src: Path, ours_step, steps: int, attention: float) -> None:
    """The official step against ours, interleaved, one thread, and the bound that
    ``attention`` (CPU seconds of torch's fused attention alone) puts on the ratio."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp), \
                open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            theirs = official_step(src)  # their model writes .npy snapshots to the cwd
            theirs(), ours_step()  # warm-up (their first step also logs its weights)
            t_theirs, t_ours = [], []
            for _ in range(steps):
                t_theirs.append(best_cpu_seconds(theirs, repeats=1))
                t_ours.append(best_cpu_seconds(ours_step, repeats=1))
    finally:
        torch.set_num_threads(threads)
    theirs_s, ours_s = min(t_theirs), min(t_ours)
    print(f"against the official code ({src}), 1 thread, CPU time, best of {steps} "
          f"interleaved steps:")
    print(f"  official training step                         : {theirs_s * 1e3:10.1f} ms "
          f"({B * T / theirs_s:8.0f} tokens/s)")
    print(f"  ours                                           : {ours_s * 1e3:10.1f} ms "
          f"({B * T / ours_s:8.0f} tokens/s): {theirs_s / ours_s:.2f}x (target 2x)")
    print(f"  torch's fused attention alone (both call it)   : {attention * 1e3:10.1f} ms: "
          f"no model that calls it can beat {theirs_s / attention:.2f}x")


def main(steps: int = 5, official_src: Path | None = None) -> None:
    ours = build_model("standard", d=D, max_len=T, seed=0)
    naive = NaiveAttentionTransformer(d=D, max_len=T)
    naive.load_state_dict(ours.state_dict())
    x = torch.as_tensor(chain.sample(P, Q, 2, T, rng=0), dtype=torch.long)
    torch.testing.assert_close(ours(x), naive(x), rtol=1e-4, atol=1e-5)

    gen = torch.Generator().manual_seed(0)
    rng = iter(range(10**9))

    def draw():
        return torch.as_tensor(chain.sample(P, Q, B, T + 1, rng=next(rng)), dtype=torch.long)

    t0 = time.perf_counter()
    for _ in range(steps):
        sample_loop_torch(B, T + 1, gen)
    t_loop = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    for _ in range(steps):
        chain.sample(P, Q, B, T + 1, rng=next(rng))
    t_fast = (time.perf_counter() - t0) / steps
    print(f"sampling a batch of {B} sequences of {T + 1} symbols:")
    print(f"  baseline, multinomial per position : {t_loop * 1e3:8.2f} ms")
    print(f"  tdyn.markov.chain.sample (run lengths)   : {t_fast * 1e3:8.2f} ms")
    print(f"  speed-up                           : {t_loop / t_fast:8.1f}x")

    base = throughput(naive, lambda: sample_loop_torch(B, T + 1, gen), steps)
    fast = throughput(ours, draw, steps)
    print(f"training step at d = {D}, T = {T}, batch {B} on CPU "
          f"({torch.get_num_threads()} threads, {steps} steps):")
    print(f"  baseline, written-out attention + loop sampler : {base:10.0f} tokens/s")
    print(f"  ours, fused attention + run-length sampler     : {fast:10.0f} tokens/s")
    print(f"  speed-up                                       : {fast / base:10.2f}x")

    # tdyn.markov.transformer.train(cpu_threads=1) trains on one thread: slower on idle cores,
    # faster when other processes compete for them.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = throughput(ours, draw, steps)
    finally:
        torch.set_num_threads(threads)
    print(f"ours on 1 thread vs {threads} threads:")
    print(f"  1 thread                                       : {single:10.0f} tokens/s")
    print(f"  ratio 1 thread / {threads} threads                    : {single / fast:10.2f}x")

    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(1)
        q, k, v = (torch.randn(2, T, D, generator=gen) for _ in range(3))
        torch.testing.assert_close(blocked_causal_attention(q, k, v),
                                   fused_causal_attention(q, k, v), rtol=1e-4, atol=1e-5)
        fused, blocked = (attention_seconds(f) for f in (fused_causal_attention,
                                                         blocked_causal_attention))
        step = best_cpu_seconds(training_step(ours, draw))
    finally:
        torch.set_num_threads(threads)
    print(f"causal attention alone, forward + backward, head size {D}, 1 thread, CPU time:")
    print(f"  fused kernel (the model's)                     : {fused * 1e3:10.1f} ms "
          f"({fused / step:.0%} of a 1-thread step of {step * 1e3:.0f} ms)")
    print(f"  blocked products, upper triangle skipped       : {blocked * 1e3:10.1f} ms "
          f"({fused / blocked:.2f}x the fused kernel's speed)")


    if official_src is not None:
        compare_official(official_src, training_step(ours, draw), steps, fused)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--official-src", type=Path, default=None,
                        help="the official Markov-Simple/src directory (optional)")
    cli = parser.parse_args()
    main(cli.steps, cli.official_src)
