"""Typed, range-checked parameters for the book's notebooks.

Each parametrized notebook ``notebooks/<name>.ipynb`` declares its parameters once, in
``tdyn/specs/<name>.yaml``.  The notebook checks the values in effect (its ``parameters``
cell plus anything papermill injected) with :func:`notebook_parameters`; a runner checks
requested values with :meth:`ParameterSpec.validate` before any work starts.  Both read the
same file, so a value the notebook would reject is rejected before a kernel even starts.

A spec file maps each parameter name to a mapping with keys ``type`` (int, float, str, bool),
``default``, ``help`` and, optionally, ``min``, ``max`` (inclusive), ``choices`` and ``check``
(``"module:function"``, a function of the value that raises ``ValueError`` when the value is
not allowed, such as a parser of ``"p:q"`` lists).  The reserved key ``constraints`` lists the
conditions between parameters, each ``{require: <expression>, help: <why>}``; an expression
uses parameter names, numbers, arithmetic, comparisons, ``and``, ``or`` and ``not``.  The
reserved key ``experiment`` names the module that implements the notebook's experiment (the
protocol of :mod:`tdyn.runs.sweep`), which ``tdyn run --executor submitit`` submits.

Parameter files (profiles) are read with :func:`load_params_file`: a YAML mapping in which a
key may appear only once and ``1e-3`` is a float (PyYAML alone reads it as a string).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import math
import operator
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}
_FIELDS = {"type", "default", "help", "min", "max", "choices", "check"}
CONSTRAINTS_KEY = "constraints"
EXPERIMENT_KEY = "experiment"
# Names IPython defines in every kernel namespace; they are never parameters.
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


class ParameterError(ValueError):
    """A parameter is unknown, of the wrong type, or out of its allowed range."""


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: its type, default, help text and allowed values."""

    name: str
    type: type
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    check_with: str | None = None

    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        text = self.type.__name__
        if self.min is not None and self.max is not None:
            text += f" in [{self.min}, {self.max}]"
        elif self.min is not None:
            text += f" >= {self.min}"
        elif self.max is not None:
            text += f" <= {self.max}"
        return text

    def check(self, value: Any) -> Any:
        """Return ``value`` (an int is accepted for a float) or raise :class:`ParameterError`."""
        problem = f"parameter {self.name!r} = {value!r} is not allowed: expected {self.allowed()}"
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        # bool is a subclass of int: refuse True where an int or float is declared.
        if not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            raise ParameterError(f"{problem} (got {type(value).__name__})")
        if self.type is float and not math.isfinite(value):
            raise ParameterError(f"{problem} (not finite)")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(problem)
        if self.min is not None and value < self.min:
            raise ParameterError(problem)
        if self.max is not None and value > self.max:
            raise ParameterError(problem)
        if self.check_with is not None:
            try:
                _function(self.check_with)(value)
            except ValueError as err:
                raise ParameterError(f"parameter {self.name!r} = {value!r} is not allowed: "
                                     f"{err}") from None
        return value


