"""Throwaway certificates (the openssl command line tool), for TLS tests and a TLS demo; never for production."""

from __future__ import annotations

import ipaddress
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devkit.testbed.process import BrokerError


@dataclass(frozen=True, slots=True)
class ThrowawayPki:
    """A freshly generated CA with a server certificate and a client certificate signed by it (all PEM files)."""

    ca_file: Path
    ca_key_file: Path
    server_cert_file: Path
    server_key_file: Path
    client_cert_file: Path
    client_key_file: Path


_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(openssl: str, *args: str | Path) -> None:
    """Run one openssl command; raise BrokerError with its stderr when it fails."""
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [openssl, *map(str, args)], capture_output=True, check=False
    )
    if result.returncode != 0:
        raise BrokerError(f"openssl {args[0]} failed: {result.stderr.decode(errors='replace').strip()}")


def make_throwaway_pki(
    directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), name: str = "event-gateway test"
) -> ThrowawayPki:
    """Generate a 2-day CA plus a server certificate (SANs: `hosts`) and a client certificate in `directory`.

    Uses the `openssl` command line tool and P-256 keys; meant for tests and demos only, never for production.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("make_throwaway_pki needs the openssl command line tool on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    san = ",".join(f"IP:{host}" if _is_ip(host) else f"DNS:{host}" for host in hosts)
    config = directory / "openssl.cnf"
    config.write_text(_OPENSSL_CONFIG.format(san=san), encoding="utf-8")
    key_options = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    pki = ThrowawayPki(
        ca_file=directory / "ca.pem",
        ca_key_file=directory / "ca.key",
        server_cert_file=directory / "server.pem",
        server_key_file=directory / "server.key",
        client_cert_file=directory / "client.pem",
        client_key_file=directory / "client.key",
    )
    _openssl(
        openssl, "req", "-x509", *key_options, "-config", config, "-extensions", "ca", "-days", "2",
        "-subj", f"/CN={name} CA", "-keyout", pki.ca_key_file, "-out", pki.ca_file,
    )  # fmt: skip
    for role, cert, key, subject in (
        ("server", pki.server_cert_file, pki.server_key_file, hosts[0]),
        ("client", pki.client_cert_file, pki.client_key_file, f"{name} client"),
    ):
        csr = directory / f"{role}.csr"
        _openssl(openssl, "req", "-new", *key_options, "-config", config, "-subj", f"/CN={subject}",
                 "-keyout", key, "-out", csr)  # fmt: skip
        _openssl(
            openssl, "x509", "-req", "-in", csr, "-CA", pki.ca_file, "-CAkey", pki.ca_key_file,
            "-set_serial", str(secrets.randbits(63)), "-days", "2", "-extfile", config, "-extensions", role,
            "-out", cert,
        )  # fmt: skip
        csr.unlink()
    return pki


def _is_ip(host: str) -> bool:
    """True for IPv4/IPv6 literals (they go into IP SANs, names into DNS SANs)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
