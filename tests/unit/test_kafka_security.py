"""Kafka security settings: validation, secret masking, and the aiokafka keyword arguments they produce."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import BaseModel, ValidationError

from devkit.testbed.broker import ThrowawayPki, make_throwaway_pki
from gateway.errors import ConfigError
from gateway.kafka_security import KafkaSasl, KafkaSecurity, KafkaTls, client_security_kwargs, security_protocol

SECRET = "hunter2-do-not-print"
KEY_SECRET = "key-passphrase-do-not-print"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayPki:
    """A throwaway CA with server and client certificates."""
    return make_throwaway_pki(tmp_path_factory.mktemp("unit-pki"))


@pytest.fixture(scope="module")
def encrypted_key(pki: ThrowawayPki) -> Path:
    """The client key re-encrypted with KEY_SECRET (AES-256, PKCS#8)."""
    path = pki.client_key_file.with_name("client-encrypted.key")
    subprocess.run(
        ["openssl", "pkey", "-in", pki.client_key_file, "-aes256", "-passout", f"pass:{KEY_SECRET}", "-out", path],
        check=True,
        capture_output=True,
    )
    return path


def sasl(mechanism: Any = "SCRAM-SHA-512") -> KafkaSasl:
    """SASL credentials for user `gateway` with the test secret."""
    return KafkaSasl(mechanism=mechanism, username="gateway", password=SECRET)


# ---------------------------------------------------------------------------------------------------------------------
# the four protocols


def test_default_is_plaintext_without_extra_arguments() -> None:
    """No TLS and no SASL yield exactly security_protocol=PLAINTEXT."""
    assert client_security_kwargs(KafkaSecurity()) == {"security_protocol": "PLAINTEXT"}


def test_tls_yields_ssl_with_a_verifying_context(pki: ThrowawayPki) -> None:
    """TLS alone yields SSL and a context that verifies the chain against the CA file and checks the hostname."""
    kwargs = client_security_kwargs(KafkaSecurity(tls=KafkaTls(enabled=True, ca_file=pki.ca_file)))
    assert set(kwargs) == {"security_protocol", "ssl_context"}
    assert kwargs["security_protocol"] == "SSL"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert [ca["subject"] for ca in context.get_ca_certs()] == [((("commonName", "event-gateway test CA"),),)]


def test_tls_without_ca_file_uses_the_system_trust_store() -> None:
    """TLS without ca_file still verifies certificates, against the default trust store."""
    context = client_security_kwargs(KafkaSecurity(tls=KafkaTls(enabled=True)))["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_check_hostname_can_be_turned_off_but_the_chain_is_still_verified(pki: ThrowawayPki) -> None:
    """check_hostname=False relaxes only the name check, never certificate verification."""
    tls = KafkaTls(enabled=True, ca_file=pki.ca_file, check_hostname=False)
    context = client_security_kwargs(KafkaSecurity(tls=tls))["ssl_context"]
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_without_tls_yields_sasl_plaintext(mechanism: str) -> None:
    """SASL alone yields SASL_PLAINTEXT with aiokafka's sasl_* arguments (sasl_plain_* serve SCRAM too)."""
    assert client_security_kwargs(KafkaSecurity(sasl=sasl(mechanism))) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "gateway",
        "sasl_plain_password": SECRET,
    }


def test_sasl_with_tls_yields_sasl_ssl(pki: ThrowawayPki) -> None:
    """SASL plus TLS yields SASL_SSL with both the context and the credentials."""
    security = KafkaSecurity(tls=KafkaTls(enabled=True, ca_file=pki.ca_file), sasl=sasl())
    kwargs = client_security_kwargs(security)
    assert security_protocol(security) == kwargs["security_protocol"] == "SASL_SSL"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "gateway",
        SECRET,
    )


@pytest.mark.parametrize(
    ("tls", "with_sasl", "protocol"),
    [(False, False, "PLAINTEXT"), (True, False, "SSL"), (False, True, "SASL_PLAINTEXT"), (True, True, "SASL_SSL")],
)
async def test_aiokafka_clients_accept_the_arguments(
    pki: ThrowawayPki, tls: bool, with_sasl: bool, protocol: str
) -> None:
    """Producer, consumer and admin client take the arguments as they are, and their validation passes."""
    security = KafkaSecurity(
        tls=KafkaTls(enabled=True, ca_file=pki.ca_file) if tls else KafkaTls(), sasl=sasl() if with_sasl else None
    )
    kwargs = client_security_kwargs(security)
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", **kwargs)
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", **kwargs)
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9", **kwargs)
    try:
        for client in (producer.client, consumer._client, admin._client):
            assert client._security_protocol == protocol
            assert client._ssl_context is kwargs.get("ssl_context")
            if with_sasl:
                assert (client._sasl_mechanism, client._sasl_plain_username, client._sasl_plain_password) == (
                    "SCRAM-SHA-512",
                    "gateway",
                    SECRET,
                )
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()


