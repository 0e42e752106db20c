"""Reading the edge-shift experiment (:mod:`tdyn.signalprop.trainability.edge_shift`).

1. Learning rate per configuration: the one of the grid with the lowest seed-mean validation
   loss (a seed that diverged counts as +inf); the test loss is read at that learning rate.
2. The loss-optimal sigma_w of each slice (arm, sigma_V, alpha): the vertex of the parabola in
   log sigma_w through the grid minimum and its two neighbours (the grid end, flagged
   ``censored``, when the minimum is there).
3. Does the optimum follow the edge?  The least-squares slope of optimal sigma_w on the
   theoretical edge sigma_w over the slices, within each alpha (so over sigma_V only): about 1
   if the exponents decide the loss, about 0 if (alpha, sigma_w) do.
4. Transfer: each predictor is fitted on the points of one sigma_V and scored on the others
   (out-of-slice R^2 about the held-out mean, and Spearman); the sigma_V-blind model in
   (alpha, log sigma_w) cannot see the intervention.
5. Every statistic gets a seed-bootstrap interval: the seed indices are resampled with
   replacement (jointly for all configurations, which share their initial weights by seed)
   and the whole reading (learning rate choice included) is repeated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from tdyn.signalprop.trainability.analysis import quadratic_features

POINT = ["arm", "depth", "value_lr", "sigma_V", "alpha", "sigma_w"]
"""Columns that name a point of the experiment (a configuration without lr and seed)."""

SLICE = ["arm", "depth", "value_lr", "sigma_V", "alpha"]
"""Columns that name a slice: one curve of test loss against sigma_w."""

EXPONENTS = ["lambda_a_fp", "lambda_g_fp", "lambda_a_ln", "lambda_g_ln"]
EDGES = ["edge_sigma_w_fp", "edge_sigma_w_ln"]

NEAR_IDENTITY_ALPHA = 0.2
"""Slices with alpha below this are near-identity networks (every block close to the identity),
where small exponents and good losses coincide for a reason of their own."""


def point_losses(table: pd.DataFrame, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per point at its chosen learning rate: seed-mean test and validation loss over
    ``seeds`` (seed indices, repetitions allowed; default all), the chosen ``lr``, the number of
    diverged seeds there, the exponents and the edges.  A point whose every learning rate
    diverged keeps NaN losses."""
    if seeds is not None:
        counts = pd.Series(seeds).value_counts()
        weights = table["seed_index"].map(counts).fillna(0)
        table = table.assign(_w=weights)[weights > 0]
    else:
        table = table.assign(_w=1.0)
    diverged = ~np.isfinite(table["test_loss"]) | ~np.isfinite(table["validation_loss"])
    table = table.assign(
        _val=np.where(diverged, np.inf, table["validation_loss"]) * table["_w"],
        _test=np.where(diverged, np.nan, table["test_loss"]) * table["_w"],
        _div=diverged * table["_w"])
    grouped = table.groupby([*POINT, "lr"])
    per_lr = grouped[["_val", "_test", "_w", "_div"]].sum()
    per_lr["validation_loss"] = per_lr["_val"] / per_lr["_w"]
    per_lr["test_loss"] = per_lr["_test"] / per_lr["_w"]
    per_lr.loc[per_lr["_div"] > 0, "test_loss"] = np.nan
    per_lr["diverged_seeds"] = per_lr["_div"]
    per_lr = per_lr.reset_index()
    best = per_lr.loc[per_lr.groupby(POINT)["validation_loss"].idxmin()]
    constants = table.groupby(POINT)[[*EXPONENTS, *EDGES]].first().reset_index()
    return best[[*POINT, "lr", "validation_loss", "test_loss", "diverged_seeds"]].merge(
        constants, on=POINT).sort_values(POINT, ignore_index=True)


def parabola_vertex(x: np.ndarray, y: np.ndarray) -> tuple[float, bool]:
    """(x of the minimum, censored): the vertex of the parabola through the lowest of the points
    (x, y) (x sorted, finite y) and its two neighbours; the lowest x itself, censored, when it
    is an end of the grid or the three points are not convex."""
    i = int(np.nanargmin(y))
    if i == 0 or i == len(x) - 1:
        return float(x[i]), True
    (x0, x1, x2), (y0, y1, y2) = x[i - 1:i + 2], y[i - 1:i + 2]
    denominator = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denominator
    b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / denominator
    if not a > 0:
        return float(x1), True
    return float(np.clip(-b / (2 * a), x0, x2)), False


