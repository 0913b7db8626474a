"""Value objects that the type checker holds immutable and the hot path builds cheaply.

A frozen dataclass's `__init__` sets every field through `object.__setattr__`: building a `SendResult` costs 963 ns
that way against 235 ns with plain slots, and the delivery path builds several objects like it per request. So
`@immutable` is `@dataclass(frozen=True, slots=True)` to mypy (assigning a field is a type error, checked in
`make test`) and plain `@dataclass(slots=True)` at run time. Like a frozen dataclass with mutable-looking fields, the
instances are not hashable at run time unless a class says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def immutable(cls: type[T]) -> type[T]:
    """Make `cls` a slotted dataclass that mypy treats as frozen (see the module docstring)."""
    return dataclass(slots=True)(cls)
