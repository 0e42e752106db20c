"""Part II figures drawn in more than one place: the training curves of a run of
``notebooks/markov_full.ipynb`` and the critical set of the reduced model."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from tdyn.markov.reduced import W_SADDLE, global_min_e
from tdyn.plotting import PALETTE

INIT_COLORS = {"standard": PALETTE[0], "proposed": PALETTE[1], "canonical": PALETTE[2]}
BASIN_COLORS = {"global": "#cfe3f2", "unigram": "#fbdcc0"}
"""Light fills of the two basins of the reduced flow (blue: global minimum, orange: unigram),
a pair that stays distinct under every common colour-vision deficiency."""
INIT_LABELS = {"standard": "standard", "proposed": "proposed (code's good)",
               "canonical": "canonical (1, -1)"}


def plot_excess_curves(runs, title: str) -> None:
    """Excess test loss over Bayes of every base-schedule run, one panel per chain, with the
    unigram gap I(x_n; x_{n+1}) dashed (``runs``: annotated by
    :func:`tdyn.markov.experiment.annotate_runs`)."""
    base = runs[runs.schedule == "base"]
    chains = base[["p", "q"]].drop_duplicates().to_numpy()
    fig, axes = plt.subplots(1, len(chains), figsize=(11, 4.0), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, (p, q) in zip(axes, chains, strict=True):
        rows = base[(base.p == p) & (base.q == q)]
        for _, row in rows.iterrows():
            ax.plot(row.record_steps, np.maximum(row.excess, 1e-4), color=INIT_COLORS[row.init],
                    lw=1.2, label=INIT_LABELS[row.init] if row.seed_index == 0 else None)
        ax.axhline(rows.gap_unigram.mean(), color="grey", ls="--", lw=1,
                   label="unigram: $I(x_n; x_{n+1})$")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 30)
        ax.set_xlabel("training step")
        ax.set_title(f"$(p, q) = ({p}, {q})$, $p + q {'>' if p + q > 1 else '<'} 1$")
    axes[0].set_ylabel("test loss minus Bayes loss (nats)")
    axes[-1].legend(fontsize=8, loc="upper right")
    fig.suptitle(title)
    plt.show()


def draw_critical_set(ax, w_axis: np.ndarray, p: float, q: float) -> None:
    """The reduced model's critical set on ``ax`` over ``w_axis``: the global-minimum curves
    e = +-e*(w), the unigram line e = 0 split into local minima and maxima at the saddle
    w = -1/sqrt 2, and the saddle."""
    e_star = global_min_e(w_axis, p, q)
    ax.plot(w_axis, e_star, "--", color="purple", lw=1.5, label="global minima")
    ax.plot(w_axis, -e_star, "--", color="purple", lw=1.5)
    left, right = w_axis[w_axis < W_SADDLE], w_axis[w_axis > W_SADDLE]
    mins, maxs = (right, left) if p + q > 1 else (left, right)
    ax.plot(mins, 0 * mins, color=PALETTE[3], lw=3, label="local minima (unigram)")
    ax.plot(maxs, 0 * maxs, color=PALETTE[0], lw=3, ls=":", label="local maxima")
    ax.plot([W_SADDLE], [0], "^", color="orange", ms=10, mec="black", label="saddle")


PATH_COLORS = {"skip": PALETTE[0], "attention": PALETTE[3], "mlp": PALETTE[2]}
PRECISION_COLORS = {"float32": "black", "float16": PALETTE[3], "float16-scaled": PALETTE[0],
                    "bfloat16": PALETTE[4]}
PRECISION_LABELS = {"float32": "float32", "float16": "float16 autocast, no scaler",
                    "float16-scaled": "float16 autocast + GradScaler",
                    "bfloat16": "bfloat16 autocast"}


def plot_gap_by_path(runs, bayes_gaps: dict) -> None:
    """Logit gap by path along training, one panel per (chain, init) of the float32 runs of
    ``notebooks/markov_precision.ipynb`` (``runs``: its results table, one seed per panel),
    on a symmetric-log axis, with the Bayes gap of each chain (``bayes_gaps[(p, q)]``) dotted,
    and below each row the fraction of active ReLUs.  Returns (figure, axes)."""
    runs = runs[runs.precision == "float32"]
    chains = [tuple(c) for c in runs[["p", "q"]].drop_duplicates().to_numpy()]
    inits = list(dict.fromkeys(runs.init))
    fig, axes = plt.subplots(2 * len(chains), len(inits), figsize=(3.7 * len(inits),
                             3.3 * len(chains)), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1] * len(chains)})
    for r, (p, q) in enumerate(chains):
        for c, init in enumerate(inits):
            ax, ax_relu = axes[2 * r, c], axes[2 * r + 1, c]
            row = runs[(runs.p == p) & (runs.q == q) & (runs.init == init)].iloc[0]
            steps, mech = np.asarray(row.record_steps), row.mechanism
            for path, color in PATH_COLORS.items():
                ax.plot(steps, mech[f"gap_{path}"], color=color, lw=1.4, label=path)
            ax.plot(steps, mech["gap"], color="black", lw=1.0, ls="--", label="total gap")
            ax.axhline(bayes_gaps[(p, q)], color="grey", ls=":", lw=1.2, label="Bayes gap")
            ax.set_yscale("symlog", linthresh=1.0)
            ax.set_title(f"{INIT_LABELS[init]}, $(p, q) = ({p}, {q})$", fontsize=9)
            ax_relu.plot(steps, mech["relu_active"], color=PALETTE[1], lw=1.4)
            ax_relu.set_ylim(-0.05, 1.05)
            if c == 0:
                ax.set_ylabel("logit gap part")
                ax_relu.set_ylabel("ReLUs on")
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    return fig, axes


def plot_precision_curves(runs, panels: list[tuple[str, int]], unigram: float,
                          bigram: float) -> None:
    """Test loss along training under each precision, one panel per (init, sequence length)
    of ``panels``, for the first-chain runs of ``notebooks/markov_precision.ipynb``
    (``runs``: its results table), with the unigram and bigram losses.  Returns (figure,
    axes)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.6), sharey=True,
                             squeeze=False)
    for ax, (init, seq_len) in zip(axes[0], panels, strict=True):
        rows = runs[(runs.init == init) & (runs.seq_len == seq_len)
                    & (runs.p == runs.p.iloc[0]) & (runs.q == runs.q.iloc[0])]
        for _, row in rows.iterrows():
            ax.plot(row.record_steps, row.eval_loss, color=PRECISION_COLORS[row.precision],
                    lw=1.3, ls="-" if row.precision != "bfloat16" else "-.",
                    label=PRECISION_LABELS[row.precision])
        ax.axhline(unigram, color="grey", ls="--", lw=1, label="unigram $H(\\pi)$")
        ax.axhline(bigram, color="black", ls=":", lw=1, label=r"bigram $H(x_{n+1}\mid x_n)$")
        ax.set_ylim(bigram - 0.01, unigram + 0.03)
        ax.set_title(f"{INIT_LABELS[init]}, T = {seq_len}", fontsize=9)
        ax.set_xlabel("training step")
    axes[0, 0].set_ylabel("test loss (nats, float32)")
    for ax in axes[0]:
        ax.legend(fontsize=7, loc="upper right")
    return fig, axes[0]
