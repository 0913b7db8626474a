"""The embedded Tansu broker, and the gateway's Kafka security settings against it (plaintext, TLS, mTLS, SASL)."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError

from devkit.testbed.broker import (
    BrokerError,
    BrokerTls,
    EmbeddedBroker,
    ThrowawayPki,
    find_tansu_binary,
    make_throwaway_pki,
)
from gateway.kafka_security import KafkaSecurity, KafkaTls, client_security_kwargs

# A safety net so a broken broker fails the test instead of hanging it; no assertion depends on it.
SAFETY_TIMEOUT_S = 60
# Tansu holds every JoinGroup for about half the session timeout (aiokafka's default 10 s -> 5 s per join);
# 6 s (Kafka's own minimum) keeps joins at ~3 s without making heartbeats tight.
GROUP_OPTIONS: dict[str, Any] = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


# ---------------------------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    """A plaintext broker shared by the module's plaintext tests."""
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayPki:
    """The CA the TLS brokers' certificates chain to, with a client certificate."""
    return make_throwaway_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayPki:
    """An unrelated CA (and client certificate) the brokers do not trust."""
    return make_throwaway_pki(tmp_path_factory.mktemp("other-pki"), name="someone else")


@pytest.fixture(scope="module")
def tls_broker(pki: ThrowawayPki) -> Iterator[EmbeddedBroker]:
    """A broker that only speaks TLS, with a server certificate for 127.0.0.1."""
    with EmbeddedBroker(tls=BrokerTls(pki.server_cert_file, pki.server_key_file)) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def mtls_broker(pki: ThrowawayPki) -> Iterator[EmbeddedBroker]:
    """A TLS broker that also requires a client certificate signed by `pki`."""
    tls = BrokerTls(pki.server_cert_file, pki.server_key_file, client_ca_file=pki.ca_file)
    with EmbeddedBroker(tls=tls) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def auth_broker() -> Iterator[EmbeddedBroker]:
    """A broker started with Tansu's --authentication."""
    with EmbeddedBroker(authentication=True) as embedded:
        yield embedded


# ---------------------------------------------------------------------------------------------------------------------
# helpers


async def produce_consume_commit(
    bootstrap: str, topic: str, options: dict[str, Any], *, partitions: int = 1
) -> dict[int, int | None]:
    """Produce two records per partition, consume them in a group, commit, and read the commits back as a new member."""
    expected = {partition: [f"{topic}-{partition}-{i}".encode() for i in range(2)] for partition in range(partitions)}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options)
    await producer.start()
    try:
        for partition, values in expected.items():
            for value in values:
                await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()

    group = f"{topic}-group"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **GROUP_OPTIONS,
        **options,
    )
    await consumer.start()
    received: dict[int, list[bytes]] = {partition: [] for partition in expected}
    try:
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            while sum(map(len, received.values())) < sum(map(len, expected.values())):
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    received[tp.partition].extend(record.value for record in records if record.value is not None)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert received == expected

    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **GROUP_OPTIONS, **options
    )
    await reader.start()
    try:
        return {partition: await reader.committed(TopicPartition(topic, partition)) for partition in expected}
    finally:
        await reader.stop()


