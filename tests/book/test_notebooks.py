"""Parametrized notebooks: structure, papermill injection, and rejection of bad parameters.

tests/test_notebook_outputs.py checks the stored outputs of each notebook's default
parameters; this module checks other parameter values.
"""

import json
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from tdyn.runs.params import ParameterSpec

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged 'parameters'"
    return cells[0]


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_structure(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["kernelspec"]["language"] == "python"
    cell = _parameters_cell(nb)
    # The parameters cell assigns exactly the declared parameters, with their defaults.
    namespace: dict = {}
    exec(cell.source, namespace)
    namespace.pop("__builtins__")
    assert namespace == ParameterSpec.load(path.stem).defaults()
    # Every code cell carries the outputs of its default run: the regression baseline.
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "notebook is not fully executed"


def _run(tmp_path, parameters):
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(
        str(ROOT / "notebooks" / "kernel_check.ipynb"), str(out),
        parameters=parameters, kernel_name="python3", progress_bar=False, cwd=str(tmp_path),
    )
    return nbformat.read(out, as_version=4)


def test_papermill_injected_parameters_take_effect(tmp_path):
    nb = _run(tmp_path, {"phi": "tanh", "q": 2.0, "n_rho": 5, "n_samples": 4000, "seed": 11})
    summary = json.loads(nb.cells[-1].outputs[-1]["text"])
    assert summary["params"] == {"phi": "tanh", "q": 2.0, "n_rho": 5, "n_samples": 4000,
                                 "seed": 11}
    assert summary["n_points"] == 5
    # The notebook's own check: Monte Carlo within 4.5 standard errors of the theory.
    assert summary["max_abs_z"] < 4.5
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert printed.count("rho=") == 5


@pytest.mark.parametrize(
    ("parameters", "fragments"),
    [
        ({"n_sample": 100}, ["unknown parameter(s) ['n_sample']"]),
        ({"n_rho": "five"}, ["'n_rho' = 'five'", "expected int in [2, 201]"]),
        ({"q": -1.0}, ["'q' = -1.0", "float in [0.01, 100.0]"]),
        ({"phi": "sigmoid"}, ["'phi' = 'sigmoid'", "one of ['tanh', 'erf', 'relu']"]),
    ],
)
def test_papermill_rejects_bad_parameters_clearly(tmp_path, parameters, fragments):
    with pytest.raises(pm.PapermillExecutionError) as info:
        _run(tmp_path, parameters)
    assert info.value.ename == "ParameterError"
    for fragment in fragments:
        assert fragment in info.value.evalue


def test_plain_papermill_checks_the_constraints_between_parameters(tmp_path):
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(
            str(ROOT / "notebooks" / "trainability_sweep.ipynb"), str(tmp_path / "out.ipynb"),
            parameters={"n_masked": 8}, kernel_name="python3", progress_bar=False,
            cwd=str(tmp_path))
    assert info.value.ename == "ParameterError"
    assert "need n_masked < seq_len" in info.value.evalue
