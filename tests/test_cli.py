"""The command line `python -m tdyn`."""

import json
import os
import subprocess
import sys

import pytest

from tdyn import cli


def tdyn(*args):
    return subprocess.run([sys.executable, "-m", "tdyn", *args], capture_output=True, text=True)


def tdyn_here(args, data, capsys, monkeypatch):
    """``python -m tdyn ARGS`` run in this process (the same ``cli.main`` that the entry point
    exits with, without an interpreter start per case): (exit status, stdout, stderr)."""
    monkeypatch.setenv("TDYN_DATA", str(data))
    capsys.readouterr()
    try:
        status = cli.main(list(args))
    except SystemExit as exit_:
        status = exit_.code
    out = capsys.readouterr()
    return status, out.out, out.err


def test_help_lists_commands():
    result = tdyn("--help")
    assert result.returncode == 0
    for command in ("info", "params"):
        assert command in result.stdout


def test_no_command_prints_help_and_fails():
    result = tdyn()
    assert result.returncode == 2
    assert "usage:" in result.stdout


def test_params_json_matches_the_spec():
    result = tdyn("params", "kernel_check", "--json")
    assert result.returncode == 0, result.stderr
    declared = json.loads(result.stdout)
    assert declared["phi"]["allowed"] == "one of ['tanh', 'erf', 'relu']"
    assert declared["n_rho"]["default"] == 9


def test_unknown_notebook_is_a_clear_error():
    result = tdyn("params", "nope")
    assert result.returncode == 2
    assert "no parameter spec named 'nope'" in result.stderr


