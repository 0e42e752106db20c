"""The experiment driver of Part III (tdyn.cooccurrence.experiment) on tiny sizes."""

import json

import numpy as np
import pytest

from tdyn.cooccurrence.data import random_slot_count, type_counts
from tdyn.cooccurrence.experiment import (
    REGIMES,
    configurations,
    experiment_configs,
    run_configuration,
    seeds,
)
from tdyn.runs.runner import profile_results
from tdyn.runs.store import MissingResultsError

SIZES = {"n": 12, "L": 4, "d": 20, "m": 8, "m1": 8, "lr": 0.05, "theory_scale": 0.3,
         "n_record": 10, "n_test": 60, "seed": 0, "n_seeds": 2, "steps": 60, "sweep_steps": 30}


def test_configs_cover_regimes_and_seeds():
    configs = experiment_configs(n_seeds=3, steps=100, sweep_steps=40)
    assert len(configs) == 3 * len(REGIMES)
    assert [c["steps"] for c in configs if c["keep_history"]] == [100] * len(REGIMES)
    assert all(c["steps"] == 40 for c in configs if not c["keep_history"])
    assert configurations(SIZES) == experiment_configs(2, 60, 30)


def test_seeds_differ_between_seed_indices_and_roles():
    first, second = (seeds({"seed_index": k}, SIZES) for k in (0, 1))
    assert first == {"data": 0, "init": 1000, "test": 2000}
    assert len(set(first.values()) | set(second.values())) == 6


@pytest.mark.parametrize("regime", list(REGIMES))
def test_run_config_result_is_json_and_consistent(regime):
    config = {"regime": regime, "seed_index": 0, "steps": 60, "keep_history": True}
    result = run_configuration(config, SIZES)
    assert result["seeds"] == seeds(config, SIZES)
    json.dumps(result, allow_nan=True)  # JSON-ready (NaN only where a phase is not reached)
    slots = random_slot_count(type_counts(SIZES["n"]), SIZES["L"])  # 20 > d - 3 = 17
    expected_d = max(SIZES["d"], slots + 3) if regime == "theory-distinct" else SIZES["d"]
    assert result["d_used"] == expected_d
    history = result["history"]
    assert history["t"][-1] == pytest.approx(60 * SIZES["lr"])
    assert np.asarray(history["type_loss"]).shape == (len(history["t"]), 4)
    assert result["test_loss_final"] < result["test_loss_init"]


def test_profile_results_refuses_missing_runs_with_the_command():
    # conftest points TDYN_DATA at an empty temporary folder
    with pytest.raises(MissingResultsError, match="python -m tdyn run notebooks/cooccurrence"):
        profile_results("cooccurrence", "cpu")
    with pytest.raises(ValueError, match="profile='huge'.*known profiles: \\['cpu'\\]"):
        profile_results("cooccurrence", "huge")


def test_regime_history_reads_the_long_run():
    import pandas as pd

    from tdyn.cooccurrence.experiment import regime_history

    table = pd.DataFrame([
        {"regime": "theory-iid", "keep_history": False, "history": None},
        {"regime": "theory-iid", "keep_history": True, "history": {"t": [0, 1], "loss": [1, .5]}},
    ])
    history, row = regime_history(table, "theory-iid")
    assert history["loss"].dtype == float and list(history["t"]) == [0.0, 1.0]
    assert row.keep_history
    with pytest.raises(ValueError, match="no run with a stored history"):
        regime_history(table, "kaiming")
