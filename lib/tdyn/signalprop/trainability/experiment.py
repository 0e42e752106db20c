"""The trainability sweep of ``notebooks/trainability_sweep.ipynb``: its grid of
(alpha = alpha_A = alpha_M, sigma_w, seed) configurations, the exponents at initialization of
every grid point (theory and measurement), and the ensemble training of the configurations
into a run of the run store.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence

import numpy as np
import torch

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.gradients import lambda_common
from tdyn.signalprop.gradients import lambda_g as lambda_g_theory
from tdyn.signalprop.measure import measure_jacobian, measured_angle_exponent
from tdyn.signalprop.simulate import replicate_seed
from tdyn.signalprop.theory import lambda_a
from tdyn.signalprop.trainability.model import (
    Member,
    TrainSettings,
    task_reference_losses,
    train_ensemble,
)
from tdyn.signalprop.trainability.task import TopicTask

# --------------------------------------------------------------------------------------------
# The sweep of notebooks/trainability_sweep.ipynb


def sweep_grid(params: dict) -> tuple[np.ndarray, np.ndarray]:
    """The grid's alpha values (linear) and sigma_w values (geometric) from the parameters."""
    alphas = np.linspace(params["alpha_min"], params["alpha_max"], params["n_alpha"])
    sigmas = np.geomspace(params["sigma_w_min"], params["sigma_w_max"], params["n_sigma_w"])
    return alphas, sigmas


def sweep_configs(params: dict) -> list[dict]:
    """One configuration per (alpha = alpha_A = alpha_M, sigma_w, seed index).

    Refuses ``d < seq_len + 1``: the measurement of lambda_a at initialization starts from
    exactly orthonormal tokens plus a shared direction
    (:func:`tdyn.signalprop.simulate.initial_tokens`).
    """
    if params["d"] < params["seq_len"] + 1:
        raise ValueError(f"d={params['d']} must be at least seq_len + 1 = "
                         f"{params['seq_len'] + 1} (the exponents are measured from exactly "
                         "orthonormal initial tokens)")
    alphas, sigmas = sweep_grid(params)
    return [{"alpha": round(float(a), 6), "sigma_w": round(float(w), 6), "seed_index": k}
            for a in alphas for w in sigmas for k in range(params["n_seeds"])]


def task_and_settings(params: dict) -> tuple[TopicTask, TrainSettings]:
    """The task and training settings named by a sweep's parameters."""
    task = TopicTask.from_params(params)
    settings = TrainSettings(d=params["d"], depth=params["depth"], lr=params["lr"],
                             steps=params["steps"], batch=params["batch"],
                             test_size=params["test_size"], eval_every=params["eval_every"],
                             data_seed=params["data_seed"])
    return task, settings


def init_exponents(archs: Sequence[Architecture], depth: int, n_seeds: int, seed: int,
                   device: str = "cpu") -> dict[str, np.ndarray]:
    """Theory and measurement of the exponents at initialization, one value per architecture:
    lambda_a (closed form), lambda_g (depth ``depth``, theory), lambda_g_inf (log G_c), and
    lambda_a_measured, lambda_g_measured (with ``_sem``) on ``n_seeds`` random networks of the
    architectures' sizes (one-layer angle rate from rho = 0.999 at q*; total Jacobian norm over
    ``depth`` layers by 8 random probes per network)."""
    la_mean, la_sem = measured_angle_exponent(list(archs), layers=1, gap=1e-3,
                                              n_seeds=n_seeds, seed=seed, device=device)
    jac = measure_jacobian(list(archs), depth, n_seeds=n_seeds, seed=seed, method="probe",
                           n_probes=8, device=device)
    lg_mean, lg_sem = jac.exponents()["total"]
    return {"lambda_a": np.array([lambda_a(a) for a in archs]),
            "lambda_g": np.array([lambda_g_theory(a, depth) for a in archs]),
            "lambda_g_inf": np.array([lambda_common(a) for a in archs]),
            "lambda_a_measured": la_mean, "lambda_a_measured_sem": la_sem,
            "lambda_g_measured": lg_mean, "lambda_g_measured_sem": lg_sem}


