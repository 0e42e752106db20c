"""tdyn.markov.precision_study: the experiment of notebooks/markov_precision.ipynb."""

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from tdyn.markov import chain
from tdyn.markov.figures import plot_gap_by_path, plot_precision_curves
from tdyn.markov.precision_study import (
    EXPERIMENT,
    agreement_frame,
    configurations,
    mechanism_at,
    parse_precisions,
    run_configuration,
    seeds,
)
from tdyn.runs.params import ParameterSpec
from tdyn.runs.store import REPO_ROOT, first_non_finite
from tdyn.runs.sweep import profile_results


def _params(**changes):
    params = {k: v.default for k, v in ParameterSpec.load("markov_precision").parameters.items()}
    params.update(changes)
    return params


def test_configurations_cover_the_study():
    params = _params(inits="standard,proposed,canonical", arm_seq_len=64, arm_steps=7,
                     n_seeds=2)
    configs = configurations(params)
    mech = [c for c in configs if c["arm"] == "mechanism"]
    prec = [c for c in configs if c["arm"] == "precision"]
    long = [c for c in configs if c["arm"] == "long"]
    assert len(mech) == 2 * 3 * 2 and {c["precision"] for c in mech} == {"float32"}
    assert len(prec) == 2 * 3 * 2 and {(c["p"], c["q"]) for c in prec} == {(0.5, 0.8)}
    assert {c["precision"] for c in prec} == {"float16", "float16-scaled", "bfloat16"}
    assert [(c["seq_len"], c["steps"], c["precision"]) for c in long] == [
        (64, 7, "float16"), (64, 7, "float16-scaled")]
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == len(configs)
    assert seeds(configs[1], params) == {"model": 10, "data": 11, "eval": 12, "probe": 13}
    with pytest.raises(ValueError, match="precision"):
        parse_precisions("float32,int8")
    only_study = configurations(_params(inits="none", precision_inits="proposed"))
    assert [(c["init"], c["precision"]) for c in only_study] == [
        ("proposed", "float16"), ("proposed", "float16-scaled"), ("proposed", "bfloat16")]
    assert configurations(_params(precision_inits="none", precisions="float32")) == [
        c for c in configurations(_params()) if c["arm"] == "mechanism"]


@pytest.fixture(scope="module")
def tiny_table():
    params = _params(seq_len=16, steps=6, eval_every=3, agreement_every=3, batch=4,
                     eval_batch=4, probe_batch=4)
    rows = []
    for config in configurations(params):
        if config["init"] == "standard" or config["arm"] == "mechanism":
            rows.append({**config, **run_configuration(config, params)})
    return pd.DataFrame(rows), params


def test_results_are_json_ready_and_complete(tiny_table):
    table, params = tiny_table
    for row in table.to_dict("records"):
        json.dumps(row)
        assert not first_non_finite(row)[0]
        assert len(row["mechanism"]["gap"]) == len(row["record_steps"]) == 3
        steps = sorted({a["step"] for a in row["agreement"]})
        assert steps == [0, 3, 6]
        assert row["seeds"] == seeds(row, params)
    frame = agreement_frame(table)
    assert set(frame.precision) == {"float16", "float16-scaled", "bfloat16"}
    assert mechanism_at(table.iloc[0], 4)["step"] == 3


def test_figures_draw(tiny_table):
    table, _ = tiny_table
    fig, _ = plot_gap_by_path(table, {pq: chain.logit_gap(*pq) for pq in
                                      [(0.5, 0.8), (0.2, 0.3)]})
    plt.close(fig)
    fig, axes = plot_precision_curves(table, [("standard", 16)], chain.unigram_loss(0.5, 0.8),
                                      chain.entropy_rate(0.5, 0.8))
    assert len(axes[0].lines) == 4 + 2  # four precisions, two reference lines
    plt.close(fig)


def test_committed_study_loads():
    # The committed CPU profile of the study (chapters 3 and 4 of Part II plot it): every arm
    # present, every run complete and finite, and the profile matching the stored run.
    table, provenance = profile_results(EXPERIMENT, "cpu", root=REPO_ROOT / "data")
    assert provenance["params"]["arm_seq_len"] == 1024
    assert (table.status == "ok").all()
    assert np.isfinite(np.concatenate(table.eval_loss.to_numpy())).all()
    arms = table.groupby("arm").size().to_dict()
    assert arms == {"mechanism": 6, "precision": 6, "long": 3}
    assert set(table[table.arm == "mechanism"].init) == {"standard", "proposed", "canonical"}
    long = table[table.arm == "long"]
    assert set(long.precision) == {"float32", "float16", "float16-scaled"}
    assert (long.seq_len == 1024).all()
