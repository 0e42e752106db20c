"""tdyn.markov.paths: the logit gap split by path, active ReLUs, singular-value shares."""

import math

import numpy as np
import pytest
import torch

from tdyn.markov import chain, reduced
from tdyn.markov.paths import PATHS, conditional_gap, mechanism, path_logits, top_singular_share
from tdyn.markov.transformer import build_model


def _x(p=0.5, q=0.8, batch=6, length=48, seed=0):
    return torch.as_tensor(chain.sample(p, q, batch, length, rng=seed), dtype=torch.long)


def test_paths_sum_to_the_models_logits_and_gap():
    # Large random weights so that every path, attention included, matters.
    model = build_model("standard", d=8, max_len=48, seed=2, dtype=torch.float64)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.7, generator=torch.Generator().manual_seed(7))
    x = _x()
    parts = path_logits(model, x)
    total = sum(parts[k] for k in (*PATHS, "bias"))
    np.testing.assert_allclose(total.detach().numpy(), model(x).detach().numpy(), rtol=0,
                               atol=1e-12)
    m = mechanism(model, x)
    assert m["gap"] == pytest.approx(conditional_gap(model(x).detach(), x), abs=1e-12)
    assert m["gap_skip"] + m["gap_attention"] + m["gap_mlp"] == pytest.approx(m["gap"],
                                                                               abs=1e-10)
    assert min(abs(m["gap_attention"]), abs(m["gap_mlp"])) > 1e-3  # both paths are active


@pytest.mark.parametrize(("e", "w"), [(1.0, -1.0), (math.sqrt(2), -8.0), (0.7, 0.4)])
def test_canonical_point_splits_as_the_reduced_model(e, w):
    # On the rank-one manifold (W_V = 0) the skip path carries e^2 and the MLP 2 w|w| e^2 of
    # the reduced model's gap e^2 (1 + 2 w|w|); attention carries nothing; the ReLUs are on
    # exactly at the positions with x_n = 1 (for e > 0).
    model = build_model("canonical", d=8, max_len=48, seed=4, canonical=(e, w),
                        dtype=torch.float64)
    x = _x(seed=3)
    m = mechanism(model, x)
    assert m["gap_skip"] == pytest.approx(e**2, rel=1e-12)
    assert m["gap_mlp"] == pytest.approx(2 * w * abs(w) * e**2, rel=1e-12)
    assert m["gap_attention"] == 0.0
    assert m["gap"] == pytest.approx(e**2 * reduced.gain(w), rel=1e-12)
    assert m["relu_active"] == pytest.approx(float(x.double().mean()), abs=1e-15)
    assert m["sv_share_W1"] == pytest.approx(1.0, abs=1e-12)
    assert m["norm_WV"] == 0.0 and math.isnan(m["sv_share_WV"])


def test_top_singular_share():
    assert top_singular_share(torch.outer(torch.arange(1.0, 4.0), torch.ones(5))) == (
        pytest.approx(1.0, abs=1e-12))
    assert top_singular_share(torch.eye(4)) == pytest.approx(0.25, abs=1e-12)
    assert top_singular_share(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(0.9)
    assert math.isnan(top_singular_share(torch.zeros(3, 3)))


def test_conditional_gap_needs_both_symbols():
    values = torch.tensor([[1.0, 2.0, 3.0, 5.0]])
    assert conditional_gap(values, torch.tensor([[1, 0, 1, 0]])) == pytest.approx(
        (1 + 3) / 2 - (2 + 5) / 2)
    assert math.isnan(conditional_gap(values, torch.ones(1, 4, dtype=torch.long)))
