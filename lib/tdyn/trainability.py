"""Trainability experiment: does (lambda_a, lambda_g) at initialization predict final test loss?

Task (masked-token prediction in a topic model, a toy version of BERT's masked language
modelling).  A fixed "world" of K topics, each a distribution theta_k over V words drawn from a
symmetric Dirichlet(beta) with a seed.  A sequence picks a topic k uniformly and draws n words
i.i.d. from theta_k; ``n_masked`` random positions are replaced by a MASK symbol (id V) and the
model must predict the hidden words.  It suits the family of :mod:`tdyn.architecture`, whose
attention is unmasked and has no positional encoding (the task is permutation equivariant), it
needs attention (the topic is read off the other words), and its Bayes-optimal loss is exact:
with the posterior over topics given the visible words, p(v) = sum_k P(k | visible) theta_k(v).

Model.  Embedding E (V + 1 words, N(0, 1) entries, so |x|^2 ~ d), ``depth`` blocks of the
family (pre-LN ``interp`` residual by default, the block of :mod:`tdyn.simulate`, weights
initialized with the family's variances and all trained), a final LN and a linear readout
W_out ~ N(0, 1/d).  The residual strengths alpha_A, alpha_M are fixed architecture constants.

Training.  One batched ensemble: every configuration (hyperparameters x seed) has its own
stacked weights, and all of them see the same training batches (common random numbers), trained
with Adam on the cross-entropy of the masked positions.  A configuration whose loss becomes
non-finite is recorded as diverged (its loss is NaN from then on); the others are unaffected.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tdyn.architecture import Architecture
from tdyn.devices import resolve_device, torch_threads
from tdyn.simulate import replicate_seed


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


@dataclass(frozen=True)
class TrainSettings:
    """Sizes and optimizer of one sweep: width d, depth, Adam learning rate, steps, batch size
    (sequences), test set size, evaluation every ``eval_every`` steps, data seed."""

    d: int = 32
    depth: int = 6
    lr: float = 1e-3
    steps: int = 300
    batch: int = 32
    test_size: int = 512
    eval_every: int = 100
    data_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("d", "depth", "steps", "batch", "test_size", "eval_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr={self.lr!r} must be a positive finite number")


@dataclass(frozen=True)
class Member:
    """One configuration of the ensemble: the block's hyperparameters and an init seed."""

    alpha_A: float
    alpha_M: float
    sigma_w: float
    sigma_A: float = 1.0
    seed: int = 0

    def architecture(self, task: TopicTask, settings: TrainSettings, **kw) -> Architecture:
        """The :class:`Architecture` of this member at the run's sizes (n = seq_len)."""
        return Architecture(n=task.seq_len, d=settings.d, sigma_A=self.sigma_A,
                            sigma_w=self.sigma_w, alpha_A=self.alpha_A, alpha_M=self.alpha_M,
                            **kw)


