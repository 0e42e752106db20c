"""Trainability experiment: the task, the batched ensemble, the sweep and the loss predictor."""

import itertools

import numpy as np
import pytest
import torch

import tdyn.signalprop.trainability.experiment as trainability
from tdyn.runs.params import ParameterSpec
from tdyn.runs.sweep import sweep
from tdyn.signalprop import simulate
from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.trainability.analysis import (
    exponent_claims,
    predictor_summary,
    quadratic_features,
    split_scores,
)
from tdyn.signalprop.trainability.experiment import sweep_configs
from tdyn.signalprop.trainability.model import (
    Member,
    TrainSettings,
    forward,
    init_ensemble,
    masked_losses,
    train_ensemble,
)
from tdyn.signalprop.trainability.task import TopicTask

TINY_TASK = TopicTask(vocab=6, topics=3, seq_len=6, n_masked=2, concentration=0.3, seed=1)
TINY = TrainSettings(d=8, depth=2, lr=3e-3, steps=60, batch=8, test_size=64, eval_every=30)


def test_samples_hide_exactly_the_masked_positions():
    inputs, targets, masked = TINY_TASK.sample(50, np.random.default_rng(0))
    assert inputs.shape == targets.shape == masked.shape == (50, 6)
    assert np.all(masked.sum(axis=1) == 2)
    assert np.all(inputs[masked] == TINY_TASK.mask_id)
    assert np.all(inputs[~masked] == targets[~masked])
    assert targets.min() >= 0 and targets.max() < TINY_TASK.vocab


def test_bayes_loss_matches_enumeration_over_topics():
    inputs, targets, masked = TINY_TASK.sample(20, np.random.default_rng(3))
    theta = TINY_TASK.topic_distributions()
    total, count = 0.0, 0
    for row in range(20):
        joint = np.array([np.prod([theta[k, w] for w, m in zip(inputs[row], masked[row],
                                                                strict=True) if not m])
                          for k in range(TINY_TASK.topics)])
        post = joint / joint.sum()
        for pos in np.flatnonzero(masked[row]):
            total -= np.log(post @ theta[:, targets[row, pos]])
            count += 1
    assert TINY_TASK.bayes_loss(inputs, targets, masked) == pytest.approx(total / count,
                                                                          rel=1e-10)


def test_bayes_beats_unigram_on_a_large_sample():
    inputs, targets, masked = TINY_TASK.sample(4000, np.random.default_rng(5))
    assert TINY_TASK.bayes_loss(inputs, targets, masked) < TINY_TASK.unigram_loss(targets,
                                                                                  masked)


def test_batched_ensemble_equals_members_trained_one_at_a_time():
    members = [Member(0.5, 0.5, 2.0, seed=0), Member(0.3, 0.8, 1.0, seed=1)]
    settings = TrainSettings(d=8, depth=2, steps=5, batch=4, test_size=16, eval_every=5)
    together = train_ensemble(members, TINY_TASK, settings, dtype=torch.float64)
    for m, member in enumerate(members):
        alone = train_ensemble([member], TINY_TASK, settings, dtype=torch.float64)
        np.testing.assert_allclose(alone.test_curve[0], together.test_curve[m], rtol=1e-10)


def _autograd_forward(params, alphas, inputs):
    """The model's logits written as plain torch operations, for autograd: LN(x) =
    sqrt(d) x / |x|, x <- c_A x + a_A softmax((y W_Q^T)(y W_K^T)^T / sqrt(d)) y W_V^T,
    x <- c_M x + a_M tanh(LN(x) W_1^T) W_2^T, then LN and the readout."""
    def ln(x):
        return x * x.shape[-1] ** 0.5 / torch.linalg.vector_norm(x, dim=-1, keepdim=True)

    x = params["E"][:, inputs]  # (M, batch, n, d)
    a_A, a_M = alphas[:, 0].reshape(-1, 1, 1, 1), alphas[:, 1].reshape(-1, 1, 1, 1)
    d = x.shape[-1]
    for layer in range(params["Q"].shape[1]):
        w = {key: params[key][:, layer, None] for key in ("Q", "K", "V", "W1", "W2")}
        y = ln(x)
        q, k = y @ w["Q"].transpose(-1, -2), y @ w["K"].transpose(-1, -2)
        attn = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)
        x = torch.sqrt(1 - a_A**2) * x + a_A * (attn @ y) @ w["V"].transpose(-1, -2)
        h = torch.tanh(ln(x) @ w["W1"].transpose(-1, -2))
        x = torch.sqrt(1 - a_M**2) * x + a_M * h @ w["W2"].transpose(-1, -2)
    return ln(x) @ params["out"][:, None]


