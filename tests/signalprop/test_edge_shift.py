"""The edge-shift experiment (#15): the intervention, the training controls and the reading."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from tdyn.runs.params import ParameterSpec
from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.measure import measured_angle_exponent
from tdyn.signalprop.theory import edge_of_chaos, lambda_a, lambda_a_from_map
from tdyn.signalprop.trainability import edge_shift
from tdyn.signalprop.trainability import edge_shift_analysis as analysis
from tdyn.signalprop.trainability.model import (
    Member,
    TrainSettings,
    _optimizer,
    init_ensemble,
    learning_rate_factor,
    train_ensemble,
)
from tdyn.signalprop.trainability.task import TopicTask

from ..helpers import Z_MAX

TASK = TopicTask(vocab=6, topics=3, seq_len=6, n_masked=2, concentration=0.3, seed=1)
TINY = TrainSettings(d=8, depth=2, lr=3e-3, steps=30, batch=8, test_size=64, eval_every=15)


def defaults(**changes) -> dict:
    return ParameterSpec.load("trainability_edge_shift").validate(
        {**ParameterSpec.load("trainability_edge_shift").defaults(), **changes})


# --------------------------------------------------------------------------------------------
# The intervention moves the edge


def test_value_scale_moves_the_edge_as_stated():
    """At alpha = 0.5 the edge is at sigma_w = 1.39, 1.93, 2.75 for sigma_V = 0.5, 1, 2: the
    closed form's root, checked on the mean-field map itself (no closed form), where the
    one-layer rate from rho = 1 - 1e-4 vanishes to O(eps) (|rate| < 1e-3 against a slope
    d lambda / d sigma_w of order 1)."""
    edges = []
    for sigma_V in (0.5, 1.0, 2.0):
        arch = Architecture(n=12, d=24, alpha_A=0.5, alpha_M=0.5, sigma_V=sigma_V)
        edge = edge_of_chaos(arch)
        assert abs(lambda_a_from_map(arch.replace(sigma_w=edge), eps=1e-4)) < 1e-3
        assert lambda_a_from_map(arch.replace(sigma_w=0.9 * edge), eps=1e-4) < -0.01
        assert lambda_a_from_map(arch.replace(sigma_w=1.1 * edge), eps=1e-4) > 0.01
        edges.append(edge)
    np.testing.assert_allclose(edges, [1.39, 1.93, 2.75], atol=0.01)


def test_value_scale_changes_the_phase_of_finite_networks_at_fixed_alpha_and_sigma_w():
    """At (alpha, sigma_w) = (0.5, 2), between the two edges, a finite network (d = 128,
    n = 12, 32 seeds) is chaotic with sigma_V = 0.5 and ordered with sigma_V = 2: each measured
    lambda_a is more than Z_MAX standard errors from zero, with the theory's sign."""
    archs = [Architecture(n=12, d=128, alpha_A=0.5, alpha_M=0.5, sigma_w=2.0, sigma_V=v)
             for v in (0.5, 2.0)]
    mean, sem = measured_angle_exponent(archs, layers=1, gap=1e-3, n_seeds=32, seed=3)
    theory = np.array([lambda_a(a) for a in archs])
    assert theory[0] > 0 > theory[1]
    assert mean[0] > Z_MAX * sem[0] and -mean[1] > Z_MAX * sem[1]


# --------------------------------------------------------------------------------------------
# The training controls


def test_value_weights_start_at_the_value_scale():
    """std(W_V) = sigma_V / sqrt(d): the sample standard deviation of its depth * d * d = 128
    entries has relative standard error 1 / sqrt(2 * 128) = 0.0625; allowed: Z_MAX of them."""
    settings = TrainSettings(d=8, depth=2)
    members = [Member(0.5, 0.5, 1.0, seed=0, sigma_V=v) for v in (0.5, 2.0)]
    weights = init_ensemble(members, TASK, settings)["V"].detach()
    for m, member in enumerate(members):
        ratio = weights[m].std().item() / (member.sigma_V / math.sqrt(settings.d))
        assert abs(ratio - 1) < Z_MAX * 0.0625


def test_the_same_seed_draws_the_same_weights_up_to_the_value_scale():
    """Common random numbers: members that differ only in sigma_V share every other weight."""
    settings = TrainSettings(d=8, depth=2)
    weights = init_ensemble([Member(0.5, 0.5, 1.0, seed=4, sigma_V=v) for v in (0.5, 2.0)],
                            TASK, settings)
    for key, value in weights.items():
        if key != "V":
            assert torch.equal(value[0], value[1]), key
    torch.testing.assert_close(4 * weights["V"][0], weights["V"][1])


