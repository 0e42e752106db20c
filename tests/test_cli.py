"""The command line `python -m tdyn`."""

import json
import subprocess
import sys


def tdyn(*args):
    return subprocess.run([sys.executable, "-m", "tdyn", *args], capture_output=True, text=True)


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
