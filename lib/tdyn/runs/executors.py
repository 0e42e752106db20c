"""Running a run's pending configurations as array tasks through submitit: on a SLURM cluster,
or with submitit's local executor (real subprocesses on this machine).

Each task calls the experiment's own functions (the protocol of :mod:`tdyn.runs.sweep`):
``run_configuration`` for each configuration of its chunk, or ``run_batch`` on one whole
fixed slice of a batched experiment, so an ensemble is never split across tasks.  Tasks
return their results; only the process that submitted them writes the run (the store's
atomic writes and lock), recording each result as its task finishes.  A failed or killed task
is reported with its configurations and does not stop the others; submitting again sends only
what is still missing.
"""

from __future__ import annotations

import importlib
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tdyn.runs.protocol import (
    check_batch_size,
    check_experiment,
    fixed_slices,
    settle_batch_size,
    with_seeds,
)
from tdyn.runs.store import Run, current_setup, setup_differences

CLUSTERS = ("auto", "local", "slurm")
"""``auto``: SLURM where ``sbatch`` exists, else submitit's local executor."""

DEFAULT_TIMEOUT_MIN = 24 * 60
"""Each task's time limit unless one is given (submitit's own defaults, 2 minutes on the local
executor and 5 on SLURM, would kill real trainings)."""


def make_executor(folder: Path, cluster: str = "auto", *, slurm_partition: str | None = None,
                  gpus_per_task: int | None = None, array_parallelism: int | None = None,
                  timeout_min: int | None = None):
    """A submitit executor writing its logs under ``folder``; the options are SLURM's
    partition, GPUs per task (default none: submitit's local executor then hides every GPU
    from its tasks), how many array tasks run at once (SLURM only; the local executor starts
    them all), and each task's time limit (default :data:`DEFAULT_TIMEOUT_MIN`)."""
    import submitit

    if cluster not in CLUSTERS:
        raise ValueError(f"cluster={cluster!r} is not allowed; choose one of {CLUSTERS}")
    executor = submitit.AutoExecutor(folder=folder, cluster=None if cluster == "auto"
                                     else cluster)
    options: dict[str, Any] = {"timeout_min": timeout_min or DEFAULT_TIMEOUT_MIN}
    if gpus_per_task is not None:
        options["gpus_per_node"] = gpus_per_task
    if slurm_partition is not None:
        options["slurm_partition"] = slurm_partition
    if array_parallelism is not None:
        options["slurm_array_parallelism"] = array_parallelism
    executor.update_parameters(**options)
    return executor


def run_task(module: str, chunk: list[tuple[int, dict]], params: dict) -> dict[str, Any]:
    """One array task: the results ``(index, result, wall_time_s)`` of the configurations in
    ``chunk`` (``(index, config)`` pairs) of the experiment ``module``, where it ran (host,
    device, package versions) and the git state of the code it imported."""
    experiment = importlib.import_module(module)
    results = []
    if hasattr(experiment, "run_batch"):
        for position, result, seconds in experiment.run_batch([c for _, c in chunk], params):
            results.append((chunk[position][0], result, seconds))
    else:
        for index, config in chunk:
            start = time.monotonic()
            results.append((index, experiment.run_configuration(config, params),
                            time.monotonic() - start))
    setup = current_setup(params)
    return {"results": results, "git": setup["git"],
            "task": {"host": socket.gethostname(), "device": setup["device"],
                     "device_name": setup["device_name"], "versions": setup["versions"]}}


def task_chunks(experiment: Any, configs: list[dict], todo: list[int],
                batch_size: int | None = None, chunk_size: int = 1) -> list[list[tuple[int, dict]]]:
    """The chunks of the pending configurations ``todo``, one per array task: for a batched
    experiment the fixed slices of ``batch_size`` (default all) holding a pending one, whole;
    else ``chunk_size`` pending configurations each."""
    check_batch_size(experiment, batch_size)
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive integer")
    if hasattr(experiment, "run_batch"):
        pending = set(todo)
        return [[(i, configs[i]) for i in s]
                for s in fixed_slices(len(configs), batch_size or max(len(configs), 1))
                if not pending.isdisjoint(s)]
    return [[(i, configs[i]) for i in todo[k:k + chunk_size]]
            for k in range(0, len(todo), chunk_size)]


def task_setup_problems(run: Run, out: Mapping[str, Any]) -> list[str]:
    """How the code a task ran differs from the run's (git commit, uncommitted changes,
    package versions; the device may differ, it is recorded per task)."""
    task = {"git": out["git"], "versions": out["task"]["versions"],
            "device": run.provenance.get("device"),
            "device_name": run.provenance.get("device_name")}
    return setup_differences(run.provenance, task)


def submit_pending(run: Run, experiment: Any, params: Mapping[str, Any], executor, *,
                   batch_size: int | None = None, chunk_size: int = 1,
                   allow_mixed: bool = False, poll_s: float = 0.5) -> list[str]:
    """Submit the pending configurations of ``run`` as one job array on ``executor`` and
    record each result as its task finishes (with the task's job id, host, device and
    versions in the run's timings).  Returns one line per failed task, naming its
    configurations; the run keeps everything that finished.  A task that ran other code than
    the run (another commit, uncommitted changes or package versions: a queue that waited
    past an edit) counts as failed unless ``allow_mixed``, which marks the run mixed.  When
    this returns early (an error, an interrupt), the tasks still waiting are cancelled."""
    check_experiment(experiment)
    params = dict(params)
    configs = [dict(c) for c in experiment.configurations(params)]
    todo = run.todo(configs)
    batch_size = settle_batch_size(run, experiment, len(configs), batch_size)
    chunks = task_chunks(experiment, configs, todo, batch_size, chunk_size)
    if not chunks:
        return []
    n = len(chunks)
    jobs = executor.map_array(run_task, [experiment.__name__] * n, chunks, [params] * n)
    run.note_session(executor={"name": "submitit", "cluster": executor.cluster,
                               "job_ids": [job.job_id for job in jobs]})
    waiting, failures, pending = dict(zip(jobs, chunks, strict=True)), [], set(todo)
    try:
        with tqdm(total=len(configs), initial=len(configs) - len(todo), unit="config",
                  desc=f"{experiment.EXPERIMENT} ({n} tasks)") as bar:
            while waiting:
                finished = [job for job in waiting if job.done()]
                if not finished:
                    time.sleep(poll_s)
                for job in finished:
                    chunk = waiting.pop(job)
                    what = f"task {job.job_id} (configurations {[i for i, _ in chunk]}, " \
                           f"first {chunk[0][1]})"
                    try:
                        out = job.result()
                    except Exception as err:  # a failed, killed or timed-out task
                        reason = (str(err).strip().splitlines() or [type(err).__name__])[-1]
                        failures.append(f"{what} failed: {reason}")
                        continue
                    problems = task_setup_problems(run, out)
                    if problems and not allow_mixed:
                        failures.append(f"{what} ran other code than the run "
                                        f"({'; '.join(problems)}): not recorded "
                                        "(--allow-mixed keeps such results)")
                        continue
                    if problems:
                        run.note_run(mixed=True)
                        run.note_session(mixed=sorted(set(
                            run.provenance["sessions"][-1].get("mixed", [])) | set(problems)))
                    for index, result, seconds in out["results"]:
                        if index in pending:
                            run.record(index, configs[index],
                                       with_seeds(experiment, configs[index], params, result),
                                       wall_time_s=seconds,
                                       task={"job_id": job.job_id, **out["task"]})
                            bar.update(1)
    finally:
        for job in waiting:
            job.cancel(check=False)
    return failures
