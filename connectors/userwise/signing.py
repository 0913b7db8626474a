"""UserWise request authentication: the base64 `X-Api-Key` header and the SHA3-256 `enc` request hash."""

from __future__ import annotations

import base64
import hashlib

from yarl import URL

from gateway.http_client import path_segment

API_PREFIX = "/api/v1/appuser/"
# "." and ".." are path segments every URL normalizer resolves (yarl does it even when percent-encoded), so a player
# with such an id cannot be addressed without reaching another endpoint.


def api_key_header(api_key: str) -> str:
    """`X-Api-Key` value: base64 of the key, no trailing newline (unlike the document's `echo | base64` sample)."""
    return base64.b64encode(api_key.encode("utf-8")).decode("ascii")


def request_hash(url: str, body: bytes, secret: str) -> str:
    """`sha3_256(url + raw_body + secret)` as lowercase hex; `body` is b"" for GET and DELETE.

    `url` is the full URL with its query string but without `enc`, exactly as sent; `body` the exact bytes sent.
    """
    return hashlib.sha3_256(url.encode("utf-8") + body + secret.encode("utf-8")).hexdigest()


def signed_url(url: str, body: bytes, secret: str) -> str:
    """`url` with `enc` appended (`?enc=` or `&enc=` when it already has a query)."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}enc={request_hash(url, body, secret)}"


def appuser_url(base_url: str, player_id: str, endpoint: str) -> str:
    """`{base_url}/api/v1/appuser/{id}/{endpoint}` with the id percent-encoded, in the exact form that goes on the wire.

    The HTTP client (aiohttp through yarl) re-quotes a URL string before sending it: it decodes percent-escapes of
    characters that are legal in a path (`!`, `'`, `(`, `)`, `*`, `:`, `@`, `&`, `=`, `$`, `,`, `;`) and upper-cases
    hex digits. Hashing our own spelling would then sign a different URL from the one sent, so the URL is put through
    the same normalization first (which is idempotent) and that string is what gets hashed and sent.
    """
    raw = f"{base_url.rstrip('/')}{API_PREFIX}{path_segment(player_id)}/{endpoint}"
    return str(URL(raw))
