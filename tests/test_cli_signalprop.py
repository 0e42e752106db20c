"""`python -m tdyn exponents` and `python -m tdyn qp`.

One test runs the real `python -m tdyn` in a subprocess; the others call the same entry point,
`tdyn.cli.main`, in-process (each subprocess pays a few seconds of imports).
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from tdyn.cli import main
from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.gradients import lambda_g
from tdyn.signalprop.theory import collapsed_fixed_point, lambda_a, trajectory


@pytest.fixture
def tdyn(capsys):
    """Run ``python -m tdyn ARGS`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


ARGS = ["--alpha-A", "0.5", "--alpha-M", "0.5", "--sigma-A", "1", "--sigma-w", "2"]


def test_python_dash_m_tdyn_exponents_in_a_subprocess():
    result = subprocess.run([sys.executable, "-m", "tdyn", "exponents", *ARGS, "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"lambda_a", "lambda_g", "q_star", "phase", "at"}
    assert out["at"] == "fixed-point"
    assert out["lambda_a"] == pytest.approx(lambda_a(Architecture(sigma_w=2.0)), rel=1e-12)
    assert out["lambda_g"] == pytest.approx(lambda_g(Architecture(sigma_w=2.0)), rel=1e-12)


@pytest.mark.parametrize(("residual", "norm"), [("interp", "pre"), ("plain", "post")])
def test_exponents_json_matches_the_library(tdyn, residual, norm):
    code, stdout, stderr = tdyn("exponents", *ARGS, "--residual", residual, "--norm", norm,
                                "--json")
    assert code == 0, stderr
    out = json.loads(stdout)
    assert set(out) == {"lambda_a", "lambda_g", "q_star", "phase", "at"}
    assert out["at"] == "fixed-point"
    arch = Architecture(alpha_A=0.5, alpha_M=0.5, sigma_A=1.0, sigma_w=2.0, residual=residual,
                        norm=norm)
    assert out["lambda_a"] == pytest.approx(lambda_a(arch), rel=1e-12)
    assert out["lambda_g"] == pytest.approx(lambda_g(arch), rel=1e-12)
    # Attention passes the common mode that it removes from the differences: lambda_g > lambda_a.
    assert out["lambda_g"] > out["lambda_a"]
    assert out["q_star"] == pytest.approx(collapsed_fixed_point(arch).q, rel=1e-12)
    assert out["phase"] == ("chaotic" if out["lambda_a"] > 0 else "ordered")


def test_exponents_plain_pre_ln_has_no_fixed_point_and_prints_text(tdyn):
    out = json.loads(tdyn("exponents", *ARGS, "--residual", "plain", "--q", "2", "--json")[1])
    assert out["q_star"] is None
    arch = Architecture(alpha_A=0.5, alpha_M=0.5, sigma_w=2.0, residual="plain")
    assert out["lambda_g"] == pytest.approx(lambda_g(arch, q0=2.0), rel=1e-12)
    code, stdout, _ = tdyn("exponents", *ARGS, "--phi", "erf")
    assert code == 0 and "lambda_a" in stdout and "lambda_g" in stdout and "phase" in stdout


def test_exponents_json_stays_valid_when_attention_removes_every_gap(tdyn):
    stdout = tdyn("exponents", "--alpha-A", "1", "--json")[1]
    out = json.loads(stdout, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert out["lambda_a"] is None and out["phase"] == "ordered"
    assert "-inf" in tdyn("exponents", "--alpha-A", "1")[1]


HOT = ["--alpha-A", "0.9", "--alpha-M", "0.9", "--sigma-w", "4", "--sigma-2", "4"]


def test_exponents_at_the_ln_scale_match_the_library_and_flip_the_phase(tdyn):
    fixed = json.loads(tdyn("exponents", *HOT, "--json")[1])
    code, stdout, stderr = tdyn("exponents", *HOT, "--at", "ln-scale", "--depth", "2",
                                "--rho0", "0.95", "--sigma-V", "0.8", "--json")
    assert code == 0, stderr
    out = json.loads(stdout)
    assert set(out) >= {"lambda_a", "lambda_g", "phase", "at"}
    assert (out["at"], out["depth"], out["rho0"]) == ("ln-scale", 2, 0.95)
    arch = Architecture(alpha_A=0.9, alpha_M=0.9, sigma_w=4.0, sigma_2=4.0, sigma_V=0.8)
    assert out["lambda_a"] == pytest.approx(
        lambda_a(arch, at="ln-scale", depth=2, rho0=0.95), rel=1e-12)
    assert out["lambda_g"] == pytest.approx(lambda_g(arch, 2, at="ln-scale"), rel=1e-12)
    # (0.9, 0.9, 4, 4): chaotic at q*, ordered one layer from the LayerNorm scale
    one = json.loads(tdyn("exponents", *HOT, "--at", "ln-scale", "--json")[1])
    assert fixed["phase"] == "chaotic" and one["phase"] == "ordered"
    text = tdyn("exponents", *HOT, "--at", "ln-scale")[1]
    assert "from q0 = 1" in text and "infinite depth" not in text
    assert "no infinite-depth limit" in tdyn("exponents", "--residual", "plain")[1]


@pytest.mark.parametrize("bad", [["--rho0", "1"], ["--depth", "0"]])
def test_exponents_refuse_bad_protocol_arguments(tdyn, bad):
    code, _, stderr = tdyn("exponents", "--at", "ln-scale", *bad)
    assert code != 0 and ("rho0" in stderr or "depth" in stderr)
    with pytest.raises(SystemExit):  # argparse refuses an unknown protocol
        tdyn("exponents", "--at", "nowhere")


def test_qp_json_is_the_theory_trajectory(tdyn):
    code, stdout, stderr = tdyn("qp", "--depth", "30", "--q0", "1", "--rho0", "0.9", "--n", "32",
                                *ARGS, "--json")
    assert code == 0, stderr
    out = json.loads(stdout)
    assert set(out) == {"q", "p"} and len(out["q"]) == len(out["p"]) == 31
    q, p = trajectory(Architecture(n=32, alpha_A=0.5, alpha_M=0.5, sigma_w=2.0), 30, 1.0, 0.9)
    np.testing.assert_allclose(out["q"], q[::2], rtol=1e-12)
    np.testing.assert_allclose(out["p"], p[::2], rtol=1e-12)
    assert "rho" in tdyn("qp", "--depth", "2")[1]


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
def test_invalid_arguments_are_clear_errors(tdyn, args, message):
    code, _, stderr = tdyn(*args)
    assert code == 2
    assert message in stderr
