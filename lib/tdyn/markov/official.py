"""Part II: our runs against the official code's (Makkuva et al., github.com/Bond1995/Markov,
``Markov-Simple`` at commit 5807025) on the same settings.

The official runs are stored in ``data/markov/official_comparison*.json`` (made by the harness
in ``data/markov/official_harness/``): per run its chain, initialization (``base`` or
``good``), device, recorded steps and "val loss" (the loss on one fresh batch of 16 sequences,
noisier than our held-out set).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tdyn.markov.chain import entropy_rate, unigram_loss
from tdyn.markov.experiment import escape_step, plateau_loss

INIT_NAMES = {"base": "standard", "good": "proposed"}
"""The official code's initialization names, and ours."""


def load_official(path: Path | str) -> tuple[dict, pd.DataFrame]:
    """(provenance, one row per official run) of a stored comparison file, with the
    initializations renamed to ours."""
    runs = json.loads(Path(path).read_text())
    frame = pd.DataFrame(runs["runs"])
    frame["init"] = frame.init.map(INIT_NAMES)
    return runs["provenance"], frame


def format_escapes(values) -> str:
    """Escape steps as text, ``>end`` for a run that never left the plateau."""
    return ", ".join(">end" if not np.isfinite(v) else f"{v:.0f}" for v in values)


def compare_with_official(official: pd.DataFrame, ours: pd.DataFrame) -> pd.DataFrame:
    """Per (p, q, init): the plateau (median loss over steps 100-300, seed mean), the final
    loss (official: mean over its last 100 steps, to tame its one-batch noise; ours: the last
    evaluation) and the escape steps (below the midpoint of unigram and bigram losses) of the
    official runs against our base-schedule runs (``ours``: a table annotated by
    :func:`tdyn.markov.experiment.annotate_runs`)."""
    rows = []
    for (p, q, init), group in official.groupby(["p", "q", "init"], sort=False):
        steps = [np.array(s) for s in group.steps]
        vals = [np.array(v) for v in group.val_loss]
        midpoint = 0.5 * (unigram_loss(p, q) + entropy_rate(p, q))
        mine = ours[(ours.p == p) & (ours.q == q) & (ours.init == init)
                    & (ours.schedule == "base")]
        rows.append({
            "p": p, "q": q, "init": init, "official runs": len(group),
            "official 100-300": np.mean([plateau_loss(s, v) for s, v in zip(steps, vals,
                                                                             strict=True)]),
            "ours 100-300": mine.plateau.mean(),
            "official final": np.mean([v[s > s.max() - 100].mean()
                                       for s, v in zip(steps, vals, strict=True)]),
            "ours final": mine.final_eval_loss.mean(),
            "official escape": format_escapes([escape_step(s, v, midpoint)
                                               for s, v in zip(steps, vals, strict=True)]),
            "ours escape": format_escapes(mine.escape),
        })
    return pd.DataFrame(rows)