def test_member_refuses_a_nonpositive_value_scale():
    with pytest.raises(ValueError, match="sigma_V"):
        Member(0.5, 0.5, 1.0, sigma_V=0.0)


def test_cosine_schedule_falls_from_one_to_zero():
    assert learning_rate_factor(0, 100, "cosine") == 1.0
    assert learning_rate_factor(50, 100, "cosine") == pytest.approx(0.5)
    assert learning_rate_factor(100, 100, "cosine") == pytest.approx(0.0, abs=1e-15)
    assert learning_rate_factor(37, 100, "constant") == 1.0
    with pytest.raises(ValueError, match="schedule"):
        learning_rate_factor(1, 10, "linear")


def test_scaled_value_rule_multiplies_only_the_value_learning_rate():
    settings = TrainSettings(d=8, depth=2, lr=0.01, value_lr="scaled")
    members = [Member(0.5, 0.5, 1.0, seed=k, sigma_V=2.0) for k in range(2)]
    params = init_ensemble(members, TASK, settings)
    opt = _optimizer(params, members, settings)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(params["V"])] == pytest.approx(0.02)
    assert all(lrs[id(t)] == 0.01 for key, t in params.items() if key != "V")
    mixed = [Member(0.5, 0.5, 1.0, sigma_V=v) for v in (0.5, 2.0)]
    with pytest.raises(ValueError, match="one sigma_V"):
        _optimizer(init_ensemble(mixed, TASK, settings), mixed, settings)


def test_cosine_schedule_changes_training_and_validation_has_its_own_set():
    members = [Member(0.5, 0.5, 1.0, seed=0)]
    constant = train_ensemble(members, TASK, TINY)
    cosine = train_ensemble(members, TASK, TrainSettings(**{**TINY.__dict__,
                                                            "schedule": "cosine",
                                                            "validation_size": 64}))
    assert constant.validation_loss is None
    assert np.isfinite(cosine.validation_loss).all()
    assert cosine.validation_loss[0] != cosine.test_loss[0]
    assert cosine.test_loss[0] != constant.test_loss[0]


# --------------------------------------------------------------------------------------------
# The experiment


def test_configurations_cover_every_arm_and_group_into_ensembles():
    params = defaults()
    configs = edge_shift.configurations(params)
    arms = pd.Series([c["arm"] for c in configs]).value_counts()
    # 2 sigma_V x 2 alpha x 3 sigma_w x 2 lr x 3 seeds; arms: 2 sigma_V x 1 alpha x 3 x 2 x 3
    assert arms.to_dict() == {"main": 72, "value": 36, "deep": 36}
    keys = {edge_shift.ensemble_key(c) for c in configs}
    # depth 2 fixed, depth 2 scaled per sigma_V (2), depth 4 fixed; times 2 learning rates
    assert len(keys) == 2 * (1 + 2 + 1)
    assert len({tuple(sorted(c.items())) for c in configs}) == len(configs)


def test_lists_are_checked_in_one_line():
    with pytest.raises(ValueError, match="comma-separated"):
        edge_shift.parse_values("0.5;2")
    with pytest.raises(ValueError, match="positive"):
        edge_shift.parse_values("0.5,-1")
    with pytest.raises(ValueError, match="twice"):
        edge_shift.parse_values("1,1")
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        edge_shift.parse_alphas("0.5,1")


def test_run_batch_trains_every_configuration_with_its_exponents_and_edges():
    params = defaults(sigma_Vs="0.5", alphas="0.5", n_sigma_w=3, steps=4, eval_every=2,
                      n_seeds=2, lrs="0.01", deep_depth=3)
    configs = edge_shift.configurations(params)
    results = dict((p, r) for p, r, _ in edge_shift.run_batch(configs, params))
    assert sorted(results) == list(range(len(configs)))
    for position, config in enumerate(configs):
        result = results[position]
        arch = edge_shift.architecture(params, config)
        assert result["lambda_a_fp"] == pytest.approx(lambda_a(arch))
        assert result["lambda_a_ln"] == pytest.approx(
            lambda_a(arch, at="ln-scale", depth=config["depth"]))
        assert result["edge_sigma_w_fp"] == pytest.approx(edge_of_chaos(arch))
        assert np.isfinite(result["test_loss"]) and np.isfinite(result["validation_loss"])
        assert result["eval_steps"] == [2, 4]
    # an ensemble's members do not depend on the rest of it: alone, the same numbers
    alone = edge_shift.run_configuration(configs[0], params)
    assert alone["test_loss"] == pytest.approx(results[0]["test_loss"], rel=1e-5)