def test_written_out_backward_equals_autograd_of_the_plain_model():
    members = [Member(0.5, 0.3, 2.0, seed=0), Member(0.2, 0.9, 0.7, seed=1),
               Member(0.8, 0.8, 5.0, sigma_A=2.0, seed=2, sigma_V=0.5)]
    settings = TrainSettings(d=8, depth=3)
    params = init_ensemble(members, TINY_TASK, settings, dtype=torch.float64)
    alphas = torch.tensor([[m.alpha_A, m.alpha_M] for m in members], dtype=torch.float64)
    inputs, targets, masked = (torch.as_tensor(a) for a in
                               TINY_TASK.sample(5, np.random.default_rng(0)))
    fast, plain = forward(params, alphas, inputs), _autograd_forward(params, alphas, inputs)
    np.testing.assert_allclose(fast.detach(), plain.detach(), rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        np.testing.assert_allclose(forward(params, alphas, inputs), fast.detach(), rtol=0)
    grads = [torch.autograd.grad(masked_losses(logits, targets, masked).sum(),
                                 list(params.values())) for logits in (fast, plain)]
    for key, g_fast, g_plain in zip(params, *grads, strict=True):
        np.testing.assert_allclose(g_fast, g_plain, rtol=1e-10, atol=1e-12 * g_plain.abs().max(),
                                   err_msg=key)


def test_trained_model_is_the_simulators_block_with_its_weights():
    # The trainability model's fused blocks are the block of tdyn.signalprop.simulate
    # (attention_update then mlp_update, pre-LN interp, tanh), applied with the member's
    # weights as the layer's matrices: the simulator scales unit-variance matrices by
    # sigma_A / d^1.5, sigma_V / sqrt(d), sigma_w / sqrt(d), sigma_2 / sqrt(D), so the scales
    # sigma_A = d, sigma_V = sigma_w = sigma_2 = sqrt(d) apply the trained matrices as they are.
    members = [Member(0.5, 0.3, 2.0, seed=0), Member(0.8, 0.6, 5.0, sigma_A=2.0, seed=2,
                                                      sigma_V=0.5)]
    settings = TrainSettings(d=8, depth=3)
    d = settings.d
    params = init_ensemble(members, TINY_TASK, settings, dtype=torch.float64)
    alphas = torch.tensor([[m.alpha_A, m.alpha_M] for m in members], dtype=torch.float64)
    inputs = torch.as_tensor(TINY_TASK.sample(5, np.random.default_rng(0))[0])
    with torch.no_grad():
        fast = forward(params, alphas, inputs)
        for m, member in enumerate(members):
            arch = Architecture(n=inputs.shape[1], d=d, sigma_A=float(d), sigma_V=d**0.5,
                                sigma_w=d**0.5, sigma_2=d**0.5, alpha_A=member.alpha_A,
                                alpha_M=member.alpha_M, phi="tanh")
            scales = simulate.BatchScales.of([arch], inputs.shape[0], torch.float64, "cpu")
            layers = []
            for layer in range(settings.depth):
                w = simulate.DenseWeights(d, d, [torch.Generator().manual_seed(0)],
                                          torch.float64, "cpu")
                w.matrices = {key: params[key][m, layer][None]
                              for key in ("Q", "K", "V", "W1", "W2")}
                layers.append(w)
            x = simulate.forward(params["E"][m, inputs], layers, scales, arch)
            reference = simulate.layer_norm(x) @ params["out"][m]
            np.testing.assert_allclose(fast[m], reference, rtol=1e-12, atol=1e-12)


def test_training_learns_the_task():
    settings = TrainSettings(d=16, depth=2, lr=1e-2, steps=150, batch=32, test_size=256,
                             eval_every=150)
    result = train_ensemble([Member(0.5, 0.5, 1.0)], TINY_TASK, settings)
    inputs, targets, masked = TINY_TASK.sample(256, np.random.default_rng([0, 2]))
    unigram = TINY_TASK.unigram_loss(targets, masked)
    bayes = TINY_TASK.bayes_loss(inputs, targets, masked)
    # It must close at least a third of the gap between no context and the optimum.
    assert result.test_loss[0] < unigram - (unigram - bayes) / 3
    assert result.diverged_at[0] == -1


def test_split_scores_recover_an_exact_quadratic_and_reject_noise():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=60), rng.normal(size=60)
    target = 1 + x - 2 * y + 0.5 * x * y + y**2
    exact = split_scores(quadratic_features(x, y), target, n_splits=5)
    np.testing.assert_allclose(exact["r2"], 1.0, atol=1e-9)
    np.testing.assert_allclose(exact["spearman"], 1.0, atol=1e-9)
    noise = split_scores(quadratic_features(x, y), rng.normal(size=60), n_splits=50)
    # Held-out R^2 of a fit to pure noise is below zero on average (the fit is overfit).
    assert noise["r2"].mean() < 0


