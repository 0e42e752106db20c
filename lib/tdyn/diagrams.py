"""Explanatory diagrams of the book, drawn by code in the style of :mod:`tdyn.plotting`.

Each function draws on a given matplotlib ``Axes`` (or returns a figure or animation) and
writes every label as a text artist, so a test can check what a diagram shows.  The module
knows no part of the library: callers pass the numbers (Gram projections, token indices).
"""

from __future__ import annotations

import re

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from tdyn.plotting import PALETTE

_PLAYER_GLYPHS = {"minus": "\u2212", "fast-backward": "\u21e4", "step-backward": "\u2039",
                  "play fa-flip-horizontal": "\u25c0\ufe0e", "pause": "||",
                  "play": "\u25b6\ufe0e", "step-forward": "\u203a", "fast-forward": "\u21e5",
                  "plus": "+"}
"""Text glyphs for the buttons of matplotlib's HTML player, which otherwise loads an icon font
from a CDN (the book makes no network request)."""

_PLAYER_STYLE = """<style>
.animation { max-width: 100%; }
.animation img { max-width: 100%; height: auto; }
input[type=range].anim-slider { width: 100%; max-width: 374px; }
.anim-buttons button { width: 32px; }
</style>
"""
"""Lets the player shrink with the page: matplotlib's own style fixes its widths in pixels, and
this one, coming after it, overrides them."""

_INK = "0.15"
_MUTED = "0.6"


def _box(ax, x: float, y: float, text: str, width: float, color, height: float = 0.5,
         fontsize: int = 10, ink: str = _INK) -> None:
    """A rounded box centred at (x, y) with ``text`` inside."""
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.02,rounding_size=0.08", fc=color,
                                ec=ink, lw=1.0))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=ink)


