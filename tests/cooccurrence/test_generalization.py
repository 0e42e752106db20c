"""The long-time generalization experiment (tdyn.cooccurrence.generalization)."""

import json

import numpy as np
import pytest

from tdyn.cooccurrence.generalization import (
    EXPERIMENT,
    configurations,
    power_law_exponent,
    run_configuration,
    seeds,
    stages,
)
from tdyn.runs.params import ParameterSpec


def test_stages_parse_and_reject():
    assert stages("0.05:2000,5:10") == [(0.05, 2000), (5.0, 10)]
    with pytest.raises(ValueError, match="stages='0:5'"):
        stages("0:5")


def test_configurations_use_distinct_words_where_they_fit():
    """n = 48, L = 4 has 80 random slots: distinct at d = 83, i.i.d. at d = 40."""
    params = {"L": 4, "ns": "48", "ds": "40,83"}
    assert configurations(params) == [{"n": 48, "d": 40, "random_tokens": "iid"},
                                      {"n": 48, "d": 83, "random_tokens": "distinct"}]


def test_power_law_exponent():
    t = np.geomspace(1, 1e4, 40)
    assert power_law_exponent(t, 2 * t ** -0.13, 1e2, 1e4) == pytest.approx(-0.13)
    with pytest.raises(ValueError, match="fewer than two"):
        power_law_exponent(t, t, 2e4, 3e4)


def test_tiny_configuration_generalizes_a_little_and_reports_its_seeds():
    """The notebook's default (tiny) configuration: the staged schedule reaches t = 30, the
    training loss falls below 1% and the test loss below its value at t = 1."""
    params = ParameterSpec.load(EXPERIMENT).defaults()
    config = configurations(params)[0]
    result = run_configuration(config, params)
    assert result["seeds"] == seeds(config, params)
    assert result["t_end"] == pytest.approx(30.0)
    assert result["train_loss_final"] < 0.01
    assert result["test_loss_hi"] < result["test_loss_lo"]
    assert result["train_exponent"] < result["test_exponent"] < 0
    json.dumps(result)
