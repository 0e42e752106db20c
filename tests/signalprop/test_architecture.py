"""The architecture family of Part I: defaults, derived quantities and input validation."""

import math

import numpy as np
import pytest

from tdyn.signalprop.architecture import Architecture, skip_coefficient, stack


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


def test_scalar_fields_stay_as_given_hashable_and_plain():
    arch = Architecture(sigma_w=3.0, alpha_A=0.25)
    assert type(arch.sigma_w) is float and arch.shape == ()
    assert hash(arch) == hash(Architecture(sigma_w=3.0, alpha_A=0.25))
    assert arch.to_dict()["sigma_w"] == 3.0 and arch.to_dict()["sigma_2"] is None


def test_array_fields_broadcast_and_are_read_only_copies():
    alpha = np.linspace(0.1, 0.9, 5)
    arch = Architecture(alpha_A=alpha, alpha_M=alpha, sigma_w=np.array([[1.0], [2.0], [4.0]]))
    alpha[0] = 0.5  # the architecture keeps its own copy
    assert arch.alpha_A[0] == 0.1 and not arch.alpha_A.flags.writeable
    assert arch.shape == (3, 5)
    np.testing.assert_array_equal(arch.readout_scale, arch.sigma_w)
    np.testing.assert_array_equal(arch.skip_A, [skip_coefficient(a, "interp")
                                                for a in arch.alpha_A])
    assert not arch.has_biases and Architecture(sigma_b1=np.array([0.0, 0.2])).has_biases
    with pytest.raises(ValueError, match="broadcast"):
        Architecture(alpha_A=np.ones(2) / 2, sigma_w=np.ones(3))


@pytest.mark.parametrize(
    ("changes", "parameter", "allowed"),
    [
        ({"alpha_A": np.array([0.5, 1.2])}, "alpha_A", "[0, 1]"),
        ({"alpha_M": np.array([0.5, -0.1]), "residual": "plain"}, "alpha_M", ">= 0"),
        ({"sigma_w": np.array([1.0, 0.0])}, "sigma_w", "(0, inf)"),
        ({"sigma_2": np.array([1.0, np.inf])}, "sigma_2", "(0, inf)"),
        ({"sigma_b2": np.array([0.1, -0.1])}, "sigma_b2", ">= 0"),
        ({"alpha_A": np.array([0.5, np.nan])}, "alpha_A", "finite"),
    ],
)
def test_array_values_are_validated_entry_by_entry(changes, parameter, allowed):
    with pytest.raises(ValueError) as err:
        Architecture(**changes)
    assert parameter in str(err.value) and allowed in str(err.value)


def test_stack_puts_architectures_side_by_side():
    archs = [Architecture(sigma_w=s, sigma_V=v) for s, v in ((1.0, 0.5), (2.0, 1.5))]
    stacked = stack(archs)
    np.testing.assert_array_equal(stacked.sigma_w, [1.0, 2.0])
    np.testing.assert_array_equal(stacked.sigma_V, [0.5, 1.5])
    assert stacked.sigma_2 is None  # tied in all: stays tied
    untied = stack([archs[0], archs[1].replace(sigma_2=3.0)])
    np.testing.assert_array_equal(untied.sigma_2, [1.0, 3.0])
    with pytest.raises(ValueError, match="share n"):
        stack([archs[0], archs[1].replace(n=4)])
