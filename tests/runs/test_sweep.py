"""tdyn.runs.sweep: one driver for every experiment, and results that name their seeds."""

import types
from pathlib import Path

import numpy as np
import pytest

from tdyn.runs.protocol import check_experiment, load_experiment, with_seeds
from tdyn.runs.store import Run, load_results
from tdyn.runs.sweep import first_profile_results, profile_results, sweep
from tdyn.signalprop import kernel_check


def _toy(calls=None, batched=False):
    """A toy experiment: result = 10 * x + seed (so a wrong seed shows in the result)."""

    def configurations(params):
        return [{"x": x} for x in range(params["n"])]

    def seeds(config, params):
        return {"draw": params["seed"] + config["x"]}

    def run_configuration(config, params):
        if calls is not None:
            calls.append(config["x"])
        return {"y": 10 * config["x"] + seeds(config, params)["draw"]}

    toy = types.SimpleNamespace(EXPERIMENT="toy", configurations=configurations, seeds=seeds,
                                run_configuration=run_configuration)
    if batched:
        def run_batch(configs, params):
            if calls is not None:
                calls.append([c["x"] for c in configs])
            for position, config in enumerate(configs):
                yield position, {"y": 10 * config["x"] + seeds(config, params)["draw"]}, 0.1

        toy.run_batch = run_batch
    return toy


def test_every_result_records_its_seeds_and_a_resume_runs_only_the_missing(tmp_path):
    calls = []
    run = sweep(_toy(calls), {"n": 4, "seed": 7}, root=tmp_path)
    table = run.table()
    assert list(table.y) == [7, 18, 29, 40]
    assert [s["draw"] for s in table.seeds] == [7, 8, 9, 10]
    assert run.provenance["status"] == "complete"
    (run.results_dir / sorted(p.name for p in run.results_dir.iterdir())[2]).unlink()
    calls.clear()
    sweep(_toy(calls), {"n": 4, "seed": 7}, root=tmp_path)
    assert calls == [2]


def test_a_batched_experiment_gets_fixed_slices_and_records_only_what_is_pending(tmp_path):
    calls = []
    run = sweep(_toy(calls, batched=True), {"n": 5, "seed": 0}, batch_size=2, root=tmp_path)
    assert calls == [[0, 1], [2, 3], [4]]
    assert list(run.table().y) == [0, 11, 22, 33, 44]
    (run.results_dir / sorted(p.name for p in run.results_dir.iterdir())[3]).unlink()
    calls.clear()
    again = sweep(_toy(calls, batched=True), {"n": 5, "seed": 0}, batch_size=2, root=tmp_path)
    assert calls == [[2, 3]]  # the slice of the missing result, computed whole
    assert list(again.table().y) == [0, 11, 22, 33, 44]


def test_bad_experiments_and_options_are_refused_in_one_line(tmp_path):
    with pytest.raises(TypeError, match="lacks seeds, run_configuration"):
        check_experiment(types.SimpleNamespace(EXPERIMENT="x", configurations=list))
    with pytest.raises(ValueError, match="only for batched experiments"):
        sweep(_toy(), {"n": 2, "seed": 0}, batch_size=2, root=tmp_path)
    with pytest.raises(ValueError, match="batch_size=0"):
        sweep(_toy(batched=True), {"n": 2, "seed": 0}, batch_size=0, root=tmp_path)
    with pytest.raises(ValueError, match="names the seeds"):
        with_seeds(_toy(), {"x": 1}, {"seed": 0}, {"y": 1, "seeds": {"draw": 5}})


def test_a_failing_configuration_leaves_the_finished_ones_and_the_lock_free(tmp_path):
    toy = _toy()
    real = toy.run_configuration

    def fail_at_two(config, params):
        if config["x"] == 2:
            raise RuntimeError("boom")
        return real(config, params)

    toy.run_configuration = fail_at_two
    with pytest.raises(RuntimeError, match="boom"):
        sweep(toy, {"n": 4, "seed": 0}, root=tmp_path)
    toy.run_configuration = real
    run = sweep(toy, {"n": 4, "seed": 0}, root=tmp_path)  # the lock was given back
    assert list(run.table().y) == [0, 11, 22, 33]


