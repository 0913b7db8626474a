"""deploy/docker: the Dockerfile's structure (no Docker engine runs here), checked against the repository."""

from __future__ import annotations

import fnmatch
import shlex
import tomllib

import pytest

from gateway import binding
from tests.deploy.dockerfile import Stage, healthcheck_command, parse
from tests.deploy.tools import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "clang", "cargo", "rustc", "curl", "wget", "git")


def stages() -> list[Stage]:
    """The Dockerfile's stages."""
    return parse(DOCKERFILE)


def runtime() -> Stage:
    """The final stage: what the image is."""
    return stages()[-1]


def dockerignore() -> list[str]:
    """.dockerignore patterns."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_multi_stage_on_a_slim_python() -> None:
    """A build stage and a runtime stage, both on the slim Python the project supports (3.11+)."""
    found = stages()
    assert len(found) >= 2
    for stage in found:
        assert stage.base.startswith("python:3.1") and "-slim" in stage.base, stage.base
    assert runtime().all("COPY")[0].arguments.startswith("--from=build ")


def test_copied_files_exist_and_are_not_ignored() -> None:
    """Every path the build copies from the context exists and .dockerignore does not drop it."""
    ignored = dockerignore()
    sources = []
    for stage in stages():
        for copy in stage.all("COPY"):
            words = [w for w in shlex.split(copy.arguments) if not w.startswith("--")]
            if copy.arguments.startswith("--from="):
                continue
            sources.extend(words[:-1])
    assert {"pyproject.toml", "constraints.txt", "gateway", "connectors"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
    assert {".git", ".venv"} <= set(ignored)


def test_runtime_runs_as_a_non_root_user() -> None:
    """The last USER is a numeric non-root uid created in the same stage."""
    users = runtime().all("USER")
    assert users, "no USER in the runtime stage"
    uid = users[-1].arguments.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    created = " ".join(run.arguments for run in runtime().all("RUN"))
    assert f"--uid {uid}" in created


def test_no_build_tools_in_the_runtime_stage() -> None:
    """The runtime stage installs nothing: no package manager calls, no compilers, no curl/wget."""
    for run in runtime().all("RUN"):
        words = set(shlex.split(run.arguments))
        assert not words & {"apt-get", "apt", "pip", "apk"}, run.arguments
        assert not words & set(BUILD_TOOLS), run.arguments


def test_entrypoint_is_the_console_script_running_the_mounted_config() -> None:
    """ENTRYPOINT names the `gateway` console script from pyproject; CMD runs the mounted config."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = runtime().all("ENTRYPOINT")[-1].exec_form()
    assert entrypoint == ["gateway"]
    assert entrypoint[0] in scripts
    assert runtime().all("CMD")[-1].exec_form() == ["run", "--config", "/etc/event-gateway/config.yaml"]


def test_smoke_step_and_healthcheck() -> None:
    """`gateway --version` runs at build time; HEALTHCHECK calls /healthz with Python (the slim image has no curl)."""
    assert any(run.arguments == "gateway --version" for run in runtime().all("RUN"))
    form = healthcheck_command(runtime())
    assert form[0] == "python"
    assert "GATEWAY_HEALTHZ_URL" in form[2]
    env = " ".join(i.arguments for i in runtime().all("ENV"))
    assert "GATEWAY_HEALTHZ_URL=http://127.0.0.1:9108/healthz" in env


def test_the_image_listens_on_every_interface_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image sets GATEWAY_HTTP_LISTEN=0.0.0.0:9108, which a config without http.listen takes (probes reach it)."""
    env = " ".join(i.arguments for i in runtime().all("ENV"))
    assert "GATEWAY_HTTP_LISTEN=0.0.0.0:9108" in env
    assert any(i.arguments.startswith("9108") for i in runtime().all("EXPOSE"))
    tree = {
        "kafka": {"bootstrap_servers": "kafka:9092", "topics": ["events"], "dlq_topic": "events.dlq"},
        "destinations": [
            {"name": "unibo", "connector": "unibo", "credentials": {"default": {"api_key": "unibo-key-0123456789"}}}
        ],
    }
    monkeypatch.delenv("GATEWAY_HTTP_LISTEN", raising=False)
    assert binding.parse(tree, env={}).gateway.http.listen == "127.0.0.1:9108"  # outside a container
    monkeypatch.setenv("GATEWAY_HTTP_LISTEN", "0.0.0.0:9108")
    resolved = binding.parse(tree, env={})
    assert resolved.gateway.http.listen == "0.0.0.0:9108"
    assert not resolved.warnings
    tree["http"] = {"listen": "0.0.0.0:9200"}
    assert binding.parse(tree, env={}).gateway.http.listen == "0.0.0.0:9200"  # the file wins


def test_the_image_carries_its_version() -> None:
    """The runtime stage labels the image with the package version, which the build is documented to tag."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"ARG VERSION={version}" in [f"ARG {i.arguments}" for i in runtime().all("ARG")]
    assert any("org.opencontainers.image.version" in i.arguments for i in runtime().all("LABEL"))
    assert f"-t event-gateway:{version} ." in DOCKERFILE.read_text()


def test_the_image_installs_the_runtime_only() -> None:
    """The build installs the project without extras (no test broker) from gateway/ and connectors/, never devkit/."""
    installs = [run.arguments for stage in stages() for run in stage.all("RUN") if "pip install" in run.arguments]
    assert installs and all(shlex.split(command)[-1] == "." for command in installs), installs
    assert all("--constraint constraints.txt" in command for command in installs), installs  # the pinned set
    copied = " ".join(copy.arguments for stage in stages() for copy in stage.all("COPY"))
    assert "devkit" not in copied and "tests" not in copied
    assert any(fnmatch.fnmatch("connectors/unibo/tests", pattern) for pattern in dockerignore())


def test_the_devkit_image_adds_the_devkit_and_its_extra() -> None:
    """The sandbox image (deploy/compose's stand-in vendor) is built from devkit/ with the `demo` extra."""
    (devkit,) = parse(DEPLOY / "docker" / "devkit.Dockerfile")
    copied = {source for copy in devkit.all("COPY") for source in shlex.split(copy.arguments)[:-1]}
    assert {"constraints.txt", "gateway", "connectors", "devkit"} <= copied
    installs = [run.arguments for run in devkit.all("RUN") if "pip install" in run.arguments]
    assert any("pip install '.[demo]'" in command for command in installs)
    assert installs and all("--constraint constraints.txt" in command for command in installs), installs
    assert devkit.all("ENTRYPOINT")[-1].exec_form() == ["gateway"]
    assert devkit.all("CMD")[-1].exec_form()[0] == "sandbox"
