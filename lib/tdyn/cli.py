"""Command line: ``python -m tdyn <command> ...``.

Each command is a function ``add_<command>(subparsers)`` that registers its parser and sets
``handler`` (a function of the parsed arguments returning the exit code).  A module of the
library that offers a command defines its own ``add_<command>`` next to the math it exposes,
and this file lists it in :data:`COMMANDS`.  Bad input never ends in a traceback: a usage
error, or an error of the input that a handler raises (:data:`INPUT_ERRORS`), is printed as
one line ``error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import warnings

from tdyn import __version__
from tdyn.markov import add_markov
from tdyn.params import ParameterSpec
from tdyn.runner import NotebookFailedError, add_manifest, add_run
from tdyn.runs import MissingResultsError, RunConflictError
from tdyn.signalprop import add_exponents, add_qp


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


COMMANDS = [
    add_info, add_params, add_run, add_manifest,  # the book's machinery
    add_exponents, add_qp,  # Part I: signal propagation
    add_markov,  # Part II: Markov chains
]


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
