"""The entropy-collapse softmax average and the threshold where the annealed average fails."""

import math

import numpy as np
import pytest

from tdyn.signalprop.theory import annealed_excess_threshold, softmax_overlaps


def test_entropy_collapse_overlaps_follow_the_frozen_random_energy_model():
    n = 256
    beta_c = math.sqrt(2.0)  # at rho = 0
    for beta in (0.5, 1.0, 1.4, 2.0, 4.0):
        s2, s11 = softmax_overlaps(n, 0.0, beta * math.sqrt(math.log(n)), "entropy_collapse")
        assert float(s11) == 0.0
        assert float(s2) == pytest.approx(max(0.0, 1.0 - beta_c / beta), abs=1e-12)
    # the threshold grows like 1/sqrt(1 - rho), and the collapsed line has S2 = 0
    rho = np.array([0.0, 0.5, 0.9, 1.0])
    s2, _ = softmax_overlaps(n, rho, 3.0 * math.sqrt(math.log(n)), "entropy_collapse")
    expected = np.maximum(0.0, 1.0 - np.sqrt(2.0 / (1.0 - rho[:3])) / 3.0)
    np.testing.assert_allclose(s2[:3], expected, atol=1e-12)
    assert s2[3] == 0.0


def test_annealed_excess_threshold_is_a_root_and_near_sqrt_log_n_over_2():
    sigma = annealed_excess_threshold(64, rho=0.0, excess=0.5, lo=0.8, n_samples=4000)
    annealed = float(softmax_overlaps(64, 0.0, sigma)[0])
    exact = float(softmax_overlaps(64, 0.0, sigma, "sampled", n_samples=4000)[0])
    assert annealed / exact == pytest.approx(1.5, abs=1e-4)  # same seeded draws: a true root
    # 1.49 at 20,000 samples (the book's number); the sampling error of the exact S2 at 4,000
    # samples moves it by well under 0.05
    assert 1.44 < sigma < 1.54
    assert abs(sigma - math.sqrt(math.log(64) / 2)) < 0.1
    assert math.isnan(annealed_excess_threshold(64, excess=50.0, lo=0.8, hi=1.2,
                                                n_samples=500))


@pytest.mark.parametrize("rho", [0.3, 0.8])
def test_annealed_excess_threshold_is_a_root_of_softmax_overlaps_at_correlated_logits(rho):
    """The search evaluates the sampled S2 on draws it makes once; at rho > 0 the shared part
    of the logits enters too, and the root must still be one of softmax_overlaps itself."""
    sigma = annealed_excess_threshold(16, rho=rho, excess=0.2, n_samples=3000, seed=4)
    annealed = float(softmax_overlaps(16, rho, sigma)[0])
    exact = float(softmax_overlaps(16, rho, sigma, "sampled", n_samples=3000, seed=4)[0])
    assert annealed / exact == pytest.approx(1.2, abs=1e-4)