def test_profile_results_derives_the_seeds_of_runs_that_did_not_record_them(tmp_path,
                                                                           monkeypatch):
    """A run made before results named their seeds: profile_results fills them from the
    experiment's formula and says so; recorded seeds are read as stored."""
    import tdyn.runs.sweep as driver

    params = {"phi": "erf", "q": 1.0, "n_rho": 3, "n_samples": 100, "seed": 0}
    run = Run.open("kernel_check", params, root=tmp_path)
    for index, config in run.pending(kernel_check.configurations(params)):
        result = kernel_check.run_configuration(config, params)
        del result["seeds"]
        run.record(index, config, result)
    run.finish()
    monkeypatch.setattr(driver, "_stored_profile_results",
                        lambda name, profile, root: load_results(name, root=tmp_path))
    table, provenance = profile_results(kernel_check, "cpu")
    assert provenance["seeds_from_formula"] is True
    assert [s["monte_carlo"] for s in table.seeds] == [[0, 0], [0, 1], [0, 2]]
    recorded = sweep(kernel_check, dict(params, seed=1), root=tmp_path)
    monkeypatch.setattr(driver, "_stored_profile_results",
                        lambda name, profile, root: (recorded.table(), recorded.provenance))
    table, provenance = profile_results(kernel_check, "cpu")
    assert "seeds_from_formula" not in provenance
    assert [s["monte_carlo"] for s in table.seeds] == [[1, 0], [1, 1], [1, 2]]


def test_kernel_check_agrees_with_monte_carlo_within_its_standard_error(tmp_path):
    # 20,000 draws per point: |z| > 4.5 at one of 5 points has probability ~ 3e-5.
    params = {"phi": "erf", "q": 1.0, "n_rho": 5, "n_samples": 20000, "seed": 3}
    table = sweep(kernel_check, params, root=tmp_path).table()
    z = (table.mc_mean - table.theory) / table.mc_stderr.clip(lower=1e-300)
    assert np.all(np.abs(z) < 4.5)
    assert list(table.point) == list(range(5))


SPECS = sorted(p.stem for p in (Path(kernel_check.__file__).parents[1] / "specs").glob("*.yaml"))


@pytest.mark.parametrize("name", SPECS)
def test_every_notebook_names_an_experiment_that_follows_the_protocol(name):
    from tdyn.runs.params import ParameterSpec

    experiment = load_experiment(name)
    params = ParameterSpec.load(name).defaults()
    configs = experiment.configurations(params)
    assert configs and all(isinstance(c, dict) for c in configs)
    seeds = [experiment.seeds(c, params) for c in configs]
    assert all(isinstance(s, dict) and s for s in seeds)


def test_an_experiment_without_configurations_finishes_empty(tmp_path):
    run = sweep(_toy(batched=True), {"n": 0, "seed": 0}, root=tmp_path)
    assert run.entries() == [] and run.provenance["status"] == "complete"


def test_profile_results_takes_the_experiment_or_its_name(tmp_path):
    from tdyn.runs.store import MissingResultsError

    for experiment in (kernel_check, "kernel_check"):
        with pytest.raises(MissingResultsError, match="kernel_check"):
            profile_results(experiment, "cpu", root=tmp_path)
    with pytest.raises(ValueError, match="no parameter spec named"):
        profile_results("nope", "cpu", root=tmp_path)


def test_first_profile_results_takes_the_first_stored_profile(tmp_path, monkeypatch):
    """The GPU run when it is stored, else the CPU run; neither: the CPU profile's error."""
    import tdyn.runs.sweep as driver
    from tdyn.runs.store import MissingResultsError

    stored = {"cpu": ("cpu table", {"params": {}})}

    def fake(experiment, profile, root=None):
        if profile not in stored:
            raise MissingResultsError(f"no {profile} run")
        return stored[profile]

    monkeypatch.setattr(driver, "profile_results", fake)
    assert first_profile_results(kernel_check, ("gpu", "cpu"))[2] == "cpu"
    stored["gpu"] = ("gpu table", {"params": {}})
    assert first_profile_results(kernel_check, ("gpu", "cpu"))[::2] == ("gpu table", "gpu")
    stored.clear()
    with pytest.raises(MissingResultsError, match="no cpu run"):
        first_profile_results(kernel_check, ("gpu", "cpu"))
    with pytest.raises(ValueError, match="at least one"):
        first_profile_results(kernel_check, ())
