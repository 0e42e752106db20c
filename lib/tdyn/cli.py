"""Command line: ``python -m tdyn <command> ...``.

Each command is a function ``add_<command>(subparsers)`` that registers its parser and sets
``handler`` (a function of the parsed arguments returning the exit code).  A module of the
library that offers a command defines its own ``add_<command>`` next to the math it exposes,
and this file lists it in :data:`COMMANDS`.  A ``ValueError`` raised by a handler is printed
as ``error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

from tdyn import __version__
from tdyn.markov import add_markov
from tdyn.params import ParameterSpec
from tdyn.runner import add_manifest, add_run
from tdyn.runs import RunConflictError
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except (ValueError, RunConflictError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
