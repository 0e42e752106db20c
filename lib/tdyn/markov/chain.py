"""Part II data: binary first-order Markov chains (Makkuva et al. 2024).

The chain on {0, 1} with switching probabilities

    p = P(x_{n+1} = 1 | x_n = 0),    q = P(x_{n+1} = 0 | x_n = 1),    (p, q) in (0, 1)^2,

its stationary distribution pi = (q, p) / (p + q), its entropy rate (the loss of the
Bayes-optimal *bigram* predictor), the entropy of pi (the loss of the best *unigram*
predictor, which ignores the past), the Bayes-optimal logits, and vectorized, seeded sampling.
All losses are in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import log_expit

# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_probability(name: str, value) -> float:
    """``value`` as a float in the open interval (0, 1), else ValueError naming it."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a number in the open interval (0, 1)") from None
    if not (0.0 < x < 1.0):  # also rejects nan
        raise ValueError(f"{name}={value!r} must lie in the open interval (0, 1)")
    return x


def check_pq(p, q) -> tuple[float, float]:
    """Validate the switching probabilities; returns them as floats."""
    return _check_probability("p", p), _check_probability("q", q)


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return int(value)


def as_rng(rng) -> np.random.Generator:
    """A Generator from a Generator or an integer seed (no implicit global randomness)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng={rng!r} must be a numpy Generator or a non-negative integer seed")


# --------------------------------------------------------------------------------------------
# The chain: information-theoretic quantities
# --------------------------------------------------------------------------------------------


def transition_matrix(p, q) -> np.ndarray:
    """P[i, j] = P(x_{n+1} = j | x_n = i) = [[1 - p, p], [q, 1 - q]]."""
    p, q = check_pq(p, q)
    return np.array([[1.0 - p, p], [q, 1.0 - q]])


def stationary(p, q) -> np.ndarray:
    """Stationary distribution (pi_0, pi_1) = (q, p) / (p + q)."""
    p, q = check_pq(p, q)
    return np.array([q, p]) / (p + q)


def binary_entropy(z) -> np.ndarray:
    """h(z) = -z log z - (1 - z) log(1 - z) in nats (h(0) = h(1) = 0)."""
    z = np.asarray(z, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -np.where(z > 0, z * np.log(z), 0.0) - np.where(z < 1, (1 - z) * np.log1p(-z), 0.0)
    return out


def entropy_rate(p, q) -> float:
    """H(x_{n+1} | x_n) = pi_0 h(p) + pi_1 h(q): the loss of the Bayes (bigram) predictor."""
    pi0, pi1 = stationary(p, q)
    return float(pi0 * binary_entropy(p) + pi1 * binary_entropy(q))


def unigram_loss(p, q) -> float:
    """H(pi) = h(pi_1): the loss of the best predictor that ignores the past (always pi_1)."""
    return float(binary_entropy(stationary(p, q)[1]))


def mutual_information(p, q) -> float:
    """I(x_n; x_{n+1}) = H(pi) - H(x_{n+1} | x_n) >= 0, zero iff p + q = 1."""
    return unigram_loss(p, q) - entropy_rate(p, q)


def bayes_logits(p, q) -> np.ndarray:
    """Log-odds of x_{n+1} = 1 after x_n = 0 and after x_n = 1: (log p/(1-p), log (1-q)/q)."""
    p, q = check_pq(p, q)
    return np.array([math.log(p / (1 - p)), math.log((1 - q) / q)])


def logit_gap(p, q) -> float:
    """f1* - f0* = log((1-p)(1-q)/(pq)): positive iff p + q < 1, negative iff p + q > 1."""
    p, q = check_pq(p, q)
    return math.log((1 - p) * (1 - q) / (p * q))


def unigram_logit(p, q) -> float:
    """The constant logit of the unigram predictor, log(pi_1 / pi_0) = log(p / q)."""
    p, q = check_pq(p, q)
    return math.log(p / q)


def running_mean_contrast(p, q, length: int) -> float:
    """E[xbar_n | x_n = 1] - E[xbar_n | x_n = 0], averaged over n = 1 .. ``length``, for the
    running mean xbar_n = (1/n) sum_{i <= n} x_i of the stationary chain.

    With lambda = 1 - p - q, P(x_i = 1 | x_n = 1) - P(x_i = 1 | x_n = 0) = lambda^(n - i), so
    the contrast at n is (1 - lambda^n) / (n (1 - lambda)).  Under uniform causal attention
    with W_V = a alpha alpha^T (the rank-one reading of the paper's attention scalar a), the
    attention part of the logit gap is a e^2 times this."""
    p, q = check_pq(p, q)
    length = check_positive_int("length", length)
    lam = 1.0 - p - q
    n = np.arange(1, length + 1, dtype=float)
    return float(np.mean((1.0 - lam**n) / (n * (1.0 - lam))))


def predictor_loss(f0, f1, p, q) -> np.ndarray:
    """Stationary cross-entropy of a predictor with logit f0 after a 0 and f1 after a 1.

    L = pi_0 [-p log s(f0) - (1-p) log s(-f0)] + pi_1 [-(1-q) log s(f1) - q log s(-f1)],
    s the logistic function.  Broadcasts over arrays f0, f1.
    """
    pi0, pi1 = stationary(p, q)
    f0 = np.asarray(f0, dtype=float)
    f1 = np.asarray(f1, dtype=float)
    loss0 = -p * log_expit(f0) - (1 - p) * log_expit(-f0)
    loss1 = -(1 - q) * log_expit(f1) - q * log_expit(-f1)
    return pi0 * loss0 + pi1 * loss1


@dataclass(frozen=True)
class MarkovChain:
    """A binary first-order Markov chain with switching probabilities (p, q).

    >>> chain = MarkovChain(0.5, 0.8)
    >>> round(chain.entropy_rate, 4), round(chain.unigram_loss, 4)
    (0.619, 0.6663)
    """

    p: float
    q: float

    def __post_init__(self):
        p, q = check_pq(self.p, self.q)
        object.__setattr__(self, "p", p)
        object.__setattr__(self, "q", q)

    @property
    def transition_matrix(self) -> np.ndarray:
        return transition_matrix(self.p, self.q)

    @property
    def stationary(self) -> np.ndarray:
        return stationary(self.p, self.q)

    @property
    def entropy_rate(self) -> float:
        return entropy_rate(self.p, self.q)

    @property
    def unigram_loss(self) -> float:
        return unigram_loss(self.p, self.q)

    @property
    def bayes_logits(self) -> np.ndarray:
        return bayes_logits(self.p, self.q)

    @property
    def switching(self) -> float:
        """p + q; the lag-one correlation of the chain is 1 - (p + q)."""
        return self.p + self.q

    def sample(self, batch: int, length: int, rng, initial: str = "stationary") -> np.ndarray:
        """``batch`` independent sequences of ``length`` symbols; see :func:`sample`."""
        return sample(self.p, self.q, batch, length, rng, initial=initial)


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------

INITIAL_CHOICES = ("stationary", "uniform")


def sample(p, q, batch: int, length: int, rng, initial: str = "stationary") -> np.ndarray:
    """``batch`` independent sequences x_1 .. x_length of the chain, uint8 of shape (batch, length).

    The first symbol is drawn from the stationary distribution (``initial="stationary"``; the
    chain is then stationary at every position) or uniformly (``"uniform"``).  ``rng`` is a
    ``numpy.random.Generator`` or an integer seed: the same seed gives the same sequences.

    Vectorized over batch *and* time, with no loop over positions: a sequence is a succession
    of runs, a run of zeros lasts Geometric(p) steps and a run of ones Geometric(q) steps, so
    we draw all run lengths at once, mark where runs end, and read each symbol off the parity
    of the number of switches before it.
    """
    p, q = check_pq(p, q)
    batch = check_positive_int("batch", batch)
    length = check_positive_int("length", length)
    if initial not in INITIAL_CHOICES:
        raise ValueError(f"initial={initial!r} is not allowed; choose one of {INITIAL_CHOICES}")
    rng = as_rng(rng)
    prob_one = p / (p + q) if initial == "stationary" else 0.5
    first = (rng.random(batch) < prob_one).astype(np.uint8)  # (batch,)
    if length == 1:
        return first[:, None].copy()
    # Run k (k = 0, 1, ...) has symbol first XOR (k mod 2).  A stationary chain switches at
    # rate 2pq/(p+q) per step: draw that many runs plus a six-sigma margin, and draw again
    # with more in the (rare) case that some sequence is not yet covered.
    rate = 2.0 * p * q / (p + q)
    n_runs = min(length, int(rate * length + 6.0 * math.sqrt(rate * length) + 16))
    # Geometric(leave) on {1, 2, ...} = 1 + floor(Exp(1) / -log(1 - leave)).
    scale = np.array([-1.0 / math.log1p(-p), -1.0 / math.log1p(-q)])
    while True:
        run_symbol = first[:, None] ^ (np.arange(n_runs) & 1).astype(np.uint8)[None, :]
        runs = (rng.standard_exponential((batch, n_runs))
                * np.where(run_symbol, scale[1], scale[0])).astype(np.int64)
        ends = np.cumsum(runs + 1, axis=1)  # first position of run k + 1
        if n_runs == length or np.all(ends[:, -1] >= length):
            break
        n_runs = min(length, 2 * n_runs)
    switches = np.zeros((batch, length + 1), dtype=np.uint8)
    flat = ends + (length + 1) * np.arange(batch)[:, None]
    switches.ravel()[flat[ends < length]] = 1  # ends increase strictly: no collisions
    parity = np.bitwise_xor.accumulate(switches[:, :length], axis=1)
    return first[:, None] ^ parity


def sample_loop(p, q, batch: int, length: int, rng, initial: str = "stationary") -> np.ndarray:
    """Reference sampler: a loop over positions, vectorized over the batch only.

    Same law as :func:`sample` (not the same draws); kept as the naive baseline for tests and
    benchmarks.
    """
    p, q = check_pq(p, q)
    batch = check_positive_int("batch", batch)
    length = check_positive_int("length", length)
    if initial not in INITIAL_CHOICES:
        raise ValueError(f"initial={initial!r} is not allowed; choose one of {INITIAL_CHOICES}")
    rng = as_rng(rng)
    prob_one = p / (p + q) if initial == "stationary" else 0.5
    x = np.empty((batch, length), dtype=np.uint8)
    x[:, 0] = rng.random(batch) < prob_one
    u = rng.random((batch, length))
    for n in range(1, length):
        x[:, n] = np.where(x[:, n - 1] == 0, u[:, n] < p, u[:, n] >= q)
    return x


def transition_counts(x) -> np.ndarray:
    """counts[i, j] = number of positions n with x_n = i and x_{n+1} = j, over all sequences."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    a = x[:, :-1].astype(np.int64).ravel()
    b = x[:, 1:].astype(np.int64).ravel()
    return np.bincount(2 * a + b, minlength=4).reshape(2, 2)


def log_loss_per_sequence(x, p, q) -> np.ndarray:
    """-(1/(N-1)) sum_n log P(x_{n+1} | x_n) for each sequence (the Bayes predictor's loss).

    By the ergodic theorem it converges to :func:`entropy_rate` as the length grows.
    """
    logp = np.log(transition_matrix(p, q))
    x = np.asarray(x, dtype=np.int64)
    if x.ndim == 1:
        x = x[None, :]
    return -logp[x[:, :-1], x[:, 1:]].mean(axis=1)


# --------------------------------------------------------------------------------------------
# Command line: python -m tdyn markov --p P --q Q [--json]
# --------------------------------------------------------------------------------------------


def summary(p, q) -> dict:
    """The numbers ``python -m tdyn markov`` prints (losses in nats)."""
    p, q = check_pq(p, q)
    return {
        "p": p,
        "q": q,
        "stationary": stationary(p, q).tolist(),
        "entropy_rate": entropy_rate(p, q),
        "unigram_loss": unigram_loss(p, q),
        "bayes_logits": bayes_logits(p, q).tolist(),
    }