def _arrow(ax, start, end, ink: str = _INK, style: str = "-|>") -> None:
    """An arrow from ``start`` to ``end`` (data coordinates)."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=ink,
                                 lw=1.1, shrinkA=0, shrinkB=0))


def _sum_node(ax, x: float, y: float) -> None:
    """A circled plus: the residual sum."""
    ax.add_patch(Circle((x, y), 0.17, fc="white", ec=_INK, lw=1.1))
    ax.text(x, y, "+", ha="center", va="center", fontsize=13, color=_INK)


def _blank(ax, xlim, ylim) -> None:
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")


def block_schematic(ax, norm: str = "pre", residual: str = "interp") -> None:
    """One block of Part I's transformer family: attention then MLP, each a residual branch
    with branch weight alpha and skip weight c (sqrt(1 - alpha^2) for ``interp``, 1 for
    ``plain``), LayerNorm inside the branches (``pre``) or after each sum (``post``)."""
    if norm not in ("pre", "post") or residual not in ("interp", "plain"):
        raise ValueError(f"norm={norm!r}, residual={residual!r}: choose norm in "
                         "('pre', 'post') and residual in ('interp', 'plain')")
    y_main, y_branch = 0.0, 1.25
    ax.text(0.0, y_main, r"$x^{\ell}$", ha="center", va="center", fontsize=13)
    x = 0.35
    for k, (name, sub, inner) in enumerate(
            (("attention", "A", r"softmax$(s)$, $\sigma_A$"),
             ("MLP", "M", r"$\phi$, $\sigma_w$"))):
        color = PALETTE[k]
        light = tuple(0.75 + 0.25 * c for c in color)
        split, add = x + 0.35, x + 4.1
        skip = (rf"$c_{sub} = \sqrt{{1-\alpha_{sub}^2}}$" if residual == "interp"
                else rf"$c_{sub} = 1$")
        _arrow(ax, (x, y_main), (add - 0.17, y_main))
        ax.text((split + add) / 2, y_main - 0.22, rf"skip $\times$ {skip}", ha="center",
                va="top", fontsize=9.5)
        ax.plot([split, split], [y_main, y_branch], color=_INK, lw=1.1)
        bx = split + 0.35
        if norm == "pre":
            _box(ax, bx + 0.3, y_branch, "LN", 0.6, "white")
            bx += 0.75
        _arrow(ax, (split, y_branch), (bx, y_branch))
        _box(ax, bx + 0.9, y_branch, f"{name}\n{inner}", 1.8, light, height=0.75, fontsize=9)
        gx = bx + 2.05
        _arrow(ax, (bx + 1.8, y_branch), (add, y_branch))
        ax.text(gx + 0.2, y_branch + 0.2, rf"$\times\,\alpha_{sub}$", ha="center",
                va="bottom", fontsize=10.5, color=_INK)
        _arrow(ax, (add, y_branch), (add, y_main + 0.17))
        _sum_node(ax, add, y_main)
        x = add + 0.17
        if norm == "post":
            _arrow(ax, (x, y_main), (x + 0.25, y_main), style="-")
            _box(ax, x + 0.55, y_main, "LN", 0.6, "white")
            x += 0.85
    _arrow(ax, (x, y_main), (x + 0.45, y_main))
    ax.text(x + 0.5, y_main, r"$x^{\ell+1}$", ha="left", va="center", fontsize=13)
    ax.set_title(f"{norm}-LN, residual form '{residual}'", fontsize=10.5)
    _blank(ax, (-0.35, x + 1.3), (-0.75, 1.9))


def reduced_model_diagram(ax) -> None:
    """Part II's reduced model: the symbol x_n through embedding e, a skip path and a ReLU
    feed-forward path of gain 2 w|w|, the readout along the embedding and the bias b, to the
    logit f_{x_n}; attention is switched off (W_V = 0) on the rank-one manifold."""
    y, y_ff, y_att = 0.0, 1.2, -1.2
    ax.text(0.0, y, r"$x_n\in\{0,1\}$", ha="center", va="center", fontsize=11)
    _arrow(ax, (0.65, y), (1.0, y))
    _box(ax, 1.95, y, "embedding\n+ position\n" r"$e\,(x_n-\frac{1}{2})\,\alpha$", 1.9,
         tuple(0.75 + 0.25 * c for c in PALETTE[0]), height=1.0, fontsize=9)
    split, add = 3.05, 6.6
    ax.plot([2.9, split], [y, y], color=_INK, lw=1.1)
    _arrow(ax, (split, y), (add - 0.17, y))
    ax.text(4.85, y - 0.12, r"skip $\times\,1$", ha="center", va="top", fontsize=9.5)
    ax.plot([split, split], [y_att, y_ff], color=_INK, lw=1.1)
    _arrow(ax, (split, y_ff), (3.6, y_ff))
    _box(ax, 4.85, y_ff, "feed-forward, ReLU\n" r"adds $2w|w|\,e\,x_n\,\alpha$", 2.5,
         tuple(0.75 + 0.25 * c for c in PALETTE[1]), height=0.8, fontsize=9)
    _arrow(ax, (6.1, y_ff), (add, y_ff), style="-")
    _arrow(ax, (add, y_ff), (add, y + 0.17))
    _arrow(ax, (split, y_att), (3.6, y_att), ink=_MUTED)
    _box(ax, 4.85, y_att, "attention: off\n" r"($W_V = 0$)", 2.5, "white", height=0.8,
         fontsize=9, ink=_MUTED)
    _sum_node(ax, add, y)
    _arrow(ax, (add + 0.17, y), (7.2, y))
    _box(ax, 8.0, y, "readout\n" r"along $e\,\alpha$", 1.6,
         tuple(0.75 + 0.25 * c for c in PALETTE[0]), height=0.8, fontsize=9)
    _arrow(ax, (8.8, y), (9.25, y))
    _box(ax, 9.7, y, r"$+\,b$", 0.9, tuple(0.75 + 0.25 * c for c in PALETTE[2]),
         height=0.6, fontsize=10)
    _arrow(ax, (10.15, y), (10.55, y))
    ax.text(10.6, y, r"logit $f_{x_n}$", ha="left", va="center", fontsize=11)
    ax.text(6.1, -2.15,
            r"$f_0 = b - \frac{1}{2}e^2,\quad f_1 = f_0 + c(w)\,e^2,\quad c(w) = 1 + 2w|w|$"
            "\n" r"$P(x_{n+1} = 1 \mid x_n) = \sigma(f_{x_n})$",
            ha="center", va="center", fontsize=10.5)
    _blank(ax, (-0.8, 12.0), (-2.6, 1.8))


def token_grid(ax, tokens: np.ndarray, row_labels, special: dict[int, str],
               random_label: str = "random", symbol: str = r"\mu", first: int = 1) -> None:
    """Sequences as rows of coloured cells: one colour per special word (``special`` maps a
    token index to its legend entry), grey for every other word; cell k reads
    ``symbol`` with subscript k + ``first``; ``row_labels`` name the rows."""
    tokens = np.asarray(tokens)
    colors = {k: PALETTE[j] for j, k in enumerate(special)}
    rows, cols = tokens.shape
    for i in range(rows):
        for j in range(cols):
            k = int(tokens[i, j])
            color = colors.get(k, "0.88")
            ax.add_patch(plt.Rectangle((j, rows - 1 - i), 0.94, 0.9, fc=color, ec="white"))
            ink = "white" if k in colors else _INK
            ax.text(j + 0.47, rows - 0.55 - i, f"${symbol}_{{{k + first}}}$", ha="center",
                    va="center", fontsize=11, color=ink)
        ax.text(-0.2, rows - 0.55 - i, row_labels[i], ha="right", va="center", fontsize=10.5)
    for j in range(cols):
        ax.text(j + 0.47, rows + 0.15, f"{j + 1}", ha="center", va="bottom", fontsize=9,
                color=_MUTED)
    ax.text(cols / 2, rows + 0.75, r"position $l$", ha="center", va="bottom", fontsize=9.5,
            color=_MUTED)
    handles = [plt.Rectangle((0, 0), 1, 1, fc=colors[k]) for k in special]
    handles.append(plt.Rectangle((0, 0), 1, 1, fc="0.88"))
    ax.legend(handles, [*special.values(), random_label], loc="upper left",
              bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9.5)
    ax.set_xlim(-0.1, cols + 0.05)
    ax.set_ylim(-0.1, rows + 1.3)
    ax.set_aspect("equal")
    ax.axis("off")


def _particle_frame(ax, coords: np.ndarray, rho: float, limit: float) -> list:
    """Draw the tokens of one layer (``coords``: n x 2) with the circle on which a regular
    simplex of mean cosine ``rho`` would lie; returns the artists (circle, tokens, centre),
    which :func:`_move_particles` moves to another layer."""
    n = coords.shape[0]
    artists = [ax.add_patch(Circle((0, 0), _simplex_radius(rho, n), fill=False, ls="--",
                                   lw=0.9, ec=_MUTED))]
    artists.append(ax.scatter(coords[:, 0], coords[:, 1], c=np.arange(n), cmap="viridis",
                              s=30, zorder=3, edgecolors=_INK, linewidths=0.5))
    artists.append(ax.plot([0], [0], "+", color=_INK, ms=7)[0])
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color("0.85")
    return artists


def _simplex_radius(rho: float, n: int) -> float:
    """Radius sqrt(2 (1 - rho) / n) of the regular simplex of n tokens with mean cosine rho
    in the plane of :func:`tdyn.signalprop.simulate.simplex_plane`."""
    return np.sqrt(2 * max(1 - rho, 0.0) / n)


def _move_particles(artists: list, coords: np.ndarray, rho: float) -> None:
    """Move the artists of :func:`_particle_frame` to the tokens ``coords`` of another layer."""
    circle, tokens, _ = artists
    circle.set_radius(_simplex_radius(rho, coords.shape[0]))
    tokens.set_offsets(coords)


def _particle_limit(coords: np.ndarray) -> float:
    n = coords.shape[-2]
    return 1.2 * max(np.sqrt(2 / (n - 1)), np.abs(coords).max())


def particle_panels(coords: dict[str, np.ndarray], rho: dict[str, np.ndarray],
                    layers) -> plt.Figure:
    """Small multiples: one row per phase (``coords[name]``: layers x n x 2 projected tokens,
    ``rho[name]``: the mean cosine per layer), one column per layer in ``layers``."""
    limit = max(_particle_limit(c) for c in coords.values())
    fig, axes = plt.subplots(len(coords), len(layers), figsize=(1.75 * len(layers),
                                                                1.95 * len(coords)),
                             squeeze=False)
    for row, name in zip(axes, coords, strict=True):
        for ax, layer in zip(row, layers, strict=True):
            _particle_frame(ax, coords[name][layer], rho[name][layer], limit)
            ax.set_title(rf"$\ell = {layer}$, $\rho = {rho[name][layer]:.2f}$", fontsize=9)
        row[0].set_ylabel(name, fontsize=10)
    fig.tight_layout()
    return fig


def particle_animation(coords: dict[str, np.ndarray], rho: dict[str, np.ndarray],
                       interval_ms: int = 250) -> FuncAnimation:
    """The same as :func:`particle_panels`, as an animation over all layers, phases side by
    side (``FuncAnimation``; ``.to_jshtml()`` gives an offline HTML player)."""
    limit = max(_particle_limit(c) for c in coords.values())
    n_layers = min(c.shape[0] for c in coords.values())
    fig, axes = plt.subplots(1, len(coords), figsize=(3.2 * len(coords), 3.4), squeeze=False)
    axes = axes[0]

    # one set of artists per panel, moved from layer to layer (redrawing the axes for each
    # of the frames took most of the time of the player)
    panels = {name: _particle_frame(ax, coords[name][0], rho[name][0], limit)
              for ax, name in zip(axes, coords, strict=True)}

    def draw(layer: int) -> list:
        artists = []
        for ax, name in zip(axes, coords, strict=True):
            _move_particles(panels[name], coords[name][layer], rho[name][layer])
            ax.set_title(rf"{name}: $\ell = {layer}$, $\rho = {rho[name][layer]:.2f}$",
                         fontsize=10)
            artists += [*panels[name], ax.title]
        return artists

    animation = FuncAnimation(fig, draw, frames=n_layers, interval=interval_ms)
    plt.close(fig)
    return animation


def offline_player(animation: FuncAnimation, alt: str, dpi: int = 100) -> str:
    """The HTML of ``animation.to_jshtml()`` with every frame embedded, the player's icon font
    (fetched from a CDN) replaced by text glyphs, ``alt`` as the frames' alt text, and a style
    that lets the player shrink to a phone's width."""
    with mpl.rc_context({"savefig.dpi": dpi}):
        html = animation.to_jshtml()
    html = re.sub(r'<link rel="stylesheet"\s+href="https://[^"]*font-awesome[^"]*">', "", html)
    html = re.sub(r'<i class="fa fa-([\w -]+)"></i>',
                  lambda m: _PLAYER_GLYPHS[m.group(1)], html)
    return html.replace("<img id=", f'<img alt="{alt}" id=', 1) + _PLAYER_STYLE
