"""Command line: ``python -m tdyn <command> ...``.

Every subcommand lives here, and nothing else: each is a function ``add_<command>(subparsers)``
that registers its parser and sets ``handler`` (a function of the parsed arguments returning
the exit code), listed in :data:`COMMANDS`; the math it prints comes from the parts.  Bad
input never ends in a traceback: a usage
error, or an error of the input that a handler raises (:data:`INPUT_ERRORS`), is printed as
one line ``error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from tdyn import __version__
from tdyn.markov.chain import summary
from tdyn.runs.executors import CLUSTERS
from tdyn.runs.params import ParameterSpec, bounded_int, finite_float
from tdyn.runs.runner import EXECUTORS, NotebookFailedError, TasksFailedError, run_notebook
from tdyn.runs.store import MissingResultsError, RunConflictError, verify_manifest, write_manifest
from tdyn.signalprop.architecture import Architecture
from tdyn.signalprop.gradients import lambda_g
from tdyn.signalprop.theory import (
    EVALUATION_PROTOCOLS,
    SOFTMAX_MODES,
    collapsed_fixed_point,
    lambda_a,
    phase,
    trajectory,
)


def _info(args: argparse.Namespace) -> int:
    import numpy
    import scipy
    import torch

    info = {
        "tdyn": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:>15}: {value}")
    return 0


def add_info(subparsers) -> None:
    parser = subparsers.add_parser("info", help="versions of tdyn and its stack, and the GPUs")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=_info)


def _params(args: argparse.Namespace) -> int:
    spec = ParameterSpec.load(args.notebook)
    if args.json:
        print(json.dumps({p.name: {"type": p.type.__name__, "default": p.default,
                                   "allowed": p.allowed(), "help": p.help}
                          for p in spec.parameters.values()}, indent=2))
        return 0
    for p in spec.parameters.values():
        print(f"{p.name:<14} {p.allowed():<28} default {p.default!r:<10} {p.help}")
    return 0


def add_params(subparsers) -> None:
    parser = subparsers.add_parser(
        "params", help="list a notebook's declared parameters (types, ranges, defaults)"
    )
    parser.add_argument("notebook", help="notebook name without .ipynb, e.g. kernel_check")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=_params)


# --------------------------------------------------------------------------------------------
# The book's machinery: python -m tdyn run, manifest


def _run(args) -> int:
    import papermill

    try:
        run_dir = run_notebook(
            args.notebook, params_file=args.params, overrides=args.p, device=args.device,
            run_id=args.run_id, fresh=args.fresh, allow_mixed=args.allow_mixed,
            executor=args.executor, executor_options=_executor_options(args),
        )
    except papermill.PapermillExecutionError as err:
        raise NotebookFailedError(f"the notebook failed in cell {err.exec_count}: {err.ename}: "
                           f"{err.evalue} (the executed notebook shows the traceback)") from None
    print(f"results and executed notebook: {run_dir}")
    return 0


def _executor_options(args) -> dict:
    """The ``--executor submitit`` options that were given (the others keep their defaults)."""
    options = {"cluster": args.cluster, "batch_size": args.batch_size,
               "chunk_size": args.chunk_size, "slurm_partition": args.slurm_partition,
               "gpus_per_task": args.gpus_per_task, "array_parallelism": args.array_parallelism,
               "timeout_min": args.timeout_min}
    given = {k: v for k, v in options.items() if v is not None}
    if args.executor != "submitit" and given:
        raise ValueError(f"--{sorted(given)[0].replace('_', '-')} is an option of "
                         "--executor submitit")
    return given if args.executor == "submitit" else {}


def add_run(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="execute a parametrized notebook into data/<experiment>/<run-id>/",
        description="Validate parameters, then execute notebooks/NOTEBOOK with papermill; "
        "results, provenance and the executed notebook go to data/<experiment>/<run-id>/. "
        "Rerunning the same command resumes an interrupted run.",
    )
    parser.add_argument("notebook", help="name or path of a notebook under notebooks/")
    parser.add_argument("--params", type=Path, help="YAML file of parameter values (a profile)")
    parser.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                        help="override one parameter (int, float, else YAML); repeatable")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"),
                        help="torch device, for notebooks that take one")
    parser.add_argument("--run-id", help="run directory name, letters, digits, '.', '_', '-' "
                        "(default: hash of the parameters)")
    parser.add_argument("--fresh", action="store_true",
                        help="discard the results already in the run directory (only a run "
                        "of the same experiment)")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="resume a run started with another git commit, device or package "
                        "versions (the provenance marks it mixed)")
    cluster = parser.add_argument_group(
        "array tasks", "--executor submitit computes the pending configurations as submitit "
        "array tasks (SLURM, or local subprocesses) before the notebook runs; this process "
        "alone writes the run")
    cluster.add_argument("--executor", choices=EXECUTORS, default="local",
                         help="local: in the notebook's process (default); submitit: as array "
                         "tasks")
    cluster.add_argument("--cluster", choices=CLUSTERS, default=None,
                         help="submitit cluster: auto (SLURM where sbatch exists, else local "
                         "subprocesses; default), slurm or local")
    cluster.add_argument("--slurm-partition", help="SLURM partition of the tasks")
    cluster.add_argument("--gpus-per-task", type=bounded_int(0, 64), help="GPUs per task")
    cluster.add_argument("--array-parallelism", type=bounded_int(1, 100_000),
                         help="how many array tasks run at once")
    cluster.add_argument("--timeout-min", type=bounded_int(1, 100_000),
                         help="time limit of each task, minutes")
    cluster.add_argument("--chunk-size", type=bounded_int(1, 100_000),
                         help="configurations per task (default 1)")
    cluster.add_argument("--batch-size", type=bounded_int(1, 100_000),
                         help="for batched experiments (the trainability ensemble): "
                         "configurations per ensemble, one ensemble per task (default: all)")
    parser.set_defaults(handler=_run)


def _manifest(args) -> int:
    if args.update:
        print(f"wrote {write_manifest()}")
        return 0
    problems = verify_manifest()
    for problem in problems:
        print(problem)
    print("manifest OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def add_manifest(subparsers) -> None:
    parser = subparsers.add_parser(
        "manifest", help="verify (or --update) the checksums of the results in data/")
    parser.add_argument("--update", action="store_true", help="rewrite data/MANIFEST.json")
    parser.set_defaults(handler=_manifest)


# --------------------------------------------------------------------------------------------
# Part I: python -m tdyn exponents, qp


MAX_CLI_DEPTH = 100_000


def _add_architecture_arguments(parser) -> None:
    """Command-line options for the hyperparameters of :class:`Architecture` (theory only)."""
    defaults = Architecture()
    parser.add_argument("--n", type=int, default=defaults.n, help="number of tokens (>= 2)")
    parser.add_argument("--alpha-A", type=finite_float, default=defaults.alpha_A,
                        help="attention residual strength alpha_A")
    parser.add_argument("--alpha-M", type=finite_float, default=defaults.alpha_M,
                        help="MLP residual strength alpha_M")
    parser.add_argument("--sigma-A", type=finite_float, default=defaults.sigma_A,
                        help="standard deviation of the attention logits")
    parser.add_argument("--sigma-w", type=finite_float, default=defaults.sigma_w,
                        help="MLP weight scale sigma_w")
    parser.add_argument("--sigma-V", type=finite_float, default=defaults.sigma_V,
                        help="value weight scale sigma_V")
    parser.add_argument("--sigma-2", type=finite_float, default=None,
                        help="MLP readout scale sigma_2 (default: tied to sigma_w)")
    parser.add_argument("--residual", default=defaults.residual,
                        help="residual form: interp (sqrt(1-a^2) x + a f) or plain (x + a f)")
    parser.add_argument("--norm", default=defaults.norm, help="LayerNorm placement: pre or post")
    parser.add_argument("--phi", default=defaults.phi, help="MLP nonlinearity: tanh, erf, relu")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _architecture_from(args) -> Architecture:
    return Architecture(n=args.n, alpha_A=args.alpha_A, alpha_M=args.alpha_M,
                        sigma_A=args.sigma_A, sigma_w=args.sigma_w, sigma_V=args.sigma_V,
                        sigma_2=args.sigma_2, residual=args.residual, norm=args.norm,
                        phi=args.phi)


def _exponents(args) -> int:
    import json

    arch = _architecture_from(args)
    if not args.q > 0:
        raise ValueError(f"q={args.q!r} must be positive (range (0, inf))")
    at = args.at
    no_fixed_point = arch.residual == "plain" and arch.norm == "pre"
    if at == "ln-scale":
        if not 0.0 <= args.rho0 < 1.0:
            raise ValueError(f"rho0={args.rho0!r} must lie in [0, 1)")
        if not 1 <= args.depth <= MAX_CLI_DEPTH:
            raise ValueError(f"depth={args.depth!r} must lie in [1, {MAX_CLI_DEPTH}]")
    overflow = ValueError("lambda_a is not a number for these hyperparameters (overflow): "
                          "choose smaller scales")
    try:
        if at == "fixed-point":
            lam = lambda_a(arch, q=args.q)
        else:
            lam = lambda_a(arch, at="ln-scale", depth=args.depth, rho0=args.rho0)
        if math.isnan(lam):
            raise overflow
        if at == "fixed-point":
            lam_g = lambda_g(arch, q0=args.q if no_fixed_point else None)
        else:
            lam_g = lambda_g(arch, depth=args.depth, at="ln-scale")
        q_star = collapsed_fixed_point(arch).q
    except OverflowError:
        raise overflow from None
    if math.isnan(lam_g):
        raise overflow
    # JSON has no infinities: lambda_a = -inf (alpha_A = 1 with interp) is written as null
    out = {"lambda_a": lam if math.isfinite(lam) else None,
           "lambda_g": lam_g if math.isfinite(lam_g) else None,
           "q_star": None if math.isnan(q_star) else q_star, "phase": phase(lam), "at": at}
    if at == "ln-scale":
        out.update(depth=args.depth, rho0=args.rho0)
        where = f"from q0 = 1, rho0 = {args.rho0:g}, over {args.depth} layer(s)"
        depth_words = f"per layer, mean over {args.depth} layer(s) from q0 = 1"
    elif no_fixed_point:
        where = f"one layer at q = {args.q:g} (plain pre-LN has no fixed point)"
        depth_words = f"per layer, one layer at q = {args.q:g}: q grows, no infinite-depth limit"
    else:
        where = "at the collapsed fixed point q*"
        depth_words = "per layer, infinite depth at q*"
    if args.json:
        print(json.dumps(out))
    else:
        print(f"lambda_a = {lam:+.6f}   (per layer, {where})")
        print(f"lambda_g = {lam_g:+.6f}   ({depth_words})")
        print("q_star   = " + ("none (q grows without bound)" if out["q_star"] is None
                                else f"{q_star:.6f}"))
        print(f"phase    = {out['phase']}   (sign of lambda_a {where}; see --at)")
    return 0


def add_exponents(subparsers) -> None:
    """``python -m tdyn exponents``: lambda_a, lambda_g, the collapsed fixed point q*, phase,
    at the collapsed fixed point (``--at fixed-point``, default) or from the LayerNorm scale
    (``--at ln-scale``)."""
    parser = subparsers.add_parser(
        "exponents",
        help="exponents lambda_a and lambda_g, collapsed fixed point q*, phase (theory)")
    _add_architecture_arguments(parser)
    parser.add_argument("--q", type=finite_float, default=1.0,
                        help="norm at which the exponents are taken for plain pre-LN "
                        "(no fixed point) with --at fixed-point")
    parser.add_argument("--at", choices=EVALUATION_PROTOCOLS, default="fixed-point",
                        help="where the exponents are evaluated: at the collapsed fixed point "
                        "q* (default) or from the LayerNorm scale q0 = 1 (ln-scale)")
    parser.add_argument("--depth", type=int, default=1,
                        help="with --at ln-scale: number of layers L (default 1)")
    parser.add_argument("--rho0", type=finite_float, default=0.99,
                        help="with --at ln-scale: initial cosine rho0 of lambda_a (default "
                        "0.99, as the re-implementations)")
    parser.set_defaults(handler=_exponents)


def _qp(args) -> int:
    import json

    arch = _architecture_from(args)
    if args.depth > MAX_CLI_DEPTH:
        raise ValueError(f"depth={args.depth} is too large for the command line (at most "
                         f"{MAX_CLI_DEPTH}); call tdyn.signalprop.theory.trajectory directly")
    try:
        q, p = trajectory(arch, args.depth, args.q0, args.rho0, args.softmax, seed=args.seed)
    except OverflowError:
        q = p = np.array([np.inf])
    finite = np.isfinite(q) & np.isfinite(p)
    if not finite.all():
        raise ValueError("the trajectory overflows (q or p is not finite): choose smaller "
                         "scales or fewer layers")
    q, p = q[::2].tolist(), p[::2].tolist()
    if args.json:
        print(json.dumps({"q": q, "p": p}))
    else:
        print(f"{'layer':>5} {'q':>12} {'p':>12} {'rho':>10}")
        for layer, (ql, pl) in enumerate(zip(q, p, strict=True)):
            print(f"{layer:>5} {ql:>12.6f} {pl:>12.6f} {pl / ql:>10.6f}")
    return 0


def add_qp(subparsers) -> None:
    """``python -m tdyn qp``: the theory trajectory (q_l, p_l), l = 0..depth."""
    parser = subparsers.add_parser("qp", help="theory trajectory (q_l, p_l) of the (q, p) map")
    _add_architecture_arguments(parser)
    parser.add_argument("--depth", type=int, default=30, help="number of layers (0 to 100000)")
    parser.add_argument("--q0", type=finite_float, default=1.0, help="initial token norm q_0 (> 0)")
    parser.add_argument("--rho0", type=finite_float, default=0.9, help="initial cosine rho_0")
    parser.add_argument("--softmax", default="annealed",
                        help=f"softmax average: one of {SOFTMAX_MODES}")
    parser.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=0,
                        help="seed of the 'sampled' softmax")
    parser.set_defaults(handler=_qp)

"""The commands this module adds to ``python -m tdyn``."""


# --------------------------------------------------------------------------------------------
# Part II: python -m tdyn markov


def _markov(args: argparse.Namespace) -> int:
    info = summary(args.p, args.q)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    p, q = info["p"], info["q"]
    regime = "switching (p + q > 1)" if p + q > 1 else (
        "sticky (p + q < 1)" if p + q < 1 else "i.i.d. (p + q = 1)")
    print(f"binary Markov chain p = P(0->1) = {p:g}, q = P(1->0) = {q:g}: {regime}")
    print(f"  stationary (pi_0, pi_1) : ({info['stationary'][0]:.6f}, {info['stationary'][1]:.6f})")
    print(f"  entropy rate (bigram)   : {info['entropy_rate']:.6f} nats")
    print(f"  unigram loss H(pi)      : {info['unigram_loss']:.6f} nats")
    print(f"  Bayes logits (f0*, f1*) : ({info['bayes_logits'][0]:+.6f}, "
          f"{info['bayes_logits'][1]:+.6f})")
    return 0


def add_markov(subparsers) -> None:
    """Register ``python -m tdyn markov``."""
    parser = subparsers.add_parser(
        "markov", help="stationary distribution, entropy rate and unigram loss of a binary chain"
    )
    parser.add_argument("--p", type=finite_float, required=True,
                        help="P(x_{n+1}=1 | x_n=0), in (0, 1)")
    parser.add_argument("--q", type=finite_float, required=True,
                        help="P(x_{n+1}=0 | x_n=1), in (0, 1)")
    parser.add_argument("--json", action="store_true", help="print JSON (losses in nats)")
    parser.set_defaults(handler=_markov)


INPUT_ERRORS = (ValueError, RunConflictError, MissingResultsError, NotebookFailedError)
"""What a handler raises for bad input or a refused run (ParameterError is a ValueError)."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``prog: error: message``)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