def _layer_norm(x: torch.Tensor) -> torch.Tensor:
    return x * (x.shape[-1] ** 0.5) / torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def init_ensemble(members: Sequence[Member], task: TopicTask, settings: TrainSettings,
                  device="cpu", dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Stacked trainable weights, axis 0 = member.  Member m draws from a torch generator
    seeded by (m.seed, 0), so its weights do not depend on the rest of the ensemble.

    W_Q, W_K ~ N(0, sigma_A / d) (logit variance sigma_A^2 at |y|^2 = d), W_V ~ N(0, 1/d),
    W_1 ~ N(0, sigma_w^2 / d), W_2 ~ N(0, sigma_w^2 / d) (readout tied to sigma_w, D = d).
    """
    d, depth, vocab = settings.d, settings.depth, task.vocab
    shapes = {"E": (vocab + 1, d), "Q": (depth, d, d), "K": (depth, d, d), "V": (depth, d, d),
              "W1": (depth, d, d), "W2": (depth, d, d), "out": (d, vocab)}
    out = {key: [] for key in shapes}
    for m in members:
        g = torch.Generator(device=device).manual_seed(replicate_seed(m.seed, 0))
        std = {"E": 1.0, "Q": math.sqrt(m.sigma_A / d), "K": math.sqrt(m.sigma_A / d),
               "V": 1 / math.sqrt(d), "W1": m.sigma_w / math.sqrt(d),
               "W2": m.sigma_w / math.sqrt(d), "out": 1 / math.sqrt(d)}
        for key, shape in shapes.items():
            out[key].append(std[key] * torch.randn(shape, generator=g, dtype=dtype,
                                                   device=device))
    return {key: torch.stack(v).requires_grad_(True) for key, v in out.items()}


def forward(params: dict[str, torch.Tensor], alphas: torch.Tensor, inputs: torch.Tensor
            ) -> torch.Tensor:
    """Logits (members, batch, n, V) for word ids ``inputs`` (batch, n): pre-LN ``interp``
    blocks x <- sqrt(1 - a_A^2) x + a_A W_V softmax(s) LN(x), x <- sqrt(1 - a_M^2) x + a_M W_2
    tanh(W_1 LN(x)), then LN and the readout.  ``alphas``: (members, 2) = (alpha_A, alpha_M)."""
    n_members = params["E"].shape[0]
    batch, n = inputs.shape
    d = params["E"].shape[-1]
    x = params["E"][:, inputs]  # (M, batch, n, d)
    a_A, a_M = alphas[:, 0].reshape(-1, 1, 1, 1), alphas[:, 1].reshape(-1, 1, 1, 1)
    c_A, c_M = torch.sqrt(1 - a_A**2), torch.sqrt(1 - a_M**2)
    for layer in range(params["Q"].shape[1]):
        y = _layer_norm(x).reshape(n_members, batch * n, d)
        q = (y @ params["Q"][:, layer].transpose(1, 2)).reshape(n_members * batch, n, d)
        k = (y @ params["K"][:, layer].transpose(1, 2)).reshape(n_members * batch, n, d)
        attn = torch.softmax(q @ k.transpose(1, 2) / d**0.5, dim=-1)
        mixed = (attn @ y.reshape(n_members * batch, n, d)).reshape(n_members, batch * n, d)
        values = (mixed @ params["V"][:, layer].transpose(1, 2)).reshape(x.shape)
        x = c_A * x + a_A * values
        y = _layer_norm(x).reshape(n_members, batch * n, d)
        h = torch.tanh(y @ params["W1"][:, layer].transpose(1, 2))
        x = c_M * x + a_M * (h @ params["W2"][:, layer].transpose(1, 2)).reshape(x.shape)
    y = _layer_norm(x).reshape(n_members, batch * n, d)
    return (y @ params["out"]).reshape(n_members, batch, n, -1)


def masked_losses(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor
                  ) -> torch.Tensor:
    """Per-member mean cross-entropy over the masked positions, shape (members,)."""
    logp = torch.log_softmax(logits, dim=-1)
    picked = torch.gather(logp, -1, targets.expand(logits.shape[0], *targets.shape)[..., None])
    return -(picked[..., 0] * masked).sum(dim=(1, 2)) / masked.sum()


EVAL_SLICE = 512
"""Test sequences evaluated at once: bounds the memory of an evaluation of a large ensemble
(a test set of at most this size is evaluated in one pass, as before slicing existed)."""


@dataclass(frozen=True)
class TrainResult:
    """Per member: final test and train loss (NaN if diverged), the step of divergence (-1 if
    none) and the test loss at every evaluation (shape (members, evaluations))."""

    test_loss: np.ndarray
    train_loss: np.ndarray
    diverged_at: np.ndarray
    eval_steps: np.ndarray
    test_curve: np.ndarray
    seconds: float


def train_ensemble(members: Sequence[Member], task: TopicTask, settings: TrainSettings,
                   device: str = "cpu", dtype=torch.float32,
                   cpu_threads: int | None = 1) -> TrainResult:
    """Train all ``members`` as one batched ensemble with Adam (module docstring).

    ``cpu_threads``: torch's intra-op threads while training on the CPU (restored afterwards;
    None keeps the current setting); one is the default because many small batched products
    run far slower when torch's threads contend with other processes for a few cores.
    """
    members = list(members)
    if not members:
        raise ValueError("members must contain at least one Member")
    dev = resolve_device(device)
    with torch_threads(dev, cpu_threads):
        return _train(members, task, settings, dev, dtype)


def _train(members, task, settings, dev, dtype) -> TrainResult:
    """The training loop of :func:`train_ensemble`."""
    start = time.perf_counter()
    params = init_ensemble(members, task, settings, dev, dtype)
    alphas = torch.tensor([[m.alpha_A, m.alpha_M] for m in members], dtype=dtype, device=dev)
    opt = torch.optim.Adam(params.values(), lr=settings.lr)
    data_rng = np.random.default_rng([settings.data_seed, 1])
    test = [torch.as_tensor(a, device=dev) for a in
            task.sample(settings.test_size, np.random.default_rng([settings.data_seed, 2]))]
    diverged_at = np.full(len(members), -1)
    eval_steps, curve = [], []
    train_loss = torch.full((len(members),), math.nan)

    def evaluate() -> np.ndarray:
        with torch.no_grad():
            if settings.test_size <= EVAL_SLICE:
                loss = masked_losses(forward(params, alphas, test[0]), test[1], test[2])
            else:  # mean over all masked positions = (sum of slice means x counts) / count
                loss = sum(masked_losses(forward(params, alphas, x), y, m) * m.sum()
                           for x, y, m in zip(*(t.split(EVAL_SLICE) for t in test),
                                              strict=True)) / test[2].sum()
        loss = loss.cpu().numpy().astype(float)
        loss[diverged_at >= 0] = math.nan
        return loss

    for step in range(1, settings.steps + 1):
        inputs, targets, masked = (torch.as_tensor(a, device=dev) for a in
                                   task.sample(settings.batch, data_rng))
        losses = masked_losses(forward(params, alphas, inputs), targets, masked)
        finite = torch.isfinite(losses)
        newly = (~finite.cpu().numpy()) & (diverged_at < 0)
        diverged_at[newly] = step
        opt.zero_grad(set_to_none=True)
        torch.where(finite, losses, torch.zeros_like(losses)).sum().backward()
        opt.step()
        train_loss = losses.detach()
        if step % settings.eval_every == 0 or step == settings.steps:
            eval_steps.append(step)
            curve.append(evaluate())
    final_train = train_loss.cpu().numpy().astype(float)
    final_train[diverged_at >= 0] = math.nan
    curve = np.stack(curve, axis=1)
    return TrainResult(test_loss=curve[:, -1], train_loss=final_train, diverged_at=diverged_at,
                       eval_steps=np.array(eval_steps), test_curve=curve,
                       seconds=time.perf_counter() - start)


def task_reference_losses(task: TopicTask, settings: TrainSettings) -> dict[str, float]:
    """Bayes-optimal and unigram losses on the run's test set (the floor and the no-context
    baseline of the test loss)."""
    inputs, targets, masked = task.sample(settings.test_size,
                                          np.random.default_rng([settings.data_seed, 2]))
    return {"bayes": task.bayes_loss(inputs, targets, masked),
            "unigram": task.unigram_loss(targets, masked)}


# --------------------------------------------------------------------------------------------
# Predicting the test loss from the exponents




def quadratic_features(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """Design matrix of a full quadratic in one or two features."""
    if y is None:
        return np.stack([np.ones_like(x), x, x**2], axis=1)
    return np.stack([np.ones_like(x), x, y, x**2, x * y, y**2], axis=1)


def split_scores(features: np.ndarray, target: np.ndarray, n_splits: int = 20,
                 train_fraction: float = 0.6, seed: int = 0) -> dict[str, np.ndarray]:
    """Fit least squares on a random ``train_fraction`` of the rows and score the rest.

    ``features``: design matrix (rows = configurations); ``target``: the test loss.  Returns
    per split the held-out R^2 = 1 - SS_res / SS_tot (SS_tot about the held-out mean) and the
    Spearman rank correlation between prediction and truth.  Rows with a non-finite target
    (diverged runs) are left out.
    """
    from scipy.stats import spearmanr

    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction={train_fraction!r} must lie in (0, 1)")
    keep = np.isfinite(target) & np.all(np.isfinite(features), axis=1)
    features, target = features[keep], target[keep]
    rows = len(target)
    n_train = int(round(train_fraction * rows))
    if n_train <= features.shape[1] or rows - n_train < 3:
        raise ValueError(f"too few finite rows ({rows}) for {features.shape[1]} coefficients "
                         f"and train_fraction={train_fraction}")
    rng = np.random.default_rng(seed)
    r2, rank = np.empty(n_splits), np.empty(n_splits)
    for s in range(n_splits):
        order = rng.permutation(rows)
        train, held = order[:n_train], order[n_train:]
        coef, *_ = np.linalg.lstsq(features[train], target[train], rcond=None)
        pred = features[held] @ coef
        resid = np.sum((target[held] - pred) ** 2)
        r2[s] = 1 - resid / np.sum((target[held] - target[held].mean()) ** 2)
        rank[s] = spearmanr(pred, target[held]).statistic
    return {"r2": r2, "spearman": rank}


# --------------------------------------------------------------------------------------------
# The sweep of notebooks/trainability_sweep.ipynb


def sweep_grid(params: dict) -> tuple[np.ndarray, np.ndarray]:
    """The grid's alpha values (linear) and sigma_w values (geometric) from the parameters."""
    alphas = np.linspace(params["alpha_min"], params["alpha_max"], params["n_alpha"])
    sigmas = np.geomspace(params["sigma_w_min"], params["sigma_w_max"], params["n_sigma_w"])
    return alphas, sigmas


