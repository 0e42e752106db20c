"""tdyn.runs.params: declared parameters are validated with messages naming the culprit."""

import numpy as np
import pytest

from tdyn.runs.params import ParameterError, ParameterSpec, notebook_parameters

SPEC = ParameterSpec.from_mapping(
    "demo",
    {
        "phi": {"type": "str", "default": "tanh", "choices": ["tanh", "erf"]},
        "q": {"type": "float", "default": 1.0, "min": 0.01, "max": 10.0},
        "n": {"type": "int", "default": 4, "min": 2},
        "verbose": {"type": "bool", "default": False},
    },
)


def test_defaults_and_partial_override():
    assert SPEC.validate({}) == {"phi": "tanh", "q": 1.0, "n": 4, "verbose": False}
    assert SPEC.validate({"n": 7})["n"] == 7


def test_int_is_accepted_for_float_and_converted():
    value = SPEC.validate({"q": 2})["q"]
    assert value == 2.0 and isinstance(value, float)


@pytest.mark.parametrize(
    ("values", "fragments"),
    [
        ({"nn": 3}, ["unknown parameter(s) ['nn']", "known: ['n', 'phi', 'q', 'verbose']"]),
        ({"n": "five"}, ["'n' = 'five'", "expected int >= 2", "got str"]),
        ({"n": 2.5}, ["'n' = 2.5", "got float"]),
        ({"n": True}, ["'n' = True", "got bool"]),
        ({"n": 1}, ["'n' = 1", "expected int >= 2"]),
        ({"q": 11.0}, ["'q' = 11.0", "float in [0.01, 10.0]"]),
        ({"q": float("nan")}, ["'q' = nan", "not finite"]),
        ({"phi": "relu"}, ["'phi' = 'relu'", "one of ['tanh', 'erf']"]),
        ({"verbose": 1}, ["'verbose' = 1", "expected bool"]),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(values, fragments):
    with pytest.raises(ParameterError) as info:
        SPEC.validate(values)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"a": {"default": 1}}, "needs 'type' and 'default'"),
        ({"a": {"type": "complex", "default": 1}}, "type 'complex'"),
        ({"a": {"type": "int", "default": 1, "maximum": 3}}, "unknown keys"),
        ({"a": {"type": "int", "default": 0, "min": 1}}, "'a' = 0"),
    ],
)
def test_malformed_specs_are_refused(raw, message):
    with pytest.raises(ValueError, match=message):
        ParameterSpec.from_mapping("broken", raw)


def test_shipped_spec_loads_and_unknown_spec_lists_known_ones():
    spec = ParameterSpec.load("kernel_check")
    assert set(spec.parameters) == {"phi", "q", "n_rho", "n_samples", "seed"}
    with pytest.raises(ValueError, match="known: .*kernel_check"):
        ParameterSpec.load("no_such_notebook")


def test_notebook_parameters_reads_a_kernel_namespace():
    namespace = {
        "phi": "tanh", "q": 2.0, "n_rho": 5, "n_samples": 1000, "seed": 3,
        # what an IPython namespace also holds, none of which is a parameter:
        "In": [], "Out": {}, "_": None, "_i1": "", "get_ipython": print, "np": np,
        "notebook_parameters": notebook_parameters,
    }
    assert notebook_parameters("kernel_check", namespace) == {
        "phi": "tanh", "q": 2.0, "n_rho": 5, "n_samples": 1000, "seed": 3,
    }


def test_notebook_parameters_catches_injected_unknown_and_missing_names():
    base = {"phi": "tanh", "q": 2.0, "n_rho": 5, "n_samples": 1000, "seed": 3}
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) \['sed'\]"):
        notebook_parameters("kernel_check", {**base, "sed": 4})
    missing = dict(base)
    del missing["seed"]
    with pytest.raises(ParameterError, match=r"does not define parameter\(s\) \['seed'\]"):
        notebook_parameters("kernel_check", missing)