NEGATIVE_NUMBER = re.compile(r"-(inf|infinity|nan|\d+\.?\d*[eE][-+]?\d+|\.\d+[eE][-+]?\d+)",
                             re.IGNORECASE)


def protect_option_values(argv: list[str]) -> list[str]:
    """Values that argparse would take for options get a leading space, which the value
    parsers strip: a ``-p NAME VALUE`` value starting with '-', and numbers such as ``-inf``
    or ``-1e-3`` anywhere (argparse knows only ``-1`` and ``-0.5`` as numbers)."""
    out = list(argv)
    for i, token in enumerate(out):
        after_p = i >= 2 and out[i - 2] == "-p"
        if (after_p and token.startswith("-")) or NEGATIVE_NUMBER.fullmatch(token):
            out[i] = " " + token
    return out


COMMANDS = [
    add_info, add_params, add_run, add_manifest,  # the book's machinery
    add_exponents, add_qp,  # Part I: signal propagation
    add_markov,  # Part II: Markov chains
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m tdyn",
        description="Transformer training dynamics: theory, simulation and runs for the book.",
    )
    parser.add_argument("--version", action="version", version=f"tdyn {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(protect_option_values(sys.argv[1:] if argv is None else argv))
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            # overflow in the theory is reported by the handler as one line, not as warnings
            warnings.simplefilter("ignore", RuntimeWarning)
            return args.handler(args)
    except INPUT_ERRORS as err:
        message = " ".join(str(err).split()) if isinstance(err, NotebookFailedError) else err
        print(f"error: {message}", file=sys.stderr)
        return 2
    except TasksFailedError as err:  # one line per failed task
        print(f"error: {err}", file=sys.stderr)
        return 1