def slice_optima(points: pd.DataFrame) -> pd.DataFrame:
    """Per slice: the loss-optimal sigma_w (:func:`parabola_vertex` in log sigma_w), whether it
    is censored, the best loss, and the slice's edges."""
    rows = []
    for key, part in points.groupby(SLICE):
        part = part.sort_values("sigma_w")
        finite = np.isfinite(part["test_loss"].to_numpy())
        if finite.sum() < 3:
            continue
        log_w = np.log(part["sigma_w"].to_numpy()[finite])
        vertex, censored = parabola_vertex(log_w, part["test_loss"].to_numpy()[finite])
        rows.append({**dict(zip(SLICE, key, strict=True)), "optimal_sigma_w": np.exp(vertex),
                     "censored": censored, "best_loss": part["test_loss"].min(),
                     **part[EDGES].iloc[0].to_dict()})
    return pd.DataFrame(rows)


def edge_slope(optima: pd.DataFrame, protocol: str = "fp") -> float:
    """The slope b of optimal sigma_w = a_alpha + b edge sigma_w, least squares with one
    intercept per alpha (both sides centred within each alpha): only the sigma_V intervention
    moves the edge at fixed alpha, so b is read off the variation that the hyperparameter
    baseline cannot see (alpha moves the edge too, and the optimum for reasons of its own)."""
    edge = optima[f"edge_sigma_w_{protocol}"]
    groups = optima["alpha"]
    x = (edge - edge.groupby(groups).transform("mean")).to_numpy()
    y = optima["optimal_sigma_w"]
    y = (y - y.groupby(groups).transform("mean")).to_numpy()
    if not np.any(np.abs(x) > 1e-12):
        return np.nan
    return float(np.dot(x, y) / np.dot(x, x))


def _blind(frame: pd.DataFrame) -> np.ndarray:
    return quadratic_features(frame["alpha"].to_numpy(), np.log(frame["sigma_w"].to_numpy()))


def _exponents(suffix: str, scaled: bool = False) -> Callable[[pd.DataFrame], np.ndarray]:
    def features(frame: pd.DataFrame) -> np.ndarray:
        factor = frame["depth"].to_numpy() if scaled else 1.0
        return quadratic_features(factor * frame[f"lambda_a_{suffix}"].to_numpy(),
                                  factor * frame[f"lambda_g_{suffix}"].to_numpy())
    return features


def _magnitudes(suffix: str, scaled: bool = False) -> Callable[[pd.DataFrame], np.ndarray]:
    def features(frame: pd.DataFrame) -> np.ndarray:
        factor = frame["depth"].to_numpy() if scaled else 1.0
        return np.stack([np.ones(len(frame)),
                         np.abs(factor * frame[f"lambda_a_{suffix}"].to_numpy()),
                         np.abs(factor * frame[f"lambda_g_{suffix}"].to_numpy())], axis=1)
    return features


def _null(frame: pd.DataFrame) -> np.ndarray:
    return np.ones((len(frame), 1))


PREDICTORS: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    "null (the training slice's mean)": _null,
    "quadratic in alpha, log sigma_w (sigma_V-blind)": _blind,
    "quadratic in lambda_a, lambda_g at q*": _exponents("fp"),
    "quadratic in lambda_a, lambda_g from q0 = 1 over L layers": _exponents("ln"),
    "linear in |lambda_a|, |lambda_g| at q*": _magnitudes("fp"),
    "linear in |lambda_a|, |lambda_g| from q0 = 1 over L layers": _magnitudes("ln"),
}
"""Competing predictors of the seed-mean test loss, as design-matrix builders.  The linear
models in |lambda| are the claim in its simplest form (the loss is least where both exponents
vanish) and, unlike a quadratic, do not curve away outside the exponents seen in training."""

