"""tdyn.runs.executors: a run's pending configurations as submitit array tasks (here with
submitit's local executor: real subprocesses), this process alone writing the run."""

import json
import os
import subprocess
import sys

import pytest

from tdyn.runs import executors
from tdyn.runs.executors import make_executor, submit_pending, task_chunks
from tdyn.runs.params import ParameterSpec
from tdyn.runs.store import REPO_ROOT, Run
from tdyn.runs.sweep import sweep
from tdyn.signalprop.trainability import experiment as trainability
from tests.runs import toy_experiment as toy

pytest.importorskip("submitit")


@pytest.fixture
def importable_tests(monkeypatch):
    """Task subprocesses import the toy experiment from this repository's tests package."""
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))


def _results(run):
    return {e["index"]: (e["config"], e["result"]) for e in run.entries()}


def test_chunks_keep_ensembles_whole_and_group_single_configurations():
    configs = [{"x": x} for x in range(5)]
    assert task_chunks(toy, configs, [1, 2, 4], chunk_size=2) == [
        [(1, {"x": 1}), (2, {"x": 2})], [(4, {"x": 4})]]

    class Batched:
        EXPERIMENT = "batched"
        run_batch = None

    assert task_chunks(Batched, configs, [3], batch_size=2) == [[(2, {"x": 2}), (3, {"x": 3})]]
    with pytest.raises(ValueError, match="only for batched"):
        task_chunks(toy, configs, [1], batch_size=2)
    with pytest.raises(ValueError, match="chunk_size=0"):
        task_chunks(toy, configs, [1], chunk_size=0)


def test_a_killed_task_is_reported_the_others_recorded_and_a_rerun_completes(
        tmp_path, importable_tests):
    marker = tmp_path / "kill"
    marker.touch()
    params = {"n": 4, "seed": 3, "kill_at": 2, "kill_marker": str(marker)}
    run = Run.open("toy", params, root=tmp_path / "data")
    failures = submit_pending(run, toy, params, make_executor(tmp_path / "logs", "local"))
    assert len(failures) == 1 and "configurations [2], first {'x': 2}" in failures[0]
    assert sorted(_results(run)) == [0, 1, 3]
    timings = run.provenance["timings"]
    assert {t["task"]["job_id"] for t in timings.values()} <= set(
        run.provenance["sessions"][-1]["executor"]["job_ids"])
    assert all(t["task"]["host"] and t["task"]["versions"]["torch"] for t in timings.values())
    run.close()

    marker.unlink()
    again = Run.open("toy", params, root=tmp_path / "data")
    assert submit_pending(again, toy, params, make_executor(tmp_path / "logs", "local")) == []
    assert len(again.provenance["sessions"][-1]["executor"]["job_ids"]) == 1  # only x = 2
    again.finish()
    inline = sweep(toy, params, root=tmp_path / "inline")
    ours = {i: (c, {k: v for k, v in r.items() if k != "pid"})
            for i, (c, r) in _results(again).items()}
    assert ours == {i: (c, {k: v for k, v in r.items() if k != "pid"})
                    for i, (c, r) in _results(inline).items()}
    assert os.getpid() not in {r["pid"] for _, r in _results(again).values()}  # subprocesses


@pytest.mark.slow
def test_a_two_by_two_trainability_sweep_through_the_executor_equals_the_in_process_one(
        tmp_path):
    """Whole ensembles per task (batch_size 2: two tasks), the same numbers to the last bit
    as the same ensembles trained in this process."""
    params = ParameterSpec.load("trainability_sweep").defaults()  # 2 alpha x 2 sigma_w
    params.update(steps=4, eval_every=2)
    run = Run.open("trainability_sweep", params, root=tmp_path / "data")
    assert submit_pending(run, trainability, params, make_executor(tmp_path / "logs", "local"),
                          batch_size=2) == []
    assert len(run.provenance["sessions"][-1]["executor"]["job_ids"]) == 2
    run.finish()
    inline = sweep(trainability, params, batch_size=2, root=tmp_path / "inline")
    assert _results(run) == _results(inline)


@pytest.mark.slow
def test_tdyn_run_through_the_local_executor(tmp_path):
    """The command line: a bad parameter is refused before anything is submitted; a run
    through the executor records job ids and is then documented by its executed notebook."""
    env = {"TDYN_DATA": str(tmp_path), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "tdyn", "run", "kernel_check", "--executor", "submitit",
               "--cluster", "local", "--chunk-size", "2", "-p", "n_rho", "3",
               "-p", "n_samples", "500"]
    bad = subprocess.run([*command, "-p", "q", "-1"], capture_output=True, text=True,
                         env={**env, **_jupyter_env()}, cwd=REPO_ROOT, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "'q' = -1" in bad.stderr
    assert not any(tmp_path.iterdir())  # nothing written, nothing submitted
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**env, **_jupyter_env()}, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "kernel_check").iterdir()
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["status"] == "complete"
    assert len(provenance["sessions"][0]["executor"]["job_ids"]) == 2  # 3 configs, 2 per task
    assert "executor" not in provenance["sessions"][1]  # the notebook computed nothing
    assert (run_dir / "executed.ipynb").is_file()
    assert all("task" in t for t in provenance["timings"].values())