EXPERIMENT = "trainability_sweep"


def configurations(params: dict) -> list[dict]:
    """The sweep's configurations (:func:`sweep_configs`)."""
    return sweep_configs(params)


def seeds(config: dict, params: dict) -> dict:
    """The seeds of one configuration: its initial weights (torch, the Member seed
    replicate_seed(seed, seed_index), common to every grid point), the training batches and
    the test set (numpy, [data_seed, 1] and [data_seed, 2], shared by all), the task's topics
    (task_seed) and the measurement of the exponents at initialization (seed)."""
    return {"init": replicate_seed(params["seed"], config["seed_index"]),
            "train_data": [params["data_seed"], 1], "test_data": [params["data_seed"], 2],
            "task": params["task_seed"], "exponents": params["seed"]}


@functools.lru_cache(maxsize=4)
def _grid_exponents(params_json: str) -> dict[tuple[float, float], dict[str, float]]:
    params = json.loads(params_json)
    task, settings = task_and_settings(params)
    points = sorted({(c["alpha"], c["sigma_w"]) for c in sweep_configs(params)})
    archs = [Member(a, a, w, params["sigma_A"]).architecture(task, settings) for a, w in points]
    exps = init_exponents(archs, settings.depth, params["exponent_seeds"], params["seed"],
                          params["device"])
    return {point: {key: float(values[i]) for key, values in exps.items()}
            for i, point in enumerate(points)}


def grid_exponents(params: dict) -> dict[tuple[float, float], dict[str, float]]:
    """The exponents at initialization (:func:`init_exponents`) of every (alpha, sigma_w) of
    the sweep, measured over the whole grid at once (so a resumed run gets the same numbers),
    once per process and parameters."""
    return _grid_exponents(json.dumps(params, sort_keys=True))


def run_batch(configs: Sequence[dict], params: dict):
    """Train ``configs`` as one batched ensemble; yields ``(position, result, wall_time_s)``
    per configuration as its ensemble finishes (a protocol function of
    :mod:`tdyn.runs.sweep`).

    Seed index k draws its initial weights from the seed (params["seed"], k) for every grid
    point (common random numbers across hyperparameters); all members see the same data.
    When the ensemble does not fit in GPU memory it is halved and retried (its members'
    results then differ from a whole-ensemble run in the last digits of floating-point
    reduction order); each finished part is yielded at once.
    """
    task, settings = task_and_settings(params)
    at_point = grid_exponents(params)
    refs = task_reference_losses(task, settings)
    queue = [list(enumerate(configs))]
    while queue:
        chunk = queue.pop(0)
        members = [Member(c["alpha"], c["alpha"], c["sigma_w"], params["sigma_A"],
                          seed=replicate_seed(params["seed"], c["seed_index"]))
                   for _, c in chunk]
        try:
            result = train_ensemble(members, task, settings, device=params["device"])
        except torch.cuda.OutOfMemoryError:
            if len(chunk) == 1:
                raise
            half = (len(chunk) + 1) // 2
            torch.cuda.empty_cache()
            print(f"out of GPU memory: retrying with ensembles of {half} configurations")
            queue = [part[i:i + half] for part in [chunk, *queue]
                     for i in range(0, len(part), half)]
            continue
        for m, (position, config) in enumerate(chunk):
            yield position, {
                "test_loss": float(result.test_loss[m]),
                "train_loss": float(result.train_loss[m]),
                "test_curve": [float(v) for v in result.test_curve[m]],
                "eval_steps": [int(s) for s in result.eval_steps],
                "diverged_at": int(result.diverged_at[m]),
                "bayes_loss": refs["bayes"], "unigram_loss": refs["unigram"],
                **at_point[(config["alpha"], config["sigma_w"])]}, result.seconds / len(chunk)


def run_configuration(config: dict, params: dict) -> dict:
    """The result of one configuration, trained alone (an ensemble of one)."""
    [(_, result, _)] = list(run_batch([config], params))
    return result
