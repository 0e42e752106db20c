"""Batched-ensemble training of the trainability sweep against training one model at a time.

Runs the same sweep (the CPU profile's grid, sizes and data, for a few steps, with a small
test set so that training dominates the time) both ways: one
call of ``train_ensemble`` with every configuration stacked (batched matrix products), and one
call per configuration.  Prints the throughput of each (configuration-steps per second), their
ratio, and the largest difference between the two sets of test losses (the same seeds give the
same initial weights and batches, so they agree to floating-point rounding).  Run:

    .venv/bin/python benchmarks/bench_gradients_batched_training.py [--steps 40] [--device cpu]
"""

import argparse
import time

import numpy as np
import torch
import yaml

from tdyn.runs.store import REPO_ROOT
from tdyn.signalprop.simulate import replicate_seed
from tdyn.signalprop.trainability.experiment import sweep_configs, task_and_settings
from tdyn.signalprop.trainability.model import Member, TrainSettings, train_ensemble


def main(steps: int = 40, device: str = "cpu", dtype=torch.float32) -> None:
    params = yaml.safe_load(
        (REPO_ROOT / "notebooks/params/trainability_sweep-cpu.yaml").read_text())
    params.update(steps=steps, eval_every=steps, test_size=64)
    task, settings = task_and_settings(params)
    members = [Member(c["alpha"], c["alpha"], c["sigma_w"], params["sigma_A"],
                      seed=replicate_seed(params["seed"], c["seed_index"]))
               for c in sweep_configs(params)]
    warm = TrainSettings(d=settings.d, depth=settings.depth, steps=2, batch=settings.batch,
                         test_size=8, eval_every=2)
    train_ensemble(members[:2], task, warm, device=device, dtype=dtype)  # warm-up, untimed
    start = time.perf_counter()
    batched = train_ensemble(members, task, settings, device=device, dtype=dtype)
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    single = [train_ensemble([m], task, settings, device=device, dtype=dtype) for m in members]
    t_single = time.perf_counter() - start
    loss_single = np.array([r.test_loss[0] for r in single])
    diff = np.max(np.abs(loss_single - batched.test_loss))
    work = len(members) * steps
    print(f"{len(members)} configurations x {steps} steps (d = {settings.d}, depth = "
          f"{settings.depth}, batch = {settings.batch} sequences of {task.seq_len}), "
          f"{dtype}, {device}:")
    print(f"  one model at a time : {t_single:7.1f} s  ({work / t_single:7.1f} config-steps/s)")
    print(f"  batched ensemble    : {t_batched:7.1f} s  ({work / t_batched:7.1f} config-steps/s)")
    print(f"  speed-up            : {t_single / t_batched:7.2f}x")
    print(f"  max |test loss difference| = {diff:.2e} (test losses ~ "
          f"{np.mean(loss_single):.3f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    main(args.steps, args.device)
