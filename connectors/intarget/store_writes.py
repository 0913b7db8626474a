"""The write path: one batch of row changes → idempotent upserts, stamped with the store time of the transaction.

A row's modification column moves only when one of its values really changes, so a re-delivered event (after a
crash) changes nothing at all. Order within a batch is kept per natural key: partial player updates are merged in
order before they are written, and every other table's rows go in one ordered statement.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final, Protocol

import orjson

from connectors.intarget.feeds import FEEDS

# Columns written only when the row is inserted (the first time the store saw the thing).
INSERT_ONLY: Final = frozenset({"created_at"})
# Tables whose events are partial snapshots: an absent (null) value keeps the stored one.
KEEP_NULLS: Final = frozenset({"bonuses", "sports_bets", "sports_odds", "sports_events", "sports_tournaments"})
# Write order: the catalog first (sessions read game names), the sessions last.
SIMPLE_TABLES: Final = (
    "transactions",
    "logins",
    "wallets",
    "bonuses",
    "bonus_assignments",
    "sports_tournaments",
    "sports_events",
    "sports_bets",
    "sports_odds",
)
SESSION_COLUMNS: Final = (*FEEDS["casino_sessions"].names[:-1], "brand", "name_from")
IN_CHUNK: Final = 500
# Row keys that describe the first sighting (not columns): the first of a batch wins.
FIRST_SIGHTING: Final = frozenset({"seen_at", "registered_default"})
MAX_STORE_CUSTOM_FIELDS = 500
"""Distinct player custom field names a store holds; a record adding more is refused with a clear reason."""


class Transaction(Protocol):
    """What the write path needs from a backend's open transaction (SQL uses `?` placeholders)."""

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows of a query."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement over many parameter rows, in order."""
        ...

    async def insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """An `INSERT INTO t (cols) VALUES (?, ...) [ON CONFLICT ...]` over rows whose keys are distinct (so a
        backend may send them as one statement)."""
        ...

    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        """A `column IN (values)` condition and its arguments, in the backend's dialect."""
        ...


def upsert_sql(table: str, key: str, columns: Sequence[str], insert_only: Sequence[str] = ()) -> str:
    """INSERT of `key`, `columns`, `insert_only`, brand and the window column; on conflict, update `columns` and the
    stamp only when a value differs (IS DISTINCT FROM is null-safe in SQLite 3.39+ and PostgreSQL)."""
    window = FEEDS[table].window
    names = [key, *columns, *insert_only, "brand", window]
    keep = table in KEEP_NULLS
    sets = [
        f"{c} = COALESCE(excluded.{c}, {table}.{c})" if keep else f"{c} = excluded.{c}" for c in [*columns, "brand"]
    ]
    differs = [
        f"(excluded.{c} IS NOT NULL AND {table}.{c} IS DISTINCT FROM excluded.{c})"
        if keep
        else f"{table}.{c} IS DISTINCT FROM excluded.{c}"
        for c in [*columns, "brand"]
    ]
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "  # noqa: S608
        f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(sets)}, {window} = excluded.{window} "
        f"WHERE {' OR '.join(differs)}"
    )