def sweep_configs(params: dict) -> list[dict]:
    """One configuration per (alpha = alpha_A = alpha_M, sigma_w, seed index).

    Refuses ``d < seq_len + 1``: the measurement of lambda_a at initialization starts from
    exactly orthonormal tokens plus a shared direction (:func:`tdyn.simulate.initial_tokens`).
    """
    if params["d"] < params["seq_len"] + 1:
        raise ValueError(f"d={params['d']} must be at least seq_len + 1 = "
                         f"{params['seq_len'] + 1} (the exponents are measured from exactly "
                         "orthonormal initial tokens)")
    alphas, sigmas = sweep_grid(params)
    return [{"alpha": round(float(a), 6), "sigma_w": round(float(w), 6), "seed_index": k}
            for a in alphas for w in sigmas for k in range(params["n_seeds"])]


def task_and_settings(params: dict) -> tuple[TopicTask, TrainSettings]:
    """The task and training settings named by a sweep's parameters."""
    task = TopicTask(vocab=params["vocab"], topics=params["topics"],
                     seq_len=params["seq_len"], n_masked=params["n_masked"],
                     concentration=params["concentration"], seed=params["task_seed"])
    settings = TrainSettings(d=params["d"], depth=params["depth"], lr=params["lr"],
                             steps=params["steps"], batch=params["batch"],
                             test_size=params["test_size"], eval_every=params["eval_every"],
                             data_seed=params["data_seed"])
    return task, settings


