"""tdyn.markov.official: our runs against the official code's, and tdyn.markov.figures."""

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

from tdyn.markov.chain import entropy_rate, unigram_loss
from tdyn.markov.experiment import summarize_runs
from tdyn.markov.figures import draw_critical_set, plot_excess_curves
from tdyn.markov.official import compare_with_official, format_escapes, load_official
from tdyn.runs.store import REPO_ROOT

matplotlib.use("Agg")
P, Q = 0.5, 0.8


def _official_runs():
    steps = list(range(0, 1001, 25))
    hi, lo = unigram_loss(P, Q), entropy_rate(P, Q)
    escaping = [hi if s < 400 else lo for s in steps]  # leaves the plateau at step 400
    stuck = [hi] * len(steps)
    return {"provenance": {"commit": "5807025"}, "runs": [
        {"p": P, "q": Q, "init": "base", "device": "cpu", "steps": steps, "val_loss": escaping},
        {"p": P, "q": Q, "init": "base", "device": "cpu", "steps": steps, "val_loss": stuck},
    ]}


def _ours():
    return pd.DataFrame([{"p": P, "q": Q, "init": "standard", "schedule": "base",
                          "seed_index": k, "plateau": 0.66 + 0.01 * k, "final_eval_loss": 0.62,
                          "escape": e, "excess": [0.1, 0.01], "unigram_loss": 0.6663,
                          "bigram_loss": 0.6190}
                         for k, e in enumerate((300.0, np.nan))])


def test_official_runs_are_compared_setting_by_setting(tmp_path):
    path = tmp_path / "official.json"
    path.write_text(json.dumps(_official_runs()))
    provenance, official = load_official(path)
    assert provenance == {"commit": "5807025"} and set(official.init) == {"standard"}
    (row,) = compare_with_official(official, _ours()).to_dict("records")
    assert row["official runs"] == 2
    assert row["official 100-300"] == pytest.approx(unigram_loss(P, Q))
    # final: mean over the last 100 steps, one run at the bigram loss and one at the unigram
    assert row["official final"] == pytest.approx(0.5 * (unigram_loss(P, Q) + entropy_rate(P, Q)))
    assert row["official escape"] == "400, >end" and row["ours escape"] == "300, >end"
    assert row["ours 100-300"] == pytest.approx(0.665)


def test_format_escapes():
    assert format_escapes([250.0, np.inf, np.nan, 75]) == "250, >end, >end, 75"


def test_committed_comparisons_load_with_our_names():
    for name in ("official_comparison.json", "official_comparison_gpu.json"):
        _, official = load_official(REPO_ROOT / "data" / "markov" / name)
        assert set(official.init) <= {"standard", "proposed"} and not official.init.isna().any()


def test_summary_has_one_row_per_chain_schedule_and_init():
    summary = summarize_runs(_ours())
    assert len(summary) == 1
    row = summary.iloc[0]
    assert row.runs == 2 and row.final_excess == pytest.approx(0.01)
    assert row.escape_min == 300.0


def test_figures_draw():
    import matplotlib.pyplot as plt

    runs = _ours().assign(record_steps=[[0, 10], [0, 10]], gap_unigram=0.047)
    plot_excess_curves(runs, "test")
    fig, ax = plt.subplots()
    draw_critical_set(ax, np.linspace(-3, 3, 61), P, Q)
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["global minima", "local minima (unigram)", "local maxima", "saddle"]
    plt.close("all")
