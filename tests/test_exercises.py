"""The checkers of :mod:`tdyn.exercises` and the code solutions in the chapters: every checker
has a solution with code, the solution's code runs on its own, the checker accepts its answer
and rejects a wrong one, and the answer is the one the solution's text states."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tdyn.exercises import CHECKERS, verdict

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_notebooks",
                                               ROOT / "tools" / "student_notebooks.py")
student_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student_notebooks)

SOLUTIONS = {label: code for chapter in sorted((ROOT / "book").glob("part*/*.md"))
             for label, code in student_notebooks.solution_code(chapter.read_text()).items()}

# The answer each solution's text states, and the rounding it is stated to.
STATED = {
    "part1-ex-gaussian-simplex": ([0.5, 0.0195], [0.01, 0.0005]),
    "part1-ex-entropy-collapse": (1.49, 0.005),
    "part1-ex-relu-simplex": (1.0, 1e-4),
    "part1-ex-simplex-n": ([1.56, 2.12, 3.39, 4.40], 0.005),
    "part1-ex-sigma-a": ([0.0009, 0.0115], 0.00005),
    "part1-ex-crossover": (136, 0),
    "part1-ex-edge-tokens": ([23, 695], 0),
    "part1-ex-sgd": ([0.0, 8.86], [0.005, 0.005]),
    "ex-markov-gap": ([0.0, 0.0, 0.0023], [1e-12, 1e-12, 5e-5]),
    "part2-ex-energy-levels": ([0.72, -1.35], 0.005),
    "part2-ex-escape": ([0, 0, 3], 0),
    "part2-ex-canonical": (0.738, 0.0005),
    "part3-ex-scale": ([1.8e-4, 1.6e-3, 1.6e-2, 7.4e-2], [0.05e-4, 0.05e-3, 0.05e-2, 0.05e-2]),
    "part3-ex-fraction": (0.4, 0.05),
    "part3-ex-uniform-exact": (2.02, 0.005),
    "part3-ex-bump": ([0.775, 2.585], 0.0005),
    "part3-ex-balancing": ([0.0855, 1.84], [0.00005, 0.005]),
    "part3-ex-repeat": ([6.0, 2.5], 0.05),
}
# A plausible wrong answer for each: a slip the exercise invites.
WRONG = {
    "part1-ex-gaussian-simplex": (0.5, 1 / 64),  # forgets the rho^2 of the shared part
    "part1-ex-entropy-collapse": np.sqrt(2 * np.log(64)),  # the scale of the exact softmax
    "part1-ex-relu-simplex": 0.0,  # a simplex fixed point at rho* = 0
    "part1-ex-simplex-n": [1.56, 2.12, 3.39, 4.86],  # the n = 1024 value in place of 256
    "part1-ex-sigma-a": (0.0019, -0.0197),  # the annealed softmax, which fails at sigma_A = 4
    "part1-ex-crossover": 150,  # "about 150"
    "part1-ex-edge-tokens": (23, 694),  # n > 693, off by the rounding of 694.5
    "part1-ex-sgd": (-0.13, 7.93),  # (L - 1) lambda_g(L), the input-output Jacobian's rate
    "ex-markov-gap": (0.0, 0.0, 0.0),  # all three maps taken as symmetries
    "part2-ex-energy-levels": (0.5, -1.2),  # the start
    "part2-ex-escape": (3, 3, 3),  # every run counted, the censored ones too
    "part2-ex-canonical": 0.787,  # the model with b = 0
    "part3-ex-scale": [1.8e-4] * 4,  # the theorem's expression, unchanged by a rescaling
    "part3-ex-fraction": 0.0,  # the cancellation of Lemma 4.2 taken to hold
    "part3-ex-uniform-exact": 4.0,  # a second-order scheme
    "part3-ex-bump": (1 / 0.39, 1.0),  # the rise lasting 1 / kappa(0)
    "part3-ex-balancing": (0.0855, 1.0),  # per-entry losses balanced as well
    "part3-ex-repeat": (2.5, 6.0),  # the two settings swapped
}


@pytest.fixture(scope="module", autouse=True)
def committed_runs():
    """Solutions and checkers read the committed runs in data/, as the chapters do (the
    test session points TDYN_DATA at an empty folder)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TDYN_DATA", raising=False)
        yield


@pytest.fixture(scope="module")
def answers():
    """The ``answer`` of every solution's code, each run in a fresh namespace."""
    found = {}
    for label in CHECKERS:
        namespace = {}
        exec(SOLUTIONS[label], namespace)
        found[label] = namespace["answer"]
    return found


def test_every_checker_has_a_code_solution_and_stated_answers():
    assert set(CHECKERS) <= {label for label, code in SOLUTIONS.items() if code.strip()}
    assert set(STATED) == set(WRONG) == set(CHECKERS)


@pytest.mark.parametrize("label", sorted(CHECKERS))
def test_solution_gives_the_stated_answer_and_passes_its_checker(label, answers):
    assert CHECKERS[label](answers[label])
    stated, tolerance = STATED[label]
    given = np.asarray(answers[label], dtype=float)
    assert np.all(np.abs(given - stated) <= tolerance), (given, stated)


@pytest.mark.parametrize("label", sorted(CHECKERS))
def test_checker_rejects_a_wrong_answer(label, capsys):
    assert not CHECKERS[label](WRONG[label])
    assert "not right" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [None, "x", [1.0, 2.0, 3.0]])
def test_checkers_reject_malformed_answers_in_one_line(bad, capsys):
    assert not CHECKERS["part1-ex-edge-tokens"](bad)
    assert capsys.readouterr().out.count("\n") == 1


def test_verdict_names_its_tolerance_and_never_the_reference(capsys):
    assert verdict("x", 1.04, 1.0, rtol=0.05)
    assert not verdict("x", [0.2], [0.123456], atol=1e-3)
    out = capsys.readouterr().out
    assert "rtol 0.05" in out and "atol 0.001" in out and "0.123456" not in out
