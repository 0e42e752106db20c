"""Part II experiment of ``notebooks/markov_full.ipynb``: the single-layer transformer of
:mod:`tdyn.markov.transformer` trained from each initialization on each chain, and the
reading of its runs (held-out baselines, plateau level, escape step).
"""

from __future__ import annotations

import math

import numpy as np

from tdyn.markov.chain import (
    check_pq,
    log_loss_per_sequence,
    sample,
    stationary,
)
from tdyn.markov.transformer import INITS, one_cycle, reference_losses, train

# --------------------------------------------------------------------------------------------
# The experiment of notebooks/markov_full.ipynb
# --------------------------------------------------------------------------------------------


def parse_chains(text: str) -> list[tuple[float, float]]:
    """``"0.5:0.8,0.2:0.3"`` -> [(0.5, 0.8), (0.2, 0.3)], each pair validated."""
    chains = []
    for item in text.split(","):
        try:
            p_text, q_text = item.split(":")
            pair = (float(p_text), float(q_text))
        except ValueError:
            raise ValueError(f"chains={text!r}: {item!r} is not of the form p:q") from None
        chains.append(check_pq(*pair))
    return chains


def parse_inits(text: str) -> list[str]:
    """``"standard,proposed"`` -> ["standard", "proposed"], each checked against INITS."""
    inits = [item.strip() for item in text.split(",")]
    for init in inits:
        if init not in INITS:
            raise ValueError(f"inits={text!r}: {init!r} is not one of {INITS}")
    return inits


def experiment_configs(chains: str, inits: str, n_seeds: int, steps: int, long_steps: int = 0,
                       long_seeds: int = 1) -> list[dict]:
    """Every (chain, init, seed) run of the experiment, plus the long standard-init runs."""
    pairs = parse_chains(chains)
    configs = [
        {"p": p, "q": q, "init": init, "seed_index": s, "steps": steps, "schedule": "base"}
        for p, q in pairs for init in parse_inits(inits) for s in range(n_seeds)
    ]
    if long_steps > 0:
        p, q = pairs[0]
        configs += [{"p": p, "q": q, "init": "standard", "seed_index": s, "steps": long_steps,
                     "schedule": "long"} for s in range(long_seeds)]
    return configs


EXPERIMENT = "markov_full"


def configurations(params: dict) -> list[dict]:
    """The experiment's configurations (:func:`experiment_configs`) from its parameters."""
    return experiment_configs(params["chains"], params["inits"], params["n_seeds"],
                              params["steps"], params["long_steps"], params["long_seeds"])


def seeds(config: dict, params: dict) -> dict:
    """The seeds of one configuration, with s = seed + 10 seed_index: the model's weights
    (torch, s), the training batches (numpy, s + 1) and the held-out set (numpy, s + 2), as
    :func:`tdyn.markov.transformer.train` draws them."""
    s = params["seed"] + 10 * config["seed_index"]
    return {"model": s, "train_data": s + 1, "held_out": s + 2}


def run_configuration(config: dict, params: dict) -> dict:
    """Train one configuration; a JSON-ready result (without the timings, which the run
    records in its provenance) with the unigram and bigram losses of its chain."""
    result = train(config["p"], config["q"], init=config["init"], d=params["d"],
                   seq_len=params["seq_len"], batch=params["batch"], steps=config["steps"],
                   lr=params["lr"], weight_decay=params["weight_decay"],
                   seed=seeds(config, params)["model"], eval_every=params["eval_every"],
                   eval_batch=params["eval_batch"], device=params["device"],
                   canonical=(params["canonical_e"], params["canonical_w"]))
    out = result.as_dict()
    del out["wall_time_s"], out["tokens_per_s"]
    out.update({f"{k}_loss": v
                for k, v in reference_losses(config["p"], config["q"]).items()})
    return {**out, "seeds": seeds(config, params)}


# --------------------------------------------------------------------------------------------
# Reading the runs: held-out baselines, plateau and escape
# --------------------------------------------------------------------------------------------


def held_out_baselines(p: float, q: float, eval_batch: int, seq_len: int, held_out_seed: int
                       ) -> tuple[float, float]:
    """(Bayes, unigram) losses on the held-out set of a run (its ``seeds["held_out"]``).

    The set (``eval_batch`` sequences of ``seq_len`` + 1 symbols, drawn from that seed) has
    its own sampling noise, so a trained run is compared with the two predictors on the same
    symbols: Bayes uses the true transition probabilities, unigram always predicts pi_1.
    """
    seq = sample(p, q, eval_batch, seq_len + 1, rng=held_out_seed)
    bayes = float(log_loss_per_sequence(seq, p, q).mean())
    pi1 = stationary(p, q)[1]
    nxt = seq[:, 1:]
    unigram = float(-np.mean(np.where(nxt == 1, np.log(pi1), np.log(1 - pi1))))
    return bayes, unigram


