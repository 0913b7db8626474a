"""Reading a configuration file: YAML, ${VAR} interpolation, and error messages that name the offending key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.errors import ConfigError


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
        raise ConfigError(f"{path}: not valid YAML{where}") from None


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of a parsed YAML tree; `$$` is a literal `$`."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{path or '<root>'}: environment variable {name} is not set and has no default")

        return _VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {key: interpolate(item, env, _join(path, str(key))) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env, f"{path}[{index}]") for index, item in enumerate(value)]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _location(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    return path or "<root>"


def format_errors(error: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the key; input values are never echoed (they may be secrets)."""
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{_location(prefix, item['loc'])}: {message}")
    return "\n".join(lines)
