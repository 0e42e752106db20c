"""The transformer family of Part I, defined once for theory and simulation alike.

A block acts on n tokens x_i in R^d (rows of X).  With LN(x) = sqrt(d) x / |x| and c = the skip
coefficient of the residual form (``interp``: c = sqrt(1 - alpha^2); ``plain``: c = 1):

    attention   s_ij = (sigma_A / sqrt(d)) (W_Q y_i) . (W_K y_j),   A = softmax_j(s)   (no mask)
                x <- c_A x + alpha_A W_V sum_j A_ij y_j
    MLP         x <- c_M x + alpha_M W_2 phi(W_1 y)                                (token-wise)

where y is the branch input: y = LN(x) for ``pre``-LN, y = x for ``post``-LN, which instead
normalizes after each residual sum, x <- LN(c x + alpha f(x)).  Weights are i.i.d. Gaussian with
zero mean and no biases: W_Q, W_K ~ N(0, 1/d) (so the logits have variance sigma_A^2 when
|y|^2 = d), W_V ~ N(0, sigma_V^2 / d), W_1 ~ N(0, sigma_w^2 / d) of shape (D, d) and
W_2 ~ N(0, sigma_2^2 / D) of shape (d, D), with D = mlp_ratio * d.

Optional biases (default none): the value path adds b_V ~ N(0, sigma_bV^2 I) after W_V, the MLP
adds b_1 ~ N(0, sigma_b1^2 I) to W_1 y and b_2 ~ N(0, sigma_b2^2 I) after W_2, each drawn once per
layer and shared by every token (Giorlandino & Goldt's convention has them; see
:func:`tdyn.signalprop.theory.giorlandino_goldt_architecture`).

This follows the candidate "Equation 4" of the paper digest (Cowsik et al. 2024, whose text we
could not read): every convention the paper leaves open (residual form, LN placement, value and
readout variances, MLP width) is a parameter here, with the default stated below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from tdyn.signalprop.nonlinearity import nonlinearity

RESIDUAL_FORMS = ("interp", "plain")
"""``interp``: x <- sqrt(1 - alpha^2) x + alpha f;  ``plain``: x <- x + alpha f."""

NORM_PLACEMENTS = ("pre", "post")
"""``pre``: branches see LN(x);  ``post``: x <- LN(c x + alpha f(x)) after each branch."""

FLOAT_FIELDS = ("sigma_A", "sigma_w", "alpha_A", "alpha_M", "sigma_V", "sigma_2", "sigma_bV",
                "sigma_b1", "sigma_b2")
"""The fields that may hold arrays (one architecture per entry of their broadcast shape)."""


@dataclass(frozen=True)
class Architecture:
    """Hyperparameters of one random transformer of the family (see the module docstring).

    Defaults: n = 32 tokens of width d = 256; sigma_A = 1 (logit standard deviation);
    sigma_w = 2; alpha_A = alpha_M = 0.5; phi = tanh; residual = interp; norm = pre (LN
    placement); sigma_V = 1; sigma_2 = None, which ties the readout scale to the MLP scale
    (sigma_2 = sigma_w, so the MLP's kernel slope chi grows like sigma_w^4); mlp_ratio = 1
    (D = d); no biases (sigma_bV = sigma_b1 = sigma_b2 = 0, standard deviations).

    The float fields (:data:`FLOAT_FIELDS`) also take arrays that broadcast together, for the
    vectorized theory (a grid of architectures, validated entry by entry); they are stored as
    read-only float arrays, and scalars are kept as given.  An architecture holding arrays is
    neither hashable nor comparable with ``==``.
    """

    n: int = 32
    d: int = 256
    sigma_A: float = 1.0
    sigma_w: float = 2.0
    alpha_A: float = 0.5
    alpha_M: float = 0.5
    phi: str = "tanh"
    residual: str = "interp"
    norm: str = "pre"
    sigma_V: float = 1.0
    sigma_2: float | None = None
    mlp_ratio: int = 1
    sigma_bV: float = 0.0
    sigma_b1: float = 0.0
    sigma_b2: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int) and self.n >= 2):
            raise ValueError(f"n={self.n!r} must be an integer >= 2 (number of tokens)")
        if not (isinstance(self.d, int) and self.d >= 1):
            raise ValueError(f"d={self.d!r} must be an integer >= 1 (width)")
        if not (isinstance(self.mlp_ratio, int) and self.mlp_ratio >= 1):
            raise ValueError(f"mlp_ratio={self.mlp_ratio!r} must be an integer >= 1")
        for name in FLOAT_FIELDS:
            value = getattr(self, name)
            if value is not None and np.ndim(value) > 0:
                array = np.array(value, dtype=float)
                array.setflags(write=False)
                object.__setattr__(self, name, array)
        try:
            np.broadcast_shapes(*(np.shape(getattr(self, name)) for name in FLOAT_FIELDS))
        except ValueError:
            shapes = {name: np.shape(getattr(self, name)) for name in FLOAT_FIELDS}
            raise ValueError(f"the array fields do not broadcast together: {shapes}") from None
        for name in ("sigma_A", "sigma_w", "sigma_V"):
            _check_positive(name, getattr(self, name))
        if self.sigma_2 is not None:
            _check_positive("sigma_2", self.sigma_2)
        for name in ("sigma_bV", "sigma_b1", "sigma_b2"):
            value = getattr(self, name)
            if not np.all(np.isfinite(value) & (np.asarray(value) >= 0)):
                raise ValueError(f"{name}={value!r} must be a finite number >= 0 (a bias "
                                 "standard deviation)")
        if self.residual not in RESIDUAL_FORMS:
            raise ValueError(f"residual={self.residual!r} is not allowed; choose one of "
                             f"{RESIDUAL_FORMS}")
        if self.norm not in NORM_PLACEMENTS:
            raise ValueError(f"norm={self.norm!r} is not allowed; choose one of {NORM_PLACEMENTS}")
        nonlinearity(self.phi)  # raises for an unknown name
        for name in ("alpha_A", "alpha_M"):
            value = getattr(self, name)
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name}={value!r} must be a finite number")
            if self.residual == "interp" and not np.all((value >= 0.0) & (value <= 1.0)):
                raise ValueError(f"{name}={value!r} must lie in [0, 1] for residual='interp'")
            if self.residual == "plain" and np.any(value < 0.0):
                raise ValueError(f"{name}={value!r} must be >= 0 for residual='plain'")

    @property
    def shape(self) -> tuple[int, ...]:
        """The broadcast shape of the float fields: () for one architecture."""
        return np.broadcast_shapes(*(np.shape(getattr(self, name)) for name in FLOAT_FIELDS))

    @property
    def readout_scale(self):
        """sigma_2, the standard-deviation scale of W_2 (sigma_w when tied)."""
        return self.sigma_w if self.sigma_2 is None else self.sigma_2

    @property
    def has_biases(self) -> bool:
        """Whether any bias variance is nonzero (anywhere, for arrays)."""
        return any(bool(np.any(getattr(self, name)))
                   for name in ("sigma_bV", "sigma_b1", "sigma_b2"))

    @property
    def skip_A(self):
        """c_A: the weight of the skip path around attention."""
        return skip_coefficient(self.alpha_A, self.residual)

    @property
    def skip_M(self):
        """c_M: the weight of the skip path around the MLP."""
        return skip_coefficient(self.alpha_M, self.residual)

    @property
    def hidden(self) -> int:
        """D: the MLP's hidden width."""
        return self.mlp_ratio * self.d

    def replace(self, **changes) -> Architecture:
        """A copy with some hyperparameters changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The hyperparameters as a plain dictionary."""
        return asdict(self)


def stack(archs) -> Architecture:
    """The architectures of a sequence as one, whose float fields are arrays along axis 0 (they
    must share every other field; a tied readout stays tied only if it is tied in all)."""
    archs = list(archs)
    if not archs:
        raise ValueError("archs must contain at least one Architecture")
    first = archs[0]
    others = [f.name for f in fields(Architecture) if f.name not in FLOAT_FIELDS]
    for name in others:
        values = {getattr(a, name) for a in archs}
        if len(values) > 1:
            raise ValueError(f"stacked architectures must share {name}; got {values}")
    tied = all(a.sigma_2 is None for a in archs)
    columns = {name: np.array([getattr(a, name) for a in archs], dtype=float)
               for name in FLOAT_FIELDS if name != "sigma_2"}
    columns["sigma_2"] = None if tied else np.array([a.readout_scale for a in archs])
    return first.replace(**columns)


def skip_coefficient(alpha, residual: str):
    """c = sqrt(1 - alpha^2) for ``interp``, 1 for ``plain`` (works on arrays)."""
    if residual == "interp":
        return (1.0 - alpha**2) ** 0.5
    if residual == "plain":
        return 1.0 + 0.0 * alpha
    raise ValueError(f"residual={residual!r} is not allowed; choose one of {RESIDUAL_FORMS}")


def _check_positive(name: str, value) -> None:
    if not np.all(np.isfinite(value) & (np.asarray(value) > 0)):
        raise ValueError(f"{name}={value!r} must be a positive finite number (range (0, inf))")