def init_exponents(archs: Sequence[Architecture], depth: int, n_seeds: int, seed: int,
                   device: str = "cpu") -> dict[str, np.ndarray]:
    """Theory and measurement of the exponents at initialization, one value per architecture:
    lambda_a (closed form), lambda_g (depth ``depth``, theory), lambda_g_inf (log G_c), and
    lambda_a_measured, lambda_g_measured (with ``_sem``) on ``n_seeds`` random networks of the
    architectures' sizes (one-layer angle rate from rho = 0.999 at q*; total Jacobian norm over
    ``depth`` layers by 8 random probes per network)."""
    from tdyn.gradients import lambda_common, measure_jacobian
    from tdyn.gradients import lambda_g as lambda_g_theory
    from tdyn.signalprop import lambda_a
    from tdyn.simulate import measured_angle_exponent

    la_mean, la_sem = measured_angle_exponent(list(archs), layers=1, gap=1e-3,
                                              n_seeds=n_seeds, seed=seed, device=device)
    jac = measure_jacobian(list(archs), depth, n_seeds=n_seeds, seed=seed, method="probe",
                           n_probes=8, device=device)
    lg_mean, lg_sem = jac.exponents()["total"]
    return {"lambda_a": np.array([lambda_a(a) for a in archs]),
            "lambda_g": np.array([lambda_g_theory(a, depth) for a in archs]),
            "lambda_g_inf": np.array([lambda_common(a) for a in archs]),
            "lambda_a_measured": la_mean, "lambda_a_measured_sem": la_sem,
            "lambda_g_measured": lg_mean, "lambda_g_measured_sem": lg_sem}


