"""Checkers for the computational exercises of the book (the student notebooks call them).

Each checker takes the student's ``answer`` (the quantity its docstring names, which the
exercise's "For the check" line asks for), prints one line saying whether it is right within
the tolerance its docstring states, and returns True or False.  The line never shows the
reference value.  :data:`CHECKERS` maps each exercise label to its checker.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def verdict(label: str, answer, reference, rtol: float = 0.0, atol: float = 0.0) -> bool:
    """Print whether ``answer`` matches ``reference`` (same shape, |a - r| <= atol + rtol |r|
    elementwise) in one line, and return it."""
    try:
        given = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        print(f"{label}: not right: the answer is not a number or a sequence of numbers")
        return False
    expected = np.asarray(reference, dtype=float)
    if given.shape != expected.shape:
        print(f"{label}: not right: expected {expected.size} number(s) of shape "
              f"{expected.shape}, got shape {given.shape}")
        return False
    ok = bool(np.all(np.abs(given - expected) <= atol + rtol * np.abs(expected)))
    tolerance = " and ".join(t for t in (f"rtol {rtol:g}" * bool(rtol),
                                         f"atol {atol:g}" * bool(atol)) if t) or "exactly"
    print(f"{label}: {'right' if ok else 'not right'} (within {tolerance})")
    return ok


# Part I ---------------------------------------------------------------------------------------


def gaussian_simplex(answer) -> bool:
    """``(mean, variance)`` of an off-diagonal overlap C_12 of the ``gaussian`` start at q = 1,
    rho = 0.5, d = 64 (closed form, or from >= 20000 draws): mean within 0.01, variance within
    5% (about five standard errors of the sample variance of 20000 draws)."""
    q, rho, d = 1.0, 0.5, 64
    mean, var = verdict_parts(answer, 2)
    return (verdict("part1-ex-gaussian-simplex (mean)", mean, rho * q, atol=0.01)
            & verdict("part1-ex-gaussian-simplex (variance)", var, q**2 * (1 + rho**2) / d,
                      rtol=0.05))


def entropy_collapse(answer) -> bool:
    """sigma_A at which the annealed S2 exceeds the sampled one by 50% (n = 64, rho = 0):
    within 0.02 (the sampled S2's Monte-Carlo error and the grid)."""
    from tdyn.signalprop.theory import annealed_excess_threshold

    return verdict("part1-ex-entropy-collapse", answer,
                   annealed_excess_threshold(64, rho=0.0, excess=0.5), atol=0.02)


def relu_simplex(answer) -> bool:
    """rho* = p*/q* reached by ``simplex_fixed_point`` from rho0 = 0 for ReLU at
    alpha_A = alpha_M = 0.5, sigma_w = 5, n = 16: within 1e-4."""
    from tdyn.signalprop.architecture import Architecture
    from tdyn.signalprop.theory import simplex_fixed_point

    arch = Architecture(n=16, d=256, alpha_A=0.5, alpha_M=0.5, sigma_w=5.0, phi="relu")
    q, p, _ = simplex_fixed_point(arch)
    return verdict("part1-ex-relu-simplex", answer, p / q, atol=1e-4)


def simplex_n(answer) -> bool:
    """n rho* of the regular-simplex fixed point for n = 8, 16, 64, 256 at the chapter's
    chaotic point (alpha_A = alpha_M = 0.5, sigma_w = 3): each within 1%."""
    from tdyn.signalprop.architecture import Architecture
    from tdyn.signalprop.theory import scaled_simplex_overlap

    chaotic = Architecture(n=16, d=256, alpha_A=0.5, alpha_M=0.5, sigma_w=3.0)
    return verdict("part1-ex-simplex-n", answer,
                   scaled_simplex_overlap(chaotic, (8, 16, 64, 256)), rtol=0.01)


def sigma_a(answer) -> bool:
    """``(change at rho0 = 0.9, change at rho0 = 0.6)`` of the one-layer rate of the mean-field
    map (``lambda_a_from_map``, sampled softmax, at the collapsed fixed point) from sigma_A =
    0.5 to 4 at n = 16, alpha_A = alpha_M = 0.5, sigma_w = 2: each within 5e-4 (ten times the
    spread of the sampled softmax over its seeds)."""
    from tdyn.signalprop.architecture import Architecture
    from tdyn.signalprop.theory import lambda_a_from_map

    base = Architecture(n=16, d=256, alpha_A=0.5, alpha_M=0.5)
    reference = [lambda_a_from_map(base.replace(sigma_A=4.0), eps=gap, softmax="sampled")
                 - lambda_a_from_map(base.replace(sigma_A=0.5), eps=gap, softmax="sampled")
                 for gap in (0.1, 0.4)]
    return verdict("part1-ex-sigma-a", answer, reference, atol=5e-4)


def crossover(answer) -> bool:
    """Tokens n for |lambda_g(16) - lambda_a| < 0.01 at log G_c - lambda_a = 0.2: right from
    the exact count (:func:`~tdyn.signalprop.gradients.tokens_for_exponent_gap`) up to the
    count the exercise's bound gives, n - 1 > e^{L Delta} / (e^{L eps} - 1)."""
    from tdyn.signalprop.gradients import tokens_for_exponent_gap

    exact = tokens_for_exponent_gap(0.2, 16, 0.01)
    bound = math.floor(math.exp(16 * 0.2) / math.expm1(16 * 0.01)) + 2
    middle = (exact + bound) / 2
    return verdict("part1-ex-crossover", answer, middle, atol=(bound - exact) / 2)


def edge_tokens(answer) -> bool:
    """``(n at log G_c = 0.1, n at log G_c = 0.3)``: the fewest tokens with lambda_g(16) <
    0.01 on the edge of chaos, both exactly (n is the smallest count that satisfies the
    strict inequality)."""
    from tdyn.signalprop.gradients import tokens_for_exponent_gap

    reference = [tokens_for_exponent_gap(g, 16, 0.01) for g in (0.1, 0.3)]
    return verdict("part1-ex-edge-tokens", answer, reference)


def sgd(answer) -> bool:
    """``((L - 1) log G_c at (alpha, sigma_w) = (0.1, 0.3), the same at (0.9, 6))`` for L = 8,
    n = 16, alpha = alpha_A = alpha_M, at the collapsed fixed point: each within 0.01."""
    from tdyn.signalprop.architecture import Architecture
    from tdyn.signalprop.gradients import lambda_common

    reference = [7 * lambda_common(Architecture(n=16, d=24, alpha_A=a, alpha_M=a, sigma_w=s))
                 for a, s in ((0.1, 0.3), (0.9, 6.0))]
    return verdict("part1-ex-sgd", answer, reference, atol=0.01)


# Part II --------------------------------------------------------------------------------------


def markov_gap(answer) -> bool:
    """The three changes of the mutual information at (p, q) = (0.2, 0.6): under (p, q) ->
    (q, p); under (p, p) -> (1 - p, 1 - p) at p = 0.2; under (p, q) -> (1 - q, 1 - p); each
    within 1e-6 nats."""
    from tdyn.markov.chain import mutual_information as mi

    p, q = 0.2, 0.6
    reference = [mi(q, p) - mi(p, q), mi(1 - p, 1 - p) - mi(p, p), mi(1 - q, 1 - p) - mi(p, q)]
    return verdict("ex-markov-gap", answer, reference, atol=1e-6)


def energy_levels(answer) -> bool:
    """``(e, w)`` at the end of the optimal-bias flow from (0.5, -1.2) on (p, q) = (0.5, 0.8)
    (``t_max=300``): each within 0.01."""
    from tdyn.markov.reduced import integrate_flow

    flow = integrate_flow(0.5, -1.2, 0.5, 0.8, t_max=300)
    return verdict("part2-ex-energy-levels", answer, [flow.e[-1], flow.w[-1]], atol=0.01)


def escape(answer) -> bool:
    """How many of the three seeds (0, 10, 20) of the standard initialization on (0.5, 0.8)
    (T = 128, 600 steps) leave the unigram plateau for good by step 600, at lr = 1e-3, 2e-3,
    4e-3: exactly (the committed runs of :func:`~tdyn.markov.experiment.escape_study`)."""
    from tdyn.markov.experiment import escape_study

    counts = escape_study().groupby("lr").escape.count()
    return verdict("part2-ex-escape", answer, counts.to_numpy())


def canonical(answer) -> bool:
    """The sampled loss of the canonical model at (e, w) = (0.5, 1) with the bias set to
    b*(e, w), on (p, q) = (0.5, 0.8) with 64 sequences of 256 predictions: within 0.015 of
    the reduced model's L~(e, w) (about five standard errors of such a batch)."""
    from tdyn.markov.reduced import reduced_loss_opt

    return verdict("part2-ex-canonical", answer, reduced_loss_opt(0.5, 1.0, 0.5, 0.8),
                   atol=0.015)


# Part III -------------------------------------------------------------------------------------


def scale(answer) -> bool:
    """C_12 (key mu_1, query mu_2) after 3000 steps of the learned-attention chapter's small
    configuration at initialization scales 0.1, 0.3, 1, 3 (steps 0.05, 0.05, 0.05, 0.005;
    data seed 0, initialization seed 100): each within 2%."""
    from tdyn.cooccurrence.checks import attention_change_by_scale

    reference = attention_change_by_scale((0.1, 0.3, 1.0, 3.0), (0.05, 0.05, 0.05, 0.005))
    return verdict("part3-ex-scale", answer, reference["C12"], rtol=0.02)


def fraction(answer) -> bool:
    """Root mean square of dG(mu_3)/dG(mu_1) at t = 0 over 20 i.i.d. training sets of n = 60:
    within 0.18 of 3/sqrt(60) = 0.39, three standard errors of a root mean square over 20
    sets (relative standard error 1/sqrt(2 x 20))."""
    expected = 3 / math.sqrt(60)
    return verdict("part3-ex-fraction", answer, expected, atol=3 * expected / math.sqrt(40))


def uniform_exact(answer) -> bool:
    """Ratio of the largest |G(mu_k)| differences between gradient descent and the
    uniform-attention flow at t = 3 with steps 0.004 and 0.002 (start of
    :func:`~tdyn.cooccurrence.checks.frozen_attention_error`): within 0.1 of the ratio that
    function measures (about 2, the Euler scheme's first order)."""
    from tdyn.cooccurrence.checks import frozen_attention_error

    errors = frozen_attention_error((0.004, 0.002))
    return verdict("part3-ex-uniform-exact", answer, errors[0] / errors[1], atol=0.1)


def bump(answer) -> bool:
    """``(time of the type-2 loss peak, integral of kappa up to it)`` of
    :func:`~tdyn.cooccurrence.model.special_word_flow` from kappa(0) = 0.39 at m1 = 256: within
    0.005 and 0.02 (a time grid of 0.001 and its trapezoid rule)."""
    from scipy.integrate import cumulative_trapezoid

    from tdyn.cooccurrence.model import special_word_flow

    t = np.linspace(0.0, 3.0, 30001)
    flow = special_word_flow(0.39, 256, t)
    peak = int(np.argmax(flow["type_loss"][:, 1]))
    clock = cumulative_trapezoid(flow["u_norm2"], t, initial=0.0)[peak]
    time, integral = verdict_parts(answer, 2)
    return (verdict("part3-ex-bump (time)", time, t[peak], atol=0.005)
            & verdict("part3-ex-bump (integral)", integral, clock, atol=0.02))


def balancing(answer) -> bool:
    """``(Lemma 4.4's ratio of the type-2 and type-3 sums, (S_I3 / |I_3|) / (S_I2 / |I_2|))``
    after 3000 steps of :func:`~tdyn.cooccurrence.checks.unequal_type_counts` (8 of the 16
    type-3 entries kept): each within 2%."""
    from tdyn.cooccurrence.checks import unequal_type_counts

    run = unequal_type_counts(keep_type3=8)
    per_entry = run["S"][-1] / run["counts"]
    return verdict("part3-ex-balancing", answer,
                   [run["lemma44"][-1], per_entry[2] / per_entry[1]], rtol=0.02)


def repeat(answer) -> bool:
    """``(max |G| over random words with iid words at d = 20, the same with distinct words at
    d = 83)`` after 3000 steps of 0.05 at n = 48, L = 4 (data seed 0, initialization seed 100,
    Condition-1 scales 0.1): each within 2%."""
    from tdyn.cooccurrence.checks import random_word_effect

    reference = [random_word_effect(20, "iid")["max_random"],
                 random_word_effect(83, "distinct")["max_random"]]
    return verdict("part3-ex-repeat", answer, reference, rtol=0.02)


def verdict_parts(answer, count: int) -> list:
    """``answer`` as ``count`` parts for separate verdicts (NaN parts when it has another
    length, so that every verdict says 'not right')."""
    try:
        parts = list(answer)
    except TypeError:
        parts = []
    return parts if len(parts) == count else [math.nan] * count


CHECKERS: dict[str, Callable[[object], bool]] = {
    "part1-ex-gaussian-simplex": gaussian_simplex,
    "part1-ex-entropy-collapse": entropy_collapse,
    "part1-ex-relu-simplex": relu_simplex,
    "part1-ex-simplex-n": simplex_n,
    "part1-ex-sigma-a": sigma_a,
    "part1-ex-crossover": crossover,
    "part1-ex-edge-tokens": edge_tokens,
    "part1-ex-sgd": sgd,
    "ex-markov-gap": markov_gap,
    "part2-ex-energy-levels": energy_levels,
    "part2-ex-escape": escape,
    "part2-ex-canonical": canonical,
    "part3-ex-uniform-exact": uniform_exact,
    "part3-ex-bump": bump,
    "part3-ex-balancing": balancing,
    "part3-ex-scale": scale,
    "part3-ex-repeat": repeat,
    "part3-ex-fraction": fraction,
}
