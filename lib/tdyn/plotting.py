"""The single figure style of the book.

Figures are drawn on an opaque white canvas with dark ink, so they read the same on the
light and the dark page themes, use seaborn's colour-blind-safe palette, and are rendered
at high resolution.  Call :func:`use_book_style` once at the top of a chapter or notebook.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.colors

PALETTE = [matplotlib.colors.to_rgb(c) for c in (
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494",
    "#ece133", "#56b4e9")]
"""Colour-blind-safe qualitative palette: seaborn's ``colorblind``, written out so that a
chapter does not import seaborn (1 s) for ten colours (tests/test_imports.py compares)."""

SEQUENTIAL_CMAP = "viridis"
"""Perceptually uniform map for heat maps of one signed-free quantity."""

DIVERGING_CMAP = "RdBu_r"
"""Diverging map for signed quantities such as Lyapunov exponents (zero is white)."""

_RC = {
    "figure.figsize": (6.0, 3.8),
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "mathtext.fontset": "cm",
}


def use_book_style() -> None:
    """Apply the book's matplotlib style and colour palette, and render inline figures as PNG
    at twice the pixel density (sharp on high-DPI screens)."""
    mpl.rcParams.update(_RC)
    mpl.rcParams["axes.prop_cycle"] = mpl.cycler(color=PALETTE)
    try:  # only inside IPython
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("retina")
    except ImportError:  # pragma: no cover - outside a kernel
        pass
