"""`python -m tdyn exponents` and `python -m tdyn qp`."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tdyn.architecture import Architecture
from tdyn.signalprop import collapsed_fixed_point, lambda_a, trajectory


def tdyn(*args):
    return subprocess.run([sys.executable, "-m", "tdyn", *args], capture_output=True, text=True)


ARGS = ["--alpha-A", "0.5", "--alpha-M", "0.5", "--sigma-A", "1", "--sigma-w", "2"]


@pytest.mark.parametrize(("residual", "norm"), [("interp", "pre"), ("plain", "post")])
def test_exponents_json_matches_the_library(residual, norm):
    result = tdyn("exponents", *ARGS, "--residual", residual, "--norm", norm, "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"lambda_a", "q_star", "phase"}
    arch = Architecture(alpha_A=0.5, alpha_M=0.5, sigma_A=1.0, sigma_w=2.0, residual=residual,
                        norm=norm)
    assert out["lambda_a"] == pytest.approx(lambda_a(arch), rel=1e-12)
    assert out["q_star"] == pytest.approx(collapsed_fixed_point(arch).q, rel=1e-12)
    assert out["phase"] == ("chaotic" if out["lambda_a"] > 0 else "ordered")


def test_exponents_plain_pre_ln_has_no_fixed_point_and_prints_text():
    result = tdyn("exponents", *ARGS, "--residual", "plain", "--json")
    assert json.loads(result.stdout)["q_star"] is None
    text = tdyn("exponents", *ARGS, "--phi", "erf")
    assert text.returncode == 0 and "lambda_a" in text.stdout and "phase" in text.stdout


def test_exponents_json_stays_valid_when_attention_removes_every_gap():
    result = tdyn("exponents", "--alpha-A", "1", "--json")
    out = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert out["lambda_a"] is None and out["phase"] == "ordered"
    assert "-inf" in tdyn("exponents", "--alpha-A", "1").stdout


def test_qp_json_is_the_theory_trajectory():
    result = tdyn("qp", "--depth", "30", "--q0", "1", "--rho0", "0.9", "--n", "32", *ARGS,
                  "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"q", "p"} and len(out["q"]) == len(out["p"]) == 31
    q, p = trajectory(Architecture(n=32, alpha_A=0.5, alpha_M=0.5, sigma_w=2.0), 30, 1.0, 0.9)
    np.testing.assert_allclose(out["q"], q[::2], rtol=1e-12)
    np.testing.assert_allclose(out["p"], p[::2], rtol=1e-12)
    assert "rho" in tdyn("qp", "--depth", "2").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["exponents", "--alpha-A", "1.5"], "alpha_A=1.5 must lie in [0, 1]"),
        (["exponents", "--sigma-w", "0"], "sigma_w"),
        (["exponents", "--phi", "gelu"], "phi"),
        (["qp", "--n", "1"], "n=1"),
        (["qp", "--depth", "-1"], "depth"),
        (["qp", "--softmax", "quenched"], "softmax mode"),
        (["qp", "--rho0", "1.5"], "rho0"),
    ],
)
def test_invalid_arguments_are_clear_errors(args, message):
    result = tdyn(*args)
    assert result.returncode == 2
    assert message in result.stderr
