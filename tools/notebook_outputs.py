"""Regression baselines of the parametrized notebooks that hold on every CPU.

Each notebook under ``notebooks/`` keeps the outputs of its default parameters; those are the
baseline that ``tests/book/test_notebook_outputs.py`` compares a fresh execution against.  Training
results are not the same on every CPU: torch picks its kernels by SIMD capability
(``ATEN_CPU_CAPABILITY`` = default, avx2, avx512) and splits reductions by thread count, so a
printed loss can move in its last digits.  This module therefore compares outputs in two
parts:

* the *text* of a cell's output with every number taken out must be identical;
* each *number* must equal the stored one within its tolerance in
  ``tests/book/notebook_tolerances.json``: ten times the largest difference measured for that number
  across the capabilities and thread counts (0, that is exact, for a number that never moved).

``python tools/notebook_outputs.py spread`` measures that spread (it executes every notebook
under each capability with 1 and 2 threads) and rewrites the tolerance file;
``python tools/notebook_outputs.py rebaseline NAME`` re-executes a notebook in place.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TOLERANCES = ROOT / "tests" / "book" / "notebook_tolerances.json"
SPREAD_FACTOR = 10
IGNORE_TAG = "nbval-ignore-output"
IGNORE_COMMENT = "# NBVAL_IGNORE_OUTPUT"
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|\b(?:nan|inf|NaN)\b")
# Text that differs between two executions of the same code and says nothing about results.
SANITIZERS = [
    (re.compile(r"0x[0-9a-fA-F]{6,16}"), "0xADDRESS"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00)?"), "DATETIME"),
]


def ignored(cell: dict) -> bool:
    """Whether a code cell's output is excluded from the comparison (progress bars, timings)."""
    return IGNORE_TAG in cell.get("metadata", {}).get("tags", []) or IGNORE_COMMENT in "".join(
        cell.get("source", ""))


def output_text(cell: dict) -> str:
    """The text a reader sees under a code cell: streams, plain-text results, errors."""
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append("".join(out["text"]))
        elif out["output_type"] in ("execute_result", "display_data"):
            parts.append("".join(out.get("data", {}).get("text/plain", "")))
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    text = "\n".join(parts)
    for pattern, replacement in SANITIZERS:
        text = pattern.sub(replacement, text)
    return text


def split_numbers(text: str) -> tuple[str, list[float]]:
    """The text with each number replaced by ``#``, and the numbers in order."""
    numbers = [float(m.group()) for m in NUMBER.finditer(text)]
    return NUMBER.sub("#", text), numbers


def compared_cells(nb: dict) -> dict[str, str]:
    """Output text of every compared code cell, by cell id."""
    return {c["id"]: output_text(c) for c in nb["cells"]
            if c["cell_type"] == "code" and not ignored(c)}


def compare(stored: dict, fresh: dict, tolerances: dict[str, list[float]]) -> list[str]:
    """Differences between the stored and a fresh execution of one notebook, one line each."""
    problems = []
    old, new = compared_cells(stored), compared_cells(fresh)
    if set(old) != set(new):
        return [f"cells differ: stored {sorted(old)}, fresh {sorted(new)}"]
    for cell_id, text in old.items():
        skeleton, numbers = split_numbers(text)
        fresh_skeleton, fresh_numbers = split_numbers(new[cell_id])
        if skeleton != fresh_skeleton or len(numbers) != len(fresh_numbers):
            problems.append(f"cell {cell_id}: text differs:\n--- stored\n{text}\n--- fresh\n"
                            f"{new[cell_id]}")
            continue
        atol = tolerances.get(cell_id, [0.0] * len(numbers))
        if len(atol) != len(numbers):
            problems.append(f"cell {cell_id}: {len(numbers)} numbers but {len(atol)} tolerances "
                            "(re-measure: python tools/notebook_outputs.py spread)")
            continue
        for k, (a, b, tol) in enumerate(zip(numbers, fresh_numbers, atol, strict=True)):
            same = a == b or (a != a and b != b)  # NaN equals NaN here
            if not same and not abs(a - b) <= tol:
                problems.append(f"cell {cell_id}, number {k}: stored {a!r}, fresh {b!r}, "
                                f"|difference| {abs(a - b):.3g} > tolerance {tol:.3g}")
    return problems


