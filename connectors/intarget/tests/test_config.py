"""InTarget destination settings: auth is required unless `auth: none`, store URLs, retention, secrets masked."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import binding
from gateway.config import ANY_BRAND
from gateway.errors import ConfigError

SECRET = "feed-password-not-for-logs"  # noqa: S105


def tree(**destination: Any) -> dict[str, Any]:
    """A configuration with one InTarget destination."""
    return {
        "kafka": {"bootstrap_servers": "127.0.0.1:9092", "topics": ["t"], "dlq_topic": "t.dlq"},
        "destinations": [{"name": "intarget", "connector": "intarget", **destination}],
    }


def test_the_feed_refuses_to_start_without_auth() -> None:
    """No username/password and no token, and no explicit `auth: none`: a startup error."""
    with pytest.raises(ConfigError, match="needs username/password or token"):
        binding.parse(tree(feed={"listen": "127.0.0.1:9110"}), env={})


@pytest.mark.parametrize(
    ("feed", "env", "says"),
    [
        ({"username": "intarget", "password": "${FEED_PASSWORD}"}, {"FEED_PASSWORD": ""}, "feed.password must be"),
        ({"username": "intarget", "password": "short-pass"}, {}, "feed.password must be"),
        ({"token": "${FEED_TOKEN}"}, {"FEED_TOKEN": ""}, "feed.token must be"),
        ({"token": "tok-123"}, {}, "feed.token must be"),
    ],
    ids=["empty-password-var", "short-password", "empty-token-var", "short-token"],
)
def test_the_feed_refuses_to_start_with_an_empty_or_short_secret(
    feed: dict[str, str], env: dict[str, str], says: str
) -> None:
    """A `${VAR}` set to an empty string, or a short word, fails check-config: at least 16 characters."""
    with pytest.raises(ConfigError, match=says) as caught:
        binding.parse(tree(feed=feed), env=env)
    assert "at least 16 characters" in str(caught.value)
    assert "short-pass" not in str(caught.value)
    assert "tok-123" not in str(caught.value)


def test_auth_none_must_be_explicit_and_alone() -> None:
    """`auth: none` serves without auth; combined with credentials it is a contradiction."""
    resolved = binding.parse(tree(feed={"auth": "none"}), env={})
    assert resolved.destinations[0].settings.feed.auth == "none"
    with pytest.raises(ConfigError, match="contradicts"):
        binding.parse(tree(feed={"auth": "none", "token": "x" * 16}), env={})


@pytest.mark.parametrize(
    ("store", "ok"),
    [
        ("sqlite:///intarget.db", True),
        ("sqlite:////var/lib/gw/intarget.db", True),
        ("postgresql://u@db:5432/gw?schema=intarget", True),
        ("sqlite:///", False),
        ("mysql://db/gw", False),
    ],
)
def test_store_urls(store: str, ok: bool) -> None:
    """SQLite relative or absolute paths and PostgreSQL URLs are accepted; anything else is a startup error."""
    if ok:
        resolved = binding.parse(tree(store=store, feed={"token": "t" * 16}), env={})
        assert resolved.destinations[0].settings.store == store
    else:
        with pytest.raises(ConfigError, match="store"):
            binding.parse(tree(store=store, feed={"token": "t" * 16}), env={})


def test_sqlite_paths_resolve() -> None:
    """Three slashes: a relative path; four: an absolute one."""
    relative = binding.parse(tree(store="sqlite:///data/i.db", feed={"token": "t" * 16}), env={})
    absolute = binding.parse(tree(store="sqlite:////data/i.db", feed={"token": "t" * 16}), env={})
    assert str(relative.destinations[0].settings.sqlite_path) == "data/i.db"
    assert str(absolute.destinations[0].settings.sqlite_path) == "/data/i.db"


def test_retention_names_known_feeds() -> None:
    """Retention is per feed; an unknown feed name is a startup error."""
    resolved = binding.parse(tree(feed={"token": "t" * 16}, retention={"logins": 30}), env={})
    assert resolved.destinations[0].settings.retention == {"logins": 30}
    with pytest.raises(ConfigError, match="unknown feed"):
        binding.parse(tree(feed={"token": "t" * 16}, retention={"gamblers": 30}), env={})


def test_every_brand_is_one_tenant() -> None:
    """InTarget needs no credentials: the destination takes every brand as one tenant."""
    resolved = binding.parse(tree(feed={"token": "t" * 16}), env={})
    assert list(resolved.destinations[0].credentials) == [ANY_BRAND]


def test_feed_secrets_are_masked_and_scrubbed() -> None:
    """The feed password and token never show in describe() or repr, and are registered for the log scrubber."""
    resolved = binding.parse(tree(feed={"username": "intarget", "password": SECRET, "token": SECRET + "-t"}), env={})
    destination = resolved.destinations[0]
    assert SECRET not in str(destination.describe()) and SECRET not in repr(destination.settings)
    assert SECRET not in repr(destination.config)
    assert {SECRET, SECRET + "-t"} <= set(resolved.secrets())


def test_a_password_in_the_postgres_url_is_moved_out_and_masked() -> None:
    """`postgresql://user:secret@host/db` keeps the URL without the password; the password is masked and scrubbed."""
    resolved = binding.parse(
        tree(store=f"postgresql://gw:{SECRET}@db.internal:5432/gw?schema=intarget", feed={"token": "t" * 16}), env={}
    )
    destination = resolved.destinations[0]
    assert destination.settings.store == "postgresql://gw@db.internal:5432/gw?schema=intarget"
    assert destination.settings.store_password.get_secret_value() == SECRET
    assert SECRET not in str(destination.describe()) and SECRET not in repr(destination.settings)
    assert SECRET in resolved.secrets()


def test_a_password_in_the_postgres_url_query_is_moved_out_too() -> None:
    """`?password=` (which libpq also reads) leaves the URL the same way, so check-config never prints it."""
    resolved = binding.parse(
        tree(store=f"postgresql://gw@db.internal/gw?password={SECRET}&schema=intarget", feed={"token": "t" * 16}),
        env={},
    )
    destination = resolved.destinations[0]
    assert destination.settings.store == "postgresql://gw@db.internal/gw?schema=intarget"
    assert destination.settings.store_password.get_secret_value() == SECRET
    assert SECRET not in str(destination.describe()) and SECRET in resolved.secrets()
