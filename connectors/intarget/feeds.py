"""The thirteen InTarget feeds as data: table, columns in the seed's order and names, value kinds, window column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["text", "num", "int", "bool", "flag", "stamp"]
"""How a stored value is served.

text: a string (times are stored already formatted `YYYY-MM-DD HH:MM:SS`); num: an exact decimal stored as text,
served as a JSON number; int: an integer; bool: true/false in JSON, 1/0 in CSV; flag: 1/0 everywhere (the seed says
so); stamp: the store time of the row's last change, epoch seconds stored, served as `YYYY-MM-DD HH:MM:SS`.
"""


@dataclass(frozen=True, slots=True)
class Column:
    """One served column; a derived one is served as an SQL expression over stored columns and is not stored."""

    name: str
    kind: Kind = "text"
    derived: str | None = None


@dataclass(frozen=True, slots=True)
class Feed:
    """One feed: its table, natural key, served columns and the one modification column that windows it."""

    name: str
    key: str
    columns: tuple[Column, ...]
    window: str

    @property
    def names(self) -> tuple[str, ...]:
        """Served column names, in order."""
        return tuple(column.name for column in self.columns)


def _columns(spec: str) -> tuple[Column, ...]:
    """`name` or `name:kind`, space separated."""
    found = []
    for part in spec.split():
        name, _, kind = part.partition(":")
        found.append(Column(name, kind or "text"))  # type: ignore[arg-type]
    return tuple(found)


FEEDS: Final[dict[str, Feed]] = {
    feed.name: feed
    for feed in (
        Feed(
            "players",
            "id",
            _columns(
                "id first_name last_name gender country city ip locale timezone birthday registered_at ref_code "
                "traffic_source user_agent modified_at:stamp is_blocked:bool status self_excluded:bool"
            ),
            "modified_at",
        ),
        Feed(
            "contacts",
            "player_id",
            _columns(
                "player_id email email_confirmed_at email_subscribe:bool phone phone_subscribe:bool phone_confirmed_at "
                "push_token created_at modified_at:stamp"
            ),
            "modified_at",
        ),
        Feed(
            "transactions",
            "id",
            _columns(
                "id player_id amount:num currency type status payment_system dir ref_code created_at updated_at:stamp "
                "wallet_id requisite comment"
            ),
            "updated_at",
        ),
        Feed(
            "logins",
            "id",
            _columns(
                "id player_id ip created_at ref_code traffic_source user_agent host is_success:flag modified_at:stamp"
            ),
            "modified_at",
        ),
        Feed(
            "auto_logins",
            "player_id",
            (Column("id", derived="player_id"), *_columns("player_id login_token updated_at:stamp")),
            "updated_at",
        ),
        Feed(
            "wallets",
            "id",
            _columns("id player_id type balance:num currency created_at modified_at:stamp"),
            "modified_at",
        ),
        Feed(
            "bonus_assignments",
            "id",
            _columns("id player_id bonus_id end_date created_at modified_at:stamp active:flag used:flag"),
            "modified_at",
        ),
        Feed("bonuses", "id", _columns("id name created_at modified_at:stamp"), "modified_at"),
        Feed(
            "casino_sessions",
            "session_id",
            _columns(
                "player_id session_id game_code game_name currency bet_count:int win_count:int bet_amount:num "
                "win_amount:num created_at updated_at game_vendor balance_type ip user_agent ref_code modified_at:stamp"
            ),
            "modified_at",
        ),
        Feed(
            "sports_tournaments",
            "id",
            _columns("id name sport_id sport_name country_code start_date end_date modified_at:stamp"),
            "modified_at",
        ),
        Feed(
            "sports_events",
            "id",
            _columns("id tournament_id title status start_date updated_at:stamp type"),
            "updated_at",
        ),
        Feed(
            "sports_bets",
            "id",
            _columns(
                "id player_id status type stake:num win_amount:num currency ref_code created_at modified_at:stamp"
            ),
            "modified_at",
        ),
        Feed(
            "sports_odds",
            "id",
            _columns("id bet_id event_id ratio:num status market created_at updated_at:stamp"),
            "updated_at",
        ),
    )
}
"""Feed name → feed, in the order of InTarget's document (docs/vendors/intarget.md); each feed's table has its name."""

REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "players": ("id", "registered_at", "modified_at"),
    "contacts": ("player_id", "created_at", "modified_at"),
    "transactions": ("id", "player_id", "amount", "currency", "dir", "created_at", "updated_at"),
    "logins": ("id", "player_id", "created_at"),
    "auto_logins": ("id", "player_id", "updated_at"),
    "wallets": ("id", "player_id", "type", "balance", "currency", "created_at", "modified_at"),
    "bonus_assignments": ("id", "player_id"),
    "bonuses": ("id", "name"),
    "casino_sessions": (
        "player_id", "session_id", "game_name", "currency", "bet_count", "win_count", "bet_amount", "win_amount",
        "created_at", "updated_at",
    ),
    "sports_tournaments": ("id", "name", "start_date"),
    "sports_events": ("id", "tournament_id", "title", "status", "start_date", "type"),
    "sports_bets": ("id", "player_id", "type", "created_at", "modified_at"),
    "sports_odds": ("id", "bet_id", "event_id", "market", "created_at", "updated_at"),
}  # fmt: skip
"""The fields InTarget's document marks required, per feed. None is ever served null: each is always set by the
mapping or the store, or has a FALLBACK, or its row is HELD until it is known (README, "Required fields")."""

FALLBACKS: Final[dict[tuple[str, str], str]] = {
    ("bonuses", "name"): "COALESCE(name, id)",
    ("sports_tournaments", "name"): "COALESCE(name, id)",
    ("sports_events", "title"): "COALESCE(title, id)",
    ("sports_events", "status"): "COALESCE(status, 'unknown')",
    ("sports_events", "type"): "COALESCE(type, 'match')",
}
"""Required fields an event may not carry yet, served with a stated fallback (SQL over the stored row)."""

HELD: Final[dict[str, tuple[str, ...]]] = {
    "players": ("registered_at",),
    "sports_tournaments": ("start_date",),
    "sports_events": ("tournament_id", "start_date"),
}
"""Required fields with no honest fallback: a row without them is stored but not served until an event gives them.
Completing it changes the row, so it is stamped anew and served in a window not yet answered. (players.registered_at
is held only with `options.registered_at: hold`; by default the store writes the first sighting, see the README.)"""

SQL_TYPES: Final[dict[Kind, str]] = {
    "text": "TEXT",
    "num": "TEXT",
    "int": "BIGINT",
    "bool": "INTEGER",
    "flag": "INTEGER",
    "stamp": "BIGINT",
}

EXTRA_COLUMNS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "players": (("custom", "TEXT"),),
    "casino_sessions": (("name_from", "TEXT"),),
}
"""Stored, not served as such: players' custom fields (a JSON object, served as extra columns); where a session's
game name came from (`event`, `catalog` or `default`), so a later catalog entry can name it."""


INTERNAL_COLUMNS: Final[dict[str, dict[str, str]]] = {
    "casino_actions": {"id": "TEXT", "session_id": "TEXT"},
    "games": {"id": "TEXT", "name": "TEXT"},
    "player_custom_fields": {"name": "TEXT", "kind": "TEXT"},
}


def column_types(table: str) -> dict[str, str]:
    """Column → SQL type of a stored table (feeds, with brand and extras, and the internal tables)."""
    if table in INTERNAL_COLUMNS:
        return INTERNAL_COLUMNS[table]
    feed = FEEDS[table]
    types = {column.name: SQL_TYPES[column.kind] for column in feed.columns if column.derived is None}
    types.update(dict(EXTRA_COLUMNS.get(table, ())))
    types["brand"] = "TEXT"
    return types


def ddl() -> list[str]:
    """CREATE statements for every table and index (SQLite and PostgreSQL alike)."""
    statements = []
    for feed in FEEDS.values():
        columns = [
            f"{c.name} {SQL_TYPES[c.kind]}{' PRIMARY KEY' if c.name == feed.key else ''}"
            for c in feed.columns
            if c.derived is None
        ]
        columns += [f"{name} {sql_type}" for name, sql_type in EXTRA_COLUMNS.get(feed.name, ())]
        columns.append("brand TEXT NOT NULL")
        statements.append(f"CREATE TABLE IF NOT EXISTS {feed.name} ({', '.join(columns)})")
        statements.append(f"CREATE INDEX IF NOT EXISTS {feed.name}_window ON {feed.name} ({feed.window}, {feed.key})")
    statements += [
        "CREATE INDEX IF NOT EXISTS casino_sessions_game ON casino_sessions (game_code)",
        "CREATE TABLE IF NOT EXISTS casino_actions (id TEXT PRIMARY KEY, session_id TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS casino_actions_session ON casino_actions (session_id)",
        "CREATE TABLE IF NOT EXISTS games (id TEXT PRIMARY KEY, name TEXT)",
        "CREATE TABLE IF NOT EXISTS player_custom_fields (name TEXT PRIMARY KEY, kind TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS feed_clock (id INTEGER PRIMARY KEY, last BIGINT NOT NULL)",
        "INSERT INTO feed_clock (id, last) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
    ]
    return statements