DEPTH_PREDICTORS: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    "null (the training points' mean)": _null,
    "quadratic in alpha, log sigma_w (depth-blind)": _blind,
    "quadratic in L lambda_a, L lambda_g at q*": _exponents("fp", scaled=True),
    "quadratic in L lambda_a, L lambda_g from q0 = 1": _exponents("ln", scaled=True),
    "linear in L |lambda_a|, L |lambda_g| at q*": _magnitudes("fp", scaled=True),
    "linear in L |lambda_a|, L |lambda_g| from q0 = 1": _magnitudes("ln", scaled=True),
}
"""The predictors carried from the main depth to the deep arm (depth-scaled exponents)."""


def transfer(train: pd.DataFrame, test: pd.DataFrame,
             features: Callable[[pd.DataFrame], np.ndarray]) -> tuple[float, float]:
    """(R^2, Spearman) on ``test`` of a least-squares fit on ``train`` (rows with a finite
    loss); R^2 = 1 - SS_res / SS_tot about the held-out mean, so a constant scores <= 0."""
    train = train[np.isfinite(train["test_loss"])]
    test = test[np.isfinite(test["test_loss"])]
    return _fit_and_score(features(train), train["test_loss"].to_numpy(), features(test),
                          test["test_loss"].to_numpy())


def _fit_and_score(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                   y_test: np.ndarray) -> tuple[float, float]:
    """(R^2, Spearman) of :func:`transfer`, on design matrices and losses."""
    from scipy.stats import rankdata

    coef, *_ = np.linalg.lstsq(x_train, y_train, rcond=None)
    pred = x_test @ coef
    r2 = 1 - np.sum((y_test - pred) ** 2) / np.sum((y_test - y_test.mean()) ** 2)
    # Spearman: the correlation of the ranks (ties averaged); undefined for a constant
    rank = np.corrcoef(rankdata(pred), rankdata(y_test))[0, 1] if np.ptp(pred) > 0 else np.nan
    return float(r2), float(rank)


def main_points(points: pd.DataFrame, near_identity: bool = True) -> pd.DataFrame:
    """The main arm's points, without the near-identity slices unless ``near_identity``."""
    main = points[points["arm"] == "main"]
    return main if near_identity else main[main["alpha"] >= NEAR_IDENTITY_ALPHA]


def slice_transfer(points: pd.DataFrame, near_identity: bool = True) -> dict[str, tuple]:
    """Per predictor of :data:`PREDICTORS`: (R^2, Spearman) averaged over the choices of the
    training sigma_V, each scored on the points of every other sigma_V of the main arm."""
    main = main_points(points, near_identity)
    main = main[np.isfinite(main["test_loss"])]
    sigma_v, loss = main["sigma_V"].to_numpy(), main["test_loss"].to_numpy()
    splits = [sigma_v == v for v in np.unique(sigma_v)]
    out = {}
    for name, features in PREDICTORS.items():
        x = features(main)  # row by row, so the rows of a split are its own features
        scores = [_fit_and_score(x[held], loss[held], x[~held], loss[~held]) for held in splits]
        out[name] = tuple(float(np.mean(s)) for s in zip(*scores, strict=True))
    return out


def depth_transfer(points: pd.DataFrame) -> dict[str, tuple]:
    """Per predictor of :data:`DEPTH_PREDICTORS`: (R^2, Spearman) of a fit on the main arm
    (without near-identity slices) scored on the deep arm."""
    deep = points[points["arm"] == "deep"]
    if deep.empty:
        return {}
    train = main_points(points, near_identity=False)
    return {name: transfer(train, deep, f) for name, f in DEPTH_PREDICTORS.items()}


def value_lr_shift(optima: pd.DataFrame) -> dict[str, float]:
    """The shift of the optimal sigma_w from the smallest to the largest sigma_V of the value
    arm's slices, under the fixed W_V learning rate (main arm) and the scaled one (value arm),
    averaged over the arm's alphas, and the edge's shift over the same slices."""
    value = optima[optima["arm"] == "value"]
    if value.empty:
        return {}
    lo, hi = value["sigma_V"].min(), value["sigma_V"].max()
    shifts = {}
    for arm in ("main", "value"):
        part = optima[(optima["arm"] == arm) & optima["alpha"].isin(value["alpha"])]
        by_v = part.groupby("sigma_V")[["optimal_sigma_w", "edge_sigma_w_fp"]].mean()
        if {lo, hi} <= set(by_v.index):
            shifts[f"{arm}_shift"] = float(by_v.loc[hi, "optimal_sigma_w"]
                                           - by_v.loc[lo, "optimal_sigma_w"])
            shifts["edge_shift_fp"] = float(by_v.loc[hi, "edge_sigma_w_fp"]
                                            - by_v.loc[lo, "edge_sigma_w_fp"])
    return shifts