async def assert_cannot_connect(bootstrap: str, options: dict[str, Any]) -> None:
    """Assert that an aiokafka producer with `options` cannot bootstrap from `bootstrap`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10_000, **options)
    try:
        with pytest.raises(KafkaConnectionError):
            await producer.start()
    finally:
        await producer.stop()


def kafka_request(port: int, api_key: int, version: int, body: bytes, *, flexible: bool = False) -> bytes | None:
    """Send one raw Kafka request to 127.0.0.1:port; return the response body, or None if the broker hung up."""
    client_id = b"raw-probe"
    header = struct.pack(">hhih", api_key, version, 7, len(client_id)) + client_id + (b"\x00" if flexible else b"")
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY_TIMEOUT_S) as sock:
        sock.sendall(struct.pack(">i", len(header + body)) + header + body)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack_from(">i", data)[0]:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
    return data[8:]  # after the size and the correlation id (flexible response headers add a tag byte)


def sasl_handshake(port: int, mechanism: str) -> int | None:
    """SaslHandshake v1 for `mechanism`: the error code, or None if Tansu closed the connection instead of answering."""
    body = kafka_request(port, 17, 1, struct.pack(">h", len(mechanism)) + mechanism.encode())
    return None if body is None else int(struct.unpack_from(">h", body)[0])


def alter_scram_credentials(port: int, user: str) -> int | None:
    """AlterUserScramCredentials v0 upserting SCRAM-SHA-512 for `user`: its result code, or None if refused outright."""

    def compact(data: bytes) -> bytes:
        return bytes([len(data) + 1]) + data  # uvarint length + 1; fine for < 127 bytes

    upsertion = compact(user.encode()) + struct.pack(">bi", 2, 4096) + compact(b"s" * 16) + compact(b"p" * 64) + b"\0"
    body = kafka_request(port, 51, 0, b"\x01" + b"\x02" + upsertion + b"\x00", flexible=True)
    if body is None:
        return None
    # response: tag byte (header), throttle_time_ms, results count, user name, error_code
    name_length = body[6] - 1
    return int(struct.unpack_from(">h", body, 7 + name_length)[0])


# ---------------------------------------------------------------------------------------------------------------------
# the broker itself


async def test_produce_consume_commit_round_trip(broker: EmbeddedBroker) -> None:
    """A created two-partition topic carries records to a consumer group whose commits can be read back."""
    await broker.create_topic("round-trip", partitions=2)
    committed = await produce_consume_commit(broker.bootstrap_servers, "round-trip", {}, partitions=2)
    assert committed == {0: 2, 1: 2}

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        # Tansu answers OffsetFetch with explicit partitions; without them its reply breaks aiokafka's decoder.
        partitions = [TopicPartition("round-trip", 0), TopicPartition("round-trip", 1)]
        offsets = await admin.list_consumer_group_offsets("round-trip-group", partitions=partitions)
    finally:
        await admin.close()
    assert {tp.partition: meta.offset for tp, meta in offsets.items()} == {0: 2, 1: 2}


async def test_create_topic_refuses_an_existing_topic_unless_exist_ok(broker: EmbeddedBroker) -> None:
    """Creating a topic twice raises BrokerError, and succeeds quietly with exist_ok=True."""
    await broker.create_topic("created-twice")
    with pytest.raises(BrokerError, match="created-twice"):
        await broker.create_topic("created-twice")
    await broker.create_topic("created-twice", exist_ok=True)


async def test_tansu_auto_creates_topics_on_produce(broker: EmbeddedBroker) -> None:
    """Tansu silently creates an unknown topic, with four partitions, when a client first asks for its metadata."""
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        metadata = await producer.send_and_wait("never-created", b"x")
        partitions = await producer.partitions_for("never-created")
    finally:
        await producer.stop()
    assert (metadata.offset, partitions) == (0, {0, 1, 2, 3})


def test_stop_is_idempotent_reaps_the_process_and_frees_the_port() -> None:
    """stop() twice is harmless, leaves no process (not even a zombie) and releases the port and the temp log."""
    embedded = EmbeddedBroker()
    embedded.start()
    port, pid, log_path = embedded.port, embedded.pid, embedded.log_path
    assert embedded.running and pid is not None and log_path is not None and log_path.exists()

    embedded.stop()
    embedded.stop()

    assert not embedded.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: a zombie would still accept signal 0
    with socket.create_server(("127.0.0.1", port)):
        pass
    assert not log_path.exists()
    with pytest.raises(BrokerError, match="single-use"):
        embedded.start()


async def test_async_context_manager_starts_and_stops() -> None:
    """`async with EmbeddedBroker()` yields a running broker and stops it on exit."""
    async with EmbeddedBroker() as embedded:
        assert embedded.running
        await embedded.create_topic("async-started")
    assert not embedded.running


def test_start_failure_raises_broker_error_with_the_log_tail() -> None:
    """A broker that cannot bind its port fails start() with Tansu's own explanation and leaves nothing running."""
    with socket.create_server(("127.0.0.1", 0)) as occupied:
        embedded = EmbeddedBroker(port=occupied.getsockname()[1])
        with pytest.raises(BrokerError, match="Address in use"):
            embedded.start()
    assert not embedded.running


def test_a_binary_without_the_execute_bit_is_made_executable(tmp_path: Path) -> None:
    """A Tansu binary that lost its execute bit (e.g. unpacked from a zip) still starts."""
    copy = tmp_path / "tansu"
    copy.write_bytes(find_tansu_binary().read_bytes())
    copy.chmod(0o644)
    with EmbeddedBroker(binary=copy) as embedded:
        assert embedded.running
    assert os.access(copy, os.X_OK)


