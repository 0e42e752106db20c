"""Part II experiment of ``notebooks/markov_precision.ipynb``: the single-layer transformer of
:mod:`tdyn.markov.transformer` trained under each precision of :mod:`tdyn.markov.precision`,
with the path decomposition of :mod:`tdyn.markov.paths` recorded along every run.

Configurations (:func:`configurations`):

* float32 runs of every init in ``inits`` on every chain in ``chains`` (the mechanism runs;
  ``inits = "none"`` for none);
* on the first chain, runs of every init in ``precision_inits`` under every precision in
  ``precisions`` other than float32 (the precision study; ``"none"`` for none);
* if ``arm_seq_len`` > 0, the same first-chain runs at sequence length ``arm_seq_len`` for the
  inits ``arm_inits`` and precisions ``arm_precisions``, ``arm_steps`` steps each.

Every run records, at each evaluation, the logit gap by path, the active-ReLU fraction and the
singular-value shares (on a fixed probe batch of ``probe_batch`` sequences), and every
``agreement_every`` steps the per-group gradient cosine with float32 and the flushed fraction
of each low precision, on one fixed batch of ``batch`` training-sized sequences.
"""

from __future__ import annotations

import numpy as np
import torch

from tdyn.markov.chain import sample
from tdyn.markov.experiment import parse_chains, parse_inits
from tdyn.markov.paths import mechanism, mechanism_table
from tdyn.markov.precision import PRECISIONS, agreement_table, check_precision, gradient_agreement
from tdyn.markov.transformer import reference_losses, train

EXPERIMENT = "markov_precision"


def parse_optional_inits(text: str) -> list[str]:
    """Like :func:`tdyn.markov.experiment.parse_inits`, but ``""`` (or ``"none"``) is no
    initialization at all."""
    return [] if text.strip() in ("", "none") else parse_inits(text)


def parse_precisions(text: str) -> list[str]:
    """``"float32,float16"`` -> ["float32", "float16"], each checked against PRECISIONS."""
    return [check_precision(item.strip()) for item in text.split(",")]


def configurations(params: dict) -> list[dict]:
    """Every run of the experiment (see the module docstring), as dicts with p, q, init,
    precision, seq_len, steps, seed_index and arm ("mechanism", "precision" or "long")."""
    chains = parse_chains(params["chains"])
    precisions = [x for x in parse_precisions(params["precisions"]) if x != "float32"]
    configs = []

    def add(p, q, init, precision, seq_len, steps, arm, n_seeds):
        configs.extend({"p": p, "q": q, "init": init, "precision": precision,
                        "seq_len": seq_len, "steps": steps, "seed_index": s, "arm": arm}
                       for s in range(n_seeds))

    for p, q in chains:
        for init in parse_optional_inits(params["inits"]):
            add(p, q, init, "float32", params["seq_len"], params["steps"], "mechanism",
                params["n_seeds"])
    p, q = chains[0]
    for init in parse_optional_inits(params["precision_inits"]):
        for precision in precisions:
            add(p, q, init, precision, params["seq_len"], params["steps"], "precision",
                params["n_seeds"])
    if params["arm_seq_len"] > 0:
        for init in parse_inits(params["arm_inits"]):
            for precision in parse_precisions(params["arm_precisions"]):
                add(p, q, init, precision, params["arm_seq_len"], params["arm_steps"], "long",
                    1)
    return configs


def seeds(config: dict, params: dict) -> dict[str, int]:
    """Every seed a configuration draws from: model, training data, held-out set, probe."""
    base = params["seed"] + 10 * config["seed_index"]
    return {"model": base, "data": base + 1, "eval": base + 2, "probe": base + 3}


def run_configuration(config: dict, params: dict) -> dict:
    """Train one configuration; a JSON-ready result: the history of :func:`train` (without
    timings), the :func:`~tdyn.markov.paths.mechanism` columns at every recorded step, the
    gradient agreement rows (step, precision, group, cosine, flushed, norm_ratio) every
    ``agreement_every`` steps, the unigram and bigram losses and the seeds."""
    seed_map = seeds(config, params)
    p, q, seq_len = config["p"], config["q"], config["seq_len"]
    probe = torch.as_tensor(sample(p, q, params["probe_batch"], seq_len, rng=seed_map["probe"]),
                            dtype=torch.long)
    grad_batch = torch.as_tensor(sample(p, q, params["batch"], seq_len + 1,
                                        rng=seed_map["probe"] + 1000), dtype=torch.long)
    compare = [x for x in PRECISIONS if x != "float32"]
    records, agreement = [], []

    def monitor(step, model):
        device = model.embedding.device
        records.append(mechanism(model, probe.to(device)))
        if params["agreement_every"] > 0 and step % params["agreement_every"] == 0:
            with torch.enable_grad():
                table = gradient_agreement(model, grad_batch.to(device), precisions=compare)
            agreement.extend({"step": step, **row} for row in agreement_table(table))

    result = train(p, q, init=config["init"], d=params["d"], seq_len=seq_len,
                   batch=params["batch"], steps=config["steps"], lr=params["lr"],
                   weight_decay=params["weight_decay"], seed=seed_map["model"],
                   eval_every=params["eval_every"], eval_batch=params["eval_batch"],
                   device=params["device"], precision=config["precision"], monitor=monitor,
                   canonical=(params["canonical_e"], params["canonical_w"]))
    out = result.as_dict()
    del out["wall_time_s"], out["tokens_per_s"]
    out["mechanism"] = mechanism_table(records)
    out["agreement"] = agreement
    out.update({f"{k}_loss": v for k, v in reference_losses(p, q).items()})
    out["seeds"] = seed_map
    return out


def agreement_frame(table):
    """The ``agreement`` rows of every run of a results table, one DataFrame with the run's
    p, q, init, training precision, seq_len and seed_index beside each row."""
    import pandas as pd

    rows = []
    for run in table.itertuples():
        for row in run.agreement:
            rows.append({"p": run.p, "q": run.q, "init": run.init, "trained": run.precision,
                         "seq_len": run.seq_len, "seed_index": run.seed_index, **row})
    return pd.DataFrame(rows)


def mechanism_at(run, step: int) -> dict[str, float]:
    """The mechanism columns of one run (a results-table row) at the recorded step nearest
    ``step``."""
    steps = np.asarray(run.record_steps)
    k = int(np.argmin(np.abs(steps - step)))
    return {key: values[k] for key, values in run.mechanism.items()} | {"step": int(steps[k])}
