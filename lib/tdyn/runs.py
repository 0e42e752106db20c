"""Trustworthy results of heavy runs: a run store with provenance, resumable sweeps, loading.

A *run* of an experiment lives in ``<data>/<experiment>/<run-id>/``::

    provenance.json      parameters, seeds, device, versions, git commit, times, status
    results/<key>.json   one file per finished configuration (config, result, status)
    executed.ipynb       the executed notebook, when the run came from ``python -m tdyn run``

Each configuration's result is written to a temporary file and renamed into place, so a run
killed at any moment (Ctrl-C, SIGKILL, power loss) loses at most the configuration in
flight, and reopening the run with the same parameters skips what is finished.  Reopening it
with different parameters is refused unless ``fresh=True`` discards the old results.  A
result containing a NaN or infinite number is stored as *diverged*, with the first step at
which it happened; the sweep goes on.

The experiment name is the name of its notebook (``notebooks/<experiment>.ipynb``) and of its
parameter spec (``tdyn/specs/<experiment>.yaml``).  ``<data>`` is ``$TDYN_DATA`` when set
(tests point it at a temporary folder), else the repository's ``data/``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from tdyn import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_DIR_ENV = "TDYN_RUN_DIR"
DATA_ENV = "TDYN_DATA"
MANIFEST_NAME = "MANIFEST.json"
PROVENANCE_KEYS = (
    "experiment", "run_id", "params", "seeds", "device", "device_name", "versions", "git",
    "sessions", "status",
)


class RunConflictError(RuntimeError):
    """A run directory already holds results made with other parameters."""


class MissingResultsError(FileNotFoundError):
    """No complete run of an experiment exists; the message gives the command that makes one."""


def data_root() -> Path:
    """Where runs are stored: ``$TDYN_DATA`` if set, else the repository's ``data/``."""
    return Path(os.environ.get(DATA_ENV, REPO_ROOT / "data"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def params_hash(params: Mapping[str, Any]) -> str:
    """Short stable hash of a parameter set; the default run id."""
    return hashlib.sha256(canonical_json(dict(params)).encode()).hexdigest()[:10]


def _write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` by write-then-rename (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(value, handle, indent=1, sort_keys=True, allow_nan=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def first_non_finite(result: Mapping[str, Any]) -> tuple[bool, int | None]:
    """Whether ``result`` holds a NaN/inf number, and the first such index in any list."""
    found, step = False, None
    for value in result.values():
        if isinstance(value, int | float) and not isinstance(value, bool):
            found = found or not math.isfinite(value)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                if isinstance(item, int | float) and not math.isfinite(item):
                    found = True
                    step = index if step is None else min(step, index)
                    break
    return found, step


def _finite_or_none(value: Any) -> Any:
    """Replace non-finite floats (which JSON cannot hold) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    return value


SOURCE_COMMIT_ENV = "TDYN_SOURCE_COMMIT"


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The git commit of ``root`` and whether the tree has uncommitted changes.

    A copy of the tree without ``.git`` (a remote GPU machine, say) cannot answer; there the
    commit is read from ``$TDYN_SOURCE_COMMIT`` when the caller sets it, and ``dirty`` is
    unknown (None).
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--", ".", ":!data"],
                                cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        declared = os.environ.get(SOURCE_COMMIT_ENV)
        if declared:
            return {"commit": declared, "dirty": None, "commit_from": SOURCE_COMMIT_ENV}
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages results depend on."""
    import numpy

    versions = {"python": platform.python_version(), "numpy": numpy.__version__,
                "tdyn": __version__, "pandas": pd.__version__}
    try:
        import torch

        versions["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency, but keep runs loadable
        pass
    return versions


def _device_of(params: Mapping[str, Any]) -> tuple[str, str]:
    if "device" not in params:
        return "cpu", "cpu"
    from tdyn.devices import describe_device, resolve_device

    device = resolve_device(params["device"])
    return str(device), describe_device(device)


def prepare_run_dir(directory: Path, experiment: str, params: Mapping[str, Any],
                    fresh: bool) -> None:
    """Refuse ``directory`` if it holds a run with other parameters (unless ``fresh``); with
    ``fresh``, discard whatever it holds."""
    prov_path = directory / "provenance.json"
    if prov_path.exists() and not fresh:
        old = json.loads(prov_path.read_text())
        if old.get("params") != dict(params) or old.get("experiment") != experiment:
            raise RunConflictError(
                f"{directory} holds a run of {old.get('experiment')!r} with parameters "
                f"{old.get('params')}; refusing to mix in results for {dict(params)}. "
                "Use another run id, or fresh=True (--fresh) to discard the old results."
            )
    if fresh and directory.exists():
        shutil.rmtree(directory)


def config_key(index: int, config: Mapping[str, Any]) -> str:
    """File stem of one configuration: its position and a hash of its content."""
    return f"{index:05d}-{hashlib.sha256(canonical_json(dict(config)).encode()).hexdigest()[:10]}"


class Run:
    """One run of an experiment: its directory, provenance and per-configuration results."""

    def __init__(self, directory: Path, provenance: dict[str, Any]):
        self.directory = directory
        self.provenance = provenance
        self._session_start = time.monotonic()

    @property
    def results_dir(self) -> Path:
        return self.directory / "results"

    @classmethod
    def open(
        cls,
        experiment: str,
        params: Mapping[str, Any],
        run_id: str | None = None,
        fresh: bool = False,
        root: Path | None = None,
    ) -> Run:
        """Create the run of ``experiment`` with ``params``, or reopen it to resume.

        The directory is ``$TDYN_RUN_DIR`` when set (``python -m tdyn run`` sets it), else
        ``<root>/<experiment>/<run_id>`` with ``run_id`` defaulting to a hash of ``params``.
        Raises :class:`RunConflictError` if the directory holds a run with other parameters,
        unless ``fresh`` (then its results are discarded).
        """
        params = dict(params)
        if os.environ.get(RUN_DIR_ENV):
            directory = Path(os.environ[RUN_DIR_ENV])
        else:
            directory = (root or data_root()) / experiment / (run_id or params_hash(params))
        prepare_run_dir(directory, experiment, params, fresh)
        prov_path = directory / "provenance.json"
        if prov_path.exists():
            provenance = json.loads(prov_path.read_text())
            provenance["sessions"].append({"started": _now(), "finished": None})
            provenance["status"] = "running"
        else:
            device, device_name = _device_of(params)
            provenance = {
                "experiment": experiment,
                "run_id": directory.name,
                "params": params,
                "seeds": {k: v for k, v in params.items() if "seed" in k},
                "device": device,
                "device_name": device_name,
                "versions": package_versions(),
                "git": git_state(),
                "sessions": [{"started": _now(), "finished": None}],
                "status": "running",
            }
        run = cls(directory, provenance)
        run._save_provenance()
        return run

    def _save_provenance(self) -> None:
        _write_json_atomic(self.directory / "provenance.json", self.provenance)

    def is_done(self, index: int, config: Mapping[str, Any]) -> bool:
        """Whether configuration ``index`` has a stored result."""
        return (self.results_dir / f"{config_key(index, config)}.json").exists()

    def pending(
        self, configs: Iterable[Mapping[str, Any]], desc: str | None = None
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(index, config)`` for each configuration without a stored result, with a
        progress bar over the whole sweep (finished ones count as done)."""
        configs = [dict(c) for c in configs]
        todo = [(i, c) for i, c in enumerate(configs) if not self.is_done(i, c)]
        self.provenance["n_configs"] = len(configs)
        self._save_provenance()
        with tqdm(total=len(configs), initial=len(configs) - len(todo),
                  desc=desc or self.provenance["experiment"], unit="config") as bar:
            for index, config in todo:
                yield index, config
                bar.update(1)

    def record(self, index: int, config: Mapping[str, Any], result: Mapping[str, Any],
               wall_time_s: float | None = None) -> str:
        """Store the result of one configuration atomically; returns ``"ok"`` or ``"diverged"``.

        A NaN or infinite number anywhere in ``result`` marks it diverged; non-finite values
        are stored as ``null`` and ``diverged_step`` is the first non-finite list index.
        """
        diverged, step = first_non_finite(result)
        entry = {
            "index": index,
            "config": dict(config),
            "result": _finite_or_none(dict(result)),
            "status": "diverged" if diverged else "ok",
            "diverged_step": step,
            "wall_time_s": wall_time_s,
            "finished": _now(),
        }
        _write_json_atomic(self.results_dir / f"{config_key(index, config)}.json", entry)
        return entry["status"]

    def entries(self) -> list[dict[str, Any]]:
        """All stored per-configuration entries, in configuration order."""
        files = sorted(self.results_dir.glob("*.json"))
        return [json.loads(f.read_text()) for f in files]

    def finish(self) -> None:
        """Mark the run complete (every configuration has a result) and stamp the times."""
        done = len(self.entries())
        expected = self.provenance.get("n_configs", done)
        if done != expected:
            raise RuntimeError(f"run {self.directory} has {done} of {expected} results")
        session = self.provenance["sessions"][-1]
        session["finished"] = _now()
        session["wall_time_s"] = round(time.monotonic() - self._session_start, 3)
        self.provenance["wall_time_s"] = round(
            sum(s.get("wall_time_s") or 0.0 for s in self.provenance["sessions"]), 3)
        self.provenance["status"] = "complete"
        self._save_provenance()

    def table(self) -> pd.DataFrame:
        """One row per configuration: its config columns, result columns, status."""
        return entries_table(self.entries())


def entries_table(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """Tidy table of per-configuration entries (config and result fields as columns)."""
    rows = []
    for entry in entries:
        row = {"config_index": entry["index"], **entry["config"]}
        clash = set(entry["result"]) & set(row)
        if clash:
            raise ValueError(f"result fields {sorted(clash)} clash with config fields")
        row.update(entry["result"])
        row["status"] = entry["status"]
        row["diverged_step"] = entry["diverged_step"]
        rows.append(row)
    return pd.DataFrame(rows)


def read_provenance(run_dir: Path) -> dict[str, Any]:
    """The provenance of a run; a run without complete provenance cannot be loaded."""
    path = run_dir / "provenance.json"
    if not path.is_file():
        raise MissingResultsError(f"{run_dir} has no provenance.json: its results cannot be "
                                  "trusted and are not loaded")
    provenance = json.loads(path.read_text())
    missing = [key for key in PROVENANCE_KEYS if key not in provenance]
    if missing:
        raise MissingResultsError(f"{path} lacks {missing}: its results are not loaded")
    return provenance


def run_command(experiment: str) -> str:
    """The command that produces a run of ``experiment`` with its CPU profile."""
    return (f"python -m tdyn run notebooks/{experiment}.ipynb "
            f"--params notebooks/params/{experiment}-cpu.yaml")


def load_results(experiment: str, run_id: str | None = None,
                 root: Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The latest complete run of ``experiment`` (or run ``run_id``) as (table, provenance).

    Raises :class:`MissingResultsError` with the command that produces one when there is none.
    """
    base = (root or data_root()) / experiment
    candidates = [base / run_id] if run_id else sorted(p for p in base.glob("*") if p.is_dir())
    complete = []
    for run_dir in candidates:
        if not (run_dir / "provenance.json").exists():
            continue
        provenance = read_provenance(run_dir)
        if provenance["status"] == "complete":
            complete.append((provenance["sessions"][-1]["finished"], run_dir, provenance))
    if not complete:
        which = f"run {run_id!r} of " if run_id else "complete run of "
        raise MissingResultsError(
            f"no {which}{experiment!r} under {base}. Produce one with:\n    "
            f"{run_command(experiment)}"
        )
    _, run_dir, provenance = max(complete, key=lambda item: item[0])
    return Run(run_dir, provenance).table(), provenance


def _data_files(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.name not in (MANIFEST_NAME, "README.md") and not p.name.startswith(".")
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(root: Path | None = None) -> Path:
    """List every result file under ``root`` with its SHA-256 in ``root/MANIFEST.json``."""
    root = root or data_root()
    manifest = {p.relative_to(root).as_posix(): _sha256(p) for p in _data_files(root)}
    path = root / MANIFEST_NAME
    _write_json_atomic(path, {"files": manifest})
    return path


def verify_manifest(root: Path | None = None) -> list[str]:
    """Problems with the published results: files missing, modified, or not listed."""
    root = root or data_root()
    path = root / MANIFEST_NAME
    if not path.is_file():
        return [f"{path} is missing (write it with: python -m tdyn manifest --update)"]
    listed = json.loads(path.read_text())["files"]
    present = {p.relative_to(root).as_posix(): p for p in _data_files(root)}
    listed_names, present_names = set(listed), set(present)
    problems = [f"{n} is listed but missing" for n in sorted(listed_names - present_names)]
    problems += [f"{n} is not listed in the manifest" for n in sorted(present_names - listed_names)]
    problems += [f"{n} was modified (checksum differs)"
                 for n in sorted(listed_names & present_names) if _sha256(present[n]) != listed[n]]
    return problems
