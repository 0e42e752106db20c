"""The architecture family of Part I: defaults, derived quantities and input validation."""

import math

import pytest

from tdyn.signalprop.architecture import Architecture, skip_coefficient


def test_defaults_are_valid_and_documented():
    arch = Architecture()
    for name, value in arch.to_dict().items():
        assert f"{name} = " in Architecture.__doc__, name
        assert value is None or value == value  # no NaN defaults
    assert arch.readout_scale == arch.sigma_w  # sigma_2 = None ties the readout to sigma_w
    assert arch.hidden == arch.mlp_ratio * arch.d


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_interp_skip_preserves_norm_and_plain_skip_is_one(alpha):
    assert math.isclose(skip_coefficient(alpha, "interp") ** 2 + alpha**2, 1.0)
    assert skip_coefficient(alpha, "plain") == 1.0
    arch = Architecture(alpha_A=alpha, alpha_M=alpha)
    assert arch.skip_A == arch.skip_M == skip_coefficient(alpha, "interp")


@pytest.mark.parametrize(
    ("changes", "parameter", "allowed"),
    [
        ({"alpha_A": 1.2}, "alpha_A", "[0, 1]"),
        ({"alpha_M": -0.1}, "alpha_M", "[0, 1]"),
        ({"alpha_A": -0.1, "residual": "plain"}, "alpha_A", ">= 0"),
        ({"sigma_A": 0.0}, "sigma_A", "(0, inf)"),
        ({"sigma_w": -1.0}, "sigma_w", "(0, inf)"),
        ({"sigma_V": 0.0}, "sigma_V", "(0, inf)"),
        ({"sigma_2": -2.0}, "sigma_2", "(0, inf)"),
        ({"n": 1}, "n", ">= 2"),
        ({"d": 0}, "d", ">= 1"),
        ({"mlp_ratio": 0}, "mlp_ratio", ">= 1"),
        ({"phi": "gelu"}, "phi", "tanh"),
        ({"residual": "highway"}, "residual", "interp"),
        ({"norm": "mid"}, "norm", "pre"),
    ],
)
def test_invalid_values_name_the_parameter_and_the_allowed_range(changes, parameter, allowed):
    with pytest.raises(ValueError) as err:
        Architecture(**changes)
    assert parameter in str(err.value) and allowed in str(err.value)


def test_plain_residual_accepts_strengths_above_one():
    assert Architecture(alpha_A=1.5, alpha_M=2.0, residual="plain").skip_A == 1.0


def test_replace_validates_again():
    with pytest.raises(ValueError, match="alpha_M"):
        Architecture().replace(alpha_M=3.0)