def _jupyter_env():
    keys = ("JUPYTER_CONFIG_DIR", "JUPYTER_PATH", "JUPYTER_PLATFORM_DIRS", "HOME")
    return {k: os.environ[k] for k in keys if k in os.environ}


def test_the_executor_module_names_its_clusters():
    assert executors.CLUSTERS == ("auto", "local", "slurm")
    with pytest.raises(ValueError, match="cluster='pbs'"):
        make_executor(REPO_ROOT / "unused", "pbs")


class _FakeJob:
    """A finished job whose task returns ``out`` (or raises ``error``)."""

    def __init__(self, job_id, out=None, error=None):
        self.job_id, self.out, self.error, self.cancelled = job_id, out, error, False

    def done(self):
        return True

    def result(self):
        if self.error:
            raise self.error
        return self.out

    def cancel(self, check=True):
        self.cancelled = True


class _FakeExecutor:
    """Runs each task in this process, then reports its git state as ``git``."""

    cluster = "fake"

    def __init__(self, git=None):
        self.git = git

    def map_array(self, fn, modules, chunks, params):
        jobs = []
        for k, (module, chunk, p) in enumerate(zip(modules, chunks, params, strict=True)):
            out = fn(module, chunk, p)
            if self.git is not None:
                out["git"] = self.git
            jobs.append(_FakeJob(str(k), out))
        return jobs


def test_a_task_that_ran_other_code_is_not_recorded_unless_mixed_is_allowed(
        tmp_path, importable_tests):
    params = {"n": 2, "seed": 0, "kill_at": -1, "kill_marker": str(tmp_path / "none")}
    run = Run.open("toy", params, root=tmp_path)
    other = {"commit": "0" * 40, "dirty": False}
    failures = submit_pending(run, toy, params, _FakeExecutor(git=other))
    assert len(failures) == 2 and all("ran other code than the run" in f and "git commit"
                                      in f for f in failures)
    assert run.entries() == []
    assert submit_pending(run, toy, params, _FakeExecutor(git=other), allow_mixed=True) == []
    assert len(run.entries()) == 2 and run.provenance["mixed"] is True
    assert any("git commit" in m for m in run.provenance["sessions"][-1]["mixed"])
    run.close()


def test_a_task_with_the_runs_own_code_is_recorded(tmp_path, importable_tests):
    params = {"n": 3, "seed": 1, "kill_at": -1, "kill_marker": str(tmp_path / "none")}
    run = Run.open("toy", params, root=tmp_path)
    assert submit_pending(run, toy, params, _FakeExecutor(), chunk_size=2) == []
    assert [e["result"]["y"] for e in run.entries()] == [1, 12, 23]
    assert "mixed" not in run.provenance
    run.close()


def test_the_batch_size_a_run_started_with_is_kept_and_another_refused(tmp_path):
    from tdyn.runs.store import RunConflictError

    params = ParameterSpec.load("trainability_sweep").defaults()
    params.update(steps=2, eval_every=1)
    run = Run.open("trainability_sweep", params, root=tmp_path)
    assert submit_pending(run, trainability, params, _FakeExecutor(), batch_size=2) == []
    assert run.provenance["batch_size"] == 2
    run.finish()
    with pytest.raises(RunConflictError, match="started with batch_size=2"):
        sweep(trainability, params, batch_size=4, root=tmp_path)
    again = sweep(trainability, params, root=tmp_path)  # default: the recorded size
    assert again.provenance["batch_size"] == 2


def test_tasks_still_waiting_are_cancelled_when_recording_fails(tmp_path, importable_tests,
                                                                monkeypatch):
    params = {"n": 2, "seed": 0, "kill_at": -1, "kill_marker": str(tmp_path / "none")}
    run = Run.open("toy", params, root=tmp_path)
    waiting = _FakeJob("1", {"results": [], "git": {}, "task": {"versions": {}}})
    waiting.done = lambda: False

    class Executor(_FakeExecutor):
        def map_array(self, fn, modules, chunks, params):
            return [_FakeJob("0", error=None, out=fn(modules[0], chunks[0], params[0])),
                    waiting]

    monkeypatch.setattr(run, "record", lambda *a, **k: (_ for _ in ()).throw(OSError("full")))
    with pytest.raises(OSError, match="full"):
        submit_pending(run, toy, params, Executor(), poll_s=0.01)
    assert waiting.cancelled
    run.close()
