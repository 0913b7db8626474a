"""UserWise request authentication: the base64 `X-Api-Key` header and the SHA3-256 `enc` request hash."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import quote

from yarl import URL

from gateway.http1 import WireUrl
from gateway.http_client import UNADDRESSABLE_SEGMENTS, path_segment

API_PREFIX = "/api/v1/appuser/"
WIRE_SAFE = "!$&'()*,:;=@"
"""Characters legal in a path segment that the HTTP client's normalization un-escapes: left as they are by `quote`,
the id's segment is already in the spelling that goes on the wire (`+` stays `%2B`: yarl keeps that escape)."""
PROBE_ID = "p 1!$&'()*+,:;=@%/?#~.é玩"
"""A player id holding every kind of character, for checking the wire-form URLs against `appuser_url` per base URL."""
# "." and ".." are path segments every URL normalizer resolves (yarl does it even when percent-encoded), so a player
# with such an id cannot be addressed without reaching another endpoint.


def api_key_header(api_key: str) -> str:
    """`X-Api-Key` value: base64 of the key, no trailing newline (unlike the document's `echo | base64` sample)."""
    return base64.b64encode(api_key.encode("utf-8")).decode("ascii")


def request_hash(url: str, body: bytes, secret: str) -> str:
    """`sha3_256(url + raw_body + secret)` as lowercase hex; `body` is b"" for GET and DELETE.

    `url` is the full URL with its query string but without `enc`, exactly as sent; `body` the exact bytes sent.
    """
    digest = hashlib.sha3_256(url.encode("utf-8"))
    digest.update(body)
    digest.update(secret.encode("utf-8"))
    return digest.hexdigest()


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


def wire_segment(player_id: str) -> str:
    """`player_id` as one path segment in the exact spelling the HTTP client sends (the segment `appuser_url` puts in
    the URL), without parsing a URL; ValueError for `.` and `..`."""
    if player_id in UNADDRESSABLE_SEGMENTS:
        raise ValueError(f"{player_id!r} cannot be a URL path segment")
    return quote(player_id, safe=WIRE_SAFE)


class AppUserUrls:
    """The signed appuser URLs of one base URL, in the wire form the HTTP client sends as it is (a WireUrl).

    Per request, building a URL string and letting the HTTP client parse and re-quote it (twice: once to sign its
    normalized form, once to send it) cost more than the signing. Here the base URL is parsed once; a request's URL
    is the normalized prefix, the id's wire segment and the endpoint, hashed as that string and handed over as that
    target under the parsed origin. A base URL whose prefix does not come out that way (or for which the probe id's
    URLs differ from `appuser_url`'s) takes the parsing path for every request, so the bytes on the wire never change.
    """

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        prefix = URL(f"{base_url.rstrip('/')}{API_PREFIX}")
        self._prefix = str(prefix)
        self._origin = URL.build(scheme=prefix.scheme, authority=prefix.raw_authority, encoded=True)
        self._path = prefix.raw_path
        self._wire_form = self._prefix.endswith(API_PREFIX) and self._path.endswith(API_PREFIX)
        self._wire_form = self._wire_form and all(
            self.signed(PROBE_ID, endpoint, b"{}", "probe").url()
            == self._parsed(PROBE_ID, endpoint, b"{}", "probe").url()
            and str(self.signed(PROBE_ID, endpoint, b"{}", "probe").url())
            == signed_url(appuser_url(base_url, PROBE_ID, endpoint), b"{}", "probe")
            for endpoint in ("events", "revenue_events", "attributes")
        )

    def signed(self, player_id: str, endpoint: str, body: bytes, secret: str) -> WireUrl:
        """`POST` URL for `player_id`'s `endpoint` with `enc` over that URL, `body` and `secret`."""
        if not self._wire_form:
            return self._parsed(player_id, endpoint, body, secret)
        tail = f"{wire_segment(player_id)}/{endpoint}"
        enc = request_hash(self._prefix + tail, body, secret)
        return WireUrl(self._origin, f"{self._path}{tail}?enc={enc}")

    def _parsed(self, player_id: str, endpoint: str, body: bytes, secret: str) -> WireUrl:
        """The URL as the HTTP client makes it of `signed_url(appuser_url(...))` (the reference the fast path meets)."""
        url = URL(signed_url(appuser_url(self._base_url, player_id, endpoint), body, secret))
        return WireUrl(URL.build(scheme=url.scheme, authority=url.raw_authority, encoded=True), url.raw_path_qs)
