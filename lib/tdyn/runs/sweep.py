"""One driver for every experiment: :func:`sweep` runs an experiment's configurations into a
run of the store, :func:`profile_results` reads a profile's run back with each result's seeds.

An *experiment* is a module (or any object) that offers the same three things, plus its name:

    EXPERIMENT                        the name of its notebook, spec and data folder
    configurations(params)            the list of configurations (JSON-ready dicts)
    seeds(config, params)             every seed that configuration draws from (a dict)
    run_configuration(config, params) the JSON-ready result of one configuration

An experiment that trains several configurations at once (a batched ensemble) also offers
``run_batch(configs, params)``, an iterator of ``(position, result, wall_time_s)`` as each
configuration of ``configs`` is finished; :func:`sweep` then hands it fixed slices of the
configuration list, so a resumed run computes exactly what an uninterrupted one would have.

Every recorded result holds ``"seeds": seeds(config, params)``, so a chapter reads the seeds
of a result instead of recomputing them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tdyn.runs.protocol import (
    check_batch_size,
    check_experiment,
    fixed_slices,
    load_experiment,
    settle_batch_size,
    with_seeds,
)
from tdyn.runs.runner import profile_results as _stored_profile_results
from tdyn.runs.store import MissingResultsError, Run


def sweep(experiment: Any, params: Mapping[str, Any], *, batch_size: int | None = None,
          run_id: str | None = None, fresh: bool = False, root: Path | None = None) -> Run:
    """Run every configuration of ``experiment`` that has no stored result into its run
    (:meth:`tdyn.runs.store.Run.open` with ``params``), with a progress bar, and finish the run.

    Each result is recorded as soon as it exists, so an interrupted sweep resumes where it
    stopped.  For a batched experiment (``run_batch``) the configurations are cut into fixed
    slices of ``batch_size`` (default: the size the run was started with, else all of them;
    :func:`tdyn.runs.protocol.settle_batch_size`); a slice with a pending configuration is
    computed whole and only its pending configurations are recorded.  Returns the finished
    run (``run.table()`` is its results).
    """
    check_experiment(experiment)
    params = dict(params)
    check_batch_size(experiment, batch_size)  # before the run is opened
    configs = [dict(c) for c in experiment.configurations(params)]
    run = Run.open(experiment.EXPERIMENT, params, run_id=run_id, fresh=fresh, root=root)
    try:
        size = settle_batch_size(run, experiment, len(configs), batch_size)
        if size is not None:
            _sweep_batched(run, experiment, configs, params, size)
        else:
            for index, config in run.pending(configs):
                start = time.monotonic()
                result = experiment.run_configuration(config, params)
                run.record(index, config, with_seeds(experiment, config, params, result),
                           wall_time_s=time.monotonic() - start)
        run.finish()
    except BaseException:
        run.close()
        raise
    return run


def _sweep_batched(run: Run, experiment: Any, configs: list[dict], params: dict,
                   size: int) -> None:
    todo = set(run.todo(configs))
    with tqdm(total=len(configs), initial=len(configs) - len(todo), unit="config",
              desc=experiment.EXPERIMENT) as bar:
        for indices in fixed_slices(len(configs), size):
            if todo.isdisjoint(indices):
                continue
            for position, result, seconds in experiment.run_batch(
                    [configs[i] for i in indices], params):
                index = indices[position]
                if index in todo:
                    run.record(index, configs[index],
                               with_seeds(experiment, configs[index], params, result),
                               wall_time_s=seconds)
                    bar.update(1)


def profile_results(experiment: Any, profile: str = "cpu", root: Path | None = None):
    """(table, provenance) of the run of ``experiment`` made with its ``profile`` params file
    (:func:`tdyn.runs.runner.profile_results`), with a ``seeds`` column.

    ``experiment`` is the module or its name (the module its spec names).  Runs recorded
    before results named their seeds get them from ``experiment.seeds`` (the formula those
    runs used), and their provenance says so (``seeds_from_formula``).
    """
    if isinstance(experiment, str):
        experiment = load_experiment(experiment)
    check_experiment(experiment)
    table, provenance = _stored_profile_results(experiment.EXPERIMENT, profile, root)
    if "seeds" in table and not table["seeds"].isna().any():
        return table, provenance
    params = provenance["params"]
    configs = experiment.configurations(params)
    seeds = []
    for row in table.to_dict("records"):
        config = configs[int(row["config_index"])]
        if any(row[key] != value for key, value in config.items()):
            raise ValueError(f"{experiment.EXPERIMENT}: stored configuration "
                             f"{row['config_index']} is not {config}; its seeds cannot be "
                             "derived from the experiment's formula")
        stored = row.get("seeds")
        seeds.append(stored if isinstance(stored, dict) else experiment.seeds(config, params))
    table = table.copy()
    table["seeds"] = seeds
    return table, {**provenance, "seeds_from_formula": True}


def first_profile_results(experiment: Any, profiles: tuple[str, ...] = ("gpu", "cpu"),
                          root: Path | None = None):
    """(table, provenance, profile) of the first of ``profiles`` whose run is stored (a chapter
    shows the GPU run when one exists, else the CPU run); raises the last profile's
    :class:`tdyn.runs.store.MissingResultsError` when none is."""
    if not profiles:
        raise ValueError("profiles must name at least one profile")
    for profile in profiles[:-1]:
        try:
            return (*profile_results(experiment, profile, root), profile)
        except MissingResultsError:
            continue
    return (*profile_results(experiment, profiles[-1], root), profiles[-1])