def run_sweep(run, configs: Sequence[dict], params: dict, max_members: int | None = None
              ) -> int:
    """Measure the exponents at initialization of every grid point, train the configurations
    of ``run`` that have no result yet in ensembles and record one result per configuration.
    Returns how many were recorded.

    Seed index k draws its initial weights from the seed (params["seed"], k) for every grid
    point (common random numbers across hyperparameters); all members see the same data.  So
    that a resumed run records bit for bit what an uninterrupted one would have, nothing
    depends on which configurations are pending: the exponents are measured over the whole
    grid, and the ensembles are fixed slices of ``configs`` (at most ``max_members`` each,
    default all); an ensemble with a pending member is trained whole and only its pending
    members are recorded.  When an ensemble does not fit in GPU memory it is halved and
    retried (its members' results then differ from a whole-ensemble run in the last digits
    of floating-point reduction order), and each finished ensemble is recorded at once.
    """
    if max_members is not None and not (isinstance(max_members, int) and max_members >= 1):
        raise ValueError(f"max_members={max_members!r} must be a positive integer")
    configs = [dict(c) for c in configs]
    pending = dict(run.pending(configs))
    if not pending:
        return 0
    task, settings = task_and_settings(params)
    points = sorted({(c["alpha"], c["sigma_w"]) for c in configs})
    archs = [Member(a, a, w, params["sigma_A"]).architecture(task, settings) for a, w in points]
    exps = init_exponents(archs, settings.depth, params["exponent_seeds"], params["seed"],
                          params["device"])
    at_point = {point: {key: float(values[i]) for key, values in exps.items()}
                for i, point in enumerate(points)}
    refs = task_reference_losses(task, settings)
    size = max_members or len(configs)
    queue = [list(enumerate(configs))[i:i + size] for i in range(0, len(configs), size)]
    recorded = 0
    while queue:
        chunk = queue.pop(0)
        if not any(index in pending for index, _ in chunk):
            continue
        members = [Member(c["alpha"], c["alpha"], c["sigma_w"], params["sigma_A"],
                          seed=replicate_seed(params["seed"], c["seed_index"]))
                   for _, c in chunk]
        try:
            result = train_ensemble(members, task, settings, device=params["device"])
        except torch.cuda.OutOfMemoryError:
            if len(chunk) == 1:
                raise
            half = (len(chunk) + 1) // 2
            torch.cuda.empty_cache()
            print(f"out of GPU memory: retrying with ensembles of {half} configurations")
            queue = [part[i:i + half] for part in [chunk, *queue]
                     for i in range(0, len(part), half)]
            continue
        for m, (index, config) in enumerate(chunk):
            if index not in pending:
                continue
            out = {"test_loss": float(result.test_loss[m]),
                   "train_loss": float(result.train_loss[m]),
                   "test_curve": [float(v) for v in result.test_curve[m]],
                   "eval_steps": [int(s) for s in result.eval_steps],
                   "diverged_at": int(result.diverged_at[m]),
                   "bayes_loss": refs["bayes"], "unigram_loss": refs["unigram"],
                   **at_point[(config["alpha"], config["sigma_w"])]}
            run.record(index, config, out, wall_time_s=result.seconds / len(chunk))
            recorded += 1
    return recorded


