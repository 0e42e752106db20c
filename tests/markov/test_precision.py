"""tdyn.markov.precision: gradients under float16 / bfloat16 autocast against float32."""

import copy
import math

import numpy as np
import pytest
import torch

from tdyn.markov import chain
from tdyn.markov.precision import (
    PRECISIONS,
    check_precision,
    cosine,
    gradient_agreement,
    gradients,
)
from tdyn.markov.transformer import build_model, train


def _batch(t, batch=16, seed=11):
    return torch.as_tensor(chain.sample(0.5, 0.8, batch, t + 1, rng=seed), dtype=torch.long)


@pytest.fixture(scope="module")
def plateau_agreement():
    # The standard init trained 150 steps in float32 on (0.5, 0.8) at T = 256 (batch 16, the
    # official settings otherwise) sits on the unigram plateau.  The gradient of the mean loss
    # per position is then about 0.5 / 4096 = 1e-4, and W_Q, W_K see it multiplied by
    # products of 0.02-sized weights: far below float16's smallest subnormal, 6e-8.
    states = {}
    result = train(0.5, 0.8, "standard", seq_len=256, batch=16, steps=150, eval_every=150,
                   eval_batch=8, seed=0,
                   monitor=lambda step, m: states.__setitem__(step, copy.deepcopy(
                       m.state_dict())))
    assert abs(result.eval_loss[-1] - chain.unigram_loss(0.5, 0.8)) < 0.01  # on the plateau
    model = build_model("standard", d=8, max_len=256, seed=0)
    model.load_state_dict(states[150])
    return gradient_agreement(model, _batch(256))


def test_scaler_restores_the_gradients_float16_corrupts(plateau_agreement):
    unscaled, scaled = plateau_agreement["float16"], plateau_agreement["float16-scaled"]
    corrupted = [g for g, row in unscaled.items() if row["cosine"] < 0.5]
    assert {"W_Q", "W_K"} <= set(corrupted)  # the issue: these flush at the plateau
    for group in corrupted:
        assert scaled[group]["cosine"] > 0.99, group
        assert scaled[group]["flushed"] < unscaled[group]["flushed"], group
    assert unscaled["W_Q"]["flushed"] > 0.5


def test_bfloat16_keeps_the_direction(plateau_agreement):
    # bfloat16 has float32's exponent range: nothing underflows; its 8 mantissa bits cost a
    # few percent of direction at most (0.976 for W_2 when this test was written).
    for group, row in plateau_agreement["bfloat16"].items():
        assert row["cosine"] > 0.9, group
        assert row["flushed"] < 0.01, group


def test_float32_agrees_with_itself(plateau_agreement):
    for row in plateau_agreement["float32"].values():
        assert row["cosine"] == pytest.approx(1.0, abs=1e-12)
        assert row["flushed"] == 0.0 and row["norm_ratio"] == pytest.approx(1.0, abs=1e-12)


def test_scaled_gradients_back_off_on_overflow():
    # The proposed init starts at a loss of about 20 nats: 2^16 times its gradients overflow
    # float16; the scale is halved until they are finite, as GradScaler does.
    model = build_model("proposed", d=8, max_len=64, seed=0)
    loss, grads, used = gradients(model, _batch(64), "float16-scaled")
    assert loss > 5
    assert used < 2.0 ** 16
    assert all(bool(torch.isfinite(g).all()) for g in grads.values())
    _, reference, _ = gradients(model, _batch(64), "float32")
    assert cosine(grads["W_2"], reference["W_2"]) > 0.99


def test_cosine_conventions():
    a = torch.tensor([1.0, 2.0, 0.0])
    assert cosine(a, 3 * a) == pytest.approx(1.0)
    assert cosine(a, -a) == pytest.approx(-1.0)
    assert cosine(torch.zeros(3), a) == 0.0
    assert math.isnan(cosine(torch.zeros(3), torch.zeros(3)))
    with pytest.raises(ValueError, match="precision"):
        check_precision("float8")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_training_runs_under_every_precision(precision):
    seen = []
    result = train(0.5, 0.8, "standard", seq_len=16, batch=4, steps=6, eval_every=3,
                   eval_batch=4, precision=precision,
                   monitor=lambda step, model: seen.append(step))
    assert seen == result.record_steps == [0, 3, 6]
    assert np.all(np.isfinite(result.eval_loss))


def test_float32_training_is_the_default():
    kwargs = dict(seq_len=16, batch=4, steps=5, eval_every=5, eval_batch=4, seed=3)
    default = train(0.5, 0.8, "proposed", **kwargs)
    explicit = train(0.5, 0.8, "proposed", precision="float32", **kwargs)
    assert default.eval_loss == explicit.eval_loss
    with pytest.raises(ValueError, match="precision"):
        train(0.5, 0.8, precision="half", **kwargs)
