"""Kafka client security settings (TLS, SASL) and their translation into aiokafka client keyword arguments."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.errors import ConfigError

__all__ = ["KafkaSasl", "KafkaSecurity", "KafkaTls", "client_security_kwargs", "security_protocol"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

# Secrets and validation errors: SecretStr masks only values that validated. A failing model-level check (a missing
# field, a bad combination) reports the model's whole raw input, passwords included. So secret fields are wrapped in
# SecretStr before any validation (by each model, and again by KafkaSecurity before its sections are validated), and
# hide_input_in_errors drops inputs from these models' messages altogether. A parent model (the gateway config) should
# set hide_input_in_errors too: its own errors show its raw input, which nothing here can mask.
_MODEL_CONFIG = ConfigDict(extra="forbid", hide_input_in_errors=True)


class _MaskedInput:
    """Stands in for a secret of the wrong type, so the resulting validation error can only show asterisks."""

    def __repr__(self) -> str:
        return "'**********'"


def _mask_secret_input(data: Any, field: str) -> Any:
    """Wrap the raw secret in `data[field]` before validation, so no error (even a parent's) can echo it."""
    if isinstance(data, dict) and data.get(field) is not None:
        value = data[field]
        if isinstance(value, str):
            value = SecretStr(value)
        elif not isinstance(value, SecretStr):
            value = _MaskedInput()  # still rejected as "not a string", but displayed masked
        data = {**data, field: value}
    return data


def _mask_key_password(data: Any) -> Any:
    """Before-validator masking a raw tls section's key_password."""
    return _mask_secret_input(data, "key_password")


def _mask_sasl_password(data: Any) -> Any:
    """Before-validator masking a raw sasl section's password."""
    return _mask_secret_input(data, "password")


def _require_file(field: str, path: Path | None) -> Path | None:
    """Return `path` unchanged, or raise a ValueError naming `field` when it is not an existing regular file."""
    if path is not None and not path.is_file():
        raise ValueError(f"{field}: file does not exist or is not a regular file: {path}")
    return path


class KafkaTls(BaseModel):
    """TLS towards the brokers: which CA to trust and, for mutual TLS, the client certificate to present.

    Embed it through KafkaSecurity (which masks key_password before this model's checks report their input).
    """

    model_config = _MODEL_CONFIG

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None
    check_hostname: bool = True

    @model_validator(mode="before")
    @classmethod
    def _mask_secrets(cls, data: Any) -> Any:
        """Mask key_password first: later errors (here or in an enclosing model) show the input with it hidden."""
        return _mask_key_password(data)

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _files_exist(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Reject paths that do not name an existing file; the message names the field."""
        return _require_file(f"tls.{info.field_name}", value)

    @model_validator(mode="after")
    def _consistent(self) -> KafkaTls:
        """Check the combinations: cert and key together, a key password needs a key, files need TLS enabled."""
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file must be set together (client certificate and its key)")
        if self.key_password is not None and self.key_file is None:
            raise ValueError("tls.key_password is set but tls.key_file is not")
        if not self.enabled and any(f is not None for f in (self.ca_file, self.cert_file, self.key_file)):
            raise ValueError(
                "tls.ca_file/cert_file/key_file are set but tls.enabled is false; enable TLS or remove them"
            )
        return self


class KafkaSasl(BaseModel):
    """SASL credentials for the brokers; the password never appears in repr, str or error messages."""

    model_config = _MODEL_CONFIG

    mechanism: SaslMechanism
    username: str = Field(min_length=1)
    password: SecretStr = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _mask_secrets(cls, data: Any) -> Any:
        """Mask the password first: later errors (a missing username, say) show the input with it hidden."""
        return _mask_sasl_password(data)


class KafkaSecurity(BaseModel):
    """How the gateway authenticates to and encrypts traffic with Kafka; the default is plaintext, no auth."""

    model_config = _MODEL_CONFIG

    # Masking again here, outside KafkaTls/KafkaSasl: their own "after" checks report the input they were given.
    tls: Annotated[KafkaTls, BeforeValidator(_mask_key_password)] = Field(default_factory=KafkaTls)
    sasl: Annotated[KafkaSasl | None, BeforeValidator(_mask_sasl_password)] = None


def security_protocol(security: KafkaSecurity) -> SecurityProtocol:
    """Derive Kafka's `security.protocol` from whether TLS is enabled and whether SASL is configured."""
    if security.tls.enabled:
        return "SASL_SSL" if security.sasl is not None else "SSL"
    return "SASL_PLAINTEXT" if security.sasl is not None else "PLAINTEXT"


class _KeyPasswordMissing(Exception):
    """Raised from OpenSSL's password callback when the key is encrypted and no password is configured."""


def _no_password() -> str:
    """Password callback used when none is configured, so OpenSSL never prompts on a terminal."""
    raise _KeyPasswordMissing


def _ssl_reason(exc: OSError) -> str:
    """Describe a TLS loading failure from the OpenSSL reason or errno text; never includes a password."""
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    return exc.strerror or type(exc).__name__


def _ssl_context(tls: KafkaTls) -> ssl.SSLContext:
    """Build the client SSLContext: verify the broker chain (CA file or system store) and optionally present a cert.

    Equivalent to aiokafka.helpers.create_ssl_context (stdlib default client context) but with errors that name
    the offending field, a TLS 1.2 floor, optional hostname checking, and no interactive key-password prompt.
    """
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"kafka tls.ca_file: cannot load CA certificates ({_ssl_reason(exc)})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Hostname checking can be relaxed (e.g. brokers addressed by IP without a SAN); the chain is always verified.
    context.check_hostname = tls.check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if tls.cert_file is not None:
        password: Callable[[], str] | str = (
            tls.key_password.get_secret_value() if tls.key_password is not None else _no_password
        )
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file, password)
        except _KeyPasswordMissing:
            raise ConfigError("kafka tls.key_file is encrypted but tls.key_password is not set") from None
        except (ssl.SSLError, OSError) as exc:
            # Built from field names and the OpenSSL reason only, never from the password.
            raise ConfigError(
                f"kafka tls.cert_file/tls.key_file: cannot load the client certificate ({_ssl_reason(exc)}); "
                "check both are PEM, belong together, and that tls.key_password matches the key"
            ) from None
    return context


def client_security_kwargs(security: KafkaSecurity) -> dict[str, Any]:
    """Translate `security` into keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient.

    Always contains `security_protocol`; adds `ssl_context` when TLS is enabled and `sasl_mechanism`,
    `sasl_plain_username`, `sasl_plain_password` when SASL is configured (aiokafka uses the `sasl_plain_*`
    arguments for SCRAM too). The returned dict holds the SASL password in clear text: never log it.
    Raises ConfigError when the TLS files cannot be loaded.
    """
    kwargs: dict[str, Any] = {"security_protocol": security_protocol(security)}
    if security.tls.enabled:
        kwargs["ssl_context"] = _ssl_context(security.tls)
    if security.sasl is not None:
        kwargs["sasl_mechanism"] = security.sasl.mechanism
        kwargs["sasl_plain_username"] = security.sasl.username
        kwargs["sasl_plain_password"] = security.sasl.password.get_secret_value()
    return kwargs