def execute(name: str, out: Path, env: dict[str, str] | None = None) -> dict:
    """Execute ``notebooks/<name>.ipynb`` with its default parameters in a fresh process (so
    that ``ATEN_CPU_CAPABILITY`` and the thread count in ``env`` take effect) and a fresh,
    temporary run store; returns the executed notebook."""
    with tempfile.TemporaryDirectory(prefix="tdyn-baseline-") as data:
        full_env = {**os.environ, **(env or {}), "TDYN_DATA": data}
        full_env.pop("TDYN_RUN_DIR", None)
        subprocess.run(
            [sys.executable, "-m", "papermill", str(NOTEBOOKS / f"{name}.ipynb"), str(out),
             "--cwd", str(NOTEBOOKS), "-k", "python3", "--no-progress-bar"],
            env=full_env, check=True, capture_output=True,
        )
    return json.loads(out.read_text())


def environments() -> list[dict[str, str]]:
    """The kernel choices and thread counts whose spread is measured."""
    import torch

    native = torch.backends.cpu.get_cpu_capability().lower()
    capabilities = sorted({"default", "avx2", native})
    return [{"ATEN_CPU_CAPABILITY": cap, "OMP_NUM_THREADS": str(t), "MKL_NUM_THREADS": str(t)}
            for cap in capabilities for t in (1, 2)]


def machine() -> str:
    """CPU model, native torch capability and versions, for the record of a measurement."""
    import torch

    model = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = f"{model} {names[0]} x {len(names)}" if names else model
    return (f"{model}; torch {torch.__version__}, native capability "
            f"{torch.backends.cpu.get_cpu_capability()}; python {platform.python_version()}")


def measure_spread(names: list[str]) -> dict:
    """Execute each notebook in every environment; per cell, the largest difference of each
    printed number from the stored baseline and across environments."""
    envs = environments()
    result = {"measured": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(),
              "environments": envs, "factor": SPREAD_FACTOR, "notebooks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            stored = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
            runs = [stored]
            for k, env in enumerate(envs):
                print(f"{name}: {env}", flush=True)
                runs.append(execute(name, Path(tmp) / f"{name}-{k}.ipynb", env))
            cells = {}
            for cell_id, text in compared_cells(stored).items():
                skeleton, numbers = split_numbers(text)
                values = []
                for run in runs:
                    run_skeleton, run_numbers = split_numbers(compared_cells(run)[cell_id])
                    if run_skeleton != skeleton:
                        raise SystemExit(f"{name}, cell {cell_id}: the text itself changes "
                                         f"across environments:\n{text}\n---\n"
                                         f"{compared_cells(run)[cell_id]}")
                    values.append(run_numbers)
                spread = [max(v[i] for v in values) - min(v[i] for v in values)
                          for i in range(len(numbers))]
                cells[cell_id] = {"spread": spread,
                                  "atol": [SPREAD_FACTOR * s for s in spread]}
            result["notebooks"][name] = cells
            worst = max((max(c["spread"], default=0.0) for c in cells.values()), default=0.0)
            print(f"{name}: largest spread of a printed number {worst:.3g}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    spread = sub.add_parser("spread", help="measure the cross-kernel spread, write tolerances")
    spread.add_argument("names", nargs="*", help="notebooks (default: all)")
    rebase = sub.add_parser("rebaseline", help="re-execute a notebook in place (its baseline)")
    rebase.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "rebaseline":
        path = NOTEBOOKS / f"{args.name}.ipynb"
        execute(args.name, path)
        print(f"re-executed {path}; now run: python tools/notebook_outputs.py spread {args.name}")
        return 0
    names = args.names or sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    measured = measure_spread(names)
    if TOLERANCES.exists():  # keep the notebooks not measured this time
        previous = json.loads(TOLERANCES.read_text())
        measured["notebooks"] = {**previous.get("notebooks", {}), **measured["notebooks"]}
    TOLERANCES.write_text(json.dumps(measured, indent=1, sort_keys=True) + "\n")
    print(f"wrote {TOLERANCES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
