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
