"""``python -m tdyn run``: execute a parametrized notebook into a run of the run store.

Parameters come from a params file (``--params``), then ``-p name value`` overrides (values
parsed as papermill does: int, float, else YAML), then ``--device``.  They are validated against
the notebook's spec, constraints between parameters included, before anything is written; the
run id must be a plain name.  The runner then takes the run's lock, and the notebook runs under
papermill with a progress bar per cell, its training loops' progress bars streamed to the
terminal, ``TDYN_RUN_DIR`` pointing it at the run directory (an absolute path, where the
executed notebook is saved too) and ``TDYN_RUN_LOCK`` handing it the lock.

With ``executor="submitit"`` the pending configurations are first computed as array tasks
(:mod:`tdyn.runs.executors`: SLURM, or submitit's local subprocesses), this process recording
each result; the notebook then finds nothing pending, and only loads and reports the results.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from tdyn.runs.executors import make_executor, submit_pending
from tdyn.runs.params import ParameterError, ParameterSpec, load_params_file
from tdyn.runs.protocol import load_experiment
from tdyn.runs.store import (
    ALLOW_MIXED_ENV,
    DATA_ENV,
    LOCK_TOKEN_ENV,
    REPO_ROOT,
    RUN_DIR_ENV,
    Run,
    acquire_lock,
    data_root,
    load_results,
    params_hash,
    prepare_run_dir,
    release_lock,
    run_directory,
)

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


EXECUTORS = ("local", "submitit")
"""``local``: the notebook computes every configuration in its own process;
``submitit``: array tasks compute them first (:mod:`tdyn.runs.executors`)."""


class NotebookFailedError(RuntimeError):
    """A cell of the executed notebook raised; the executed notebook holds the traceback."""


class TasksFailedError(RuntimeError):
    """Some array tasks failed; the results of the others are recorded."""


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


def profile_folder() -> Path:
    """Where the profiles are: this clone's ``notebooks/params/``, else (tdyn installed as a
    package) the ``notebooks/params/`` beside the data root, as in a copy of the repository."""
    here = NOTEBOOK_DIR / "params"
    beside_data = data_root().parent / "notebooks" / "params"
    return here if here.is_dir() or not beside_data.is_dir() else beside_data


def profile_path(experiment: str, profile: str) -> Path:
    """``notebooks/params/<experiment>-<profile>.yaml`` (:func:`profile_folder`); an unknown
    profile is refused."""
    path = profile_folder() / f"{experiment}-{profile}.yaml"
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
    return params_file_results(experiment, profile_path(experiment, profile), root)


def params_file_results(experiment: str, path: Path, root: Path | None = None):
    """(table, provenance) of the run of ``experiment`` made with the params file ``path``
    (a profile, or a file of a study beside the profiles), checked as in
    :func:`profile_results`."""
    params = collect_parameters(experiment, path)
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
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
) -> Path:
    """Validate, then execute ``notebook`` into its run directory; returns that directory.

    With ``executor="submitit"``, :func:`compute_with_submitit` first computes the pending
    configurations (``executor_options``: its keyword arguments)."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r} is not allowed; choose one of {EXECUTORS}")
    path = resolve_notebook(notebook)
    params = collect_parameters(path.stem, params_file, overrides, device)
    experiment = load_experiment(path.stem) if executor == "submitit" else None
    root = data_root()
    run_dir = run_directory(path.stem, params_hash(params) if run_id is None else run_id, root)
    token = acquire_lock(run_dir)
    saved = {key: os.environ.get(key)
             for key in (RUN_DIR_ENV, DATA_ENV, LOCK_TOKEN_ENV, ALLOW_MIXED_ENV)}
    try:
        prepare_run_dir(run_dir, path.stem, params, fresh, allow_mixed)
        if experiment is not None:
            compute_with_submitit(experiment, params, run_dir, allow_mixed,
                                  **(executor_options or {}))
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


def compute_with_submitit(experiment, params: dict[str, Any], run_dir: Path,
                          allow_mixed: bool = False, *, cluster: str = "auto",
                          batch_size: int | None = None, chunk_size: int = 1,
                          **executor_options: Any) -> None:
    """Compute the pending configurations of the run in ``run_dir`` as submitit array tasks
    (:func:`tdyn.runs.executors.submit_pending`; logs in ``run_dir/.submitit``), then finish
    the run.  Raises :class:`TasksFailedError`, listing the failed tasks, when any failed: the
    others' results are kept, and running the same command again submits only the rest."""
    run = Run.open(experiment.EXPERIMENT, params, run_id=run_dir.name, root=run_dir.parent.parent,
                   allow_mixed=allow_mixed)
    try:
        executor = make_executor(run_dir / ".submitit", cluster, **executor_options)
        failures = submit_pending(run, experiment, params, executor, batch_size=batch_size,
                                  chunk_size=chunk_size, allow_mixed=allow_mixed)
        if failures:
            raise TasksFailedError(
                f"{len(failures)} task(s) failed; the other results are recorded, and running "
                "the same command again submits only the missing configurations:\n  "
                + "\n  ".join(failures))
        run.finish()
    finally:
        run.close()