def test_tiny_sweep_through_the_run_store(tmp_path):
    params = _tiny_sweep_params()
    configs = sweep_configs(params)
    assert len(configs) == params["n_alpha"] * params["n_sigma_w"] * params["n_seeds"]
    run = sweep(trainability, params, root=tmp_path)
    table = run.table()
    assert len(table) == len(configs)
    for column in ("test_loss", "lambda_a", "lambda_g", "lambda_a_measured",
                   "lambda_g_measured"):
        assert np.all(np.isfinite(table[column])), column
    for row in table.itertuples():
        assert row.seeds == trainability.seeds(configs[row.config_index], params)
    assert len({row.seeds["init"] for row in table.itertuples()}) == params["n_seeds"]
    resumed = sweep(trainability, params, root=tmp_path)  # nothing left to do
    assert resumed.table().equals(table)


def test_one_configuration_alone_matches_its_ensemble():
    """run_configuration trains an ensemble of one: the member's result does not depend on
    the rest of the ensemble beyond floating-point reduction order."""
    params = _tiny_sweep_params()
    configs = sweep_configs(params)
    together = {p: r for p, r, _ in trainability.run_batch(configs, params)}
    alone = trainability.run_configuration(configs[1], params)
    assert alone.keys() == together[1].keys()
    np.testing.assert_allclose(alone["test_curve"], together[1]["test_curve"], rtol=1e-5)


def _tiny_sweep_params():
    params = {name: p.default for name, p in
              ParameterSpec.load("trainability_sweep").parameters.items()}
    params.update(steps=4, eval_every=2)
    return params


def test_sweep_in_small_ensembles_records_the_same_results(tmp_path):
    """Members are independent given the shared data, so splitting the sweep into ensembles
    changes nothing but floating-point reduction order."""
    params = _tiny_sweep_params()
    configs = sweep_configs(params)
    tables = []
    for name, batch_size in (("whole", None), ("split", 3)):
        run = sweep(trainability, params, batch_size=batch_size, root=tmp_path / name)
        tables.append(run.table().sort_values("config_index").reset_index(drop=True))
    assert len(tables[1]) == len(configs)
    for column in ("test_loss", "train_loss", "lambda_a_measured", "lambda_g_measured"):
        np.testing.assert_allclose(tables[1][column], tables[0][column], rtol=1e-5,
                                   err_msg=column)
    with pytest.raises(ValueError, match="batch_size"):
        sweep(trainability, params, batch_size=0, root=tmp_path / "bad")


def test_sweep_halves_an_ensemble_that_runs_out_of_gpu_memory(tmp_path, monkeypatch):
    params = dict(_tiny_sweep_params(), n_seeds=2)
    configs = sweep_configs(params)
    sizes = []
    real = trainability.train_ensemble

    def small_gpu(members, *args, **kwargs):
        sizes.append(len(members))
        if len(members) > 2:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real(members, *args, **kwargs)

    monkeypatch.setattr(trainability, "train_ensemble", small_gpu)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    run = sweep(trainability, params, root=tmp_path)
    assert sizes == [8, 4, 2, 2, 2, 2]
    assert len(run.table()) == len(configs) == 8


