"""Part I trainability task: masked-token prediction in a topic model.

Task (masked-token prediction in a topic model, a toy version of BERT's masked language
modelling).  A fixed "world" of K topics, each a distribution theta_k over V words drawn from a
symmetric Dirichlet(beta) with a seed.  A sequence picks a topic k uniformly and draws n words
i.i.d. from theta_k; ``n_masked`` random positions are replaced by a MASK symbol (id V) and the
model must predict the hidden words.  It suits the family of
:mod:`tdyn.signalprop.architecture`, whose
attention is unmasked and has no positional encoding (the task is permutation equivariant), it
needs attention (the topic is read off the other words), and its Bayes-optimal loss is exact:
with the posterior over topics given the visible words, p(v) = sum_k P(k | visible) theta_k(v).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TopicTask:
    """The masked-token topic task (module docstring)."""

    vocab: int = 16
    topics: int = 4
    seq_len: int = 16
    n_masked: int = 4
    concentration: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.vocab, int) and self.vocab >= 2):
            raise ValueError(f"vocab={self.vocab!r} must be an integer >= 2")
        if not (isinstance(self.topics, int) and self.topics >= 1):
            raise ValueError(f"topics={self.topics!r} must be an integer >= 1")
        if not (isinstance(self.seq_len, int) and self.seq_len >= 2):
            raise ValueError(f"seq_len={self.seq_len!r} must be an integer >= 2")
        if not (isinstance(self.n_masked, int) and 1 <= self.n_masked < self.seq_len):
            raise ValueError(f"n_masked={self.n_masked!r} must be an integer in "
                             f"[1, seq_len - 1] = [1, {self.seq_len - 1}]")
        if not (math.isfinite(self.concentration) and self.concentration > 0):
            raise ValueError(f"concentration={self.concentration!r} must be positive")

    @classmethod
    def from_params(cls, params) -> TopicTask:
        """The task named by an experiment's parameters (vocab, topics, seq_len, n_masked,
        concentration, task_seed)."""
        return cls(vocab=params["vocab"], topics=params["topics"], seq_len=params["seq_len"],
                   n_masked=params["n_masked"], concentration=params["concentration"],
                   seed=params["task_seed"])

    @property
    def mask_id(self) -> int:
        """The id of the MASK symbol (the last row of the embedding)."""
        return self.vocab

    def topic_distributions(self) -> np.ndarray:
        """theta, shape (K, V): the world's topics, Dirichlet(concentration), from ``seed``."""
        rng = np.random.default_rng([self.seed, 0])
        return rng.dirichlet(np.full(self.vocab, self.concentration), size=self.topics)

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray]:
        """(inputs, targets, masked): words (batch, n) with MASK at the masked positions, the
        original words, and the boolean mask of hidden positions."""
        theta = self.topic_distributions()
        k = rng.integers(self.topics, size=batch)
        cdf = np.cumsum(theta[k], axis=1)
        u = rng.random((batch, self.seq_len, 1))
        targets = np.minimum((u > cdf[:, None, :]).sum(-1), self.vocab - 1)
        order = np.argsort(rng.random((batch, self.seq_len)), axis=1)
        masked = np.zeros((batch, self.seq_len), dtype=bool)
        np.put_along_axis(masked, order[:, :self.n_masked], True, axis=1)
        inputs = np.where(masked, self.mask_id, targets)
        return inputs, targets, masked

    def bayes_loss(self, inputs: np.ndarray, targets: np.ndarray, masked: np.ndarray) -> float:
        """Mean cross-entropy of the Bayes-optimal prediction over the masked positions."""
        log_theta = np.log(self.topic_distributions())  # (K, V)
        visible = ~masked
        counts = np.stack([np.sum(visible & (inputs == v), axis=1) for v in range(self.vocab)],
                          axis=1)  # (batch, V)
        log_post = counts @ log_theta.T
        log_post -= log_post.max(axis=1, keepdims=True)
        post = np.exp(log_post)
        post /= post.sum(axis=1, keepdims=True)
        pred = post @ np.exp(log_theta)  # (batch, V)
        p_target = np.take_along_axis(pred, np.where(masked, targets, 0), axis=1)
        return float(-np.log(p_target)[masked].mean())

    def unigram_loss(self, targets: np.ndarray, masked: np.ndarray) -> float:
        """Mean cross-entropy of predicting the marginal word frequencies (no context)."""
        marginal = self.topic_distributions().mean(axis=0)
        return float(-np.log(marginal[targets])[masked].mean())
