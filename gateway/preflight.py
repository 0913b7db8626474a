"""`check-config --connect`: the live systems a configuration names, checked one line per check in bounded time."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer
from aiokafka import codec as kafka_codec
from aiokafka.errors import KafkaError

from gateway.config import KafkaConfig, ProxyConfig
from gateway.destination import Destination, ResolvedConfig
from gateway.http_client import ssl_context
from gateway.kafka_security import client_security_kwargs, security_protocol
from gateway.waits import bounded

CODECS: dict[str, Callable[[], bool]] = {
    "gzip": kafka_codec.has_gzip,
    "snappy": kafka_codec.has_snappy,
    "lz4": kafka_codec.has_lz4,
    "zstd": kafka_codec.has_zstd,
}
"""The compressions a Kafka producer may use; the consumer must decode whichever the platform's producers chose."""


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked, and whether it passed."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """`ok    name: detail` or `FAIL  name: detail`."""
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


async def preflight(resolved: ResolvedConfig, limit: float, report: Callable[[Check], None]) -> bool:
    """Run every check, reporting each as it completes; True when all passed. Each check takes `limit` s at most."""
    checks: list[Check] = []
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its connection errors are this report's FAIL lines

    def record(check: Check) -> None:
        checks.append(check)
        report(check)

    kafka = resolved.gateway.kafka
    parking = [d.parking_topic(kafka.group_prefix) for d in resolved.destinations if d.parks]
    await _kafka(kafka, limit, record, parking)
    for name, available in CODECS.items():
        record(codec_check(name, available()))
    results = await asyncio.gather(*(_vendor(destination, limit) for destination in resolved.destinations))
    for destination_checks in results:
        for check in destination_checks:
            record(check)
    return all(check.ok for check in checks)


def codec_check(name: str, available: bool) -> Check:
    """Whether the consumer can decode messages a producer compressed with `name`."""
    if available:
        return Check(f"codec {name}", True, "available")
    return Check(
        f"codec {name}",
        False,
        f"not installed: a message compressed with {name} could not be read (aiokafka needs `cramjam` for "
        "snappy, lz4 and zstd)",
    )


async def _kafka(
    kafka: KafkaConfig, limit: float, record: Callable[[Check], None], parking: Sequence[str] = ()
) -> None:
    """Connect (and authenticate) as the gateway would, then look for the source, dead-letter and parking topics (a
    missing parking topic is created by the gateway at start: reported, not a failure)."""
    servers = ",".join(kafka.servers)
    protocol = security_protocol(kafka.security)
    security = client_security_kwargs(kafka.security)
    client = AIOKafkaConsumer(
        bootstrap_servers=kafka.servers,
        client_id=f"{kafka.client_id}.preflight",
        enable_auto_commit=False,
        request_timeout_ms=max(1000, int(limit * 1000)),
        **security,
    )
    started = time.monotonic()
    try:
        await bounded(limit, client.start())
        topics = await bounded(limit, client.topics())
    except TimeoutError:
        record(Check("kafka", False, f"no answer from {servers} ({protocol}) within {limit:g} s"))
        await _stop(client)
        return
    except (KafkaError, OSError, ssl.SSLError) as error:
        # aiokafka reports every bootstrap failure alike ("Unable to bootstrap"): a direct connection to the first
        # server, with the same TLS context, says why (refused, certificate not trusted, certificate required).
        reason = await _connection_failure(kafka.servers[0], security.get("ssl_context"), limit)
        detail = reason or _describe(error)
        record(Check("kafka", False, f"cannot connect to {servers} ({protocol}): {detail}"))
        await _stop(client)
        return
    elapsed = time.monotonic() - started
    authenticated = " and authenticated" if kafka.security.sasl is not None else ""
    record(Check("kafka", True, f"connected{authenticated} to {servers} ({protocol}) in {elapsed:.1f} s"))
    for topic, role in _topics(kafka):
        if topic in topics:
            partitions = client.partitions_for_topic(topic) or set()
            record(Check(f"kafka topic {topic}", True, f"exists ({role}, {len(partitions)} partition(s))"))
        else:
            record(Check(f"kafka topic {topic}", False, f"does not exist ({role}): create it before starting"))
    for topic in parking:
        if topic in topics:
            partitions = client.partitions_for_topic(topic) or set()
            record(Check(f"kafka topic {topic}", True, f"exists (parking topic, {len(partitions)} partition(s))"))
        else:
            detail = "does not exist (parking topic): the gateway creates it at start (needs CreateTopics on it)"
            record(Check(f"kafka topic {topic}", True, detail))
    await _stop(client)


async def _connection_failure(server: str, context: ssl.SSLContext | None, limit: float) -> str:
    """Why a TCP (and TLS) connection to `server` fails, or "" when it succeeds (then Kafka itself refused)."""
    host, _, port = server.rpartition(":")
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(
                host.strip("[]"), int(port), ssl=context, server_hostname=host.strip("[]") if context else None
            )
            closed = False
            if context is not None:
                # TLS 1.3 refuses a missing client certificate after the handshake (an alert, or just a close): a
                # Kafka broker never speaks first, so anything but a timeout here means the broker hung up.
                with contextlib.suppress(TimeoutError):
                    closed = await bounded(min(1.0, limit), reader.read(1)) == b""
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    except TimeoutError:
        return f"no answer within {limit:g} s"
    except ssl.SSLCertVerificationError as error:
        return f"TLS: the broker's certificate is not trusted ({error.verify_message})"
    except ssl.SSLError as error:
        return f"TLS: {error.reason or type(error).__name__}"
    except OSError as error:
        return error.strerror or type(error).__name__
    if closed:
        return (
            "TLS: the broker closed the connection after the handshake; it probably requires a client certificate "
            "(kafka.security.tls.cert_file and key_file)"
        )
    return ""


def _topics(kafka: KafkaConfig) -> Iterator[tuple[str, str]]:
    for topic in kafka.topics:
        yield topic, "source"
    yield kafka.dlq_topic, "dead-letter topic"


async def _stop(client: AIOKafkaConsumer) -> None:
    # The report is what matters; a client that cannot even stop cleanly changes nothing in it.
    with contextlib.suppress(TimeoutError, KafkaError, OSError):
        await bounded(5, client.stop())


def _describe(error: BaseException) -> str:
    """The failure in a few words; never the error's arguments, which may quote a SASL exchange."""
    text = str(error)
    if isinstance(error, ssl.SSLError) and error.reason:
        return f"TLS: {error.reason}"
    if isinstance(error, KafkaError) and text and len(text) < 300:
        return text if text.startswith(type(error).__name__) else f"{type(error).__name__}: {text}"
    return type(error).__name__


