"""tdyn.runs and tdyn.runs.runner: provenance, atomic resumable sweeps, divergence, loading."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from tdyn.runs.params import ParameterError
from tdyn.runs.runner import collect_parameters
from tdyn.runs.store import (
    PROVENANCE_KEYS,
    MissingResultsError,
    Run,
    RunConflictError,
    load_results,
    read_provenance,
    verify_manifest,
    write_manifest,
)

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"n": 4, "seed": 1, "lr": 0.1}
CONFIGS = [{"width": w} for w in (1, 2, 3, 4)]


def _sweep(run, configs=CONFIGS):
    for index, config in run.pending(configs):
        run.record(index, config, {"loss": [1.0 / config["width"], 0.5 / config["width"]]})


def test_provenance_round_trips_and_results_load(tmp_path):
    run = Run.open("toy", PARAMS, root=tmp_path)
    _sweep(run)
    run.finish()
    table, provenance = load_results("toy", root=tmp_path)
    assert set(PROVENANCE_KEYS) <= set(provenance)
    assert provenance == json.loads((run.directory / "provenance.json").read_text())
    assert provenance["params"] == PARAMS and provenance["seeds"] == {"seed": 1}
    assert provenance["device"] == "cpu" and provenance["status"] == "complete"
    assert {"python", "numpy", "torch", "tdyn"} <= set(provenance["versions"])
    assert set(provenance["git"]) == {"commit", "dirty", "changes"}
    session = provenance["sessions"][0]
    assert session["started"] <= session["finished"] and provenance["wall_time_s"] >= 0
    assert list(table.width) == [1, 2, 3, 4]
    assert [loss[0] for loss in table.loss] == [1.0, 0.5, 1 / 3, 0.25]
    assert set(table.status) == {"ok"}


def test_reopening_resumes_and_skips_finished_configurations(tmp_path):
    run = Run.open("toy", PARAMS, root=tmp_path)
    pending = run.pending(CONFIGS)
    for _ in range(2):
        index, config = next(pending)
        run.record(index, config, {"loss": [0.0]})
    pending.close()  # interrupted after two configurations
    again = Run.open("toy", PARAMS, root=tmp_path)
    assert [i for i, _ in again.pending(CONFIGS)] == [2, 3]
    assert len(again.provenance["sessions"]) == 2


def test_other_parameters_are_refused_unless_fresh(tmp_path):
    run = Run.open("toy", PARAMS, run_id="fixed", root=tmp_path)
    _sweep(run)
    with pytest.raises(RunConflictError, match="refusing to mix"):
        Run.open("toy", {**PARAMS, "lr": 0.2}, run_id="fixed", root=tmp_path)
    fresh = Run.open("toy", {**PARAMS, "lr": 0.2}, run_id="fixed", root=tmp_path, fresh=True)
    assert fresh.entries() == [] and fresh.provenance["params"]["lr"] == 0.2


def test_non_finite_loss_is_recorded_as_diverged_and_the_sweep_goes_on(tmp_path):
    run = Run.open("toy", PARAMS, root=tmp_path)
    for index, config in run.pending(CONFIGS):
        loss = [1.0, 0.5, math.nan, math.inf] if config["width"] == 2 else [1.0, 0.5, 0.2, 0.1]
        run.record(index, config, {"loss": loss, "final": loss[-1]})
    run.finish()
    table, _ = load_results("toy", root=tmp_path)
    assert list(table.status) == ["ok", "diverged", "ok", "ok"]
    diverged = table[table.status == "diverged"].iloc[0]
    assert diverged.diverged_step == 2
    # JSON cannot hold NaN: non-finite numbers are stored as null (NaN again in pandas).
    assert diverged.loss == [1.0, 0.5, None, None] and pd.isna(diverged.final)


def test_missing_incomplete_or_unprovenanced_runs_are_not_loaded(tmp_path):
    with pytest.raises(MissingResultsError, match="python -m tdyn run notebooks/toy.ipynb"):
        load_results("toy", root=tmp_path)
    run = Run.open("toy", PARAMS, root=tmp_path)
    _sweep(run, CONFIGS[:2])  # never finished: not loadable
    with pytest.raises(MissingResultsError, match="no complete run"):
        load_results("toy", root=tmp_path)
    (run.directory / "provenance.json").unlink()
    with pytest.raises(MissingResultsError, match="no provenance.json"):
        read_provenance(run.directory)
    stripped = tmp_path / "toy" / "stripped"
    stripped.mkdir()
    (stripped / "provenance.json").write_text(json.dumps({"status": "complete"}))
    with pytest.raises(MissingResultsError, match="lacks"):
        load_results("toy", run_id="stripped", root=tmp_path)


def test_finish_refuses_an_incomplete_sweep(tmp_path):
    run = Run.open("toy", PARAMS, root=tmp_path)
    _sweep(run, CONFIGS)
    run.provenance["n_configs"] = 5
    with pytest.raises(RuntimeError, match="4 of 5"):
        run.finish()


SWEEP_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from tdyn.runs.store import Run

    root, delay = Path(sys.argv[1]), float(sys.argv[2])
    run = Run.open("killme", {"seed": 5, "n": 12}, root=root)
    configs = [{"k": k} for k in range(12)]
    for index, config in run.pending(configs):
        rng = np.random.default_rng([5, index])
        time.sleep(delay)
        run.record(index, config, {"draws": rng.normal(size=3).tolist()})
    run.finish()
""")