def test_sliced_evaluation_matches_one_pass(monkeypatch):
    import tdyn.signalprop.trainability.model as trainability

    settings = TrainSettings(d=8, depth=2, steps=3, batch=4, test_size=64, eval_every=3)
    members = [Member(0.5, 0.5, 1.0), Member(0.2, 0.2, 2.0, seed=1)]
    one_pass = train_ensemble(members, TINY_TASK, settings, dtype=torch.float64)
    monkeypatch.setattr(trainability, "EVAL_SLICE", 24)  # slices of 24, 24 and 16 sequences
    sliced = train_ensemble(members, TINY_TASK, settings, dtype=torch.float64)
    np.testing.assert_allclose(sliced.test_curve, one_pass.test_curve, rtol=1e-12)


def test_predictor_summary_has_one_row_per_feature_set():
    rows = []
    for a, w, k in itertools.product(np.linspace(0.1, 0.9, 5), np.geomspace(0.3, 5, 5),
                                     range(2)):
        rows.append({"alpha": a, "sigma_w": w, "seed_index": k, "lambda_a": a - w / 5,
                     "lambda_g": w / 5, "lambda_g_inf": w, "lambda_a_measured": a - w / 5,
                     "lambda_g_measured": w / 5, "test_loss": (a - w / 5) ** 2 + 0.01 * k})
    import pandas as pd

    summary = predictor_summary(pd.DataFrame(rows), n_splits=10)
    assert len(summary) == 5
    fit = summary.set_index("predictor").loc["|lambda_a| (linear)", "r2_median"]
    assert fit < 0.99  # (lambda_a)^2 is not linear in |lambda_a| ...
    quad = summary.set_index("predictor").loc["quadratic in lambda_a, lambda_g", "r2_median"]
    assert quad > 0.99  # ... but it is a quadratic of (lambda_a, lambda_g)


def test_sweep_refuses_a_width_below_the_sequence_length():
    params = dict(_tiny_sweep_params(), d=8, seq_len=8)
    with pytest.raises(ValueError, match="d=8 must be at least seq_len"):
        sweep_configs(params)


def test_exponent_claims_pick_the_best_the_near_best_and_the_small_exponents():
    import pandas as pd

    means = pd.DataFrame({"lambda_a": [0.0, 0.05, 0.5, -0.08, 1.0],
                          "lambda_g": [0.02, -0.05, 0.3, 0.2, 0.0],
                          "test_loss": [1.00, 1.01, 1.50, 1.02, 2.0],
                          "test_loss_sd": [0.01, 0.01, 0.01, 0.30, 0.01]})
    claims = exponent_claims(means)
    assert claims.best.name == 0 and claims.noise == 0.01
    assert list(claims.near_best.index) == [0, 1, 3]  # within 2 x 0.01 of 1.00
    assert list(claims.small.index) == [0, 1]  # both |lambda| < 0.1
    with pytest.raises(ValueError, match="threshold"):
        exponent_claims(means, threshold=0)


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="n_masked"):
        TopicTask(seq_len=4, n_masked=4)
    with pytest.raises(ValueError, match="lr"):
        TrainSettings(lr=-1.0)
    with pytest.raises(ValueError, match="members"):
        train_ensemble([], TINY_TASK, TINY)
    with pytest.raises(ValueError, match="train_fraction"):
        split_scores(np.ones((10, 2)), np.ones(10), train_fraction=1.5)


def test_resumed_sweep_records_every_field_bit_for_bit(tmp_path):
    """Delete two results of a finished sweep and resume: the exponents (measured over the
    whole grid, probes drawn per replicate) and the trainings (fixed ensembles) come out the
    same to the last bit, so the files are byte-identical."""
    params = _tiny_sweep_params()
    run = sweep(trainability, params, batch_size=2, root=tmp_path)
    files = sorted(run.results_dir.iterdir())
    before = {p.name: p.read_bytes() for p in files}
    for path in (files[1], files[2]):  # in two different ensembles
        path.unlink()
    trainability._grid_exponents.cache_clear()  # the resumed run measures them again
    again = sweep(trainability, params, batch_size=2, root=tmp_path)
    assert len(again.provenance["sessions"]) == 2
    assert {p.name: p.read_bytes() for p in again.results_dir.iterdir()} == before
