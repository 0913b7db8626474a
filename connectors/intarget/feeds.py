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
    """One served column."""

    name: str
    kind: Kind = "text"


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
        Feed("auto_logins", "player_id", _columns("player_id login_token updated_at:stamp"), "updated_at"),
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
"""Feed name → feed, in DESIGN.md 5a's order; each feed's table has its name."""

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
    types = {column.name: SQL_TYPES[column.kind] for column in feed.columns}
    types.update(dict(EXTRA_COLUMNS.get(table, ())))
    types["brand"] = "TEXT"
    return types


def ddl() -> list[str]:
    """CREATE statements for every table and index (SQLite and PostgreSQL alike)."""
    statements = []
    for feed in FEEDS.values():
        columns = [f"{c.name} {SQL_TYPES[c.kind]}{' PRIMARY KEY' if c.name == feed.key else ''}" for c in feed.columns]
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
