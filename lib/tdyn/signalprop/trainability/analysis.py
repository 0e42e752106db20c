"""Reading a trainability sweep: does (lambda_a, lambda_g) at initialization predict the final
test loss?  Held-out R^2 and Spearman correlation of several predictors over random splits of
the grid points, seed means per grid point, and the three statements of the claim (the best
point, the points near it, the points where both exponents are small).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
