"""A small Dockerfile reader for the container tests: stages and their instructions (no Docker engine runs here)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    """One instruction: its keyword and its arguments text (continuations joined)."""

    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON (exec) form's list; fails for the shell form."""
        value = json.loads(self.arguments)
        assert isinstance(value, list), self.arguments
        return [str(item) for item in value]


@dataclass
class Stage:
    """A build stage: its base image, its name and its instructions."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """The stage's instructions with this keyword."""
        return [i for i in self.instructions if i.keyword == keyword]


def parse(path: Path) -> list[Stage]:
    """The stages of a Dockerfile, in order."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = shlex.split(arguments)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append(Instruction(keyword, arguments.strip()))
    return stages


def healthcheck_command(stage: Stage) -> list[str]:
    """The exec form of the stage's HEALTHCHECK CMD."""
    arguments = stage.all("HEALTHCHECK")[-1].arguments
    return Instruction("CMD", arguments[arguments.index("CMD ") + 4 :]).exec_form()
