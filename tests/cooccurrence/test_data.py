"""Data of the co-occurrence task: Definition 2.1 and Assumption 2.3 over many seeds."""

import numpy as np
import pytest

from tdyn.cooccurrence.data import (
    N_SPECIAL,
    TYPE_LABELS,
    TYPE_PROBABILITIES,
    TYPE_TARGETS,
    max_distinct_n,
    orthonormal_embeddings,
    random_slot_count,
    sample_distribution,
    sample_training_set,
    type_counts,
    with_noise_tokens,
)

SEEDS = range(25)


def _check_entries(data):
    """Every entry: mu_3 exactly once, its type's targets exactly once each, the other target
    absent, all other positions random words (index >= 3), label matching the type."""
    for row, k, y in zip(data.tokens, data.types, data.y, strict=True):
        assert np.sum(row == 2) == 1
        for target in (0, 1):
            assert np.sum(row == target) == (1 if target in TYPE_TARGETS[k - 1] else 0)
        assert np.sum(row >= 3) == data.L - 1 - len(TYPE_TARGETS[k - 1])
        assert y == TYPE_LABELS[k - 1]
    assert data.tokens.min() >= 0 and data.tokens.max() < data.d


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "L", "d"), [(60, 5, 303), (12, 4, 40), (6, 3, 10), (36, 8, 300)])
def test_training_set_satisfies_assumption_2_3(seed, n, L, d):
    data = sample_training_set(n, L, d, seed=seed)
    _check_entries(data)
    # (i) exact type fractions
    assert np.array_equal(np.bincount(data.types, minlength=5)[1:], type_counts(n))
    np.testing.assert_allclose(type_counts(n) / n, TYPE_PROBABILITIES, rtol=0, atol=1e-15)
    # (ii) every random word distinct across the whole training set
    random_words = data.tokens[data.tokens >= 3]
    assert len(np.unique(random_words)) == random_words.size == random_slot_count(
        type_counts(n), L)


@pytest.mark.parametrize("seed", SEEDS)
def test_iid_training_set_keeps_fractions_and_may_repeat_words(seed):
    data = sample_training_set(60, 5, 64, seed=seed, random_tokens="iid")
    _check_entries(data)
    assert np.array_equal(np.bincount(data.types, minlength=5)[1:], [30, 10, 10, 10])
    random_words = data.tokens[data.tokens >= 3]
    assert len(np.unique(random_words)) < random_words.size  # 160 slots, 61 words


def test_vocabulary_too_small_raises():
    # the paper's experiment: 160 random slots, 61 random words
    with pytest.raises(ValueError, match="160 random-word slots but d - 3 = 61"):
        sample_training_set(60, 5, 64, seed=0)
    n_max = max_distinct_n(5, 64)
    sample_training_set(n_max, 5, 64, seed=0)  # the largest allowed n works
    with pytest.raises(ValueError, match="n\\*L too large"):
        sample_training_set(n_max + 6, 5, 64, seed=0)
    # exactly at the edge: 10 slots per 6 entries at L=4, d=23 holds 20 random words
    sample_training_set(12, 4, 23, seed=0)
    with pytest.raises(ValueError, match="n\\*L too large"):
        sample_training_set(12, 4, 22, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"n": 10}, "n=10"), ({"L": 2}, "L=2"), ({"d": 3}, "d=3"), ({"seed": -1}, "seed=-1"),
     ({"random_tokens": "sometimes"}, "random_tokens"), ({"n": 6.0}, "n=6.0")],
)
def test_invalid_arguments_name_the_parameter(kwargs, name):
    args = {"n": 12, "L": 4, "d": 40, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=name):
        sample_training_set(**args)


def test_positions_uniform():
    """Positions do not matter to the model, but Definition 2.1 draws them uniformly: the
    position of mu_3 over 6000 entries is uniform on L = 4 places (chi-square, 3 dof, 0.1%
    critical value 16.27)."""
    data = sample_distribution(6000, 4, 20, seed=3)
    counts = np.bincount(np.argmax(data.tokens == 2, axis=1), minlength=4)
    chi2 = np.sum((counts - 1500.0) ** 2 / 1500.0)
    assert chi2 < 16.27


@pytest.mark.parametrize("seed", range(5))
def test_distribution_sampler_type_frequencies(seed):
    """Fresh samples from D: type frequencies within 4 binomial standard errors of
    (1/2, 1/6, 1/6, 1/6) (4 s.e.: a false alarm has probability < 1e-4 per type)."""
    n = 6000
    data = sample_distribution(n, 5, 64, seed=seed)
    _check_entries(data)
    freq = np.bincount(data.types, minlength=5)[1:] / n
    p = np.array(TYPE_PROBABILITIES)
    assert np.all(np.abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / n))


@pytest.mark.parametrize("kind", ["onehot", "random"])
def test_embeddings_orthonormal(kind):
    E = orthonormal_embeddings(30, kind, seed=4)
    np.testing.assert_allclose(E.T @ E, np.eye(30), atol=1e-12)
    data = sample_training_set(12, 4, 30, seed=4, embedding_kind=kind)
    X = data.X
    assert X.shape == (12, 30, 4)
    np.testing.assert_allclose(np.einsum("idl,idl->il", X, X), 1.0, atol=1e-12)


def test_noise_tokens_never_repeat_and_keep_the_special_words():
    """with_noise_tokens: one fresh column per random slot (no token vector repeats), the
    special words untouched, labels and types unchanged, and noise of unit mean squared norm:
    ||z||^2 of a N(0, I_d/d) vector has mean 1 and s.d. sqrt(2/d), so the mean over k vectors
    lies within 4 sqrt(2/(d k)) of 1."""
    data = sample_training_set(60, 5, 64, seed=0, random_tokens="iid")
    noisy = with_noise_tokens(data, seed=3)
    slots = data.tokens >= N_SPECIAL
    k = int(slots.sum())
    assert noisy.n_vectors == N_SPECIAL + k and noisy.d == data.d
    assert len(np.unique(noisy.tokens[slots])) == k
    np.testing.assert_array_equal(noisy.tokens[~slots], data.tokens[~slots])
    np.testing.assert_array_equal(noisy.embeddings[:, :N_SPECIAL], data.embeddings[:, :N_SPECIAL])
    np.testing.assert_array_equal(noisy.y, data.y)
    norms = np.sum(noisy.embeddings[:, N_SPECIAL:] ** 2, axis=0)
    assert abs(norms.mean() - 1) < 4 * np.sqrt(2 / (64 * k))
    assert noisy.counts().shape == (60, N_SPECIAL + k)
    with pytest.raises(ValueError, match="seed=-1"):
        with_noise_tokens(data, seed=-1)
