"""The single figure style of the book, and how a chapter shows a call that fails.

Figures are drawn on an opaque white canvas with dark ink, so they read the same on the
light and the dark page themes, use seaborn's colour-blind-safe palette, and are rendered
at high resolution.  Call :func:`use_book_style` once at the top of a chapter or notebook.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib as mpl
import matplotlib.colors
from matplotlib import patheffects

PALETTE = [matplotlib.colors.to_rgb(c) for c in (
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494",
    "#ece133", "#56b4e9")]
"""Colour-blind-safe qualitative palette: seaborn's ``colorblind``, written out so that a
chapter does not import seaborn (1 s) for ten colours (tests/test_imports.py compares)."""

SEQUENTIAL_CMAP = "viridis"
"""Perceptually uniform map for heat maps of one signed-free quantity."""

DIVERGING_CMAP = "RdBu_r"
"""Diverging map for signed quantities such as Lyapunov exponents (zero is white)."""

LINE_STYLES = ("-", "--", ":", "-.")
"""Line styles to pair with :data:`PALETTE`, so curves differ by more than colour."""

OUTLINED = (patheffects.Stroke(linewidth=3.8, foreground="black"), patheffects.Normal())
"""Path effects that draw a light line with a dark edge: ``path_effects=OUTLINED`` keeps a white
contour visible on dark and light cells of a heat map, and its legend sample on the white
legend box."""

TEXT_WIDTH = 88
"""Characters per line of printed messages (the book's column at desktop width)."""

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
    # Legends sit on an opaque box, so a legend that overlaps data stays readable.
    "legend.frameon": True,
    "legend.framealpha": 0.92,
    "legend.facecolor": "white",
    "legend.edgecolor": "0.8",
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "mathtext.fontset": "cm",
    # log-axis ticks from 0.001 to 1000 as plain numbers (0.2, 3, 40), not 2 x 10^-1
    "axes.formatter.min_exponent": 3,
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


@contextmanager
def shows_error(*expected: type[BaseException]) -> Iterator[None]:
    """Run the ``with`` block, which must raise one of ``expected``, and print the error as
    one ``Name: message`` line, wrapped at :data:`TEXT_WIDTH` (no traceback).

    For chapters that demonstrate a deliberate failure; a block that does not raise is an
    error (``AssertionError``), so the demonstration cannot silently stop failing.
    """
    try:
        yield
    except expected as error:
        print(textwrap.fill(f"{type(error).__name__}: {error}", TEXT_WIDTH))
    else:
        raise AssertionError(f"expected {', '.join(e.__name__ for e in expected)}")
