"""The edge-shift experiment of ``notebooks/trainability_edge_shift.ipynb``: a test of "the final
test loss is predicted by the exponents at initialization" that the raw hyperparameters cannot
pass by themselves.

The value scale sigma_V moves the edge of chaos (lambda_a = 0) along sigma_w while alpha and
sigma_w stay fixed: at alpha = 0.5 the edge is at sigma_w = 1.39, 1.93, 2.75 for
sigma_V = 0.5, 1, 2 (theory, at the collapsed fixed point).  If the exponents decide the loss,
the loss-optimal sigma_w moves with the edge, and a predictor of the loss from the exponents
fitted on one sigma_V carries over to the others; a model of (alpha, sigma_w) alone cannot see
sigma_V.  Depth is the second knob (the exponents are rates per layer).

Arms (each configuration names its own):

    main    sigma_V x alpha x sigma_w x seed x learning rate, at the main depth
    value   Adam with W_V's learning rate multiplied by sigma_V (``value_lr="scaled"``) on a
            subset of (sigma_V, alpha): does Adam's fixed step size explain a sigma_V effect?
    deep    the same subset at a larger depth

Every configuration is trained once per learning rate of the grid with a cosine schedule to
zero over a fixed budget; the analysis (:mod:`tdyn.signalprop.trainability.edge_shift_analysis`)
picks per configuration the learning rate with the lowest seed-mean validation loss (a
validation set of its own seed) and reads the test loss there.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence

import numpy as np
import torch

from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.gradients import lambda_g
from tdyn.signalprop.simulate import replicate_seed
from tdyn.signalprop.theory import edge_of_chaos, lambda_a
from tdyn.signalprop.trainability.model import (
    Member,
    TrainSettings,
    task_reference_losses,
    train_ensemble,
)
from tdyn.signalprop.trainability.task import TopicTask

EXPERIMENT = "trainability_edge_shift"

ARMS = ("main", "value", "deep")
"""The arms of the experiment (module docstring)."""

PROTOCOLS = {"fp": "fixed-point", "ln": "ln-scale"}
"""Column suffix -> evaluation protocol of the exponents (:mod:`tdyn.signalprop.theory`)."""


def parse_values(text: str) -> list[float]:
    """``"0.5,1,2"`` -> [0.5, 1.0, 2.0]: distinct positive finite numbers."""
    try:
        values = [float(item) for item in text.split(",")]
    except ValueError:
        raise ValueError(f"{text!r} is not a comma-separated list of numbers") from None
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{text!r}: every value must be a positive finite number")
    if len(set(values)) != len(values):
        raise ValueError(f"{text!r} lists a value twice")
    return values


def parse_alphas(text: str) -> list[float]:
    """Residual strengths: distinct numbers in (0, 1) (alpha = 1 removes the skip path, and
    its lambda_a = -inf cannot be stored as a finite predictor)."""
    values = parse_values(text)
    if not all(v < 1 for v in values):
        raise ValueError(f"{text!r}: every alpha must lie in (0, 1)")
    return values


def sigma_w_grid(params: dict) -> np.ndarray:
    """The geometric grid of MLP weight scales."""
    return np.geomspace(params["sigma_w_min"], params["sigma_w_max"], params["n_sigma_w"])


def configurations(params: dict) -> list[dict]:
    """Every (arm, depth, value_lr, sigma_V, alpha, sigma_w, lr, seed_index), main arm first."""
    sigmas = [round(float(w), 6) for w in sigma_w_grid(params)]
    lrs = parse_values(params["lrs"])
    arm_points = [(v, a) for v in parse_values(params["arm_sigma_Vs"])
                  for a in parse_alphas(params["arm_alphas"])]
    arms = [("main", params["depth"], "fixed",
             [(v, a) for v in parse_values(params["sigma_Vs"])
              for a in parse_alphas(params["alphas"])])]
    if params["value_arm"]:
        arms.append(("value", params["depth"], "scaled", arm_points))
    if params["deep_depth"]:
        arms.append(("deep", params["deep_depth"], "fixed", arm_points))
    return [{"arm": arm, "depth": depth, "value_lr": rule, "sigma_V": v, "alpha": a,
             "sigma_w": w, "lr": lr, "seed_index": k}
            for arm, depth, rule, points in arms for v, a in points for w in sigmas
            for lr in lrs for k in range(params["n_seeds"])]


def task_and_settings(params: dict, config: dict) -> tuple[TopicTask, TrainSettings]:
    """The task and the training settings of one configuration."""
    task = TopicTask.from_params(params)
    settings = TrainSettings(d=params["d"], depth=config["depth"], lr=config["lr"],
                             steps=params["steps"], batch=params["batch"],
                             test_size=params["test_size"], eval_every=params["eval_every"],
                             data_seed=params["data_seed"], schedule=params["schedule"],
                             value_lr=config["value_lr"],
                             validation_size=params["validation_size"])
    return task, settings


def seeds(config: dict, params: dict) -> dict:
    """The seeds of one configuration: its initial weights (replicate_seed(seed, seed_index),
    common to every hyperparameter, arm and learning rate), the training batches, the test and
    the validation set (numpy [data_seed, 1], [data_seed, 2], [data_seed, 3], shared by all)
    and the task's topics."""
    return {"init": replicate_seed(params["seed"], config["seed_index"]),
            "train_data": [params["data_seed"], 1], "test_data": [params["data_seed"], 2],
            "validation_data": [params["data_seed"], 3], "task": params["task_seed"]}


