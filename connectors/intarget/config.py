"""InTarget destination settings: the feed store URL, the feed server (listen, auth, allow-list) and retention."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from connectors.intarget.feeds import FEEDS
from gateway.connector import ConnectorDefaults
from gateway.durations import Duration
from gateway.listener import ListenerLimits, ListenerTls
from gateway.secret_rules import long_enough

DEFAULTS = ConnectorDefaults(
    max_events=2_000,  # one store transaction per batch: large enough to amortize the commit, small enough to be brief
    max_bytes=4 * 1024 * 1024,
    linger_ms=200,
    concurrency=2,  # writers serialize on the store's clock; a second lane prepares while the first commits
)

_STRICT = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class IntargetCredentials(BaseModel):
    """InTarget pulls, so the gateway holds no vendor credentials; the feed's own auth is under `feed:`."""

    model_config = _STRICT


class IntargetOptions(BaseModel):
    """Mapping options."""

    model_config = _STRICT

    default_game_name: str = Field(
        "unknown", min_length=1, description="game_name of a session whose game is neither named nor in the catalog"
    )
    registered_at: Literal["first_seen", "hold"] = Field(
        "first_seen",
        description="a player no event gave registered_at: `first_seen` serves the time the gateway first saw them; "
        "`hold` serves the player only once an event carries it",
    )


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:9110")
    return value


class FeedSettings(BaseModel):
    """The feed server InTarget polls: a listener of its own, so it can be exposed without exposing /metrics."""

    model_config = _STRICT

    listen: str = "127.0.0.1:9110"
    username: str | None = Field(None, min_length=1, description="HTTP Basic user (with password)")
    password: SecretStr | None = Field(None, description="HTTP Basic password")
    token: SecretStr | None = Field(None, description="accepted as ?token= or Authorization: Bearer")
    auth: Literal["none"] | None = Field(None, description="`none` serves without auth; never the default")
    allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(
        default_factory=list, description="CIDRs allowed to connect (empty = any address)"
    )
    format: Literal["csv", "json"] = "csv"
    watermark_wait: Duration = Field(
        10.0, gt=0, description="seconds a request waits for in-progress writes before answering 503 + Retry-After"
    )
    chunk_rows: int = Field(1000, ge=1, description="rows fetched from the store and written per chunk")
    tls: ListenerTls | None = Field(None, description="serve HTTPS with {cert_file, key_file}")
    limits: ListenerLimits = ListenerLimits()

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _host_port(value)

    @field_validator("password", "token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return long_enough(value, f"feed.{info.field_name}")

    @model_validator(mode="after")
    def _auth_required(self) -> FeedSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("feed.username and feed.password go together")
        has_auth = self.password is not None or self.token is not None
        if self.auth == "none" and has_auth:
            raise ValueError("feed.auth: none contradicts the configured username/password or token")
        if not has_auth and self.auth != "none":
            raise ValueError("the feed needs username/password or token (or `auth: none`, written explicitly)")
        return self

    @property
    def host(self) -> str:
        """Listen host."""
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        """Listen port."""
        return int(self.listen.rpartition(":")[2])


class IntargetSettings(BaseModel):
    """The destination's own keys: `store`, `feed`, `retention`, `purge_interval`."""

    model_config = _STRICT

    store: str = Field("sqlite:///intarget.db", description="sqlite:///rel.db, sqlite:////abs.db or postgresql://...")
    store_password: SecretStr | None = Field(
        None, description="the PostgreSQL password; one written inside the URL is moved here, so it is masked"
    )
    feed: FeedSettings
    retention: dict[str, float] = Field(
        default_factory=dict, description="feed -> days a row is kept after its last change (absent = forever)"
    )
    purge_interval: Duration = Field(300.0, gt=0, description="seconds between retention purges")

    @model_validator(mode="before")
    @classmethod
    def _password_out_of_url(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("store"), str):
            return data
        parts = urlsplit(data["store"])
        query = parse_qs(parts.query, keep_blank_values=True)
        in_query = query.pop("password", None)  # libpq also reads `?password=`
        if not parts.scheme.startswith("postgres") or (parts.password is None and not in_query):
            return data
        host = parts.netloc.rpartition("@")[2]
        user = f"{parts.username}@" if parts.username else ""
        stripped = parts._replace(netloc=user + host, query=urlencode(query, doseq=True))
        moved = {**data, "store": urlunsplit(stripped)}
        password = unquote(parts.password) if parts.password is not None else in_query[-1]  # type: ignore[index]
        moved.setdefault("store_password", password)
        return moved

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        if value.startswith("sqlite:///"):
            if not value.removeprefix("sqlite:///"):
                raise ValueError("sqlite:/// needs a file path, e.g. sqlite:///intarget.db")
            return value
        if value.startswith(("postgresql://", "postgres://")):
            return value
        raise ValueError("must be sqlite:///relative.db, sqlite:////absolute.db or postgresql://...")

    @field_validator("retention")
    @classmethod
    def _known_feeds(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(FEEDS))
        if unknown:
            raise ValueError(f"unknown feed(s) {unknown}; known: {sorted(FEEDS)}")
        if any(days <= 0 for days in value.values()):
            raise ValueError("retention days must be > 0")
        return value

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None for PostgreSQL."""
        if not self.store.startswith("sqlite:///"):
            return None
        return Path(self.store.removeprefix("sqlite:///"))

    @property
    def postgres_schema(self) -> str | None:
        """The `?schema=` of a PostgreSQL URL (the store's tables live there), if given."""
        values = parse_qs(urlsplit(self.store).query).get("schema")
        return values[0] if values else None