def _distance(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    r = np.abs(x) if y is None else np.hypot(x, y)
    return np.stack([np.ones_like(r), r], axis=1)


PREDICTORS = {
    "|lambda_a| (linear)": (("lambda_a",), _distance),
    "|(lambda_a, lambda_g)| (linear)": (("lambda_a", "lambda_g"), _distance),
    "quadratic in lambda_a, lambda_g": (("lambda_a", "lambda_g"), quadratic_features),
    "quadratic in measured lambda_a, lambda_g": (("lambda_a_measured", "lambda_g_measured"),
                                                 quadratic_features),
    "quadratic in alpha, log sigma_w (baseline)": (("alpha", "log_sigma_w"),
                                                   quadratic_features),
}
"""Predictors of :func:`predictor_summary`: (columns, design-matrix builder).  The two
"distance" models fit loss = a + b |(lambda_a, lambda_g)|: minimal loss exactly where the
exponents vanish, which is the paper's claim in its simplest form."""


def grid_means(table) -> object:
    """Mean over seeds of the test loss per grid point (NaN if any seed diverged), with the
    exponents (equal across seeds) and log sigma_w."""
    keep = ["lambda_a", "lambda_g", "lambda_g_inf", "lambda_a_measured", "lambda_g_measured"]
    grouped = table.groupby(["alpha", "sigma_w"])
    out = grouped[keep].first()
    loss = grouped["test_loss"]
    out["test_loss"] = loss.mean().where(loss.count() == loss.size())
    out["test_loss_sd"] = loss.std()
    out = out.reset_index()
    out["log_sigma_w"] = np.log(out["sigma_w"])
    return out


@dataclass(frozen=True)
class ExponentClaims:
    """The three statements of the trainability claim, as tables of grid points (rows of
    :func:`grid_means`): the best point, the seed-to-seed noise of the test loss (median of
    the per-point standard deviations, robust to one unstable point), the points within two
    noise units of the best loss, and the points where both exponents are small."""

    best: object
    noise: float
    near_best: object
    small: object


def exponent_claims(means, threshold: float = 0.1) -> ExponentClaims:
    """Sufficiency is read off ``small`` (|lambda_a| and |lambda_g| below ``threshold``):
    are their losses near the best?  Necessity off ``near_best``: are their exponents small?"""
    if not threshold > 0:
        raise ValueError(f"threshold={threshold!r} must be positive")
    best = means.loc[means.test_loss.idxmin()]
    noise = float(np.nanmedian(means.test_loss_sd))
    near_best = means[means.test_loss <= best.test_loss + 2 * noise]
    small = means[(means.lambda_a.abs() < threshold) & (means.lambda_g.abs() < threshold)]
    return ExponentClaims(best=best, noise=noise, near_best=near_best, small=small)


def predictor_summary(table, n_splits: int = 50, train_fraction: float = 0.6, seed: int = 0):
    """Held-out R^2 (median, mean, standard deviation over random splits of the grid points)
    and Spearman correlation of each predictor of :data:`PREDICTORS` for the seed-mean test
    loss, as a pandas table."""
    import pandas as pd

    means = grid_means(table)
    rows = []
    for name, (cols, builder) in PREDICTORS.items():
        x = means[cols[0]].to_numpy()
        y = means[cols[1]].to_numpy() if len(cols) > 1 else None
        scores = split_scores(builder(x, y), means["test_loss"].to_numpy(), n_splits,
                              train_fraction, seed)
        rows.append({"predictor": name, "r2_median": np.median(scores["r2"]),
                     "r2_mean": scores["r2"].mean(), "r2_sd": scores["r2"].std(ddof=1),
                     "spearman_mean": scores["spearman"].mean(),
                     "spearman_sd": scores["spearman"].std(ddof=1)})
    return pd.DataFrame(rows)