# ---------------------------------------------------------------------------------------------------------------------
# client certificates


def test_client_certificate_with_an_encrypted_key_loads(pki: ThrowawayPki, encrypted_key: Path) -> None:
    """A client certificate whose key is encrypted loads with the right key_password."""
    tls = KafkaTls(
        enabled=True,
        ca_file=pki.ca_file,
        cert_file=pki.client_cert_file,
        key_file=encrypted_key,
        key_password=KEY_SECRET,
    )
    assert isinstance(client_security_kwargs(KafkaSecurity(tls=tls))["ssl_context"], ssl.SSLContext)


def test_wrong_key_password_is_a_config_error_without_the_password(pki: ThrowawayPki, encrypted_key: Path) -> None:
    """A wrong key_password raises ConfigError naming the fields, never echoing the password."""
    tls = KafkaTls(enabled=True, cert_file=pki.client_cert_file, key_file=encrypted_key, key_password=SECRET)
    with pytest.raises(ConfigError, match=r"tls\.cert_file/tls\.key_file") as raised:
        client_security_kwargs(KafkaSecurity(tls=tls))
    assert SECRET not in str(raised.value)


def test_encrypted_key_without_password_fails_instead_of_prompting(pki: ThrowawayPki, encrypted_key: Path) -> None:
    """An encrypted key without key_password is a ConfigError, not an OpenSSL prompt on the terminal."""
    tls = KafkaTls(enabled=True, cert_file=pki.client_cert_file, key_file=encrypted_key)
    with pytest.raises(ConfigError, match="key_password is not set"):
        client_security_kwargs(KafkaSecurity(tls=tls))


def test_certificate_and_key_that_do_not_match_are_a_config_error(pki: ThrowawayPki) -> None:
    """A client certificate paired with another certificate's key is reported as a ConfigError."""
    tls = KafkaTls(enabled=True, cert_file=pki.client_cert_file, key_file=pki.server_key_file)
    with pytest.raises(ConfigError, match="KEY_VALUES_MISMATCH"):
        client_security_kwargs(KafkaSecurity(tls=tls))


def test_a_ca_file_that_is_not_pem_is_a_config_error(tmp_path: Path) -> None:
    """A ca_file without certificates is reported as a ConfigError naming tls.ca_file."""
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"tls\.ca_file"):
        client_security_kwargs(KafkaSecurity(tls=KafkaTls(enabled=True, ca_file=garbage)))


# ---------------------------------------------------------------------------------------------------------------------
# validation


def test_cert_file_without_key_file_is_rejected(pki: ThrowawayPki) -> None:
    """cert_file and key_file must be given together."""
    with pytest.raises(ValidationError, match=r"tls\.cert_file and tls\.key_file must be set together"):
        KafkaTls(enabled=True, cert_file=pki.client_cert_file)
    with pytest.raises(ValidationError, match=r"tls\.cert_file and tls\.key_file must be set together"):
        KafkaTls(enabled=True, key_file=pki.client_key_file)


@pytest.mark.parametrize("field", ["ca_file", "cert_file", "key_file"])
def test_missing_files_are_rejected_with_the_field_name(tmp_path: Path, pki: ThrowawayPki, field: str) -> None:
    """A path that does not exist is rejected with a message naming the field and the path."""
    values: dict[str, Any] = {"enabled": True, "cert_file": pki.client_cert_file, "key_file": pki.client_key_file}
    values[field] = tmp_path / "absent.pem"
    with pytest.raises(ValidationError, match=rf"tls\.{field}: file does not exist .*absent\.pem"):
        KafkaTls.model_validate(values)


def test_tls_files_with_tls_disabled_are_rejected(pki: ThrowawayPki) -> None:
    """TLS files while enabled is false are rejected rather than silently connecting in plaintext."""
    with pytest.raises(ValidationError, match=r"tls\.enabled is false"):
        KafkaTls(ca_file=pki.ca_file)


def test_key_password_without_key_file_is_rejected() -> None:
    """A key_password with no key_file to decrypt is rejected."""
    with pytest.raises(ValidationError, match=r"tls\.key_password is set but tls\.key_file is not"):
        KafkaTls(enabled=True, key_password=KEY_SECRET)


