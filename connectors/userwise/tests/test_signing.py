"""UserWise request signing: both printed test vectors, the key header, and URLs that need percent-encoding."""

from __future__ import annotations

import hashlib
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from connectors.userwise.signing import AppUserUrls, api_key_header, appuser_url, request_hash, signed_url

SECRET = "UbsXaKTGWNd3wD8y5ZeV"  # noqa: S105 - the test secret the vendor document prints


def test_t1_get_vector_from_the_document() -> None:
    """T1: URL with a query plus the secret, no body, gives the printed hash and is appended with `&enc=`."""
    url = "https://userwise.io/api/endpoint?param_one=value_one"
    expected = "5d0cf6bfeca88e853cd4330cffaaed87febb5038b3c4835681f8f34d8966dc27"
    assert request_hash(url, b"", SECRET) == expected
    assert signed_url(url, b"", SECRET) == f"{url}&enc={expected}"


def test_t2_post_vector_with_the_typographic_quotes_as_printed() -> None:
    """T2: the body as printed, with U+201C/U+201D quotes, gives the printed hash, appended with `?enc=`."""
    url = "https://userwise.io/api/endpoint"
    body = "{\u201ckey\u201d:\u201cvalue\u201d}".encode()
    expected = "1c3893648029aa032e8eec93fb5e5db9347abf7d36c107db3409de975f1f4290"
    assert request_hash(url, body, SECRET) == expected
    assert signed_url(url, body, SECRET) == f"{url}?enc={expected}"


def test_t2_with_ascii_quotes_is_a_different_hash() -> None:
    """The same scheme over ASCII quotes gives the note's other value: the hash really covers the body bytes."""
    url = "https://userwise.io/api/endpoint"
    assert request_hash(url, b'{"key":"value"}', SECRET) == (
        "2d91798fba31c1c3263b3972a9a95960d3a4f5c85650ef8f23aa433f3c41c3ec"
    )


def test_hash_is_sha3_256_of_url_body_secret_in_that_order() -> None:
    """The hash is FIPS 202 SHA3-256 over URL, then body bytes, then secret, lowercase hex."""
    assert request_hash("u", b"\x00body", "s") == hashlib.sha3_256(b"u\x00bodys").hexdigest()


def test_api_key_header_is_base64_without_newline() -> None:
    """The header is base64 of the key with no trailing newline (the document's `echo` sample adds one)."""
    assert api_key_header("my-app-key") == "bXktYXBwLWtleQ=="
    assert not api_key_header("k").endswith("\n")


@pytest.mark.parametrize(
    ("player", "path_segment"),
    [
        ("p-1", "p-1"),
        ("with space", "with%20space"),
        ("a/b", "a%2Fb"),
        ("jos\u00e9", "jos%C3%A9"),
        ("\u73a9\u5bb6", "%E7%8E%A9%E5%AE%B6"),
        ("50%", "50%25"),
        ("q?x#y", "q%3Fx%23y"),
        ("a+b", "a%2Bb"),
        ("it's(1)", "it's(1)"),
    ],
    ids=["plain", "space", "slash", "latin", "cjk", "percent", "query-chars", "plus", "sub-delims"],
)
def test_appuser_url_encodes_the_id_as_it_goes_on_the_wire(player: str, path_segment: str) -> None:
    """The id is one percent-encoded segment, in the exact spelling aiohttp sends (so the hash matches the wire)."""
    url = appuser_url("https://api.userwise.io/", player, "events")
    assert url == f"https://api.userwise.io/api/v1/appuser/{path_segment}/events"
    signed = signed_url(url, b"{}", SECRET)
    assert str(URL(signed)) == signed  # what the HTTP client will send is exactly what was hashed


@pytest.mark.parametrize("player", [".", ".."])
def test_dot_segments_cannot_be_addressed(player: str) -> None:
    """ "." and ".." would be resolved away by any URL normalizer, reaching another endpoint: refused."""
    with pytest.raises(ValueError, match="path segment"):
        appuser_url("https://api.userwise.io", player, "events")


@settings(max_examples=500, deadline=None)
@given(player=st.text(min_size=1, max_size=40).filter(lambda text: text not in (".", "..")))
def test_any_player_id_is_one_segment_that_survives_the_wire_spelling(player: str) -> None:
    """For any id: the URL is a fixed point of the client's normalization and its one segment decodes to the id."""
    url = appuser_url("https://api.userwise.io", player, "revenue_events")
    assert str(URL(url)) == url
    prefix, _, rest = url.partition("/api/v1/appuser/")
    segment, _, endpoint = rest.rpartition("/")
    assert prefix == "https://api.userwise.io"
    assert endpoint == "revenue_events"
    assert "/" not in segment and "?" not in segment and "#" not in segment
    assert unquote(segment, errors="strict") == player


BASE_URLS = [
    "https://api.userwise.io",
    "http://127.0.0.1:8080/",
    "https://API.UserWise.io:443/base/",  # normalized by yarl: takes the parsing path
    "https://bücher.de/a%7eb",
    "https://h?x=1",  # a query in the base URL: the parsing path too
]


@settings(max_examples=300, deadline=None)
@given(player=st.text(min_size=1, max_size=40).filter(lambda text: text not in (".", "..")))
@pytest.mark.parametrize("base_url", BASE_URLS)
def test_wire_form_urls_are_what_the_client_would_make_of_the_signed_string(base_url: str, player: str) -> None:
    """The prebuilt URL is, as text and as a URL, the signed `appuser_url` string after the HTTP client's parsing:
    the same bytes go on the wire and the same string is hashed as before."""
    urls = AppUserUrls(base_url)
    for endpoint in ("events", "revenue_events", "attributes"):
        reference = signed_url(appuser_url(base_url, player, endpoint), b'{"events":[]}', SECRET)
        built = urls.signed(player, endpoint, b'{"events":[]}', SECRET)
        assert str(built.url()) == str(URL(reference))
        assert built.url() == URL(reference)
        assert built.target == URL(reference).raw_path_qs  # the bytes of the request line
        assert (built.origin.scheme, built.origin.raw_host, built.origin.port) == (
            URL(reference).scheme,
            URL(reference).raw_host,
            URL(reference).port,
        )


def test_plain_base_urls_take_the_wire_form_path() -> None:
    """The usual base URLs are built from parts (no URL parsing per request); odd ones are parsed as before."""
    assert AppUserUrls("https://api.userwise.io")._wire_form
    assert AppUserUrls("http://127.0.0.1:8080/")._wire_form
    assert not AppUserUrls("https://h?x=1")._wire_form


def test_wire_segment_refuses_dot_segments() -> None:
    for player in (".", ".."):
        with pytest.raises(ValueError, match="path segment"):
            AppUserUrls("https://api.userwise.io").signed(player, "events", b"", SECRET)