def statistics(table: pd.DataFrame, seeds: Sequence[int] | None = None) -> dict[str, float]:
    """Every number of the verdict, flat, from one (resampled) set of seeds: the slopes
    ``slope_<protocol>_<set>`` and the transfer scores ``<r2|spearman>::<predictor>::<set>``
    (sets: ``all``, ``no_near_identity``, ``deep``), and the value-arm shifts."""
    points = point_losses(table, seeds)
    optima = slice_optima(points)
    out = {}
    main = optima[optima["arm"] == "main"]
    for near_identity in (True, False):
        tag = "all" if near_identity else "no_near_identity"
        part = main if near_identity else main[main["alpha"] >= NEAR_IDENTITY_ALPHA]
        for protocol in ("fp", "ln"):
            out[f"slope_{protocol}_{tag}"] = edge_slope(part, protocol)
        for name, (r2, rank) in slice_transfer(points, near_identity).items():
            out[f"r2::{name}::{tag}"], out[f"spearman::{name}::{tag}"] = r2, rank
    for name, (r2, rank) in depth_transfer(points).items():
        out[f"r2::{name}::deep"], out[f"spearman::{name}::deep"] = r2, rank
    out.update(value_lr_shift(optima))
    return out


def seed_bootstrap(table: pd.DataFrame, n_boot: int = 200, seed: int = 0,
                   level: float = 0.95) -> pd.DataFrame:
    """Each statistic of :func:`statistics`: its value on all seeds and the percentile
    interval of ``level`` over ``n_boot`` resamples of the seed indices."""
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} must lie in (0, 1)")
    seeds = np.sort(table["seed_index"].unique())
    if len(seeds) < 2:
        raise ValueError("the seed bootstrap needs at least two seeds")
    rng = np.random.default_rng(seed)
    full = statistics(table)
    draws = pd.DataFrame([statistics(table, rng.choice(seeds, size=len(seeds)))
                          for _ in range(n_boot)])
    tail = (1 - level) / 2
    return pd.DataFrame({"value": pd.Series(full),
                         "low": draws.quantile(tail), "high": draws.quantile(1 - tail)})


def flatness(table: pd.DataFrame) -> pd.Series:
    """Per point at its chosen learning rate: the drop of the seed-mean test loss over the last
    quarter of the budget (positive: still falling), from the stored loss curves."""
    points = point_losses(table)
    chosen = table.merge(points[[*POINT, "lr"]], on=[*POINT, "lr"])
    drops = []
    for _, part in chosen.groupby(POINT):
        curves = np.array(part["test_curve"].tolist(), dtype=float)
        steps = np.asarray(part["eval_steps"].iloc[0])
        quarter = int(np.argmin(np.abs(steps - 0.75 * steps[-1])))
        mean = np.nanmean(curves, axis=0)
        drops.append(mean[quarter] - mean[-1])
    return pd.Series(drops, name="last_quarter_drop")


def transfer_table(boot: pd.DataFrame) -> pd.DataFrame:
    """The transfer scores of :func:`seed_bootstrap` as a table: one row per (predictor, set),
    where the set is ``all`` (every main-arm slice), ``no_near_identity`` (alpha >= 0.2) or
    ``deep`` (fitted on the main depth, scored on the deep arm), with R^2 and Spearman and their
    intervals."""
    rows = {}
    for key, row in boot.iterrows():
        parts = key.split("::")
        if len(parts) != 3:
            continue
        score, predictor, which = parts
        entry = rows.setdefault((predictor, which), {"predictor": predictor, "set": which})
        entry[score] = row["value"]
        entry[f"{score}_low"], entry[f"{score}_high"] = row["low"], row["high"]
    return pd.DataFrame(list(rows.values()))
