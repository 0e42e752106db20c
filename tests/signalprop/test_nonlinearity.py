"""The nonlinearity registry: each record's functions agree with each other, unknown names fail
in one line, the theory imports without torch, and no other module dispatches on phi's name."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tdyn.signalprop.nonlinearity import NONLINEARITIES, nonlinearity

LIB = Path(__file__).resolve().parents[2] / "lib" / "tdyn"
REGISTRY = LIB / "signalprop" / "nonlinearity.py"
X = np.linspace(-6.0, 6.0, 2001)


@pytest.mark.parametrize("name", sorted(NONLINEARITIES))
def test_torch_and_numpy_functions_agree(name):
    record = nonlinearity(name)
    assert record.name == name
    out = record.torch(torch.tensor(X, dtype=torch.float64)).numpy()
    # tanh through the sigmoid: absolute error at float64 resolution (4 ulp of 1)
    np.testing.assert_allclose(out, record.numpy(X), rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", sorted(NONLINEARITIES))
def test_derivative_is_the_derivative(name):
    """Central differences with step h err by O(h^2 phi''') ~ 1e-10; ReLU away from its kink."""
    record, h = nonlinearity(name), 1e-5
    x = X[np.abs(X) > 1e-3]
    fd = (record.numpy(x + h) - record.numpy(x - h)) / (2 * h)
    np.testing.assert_allclose(record.derivative(x), fd, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", sorted(NONLINEARITIES))
def test_closed_forms_come_together_and_hold_on_the_diagonal(name):
    record = nonlinearity(name)
    parts = (record.kernel, record.diagonal, record.slope)
    assert all(p is None for p in parts) or all(p is not None for p in parts)
    if record.kernel is not None:
        q = np.array([0.3, 1.0, 4.0, 9.0])
        np.testing.assert_allclose(record.kernel(q, 1.0), record.diagonal(q), rtol=1e-15)
        assert np.all(record.kernel(q, -1.0) <= record.kernel(q, 0.0))


def test_an_unknown_name_fails_in_one_line_naming_the_allowed_ones():
    for bad in ("gelu", None, ["tanh"]):
        with pytest.raises(ValueError) as err:
            nonlinearity(bad)
        message = str(err.value)
        assert "\n" not in message and repr(bad) in message
        assert all(name in message for name in NONLINEARITIES)


def test_the_theory_does_not_import_torch():
    code = ("import sys\n"
            "import tdyn.signalprop.phases, tdyn.signalprop.kernel_check\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _is_phi(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "phi") or (
        isinstance(node, ast.Attribute) and node.attr == "phi")


def _is_string_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    return isinstance(node, ast.Tuple | ast.List | ast.Set) and any(
        _is_string_literal(e) for e in node.elts)


def name_dispatches(source: str) -> list[int]:
    """Lines that compare phi (a name or an attribute) with a string literal, or build a dict
    keyed by the registry's names."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(map(_is_phi, operands)) and any(map(_is_string_literal, operands)):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if len(keys & set(NONLINEARITIES)) >= 2:
                lines.append(node.lineno)
    return lines


def test_the_detector_sees_each_form_of_dispatch():
    for source in ('if phi == "erf": pass', 'if arch.phi in ("erf", "relu"): pass',
                   'if "tanh" != self.phi: pass', 'f = {"tanh": 1, "relu": 2}[phi]'):
        assert name_dispatches(source) == [1], source
    assert name_dispatches('arch = make(phi="relu")\nif phi is None: pass') == []


def test_only_the_registry_dispatches_on_the_name():
    sources = sorted(LIB.rglob("*.py"))
    assert REGISTRY in sources and len(sources) > 20
    assert name_dispatches(REGISTRY.read_text())  # the registry itself is seen
    found = {str(p.relative_to(LIB)): name_dispatches(p.read_text())
             for p in sources if p != REGISTRY}
    assert not {k: v for k, v in found.items() if v}
