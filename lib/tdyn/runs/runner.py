"""``python -m tdyn run``: execute a parametrized notebook into a run of the run store.

Parameters come from a params file (``--params``), then ``-p name value`` overrides (values
parsed as papermill does: int, float, else YAML), then ``--device``.  They are validated against
the notebook's spec, constraints between parameters included, before anything is written; the
run id must be a plain name.  The runner then takes the run's lock, and the notebook runs under
papermill with a progress bar per cell, its training loops' progress bars streamed to the
terminal, ``TDYN_RUN_DIR`` pointing it at the run directory (an absolute path, where the
executed notebook is saved too) and ``TDYN_RUN_LOCK`` handing it the lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from tdyn.runs.params import ParameterError, ParameterSpec, load_params_file
from tdyn.runs.store import (
    ALLOW_MIXED_ENV,
    DATA_ENV,
    LOCK_TOKEN_ENV,
    REPO_ROOT,
    RUN_DIR_ENV,
    acquire_lock,
    data_root,
    load_results,
    params_hash,
    prepare_run_dir,
    release_lock,
    run_directory,
)

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


class NotebookFailedError(RuntimeError):
    """A cell of the executed notebook raised; the executed notebook holds the traceback."""


def resolve_notebook(notebook: str) -> Path:
    """Path of ``notebooks/<name>.ipynb`` from its name or its path; anything else is refused
    (a path elsewhere is not silently replaced by the notebook of the same name)."""
    known = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
    path = Path(notebook)
    name = path.name.removesuffix(".ipynb")
    candidate = NOTEBOOK_DIR / f"{name}.ipynb"
    is_path = len(path.parts) > 1 or notebook.endswith(".ipynb")
    if not name or not candidate.is_file() or (
            is_path and path.resolve() != candidate.resolve()):
        raise ValueError(f"no notebook {notebook!r}: give the name (or path) of one of the "
                         f"notebooks under {NOTEBOOK_DIR}: {known}")
    return candidate


def parse_cli_value(raw: str) -> Any:
    """A ``-p`` value as papermill reads it: int, else float, else YAML (bools, strings)."""
    raw = raw.strip()
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    try:
        return yaml.safe_load(raw)
    except (yaml.YAMLError, RecursionError):
        return raw


def collect_parameters(
    name: str,
    params_file: Path | None = None,
    overrides: list[tuple[str, str]] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Merge params file, ``-p`` overrides and device, and validate them against the spec."""
    spec = ParameterSpec.load(name)
    values: dict[str, Any] = {}
    if params_file is not None:
        values.update(load_params_file(params_file))
    for key, raw in overrides or []:
        declared = spec.parameters.get(key)
        # A declared string stays as typed ("0.5:0.8", ""); anything else is parsed.
        values[key] = raw.strip() if declared and declared.type is str else parse_cli_value(raw)
    if device is not None:
        if "device" not in spec.parameters:
            raise ParameterError(f"notebook {name!r} takes no 'device' parameter")
        values["device"] = device
    return spec.validate(values)


def profile_path(experiment: str, profile: str) -> Path:
    """``notebooks/params/<experiment>-<profile>.yaml``; an unknown profile is refused."""
    path = NOTEBOOK_DIR / "params" / f"{experiment}-{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem.removeprefix(f"{experiment}-")
                       for p in path.parent.glob(f"{experiment}-*.yaml"))
        raise ValueError(f"profile={profile!r} is not allowed for {experiment!r}: {path} does "
                         f"not exist; known profiles: {known}")
    return path


def profile_results(experiment: str, profile: str = "cpu", root: Path | None = None):
    """(table, provenance) of the run of ``experiment`` made with its ``profile`` params file.

    The run id is the hash of that file's parameters, and the stored parameters must equal
    them (:class:`tdyn.runs.store.RunMismatchError` names the keys that differ), so a run with other
    parameters is never plotted by mistake.  ``root`` defaults to
    :func:`tdyn.runs.store.data_root`.  Raises
    :class:`tdyn.runs.store.MissingResultsError`, with the
    command that makes the run, when it is absent.
    """
    params = collect_parameters(experiment, profile_path(experiment, profile))
    return load_results(experiment, run_id=params_hash(params), root=root, params=params)


def run_notebook(
    notebook: str,
    params_file: Path | None = None,
    overrides: list[tuple[str, str]] | None = None,
    device: str | None = None,
    run_id: str | None = None,
    fresh: bool = False,
    progress: bool = True,
    allow_mixed: bool = False,
) -> Path:
    """Validate, then execute ``notebook`` into its run directory; returns that directory."""
    path = resolve_notebook(notebook)
    params = collect_parameters(path.stem, params_file, overrides, device)
    root = data_root()
    run_dir = run_directory(path.stem, params_hash(params) if run_id is None else run_id, root)
    token = acquire_lock(run_dir)
    saved = {key: os.environ.get(key)
             for key in (RUN_DIR_ENV, DATA_ENV, LOCK_TOKEN_ENV, ALLOW_MIXED_ENV)}
    try:
        prepare_run_dir(run_dir, path.stem, params, fresh, allow_mixed)
        import papermill

        os.environ.update({RUN_DIR_ENV: str(run_dir), DATA_ENV: str(root),
                           LOCK_TOKEN_ENV: token, ALLOW_MIXED_ENV: "1" if allow_mixed else "0"})
        papermill.execute_notebook(
            str(path), str(run_dir / "executed.ipynb"), parameters=params,
            kernel_name="python3", progress_bar=progress, log_output=progress,
            cwd=str(NOTEBOOK_DIR),
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        release_lock(run_dir)
    return run_dir
