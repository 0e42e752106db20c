"""The measured forms of Theorem 3.1's bounds, Lemma 4.3, Proposition E.21, Corollary F.13 and
Lemma 4.1 (tdyn.cooccurrence.checks), on hand-made histories and on a short training run at
the test suite's small Condition-1 sizes."""

from dataclasses import replace

import numpy as np
import pytest

from tdyn.cooccurrence.checks import (
    GRAM_SIGNS,
    corollary_f13_fractions,
    lemma41_ratio,
    lemma43_constant,
    phase1_changes,
    proposition_e21_ratio,
    theorem31_orders,
    unequal_type_counts,
)
from tdyn.cooccurrence.data import CooccurrenceData, sample_training_set
from tdyn.cooccurrence.model import (
    condition1_sigmas,
    forward,
    g_sums,
    init_params,
    phase_times,
    train,
)


def test_lemma43_constant_on_a_hand_made_history():
    """G1' = G2' = 1 and -G3' = 1.5: both inequalities hold with C = 1/4 (the lower one with
    1/2, the upper with 1/4); outside [T_half, T1] nothing counts."""
    h = {"t": np.array([0.0, 1.0, 2.0, 3.0]),
         "Gdot": np.array([[1, 1, 0.0], [1, 1, -1.5], [1, 1, -1.5], [1, 1, -5.0]])}
    assert lemma43_constant(h, 1.0, 2.0) == pytest.approx(0.25)
    assert lemma43_constant(h, 1.0, 3.0) < 0  # -G3' = 5 > G1' + G2' breaks the upper bound
    with pytest.raises(ValueError, match="no recorded time"):
        lemma43_constant(h, 5.0, 6.0)


def test_proposition_e21_and_corollary_f13_on_hand_made_histories():
    h = {"t": np.array([0.0, 1.0, 2.0]),
         "S": np.array([[3, 1, 1, 1], [2, 1.2, 1.0, 1], [1, 0.5, 0.5, 0.2]]),
         "gram": np.array([[0, 0, 0, 1, 1], [1, -1, -1, 2, 2], [2, -2, 0, 3, 1]])}
    assert proposition_e21_ratio(h, 1.0, n=10, F0=0.01) == pytest.approx(0.2 / (10 * 0.01))
    np.testing.assert_allclose(corollary_f13_fractions(h, 0.0), [1, 1, 0.5, 1, 0.5])
    assert list(GRAM_SIGNS) == [1, -1, -1, 1, 1]


def test_theorem31_orders():
    orders = theorem31_orders(m=100, L=4)
    assert orders["neuron_corr"] == orders["value_gram"] == pytest.approx(0.01)
    assert orders["scores"] == pytest.approx(1e-3 * (0.25 + 0.1))
    assert orders["self_corr"] == pytest.approx(1e-4)


def test_phase1_changes_are_zero_without_training_and_track_kappa():
    data = sample_training_set(12, 4, 30, seed=0)
    p0 = init_params(30, 8, 6, seed=1, sigma0=0.2, sigma1=0.2)
    ch = phase1_changes(p0, p0, data.embeddings)
    assert all(ch[k] == 0 for k in ("neuron_corr", "value_gram", "scores", "self_corr"))
    assert ch["kappa_ratio"] == 1
    doubled = replace(p0, W=2 * p0.W)
    assert phase1_changes(p0, doubled, data.embeddings)["kappa_ratio"] == pytest.approx(4)


@pytest.fixture(scope="module")
def phase1_run():
    """The test suite's small Condition-1 regime (n = 48, L = 4, d = 83, m = m1 = 32, scale
    0.1, distinct random words), recorded every step through Phase 1."""
    n, L, d, m, m1 = 48, 4, 83, 32, 32
    data = sample_training_set(n, L, d, seed=0)
    s0, s1 = condition1_sigmas(L, m, m1, 0.1)
    p0 = init_params(d, m, m1, seed=100, sigma0=s0, sigma1=s1)
    _, h = train(p0, data, 0.05, 80, record=np.arange(81))
    return data, p0, s0, s1, h


def test_lemma43_and_e21_hold_in_phase1(phase1_run):
    """Lemma 4.3 holds on [T_0.5, T1] with some C in (0, 1); Proposition E.21's ratio
    |S_I2 - S_I3| / (n F) is of order one (below 3) over Phase 1."""
    data, p0, _, _, h = phase1_run
    times = phase_times(h)
    assert np.isfinite(times["T1"]) and times["T_half"] < times["T1"]
    assert 0 < lemma43_constant(h, times["T_half"], times["T1"]) < 1
    F0 = np.abs(forward(p0, data).F).max()
    assert proposition_e21_ratio(h, times["T1"], data.n, F0) < 3


def test_lemma41_rate_near_one_sixth(phase1_run):
    """At g = 1/2 and uniform attention dG(mu_1)/dt = D(mu_1) (kappa + m1 Gamma_11) + cross
    terms with D(mu_1) = 1/6, and kappa + m1 Gamma_11 = (sigma1^2 + sigma0^2) m m1 up to the
    sampling error of the Gaussian init (relative s.d. about sqrt(2/m) = 0.25 at m = 32, plus
    the cross terms): the ratio lies within a factor 2 of 1/6."""
    data, p0, s0, s1, _ = phase1_run
    assert 1 / 12 < lemma41_ratio(p0, data, s0, s1) < 1 / 3


def test_unequal_type_counts_follows_gradient_descent_on_the_reduced_set():
    """The segmented torch training of unequal_type_counts is gradient descent of
    tdyn.cooccurrence.model.train on the set without the dropped type-3 entries; at t = 0
    every g is about 1/2, so Lemma 4.4's ratio is (16 - 8) / 8 = 1."""
    run = unequal_type_counts(keep_type3=8, steps=200, every=100)
    np.testing.assert_array_equal(run["counts"], [48, 16, 8, 16])
    np.testing.assert_allclose(run["t"], [0.0, 5.0, 10.0])
    assert abs(run["lemma44"][0] - 1.0) < 0.02
    full = sample_training_set(96, 4, 200, seed=0)
    keep = np.ones(full.n, dtype=bool)
    keep[np.flatnonzero(full.types == 3)[8:]] = False
    data = CooccurrenceData(full.tokens[keep], full.types[keep], full.y[keep], full.embeddings)
    sigma0, sigma1 = condition1_sigmas(4, 32, 32, 0.1)
    end, history = train(init_params(200, 32, 32, seed=100, sigma0=sigma0, sigma1=sigma1),
                         data, lr=0.05, steps=200, record=[0, 100, 200])
    np.testing.assert_allclose(run["S"], history["S"], rtol=1e-9)
    np.testing.assert_allclose(run["G"], history["G"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(run["S"][-1], g_sums(forward(end, data).g, data.types),
                               rtol=1e-9)