# --------------------------------------------------------------------------------------------
# The reading


def test_parabola_vertex_finds_an_interior_minimum_and_flags_the_ends():
    x = np.log(np.geomspace(0.5, 8, 6))
    vertex, censored = analysis.parabola_vertex(x, (x - 0.3) ** 2)
    assert not censored and vertex == pytest.approx(0.3)
    assert analysis.parabola_vertex(x, x) == (pytest.approx(x[0]), True)
    assert analysis.parabola_vertex(x, -x) == (pytest.approx(x[-1]), True)


def synthetic_table(optimum, seeds=3, noise=0.0, rng=None) -> pd.DataFrame:
    """A results table whose test loss is (log sigma_w - log optimum(sigma_V, alpha))^2 plus
    noise, with two learning rates where the validation loss prefers lr = 0.01 and the test
    loss, adversarially, prefers 0.003."""
    rows = []
    rng = rng or np.random.default_rng(0)
    for sigma_V in (0.5, 1.0, 2.0):
        for alpha in (0.1, 0.4, 0.7):
            edge = 1.0 + sigma_V + alpha
            for sigma_w in np.geomspace(0.5, 8, 7):
                for lr in (0.003, 0.01):
                    for k in range(seeds):
                        loss = (np.log(sigma_w) - np.log(optimum(edge, alpha))) ** 2
                        loss += noise * rng.standard_normal()
                        bump = 0.0 if lr == 0.01 else 0.1
                        rows.append({
                            "arm": "main", "depth": 4, "value_lr": "fixed", "sigma_V": sigma_V,
                            "alpha": alpha, "sigma_w": sigma_w, "lr": lr, "seed_index": k,
                            "test_loss": loss + (0.1 - bump), "validation_loss": loss + bump,
                            "lambda_a_fp": np.log(sigma_w / edge), "lambda_g_fp": 0.0,
                            "lambda_a_ln": np.log(sigma_w / edge), "lambda_g_ln": 0.0,
                            "edge_sigma_w_fp": edge, "edge_sigma_w_ln": edge})
    return pd.DataFrame(rows)


def test_learning_rate_is_chosen_by_validation_never_by_test():
    points = analysis.point_losses(synthetic_table(lambda edge, alpha: edge))
    assert (points["lr"] == 0.01).all()


def test_optimum_on_the_edge_gives_slope_one_and_exponents_transfer():
    table = synthetic_table(lambda edge, alpha: edge)
    stats = analysis.statistics(table)
    assert stats["slope_fp_all"] == pytest.approx(1.0, abs=0.02)
    exponents = "quadratic in lambda_a, lambda_g at q*"
    blind = "quadratic in alpha, log sigma_w (sigma_V-blind)"
    assert stats[f"r2::{exponents}::all"] == pytest.approx(1.0, abs=1e-9)
    assert stats[f"r2::{blind}::all"] < 0.9
    assert stats["r2::null (the training slice's mean)::all"] <= 0


def test_optimum_fixed_in_sigma_w_gives_slope_zero_and_the_blind_model_transfers():
    table = synthetic_table(lambda edge, alpha: 2.0 + alpha)
    stats = analysis.statistics(table)
    assert stats["slope_fp_all"] == pytest.approx(0.0, abs=0.05)
    blind = "quadratic in alpha, log sigma_w (sigma_V-blind)"
    exponents = "quadratic in lambda_a, lambda_g at q*"
    assert stats[f"r2::{blind}::all"] > 0.99 > stats[f"r2::{exponents}::all"]


def test_seed_bootstrap_brackets_the_full_sample_value():
    table = synthetic_table(lambda edge, alpha: edge, seeds=4, noise=0.05)
    boot = analysis.seed_bootstrap(table, n_boot=20, seed=1)
    slope = boot.loc["slope_fp_all"]
    assert slope["low"] <= slope["value"] <= slope["high"]
    assert slope["high"] > slope["low"]


def test_resampled_seeds_weight_the_means():
    table = synthetic_table(lambda edge, alpha: edge, seeds=2, noise=0.1)
    twice_first = analysis.point_losses(table, seeds=[0, 0])
    first = analysis.point_losses(table[table["seed_index"] == 0])
    pd.testing.assert_series_equal(twice_first["test_loss"], first["test_loss"])


