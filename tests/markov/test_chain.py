"""tdyn.markov: the binary Markov chain (sampling, information quantities) and its command."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import binomtest

from tdyn.markov import chain
from tests.helpers import assert_within_standard_errors

CHAINS = [(0.5, 0.8), (0.2, 0.3), (0.1, 0.1), (0.9, 0.9), (0.7, 0.9), (0.3, 0.7)]
# A two-sided level so small that a correct sampler fails a check about once in 10^5 runs.
LEVEL = 0.99999


def _covers(successes: int, trials: int, prob: float) -> bool:
    """Clopper-Pearson interval at LEVEL for successes/trials contains prob."""
    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=LEVEL)
    return ci.low <= prob <= ci.high


# -- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "q", "unigram", "bigram"),
    [  # the digest's table (makkuva2024.md, section 1.2), to 4 decimals
        (0.5, 0.8, 0.6663, 0.6190),
        (0.2, 0.3, 0.6730, 0.5446),
        (0.1, 0.1, 0.6931, 0.3251),
        (0.9, 0.9, 0.6931, 0.3251),
        (0.7, 0.9, 0.6853, 0.4858),
    ],
)
def test_unigram_and_bigram_losses_match_the_table(p, q, unigram, bigram):
    assert chain.unigram_loss(p, q) == pytest.approx(unigram, abs=5e-5)
    assert chain.entropy_rate(p, q) == pytest.approx(bigram, abs=5e-5)


@pytest.mark.parametrize(("p", "q"), CHAINS)
def test_stationary_distribution_is_invariant(p, q):
    pi = chain.stationary(p, q)
    assert pi.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(pi @ chain.transition_matrix(p, q), pi, atol=1e-15)


@pytest.mark.parametrize(("p", "q"), CHAINS)
def test_losses_of_the_bayes_and_unigram_predictors(p, q):
    f0, f1 = chain.bayes_logits(p, q)
    assert chain.predictor_loss(f0, f1, p, q) == pytest.approx(chain.entropy_rate(p, q),
                                                                rel=1e-12)
    u = chain.unigram_logit(p, q)
    assert chain.predictor_loss(u, u, p, q) == pytest.approx(chain.unigram_loss(p, q),
                                                              rel=1e-12)
    # The Bayes logits minimize the loss: any perturbation costs.
    for df0, df1 in [(1e-3, 0), (0, 1e-3), (-1e-3, 2e-3)]:
        assert chain.predictor_loss(f0 + df0, f1 + df1, p, q) > chain.entropy_rate(p, q)
    assert f1 - f0 == pytest.approx(chain.logit_gap(p, q))


def test_gap_sign_and_mutual_information():
    assert chain.logit_gap(0.5, 0.8) < 0 < chain.logit_gap(0.2, 0.3)
    assert chain.mutual_information(0.4, 0.6) == pytest.approx(0.0, abs=1e-15)
    for p, q in CHAINS:
        assert chain.mutual_information(p, q) > 0 or p + q == 1


def test_binary_entropy_edges():
    np.testing.assert_allclose(chain.binary_entropy([0.0, 0.5, 1.0]), [0.0, math.log(2), 0.0])


# -- sampling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", [chain.sample, chain.sample_loop])
@pytest.mark.parametrize(("p", "q"), [(0.5, 0.8), (0.2, 0.3), (0.05, 0.97)])
def test_transition_frequencies_within_binomial_bounds(sampler, p, q):
    x = sampler(p, q, 400, 500, rng=7)
    counts = chain.transition_counts(x)
    assert _covers(counts[0, 1], counts[0].sum(), p)  # P(0 -> 1) = p
    assert _covers(counts[1, 0], counts[1].sum(), q)  # P(1 -> 0) = q


@pytest.mark.parametrize("sampler", [chain.sample, chain.sample_loop])
@pytest.mark.parametrize(("p", "q"), [(0.5, 0.8), (0.2, 0.3)])
def test_first_symbol_and_every_position_are_stationary(sampler, p, q):
    x = sampler(p, q, 20000, 64, rng=3)
    pi1 = p / (p + q)
    for n in (0, 1, 63):
        assert _covers(x[:, n].sum(), x.shape[0], pi1), n
    u = sampler(p, q, 20000, 2, rng=4, initial="uniform")
    assert _covers(u[:, 0].sum(), u.shape[0], 0.5)


def test_sequences_are_independent_across_the_batch():
    # Pairs (x_n of sequence 2k, x_n of sequence 2k+1) at the last position: independent.
    p, q = 0.2, 0.3
    x = chain.sample(p, q, 40000, 30, rng=5)
    a, b = x[0::2, -1], x[1::2, -1]
    pi1 = p / (p + q)
    assert _covers(np.sum(a & b), a.size, pi1**2)


def _zero_run_lengths(x: np.ndarray) -> np.ndarray:
    """Lengths of the runs of zeros that start and end inside a sequence."""
    lengths = []
    for row in x.astype(np.int8):
        d = np.diff(row)
        starts = np.flatnonzero(d == -1) + 1  # first 0 after a 1
        ends = np.flatnonzero(d == 1) + 1  # first 1 after a 0
        if starts.size == 0 or ends.size == 0:
            continue
        ends = ends[ends > starts[0]]
        k = min(starts.size, ends.size)
        lengths.append(ends[:k] - starts[:k])
    return np.concatenate(lengths)


def test_run_lengths_are_geometric():
    # Complete runs of zeros last Geometric(p) steps: mean 1/p, variance (1 - p)/p^2, and
    # P(length = 1) = p.
    p, q = 0.3, 0.6
    lengths = _zero_run_lengths(chain.sample(p, q, 100, 2000, rng=11))
    assert_within_standard_errors(lengths.mean(), 1 / p, math.sqrt((1 - p) / p**2 / lengths.size),
                                  "mean run length", z_max=4.5)
    assert _covers(np.sum(lengths == 1), lengths.size, p)
    assert _covers(np.sum(lengths >= 4), lengths.size, (1 - p) ** 3)


def test_sampling_is_seeded_and_shaped():
    a = chain.sample(0.5, 0.8, 5, 33, rng=1)
    b = chain.sample(0.5, 0.8, 5, 33, rng=np.random.default_rng(1))
    c = chain.sample(0.5, 0.8, 5, 33, rng=2)
    assert a.shape == (5, 33) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert set(np.unique(a)) <= {0, 1}
    assert chain.sample(0.5, 0.8, 3, 1, rng=0).shape == (3, 1)
    mc = chain.MarkovChain(0.5, 0.8)
    assert np.array_equal(mc.sample(5, 33, rng=1), a)


def test_entropy_rate_against_a_long_sample():
    # The Bayes predictor's average log-loss on long sequences converges to the entropy rate;
    # 200 independent sequences give a mean and its standard error.
    for p, q in [(0.5, 0.8), (0.2, 0.3)]:
        per_sequence = chain.log_loss_per_sequence(chain.sample(p, q, 200, 5000, rng=9), p, q)
        stderr = per_sequence.std(ddof=1) / math.sqrt(per_sequence.size)
        assert abs(per_sequence.mean() - chain.entropy_rate(p, q)) < 4.5 * stderr
        assert stderr < 2e-3


def test_plug_in_entropy_from_counts():
    p, q = 0.2, 0.3
    counts = chain.transition_counts(chain.sample(p, q, 100, 5000, rng=12)).astype(float)
    rows = counts / counts.sum(axis=1, keepdims=True)
    pi_hat = counts.sum(axis=1) / counts.sum()
    estimate = float(np.sum(pi_hat * chain.binary_entropy(rows[:, 1])))
    assert estimate == pytest.approx(chain.entropy_rate(p, q), abs=5e-3)


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan"), float("inf"), "x", None])
def test_bad_probabilities_raise_naming_the_value(bad):
    with pytest.raises(ValueError, match=r"p=") as info:
        chain.entropy_rate(bad, 0.5)
    assert repr(bad) in str(info.value)
    with pytest.raises(ValueError, match=r"q="):
        chain.sample(0.5, bad, 2, 3, rng=0)
    with pytest.raises(ValueError, match=r"q="):
        chain.MarkovChain(0.5, bad)


@pytest.mark.parametrize(("batch", "length"), [(0, 5), (-1, 5), (3, 0), (3, -2), (2.5, 3),
                                               (3, True)])
def test_bad_batch_or_length_raise(batch, length):
    name = "batch" if not (isinstance(batch, int) and batch > 0) else "length"
    with pytest.raises(ValueError, match=name):
        chain.sample(0.5, 0.8, batch, length, rng=0)
    with pytest.raises(ValueError, match=name):
        chain.sample_loop(0.5, 0.8, batch, length, rng=0)


def test_bad_rng_and_initial_raise():
    with pytest.raises(ValueError, match="rng"):
        chain.sample(0.5, 0.8, 2, 3, rng=None)
    with pytest.raises(ValueError, match="initial"):
        chain.sample(0.5, 0.8, 2, 3, rng=0, initial="steady")


# -- command line ------------------------------------------------------------------------------


def _tdyn(*args):
    return subprocess.run([sys.executable, "-m", "tdyn", *args], capture_output=True, text=True)


def test_cli_json():
    result = _tdyn("markov", "--p", "0.5", "--q", "0.8", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert {"stationary", "entropy_rate", "unigram_loss"} <= set(info)
    np.testing.assert_allclose(info["stationary"], [0.8 / 1.3, 0.5 / 1.3])
    assert info["entropy_rate"] == pytest.approx(chain.entropy_rate(0.5, 0.8))
    assert info["unigram_loss"] == pytest.approx(chain.unigram_loss(0.5, 0.8))


def test_cli_text_and_errors():
    result = _tdyn("markov", "--p", "0.5", "--q", "0.8")
    assert result.returncode == 0, result.stderr
    assert "0.619015 nats" in result.stdout and "0.666278 nats" in result.stdout
    bad = _tdyn("markov", "--p", "1.5", "--q", "0.8")
    assert bad.returncode == 2
    assert "error: p=1.5" in bad.stderr


@pytest.mark.parametrize(("p", "q"), [(0.5, 0.8), (0.2, 0.3), (0.3, 0.7)])
def test_running_mean_contrast_matches_sampled_sequences(p, q):
    # The pooled contrast of the running mean between positions holding a 1 and a 0, measured
    # on 4000 sampled sequences of 64 symbols: each sequence gives one (correlated over
    # positions) estimate, so the standard error is the spread over sequences / sqrt(4000).
    length, batch = 64, 4000
    x = chain.sample(p, q, batch, length, rng=7).astype(float)
    xbar = np.cumsum(x, axis=1) / np.arange(1, length + 1)
    # Per position n: E[xbar_n | x_n = 1] - E[xbar_n | x_n = 0] = Cov(xbar_n, x_n) / Var(x_n)
    # for a binary x_n; estimate it by the per-sequence products, then average over n.
    pi1 = p / (p + q)
    per_seq = ((xbar - xbar.mean(axis=0)) * (x - pi1)).mean(axis=1) / (pi1 * (1 - pi1))
    assert_within_standard_errors(per_seq.mean(), chain.running_mean_contrast(p, q, length),
                                  per_seq.std(ddof=1) / np.sqrt(batch), "running-mean contrast")


def test_running_mean_contrast_of_independent_symbols():
    # p + q = 1: the symbols are independent, only x_n itself is correlated with x_n, and the
    # contrast at n is 1/n (the harmonic number over length).
    length = 50
    assert chain.running_mean_contrast(0.4, 0.6, length) == pytest.approx(
        sum(1 / n for n in range(1, length + 1)) / length, rel=1e-12)