def _function(reference: str) -> Callable[[Any], Any]:
    """The function named ``"package.module:function"``."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


_OPERATORS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Mod: operator.mod,
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.USub: operator.neg, ast.Not: operator.not_,
}


def _evaluate(node: ast.AST, values: Mapping[str, Any]) -> Any:
    """Value of a constraint expression: names, numbers, + - * / %, comparisons, and, or, not
    (no powers, calls or attributes, so every expression is cheap and harmless)."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, values)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left, values),
                                         _evaluate(node.right, values))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand, values))
    if isinstance(node, ast.BoolOp):
        results = (_evaluate(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, values)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(right_node, values)
            if type(op) not in _OPERATORS:
                raise ValueError(f"unsupported comparison {type(op).__name__}")
            if not _OPERATORS[type(op)](left, right):
                return False
            left = right
        return True
    raise ValueError(f"unsupported element {ast.dump(node)!r}")


@dataclass(frozen=True)
class Constraint:
    """A condition between parameters, such as ``n_masked < seq_len``."""

    require: str
    help: str
    tree: ast.Expression = field(repr=False, compare=False)
    names: frozenset[str] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, spec: str, raw: Any, known: set[str]) -> Constraint:
        """A constraint from its spec entry; a malformed one raises ValueError."""
        if not isinstance(raw, Mapping) or set(raw) - {"require", "help"} or "require" not in raw:
            raise ValueError(f"spec {spec!r}: each constraint needs 'require' (and 'help')")
        try:
            tree = ast.parse(str(raw["require"]), mode="eval")
        except SyntaxError as err:
            raise ValueError(f"spec {spec!r}: constraint {raw['require']!r}: {err.msg}") from None
        names = frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))
        if names - known:
            raise ValueError(f"spec {spec!r}: constraint {raw['require']!r} names unknown "
                             f"parameter(s) {sorted(names - known)}")
        constraint = cls(str(raw["require"]), str(raw.get("help", "")), tree, names)
        constraint.holds({n: 1 for n in known})  # an unsupported expression fails here
        return constraint

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Whether the condition is true for ``values``."""
        try:
            return bool(_evaluate(self.tree, values))
        except ArithmeticError:  # division by zero, overflow: the condition cannot hold
            return False

    def check(self, values: Mapping[str, Any]) -> None:
        """Raise :class:`ParameterError` naming the parameters when the condition fails."""
        if not self.holds(values):
            shown = ", ".join(f"{n} = {values[n]!r}" for n in sorted(self.names))
            why = f" ({self.help})" if self.help else ""
            raise ParameterError(f"parameters {shown} are not allowed: need {self.require}{why}")


@dataclass(frozen=True)
class ParameterSpec:
    """The declared parameters of one notebook."""

    name: str
    parameters: dict[str, Parameter]
    constraints: tuple[Constraint, ...] = ()
    experiment: str | None = None

    @classmethod
    def from_mapping(cls, name: str, raw: Mapping[str, Mapping[str, Any]]) -> ParameterSpec:
        """Build a spec from the parsed YAML mapping; malformed declarations raise ValueError."""
        raw = dict(raw)
        raw_constraints = raw.pop(CONSTRAINTS_KEY, None) or []
        experiment = raw.pop(EXPERIMENT_KEY, None)
        if experiment is not None and not (
                isinstance(experiment, str)
                and re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", experiment)):
            raise ValueError(f"spec {name!r}: {EXPERIMENT_KEY!r} must be a dotted module name, "
                             f"not {experiment!r}")
        parameters = {}
        for pname, decl in raw.items():
            if not isinstance(decl, Mapping) or "type" not in decl or "default" not in decl:
                raise ValueError(f"spec {name!r}: parameter {pname!r} needs 'type' and 'default'")
            unknown = set(decl) - _FIELDS
            if unknown:
                raise ValueError(f"spec {name!r}: parameter {pname!r} has unknown keys {unknown}")
            if decl["type"] not in _TYPES:
                raise ValueError(
                    f"spec {name!r}: parameter {pname!r} has type {decl['type']!r}; "
                    f"allowed: {sorted(_TYPES)}"
                )
            choices = decl.get("choices")
            param = Parameter(
                name=pname,
                type=_TYPES[decl["type"]],
                default=decl["default"],
                help=str(decl.get("help", "")),
                min=decl.get("min"),
                max=decl.get("max"),
                choices=tuple(choices) if choices is not None else None,
                check_with=decl.get("check"),
            )
            param.check(param.default)  # a spec whose default is invalid is a bug
            parameters[pname] = param
        if not isinstance(raw_constraints, list):
            raise ValueError(f"spec {name!r}: {CONSTRAINTS_KEY!r} must be a list")
        constraints = tuple(Constraint.parse(name, c, set(parameters)) for c in raw_constraints)
        spec = cls(name=name, parameters=parameters, constraints=constraints,
                   experiment=experiment)
        spec.validate({})  # the defaults must satisfy the constraints
        return spec

    @classmethod
    def load(cls, name: str) -> ParameterSpec:
        """Load ``tdyn/specs/<name>.yaml``; an unknown name lists the specs that exist."""
        folder = resources.files("tdyn") / "specs"
        path = folder / f"{name}.yaml"
        if not re.fullmatch(r"[A-Za-z0-9_]+", name) or not path.is_file():
            known = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir()
                           if p.name.endswith(".yaml"))
            raise ValueError(f"no parameter spec named {name!r}; known: {known}")
        return cls.from_mapping(name, _load_yaml(path.read_text(), str(path)) or {})

    def defaults(self) -> dict[str, Any]:
        """The default value of every parameter."""
        return {p.name: p.default for p in self.parameters.values()}

    def validate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``values`` and return the full parameter set (defaults filled in).

        Raises :class:`ParameterError` naming the first unknown, ill-typed or out-of-range
        parameter, its value and what is allowed, or the first constraint between parameters
        that fails.
        """
        unknown = sorted(set(values) - set(self.parameters))
        if unknown:
            raise ParameterError(
                f"unknown parameter(s) {unknown} for {self.name!r}; "
                f"known: {sorted(self.parameters)}"
            )
        full = self.defaults()
        for key, value in values.items():
            full[key] = self.parameters[key].check(value)
        for constraint in self.constraints:
            constraint.check(full)
        return full


