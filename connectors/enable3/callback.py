"""Enable3's withdrawal callback: verify the signature, produce the raw body to Kafka, answer 200 once it is stored."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from connectors.enable3.config import WithdrawalCallbackSettings
from gateway.config import KafkaConfig
from gateway.kafka_clients import start_with_retry
from gateway.kafka_security import client_security_kwargs
from gateway.logs import destination_logger
from gateway.metrics import Metrics
from gateway.waits import bounded

SIGNATURE_HEADER = "X-REQUEST-SIGNATURE"
CALLBACK = "withdrawal"


def signature(secret: bytes, body: bytes) -> bytes:
    """Enable3's signature: base64(HMAC-SHA512(secret, hex(MD5(raw body)))). MD5 is the vendor's choice, not ours."""
    digest = hashlib.md5(body, usedforsecurity=False).hexdigest().encode("ascii")
    return base64.b64encode(hmac.new(secret, digest, hashlib.sha512).digest())


def _json(status: int, payload: dict[str, object]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


def _transaction_id(body: bytes) -> str | None:
    """The callback's transactionId (the Kafka key), or None when the body is not an object carrying one."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    value = payload.get("transactionId")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


class WithdrawalCallback:
    """Serves `POST /enable3/<destination>/callbacks/withdrawal` and owns the producer it writes with."""

    def __init__(
        self,
        destination: str,
        settings: WithdrawalCallbackSettings,
        kafka: KafkaConfig,
        metrics: Metrics,
        stopping: asyncio.Event,
    ) -> None:
        self._destination = destination
        self._log = destination_logger("connectors.enable3.callback", destination)
        self.settings = settings
        self._settings = settings
        self._secret = settings.secret.get_secret_value().encode()
        self._kafka = kafka
        self._metrics = metrics
        self._stopping = stopping
        self._producer: AIOKafkaProducer | None = None
        self.path = f"/enable3/{destination}/callbacks/{CALLBACK}"

    def routes(self) -> list[web.RouteDef]:
        """The callback route."""
        return [web.post(self.path, self._serve)]

    async def start(self) -> None:
        """Start the producer: every write acknowledged by all in-sync replicas before Enable3 hears 200."""
        kafka = self._kafka
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.servers,
            client_id=f"{kafka.client_id}.{self._destination}.callbacks",
            acks="all",
            linger_ms=0,
            request_timeout_ms=int(self._settings.produce_timeout * 1000),
            **client_security_kwargs(kafka.security),
        )
        if not await start_with_retry("callback-producer", producer.start, self._stopping):
            await producer.stop()
            return
        self._producer = producer

    async def stop(self) -> None:
        """Stop the producer (idempotent)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    def _count(self, result: str) -> None:
        self._metrics.callbacks.labels(self._destination, CALLBACK, result).inc()

    async def _serve(self, request: web.Request) -> web.Response:
        producer = self._producer
        if producer is None:
            self._count("unavailable")
            return _json(503, {"error": "the gateway is starting or stopping"})
        try:
            body = await bounded(self._settings.limits.body_timeout, request.read())
        except TimeoutError:
            self._count("invalid")
            return _json(408, {"error": "the body did not arrive in time"})
        presented = request.headers.get(SIGNATURE_HEADER, "").strip().encode("utf-8", "replace")
        if not hmac.compare_digest(presented, signature(self._secret, body)):
            self._count("bad_signature")
            self._log.warning("callback refused: bad or missing signature")
            return _json(401, {"error": f"bad or missing {SIGNATURE_HEADER}"})
        transaction_id = _transaction_id(body)
        if transaction_id is None:
            self._count("invalid")
            return _json(400, {"error": "the body must be a JSON object with a transactionId"})
        try:
            await bounded(
                self._settings.produce_timeout,
                producer.send_and_wait(self._settings.topic, body, key=transaction_id.encode()),
            )
        except (KafkaError, TimeoutError) as error:
            self._count("unavailable")
            self._log.warning(
                "callback not stored: Kafka did not acknowledge; answering 503 so Enable3 retries",
                transaction_id=transaction_id,
                error=type(error).__name__,
            )
            return _json(503, {"error": "not stored, retry later"})
        self._count("accepted")
        self._log.info("callback stored", transaction_id=transaction_id)
        return _json(200, {"status": "stored", "transactionId": transaction_id})
