"""`check-config --connect` against the real broker, real TLS servers and a real CONNECT proxy."""

from __future__ import annotations

import asyncio
import contextlib
import io
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from devkit.sandbox.server import SandboxServer
from devkit.testbed.broker import BrokerTls, EmbeddedBroker, ThrowawayPki, make_throwaway_pki
from devkit.testbed.ports import free_port
from gateway.cli import main
from gateway.kafka_security import KafkaSecurity, client_security_kwargs
from gateway.preflight import CODECS

ALL_CODECS = all(available() for available in CODECS.values())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayPki:
    """A throwaway CA with a server certificate for 127.0.0.1 and localhost."""
    return make_throwaway_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def https_url(pki: ThrowawayPki) -> AsyncIterator[str]:
    """An HTTPS server with a certificate from the throwaway CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert_file, pki.server_key_file)
    async with SandboxServer(web.Application(), ssl_context=context) as server:
        yield server.url


def destination(name: str, connector: str, base_url: str, **extra: Any) -> dict[str, Any]:
    """A push destination with real-looking credentials."""
    credentials = {"api_key": f"{name}-key-0123456789"}
    if connector == "userwise":
        credentials["secret_key"] = f"{name}-secret-0123456789"
    return {
        "name": name,
        "connector": connector,
        "base_url": base_url,
        "credentials": {"default": credentials},
        **extra,
    }


def write_config(
    path: Path, servers: str, topic: str, *destinations: dict[str, Any], security: dict[str, Any] | None = None
) -> Path:
    """A configuration file reading `topic`, dead-lettering to `topic`.dlq."""
    tree = {
        "kafka": {
            "bootstrap_servers": servers,
            "topics": [topic],
            "dlq_topic": f"{topic}.dlq",
            "security": security or {},
        },
        "http": {"listen": "0.0.0.0:0"},
        "destinations": list(destinations),
    }
    path.write_text(yaml.safe_dump(tree))
    return path


async def connect(path: Path, limit: float = 5.0) -> tuple[int, list[str]]:
    """Run `gateway check-config --connect` in-process (in a thread: it runs its own event loop); status and lines."""
    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            return main(["check-config", "--connect", "--timeout", str(limit), "--config", str(path)])

    status = await asyncio.wait_for(asyncio.to_thread(run), 60)
    return status, [line for line in out.getvalue().splitlines() if line.startswith(("ok  ", "FAIL"))]


def closed_port() -> int:
    """A local port with nothing listening."""
    return free_port()


async def test_every_check_passes_against_live_systems(
    broker: EmbeddedBroker, topic: str, https_url: str, pki: ThrowawayPki, tmp_path: Path
) -> None:
    """Kafka connects, both topics exist, the vendor host resolves and its certificate verifies with tls.ca_file."""
    path = write_config(
        tmp_path / "gateway.yaml",
        broker.bootstrap_servers,
        topic,
        destination("unibo", "unibo", https_url, tls={"ca_file": str(pki.ca_file)}),
    )
    status, lines = await connect(path)
    port = https_url.rsplit(":", 1)[1]
    assert lines[0].startswith(f"ok    kafka: connected to {broker.bootstrap_servers} (PLAINTEXT)"), lines
    assert f"ok    kafka topic {topic}: exists (source, 3 partition(s))" in lines
    assert f"ok    kafka topic {topic}.dlq: exists (dead-letter topic, 1 partition(s))" in lines
    assert "ok    codec gzip: available" in lines
    assert "ok    unibo: resolve 127.0.0.1: 127.0.0.1" in lines
    assert any(line.startswith(f"ok    unibo: TLS handshake with 127.0.0.1:{port}: TLSv1.") for line in lines), lines
    assert any(line.endswith("certificate verified") for line in lines)
    assert status == (0 if ALL_CODECS else 4)
    assert not ALL_CODECS or not any(line.startswith("FAIL") for line in lines)


async def test_each_failure_gets_its_own_line_and_a_non_zero_exit(
    broker: EmbeddedBroker, topic: str, https_url: str, tmp_path: Path
) -> None:
    """A missing dead-letter topic, an untrusted certificate, an unknown host and a closed port: each is one FAIL."""
    missing = f"{topic}-not-there"
    await broker.create_topic(missing, partitions=1)  # the source exists; its dead-letter topic does not
    path = write_config(
        tmp_path / "gateway.yaml",
        broker.bootstrap_servers,
        missing,
        destination("untrusted", "unibo", https_url),
        destination("nohost", "enable3", "https://no-such-host.invalid"),
        destination("closed", "userwise", f"https://127.0.0.1:{closed_port()}"),
    )
    status, lines = await connect(path)
    assert status == 4
    assert f"FAIL  kafka topic {missing}.dlq: does not exist (dead-letter topic): create it before starting" in lines
    assert any(line.startswith("FAIL  untrusted: TLS handshake with 127.0.0.1:") for line in lines), lines
    assert any("certificate not trusted" in line for line in lines)
    assert any(line.startswith("FAIL  nohost: resolve no-such-host.invalid: ") for line in lines), lines
    assert any(line.startswith("FAIL  closed: TLS handshake with 127.0.0.1:") for line in lines), lines
    assert not any("key-0123456789" in line or "secret-0123456789" in line for line in lines)


async def test_unreachable_kafka_fails_within_the_bound(topic: str, tmp_path: Path) -> None:
    """Nothing listening at the bootstrap address: one FAIL line for Kafka and exit 4, not a hang."""
    servers = f"127.0.0.1:{closed_port()}"
    path = write_config(tmp_path / "gateway.yaml", servers, topic, destination("unibo", "unibo", "http://127.0.0.1:1"))
    status, lines = await connect(path, limit=2)
    assert status == 4
    assert lines[0].startswith("FAIL  kafka: "), lines
    assert servers in lines[0]
    assert not any(line.startswith("ok    kafka topic") for line in lines)


async def _connect_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A minimal HTTP CONNECT proxy requiring Proxy-Authorization (what an egress proxy does)."""
    head = []
    while line := (await reader.readline()).decode("latin-1").strip():
        head.append(line)
    if not any(line.lower().startswith("proxy-authorization: basic ") for line in head):
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
        writer.close()
        return
    host, port = head[0].split()[1].rsplit(":", 1)
    upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def test_vendor_behind_a_proxy_is_checked_through_it(
    broker: EmbeddedBroker, topic: str, https_url: str, pki: ThrowawayPki, tmp_path: Path
) -> None:
    """With a proxy, the TLS handshake happens inside the proxy's CONNECT tunnel; a refused CONNECT is a FAIL."""
    server = await asyncio.start_server(_connect_proxy, "127.0.0.1", 0)
    proxy_port = server.sockets[0].getsockname()[1]
    async with server:
        good = {"url": f"http://127.0.0.1:{proxy_port}", "username": "gw", "password": "proxy-pass-0123456789"}
        path = write_config(
            tmp_path / "gateway.yaml",
            broker.bootstrap_servers,
            topic,
            destination("viaproxy", "unibo", https_url, tls={"ca_file": str(pki.ca_file)}, proxy=good),
            destination("noauth", "enable3", https_url, proxy=f"http://127.0.0.1:{proxy_port}"),
        )
        status, lines = await connect(path)
    assert status == 4
    port = https_url.rsplit(":", 1)[1]
    assert any(
        line.startswith(f"ok    viaproxy: 127.0.0.1:{port} via proxy 127.0.0.1:{proxy_port}: TLSv1.") for line in lines
    ), lines
    assert any("the proxy refused CONNECT: HTTP/1.1 407" in line and line.startswith("FAIL  noauth") for line in lines)
    assert not any("proxy-pass" in line for line in lines)