def escape_step(steps, losses, threshold: float) -> float:
    """First recorded step from which ``losses`` stay below ``threshold`` (0 if always below,
    NaN if the last one is above): the step at which a run leaves a plateau for good."""
    steps, below = np.asarray(steps), np.asarray(losses) < threshold
    if steps.shape != below.shape or steps.size == 0:
        raise ValueError("steps and losses must be non-empty and of the same length")
    if not below[-1]:
        return math.nan
    above = np.flatnonzero(~below)
    return float(steps[above[-1] + 1]) if above.size else 0.0


def plateau_loss(steps, losses, start: int = 100, stop: int = 300) -> float:
    """Median recorded loss over steps [start, stop]: the level of the unigram plateau."""
    steps, losses = np.asarray(steps), np.asarray(losses)
    window = losses[(steps >= start) & (steps <= stop)]
    if window.size == 0:
        raise ValueError(f"no recorded step in [{start}, {stop}]")
    return float(np.median(window))


def _records_plateau(steps, start: int = 100, stop: int = 300) -> bool:
    steps = np.asarray(steps)
    return bool(np.any((steps >= start) & (steps <= stop)))


def annotate_runs(table, params: dict):
    """``table`` of a markov_full run (:func:`tdyn.runs.sweep.profile_results`, which gives
    each run's seeds) with, per run: Bayes and unigram losses on its held-out set, the excess
    of its test-loss curve over Bayes, the unigram gap, the escape step (below the held-out
    midpoint of unigram and Bayes) and the plateau level (steps 100-300; NaN for a run that
    records no step there)."""
    table = table.copy()
    baselines = [held_out_baselines(r.p, r.q, params["eval_batch"], params["seq_len"],
                                    r.seeds["held_out"])
                 for r in table.itertuples()]
    table["bayes_held_out"] = [b for b, _ in baselines]
    table["unigram_held_out"] = [u for _, u in baselines]
    table["gap_unigram"] = table.unigram_held_out - table.bayes_held_out
    table["excess"] = [np.asarray(h) - b for h, b in zip(table.eval_loss, table.bayes_held_out,
                                                         strict=True)]
    table["escape"] = [escape_step(s, h, b + 0.5 * g) for s, h, b, g in
                       zip(table.record_steps, table.eval_loss, table.bayes_held_out,
                           table.gap_unigram, strict=True)]
    table["plateau"] = [plateau_loss(s, h) if _records_plateau(s) else math.nan
                        for s, h in zip(table.record_steps, table.eval_loss, strict=True)]
    return table


def summarize_runs(runs):
    """Per (chain, schedule, init) of an annotated table (:func:`annotate_runs`): the number of
    runs, the plateau level, the final loss and its excess over Bayes (seed means), the range
    of escape steps and the unigram and bigram losses."""
    return (runs.groupby(["p", "q", "schedule", "init"], sort=False)
            .agg(runs=("seed_index", "size"), loss_steps_100_300=("plateau", "mean"),
                 final=("final_eval_loss", "mean"),
                 final_excess=("excess", lambda s: np.mean([h[-1] for h in s])),
                 escape_min=("escape", "min"), escape_max=("escape", "max"),
                 unigram=("unigram_loss", "first"), bigram=("bigram_loss", "first")))


ESCAPE_LRS = (0.001, 0.002, 0.004)
"""Peak learning rates of the escape study of the exercise part2-ex-escape: one committed run
of this experiment each, from ``notebooks/params/markov_full/escape-lr-<lr>.yaml`` (the
standard init on (0.5, 0.8), T = 128, 600 steps, three seeds; only ``lr`` differs)."""


def escape_study(lrs=ESCAPE_LRS, root=None):
    """The escape study's runs as one table annotated by :func:`annotate_runs`, with a column
    ``lr``; each run is loaded by the hash of its parameter file, which it must match."""
    import pandas as pd

    from tdyn.runs.runner import params_file_results, profile_folder

    tables = []
    for lr in lrs:
        table, provenance = params_file_results(
            EXPERIMENT, profile_folder() / EXPERIMENT / f"escape-lr-{lr:g}.yaml", root)
        tables.append(annotate_runs(table, provenance["params"]).assign(lr=lr))
    return pd.concat(tables, ignore_index=True)


def learning_rate_sum(lr: float, steps: int) -> np.ndarray:
    """sum_{s < t} lr_s of :func:`~tdyn.markov.transformer.train`'s one-cycle schedule
    (:func:`~tdyn.markov.transformer.one_cycle`) at peak ``lr`` over ``steps`` steps, for
    t = 0..steps: the distance in "step-size units" covered after t steps."""
    import torch

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = one_cycle(optimizer, lr, steps)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.concatenate([[0.0], np.cumsum(rates)])
