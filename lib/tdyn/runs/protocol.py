"""The experiment protocol that :mod:`tdyn.runs.sweep` and :mod:`tdyn.runs.executors` drive.

An experiment is a module (or any object) offering ``EXPERIMENT`` (its name),
``configurations(params)``, ``seeds(config, params)`` and ``run_configuration(config,
params)``, and optionally ``run_batch(configs, params)`` (see :mod:`tdyn.runs.sweep`).  A
notebook's spec names its experiment's module (the ``experiment`` key).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from tdyn.runs.params import ParameterSpec
from tdyn.runs.store import Run, RunConflictError

PROTOCOL = ("EXPERIMENT", "configurations", "seeds", "run_configuration")
"""What every experiment offers (see the module docstring)."""


def check_experiment(experiment: Any) -> None:
    """Refuse, in one line, an object that does not follow the experiment protocol."""
    missing = [name for name in PROTOCOL if not hasattr(experiment, name)]
    if missing:
        raise TypeError(f"{getattr(experiment, '__name__', experiment)!r} is not an experiment:"
                        f" it lacks {', '.join(missing)} (the protocol of tdyn.runs.sweep)")


def with_seeds(experiment: Any, config: Mapping[str, Any], params: Mapping[str, Any],
               result: Mapping[str, Any]) -> dict[str, Any]:
    """``result`` with ``"seeds": experiment.seeds(config, params)``; a result that already
    names its seeds must name the same ones."""
    seeds = experiment.seeds(dict(config), dict(params))
    if "seeds" in result and result["seeds"] != seeds:
        raise ValueError(f"{experiment.EXPERIMENT}: the result of {dict(config)} names the seeds "
                         f"{result['seeds']}, but the experiment's seeds are {seeds}")
    return {**result, "seeds": seeds}


def check_batch_size(experiment: Any, batch_size: int | None) -> None:
    """Refuse, in one line, a batch size that is not a positive integer, or any batch size for
    an experiment that runs one configuration at a time."""
    if batch_size is None:
        return
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    if not hasattr(experiment, "run_batch"):
        raise ValueError(f"batch_size is only for batched experiments; "
                         f"{experiment.EXPERIMENT!r} runs one configuration at a time")


def fixed_slices(n_configs: int, size: int) -> list[range]:
    """The ensembles of a batched run: configurations [0, size), [size, 2 size), ... of
    ``n_configs``, the same whichever of them are pending."""
    return [range(i, min(i + size, n_configs)) for i in range(0, n_configs, size)]


def settle_batch_size(run: Run, experiment: Any, n_configs: int,
                      requested: int | None = None) -> int | None:
    """The ensemble size of a batched experiment's run: the one recorded when the run was
    started (``batch_size`` in its provenance), else ``requested`` (default: every
    configuration), which is then recorded.  A resume that asks for another size is refused:
    other ensembles give other floating-point results.  None for an unbatched experiment."""
    check_batch_size(experiment, requested)
    if not hasattr(experiment, "run_batch"):
        return None
    recorded = run.provenance.get("batch_size")
    size = requested or recorded or max(n_configs, 1)
    if recorded is not None and size != recorded:
        raise RunConflictError(f"run {run.directory} was started with batch_size={recorded}; "
                               f"resuming with {size} would train other ensembles: resume "
                               f"with batch_size={recorded} (or none)")
    if recorded is None:
        run.note_run(batch_size=size)
    return size


def load_experiment(name: str):
    """The experiment module that the spec of notebook ``name`` names (its ``experiment``
    key), checked against the protocol."""
    spec = ParameterSpec.load(name)
    if spec.experiment is None:
        raise ValueError(f"the spec of {name!r} names no experiment module (key 'experiment')")
    experiment = importlib.import_module(spec.experiment)
    check_experiment(experiment)
    if experiment.EXPERIMENT != name:
        raise ValueError(f"{spec.experiment}.EXPERIMENT is {experiment.EXPERIMENT!r}, not {name!r}")
    return experiment
