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
   and the whole reading (learning rate choice included) is repeated: on the table's grouping,
   read once, with the resampled seeds as row weights, and once per distinct multiset of seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

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


Frame = pd.DataFrame | Mapping[str, np.ndarray]
"""A table of the reading (points or slice optima): a data frame, or its columns as arrays (the
form :func:`seed_bootstrap` passes on, clear of pandas' cost per call)."""


def _rows(frame: Frame, mask: np.ndarray) -> Frame:
    """The rows of ``frame`` where ``mask`` holds, in the form of ``frame``."""
    if isinstance(frame, pd.DataFrame):
        return frame[mask]
    return {name: column[mask] for name, column in frame.items()}


def _group_codes(frame: Frame, columns: Sequence[str]) -> np.ndarray:
    """Per row: the index of its key (its values in ``columns``) among the distinct keys sorted,
    the order of pandas' groupby."""
    codes = [np.unique(np.asarray(frame[c]), return_inverse=True)[1].reshape(-1) for c in columns]
    return np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)[1].reshape(-1)


def _slots(codes: np.ndarray) -> np.ndarray:
    """(group, k) -> the row of the k-th member of group ``codes`` in row order, -1 past the
    group's size."""
    sizes = np.bincount(codes)
    order = np.argsort(codes, kind="stable")
    rank = np.arange(len(codes)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    slots = np.full((len(sizes), sizes.max(initial=0)), -1)
    slots[codes[order], rank] = order
    return slots


def _compensated_sums(values: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Per group (a row of :func:`_slots`): the sum of its non-NaN ``values`` in row order with
    Kahan's compensation, as the Cython loop of pandas' groupby sum and mean computes it (the
    loop pandas 3.1 takes unless the rows come sorted by group)."""
    values = np.append(np.asarray(values, dtype=float), np.nan)  # slot -1 reads NaN: skipped
    total, compensation = np.zeros(len(slots)), np.zeros(len(slots))
    with np.errstate(invalid="ignore", over="ignore"):  # an infinite value: reset, as in pandas
        for rows in slots.T:
            value = values[rows]
            keep = ~np.isnan(value)
            y = value - compensation
            t = total + y
            c = t - total - y
            compensation = np.where(keep, np.where(np.isfinite(c), c, 0.0), compensation)
            total = np.where(keep, t, total)
    return total


def _group_means(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``groups``, sorted, and the mean of the non-NaN ``values`` of each (pandas'
    groupby mean)."""
    levels, codes = np.unique(groups, return_inverse=True)
    codes = codes.reshape(-1)
    counts = np.bincount(codes, weights=~np.isnan(values), minlength=len(levels))
    with np.errstate(invalid="ignore"):  # a group without a value: NaN
        return levels, _compensated_sums(values, _slots(codes)) / counts


def _centred(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``values`` less the mean of their group (pandas' groupby transform "mean")."""
    levels, means = _group_means(values, groups)
    return values - means[np.searchsorted(levels, groups)]


def _seed_weights(table: pd.DataFrame, seeds: Sequence[int] | None) -> np.ndarray:
    """Per row: how often its seed index is among ``seeds`` (once each when None)."""
    if seeds is None:
        return np.ones(len(table))
    counts = pd.Series(seeds).value_counts()
    return table["seed_index"].map(counts).fillna(0).to_numpy()


class _Cells:
    """A results table grouped once as :func:`point_losses` reads it: its cells (point, lr) and
    its points, each sorted as pandas' groupby sorts them, with their rows in table order, so that
    :meth:`points` reads it under any seed weights with numpy alone (the bootstrap's resamples)."""

    def __init__(self, table: pd.DataFrame):
        cell = _group_codes(table, [*POINT, "lr"])
        self.cell_rows = _slots(cell)
        first_rows = self.cell_rows[:, 0]
        cell_point = _group_codes({c: np.asarray(table[c])[first_rows] for c in POINT}, POINT)
        self.point_cells = _slots(cell_point)  # in the order of lr
        self.point_rows = _slots(cell_point[cell])
        self.keys = {c: np.asarray(table[c])[self.point_rows[:, 0]] for c in POINT}
        self.lr = np.asarray(table["lr"])[first_rows]
        test, validation = np.asarray(table["test_loss"]), np.asarray(table["validation_loss"])
        self.diverged = ~np.isfinite(test) | ~np.isfinite(validation)
        self.validation = np.where(self.diverged, np.inf, validation)
        self.test = np.where(self.diverged, np.nan, test)
        self.constants = {c: np.asarray(table[c]) for c in [*EXPONENTS, *EDGES]}

    def points(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """The columns of :func:`point_losses` under the row weights of :func:`_seed_weights`
        (a row of weight 0 is left out)."""
        present = weights > 0
        with np.errstate(invalid="ignore"):  # inf * 0 and 0 / 0 of the rows and cells left out
            count, diverged, validation, test = (
                _compensated_sums(np.where(present, values * weights, np.nan), self.cell_rows)
                for values in (np.ones(len(weights)), self.diverged, self.validation, self.test))
            validation = validation / count
            test = np.where(diverged > 0, np.nan, test / count)
        cells = self.point_cells
        usable = (cells >= 0) & (count[cells] > 0)
        loss = np.where(usable, validation[cells], np.inf)
        lowest = usable & (loss == loss.min(axis=1, keepdims=True))  # the first of them
        kept = usable.any(axis=1)
        chosen = cells[np.arange(len(cells)), np.argmax(lowest, axis=1)][kept]
        out = {c: keys[kept] for c, keys in self.keys.items()}
        out.update(lr=self.lr[chosen], validation_loss=validation[chosen],
                   test_loss=test[chosen], diverged_seeds=diverged[chosen].astype(weights.dtype))
        rows = self.point_rows
        present = np.append(present, False)[rows]
        for c, column in self.constants.items():  # the first value of a present row
            values = np.append(column, np.nan)[rows]
            given = present & ~np.isnan(values)
            first = values[np.arange(len(rows)), np.argmax(given, axis=1)]
            out[c] = np.where(given.any(axis=1), first, np.nan)[kept]
        return out


def point_losses(table: pd.DataFrame, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per point at its chosen learning rate: seed-mean test and validation loss over
    ``seeds`` (seed indices, repetitions allowed; default all), the chosen ``lr``, the number of
    diverged seeds there, the exponents and the edges.  A point whose every learning rate
    diverged keeps NaN losses."""
    return pd.DataFrame(_Cells(table).points(_seed_weights(table, seeds)))


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


def _optima(points: Frame) -> dict[str, np.ndarray]:
    """The columns of :func:`slice_optima`."""
    sigma_w, loss = np.asarray(points["sigma_w"]), np.asarray(points["test_loss"])
    codes = _group_codes(points, SLICE)
    order = np.lexsort((sigma_w, codes))
    firsts, optimal, censored, best = [], [], [], []
    for part in np.split(order, np.flatnonzero(np.diff(codes[order])) + 1):
        finite = np.isfinite(loss[part])
        if finite.sum() < 3:
            continue
        vertex, flag = parabola_vertex(np.log(sigma_w[part][finite]), loss[part][finite])
        firsts.append(part[0])
        optimal.append(np.exp(vertex))
        censored.append(flag)
        best.append(np.nanmin(loss[part]))
    firsts = np.array(firsts, dtype=int)
    return {**{c: np.asarray(points[c])[firsts] for c in SLICE},
            "optimal_sigma_w": np.array(optimal, dtype=float),
            "censored": np.array(censored, dtype=bool), "best_loss": np.array(best, dtype=float),
            **{c: np.asarray(points[c])[firsts] for c in EDGES}}


def slice_optima(points: Frame) -> pd.DataFrame:
    """Per slice: the loss-optimal sigma_w (:func:`parabola_vertex` in log sigma_w), whether it
    is censored, the best loss, and the slice's edges."""
    return pd.DataFrame(_optima(points))


def edge_slope(optima: Frame, protocol: str = "fp") -> float:
    """The slope b of optimal sigma_w = a_alpha + b edge sigma_w, least squares with one
    intercept per alpha (both sides centred within each alpha): only the sigma_V intervention
    moves the edge at fixed alpha, so b is read off the variation that the hyperparameter
    baseline cannot see (alpha moves the edge too, and the optimum for reasons of its own)."""
    alpha = np.asarray(optima["alpha"])
    x = _centred(np.asarray(optima[f"edge_sigma_w_{protocol}"], dtype=float), alpha)
    y = _centred(np.asarray(optima["optimal_sigma_w"], dtype=float), alpha)
    if not np.any(np.abs(x) > 1e-12):
        return np.nan
    return float(np.dot(x, y) / np.dot(x, x))


def _blind(frame: Frame) -> np.ndarray:
    return quadratic_features(np.asarray(frame["alpha"]), np.log(np.asarray(frame["sigma_w"])))


def _exponents(suffix: str, scaled: bool = False) -> Callable[[Frame], np.ndarray]:
    def features(frame: Frame) -> np.ndarray:
        factor = np.asarray(frame["depth"]) if scaled else 1.0
        return quadratic_features(factor * np.asarray(frame[f"lambda_a_{suffix}"]),
                                  factor * np.asarray(frame[f"lambda_g_{suffix}"]))
    return features


def _magnitudes(suffix: str, scaled: bool = False) -> Callable[[Frame], np.ndarray]:
    def features(frame: Frame) -> np.ndarray:
        factor = np.asarray(frame["depth"]) if scaled else 1.0
        lambda_a = np.asarray(frame[f"lambda_a_{suffix}"])
        return np.stack([np.ones(len(lambda_a)), np.abs(factor * lambda_a),
                         np.abs(factor * np.asarray(frame[f"lambda_g_{suffix}"]))], axis=1)
    return features


def _null(frame: Frame) -> np.ndarray:
    return np.ones((len(frame["alpha"]), 1))


PREDICTORS: dict[str, Callable[[Frame], np.ndarray]] = {
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

DEPTH_PREDICTORS: dict[str, Callable[[Frame], np.ndarray]] = {
    "null (the training points' mean)": _null,
    "quadratic in alpha, log sigma_w (depth-blind)": _blind,
    "quadratic in L lambda_a, L lambda_g at q*": _exponents("fp", scaled=True),
    "quadratic in L lambda_a, L lambda_g from q0 = 1": _exponents("ln", scaled=True),
    "linear in L |lambda_a|, L |lambda_g| at q*": _magnitudes("fp", scaled=True),
    "linear in L |lambda_a|, L |lambda_g| from q0 = 1": _magnitudes("ln", scaled=True),
}
"""The predictors carried from the main depth to the deep arm (depth-scaled exponents)."""


def transfer(train: Frame, test: Frame,
             features: Callable[[Frame], np.ndarray]) -> tuple[float, float]:
    """(R^2, Spearman) on ``test`` of a least-squares fit on ``train`` (rows with a finite
    loss); R^2 = 1 - SS_res / SS_tot about the held-out mean, so a constant scores <= 0."""
    train = _rows(train, np.isfinite(np.asarray(train["test_loss"])))
    test = _rows(test, np.isfinite(np.asarray(test["test_loss"])))
    return _fit_and_score(features(train), np.asarray(train["test_loss"]), features(test),
                          np.asarray(test["test_loss"]))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank (scipy.stats.rankdata's default): a run of
    ties at sorted positions a..b-1 ranks (a + 1 + b) / 2."""
    ordered = np.sort(values)
    return (np.searchsorted(ordered, values, "left")
            + np.searchsorted(ordered, values, "right") + 1) / 2


def _fit_and_score(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                   y_test: np.ndarray) -> tuple[float, float]:
    """(R^2, Spearman) of :func:`transfer`, on design matrices and losses."""
    coef, *_ = np.linalg.lstsq(x_train, y_train, rcond=None)
    pred = x_test @ coef
    r2 = 1 - np.sum((y_test - pred) ** 2) / np.sum((y_test - y_test.mean()) ** 2)
    # Spearman: the correlation of the ranks (ties averaged); undefined for a constant
    rank = (np.corrcoef(_average_ranks(pred), _average_ranks(y_test))[0, 1]
            if np.ptp(pred) > 0 else np.nan)
    return float(r2), float(rank)


def main_points(points: Frame, near_identity: bool = True) -> Frame:
    """The main arm's points, without the near-identity slices unless ``near_identity``."""
    keep = np.asarray(points["arm"]) == "main"
    if not near_identity:
        keep &= np.asarray(points["alpha"]) >= NEAR_IDENTITY_ALPHA
    return _rows(points, keep)


def slice_transfer(points: Frame, near_identity: bool = True) -> dict[str, tuple]:
    """Per predictor of :data:`PREDICTORS`: (R^2, Spearman) averaged over the choices of the
    training sigma_V, each scored on the points of every other sigma_V of the main arm."""
    main = main_points(points, near_identity)
    main = _rows(main, np.isfinite(np.asarray(main["test_loss"])))
    sigma_v, loss = np.asarray(main["sigma_V"]), np.asarray(main["test_loss"])
    splits = [sigma_v == v for v in np.unique(sigma_v)]
    out = {}
    for name, features in PREDICTORS.items():
        x = features(main)  # row by row, so the rows of a split are its own features
        scores = [_fit_and_score(x[held], loss[held], x[~held], loss[~held]) for held in splits]
        out[name] = tuple(float(np.mean(s)) for s in zip(*scores, strict=True))
    return out


def depth_transfer(points: Frame) -> dict[str, tuple]:
    """Per predictor of :data:`DEPTH_PREDICTORS`: (R^2, Spearman) of a fit on the main arm
    (without near-identity slices) scored on the deep arm."""
    deep = np.asarray(points["arm"]) == "deep"
    if not deep.any():
        return {}
    train, test = main_points(points, near_identity=False), _rows(points, deep)
    return {name: transfer(train, test, f) for name, f in DEPTH_PREDICTORS.items()}


def value_lr_shift(optima: Frame) -> dict[str, float]:
    """The shift of the optimal sigma_w from the smallest to the largest sigma_V of the value
    arm's slices, under the fixed W_V learning rate (main arm) and the scaled one (value arm),
    averaged over the arm's alphas, and the edge's shift over the same slices."""
    arm, sigma_v, alpha = (np.asarray(optima[c]) for c in ("arm", "sigma_V", "alpha"))
    value = arm == "value"
    if not value.any():
        return {}
    lo, hi = sigma_v[value].min(), sigma_v[value].max()
    shifts = {}
    for name in ("main", "value"):
        part = (arm == name) & np.isin(alpha, alpha[value])
        levels, optimal = _group_means(np.asarray(optima["optimal_sigma_w"])[part], sigma_v[part])
        _, edge = _group_means(np.asarray(optima["edge_sigma_w_fp"])[part], sigma_v[part])
        if lo in levels and hi in levels:
            low, high = np.searchsorted(levels, [lo, hi])
            shifts[f"{name}_shift"] = float(optimal[high] - optimal[low])
            shifts["edge_shift_fp"] = float(edge[high] - edge[low])
    return shifts


def statistics(table: pd.DataFrame, seeds: Sequence[int] | None = None) -> dict[str, float]:
    """Every number of the verdict, flat, from one (resampled) set of seeds: the slopes
    ``slope_<protocol>_<set>`` and the transfer scores ``<r2|spearman>::<predictor>::<set>``
    (sets: ``all``, ``no_near_identity``, ``deep``), and the value-arm shifts."""
    return _statistics(_Cells(table).points(_seed_weights(table, seeds)))


def _statistics(points: Frame) -> dict[str, float]:
    """:func:`statistics` of the points of :func:`point_losses`."""
    optima = _optima(points)
    out = {}
    main = optima["arm"] == "main"
    for near_identity in (True, False):
        tag = "all" if near_identity else "no_near_identity"
        part = main if near_identity else main & (optima["alpha"] >= NEAR_IDENTITY_ALPHA)
        for protocol in ("fp", "ln"):
            out[f"slope_{protocol}_{tag}"] = edge_slope(_rows(optima, part), protocol)
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
    cells = _Cells(table)  # the grouping, once; a resample only changes the row weights
    full = _statistics(cells.points(_seed_weights(table, None)))
    readings, draws = {}, []  # by the seeds drawn, as a multiset: resamples alike read alike
    for _ in range(n_boot):
        drawn = rng.choice(seeds, size=len(seeds))
        key = tuple(np.sort(drawn))
        if key not in readings:
            readings[key] = _statistics(cells.points(_seed_weights(table, drawn)))
        draws.append(readings[key])
    draws = pd.DataFrame(draws)
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