def test_tansu_environment_variables_cannot_redirect_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """STORAGE_ENGINE/LISTENER_URL in the environment do not leak into the embedded broker."""
    monkeypatch.setenv("STORAGE_ENGINE", "postgres://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("LISTENER_URL", "tcp://127.0.0.1:1")
    with EmbeddedBroker() as embedded:
        assert embedded.running


# ---------------------------------------------------------------------------------------------------------------------
# TLS


def tls_options(ca: ThrowawayPki, client: ThrowawayPki | None = None) -> dict[str, Any]:
    """Client kwargs trusting `ca`, presenting `client`'s certificate when given."""
    tls = KafkaTls(
        enabled=True,
        ca_file=ca.ca_file,
        cert_file=client.client_cert_file if client else None,
        key_file=client.client_key_file if client else None,
    )
    return client_security_kwargs(KafkaSecurity(tls=tls))


async def test_tls_round_trip_with_client_security_kwargs(tls_broker: EmbeddedBroker, pki: ThrowawayPki) -> None:
    """Producer, consumer group, commit and admin all work over TLS with the gateway's security kwargs."""
    options = tls_options(pki)
    assert options["security_protocol"] == "SSL"
    await tls_broker.create_topic("tls-topic", client_options=options)
    assert await produce_consume_commit(tls_broker.bootstrap_servers, "tls-topic", options) == {0: 2}


async def test_tls_client_trusting_another_ca_is_rejected(tls_broker: EmbeddedBroker, other_pki: ThrowawayPki) -> None:
    """A client that trusts a different CA refuses the broker's certificate."""
    await assert_cannot_connect(tls_broker.bootstrap_servers, tls_options(other_pki))


async def test_plaintext_client_cannot_talk_to_the_tls_port(tls_broker: EmbeddedBroker) -> None:
    """The TLS listener does not accept plaintext Kafka."""
    await assert_cannot_connect(tls_broker.bootstrap_servers, {})


async def test_mtls_accepts_a_client_certificate_from_the_trusted_ca(
    mtls_broker: EmbeddedBroker, pki: ThrowawayPki
) -> None:
    """With client certificates required, a client presenting one signed by the trusted CA gets through."""
    options = tls_options(pki, client=pki)
    assert await produce_consume_commit(mtls_broker.bootstrap_servers, "mtls-topic", options) == {0: 2}


async def test_mtls_rejects_clients_without_a_trusted_certificate(
    mtls_broker: EmbeddedBroker, pki: ThrowawayPki, other_pki: ThrowawayPki
) -> None:
    """With client certificates required, no certificate or one from another CA is refused."""
    await assert_cannot_connect(mtls_broker.bootstrap_servers, tls_options(pki))
    await assert_cannot_connect(mtls_broker.bootstrap_servers, tls_options(pki, client=other_pki))


def test_tansu_itself_refuses_cert_and_key_together(pki: ThrowawayPki) -> None:
    """This Tansu build rejects --cert with --key, which is why EmbeddedBroker terminates TLS itself."""
    result = subprocess.run(
        [find_tansu_binary(), "broker", "--cert", pki.server_cert_file, "--key", pki.server_key_file],
        capture_output=True,
        timeout=SAFETY_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 2
    assert b"cannot be used with" in result.stderr


# ---------------------------------------------------------------------------------------------------------------------
# SASL (what Tansu can and cannot do; the client side is unit-tested)


async def test_authentication_rejects_unauthenticated_clients(auth_broker: EmbeddedBroker) -> None:
    """With --authentication, a client without SASL cannot even fetch metadata."""
    await assert_cannot_connect(auth_broker.bootstrap_servers, {})


def test_tansu_offers_scram_but_not_plain(auth_broker: EmbeddedBroker) -> None:
    """Tansu's SaslHandshake accepts SCRAM-SHA-256/512 and drops the connection for PLAIN (not compiled in)."""
    assert sasl_handshake(auth_broker.port, "SCRAM-SHA-256") == 0
    assert sasl_handshake(auth_broker.port, "SCRAM-SHA-512") == 0
    assert sasl_handshake(auth_broker.port, "PLAIN") is None


def test_scram_users_can_only_be_created_by_an_authenticated_client(
    broker: EmbeddedBroker, auth_broker: EmbeddedBroker
) -> None:
    """AlterUserScramCredentials works without --authentication but is refused with it, so no SCRAM user can exist."""
    assert alter_scram_credentials(broker.port, "alice") == 0
    assert alter_scram_credentials(auth_broker.port, "alice") is None
