"""The CUDA paths of the library: skipped without a GPU (CI has none), run on a GPU machine
with ``pytest tests/test_gpu.py``.

What each test may expect from a GPU:
- the full Markov transformer draws its weights and data on the CPU, so a CUDA run repeats the
  CPU run up to float32 reduction order (a few ulp per step, amplified by 20 Adam steps);
- the simulators draw from CUDA generators, so they are compared with theory within Z
  standard errors of the seed mean, as the CPU tests are.
"""

import numpy as np
import pytest
import torch

from tdyn.markov.transformer import train
from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.measure import measured_angle_exponent
from tdyn.signalprop.theory import lambda_a
from tdyn.signalprop.trainability.model import Member, TrainSettings, train_ensemble
from tdyn.signalprop.trainability.task import TopicTask
from tests.helpers import assert_within_standard_errors

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

Z = 4.0  # standard errors allowed between a seed mean and theory


def test_markov_training_on_cuda_repeats_the_cpu_run():
    kwargs = dict(init="proposed", d=8, seq_len=128, batch=16, steps=20, eval_every=5,
                  eval_batch=32, seed=3)
    cpu = train(0.5, 0.8, device="cpu", **kwargs)
    gpu = train(0.5, 0.8, device="cuda", **kwargs)
    assert gpu.device.startswith("cuda")
    assert cpu.record_steps == gpu.record_steps
    # float32 losses near 0.6 nats: 1e-4 is ~1000 ulp, far above reduction-order noise and far
    # below the change of the loss over 5 steps (~1e-2 at this learning rate)
    np.testing.assert_allclose(gpu.eval_loss, cpu.eval_loss, atol=1e-4)


def test_angle_exponent_on_cuda_matches_theory():
    archs = [Architecture(n=16, d=256, alpha_A=0.5, alpha_M=0.5, sigma_A=1.0, sigma_w=s)
             for s in (1.5, 3.0)]
    mean, sem = measured_angle_exponent(archs, layers=1, gap=1e-3, n_seeds=32, seed=2,
                                        device="cuda")
    assert_within_standard_errors(mean, [lambda_a(a) for a in archs], sem, "lambda_a on cuda",
                                  z_max=Z)


def test_trainability_ensemble_learns_on_cuda():
    task = TopicTask(vocab=6, topics=3, seq_len=6, n_masked=2, concentration=0.3, seed=1)
    settings = TrainSettings(d=16, depth=2, lr=1e-2, steps=150, batch=32, test_size=1100,
                             eval_every=150)
    result = train_ensemble([Member(0.5, 0.5, 1.0), Member(0.5, 0.5, 1.0, seed=1)], task,
                            settings, device="cuda")  # test set evaluated in 3 slices
    inputs, targets, masked = task.sample(1100, np.random.default_rng([0, 2]))
    unigram = task.unigram_loss(targets, masked)
    bayes = task.bayes_loss(inputs, targets, masked)
    # as on the CPU: each member closes at least a third of the gap to the Bayes loss
    assert np.all(result.test_loss < unigram - (unigram - bayes) / 3)
    assert np.all(result.diverged_at == -1)
