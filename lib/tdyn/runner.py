"""``python -m tdyn run``: execute a parametrized notebook into a run of the run store.

Parameters come from a params file (``--params``), then ``-p name value`` overrides (values
parsed as papermill does: int, float, else YAML), then ``--device``.  They are validated against the
notebook's spec before anything is written; the notebook then runs under papermill with a
progress bar per cell, its training loops' progress bars streamed to the terminal, and
``TDYN_RUN_DIR`` pointing it at the run directory, where the executed notebook is saved too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from tdyn.params import ParameterError, ParameterSpec
from tdyn.runs import REPO_ROOT, RUN_DIR_ENV, data_root, params_hash, prepare_run_dir

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def resolve_notebook(notebook: str) -> Path:
    """Path of ``notebooks/<name>.ipynb`` from a name or a path; unknown ones are refused."""
    path = Path(notebook)
    name = path.name.removesuffix(".ipynb")
    candidate = NOTEBOOK_DIR / f"{name}.ipynb"
    if not candidate.is_file():
        known = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
        raise ValueError(f"no notebook {notebook!r} under {NOTEBOOK_DIR}; known: {known}")
    return candidate


def parse_cli_value(raw: str) -> Any:
    """A ``-p`` value as papermill reads it: int, else float, else YAML (bools, strings)."""
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return yaml.safe_load(raw)


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
        loaded = yaml.safe_load(Path(params_file).read_text())
        if not isinstance(loaded, dict):
            raise ParameterError(f"params file {params_file} must hold a mapping name: value")
        values.update(loaded)
    for key, raw in overrides or []:
        values[key] = parse_cli_value(raw)
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

    The run id is the hash of that file's parameters, so a run with other parameters (the
    notebook's small defaults, another profile) is never plotted by mistake.  ``root``
    defaults to :func:`tdyn.runs.data_root`.  Raises :class:`tdyn.runs.MissingResultsError`,
    with the command that makes the run, when it is absent.
    """
    from tdyn.runs import load_results

    run_id = params_hash(collect_parameters(experiment, profile_path(experiment, profile)))
    return load_results(experiment, run_id=run_id, root=root)


def run_notebook(
    notebook: str,
    params_file: Path | None = None,
    overrides: list[tuple[str, str]] | None = None,
    device: str | None = None,
    run_id: str | None = None,
    fresh: bool = False,
    progress: bool = True,
) -> Path:
    """Validate, then execute ``notebook`` into its run directory; returns that directory."""
    path = resolve_notebook(notebook)
    params = collect_parameters(path.stem, params_file, overrides, device)
    run_dir = data_root() / path.stem / (run_id or params_hash(params))
    prepare_run_dir(run_dir, path.stem, params, fresh)
    run_dir.mkdir(parents=True, exist_ok=True)

    import papermill

    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        papermill.execute_notebook(
            str(path), str(run_dir / "executed.ipynb"), parameters=params,
            kernel_name="python3", progress_bar=progress, log_output=progress,
            cwd=str(NOTEBOOK_DIR),
        )
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous
    return run_dir


def _run(args) -> int:
    run_dir = run_notebook(
        args.notebook, params_file=args.params, overrides=args.p, device=args.device,
        run_id=args.run_id, fresh=args.fresh,
    )
    print(f"results and executed notebook: {run_dir}")
    return 0


def add_run(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="execute a parametrized notebook into data/<experiment>/<run-id>/",
        description="Validate parameters, then execute notebooks/NOTEBOOK with papermill; "
        "results, provenance and the executed notebook go to data/<experiment>/<run-id>/. "
        "Rerunning the same command resumes an interrupted run.",
    )
    parser.add_argument("notebook", help="name or path of a notebook under notebooks/")
    parser.add_argument("--params", type=Path, help="YAML file of parameter values (a profile)")
    parser.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                        help="override one parameter (int, float, else YAML); repeatable")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"),
                        help="torch device, for notebooks that take one")
    parser.add_argument("--run-id", help="run directory name (default: hash of the parameters)")
    parser.add_argument("--fresh", action="store_true",
                        help="discard any results already in the run directory")
    parser.set_defaults(handler=_run)


def _manifest(args) -> int:
    from tdyn.runs import verify_manifest, write_manifest

    if args.update:
        print(f"wrote {write_manifest()}")
        return 0
    problems = verify_manifest()
    for problem in problems:
        print(problem)
    print("manifest OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def add_manifest(subparsers) -> None:
    parser = subparsers.add_parser(
        "manifest", help="verify (or --update) the checksums of the results in data/")
    parser.add_argument("--update", action="store_true", help="rewrite data/MANIFEST.json")
    parser.set_defaults(handler=_manifest)
