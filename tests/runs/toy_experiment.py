"""A toy experiment for the executor tests: result = 10 x + its seed, computed in the task's
own process; configuration x = params["kill_at"] kills its process with SIGKILL while the file
params["kill_marker"] exists (a task killed mid-run)."""

import os
import signal
from pathlib import Path

EXPERIMENT = "toy"


def configurations(params):
    return [{"x": x} for x in range(params["n"])]


def seeds(config, params):
    return {"draw": params["seed"] + config["x"]}


def run_configuration(config, params):
    if config["x"] == params["kill_at"] and Path(params["kill_marker"]).exists():
        os.kill(os.getpid(), signal.SIGKILL)
    return {"y": 10 * config["x"] + seeds(config, params)["draw"], "pid": os.getpid()}
