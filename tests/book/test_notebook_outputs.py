"""Regression test of the parametrized notebooks: a fresh execution of each, with its default
parameters, against the outputs stored in ``notebooks/<name>.ipynb``.

Text must match exactly; each printed number must match within its tolerance in
``tests/book/notebook_tolerances.json``: ten times the largest difference measured for that number
across ``ATEN_CPU_CAPABILITY`` = default, avx2 and the native capability, with 1 and 2 threads
(``python tools/notebook_outputs.py spread``), and exact where it never moved.  ``.ci/run``
runs this module under two capabilities, so a baseline that holds on one CPU only fails CI.
"""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("notebook_outputs",
                                               ROOT / "tools" / "notebook_outputs.py")
notebook_outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebook_outputs)

NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
TOLERANCES = json.loads(notebook_outputs.TOLERANCES.read_text())


def test_every_notebook_has_measured_tolerances():
    assert sorted(TOLERANCES["notebooks"]) == NOTEBOOKS
    assert TOLERANCES["factor"] >= 10
    capabilities = {env["ATEN_CPU_CAPABILITY"] for env in TOLERANCES["environments"]}
    threads = {env["OMP_NUM_THREADS"] for env in TOLERANCES["environments"]}
    assert {"default", "avx2"} <= capabilities and threads == {"1", "2"}
    for name in NOTEBOOKS:
        stored = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        cells = notebook_outputs.compared_cells(stored)
        measured = TOLERANCES["notebooks"][name]
        assert sorted(measured) == sorted(cells), f"{name}: re-measure the spread"
        for cell_id, text in cells.items():
            n_numbers = len(notebook_outputs.split_numbers(text)[1])
            assert len(measured[cell_id]["atol"]) == n_numbers, (name, cell_id)


def test_comparison_keeps_text_exact_and_numbers_within_tolerance():
    def notebook(text):
        return {"cells": [{"id": "c1", "cell_type": "code", "metadata": {}, "source": "",
                           "outputs": [{"output_type": "stream", "name": "stdout",
                                        "text": text}]}]}

    stored = notebook("loss = 2.258 after 40 steps\n")
    assert notebook_outputs.compare(stored, notebook("loss = 2.261 after 40 steps\n"),
                                    {"c1": [0.03, 0.0]}) == []
    (problem,) = notebook_outputs.compare(stored, notebook("loss = 2.261 after 40 steps\n"),
                                          {"c1": [0.001, 0.0]})
    assert "number 0" in problem and "2.261" in problem
    (problem,) = notebook_outputs.compare(stored, notebook("loss = 2.258 after 41 steps\n"),
                                          {"c1": [0.03, 0.0]})
    assert "number 1" in problem  # exact where no spread was measured
    (problem,) = notebook_outputs.compare(stored, notebook("lost = 2.258 after 40 steps\n"),
                                          {"c1": [0.03, 0.0]})
    assert "text differs" in problem


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_reproduces_its_stored_outputs(name, tmp_path):
    stored = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    fresh = notebook_outputs.execute(name, tmp_path / f"{name}.ipynb")
    tolerances = {cell_id: entry["atol"]
                  for cell_id, entry in TOLERANCES["notebooks"][name].items()}
    problems = notebook_outputs.compare(stored, fresh, tolerances)
    assert not problems, "\n".join(problems)
