"""Batched-ensemble training of the trainability sweep against training one model at a time.

Runs the same sweep (the CPU profile's grid, sizes and data, for a few steps, with a small
test set so that training dominates the time) both ways: one
call of ``train_ensemble`` with every configuration stacked (batched matrix products), and one
call per configuration.  Prints the throughput of each (configuration-steps per second), their
ratio, and the largest difference between the two sets of test losses (the same seeds give the
same initial weights and batches, so they agree to floating-point rounding).  The two are
timed in ``--pairs`` interleaved pairs after one untimed warm-up of each (wall and CPU time;
the ratio of the minima); on a shared machine the CPU time is the steadier of the two.  Run:

    .venv/bin/python benchmarks/bench_gradients_batched_training.py [--steps 40] [--pairs 3]

``--profile`` then profiles one more run of each with torch's profiler and prints where the
time goes: the share of batched matrix products (``bmm``, ``baddbmm``), the rest of torch's
operators, and the operator count per configuration-step (each costs a few microseconds of
dispatch whatever its size, which is what bounds one model alone).
"""

import argparse
import time
from collections import Counter

import numpy as np
import torch
import yaml

from tdyn.runs.store import REPO_ROOT
from tdyn.signalprop.simulate import replicate_seed
from tdyn.signalprop.trainability.experiment import sweep_configs, task_and_settings
from tdyn.signalprop.trainability.model import Member, TrainSettings, train_ensemble


def _timed(fn):
    """(wall seconds, CPU seconds, result) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main(steps: int = 40, pairs: int = 3, device: str = "cpu", dtype=torch.float32,
         with_profile: bool = False) -> None:
    params = yaml.safe_load(
        (REPO_ROOT / "notebooks/params/trainability_sweep-cpu.yaml").read_text())
    params.update(steps=steps, eval_every=steps, test_size=64)
    task, settings = task_and_settings(params)
    members = [Member(c["alpha"], c["alpha"], c["sigma_w"], params["sigma_A"],
                      seed=replicate_seed(params["seed"], c["seed_index"]))
               for c in sweep_configs(params)]

    def batched(run_settings=settings):
        return train_ensemble(members, task, run_settings, device=device, dtype=dtype)

    def single(run_settings=settings):
        return [train_ensemble([m], task, run_settings, device=device, dtype=dtype)
                for m in members]

    warm = TrainSettings(d=settings.d, depth=settings.depth, steps=2, batch=settings.batch,
                         test_size=8, eval_every=2)
    batched(warm), single(warm)  # untimed warm-up of both
    times = {"one model at a time": [], "batched ensemble": []}
    for _ in range(pairs):
        *t_batched, together = _timed(batched)
        *t_single, alone = _timed(single)
        times["batched ensemble"].append(t_batched)
        times["one model at a time"].append(t_single)
    loss_single = np.array([r.test_loss[0] for r in alone])
    diff = np.max(np.abs(loss_single - together.test_loss))
    work = len(members) * steps
    print(f"{len(members)} configurations x {steps} steps (d = {settings.d}, depth = "
          f"{settings.depth}, batch = {settings.batch} sequences of {task.seq_len}), "
          f"{dtype}, {device}, {pairs} interleaved pairs:")
    for name, t in times.items():
        wall, cpu = np.array(t).T
        print(f"  {name:20s}: wall min {wall.min():6.1f} s, median {np.median(wall):6.1f} s "
              f"({work / wall.min():6.1f} config-steps/s); CPU min {cpu.min():6.1f} s")
    (w1, c1), (wb, cb) = (np.array(t).min(axis=0) for t in times.values())
    print(f"  speed-up (ratio of minima): wall {w1 / wb:.2f}x, CPU {c1 / cb:.2f}x")
    print(f"  max |test loss difference| = {diff:.2e} (test losses ~ "
          f"{np.mean(loss_single):.3f})")
    if with_profile:
        for name, run in (("batched ensemble", batched), ("one model at a time", single)):
            wall, products, other, calls = profile(run)
            print(f"  profiled, {name:20s}: {wall:5.1f} s, batched products {products:5.1f} s, "
                  f"other operators {other:5.1f} s, {calls / work:5.0f} operator calls per "
                  f"configuration-step")
        print(f"  (the 5x target needs the batched run in {w1 / 5:.1f} s, the one at a time "
              f"run's minimum over 5; profiling slows both)")


def profile(run) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds in batched matrix products, in the other torch operators,
    operator calls) of one ``run()`` under torch's profiler."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        wall = time.perf_counter()
        run()
        wall = time.perf_counter() - wall
    self_us, calls = Counter(), 0
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            self_us[event.key] += event.self_cpu_time_total
            calls += event.count
    products = sum(self_us[k] for k in ("aten::bmm", "aten::baddbmm_", "aten::baddbmm",
                                        "aten::mm")) / 1e6
    return wall, products, sum(self_us.values()) / 1e6 - products, calls


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", action="store_true",
                        help="then profile one run of each (module docstring)")
    args = parser.parse_args()
    main(args.steps, args.pairs, args.device, with_profile=args.profile)