class _StrictLoader(yaml.SafeLoader):
    """YAML 1.2 floats (``1e-3``) and no repeated keys."""


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str | int | float | bool):
            raise ParameterError(f"{loader.name}: the key on line {line} is not a name")
        if key in seen:
            raise ParameterError(f"{loader.name}: {key!r} is set twice (lines {seen[key]} and "
                                 f"{line})")
        seen[key] = line
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _load_yaml(text: str, name: str) -> Any:
    loader = _StrictLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    except RecursionError:
        raise ParameterError(f"{name} is not valid YAML: nested too deeply") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParameterError(f"{name} is not valid YAML{where}: {problem}") from None
    finally:
        loader.dispose()


def load_params_file(path: Path | str) -> dict[str, Any]:
    """The ``name: value`` mapping of a parameter file, or one clear :class:`ParameterError`."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"params file {path} does not exist")
    if not path.is_file():
        raise ParameterError(f"params file {path} is not a file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ParameterError(f"params file {path} cannot be read: {err}") from None
    loaded = _load_yaml(text, f"params file {path}")
    if not isinstance(loaded, dict):
        raise ParameterError(f"params file {path} must hold a mapping name: value")
    return loaded


def _parse_number(text: str, convert: Callable[[str], Any], kind: str) -> Any:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None


def finite_float(text: str) -> float:
    """An ``argparse`` type: a finite float (NaN and infinities refused)."""
    text = text.strip()
    value = _parse_number(text, float, "a number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def notebook_parameters(name: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the parameters a notebook holds, as seen in its global ``namespace``.

    Call it in the cell right after the ``parameters`` cell (and papermill's injected cell),
    before any import: every public, non-module name defined so far must be a declared
    parameter, and every declared parameter must be defined.
    """
    spec = ParameterSpec.load(name)
    values = {
        key: value
        for key, value in namespace.items()
        if not key.startswith("_")
        and key not in _IPYTHON_NAMES
        and not isinstance(value, types.ModuleType)
        and not callable(value)
    }
    missing = sorted(set(spec.parameters) - set(values))
    if missing:
        raise ParameterError(f"notebook {name!r} does not define parameter(s) {missing}")
    return spec.validate(values)


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An ``argparse`` type: an integer in [low, high]."""

    def parse(text: str) -> int:
        text = text.strip()
        value = _parse_number(text, int, "an integer")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in [{low}, {high}]")
        return value

    return parse