@pytest.fixture(scope="module")
def mtls_broker(pki: ThrowawayPki) -> Iterator[EmbeddedBroker]:
    """A broker that requires TLS and a client certificate from the throwaway CA."""
    tls = BrokerTls(pki.server_cert_file, pki.server_key_file, client_ca_file=pki.ca_file)
    with EmbeddedBroker(tls=tls) as embedded:
        yield embedded


async def test_kafka_over_mutual_tls_connects_only_with_the_right_certificates(
    mtls_broker: EmbeddedBroker, pki: ThrowawayPki, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With the CA and a client certificate the check connects (SSL); without the certificate, or trusting another
    CA, it fails on the Kafka line within the bound."""
    good = {
        "tls": {
            "enabled": True,
            "ca_file": str(pki.ca_file),
            "cert_file": str(pki.client_cert_file),
            "key_file": str(pki.client_key_file),
        }
    }
    topic = "preflight-mtls"
    options: dict[str, Any] = client_security_kwargs(KafkaSecurity.model_validate(good))
    await mtls_broker.create_topic(topic, 2, client_options=options)
    await mtls_broker.create_topic(f"{topic}.dlq", 1, client_options=options)
    servers = mtls_broker.bootstrap_servers
    plain = destination("unibo", "unibo", "http://127.0.0.1:1")
    _, lines = await connect(write_config(tmp_path / "good.yaml", servers, topic, plain, security=good))
    assert lines[0].startswith(f"ok    kafka: connected to {servers} (SSL)"), lines
    assert f"ok    kafka topic {topic}: exists (source, 2 partition(s))" in lines

    no_certificate = {"tls": {"enabled": True, "ca_file": str(pki.ca_file)}}
    other = make_throwaway_pki(tmp_path_factory.mktemp("other-pki"), name="someone else")
    untrusted = {"tls": {**good["tls"], "ca_file": str(other.ca_file)}}
    for name, security in (("no-certificate", no_certificate), ("untrusted", untrusted)):
        path = write_config(tmp_path / f"{name}.yaml", servers, topic, plain, security=security)
        status, lines = await connect(path, limit=3)
        assert status == 4, name
        assert lines[0].startswith("FAIL  kafka: "), (name, lines)
        assert ("client certificate" if name == "no-certificate" else "certificate is not trusted") in lines[0]
        assert not any(line.startswith("ok    kafka topic") for line in lines), name
