"""The m-sweep experiment (tdyn.cooccurrence.msweep): the torch trainer against the numpy
closed forms, the experiment protocol, and the Theorem 3.3 scale."""

import json

import numpy as np
import pytest

from tdyn.cooccurrence.data import sample_training_set
from tdyn.cooccurrence.model import condition1_sigmas, init_params, score_matrix, train
from tdyn.cooccurrence.msweep import (
    EXPERIMENT,
    configurations,
    late_slope,
    run_configuration,
    seeds,
    theorem33_scale,
    train_torch,
)
from tdyn.runs.params import ParameterSpec


@pytest.mark.parametrize("kind", ["onehot", "random"])
def test_torch_trainer_matches_numpy_gradient_descent(kind):
    """Same gradient descent in torch autograd (float64) and with the Appendix-B closed forms:
    losses, kappa, G and the score changes agree to rounding after 200 steps."""
    data = sample_training_set(24, 4, 64, seed=0, random_tokens="iid", embedding_kind=kind)
    s0, s1 = condition1_sigmas(4, 16, 16, 0.3)
    p0 = init_params(64, 16, 16, seed=1, sigma0=s0, sigma1=s1)
    params, h = train(p0, data, 0.05, 200, record=[0, 100, 200])
    ht = train_torch(p0, data, 0.05, 200, record=[0, 100, 200])
    np.testing.assert_allclose(ht["loss"], h["loss"], rtol=1e-10)
    np.testing.assert_allclose(ht["kappa"], h["u_norm2"], rtol=1e-10)
    np.testing.assert_allclose(ht["value_norm2"], h["value_norm2"], rtol=1e-10)
    np.testing.assert_allclose(ht["G"], h["G"], rtol=1e-9, atol=1e-12)
    C = score_matrix(params, data.embeddings) - score_matrix(p0, data.embeddings)
    np.testing.assert_allclose(ht["C"][-1], [C[0, 1], C[1, 0], C[2, 0], C[2, 1]], rtol=1e-8)


def test_theorem33_scale_is_invariant_under_common_rescaling():
    L, m, m1 = 5, 512, 256
    s0, s1 = condition1_sigmas(L, m, m1, 0.4)
    base = theorem33_scale(L, m, m1, s0, s1)
    assert theorem33_scale(L, m, m1, 2 * s0, 2 * s1) == pytest.approx(base)
    # with Condition-1 sigmas it is 1/(L^2 m^1.5) + 1/(L m^2)
    assert base == pytest.approx(1 / (L ** 2 * m ** 1.5) + 1 / (L * m ** 2))


def test_late_slope_recovers_a_power_law():
    t = np.geomspace(1, 1000, 50)
    assert late_slope(t, 3 * t ** -1.3) == pytest.approx(-1.3)
    assert late_slope(np.concatenate([[0.0], t]), np.concatenate([[1.0], t ** -0.5])) == \
        pytest.approx(-0.5)


def test_protocol_and_a_tiny_configuration():
    """Configurations from the comma lists, every seed the run draws reported, and one tiny
    configuration: kappa starts at ||W^T a||^2, the balance kappa - m1 ||W_V||_F^2 moves only by
    the Euler drift (small against kappa's change), and the result is JSON-ready."""
    params = ParameterSpec.load(EXPERIMENT).defaults()
    configs = configurations(params)
    assert configs == [{"m": m, "scale": s} for m in (16, 32) for s in (0.2, 0.4)]
    assert seeds(configs[0], params) == {"data": 0, "init": 1016, "test": 2000}
    assert seeds(configs[0], params)["init"] == seeds(configs[1], params)["init"]
    result = run_configuration(configs[3], params)
    assert result["seeds"] == seeds(configs[3], params)
    assert np.isfinite(result["T1"]) and result["kappa_T1_ratio"] > 1
    drift = abs(result["conserved_end"] - result["conserved_start"])
    kappa_change = result["kappa0"] * (result["kappa_end_ratio"] - 1)
    assert drift < 0.05 * kappa_change
    assert result["late_slope"] < 0 and result["slope_log_law"] < -1
    json.dumps(result)
