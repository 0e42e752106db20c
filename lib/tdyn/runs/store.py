"""Trustworthy results of heavy runs: a run store with provenance, resumable sweeps, loading.

A *run* of an experiment lives in ``<data>/<experiment>/<run-id>/``::

    provenance.json      parameters, seeds, and per start or resume of the run (session): git
                         commit, versions, device, times; the timing of every configuration
    results/<key>.json   one file per finished configuration (config, result, status; no
                         timings, so two runs with the same numbers are the same bytes)
    executed.ipynb       the executed notebook, when the run came from ``python -m tdyn run``
    .lock                held by the one process that writes the run

Run ids and experiment names are plain names (``[A-Za-z0-9._-]+``, not ``.`` or ``..``), so a
run directory is always inside ``<data>``.  One process at a time writes a run: a second
:meth:`Run.open` is refused at once, naming the holder (``python -m tdyn run`` holds the lock
and hands it to its notebook's kernel).  Each configuration's result is written to a temporary
file, flushed and renamed into place (then the directory is flushed), so a run killed at any
moment loses at most the configuration in flight, and reopening the run with the same
parameters skips what is finished.  Reopening it with different parameters is refused unless
``fresh=True`` discards the old results; resuming with another setup (git commit or
uncommitted changes, device or its model, package versions; see :func:`setup_differences`)
is refused unless ``allow_mixed=True`` (``--allow-mixed``), and then marked in the
provenance.  A result containing a NaN or infinite number anywhere (nested lists and dicts
included) is stored as *diverged*, with the first step at which it happened; the sweep goes
on.  Loading checks that a run is complete: one result per configuration, each file named
after its configuration (index and hash of the config) and holding that configuration; a
corrupt or stray file is named.  The stored values themselves are protected by the checksums
of ``MANIFEST.json`` (published results), not by the file names.

The experiment name is the name of its notebook (``notebooks/<experiment>.ipynb``) and of its
parameter spec (``tdyn/specs/<experiment>.yaml``).  ``<data>`` is ``$TDYN_DATA`` when set
(tests point it at a temporary folder; a relative path is taken from the current directory),
else the repository's ``data/``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from tdyn import __version__

REPO_ROOT = Path(__file__).resolve().parents[3]
RUN_DIR_ENV = "TDYN_RUN_DIR"
DATA_ENV = "TDYN_DATA"
LOCK_TOKEN_ENV = "TDYN_RUN_LOCK"
ALLOW_MIXED_ENV = "TDYN_ALLOW_MIXED"
MANIFEST_NAME = "MANIFEST.json"
LOCK_NAME = ".lock"
PROVENANCE_KEYS = (
    "experiment", "run_id", "params", "seeds", "device", "device_name", "versions", "git",
    "sessions", "status",
)
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
RESULT_FILE = re.compile(r"(\d{5,})-([0-9a-f]{10})\.json")
ENTRY_KEYS = {"index", "config", "result", "status", "diverged_step"}


class RunConflictError(RuntimeError):
    """A run directory already holds results made with other parameters or another setup, or
    another process is writing it."""


class RunLockedError(RunConflictError):
    """Another process holds the run's lock."""


class CorruptRunError(ValueError):
    """A stored run is incomplete, or one of its files is corrupt or does not belong to it."""


class RunMismatchError(ValueError):
    """A stored run was made with other parameters than the ones asked for."""


class MissingResultsError(FileNotFoundError):
    """No complete run of an experiment exists; the message gives the command that makes one."""


def check_name(kind: str, value: Any) -> str:
    """``value`` if it is a plain name (``[A-Za-z0-9._-]+``, not ``.`` or ``..``)."""
    if not (isinstance(value, str) and NAME_PATTERN.fullmatch(value)) or value in (".", ".."):
        raise ValueError(f"{kind} {value!r} is not allowed: use letters, digits, '.', '_' and "
                         "'-' only (a name, not a path; not '.' or '..')")
    return value