def noisy_table() -> pd.DataFrame:
    """A synthetic table with four seeds, a few diverged trainings (seed 3 of one point at both
    learning rates) and its rows out of order."""
    table = synthetic_table(lambda edge, alpha: edge, seeds=4, noise=0.05)
    table.loc[[5, 130, 131, 400], "test_loss"] = np.inf
    table.loc[[77, 250], "validation_loss"] = np.nan
    point = (table["sigma_V"] == 1.0) & (table["alpha"] == 0.4) & (table["sigma_w"] == 8.0)
    table.loc[point & (table["seed_index"] == 3), "test_loss"] = np.inf
    return table.sample(frac=1, random_state=0)


def test_resampled_seeds_read_as_their_rows_repeated():
    """Seed weights are repetitions: a resample reads as the table of its draws' rows (the
    means agree to rounding: count * loss there, loss + loss + ... here)."""
    table = noisy_table()
    drawn = [3, 0, 3, 3]
    weighted = analysis.point_losses(table, seeds=drawn)
    repeated = analysis.point_losses(pd.concat([table[table["seed_index"] == k] for k in drawn]))
    pd.testing.assert_frame_equal(weighted, repeated, check_dtype=False, rtol=1e-12)
    assert weighted["diverged_seeds"].max() == 3  # the diverged seed 3, drawn three times


def test_seed_bootstrap_is_the_percentiles_of_statistics_on_its_resamples():
    """The bootstrap's resamples, drawn as it draws them, each read by :func:`statistics`
    afresh, give its value and its interval exactly."""
    table = noisy_table()
    seeds = np.sort(table["seed_index"].unique())
    rng = np.random.default_rng(3)
    draws = pd.DataFrame([analysis.statistics(table, rng.choice(seeds, size=len(seeds)))
                          for _ in range(25)])
    expected = pd.DataFrame({"value": pd.Series(analysis.statistics(table)),
                             "low": draws.quantile(0.05), "high": draws.quantile(0.95)})
    boot = analysis.seed_bootstrap(table, n_boot=25, seed=3, level=0.9)
    pd.testing.assert_frame_equal(boot, expected, check_exact=True)
    assert (boot["high"] > boot["low"]).sum() > len(boot) / 2  # the resamples do differ


def test_average_ranks_are_scipys():
    from scipy.stats import rankdata

    rng = np.random.default_rng(0)
    for values in (rng.standard_normal(17), rng.integers(0, 4, 23).astype(float),
                   np.array([2.0, -0.0, 0.0, np.inf, 2.0])):
        np.testing.assert_array_equal(analysis._average_ranks(values), rankdata(values))


def test_value_arm_shift_compares_the_optimum_under_both_learning_rate_rules():
    """Main arm optimum on the edge, value arm optimum fixed at 2: the main shift equals the
    edge's shift between the extreme sigma_V, the value shift is 0."""
    main = synthetic_table(lambda edge, alpha: edge)
    value = synthetic_table(lambda edge, alpha: 2.0)
    value = value[value["sigma_V"].isin([0.5, 2.0]) & (value["alpha"] == 0.4)].assign(
        arm="value", value_lr="scaled")
    optima = analysis.slice_optima(analysis.point_losses(pd.concat([main, value])))
    shifts = analysis.value_lr_shift(optima)
    assert shifts["edge_shift_fp"] == pytest.approx(1.5)
    assert shifts["main_shift"] == pytest.approx(1.5, abs=0.05)
    assert shifts["value_shift"] == pytest.approx(0.0, abs=0.05)


def test_depth_transfer_scores_the_deep_arm_with_depth_scaled_exponents():
    """A loss that is a function of L lambda_a: the depth-scaled exponents carry over from the
    main depth to a deeper arm exactly, the depth-blind model does not."""
    main = synthetic_table(lambda edge, alpha: edge)
    deep = main[main["alpha"] == 0.4].assign(arm="deep", depth=12)
    for frame, depth in ((main, 4), (deep, 12)):
        frame["test_loss"] = (depth * frame["lambda_a_fp"]) ** 2
        frame["validation_loss"] = frame["test_loss"] + np.where(frame["lr"] == 0.01, 0, 1)
    scores = analysis.depth_transfer(analysis.point_losses(pd.concat([main, deep])))
    assert scores["quadratic in L lambda_a, L lambda_g at q*"][0] == pytest.approx(1.0)
    assert scores["quadratic in alpha, log sigma_w (depth-blind)"][0] < 0.5


def test_flatness_reads_the_last_quarter_of_the_chosen_curves():
    table = synthetic_table(lambda edge, alpha: edge, seeds=2)
    table["eval_steps"] = [[100, 200, 300, 400]] * len(table)
    table["test_curve"] = [[3.0, 2.0, 1.5, 1.4]] * len(table)
    drops = analysis.flatness(table)
    assert len(drops) == len(analysis.point_losses(table))
    assert np.allclose(drops, 0.1)
