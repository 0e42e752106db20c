"""Giorlandino & Goldt's block update is a member of our family.

The reference numbers in giorlandino_goldt_reference.json were computed by running their own
theory code (repository and commit recorded in the file) at seven points, below and above
their entropy-collapse threshold beta_c = sqrt(2 / (1 - p)); their code is not needed here.
tdyn reproduces each with its own (q, p) map: post-LN, plain residual with alpha = 1 / theirs,
bias variances, and the entropy-collapse softmax average.
"""

import json
import math
from pathlib import Path

import pytest

from tdyn.signalprop.theory import giorlandino_goldt_architecture, layer_map

REFERENCE = json.loads((Path(__file__).parent / "giorlandino_goldt_reference.json").read_text())


def test_reference_points_span_both_sides_of_the_entropy_collapse_threshold():
    points = REFERENCE["points"]
    assert len(points) >= 5
    assert any(pt["beta"] < pt["beta_c"] for pt in points)
    assert sum(pt["beta"] > pt["beta_c"] for pt in points) >= 3
    assert REFERENCE["provenance"]["commit"]


@pytest.mark.parametrize("phi", ["tanh", "relu"])
@pytest.mark.parametrize("index", range(len(REFERENCE["points"])))
def test_block_update_matches_their_code_to_1e_6(phi, index):
    pt = REFERENCE["points"][index]
    for n in (64, 4096):  # their large-n softmax: n drops out
        arch = giorlandino_goldt_architecture(pt["beta"], pt["var_w"], pt["var_v"], pt["var_b"],
                                              pt["alpha_A"], pt["alpha_MLP"], phi=phi, n=n)
        q, p = layer_map(1.0, pt["p"], arch, softmax="entropy_collapse")
        assert float(q) == pytest.approx(1.0, abs=1e-15)  # post-LN
        assert float(p) == pytest.approx(pt[phi], abs=1e-6)


def test_mapping_refuses_a_zero_skip_weight():
    with pytest.raises(ValueError, match="alpha_A"):
        giorlandino_goldt_architecture(1.0, 1.0, 1.0, 0.0, alpha_A=0.0)
    arch = giorlandino_goldt_architecture(2.0, 1.0, 0.5, 0.04, alpha_A=0.5, alpha_MLP=2.0, n=100)
    assert (arch.alpha_A, arch.alpha_M) == (2.0, 0.5)
    assert arch.sigma_A == pytest.approx(2.0 * math.sqrt(math.log(100)))
    assert (arch.sigma_bV, arch.sigma_b1, arch.sigma_b2) == (0.2, 0.2, 0.2)