async def _vendor(destination: Destination, limit: float) -> list[Check]:
    """DNS and a TLS handshake towards the destination's base_url (through its proxy, when it has one)."""
    name = destination.name
    base_url = destination.config.base_url
    if not base_url:
        return [Check(name, True, "no vendor host to reach (the vendor pulls from the gateway)")]
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    tls = parts.scheme == "https"
    proxy = destination.config.proxy
    context = _tls_context(destination) if tls else None
    verified = destination.config.tls.verify
    if proxy is not None:
        where = f"{host}:{port} via proxy {_proxy_host(proxy)}"
        return [await _bounded(name, where, limit, _through_proxy(proxy, host, port, context, verified))]
    checks = [await _bounded(name, f"resolve {host}", limit, _resolve(host, port))]
    if not checks[0].ok:
        return checks
    what = f"TLS handshake with {host}:{port}" if tls else f"TCP connection to {host}:{port} (plain HTTP, no TLS)"
    checks.append(await _bounded(name, what, limit, _connect(host, port, context, verified)))
    return checks


def _tls_context(destination: Destination) -> ssl.SSLContext:
    """The context the HTTP client would use: system trust plus tls.ca_file, or no verification when switched off."""
    context = ssl_context(destination.config.tls.verify, _ca_file(destination))
    if isinstance(context, ssl.SSLContext):
        return context
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    return unverified


def _ca_file(destination: Destination) -> str | None:
    return str(destination.config.tls.ca_file) if destination.config.tls.ca_file else None


def _proxy_host(proxy: ProxyConfig) -> str:
    parts = urlsplit(proxy.url)
    return f"{parts.hostname}:{parts.port or 80}"


async def _bounded(name: str, what: str, limit: float, work: Awaitable[str]) -> Check:
    try:
        return Check(name, True, f"{what}: {await bounded(limit, work)}")
    except TimeoutError:
        return Check(name, False, f"{what}: no answer within {limit:g} s")
    except ssl.SSLCertVerificationError as error:
        return Check(name, False, f"{what}: certificate not trusted ({error.verify_message})")
    except ssl.SSLError as error:
        return Check(name, False, f"{what}: TLS failed ({error.reason or type(error).__name__})")
    except OSError as error:
        return Check(name, False, f"{what}: {error.strerror or type(error).__name__}")
    except ProxyRefused as error:
        return Check(name, False, f"{what}: {error}")


async def _resolve(host: str, port: int) -> str:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=0, proto=0)
    addresses = sorted({str(info[4][0]) for info in infos})
    return ", ".join(addresses[:4]) + (" ..." if len(addresses) > 4 else "")


async def _connect(host: str, port: int, context: ssl.SSLContext | None, verified: bool) -> str:
    _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host if context else None)
    return await _closed(writer, context, verified)


async def _closed(writer: asyncio.StreamWriter, context: ssl.SSLContext | None, verified: bool) -> str:
    tls = writer.get_extra_info("ssl_object")
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    if context is None:
        return "connected"
    trust = "certificate verified" if verified else "certificate NOT verified (tls.verify: false)"
    return f"{tls.version() if tls is not None else 'TLS'}, {trust}"


class ProxyRefused(Exception):
    """The proxy answered CONNECT with something other than 2xx."""


async def _through_proxy(
    proxy: ProxyConfig, host: str, port: int, context: ssl.SSLContext | None, verified: bool
) -> str:
    """CONNECT through the proxy (as the HTTP client does for https targets), then the TLS handshake in the tunnel."""
    parts = urlsplit(proxy.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if proxy.username:
        secret = proxy.password.get_secret_value() if proxy.password else ""
        token = base64.b64encode(f"{proxy.username}:{secret}".encode()).decode("ascii")
        request += f"Proxy-Authorization: Basic {token}\r\n"
    writer.write((request + "\r\n").encode())
    await writer.drain()
    status_line = (await reader.readline()).decode("latin-1").strip()
    while (await reader.readline()).strip():
        pass  # the proxy's response headers
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[1].startswith("2"):
        await _closed(writer, None, verified)
        raise ProxyRefused(f"the proxy refused CONNECT: {status_line[:100] or 'no answer'}")
    if context is not None:
        await writer.start_tls(context, server_hostname=host)
    return await _closed(writer, context, verified)
