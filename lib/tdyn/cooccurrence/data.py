"""Data of the word co-occurrence task (Yang, Kailkhura, Wang & Liang 2024).

Definition 2.1: orthonormal word embeddings ``mu_1, ..., mu_d``; ``mu_1`` and ``mu_2`` are the
two target words, ``mu_3`` the common token, ``mu_4 ... mu_d`` the irrelevant ("random")
words.  Every entry holds ``mu_3`` once at a uniformly random position and is one of four
types:

=====  ==================  =====  ===========
type   targets present      y      probability
=====  ==================  =====  ===========
1      mu_1 and mu_2        +1     1/2
2      mu_1 only            -1     1/6
3      mu_2 only            -1     1/6
4      none                 -1     1/6
=====  ==================  =====  ===========

all other positions hold random words.  Assumption 2.3 (training set): (i) the type fractions
are exactly (1/2, 1/6, 1/6, 1/6); (ii) every random word is distinct across the whole training
set.  Tokens are stored as 0-based indices into the embedding columns (index 0 is ``mu_1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TYPE_PROBABILITIES = (1 / 2, 1 / 6, 1 / 6, 1 / 6)
"""Probabilities of sample types 1-4 under Definition 2.1."""
TYPE_LABELS = (1, -1, -1, -1)
"""Label y of sample types 1-4."""
TYPE_TARGETS = ((0, 1), (0,), (1,), ())
"""Target words (0-based token indices) present in sample types 1-4."""
COMMON = 2
"""0-based token index of the common token mu_3."""
N_SPECIAL = 3
"""Tokens mu_1, mu_2, mu_3 are special; indices >= 3 are random words."""
RANDOM_TOKEN_MODES = ("distinct", "iid")


@dataclass(frozen=True)
class CooccurrenceData:
    """A data set: ``tokens[i, l]`` is the 0-based word index at position ``l`` of entry ``i``.

    ``embeddings`` has the orthonormal word vectors as columns, so ``X[i] = embeddings[:,
    tokens[i]]`` is the d x L matrix of Definition 2.1.
    """

    tokens: np.ndarray
    types: np.ndarray
    y: np.ndarray
    embeddings: np.ndarray

    @property
    def n(self) -> int:
        return self.tokens.shape[0]

    @property
    def L(self) -> int:
        return self.tokens.shape[1]

    @property
    def d(self) -> int:
        return self.embeddings.shape[0]

    @property
    def n_vectors(self) -> int:
        """Number of token vectors (columns of ``embeddings``): d for words, more for the
        Gaussian noise tokens of :func:`with_noise_tokens`."""
        return self.embeddings.shape[1]

    @property
    def X(self) -> np.ndarray:
        """The n x d x L stack of inputs X^(i) = [x_1, ..., x_L]."""
        return np.transpose(self.embeddings[:, self.tokens], (1, 0, 2))

    def counts(self) -> np.ndarray:
        """n x n_vectors matrix: how often token vector k occurs in entry i."""
        out = np.zeros((self.n, self.n_vectors))
        np.add.at(out, (np.arange(self.n)[:, None], self.tokens), 1.0)
        return out


def orthonormal_embeddings(d: int, kind: str = "onehot", seed: int | None = None) -> np.ndarray:
    """d x d matrix whose columns are orthonormal word vectors mu_1..mu_d.

    ``kind="onehot"`` gives the standard basis (the paper: "analogous to the one-hot
    embedding"); ``kind="random"`` a Haar-random orthogonal matrix (QR of a Gaussian matrix
    with the sign fix of Mezzadri 2007), which needs ``seed``.
    """
    _check_int("d", d, 4)
    if kind == "onehot":
        return np.eye(d)
    if kind == "random":
        if seed is None:
            raise ValueError("seed=None is not allowed for kind='random'; pass an integer seed")
        rng = np.random.default_rng(seed)
        q, r = np.linalg.qr(rng.standard_normal((d, d)))
        return q * np.sign(np.diag(r))
    raise ValueError(f"kind={kind!r} is not allowed; choose 'onehot' or 'random'")


def type_counts(n: int) -> np.ndarray:
    """Numbers of training entries of types 1-4 with exact fractions (Assumption 2.3(i))."""
    _check_int("n", n, 6)
    if n % 6:
        raise ValueError(
            f"n={n} is not allowed: Assumption 2.3(i) needs the exact fractions (1/2, 1/6, 1/6,"
            " 1/6), so n must be a positive multiple of 6"
        )
    return np.array([n // 2, n // 6, n // 6, n // 6])


def random_slot_count(counts, L: int) -> int:
    """Number of positions filled with random words: type k has L - 1 - |targets_k| of them."""
    return int(sum(c * (L - 1 - len(t)) for c, t in zip(counts, TYPE_TARGETS, strict=True)))


def max_distinct_n(L: int, d: int) -> int:
    """Largest multiple of 6 for which Assumption 2.3(ii) can hold (random slots <= d - 3)."""
    per_six = random_slot_count(type_counts(6), L)
    return 6 * ((d - N_SPECIAL) // per_six)


def _fill(types, L, d, rng, random_tokens, embeddings):
    """Place mu_3, the targets and the random words of each entry of the given types."""
    n = len(types)
    tokens = np.full((n, L), -1, dtype=np.int64)
    for i, k in enumerate(types):
        positions = rng.permutation(L)  # i_3 first, then the targets: uniform distinct indices
        special = (COMMON, *TYPE_TARGETS[k - 1])
        tokens[i, positions[: len(special)]] = special
    slots = tokens < 0
    n_slots = int(slots.sum())
    if random_tokens == "distinct":
        if n_slots > d - N_SPECIAL:
            raise ValueError(
                f"n*L too large for the vocabulary: the training set has {n_slots} random-word "
                f"slots but d - 3 = {d - N_SPECIAL} random words exist, so Assumption 2.3(ii) "
                f"(all random words distinct) is impossible; with L={L}, d={d} use "
                f"n <= {max_distinct_n(L, d)}, raise d to >= {n_slots + N_SPECIAL}, or pass "
                "random_tokens='iid' (Definition 2.1 sampling, words may repeat)"
            )
        tokens[slots] = N_SPECIAL + rng.choice(d - N_SPECIAL, size=n_slots, replace=False)
    else:
        tokens[slots] = rng.integers(N_SPECIAL, d, size=n_slots)
    types = np.asarray(types, dtype=np.int64)
    y = np.asarray(TYPE_LABELS)[types - 1]
    return CooccurrenceData(tokens=tokens, types=types, y=y, embeddings=embeddings)


def _check_common(L, d, random_tokens, embedding_kind, seed):
    _check_int("L", L, 3)
    _check_int("d", d, 4)
    if random_tokens not in RANDOM_TOKEN_MODES:
        raise ValueError(f"random_tokens={random_tokens!r} is not allowed; choose one of "
                         f"{RANDOM_TOKEN_MODES}")
    _check_int("seed", seed, 0)
    return orthonormal_embeddings(d, embedding_kind, seed)


def sample_training_set(
    n: int,
    L: int,
    d: int,
    seed: int,
    random_tokens: str = "distinct",
    embedding_kind: str = "onehot",
) -> CooccurrenceData:
    """A training set per Definition 2.1 and Assumption 2.3.

    Exactly n/2, n/6, n/6, n/6 entries of types 1-4 (in a random order).  With
    ``random_tokens="distinct"`` every random word occurs once in the whole set (Assumption
    2.3(ii)); a ``ValueError`` says so when the vocabulary is too small.  ``"iid"`` draws each
    random word uniformly from mu_4..mu_d as in Definition 2.1 (the paper's experiment,
    n=60, L=5, d=64, has 160 random slots for 61 words, so it can only be run this way).
    """
    embeddings = _check_common(L, d, random_tokens, embedding_kind, seed)
    counts = type_counts(n)
    rng = np.random.default_rng(seed)
    types = rng.permutation(np.repeat(np.arange(1, 5), counts))
    return _fill(types, L, d, rng, random_tokens, embeddings)


def sample_distribution(
    n: int,
    L: int,
    d: int,
    seed: int,
    embeddings: np.ndarray | None = None,
) -> CooccurrenceData:
    """n i.i.d. entries from the distribution D of Definition 2.1 (for the generalization loss
    L = E_D[l(y F(X))]): types drawn with probabilities (1/2, 1/6, 1/6, 1/6), random words
    uniform on mu_4..mu_d, independently.  Pass the training set's ``embeddings``."""
    _check_int("n", n, 1)
    if embeddings is None:
        embeddings = _check_common(L, d, "iid", "onehot", seed)
    else:
        _check_common(L, d, "iid", "onehot", seed)
        if embeddings.shape != (d, d):
            raise ValueError(f"embeddings.shape={embeddings.shape} is not allowed; need ({d}, {d})")
    rng = np.random.default_rng(seed)
    types = rng.choice(4, size=n, p=TYPE_PROBABILITIES) + 1
    return _fill(types, L, d, rng, "iid", embeddings)


def with_noise_tokens(data: CooccurrenceData, seed: int) -> CooccurrenceData:
    """The other reading of the paper's experiment ("5 patches of dimension 64"): every
    random-word position holds its own Gaussian noise vector, drawn i.i.d. N(0, I_d / d)
    (unit norm on average), so no random token ever repeats; mu_1, mu_2, mu_3 keep their
    word vectors.  The result stores the special words as columns 0-2 of ``embeddings`` and
    one column per noise token after them (``embeddings`` is then d x (3 + slots), not
    orthonormal); apply it to a training set and, with another seed, to a test set."""
    _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    d = data.d
    random_slots = data.tokens >= N_SPECIAL
    noise = rng.standard_normal((d, int(random_slots.sum()))) / np.sqrt(d)
    embeddings = np.concatenate([data.embeddings[:, :N_SPECIAL], noise], axis=1)
    tokens = data.tokens.copy()
    tokens[random_slots] = N_SPECIAL + np.arange(int(random_slots.sum()))
    return CooccurrenceData(tokens=tokens, types=data.types, y=data.y, embeddings=embeddings)


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed; need an integer >= {minimum}")