def test_info_reports_versions():
    result = tdyn("info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert {"tdyn", "python", "numpy", "torch", "cuda_available"} <= set(info)


# --- Bad input gets one clear line, never a traceback ---------------------------------------

BAD_INPUT = [
    # (arguments, fragment of the one-line message)
    (["nope"], "invalid choice: 'nope'"),
    (["info", "--bogus"], "unrecognized arguments: --bogus"),
    (["manifest", "--update", "now"], "unrecognized arguments: now"),
    (["params", "../kernel_check"], "no parameter spec named"),
    (["params", ""], "no parameter spec named"),
    (["run", "nope"], "no notebook 'nope'"),
    (["run", "/any/dir/kernel_check.ipynb"], "no notebook '/any/dir/kernel_check.ipynb'"),
    (["run", "kernel_check", "-p", "nrho", "5"], "unknown parameter(s) ['nrho']"),
    (["run", "kernel_check", "-p", "n_rho", "five"], "'n_rho' = 'five'"),
    (["run", "kernel_check", "-p", "n_rho", "2.5"], "'n_rho' = 2.5"),
    (["run", "kernel_check", "-p", "q", "nan"], "'q' = nan"),
    (["run", "kernel_check", "-p", "q", "inf"], "'q' = inf"),
    (["run", "kernel_check", "-p", "q", "-inf"], "'q' = -inf"),
    (["run", "kernel_check", "-p", "q", "1e400"], "'q' = inf"),
    (["run", "kernel_check", "-p", "n_samples", str(10**40)], "'n_samples' = 1000000000"),
    (["run", "kernel_check", "-p", "phi", ""], "'phi' = '' is not allowed"),
    (["run", "kernel_check", "-p", "seed", "-1"], "'seed' = -1"),
    (["run", "kernel_check", "-p", "seed", "[" * 3000], "'seed' = '[[["),
    (["run", "kernel_check", "-p", "q"], "expected 2 arguments"),
    (["run", "kernel_check", "--run-id", ".."], "run id '..' is not allowed"),
    (["run", "kernel_check", "--run-id", ""], "run id '' is not allowed"),
    (["run", "kernel_check", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["run", "kernel_check", "--chunk-size", "2"], "--chunk-size is an option of --executor"),
    (["run", "kernel_check", "--executor", "slurm"], "invalid choice: 'slurm'"),
    (["run", "kernel_check", "--executor", "submitit", "--chunk-size", "0"], "--chunk-size"),
    (["run", "kernel_check", "--executor", "submitit", "--cluster", "pbs"], "invalid choice"),
    (["run", "markov_full", "-p", "chains", "0.5"], "'0.5' is not of the form p:q"),
    (["run", "markov_full", "-p", "inits", ""], "'' is not one of"),
    (["exponents", "--sigma-w", "nan"], "'nan' is not a finite number"),
    (["exponents", "--alpha-A", "inf"], "'inf' is not a finite number"),
    (["exponents", "--q", "-inf"], "'-inf' is not a finite number"),
    (["exponents", "--q", "0"], "q=0.0 must be positive"),
    (["exponents", "--sigma-w", "1e308", "--sigma-2", "1e308"], "lambda_a"),
    (["exponents", "--n", "x"], "invalid int value: 'x'"),
    (["exponents", "--phi", ""], "phi=''"),
    (["qp", "--q0", "inf"], "'inf' is not a finite number"),
    (["qp", "--q0", "-1e-3"], "q0=-0.001 must be positive"),
    (["qp", "--q0", "nan"], "'nan' is not a finite number"),
    (["qp", "--rho0", "-inf"], "'-inf' is not a finite number"),
    (["qp", "--depth", str(10**12)], "is too large"),
    (["qp", "--sigma-w", "1e300", "--depth", "3"], "overflows"),
    (["qp", "--seed", "-3"], "-3 is not in [0, 2147483647]"),
    (["markov", "--p", "nan", "--q", "0.5"], "'nan' is not a finite number"),
    (["markov", "--p", "1.5", "--q", "0.5"], "p"),
    (["markov", "--p", "0.5"], "required: --q"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD_INPUT, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else None)
def test_bad_input_is_one_clear_line(args, fragment, tmp_path, capsys, monkeypatch):
    status, out, err = tdyn_here(args, tmp_path, capsys, monkeypatch)
    assert status == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert fragment in lines[0], lines[0]
    assert not any(tmp_path.iterdir()), "nothing is written for bad input"


THROUGH_THE_INTERPRETER = [["nope"], ["params", ""], ["run", "kernel_check", "-p", "n_rho", "five"],
                           ["exponents", "--sigma-w", "nan"], ["qp", "--depth", str(10**12)],
                           ["markov", "--p", "0.5"]]


@pytest.mark.parametrize(("args", "fragment"),
                         [case for case in BAD_INPUT if case[0] in THROUGH_THE_INTERPRETER],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_input_through_the_interpreter_is_one_clear_line(args, fragment, tmp_path):
    # One case of each kind through `python -m tdyn` itself: the exit status, nothing else
    # printed (the other cases run cli.main in this process).
    result = subprocess.run([sys.executable, "-m", "tdyn", *args], capture_output=True,
                            text=True, env={**os.environ, "TDYN_DATA": str(tmp_path)})
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in lines[0], lines[0]
    assert not any(tmp_path.iterdir()), "nothing is written for bad input"


PARAMS_FILES = [
    ("q: 1.0\nq: 2.0\n", "'q' is set twice (lines 1 and 2)"),
    ("q: [1.0\n", "is not valid YAML (line 2)"),
    ("- q\n", "must hold a mapping"),
    ("", "must hold a mapping"),
    ("q: .nan\n", "'q' = nan"),
    ("q: -.inf\n", "'q' = -inf"),
    ("n_rho: 1e3\n", "'n_rho' = 1000.0"),
    ("nrho: 3\n", "unknown parameter(s) ['nrho']"),
    ("phi: ''\n", "'phi' = ''"),
    ("\xff\xfe", "cannot be read"),
    ("{[a]: 1}\n", "the key on line 1 is not a name"),
    ("q: " + "[" * 3000 + "\n", "nested too deeply"),
]


@pytest.mark.parametrize(("text", "fragment"), PARAMS_FILES)
def test_bad_params_files_are_one_clear_line(tmp_path, text, fragment, capsys, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(text.encode("latin-1"))
    data = tmp_path / "data"
    data.mkdir()
    status, _, err = tdyn_here(["run", "kernel_check", "--params", str(bad)], data, capsys,
                               monkeypatch)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], err
    assert not any(data.iterdir())


@pytest.mark.parametrize("which", ["missing", "directory"])
def test_missing_or_directory_params_file_is_one_clear_line(tmp_path, which):
    path = tmp_path / "profile.yaml"
    if which == "directory":
        path.mkdir()
    result = tdyn("run", "kernel_check", "--params", str(path))
    assert result.returncode == 2
    expected = "does not exist" if which == "missing" else "is not a file"
    assert result.stderr.strip() == f"error: params file {path} {expected}"


def test_yaml_floats_in_exponent_form_are_floats(tmp_path):
    from tdyn.runs.runner import collect_parameters

    good = tmp_path / "good.yaml"
    good.write_text("lr: 1e-3\nweight_decay: 1E-4\n")
    params = collect_parameters("markov_full", good)
    assert params["lr"] == 0.001 and params["weight_decay"] == 0.0001