def _entries_without_times(root):
    table, _ = load_results("killme", root=root)
    return table.drop(columns=["config_index"]).to_dict("records")


@pytest.mark.slow
def test_sweep_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP_SCRIPT)
    env = {**os.environ, "TDYN_RUN_DIR": ""}
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run([sys.executable, str(script), str(reference), "0"], check=True, env=env,
                   capture_output=True)
    proc = subprocess.Popen([sys.executable, str(script), str(killed), "0.25"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = killed / "killme"
    deadline = time.monotonic() + 60
    while len(list(results.glob("*/results/*.json"))) < 3:
        assert time.monotonic() < deadline and proc.poll() is None, "sweep did not progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(results.glob("*/results/*.json")))
    assert 3 <= done_before < 12, "the kill must land mid-sweep"
    with pytest.raises(MissingResultsError):
        load_results("killme", root=killed)
    subprocess.run([sys.executable, str(script), str(killed), "0"], check=True, env=env,
                   capture_output=True)
    assert _entries_without_times(killed) == _entries_without_times(reference)


def test_manifest_catches_modified_missing_and_unlisted_files(tmp_path):
    run = Run.open("toy", PARAMS, root=tmp_path)
    _sweep(run)
    run.finish()
    write_manifest(tmp_path)
    assert verify_manifest(tmp_path) == []
    victim = sorted((run.directory / "results").glob("*.json"))[0]
    victim.write_text(victim.read_text().replace("0.5", "0.6"))
    (run.directory / "extra.json").write_text("{}")
    (run.directory / "results" / sorted(p.name for p in (run.directory / "results").iterdir())[-1]
     ).unlink()
    problems = verify_manifest(tmp_path)
    assert any("was modified" in p and victim.name in p for p in problems)
    assert any("extra.json is not listed" in p for p in problems)
    assert any("is listed but missing" in p for p in problems)


def test_published_results_match_their_manifest():
    assert verify_manifest(ROOT / "data") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overrides": [("n_rho", "five")]}, "'n_rho' = 'five'"),
        ({"overrides": [("nrho", "5")]}, "unknown parameter(s) ['nrho']"),
        ({"overrides": [("q", "1e9")]}, "'q' = 1000000000.0"),
        ({"device": "cuda"}, "takes no 'device' parameter"),
    ],
)
def test_runner_validates_before_anything_runs(kwargs, message):
    with pytest.raises(ParameterError) as info:
        collect_parameters("kernel_check", **kwargs)
    assert message in str(info.value)


def test_params_file_must_be_a_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="must hold a mapping"):
        collect_parameters("kernel_check", params_file=bad)


def test_shipped_profiles_are_valid():
    for profile in sorted((ROOT / "notebooks" / "params").glob("*.yaml")):
        name = profile.stem.rsplit("-", 1)[0]
        assert profile.stem.rsplit("-", 1)[1] in ("cpu", "gpu"), profile.name
        collect_parameters(name, params_file=profile)


def _tdyn(*args, data):
    env = {**os.environ, "TDYN_DATA": str(data)}
    env.pop("TDYN_RUN_DIR", None)
    return subprocess.run([sys.executable, "-m", "tdyn", *args], capture_output=True,
                          text=True, env=env)


def test_cli_rejected_run_writes_nothing(tmp_path):
    result = _tdyn("run", "kernel_check", "-p", "n_rho", "five", data=tmp_path)
    assert result.returncode == 2
    assert "'n_rho' = 'five'" in result.stderr and "expected int in [2, 201]" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_run_executes_records_and_resumes(tmp_path):
    args = ("run", "kernel_check", "--params", str(ROOT / "notebooks/params/kernel_check-cpu.yaml"),
            "-p", "n_rho", "4", "-p", "n_samples", "500")
    first = _tdyn(*args, data=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "kernel_check").iterdir()
    assert (run_dir / "executed.ipynb").is_file()
    table, provenance = load_results("kernel_check", root=tmp_path)
    assert provenance["params"]["phi"] == "tanh" and provenance["params"]["n_rho"] == 4
    assert len(table) == 4 and set(table.status) == {"ok"}
    stamps = {p.name: p.stat().st_mtime_ns for p in (run_dir / "results").iterdir()}
    again = _tdyn(*args, data=tmp_path)
    assert again.returncode == 0, again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "results").iterdir()} == stamps
    assert len(read_provenance(run_dir)["sessions"]) == 2


def test_git_state_outside_a_repository_reads_the_declared_commit(tmp_path, monkeypatch):
    """A copy without .git (a GPU machine) records the commit the caller declares, or None."""
    from tdyn.runs.store import SOURCE_COMMIT_ENV, git_state

    monkeypatch.delenv(SOURCE_COMMIT_ENV, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
    monkeypatch.setenv(SOURCE_COMMIT_ENV, "abc123")
    assert git_state(tmp_path) == {"commit": "abc123", "dirty": None,
                                   "commit_from": SOURCE_COMMIT_ENV}
    # inside the repository the real commit wins over a declared one
    assert git_state()["commit"] not in (None, "abc123")


# --- The run store refuses bad input and never deletes or mixes data ----------------------


@pytest.mark.parametrize("run_id", ["..", ".", "../escape", "/tmp/abs", "a/b", "", "x y"])
def test_run_ids_are_names_inside_the_data_root(tmp_path, run_id):
    with pytest.raises(ValueError, match="not allowed"):
        Run.open("toy", PARAMS, run_id=run_id, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_fresh_cannot_delete_outside_the_data_root(tmp_path):
    data, victim = tmp_path / "data", tmp_path / "victim"
    data.mkdir()
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    for run_id in ("..", str(victim), "../victim"):
        for _ in range(2):
            result = _tdyn("run", "kernel_check", "--run-id", run_id, "--fresh", data=data)
            assert result.returncode == 2 and "run id" in result.stderr, result.stderr
            assert "Traceback" not in result.stderr
    assert (victim / "precious.txt").read_text() == "keep me" and data.is_dir()


def test_fresh_deletes_only_a_run_of_the_same_experiment(tmp_path):
    run = Run.open("toy", PARAMS, run_id="shared", root=tmp_path)
    _sweep(run)
    run.finish()
    other = tmp_path / "other" / "shared"  # a folder of another experiment with that run id
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("not a run")
    with pytest.raises(RunConflictError, match="does not hold a run of 'other'"):
        Run.open("other", PARAMS, run_id="shared", root=tmp_path, fresh=True)
    assert (other / "notes.txt").exists()
    fresh = Run.open("toy", PARAMS, run_id="shared", root=tmp_path, fresh=True)
    assert fresh.entries() == []


def test_a_profile_loads_only_a_run_with_the_profile_parameters(tmp_path):
    from tdyn.runs.runner import profile_path, profile_results
    from tdyn.runs.store import RunMismatchError, params_hash

    profile = collect_parameters("kernel_check", profile_path("kernel_check", "cpu"))
    foreign = {**profile, "q": 50.0, "n_rho": 3, "phi": "relu"}
    run = Run.open("kernel_check", foreign, run_id=params_hash(profile), root=tmp_path)
    for index, config in run.pending([{"rho": r} for r in (0.0, 0.5, 1.0)]):
        run.record(index, config, {"theory": 0.0})
    run.finish()
    with pytest.raises(RunMismatchError) as info:
        profile_results("kernel_check", "cpu", root=tmp_path)
    for key in ("n_rho", "phi", "q"):
        assert f"{key}:" in str(info.value)


def test_resumed_sweep_records_the_same_bytes(tmp_path):
    run = Run.open("toy", PARAMS, root=tmp_path)
    _sweep(run)
    run.finish()
    before = {p.name: p.read_bytes() for p in run.results_dir.iterdir()}
    for path in sorted(run.results_dir.iterdir())[1:3]:
        path.unlink()
    again = Run.open("toy", PARAMS, root=tmp_path)
    _sweep(again)
    again.finish()
    assert {p.name: p.read_bytes() for p in again.results_dir.iterdir()} == before
    timings = again.provenance["timings"]
    assert len(timings) == 4 and {t["session"] for t in timings.values()} == {0, 1}


def test_relative_data_root_keeps_a_cli_run_in_one_place(tmp_path):
    env = {**os.environ, "TDYN_DATA": "out"}
    env.pop("TDYN_RUN_DIR", None)
    result = subprocess.run(
        [sys.executable, "-m", "tdyn", "run", "kernel_check", "-p", "n_rho", "2", "-p",
         "n_samples", "200"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "out" / "kernel_check").iterdir()
    assert {"executed.ipynb", "provenance.json", "results"} <= {p.name for p in run_dir.iterdir()}
    assert not (ROOT / "notebooks" / "out").exists()
    table, _ = load_results("kernel_check", root=tmp_path / "out")
    assert len(table) == 2


def test_resume_with_another_commit_or_device_is_refused_unless_allowed(tmp_path, monkeypatch):
    import tdyn.runs.store as runs

    run = Run.open("toy", PARAMS, root=tmp_path)
    _sweep(run, CONFIGS[:2])
    run.close()  # interrupted
    real = runs.git_state
    monkeypatch.setattr(runs, "git_state", lambda: {**real(), "commit": "0" * 40})
    with pytest.raises(RunConflictError, match="git commit .* -> 0000"):
        Run.open("toy", PARAMS, root=tmp_path)
    monkeypatch.setattr(runs, "git_state", real)
    monkeypatch.setattr(runs, "_device_of", lambda params: ("cuda:0", "a GPU"))
    with pytest.raises(RunConflictError, match="device cpu -> cuda:0"):
        Run.open("toy", PARAMS, root=tmp_path)
    mixed = Run.open("toy", PARAMS, root=tmp_path, allow_mixed=True)
    _sweep(mixed)
    mixed.finish()
    provenance = read_provenance(mixed.directory)
    assert provenance["mixed"] is True
    first, second = provenance["sessions"]
    assert first["device"] == "cpu" and second["device"] == "cuda:0"
    assert second["mixed"] == ["device cpu -> cuda:0", "device_name cpu -> a GPU"]
    for session in (first, second):
        assert {"git", "versions", "device", "device_name", "started"} <= set(session)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["-p", "n_masked", "8"], "n_masked = 8, seq_len = 8 are not allowed: need n_masked < "),
        (["-p", "alpha_min", "0.9"], "need alpha_min <= alpha_max"),
        (["-p", "alpha_max", "1.0"], "need alpha_max < 1"),
        (["-p", "d", "8"], "need d >= seq_len + 1"),
        (["-p", "seed", str(10**30)], "'seed' = 1000000000000000000000000000000"),
    ],
)
def test_cross_parameter_constraints_are_checked_before_anything_is_written(
        tmp_path, overrides, fragment):
    result = _tdyn("run", "trainability_sweep", *overrides, data=tmp_path)
    assert result.returncode == 2 and fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("0.5:0.8,0.2", "'0.2' is not of the form p:q"), ("0.5:1.5", "p"),
     ("standard,nope", "'nope' is not one of")],
)
def test_markov_lists_are_checked_by_the_spec(value, fragment):
    key = "inits" if "standard" in value else "chains"
    with pytest.raises(ParameterError, match="not allowed") as info:
        collect_parameters("markov_full", overrides=[(key, value)])
    assert fragment in str(info.value)


def test_loading_checks_completeness_and_names_corrupt_files(tmp_path):
    from tdyn.runs.store import CorruptRunError

    run = Run.open("toy", PARAMS, run_id="r", root=tmp_path)
    _sweep(run)
    run.finish()
    files = sorted(run.results_dir.iterdir())
    saved = files[1].read_text()
    files[1].unlink()
    with pytest.raises(CorruptRunError, match=r"3 results for 4 configurations .*\[1\]"):
        load_results("toy", root=tmp_path)
    files[1].write_text(saved)
    (run.results_dir / "stray.json").write_text(saved)
    with pytest.raises(CorruptRunError, match="stray.json does not belong"):
        load_results("toy", root=tmp_path)
    (run.results_dir / "stray.json").unlink()
    files[2].write_text(files[2].read_text()[:20])
    with pytest.raises(CorruptRunError, match=f"{files[2].name} is corrupt"):
        load_results("toy", root=tmp_path)
    files[2].write_text(saved)  # another configuration's content under this name
    with pytest.raises(CorruptRunError, match="not the configuration its name says"):
        load_results("toy", root=tmp_path)


def test_manifest_follows_symlinked_runs(tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    run = Run.open("toy", PARAMS, run_id="r", root=data)
    _sweep(run)
    run.finish()
    write_manifest(data)
    outside = Run.open("toy", PARAMS, run_id="r", root=elsewhere)
    _sweep(outside)
    outside.finish()
    (data / "toy" / "linked").symlink_to(elsewhere / "toy" / "r", target_is_directory=True)
    problems = verify_manifest(data)
    assert any("toy/linked/provenance.json is not listed" in p for p in problems), problems
    assert sum("toy/linked/results/" in p for p in problems) == 4


@pytest.mark.parametrize(
    ("result", "step"),
    [({"history": {"loss": [1.0, float("nan")]}}, 1),
     ({"curves": [[1.0, 2.0], [3.0, float("inf")]], "x": 1.0}, 1),
     ({"nested": {"value": float("-inf")}}, None)],
)
def test_non_finite_numbers_at_any_depth_mark_a_run_diverged(tmp_path, result, step):
    run = Run.open("toy", PARAMS, root=tmp_path)
    assert run.record(0, {"width": 1}, result) == "diverged"
    (entry,) = run.entries()
    assert entry["status"] == "diverged" and entry["diverged_step"] == step


LOCK_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tdyn.runs.store import Run
    run = Run.open("toy", {"n": 1}, run_id="busy", root=Path(sys.argv[1]))
    print("holding", flush=True)
    time.sleep(60)
""")


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    from tdyn.runs.store import RunLockedError

    env = {**os.environ}
    env.pop("TDYN_RUN_DIR", None)
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            Run.open("toy", {"n": 1}, run_id="busy", root=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    run = Run.open("toy", {"n": 1}, run_id="busy", root=tmp_path)  # released when it died
    assert len(run.provenance["sessions"]) == 2
    run.close()


def test_interrupted_writes_leave_no_temporary_files(tmp_path):
    run = Run.open("toy", PARAMS, root=tmp_path)
    _sweep(run, CONFIGS[:1])
    run.close()
    stale = run.results_dir / ".00001-abc.json.xyz.tmp"
    stale.write_text("{half")
    Run.open("toy", PARAMS, root=tmp_path).close()
    assert not stale.exists()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("{\"files\": {", "is corrupt (not valid JSON"), ("{}", "has no 'files' mapping"),
     ("[1]", "has no 'files' mapping")],
)
def test_a_broken_manifest_is_reported_with_its_name(tmp_path, text, fragment):
    (tmp_path / "MANIFEST.json").write_text(text)
    (problem,) = verify_manifest(tmp_path)
    assert "MANIFEST.json" in problem and fragment in problem


# --- Found by review: links, same-process holds, mixed setups, odd files ---------------------


@pytest.mark.parametrize("name", [".lock", "executed.ipynb", "results"])
def test_a_run_never_writes_through_a_symbolic_link(tmp_path, name):
    run = Run.open("toy", PARAMS, run_id="r", root=tmp_path / "data")
    run.close()
    victim = tmp_path / "victim"
    victim.mkdir() if name == "results" else victim.write_text("keep me")
    target = run.directory / name
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    target.symlink_to(victim)
    with pytest.raises(RunConflictError, match="symbolic link|cannot use"):
        Run.open("toy", PARAMS, run_id="r", root=tmp_path / "data")
    if name == "results":
        assert list(victim.iterdir()) == []
    else:
        assert victim.read_text() == "keep me"


def test_a_refused_reopen_in_the_same_process_keeps_the_lock(tmp_path):
    from tdyn.runs.store import RunLockedError

    run = Run.open("toy", PARAMS, run_id="r", root=tmp_path)
    with pytest.raises(RunConflictError, match="refusing to mix"):
        Run.open("toy", {**PARAMS, "lr": 0.5}, run_id="r", root=tmp_path)
    other = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; from tdyn.runs.store "
         "import Run; Run.open('toy', {'n': 4, 'seed': 1, 'lr': 0.1}, run_id='r', "
         "root=Path(sys.argv[1]))", str(tmp_path)],
        capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                              if k != "TDYN_RUN_DIR"})
    assert other.returncode != 0 and RunLockedError.__name__ in other.stderr
    run.close()
    run.close()  # closing twice is harmless


def test_unknown_commits_and_other_edits_count_as_another_setup():
    from tdyn.runs.store import setup_differences

    stored = {"git": {"commit": "abc", "dirty": True, "changes": "111"}, "device": "cpu",
              "device_name": "cpu", "versions": {"torch": "2"}}
    same = {"git": dict(stored["git"]), "device": "cpu", "device_name": "cpu",
            "versions": {"torch": "2"}}
    assert setup_differences(stored, same) == []
    edited = {**same, "git": {**same["git"], "changes": "222"}}
    assert setup_differences(stored, edited) == ["uncommitted changes 111 -> 222"]
    unknown = {**same, "git": {"commit": None, "dirty": None}}
    assert "git commit unknown" in setup_differences({**stored, "git": unknown["git"]},
                                                     unknown)[0]
    other_gpu = {**same, "device_name": "another GPU"}
    assert setup_differences(stored, other_gpu) == ["device_name cpu -> another GPU"]


def test_a_provenance_that_is_not_an_object_is_named(tmp_path):
    from tdyn.runs.store import CorruptRunError

    run_dir = tmp_path / "toy" / "bad"
    run_dir.mkdir(parents=True)
    (run_dir / "provenance.json").write_text("[]")
    with pytest.raises(CorruptRunError, match="provenance.json is corrupt"):
        Run.open("toy", PARAMS, run_id="bad", root=tmp_path)
    cli_run = tmp_path / "cli" / "kernel_check" / "bad"
    cli_run.mkdir(parents=True)
    (cli_run / "provenance.json").write_text("[]")
    result = _tdyn("run", "kernel_check", "--run-id", "bad", data=tmp_path / "cli")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "is corrupt" in lines[0], result.stderr


def test_stored_files_are_readable_by_everyone(tmp_path):
    run = Run.open("toy", PARAMS, root=tmp_path)
    _sweep(run)
    run.finish()
    for path in [run.directory / "provenance.json", *run.results_dir.iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_describe_run_names_the_setup_and_the_chosen_parameters():
    from tdyn.runs.store import describe_run

    provenance = {"run_id": "abc", "n_configs": 3, "device": "cuda", "device_name": "H100",
                  "wall_time_s": 90.0, "git": {"commit": "0123456789abcdef", "dirty": True},
                  "params": {"d": 8, "lr": 0.1, "seed": 0}}
    assert describe_run(provenance, ["d", "seed"]) == (
        "run abc: 3 configurations on H100 in 1.5 min, git 0123456789 with uncommitted "
        "changes\nparameters: d = 8, seed = 0")
    clean = dict(provenance, git={"commit": None}, mixed=True, device_name=None)
    assert describe_run(clean).startswith(
        "run abc: 3 configurations on cuda in 1.5 min, git unknown commit; sessions with "
        "different setups (mixed)\nparameters: d = 8, lr = 0.1, seed = 0")
    assert describe_run(provenance, []) == (
        "run abc: 3 configurations on H100 in 1.5 min, git 0123456789 with uncommitted changes")
    with pytest.raises(KeyError, match="no parameters"):
        describe_run(provenance, ["width"])
