"""Typed, range-checked parameters for the book's notebooks.

Each parametrized notebook ``notebooks/<name>.ipynb`` declares its parameters once, in
``tdyn/specs/<name>.yaml``.  The notebook checks the values in effect (its ``parameters``
cell plus anything papermill injected) with :func:`notebook_parameters`; a runner checks
requested values with :meth:`ParameterSpec.validate` before any work starts.  Both read the
same file, so a value the notebook would reject is rejected before a kernel even starts.

A spec file maps each parameter name to a mapping with keys ``type`` (int, float, str, bool),
``default``, ``help`` and, optionally, ``min``, ``max`` (inclusive) and ``choices``.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}
_FIELDS = {"type", "default", "help", "min", "max", "choices"}
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
        return value


@dataclass(frozen=True)
class ParameterSpec:
    """The declared parameters of one notebook."""

    name: str
    parameters: dict[str, Parameter]

    @classmethod
    def from_mapping(cls, name: str, raw: Mapping[str, Mapping[str, Any]]) -> ParameterSpec:
        """Build a spec from the parsed YAML mapping; malformed declarations raise ValueError."""
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
            )
            param.check(param.default)  # a spec whose default is invalid is a bug
            parameters[pname] = param
        return cls(name=name, parameters=parameters)

    @classmethod
    def load(cls, name: str) -> ParameterSpec:
        """Load ``tdyn/specs/<name>.yaml``; an unknown name lists the specs that exist."""
        folder = resources.files("tdyn") / "specs"
        path = folder / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir()
                           if p.name.endswith(".yaml"))
            raise ValueError(f"no parameter spec named {name!r}; known: {known}")
        return cls.from_mapping(name, yaml.safe_load(path.read_text()) or {})

    def defaults(self) -> dict[str, Any]:
        """The default value of every parameter."""
        return {p.name: p.default for p in self.parameters.values()}

    def validate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``values`` and return the full parameter set (defaults filled in).

        Raises :class:`ParameterError` naming the first unknown, ill-typed or out-of-range
        parameter, its value and what is allowed.
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
        return full


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
