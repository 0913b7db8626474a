"""Reading a configuration file: YAML, ${VAR} interpolation, and every problem in one report naming each key."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gateway.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; ConfigError with the position on a syntax error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        # The parser's own words ("mapping values are not allowed here") say what to fix; the snippet it quotes is
        # left out, since the offending line may hold a secret.
        reason = "; ".join(
            str(part) for part in (getattr(error, "context", None), getattr(error, "problem", None)) if part
        )
        raise ConfigError(f"{path}: not valid YAML{where}{': ' + reason if reason else ''}") from None


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str], path: str = "", problems: Problems | None = None) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of a parsed YAML tree; `$$` is a literal `$`.

    A variable that is unset and has no default raises ConfigError, or, with `problems`, is reported there (and its
    value left empty) so that one run lists every missing variable.
    """
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            message = f"environment variable {name} is not set and has no default"
            if problems is None:
                raise ConfigError(f"{path or '<root>'}: {message}")
            problems.unset(path, message)
            return ""

        return _VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {key: interpolate(item, env, _join(path, str(key)), problems) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env, f"{path}[{index}]", problems) for index, item in enumerate(value)]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _location(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    return path or "<root>"


def format_errors(
    error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None, known: Iterable[str] = ()
) -> str:
    """One line per problem, each naming the key; input values are never echoed (they may be secrets)."""
    return "\n".join(f"{path}: {message}" for path, message in _error_lines(error, prefix, model, tuple(known)))


def _error_lines(
    error: ValidationError, prefix: str, model: type[BaseModel] | None, known: tuple[str, ...]
) -> list[tuple[str, str]]:
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        loc = tuple(item["loc"])
        if item["type"] == "extra_forbidden":
            candidates = _keys_at(model, loc[:-1]) if model is not None else set()
            if len(loc) == 1:
                candidates |= set(known)
            message = "unknown key" + _did_you_mean(str(loc[-1]), candidates)
        else:
            message = item["msg"].removeprefix("Value error, ")
        lines.append((_location(prefix, loc), message))
    return lines


def _did_you_mean(key: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _keys_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> set[str]:
    """The keys a model accepts at `loc` (inside nested models, lists and dicts), for "did you mean"."""
    annotations: list[Any] = [model]
    for part in loc:
        annotations = [inner for annotation in annotations for inner in _descend(annotation, part)]
    keys: set[str] = set()
    for annotation in _flatten(annotations):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= set(annotation.model_fields)
    return keys


def _flatten(annotations: Iterable[Any]) -> list[Any]:
    flat = []
    for annotation in annotations:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType) or origin is typing.Annotated:
            args = typing.get_args(annotation)
            flat.extend(_flatten(args if origin is not typing.Annotated else args[:1]))
        else:
            flat.append(annotation)
    return flat


def _descend(annotation: Any, part: int | str) -> list[Any]:
    found = []
    for candidate in _flatten([annotation]):
        origin, args = typing.get_origin(candidate), typing.get_args(candidate)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            if isinstance(part, str) and part in candidate.model_fields:
                found.append(candidate.model_fields[part].annotation)
            elif part == candidate.__name__:  # a union member's tag in the error location
                found.append(candidate)
        elif origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
            found.append(args[0])
        elif origin is dict and len(args) == 2:
            found.append(args[1])
    return found


class Problems:
    """Every problem of a configuration, gathered in one pass so one run of check-config lists them all."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._unset: list[str] = []

    def unset(self, path: str, message: str) -> None:
        """An unset variable: reported once; later complaints about the empty value it left are not repeated."""
        self.error(path, message)
        self._unset.append(path)

    def error(self, path: str, message: str) -> None:
        """Record an error at `path` (a key such as destinations[0].base_url)."""
        if not self._follows_unset(path):
            self.errors.append(f"{path or '<root>'}: {message}")

    def warning(self, path: str, message: str) -> None:
        """Record something that works but is probably not what the operator wants."""
        self.warnings.append(f"{path or '<root>'}: {message}")

    def _follows_unset(self, path: str) -> bool:
        return any(path == unset or path.startswith((unset + ".", unset + "[")) for unset in self._unset)

    def validate(
        self, model: type[ModelT], data: Any, prefix: str, *, known: Iterable[str] = (), report: bool = True
    ) -> ModelT | None:
        """`data` validated by `model`, or None with its errors recorded (unless `report` is False)."""
        try:
            return model.model_validate(data)
        except ValidationError as error:
            if report:
                for path, message in _error_lines(error, prefix, model, tuple(known)):
                    self.error(path, message)
            return None

    def check(self) -> None:
        """Raise ConfigError listing every error, if there is any."""
        if self.errors:
            raise ConfigError("\n".join(self.errors))