async def apply_changes(tx: Transaction, stamp: int, changes: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Write one batch's changes inside the caller's transaction."""
    by_route: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for route, row in changes:
        by_route[route].append(row)
    if "games" in by_route:
        names = {row["id"]: row["name"] for row in by_route["games"]}  # the last name of each game wins
        await tx.insert_many(
            "INSERT INTO games (id, name) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            sorted(names.items()),
        )
        # Sessions stored before their game was in the catalog take its name now (and are served again).
        await tx.executemany(
            "UPDATE casino_sessions SET game_name = ?, name_from = 'catalog', modified_at = ? "
            "WHERE game_code = ? AND name_from <> 'event' AND game_name IS DISTINCT FROM ?",
            [[name, stamp, game_id, name] for game_id, name in sorted(names.items())],
        )
    if "players" in by_route:
        await _players(tx, stamp, by_route["players"])
    for table in ("contacts", "auto_logins"):
        if table in by_route:
            await _partial(tx, stamp, table, by_route[table])
    for table in SIMPLE_TABLES:
        if table in by_route:
            await _simple(tx, stamp, table, by_route[table])
    if "casino_actions" in by_route:
        await _sessions(tx, stamp, by_route["casino_actions"])


def _fold(table: str, key: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of one batch folded per key as applying them in order would: later values win (for partial-snapshot
    tables, only non-null ones), insert-only columns keep the first sighting."""
    folded: dict[str, dict[str, Any]] = {}
    keep = table in KEEP_NULLS
    for row in rows:
        current = folded.get(row[key])
        if current is None:
            folded[row[key]] = dict(row)
            continue
        for name, value in row.items():
            if name not in INSERT_ONLY and (value is not None or not keep):
                current[name] = value
    return list(folded.values())


async def _simple(tx: Transaction, stamp: int, table: str, rows: list[dict[str, Any]]) -> None:
    """Full-row tables: one statement over the batch's rows, folded per natural key."""
    feed = FEEDS[table]
    insert_only = [c for c in rows[0] if c in INSERT_ONLY]
    columns = [c for c in rows[0] if c not in INSERT_ONLY and c not in (feed.key, "brand")]
    sql = upsert_sql(table, feed.key, columns, insert_only)
    order = [feed.key, *columns, *insert_only]
    await tx.insert_many(
        sql, [[*(row.get(c) for c in order), row["brand"], stamp] for row in _fold(table, feed.key, rows)]
    )


def _merge(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """Partial updates of one batch folded per key, in order (later values win; the first sighting is kept)."""
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        current = merged.get(row[key])
        if current is None:
            merged[row[key]] = dict(row)
            continue
        for name, value in row.items():
            if name in FIRST_SIGHTING:
                continue
            if name == "custom":
                current["custom"] = {**current.get("custom", {}), **value}
            else:
                current[name] = value
    return merged


async def _partial(tx: Transaction, stamp: int, table: str, rows: list[dict[str, Any]]) -> None:
    """Contacts and auto logins: only the fields the events carried; created_at on insert."""
    feed = FEEDS[table]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in _merge(rows, feed.key).values():
        groups[tuple(sorted(c for c in row if c not in (feed.key, "brand", "seen_at")))].append(row)
    insert_only = ["created_at"] if "created_at" in feed.names else []
    for columns, group in groups.items():
        sql = upsert_sql(table, feed.key, columns, insert_only)
        await tx.insert_many(
            sql,
            [
                [row[feed.key], *(row[c] for c in columns), *(row["seen_at"] for _ in insert_only), row["brand"], stamp]
                for row in group
            ],
        )


class CustomFieldLimit(ValueError):
    """A record would add a custom field past MAX_STORE_CUSTOM_FIELDS: it is refused (dead-lettered), never retried."""


async def _check_custom_field_count(tx: Transaction, kinds: dict[str, str]) -> None:
    """Refuse new custom field names once the store holds MAX_STORE_CUSTOM_FIELDS: each is a players feed column."""
    known = {name for (name,) in await tx.fetch("SELECT name FROM player_custom_fields", [])}
    new = sorted(set(kinds) - known)
    if new and len(known) + len(new) > MAX_STORE_CUSTOM_FIELDS:
        raise CustomFieldLimit(
            f"custom field limit: the store holds {len(known)} distinct custom fields (at most "
            f"{MAX_STORE_CUSTOM_FIELDS}, each a players feed column); new: {', '.join(new[:5])[:200]}"
        )


async def _players(tx: Transaction, stamp: int, rows: list[dict[str, Any]]) -> None:
    """Players: partial merge, custom fields merged key by key; a new player no event gave registered_at gets the
    mapping's `registered_default` (the first sighting, or null to hold the row back: options.registered_at)."""
    merged = _merge(rows, "id")
    with_custom = [player_id for player_id, row in merged.items() if "custom" in row]
    if with_custom:
        stored: dict[str, dict[str, Any]] = {}
        for start in range(0, len(with_custom), IN_CHUNK):
            condition, args = tx.any_of("id", with_custom[start : start + IN_CHUNK])
            for player_id, custom in await tx.fetch(f"SELECT id, custom FROM players WHERE {condition}", args):  # noqa: S608
                stored[player_id] = orjson.loads(custom) if custom else {}
        kinds: dict[str, str] = {}
        for player_id in with_custom:
            values = {**stored.get(player_id, {}), **merged[player_id]["custom"]}
            values = {name: value for name, value in values.items() if value is not None}
            kinds.update({name: value[0] for name, value in values.items()})
            merged[player_id]["custom"] = orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode() if values else None
        await _check_custom_field_count(tx, kinds)
        await tx.insert_many(
            "INSERT INTO player_custom_fields (name, kind) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            sorted(kinds.items()),
        )
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in merged.values():
        groups[tuple(sorted(c for c in row if c not in ("id", "brand", *FIRST_SIGHTING)))].append(row)
    for columns, group in groups.items():
        given = "registered_at" in columns
        sql = upsert_sql("players", "id", columns, () if given else ("registered_at",))
        await tx.insert_many(
            sql,
            [
                [row["id"], *(row[c] for c in columns), *(() if given else (_registered(row),)), row["brand"], stamp]
                for row in group
            ],
        )


def _registered(row: dict[str, Any]) -> Any:
    """registered_at of a player inserted without one (rows mapped before the option existed: the first sighting)."""
    return row["registered_default"] if "registered_default" in row else row["seen_at"]


def _name(session: dict[str, Any], action: dict[str, Any], catalog: dict[str, str]) -> None:
    """The session's game name: from an action, else from the catalog, else the default; never a lesser source
    over a better one (a catalog name does not replace one the events gave)."""
    if action["game_name"]:
        session["game_name"], session["name_from"] = action["game_name"], "event"
    elif action["game_code"] in catalog and session["name_from"] != "event":
        session["game_name"], session["name_from"] = catalog[action["game_code"]], "catalog"
    elif not session["game_name"]:
        session["game_name"], session["name_from"] = action["default_game_name"], "default"


def _fresh_session(action: dict[str, Any]) -> dict[str, Any]:
    return {
        "player_id": action["player_id"],
        "session_id": action["session_id"],
        "bet_count": 0,
        "win_count": 0,
        "bet_amount": "0",
        "win_amount": "0",
        "created_at": action["at"],
        "updated_at": action["at"],
        "game_name": None,
        "name_from": None,
        "ref_code": None,
    }


async def _sessions(tx: Transaction, stamp: int, actions: list[dict[str, Any]]) -> None:
    """Casino game activity: new actions (deduplicated by event id) folded into their session's aggregate row."""
    unique = list({action["id"]: action for action in actions}.values())
    seen: set[str] = set()
    for start in range(0, len(unique), IN_CHUNK):
        condition, args = tx.any_of("id", [a["id"] for a in unique[start : start + IN_CHUNK]])
        seen.update(row[0] for row in await tx.fetch(f"SELECT id FROM casino_actions WHERE {condition}", args))  # noqa: S608
    new = [action for action in unique if action["id"] not in seen]
    if not new:
        return
    await tx.insert_many(
        "INSERT INTO casino_actions (id, session_id) VALUES (?, ?)", [[a["id"], a["session_id"]] for a in new]
    )
    session_ids = list(dict.fromkeys(action["session_id"] for action in new))
    sessions: dict[str, dict[str, Any]] = {}
    for start in range(0, len(session_ids), IN_CHUNK):
        condition, args = tx.any_of("session_id", session_ids[start : start + IN_CHUNK])
        sql = f"SELECT {', '.join(SESSION_COLUMNS)} FROM casino_sessions WHERE {condition}"  # noqa: S608
        for values in await tx.fetch(sql, args):
            row = dict(zip(SESSION_COLUMNS, values, strict=True))
            sessions[row["session_id"]] = row
    unnamed = sorted({a["game_code"] for a in new if not a["game_name"]})
    catalog: dict[str, str] = {}
    for start in range(0, len(unnamed), IN_CHUNK):
        condition, args = tx.any_of("id", unnamed[start : start + IN_CHUNK])
        found = await tx.fetch(f"SELECT id, name FROM games WHERE {condition}", args)  # noqa: S608
        catalog.update({game_id: name for game_id, name in found})
    for action in new:
        session = sessions.setdefault(action["session_id"], _fresh_session(action))
        kind = action["kind"]
        session[f"{kind}_count"] += 1
        session[f"{kind}_amount"] = format(Decimal(session[f"{kind}_amount"]) + Decimal(action["amount"]), "f")
        session["created_at"] = min(session["created_at"], action["at"])
        session["updated_at"] = max(session["updated_at"], action["at"])
        _name(session, action, catalog)
        for field in ("player_id", "game_code", "currency", "game_vendor", "balance_type", "ip", "user_agent", "brand"):
            if action.get(field) is not None:
                session[field] = action[field]
    columns = [c for c in SESSION_COLUMNS if c != "session_id"]
    sql = (
        f"INSERT INTO casino_sessions (session_id, {', '.join(columns)}, modified_at) "  # noqa: S608
        f"VALUES ({', '.join('?' * (len(columns) + 2))}) "
        f"ON CONFLICT (session_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in columns)}, "
        "modified_at = excluded.modified_at"
    )
    await tx.insert_many(sql, [[s["session_id"], *(s.get(c) for c in columns), stamp] for s in sessions.values()])