def architecture(params: dict, config: dict) -> Architecture:
    """The architecture of a configuration at the run's sizes (n = seq_len)."""
    return Architecture(n=params["seq_len"], d=params["d"], sigma_A=params["sigma_A"],
                        sigma_w=config["sigma_w"], alpha_A=config["alpha"],
                        alpha_M=config["alpha"], sigma_V=config["sigma_V"])


def theory_exponents(arch: Architecture, depth: int) -> dict[str, float]:
    """lambda_a and lambda_g(L) under both evaluation protocols (:data:`PROTOCOLS`): at the
    collapsed fixed point q*, and from the LayerNorm scale q0 = 1 over the L = ``depth`` layers
    of the network (where the trained network's embeddings start, |x|^2 = d)."""
    out = {}
    for suffix, at in PROTOCOLS.items():
        layers = depth if at == "ln-scale" else 1
        out[f"lambda_a_{suffix}"] = lambda_a(arch, at=at, depth=layers)
        out[f"lambda_g_{suffix}"] = lambda_g(arch, depth, at=at)
    return out


@functools.lru_cache(maxsize=256)
def _edges(sigma_V: float, alpha: float, depth: int, params_json: str) -> dict[str, float]:
    params = json.loads(params_json)
    arch = architecture(params, {"sigma_w": 1.0, "alpha": alpha, "sigma_V": sigma_V})
    return {f"edge_sigma_w_{suffix}": edge_of_chaos(arch, hi=200.0, at=at,
                                                    depth=depth if at == "ln-scale" else 1)
            for suffix, at in PROTOCOLS.items()}


def edges(params: dict, config: dict) -> dict[str, float]:
    """The sigma_w of the edge of chaos of a configuration's (sigma_V, alpha) under both
    protocols (:func:`tdyn.signalprop.theory.edge_of_chaos`; ln-scale over its depth)."""
    keys = ("seq_len", "d", "sigma_A")
    return _edges(config["sigma_V"], config["alpha"], config["depth"],
                  json.dumps({k: params[k] for k in keys}, sort_keys=True))


def ensemble_key(config: dict) -> tuple:
    """Configurations that train together: same depth, learning rate and W_V rule (and, for
    the scaled rule, the same sigma_V, whose factor the W_V group's learning rate carries)."""
    scale = config["sigma_V"] if config["value_lr"] == "scaled" else None
    return config["depth"], config["lr"], config["value_lr"], scale


def run_batch(configs: Sequence[dict], params: dict):
    """Train ``configs`` as batched ensembles, one per :func:`ensemble_key`, and yield
    ``(position, result, wall_time_s)`` per configuration as its ensemble finishes (a protocol
    function of :mod:`tdyn.runs.sweep`)."""
    groups: dict[tuple, list[int]] = {}
    for position, config in enumerate(configs):
        groups.setdefault(ensemble_key(config), []).append(position)
    refs = None  # the test set is the same for every ensemble: its reference losses once
    for positions in groups.values():
        chunk = [configs[p] for p in positions]
        task, settings = task_and_settings(params, chunk[0])
        refs = refs or task_reference_losses(task, settings)
        members = [Member(c["alpha"], c["alpha"], c["sigma_w"], params["sigma_A"],
                          seed=replicate_seed(params["seed"], c["seed_index"]),
                          sigma_V=c["sigma_V"]) for c in chunk]
        result = train_ensemble(members, task, settings, device=params["device"],
                                dtype=torch.float32)
        for m, (position, config) in enumerate(zip(positions, chunk, strict=True)):
            arch = architecture(params, config)
            yield position, {
                "test_loss": float(result.test_loss[m]),
                "validation_loss": float(result.validation_loss[m]),
                "train_loss": float(result.train_loss[m]),
                "test_curve": [float(v) for v in result.test_curve[m]],
                "eval_steps": [int(s) for s in result.eval_steps],
                "diverged_at": int(result.diverged_at[m]),
                "bayes_loss": refs["bayes"], "unigram_loss": refs["unigram"],
                **theory_exponents(arch, config["depth"]), **edges(params, config),
            }, result.seconds / len(chunk)


def run_configuration(config: dict, params: dict) -> dict:
    """The result of one configuration, trained alone (an ensemble of one)."""
    [(_, result, _)] = list(run_batch([config], params))
    return result