def data_root() -> Path:
    """Where runs are stored, as an absolute path: ``$TDYN_DATA`` if set; else the ``data/``
    of the repository this library was installed from in place (a clone); else the first
    ``data/`` holding a manifest in the working directory or above it (a chapter run from a
    copy of the repository, wherever tdyn is installed); else ``./data``."""
    value = os.environ.get(DATA_ENV)
    if value:
        return Path(value).resolve()
    if (REPO_ROOT / "data" / MANIFEST_NAME).is_file():
        return REPO_ROOT / "data"
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "data" / MANIFEST_NAME).is_file():
            return folder / "data"
    return here / "data"


def run_directory(experiment: str, run_id: str, root: Path | None = None) -> Path:
    """``<root>/<experiment>/<run_id>``, refusing anything but plain names."""
    check_name("experiment name", experiment)
    check_name("run id", run_id)
    return Path(root or data_root()).resolve() / experiment / run_id


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def params_hash(params: Mapping[str, Any]) -> str:
    """Short stable hash of a parameter set; the default run id."""
    return hashlib.sha256(canonical_json(dict(params)).encode()).hexdigest()[:10]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` by write, flush, rename, flush of the directory:
    never a half-written file, and the rename survives a power loss."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; published results are readable by all
        with os.fdopen(fd, "w") as handle:
            json.dump(value, handle, indent=1, sort_keys=True, allow_nan=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _remove_stale_temporaries(directory: Path) -> None:
    """Delete the temporary files of writes that a killed process left behind."""
    for folder in (directory, directory / "results"):
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def first_non_finite(result: Any) -> tuple[bool, int | None]:
    """Whether ``result`` holds a NaN/inf number at any depth, and the first step at which one
    appears: its index in the outermost list that holds it (None if none is in a list)."""
    found, step = False, None

    def walk(value: Any, index: int | None) -> None:
        nonlocal found, step
        if isinstance(value, bool):
            return
        if isinstance(value, int | float):
            if not math.isfinite(value):
                found = True
                if index is not None:
                    step = index if step is None else min(step, index)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item, index)
        elif isinstance(value, list | tuple):
            for k, item in enumerate(value):
                walk(item, k if index is None else index)

    walk(result, None)
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
    """The git commit of ``root``, whether the tree has uncommitted changes (``data/`` aside),
    and ``changes``: a hash of those changes (``git diff HEAD``), so that two sessions on the
    same commit with different edits are told apart.

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
    changes = None
    if status.strip():
        diff = subprocess.run(["git", "diff", "HEAD", "--", ".", ":!data"], cwd=root,
                              capture_output=True, check=False).stdout
        changes = hashlib.sha256(diff + status.encode()).hexdigest()[:12]
    return {"commit": commit, "dirty": bool(status.strip()), "changes": changes}


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


def current_setup(params: Mapping[str, Any]) -> dict[str, Any]:
    """What this process would run with: git state, package versions, device."""
    device, device_name = _device_of(params)
    return {"git": git_state(), "versions": package_versions(), "device": device,
            "device_name": device_name}


def setup_differences(provenance: Mapping[str, Any], setup: Mapping[str, Any]) -> list[str]:
    """How ``setup`` differs from the run's first start: commit (an unknown commit never counts
    as the same), uncommitted changes, device and its model, package versions."""
    differences = []
    old_git, new_git = provenance.get("git") or {}, setup["git"]
    if old_git.get("commit") is None or new_git["commit"] is None:
        differences.append("git commit unknown (a copy without .git: set "
                           f"{SOURCE_COMMIT_ENV})")
    elif old_git.get("commit") != new_git["commit"]:
        differences.append(f"git commit {old_git.get('commit')} -> {new_git['commit']}")
    elif old_git.get("changes") != new_git.get("changes"):
        differences.append(f"uncommitted changes {old_git.get('changes')} -> "
                           f"{new_git.get('changes')}")
    for key in ("device", "device_name"):
        if provenance.get(key) != setup[key]:
            differences.append(f"{key} {provenance.get(key)} -> {setup[key]}")
    old_versions = provenance.get("versions") or {}
    for name in sorted(set(old_versions) | set(setup["versions"])):
        if old_versions.get(name) != setup["versions"].get(name):
            differences.append(f"{name} {old_versions.get(name)} -> "
                               f"{setup['versions'].get(name)}")
    return differences


def _read_json(path: Path) -> dict[str, Any]:
    """Parsed JSON object of ``path``; a corrupt file raises :class:`CorruptRunError` naming
    it."""
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise CorruptRunError(f"{path} is corrupt (not valid JSON: {err})") from None
    if not isinstance(value, dict):
        raise CorruptRunError(f"{path} is corrupt (not a JSON object)")
    return value


def check_resumable(directory: Path, experiment: str, params: Mapping[str, Any],
                    allow_mixed: bool = False,
                    setup: Mapping[str, Any] | None = None) -> list[str]:
    """Refuse to write into ``directory`` if it holds a run of another experiment or with other
    parameters, or one started with another setup (:func:`setup_differences` against
    ``setup``, default :func:`current_setup`) unless ``allow_mixed``; returns those setup
    differences."""
    prov_path = directory / "provenance.json"
    if not prov_path.exists():
        return []
    old = _read_json(prov_path)
    if old.get("params") != dict(params) or old.get("experiment") != experiment:
        raise RunConflictError(
            f"{directory} holds a run of {old.get('experiment')!r} with parameters "
            f"{old.get('params')}; refusing to mix in results for {dict(params)}. "
            "Use another run id, or fresh=True (--fresh) to discard the old results."
        )
    differences = setup_differences(old, setup or current_setup(params))
    if differences and not allow_mixed:
        raise RunConflictError(
            f"{directory} was started with another setup ({'; '.join(differences)}); "
            "refusing to mix results. Resume where it was started, use --fresh to start "
            "over, or --allow-mixed to resume anyway (the provenance then says so).")
    return differences


def discard_run(directory: Path, experiment: str) -> None:
    """Delete the run in ``directory`` (``--fresh``), but only a run of ``experiment``: a folder
    whose ``provenance.json`` names it, or one holding nothing but a lock.  The lock file
    itself stays (another process may be waiting on it)."""
    if directory.is_symlink():
        raise RunConflictError(f"refusing to delete {directory}: it is a symbolic link")
    if not directory.exists():
        return
    contents = [p for p in directory.iterdir() if p.name != LOCK_NAME]
    prov_path = directory / "provenance.json"
    if contents:
        try:
            old = _read_json(prov_path) if prov_path.is_file() else None
        except CorruptRunError:
            old = None
        if old is None or old.get("experiment") != experiment:
            raise RunConflictError(
                f"refusing to delete {directory}: it does not hold a run of {experiment!r} "
                "(no provenance.json naming it)")
    for path in contents:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


RUN_FILES = ("provenance.json", "results", "executed.ipynb")


def prepare_run_dir(directory: Path, experiment: str, params: Mapping[str, Any],
                    fresh: bool, allow_mixed: bool = False,
                    setup: Mapping[str, Any] | None = None) -> list[str]:
    """With ``fresh``, discard the run in ``directory``; otherwise check that it can be resumed
    with ``params`` (:func:`check_resumable`).  Returns the setup differences allowed.  A run
    whose files are symbolic links is refused: writing it would write through them."""
    linked = [name for name in RUN_FILES if (directory / name).is_symlink()]
    if linked:
        raise RunConflictError(f"refusing to write {directory}: {linked} are symbolic links")
    if fresh:
        discard_run(directory, experiment)
        return []
    return check_resumable(directory, experiment, params, allow_mixed, setup)


# --------------------------------------------------------------------------------------------
# One writer per run: an exclusive, non-blocking flock on <run>/.lock


_HELD_LOCKS: dict[Path, list] = {}
"""Run directories whose lock this process holds: [lock file descriptor, token, holders]."""


def acquire_lock(directory: Path) -> str:
    """Take the lock of ``directory`` (created if needed) and return its token.

    Refused with :class:`RunLockedError`, naming the holder, when another process holds it,
    except for the process that ``$TDYN_RUN_LOCK`` names as holder (the notebook kernel of
    ``python -m tdyn run``, whose parent holds the lock).  The operating system releases the
    lock when the holder exits, however it exits.
    """
    directory = directory.resolve()
    if directory in _HELD_LOCKS:
        _HELD_LOCKS[directory][2] += 1
        return _HELD_LOCKS[directory][1]
    directory.mkdir(parents=True, exist_ok=True)
    try:  # never through a symbolic link: the lock file is written
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as err:
        raise RunConflictError(f"cannot use {directory / LOCK_NAME} as the run's lock "
                               f"({err.strerror}); remove it") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (ValueError, UnicodeDecodeError):
            holder = {}
        os.close(fd)
        token = os.environ.get(LOCK_TOKEN_ENV)
        if token and holder.get("token") == token:
            return token
        raise RunLockedError(
            f"{directory} is being written by another process (pid {holder.get('pid')} on "
            f"{holder.get('host')}, since {holder.get('since')}: {holder.get('command')}); "
            "wait for it to finish, or stop it first") from None
    token = secrets.token_hex(8)
    holder = {"pid": os.getpid(), "host": platform.node(), "since": _now(), "token": token,
              "command": " ".join(sys.argv)[:200]}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
    os.fsync(fd)
    _HELD_LOCKS[directory] = [fd, token, 1]
    return token


def release_lock(directory: Path) -> None:
    """Give up one hold of the lock of ``directory``; the lock itself goes when the last
    holder in this process lets go (or the process exits)."""
    directory = directory.resolve()
    held = _HELD_LOCKS.get(directory)
    if held is None:
        return
    held[2] -= 1
    if held[2] == 0:
        del _HELD_LOCKS[directory]
        os.close(held[0])


def config_key(index: int, config: Mapping[str, Any]) -> str:
    """File stem of one configuration: its position and a hash of its content."""
    return f"{index:05d}-{hashlib.sha256(canonical_json(dict(config)).encode()).hexdigest()[:10]}"


def read_entries(results_dir: Path) -> list[dict[str, Any]]:
    """Every stored per-configuration entry of a run, in configuration order.

    A file that is not JSON, lacks an entry's fields, or whose name does not match its
    configuration (edited, or copied from another run) raises :class:`CorruptRunError` naming
    it; so does any other file among the results.  Temporary files (``.*.tmp``) are skipped.
    """
    if not results_dir.is_dir():
        return []
    entries = []
    for path in sorted(p for p in results_dir.iterdir() if not p.name.startswith(".")):
        if not (path.is_file() and RESULT_FILE.fullmatch(path.name)):
            raise CorruptRunError(f"{path} does not belong among the results (expected files "
                                  "named <index>-<hash>.json)")
        entry = _read_json(path)
        if not ENTRY_KEYS <= set(entry):
            raise CorruptRunError(f"{path} is corrupt: it lacks the fields {sorted(ENTRY_KEYS)}")
        if config_key(entry["index"], entry["config"]) != path.stem:
            raise CorruptRunError(f"{path} is corrupt: its content is not the configuration its "
                                  "name says (edited, or copied from another run)")
        entries.append(entry)
    return entries


class Run:
    """One run of an experiment: its directory, provenance and per-configuration results."""

    def __init__(self, directory: Path, provenance: dict[str, Any], locked: bool = False):
        self.directory = directory
        self.provenance = provenance
        self._session_start = time.monotonic()
        self._locked = locked

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
        allow_mixed: bool | None = None,
    ) -> Run:
        """Create the run of ``experiment`` with ``params``, or reopen it to resume.

        The directory is ``$TDYN_RUN_DIR`` when set (``python -m tdyn run`` sets it), else
        ``<root>/<experiment>/<run_id>`` with ``run_id`` defaulting to a hash of ``params``.
        Takes the run's lock (held until :meth:`finish` or :meth:`close`).  Raises
        :class:`RunConflictError` if the directory holds a run with other parameters (unless
        ``fresh``: then its results are discarded) or one started with another commit, device
        or package versions (unless ``allow_mixed``, default ``$TDYN_ALLOW_MIXED``), and
        :class:`RunLockedError` if another process is writing it.
        """
        params = dict(params)
        if allow_mixed is None:
            allow_mixed = os.environ.get(ALLOW_MIXED_ENV) == "1"
        if os.environ.get(RUN_DIR_ENV):
            directory = Path(os.environ[RUN_DIR_ENV]).resolve()
        else:
            directory = run_directory(
                experiment, params_hash(params) if run_id is None else run_id, root)
        acquire_lock(directory)
        try:
            setup = current_setup(params)  # git and versions are asked once per open
            mixed = prepare_run_dir(directory, experiment, params, fresh, allow_mixed, setup)
            _remove_stale_temporaries(directory)
            session = {"started": _now(), "finished": None, **setup}
            prov_path = directory / "provenance.json"
            if prov_path.exists():
                provenance = _read_json(prov_path)
                if mixed:
                    session["mixed"] = mixed
                    provenance["mixed"] = True
                provenance["sessions"].append(session)
                provenance["status"] = "running"
            else:
                provenance = {
                    "experiment": experiment,
                    "run_id": directory.name,
                    "params": params,
                    "seeds": {k: v for k, v in params.items() if "seed" in k},
                    **setup,
                    "sessions": [session],
                    "status": "running",
                }
            run = cls(directory, provenance, locked=True)
            run._save_provenance()
        except BaseException:
            release_lock(directory)
            raise
        return run

    def close(self) -> None:
        """Give up this run's hold of the lock (a run left open is released when the process
        exits); closing twice does nothing."""
        if self._locked:
            self._locked = False
            release_lock(self.directory)

    def _save_provenance(self) -> None:
        _write_json_atomic(self.directory / "provenance.json", self.provenance)

    def is_done(self, index: int, config: Mapping[str, Any]) -> bool:
        """Whether configuration ``index`` has a stored result."""
        return (self.results_dir / f"{config_key(index, config)}.json").exists()

    def todo(self, configs: Sequence[Mapping[str, Any]]) -> list[int]:
        """The indices of the configurations without a stored result; records how many
        configurations the run has (:meth:`finish` checks that all are there)."""
        self.provenance["n_configs"] = len(configs)
        self._save_provenance()
        return [i for i, c in enumerate(configs) if not self.is_done(i, c)]

    def pending(
        self, configs: Iterable[Mapping[str, Any]], desc: str | None = None
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(index, config)`` for each configuration without a stored result, with a
        progress bar over the whole sweep (finished ones count as done)."""
        configs = [dict(c) for c in configs]
        todo = [(i, configs[i]) for i in self.todo(configs)]
        with tqdm(total=len(configs), initial=len(configs) - len(todo),
                  desc=desc or self.provenance["experiment"], unit="config") as bar:
            for index, config in todo:
                yield index, config
                bar.update(1)

    def note_run(self, **info: Any) -> None:
        """Add ``info`` (JSON-ready) to the run's provenance, such as how it batches."""
        self.provenance.update(info)
        self._save_provenance()

    def note_session(self, **info: Any) -> None:
        """Add ``info`` (JSON-ready) to this session's entry of the provenance, such as the
        executor that computed its results and its job ids."""
        self.provenance["sessions"][-1].update(info)
        self._save_provenance()

    def record(self, index: int, config: Mapping[str, Any], result: Mapping[str, Any],
               wall_time_s: float | None = None, task: Mapping[str, Any] | None = None) -> str:
        """Store the result of one configuration atomically; returns ``"ok"`` or ``"diverged"``.

        A NaN or infinite number anywhere in ``result`` marks it diverged; non-finite values
        are stored as ``null`` and ``diverged_step`` is the first step (list index) at which
        one appears.  The time it took, and the ``task`` that computed it (an executor's job
        id, host, device, versions), go to the provenance, not to the result file.
        """
        diverged, step = first_non_finite(result)
        key = config_key(index, config)
        entry = {
            "index": index,
            "config": dict(config),
            "result": _finite_or_none(dict(result)),
            "status": "diverged" if diverged else "ok",
            "diverged_step": step,
        }
        _write_json_atomic(self.results_dir / f"{key}.json", entry)
        session = len(self.provenance["sessions"]) - 1
        self.provenance.setdefault("timings", {})[key] = {
            "wall_time_s": None if wall_time_s is None else round(wall_time_s, 4),
            "finished": _now(), "session": session,
            **({"task": dict(task)} if task else {})}
        self._save_provenance()
        return entry["status"]

    def entries(self) -> list[dict[str, Any]]:
        """All stored per-configuration entries, in configuration order (see
        :func:`read_entries`)."""
        return read_entries(self.results_dir)

    def finish(self) -> None:
        """Mark the run complete (every configuration has a result), stamp the times and give
        up the lock."""
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
        self.close()

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
    provenance = _read_json(path)
    missing = [key for key in PROVENANCE_KEYS if key not in provenance]
    if missing:
        raise MissingResultsError(f"{path} lacks {missing}: its results are not loaded")
    return provenance


def complete_entries(run_dir: Path, provenance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entries of a complete run, checked against its provenance: one result per
    configuration index 0..n_configs-1, none missing, none extra."""
    entries = read_entries(run_dir / "results")
    expected = provenance.get("n_configs")
    indices = sorted(e["index"] for e in entries)
    if expected is None or indices != list(range(expected)):
        have = set(indices)
        missing = sorted(set(range(expected or 0)) - have)
        raise CorruptRunError(
            f"{run_dir} is incomplete: {len(entries)} results for {expected} configurations"
            + (f" (missing configuration(s) {missing[:10]})" if missing else "")
            + "; resume it with the command that made it, or delete it")
    return entries


def parameter_differences(stored: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """``name: stored -> expected`` for every parameter that differs."""
    return [f"{k}: {stored.get(k, '<unset>')!r} (stored) vs {expected.get(k, '<unset>')!r}"
            for k in sorted(set(stored) | set(expected)) if stored.get(k) != expected.get(k)]


def describe_run(provenance: Mapping[str, Any], keys: Iterable[str] | None = None) -> str:
    """A run's provenance as a chapter prints it: run id, number of configurations, device,
    wall time, commit (and whether the tree had uncommitted changes or the run mixes setups),
    then, on a second line, the parameters ``keys`` (all when None; no line for none)."""
    git = provenance.get("git") or {}
    commit = git["commit"][:10] if git.get("commit") else "unknown commit"
    if git.get("dirty"):
        commit += " with uncommitted changes"
    device = provenance.get("device_name") or provenance.get("device", "?")
    minutes = (provenance.get("wall_time_s") or 0.0) / 60
    mixed = "; sessions with different setups (mixed)" if provenance.get("mixed") else ""
    params = provenance["params"]
    keys = list(params) if keys is None else list(keys)
    unknown = sorted(set(keys) - set(params))
    if unknown:
        raise KeyError(f"run {provenance.get('run_id')} has no parameters {unknown}")
    line = (f"run {provenance.get('run_id')}: {provenance.get('n_configs')} configurations on "
            f"{device} in {minutes:.1f} min, git {commit}{mixed}")
    if not keys:
        return line
    return line + "\nparameters: " + ", ".join(f"{k} = {params[k]}" for k in keys)


def run_command(experiment: str) -> str:
    """The command that produces a run of ``experiment`` with its CPU profile."""
    return (f"python -m tdyn run notebooks/{experiment}.ipynb "
            f"--params notebooks/params/{experiment}-cpu.yaml")


def load_results(experiment: str, run_id: str | None = None, root: Path | None = None,
                 params: Mapping[str, Any] | None = None
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The latest complete run of ``experiment`` (or run ``run_id``) as (table, provenance).

    With ``params``, the run's stored parameters must equal them
    (:class:`RunMismatchError` names the keys that differ).  The run must be complete
    (:func:`complete_entries`).  Raises :class:`MissingResultsError` with the command that
    produces a run when there is none.
    """
    base = Path(root or data_root()) / check_name("experiment name", experiment)
    if run_id is not None:
        candidates = [base / check_name("run id", run_id)]
    else:
        candidates = sorted(p for p in base.glob("*") if p.is_dir())
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
    if params is not None and provenance["params"] != dict(params):
        raise RunMismatchError(
            f"{run_dir} was made with other parameters than asked for: "
            + "; ".join(parameter_differences(provenance["params"], params)))
    return entries_table(complete_entries(run_dir, provenance)), provenance


def walk_files(base: Path, hidden: bool = True) -> list[Path]:
    """Every file under ``base`` (or ``base`` itself if it is a file), following symbolic links
    to folders, each real folder once; without ``hidden``, names starting with '.' are left
    out."""
    if base.is_file():
        return [base]
    found, seen = [], set()
    for folder, subfolders, files in os.walk(base, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = sorted(d for d in subfolders if hidden or not d.startswith("."))
        found += [Path(folder) / f for f in files if hidden or not f.startswith(".")]
    return sorted(found)


def data_files(root: Path) -> list[Path]:
    """Every published file under ``root`` (:func:`walk_files`, hidden files such as locks and
    temporaries left out), except the manifest and README files."""
    return [p for p in walk_files(root, hidden=False)
            if p.name not in (MANIFEST_NAME, "README.md")]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(root: Path | None = None) -> Path:
    """List every result file under ``root`` with its SHA-256 in ``root/MANIFEST.json``."""
    root = Path(root or data_root())
    manifest = {p.relative_to(root).as_posix(): _sha256(p) for p in data_files(root)}
    path = root / MANIFEST_NAME
    _write_json_atomic(path, {"files": manifest})
    return path


def verify_manifest(root: Path | None = None) -> list[str]:
    """Problems with the published results: files missing, modified, or not listed (a file
    reached through a symbolic link included), or a manifest that cannot be read."""
    root = Path(root or data_root())
    path = root / MANIFEST_NAME
    if not path.is_file():
        return [f"{path} is missing (write it with: python -m tdyn manifest --update)"]
    try:
        listed = json.loads(path.read_text())["files"]
        if not isinstance(listed, dict):
            raise TypeError
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return [f"{path} is corrupt (not valid JSON: {err})"]
    except (KeyError, TypeError):
        return [f"{path} is corrupt: it has no 'files' mapping of path to checksum"]
    present = {p.relative_to(root).as_posix(): p for p in data_files(root)}
    listed_names, present_names = set(listed), set(present)
    problems = [f"{n} is listed but missing" for n in sorted(listed_names - present_names)]
    problems += [f"{n} is not listed in the manifest" for n in sorted(present_names - listed_names)]
    problems += [f"{n} was modified (checksum differs)"
                 for n in sorted(listed_names & present_names) if _sha256(present[n]) != listed[n]]
    return problems
