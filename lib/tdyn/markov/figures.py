"""Part II figures drawn in more than one place: the training curves of a run of
``notebooks/markov_full.ipynb`` and the critical set of the reduced model."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from tdyn.markov.reduced import W_SADDLE, global_min_e
from tdyn.plotting import PALETTE

INIT_COLORS = {"standard": PALETTE[0], "proposed": PALETTE[1], "canonical": PALETTE[2]}
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
    ax.plot(mins, 0 * mins, color="red", lw=3, label="local minima (unigram)")
    ax.plot(maxs, 0 * maxs, color="blue", lw=3, ls=":", label="local maxima")
    ax.plot([W_SADDLE], [0], "^", color="orange", ms=10, mec="black", label="saddle")
