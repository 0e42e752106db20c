"""The explanatory diagrams draw what their captions say: branches, labels, tokens, frames."""

import gc

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import FancyBboxPatch, Rectangle

from tdyn import diagrams


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


@pytest.mark.parametrize("residual", ["interp", "plain"])
@pytest.mark.parametrize("norm", ["pre", "post"])
def test_block_schematic_has_two_branches_their_weights_and_two_layernorms(ax, norm, residual):
    diagrams.block_schematic(ax, norm=norm, residual=residual)
    labels = texts(ax)
    assert sum(t.startswith("attention") for t in labels) == 1
    assert sum(t.startswith("MLP") for t in labels) == 1
    assert labels.count("LN") == 2
    assert labels.count("+") == 2, "two residual sums"
    for sub in ("A", "M"):
        assert any(rf"\alpha_{sub}$" in t and r"\times" in t for t in labels), sub
        skip = rf"\sqrt{{1-\alpha_{sub}^2}}" if residual == "interp" else rf"c_{sub} = 1$"
        assert sum(skip in t for t in labels) == 1, (sub, labels)
    # pre-LN puts each LN inside its branch (above the main line), post-LN on the main line.
    ln_heights = [t.get_position()[1] for t in ax.texts if t.get_text() == "LN"]
    assert all((h > 0) == (norm == "pre") for h in ln_heights), ln_heights
    assert f"{norm}-LN" in ax.get_title()


def test_block_schematic_refuses_unknown_conventions(ax):
    with pytest.raises(ValueError, match="norm"):
        diagrams.block_schematic(ax, norm="sandwich")


def test_reduced_model_diagram_names_the_three_parameters_and_the_logits(ax):
    diagrams.reduced_model_diagram(ax)
    joined = " ".join(texts(ax))
    for symbol in ("e\\,(x_n", "2w|w|", "+\\,b", "W_V = 0", "f_0 = b - \\frac{1}{2}e^2",
                   "c(w) = 1 + 2w|w|", "f_{x_n}"):
        assert symbol in joined, symbol
    assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) == 5


def test_token_grid_has_one_cell_per_token_coloured_by_word(ax):
    tokens = np.array([[0, 5, 2, 1], [7, 2, 8, 9]])
    special = {0: "mu_1", 1: "mu_2", 2: "mu_3"}
    diagrams.token_grid(ax, tokens, ["a", "b"], special, random_label="random word")
    cells = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(cells) == tokens.size
    labels = texts(ax)
    assert [t for t in labels if t.startswith(r"$\mu_")] == [
        rf"$\mu_{{{k + 1}}}$" for k in tokens.ravel()]
    colours = [tuple(c.get_facecolor()) for c in cells]
    specials = [k in special for k in tokens.ravel()]
    assert len({c for c, s in zip(colours, specials, strict=True) if not s}) == 1
    for k in special:
        same = {c for c, t in zip(colours, tokens.ravel(), strict=True) if t == k}
        assert len(same) == 1
    assert len(set(colours)) == len(special) + 1
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [*special.values(), "random word"]
    assert "a" in labels and "b" in labels


def _polygons(n_layers=5, n=6):
    """A regular n-gon shrinking to the origin, and one of fixed size."""
    angle = 2 * np.pi * np.arange(n) / n
    ring = np.stack([np.cos(angle), np.sin(angle)], axis=-1) * np.sqrt(2 * 0.5 / n)
    shrink = np.stack([ring * (1 - k / (n_layers - 1)) for k in range(n_layers)])
    coords = {"ordered": shrink, "chaotic": np.stack([ring] * n_layers)}
    rho = {"ordered": np.linspace(0.5, 1.0, n_layers), "chaotic": np.full(n_layers, 0.5)}
    return coords, rho


def test_particle_panels_draw_every_token_in_every_chosen_layer():
    coords, rho = _polygons()
    fig = diagrams.particle_panels(coords, rho, [0, 2, 4])
    axes = np.array(fig.axes).reshape(2, 3)
    for row, name in zip(axes, coords, strict=True):
        assert row[0].get_ylabel() == name
        for ax, layer in zip(row, [0, 2, 4], strict=True):
            (points,) = ax.collections
            np.testing.assert_allclose(points.get_offsets(), coords[name][layer])
            assert rf"\ell = {layer}" in ax.get_title()
    plt.close(fig)


def test_particle_animation_has_one_frame_per_layer_and_plays_offline():
    coords, rho = _polygons(n_layers=3)
    html = diagrams.offline_player(diagrams.particle_animation(coords, rho), alt="tokens")
    assert html.count("data:image/png;base64") == 3
    assert "http" not in html, "the player must load nothing from the network"
    assert 'fa fa-' not in html, "every button has a text glyph"
    assert '<img alt="tokens" id=' in html
    ours = html.index(".animation img { max-width: 100%; height: auto; }")
    assert ours > html.index("width: 374px;"), "our style must come after matplotlib's"



def test_particle_animation_moves_its_artists_to_each_layer():
    coords, rho = _polygons(n_layers=3)
    animation = diagrams.particle_animation(coords, rho)
    for layer in (2, 0, 1):
        artists = animation._func(layer)  # circle, tokens, centre, title for each panel in turn
        for k, name in enumerate(coords):
            circle, tokens, _, title = artists[4 * k:4 * k + 4]
            np.testing.assert_allclose(tokens.get_offsets(), coords[name][layer])
            n = coords[name].shape[1]
            assert circle.get_radius() == pytest.approx(np.sqrt(2 * (1 - rho[name][layer]) / n))
            assert title.get_text().startswith(f"{name}: ")
            assert rf"\ell = {layer}" in title.get_text()
    with pytest.warns(UserWarning, match="Animation was deleted without rendering"):
        del animation  # its frames were drawn by hand, never rendered: matplotlib says so
        gc.collect()