@pytest.mark.parametrize(
    "raw",
    [
        {"tls": {"enabled": True, "verify": False}},
        {"sasl": {"mechanism": "GSSAPI", "username": "gateway", "password": SECRET}},
        {"sasl": {"mechanism": "PLAIN", "username": "", "password": SECRET}},
        {"sasl": {"mechanism": "PLAIN", "username": "gateway", "password": ""}},
        {"sasl": {"mechanism": "PLAIN", "username": "gateway", "password": SECRET, "extra": 1}},
    ],
)
def test_unknown_keys_mechanisms_and_empty_credentials_are_rejected(raw: dict[str, Any]) -> None:
    """Unknown keys, unsupported mechanisms and empty username/password are validation errors."""
    with pytest.raises(ValidationError):
        KafkaSecurity.model_validate(raw)


# ---------------------------------------------------------------------------------------------------------------------
# secrets never shown


def test_repr_str_and_json_mask_the_secrets(pki: ThrowawayPki, encrypted_key: Path) -> None:
    """repr, str and JSON dumps of the models show neither the SASL password nor the key password."""
    security = KafkaSecurity(
        tls=KafkaTls(
            enabled=True,
            ca_file=pki.ca_file,
            cert_file=pki.client_cert_file,
            key_file=encrypted_key,
            key_password=KEY_SECRET,
        ),
        sasl=sasl(),
    )
    for rendered in (repr(security), str(security), security.model_dump_json(), repr(security.model_dump())):
        assert SECRET not in rendered
        assert KEY_SECRET not in rendered
        assert "**********" in rendered


# Invalid inputs whose only secrets sit in the password / key_password fields.
SECRET_FIELD_CASES: list[dict[str, Any]] = [
    # model-level failures (these report the whole input of the failing model)
    {
        "tls": {"enabled": True, "key_password": KEY_SECRET},
        "sasl": {"mechanism": "PLAIN", "username": "u", "password": SECRET},
    },
    {"sasl": {"mechanism": "PLAIN", "password": SECRET}},
    # field failures next to a secret, and a secret of the wrong type
    {"tls": {"enabled": True, "ca_file": "/nonexistent/ca.pem", "key_password": KEY_SECRET}},
    {"sasl": {"mechanism": "NOPE", "username": "u", "password": SECRET}},
    {"sasl": {"mechanism": "PLAIN", "username": "u", "password": [SECRET]}},
    {"tls": {"enabled": True, "cert_file": "/nonexistent/c.pem", "key_password": {"nested": KEY_SECRET}}},
]
# Secrets in places no field validator can mask: only hide_input_in_errors keeps them out of messages.
MISPLACED_SECRET_CASES: list[dict[str, Any]] = [
    {"sasl": {"mechanism": "PLAIN", "username": "u", "password": SECRET, "unexpected": SECRET}},
    {"tls": {"enabled": "maybe", "key_password": KEY_SECRET}, "sasl": SECRET},
]


def assert_no_secret(error: ValidationError) -> None:
    """Neither the message nor the input-free structured errors contain a test secret."""
    # errors() carries raw inputs unless asked not to: callers turning it into messages must pass include_input=False.
    for rendered in (str(error), repr(error), repr(error.errors(include_input=False))):
        # fragments too: pydantic abbreviates long inputs ("{'key_pa...assphrase-do-not-print'}")
        for fragment in ("hunter2", "passphrase", "do-not-print"):
            assert fragment not in rendered


@pytest.mark.parametrize("raw", SECRET_FIELD_CASES + MISPLACED_SECRET_CASES)
def test_validation_errors_never_contain_secrets(raw: dict[str, Any]) -> None:
    """Validation error messages (str, and errors() without inputs) do not echo passwords, whatever failed."""
    with pytest.raises(ValidationError) as raised:
        KafkaSecurity.model_validate(raw)
    assert_no_secret(raised.value)


class ParentWithoutHiding(BaseModel):
    """A parent model like the gateway configuration, but without hide_input_in_errors."""

    security: KafkaSecurity


@pytest.mark.parametrize("raw", SECRET_FIELD_CASES)
def test_secret_fields_stay_masked_in_a_parent_models_errors(raw: dict[str, Any]) -> None:
    """Even inside a parent that shows inputs in its errors, password fields appear only as asterisks."""
    with pytest.raises(ValidationError) as raised:
        ParentWithoutHiding.model_validate({"security": raw})
    assert_no_secret(raised.value)
