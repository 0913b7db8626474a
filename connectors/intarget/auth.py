"""Feed auth: an optional CIDR allow-list (403), then HTTP Basic and/or a token (401), compared in constant time."""

from __future__ import annotations

import base64
import hmac
import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from aiohttp import web

    from connectors.intarget.config import FeedSettings


def _same(given: str, expected: bytes) -> bool:
    # "replace": header text may hold lone surrogates (undecodable bytes), which a strict encode would raise on.
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected)


class FeedAuth:
    """Decides whether a request may read feeds; the answer never says which part failed."""

    def __init__(self, settings: FeedSettings) -> None:
        self.allow = list(settings.allow)
        self.none = settings.auth == "none"
        self.basic = (
            f"{settings.username}:{settings.password.get_secret_value()}".encode()
            if settings.password is not None
            else None
        )
        self.token = settings.token.get_secret_value().encode() if settings.token is not None else None
        self.challenge = {"WWW-Authenticate": 'Basic realm="intarget"'} if self.basic is not None else {}

    def allowed(self, remote: str | None) -> bool:
        """Whether the peer address is in the allow-list (any address when the list is empty)."""
        if not self.allow:
            return True
        try:
            address = ipaddress.ip_address(remote or "")
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow)

    def authenticated(self, request: web.Request) -> bool:
        """Basic credentials or the token (query `token=` or `Authorization: Bearer`) match the configured ones."""
        if self.none:
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        ok = False
        value = value.strip()
        if self.basic is not None and scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):  # binascii.Error, and non-ASCII text, are ValueErrors
                decoded = ""
            ok |= bool(decoded) and _same(decoded, self.basic)
        if self.token is not None:
            if scheme.lower() == "bearer" and value:
                ok |= _same(value, self.token)
            query_token = parse_qs(request.rel_url.raw_query_string).get("token")
            if query_token and query_token[0]:
                ok |= _same(query_token[0], self.token)
        return ok

    def check(self, request: web.Request) -> int | None:
        """403 (address not allowed), 401 (not authenticated), or None (may read)."""
        if not self.allowed(request.remote):
            return 403
        if not self.authenticated(request):
            return 401
        return None
