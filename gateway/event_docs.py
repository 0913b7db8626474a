"""The description and an example of each event type, for `gateway schema` (producers read them there)."""

from __future__ import annotations

from typing import Any, Final

from pydantic import ConfigDict

EVENT_DOCS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "deposit": (
        (
            "A deposit (money in). Only `status: success` reaches the push vendors; InTarget stores every status. "
            "`transaction_id` is the payment's id, stable across updates of one payment."
        ),
        {
            "event_id": "dep-7f3a",
            "type": "deposit",
            "occurred_at": "2026-12-01T10:15:00Z",
            "player_id": "p-1001",
            "brand": "casino-a",
            "transaction_id": "tx-88121",
            "amount": "50.00",
            "currency": "EUR",
            "status": "success",
            "method": "card",
            "amount_eur": "50.00",
        },
    ),
    "withdrawal": (
        "A withdrawal (money out), with the same fields as a deposit.",
        {
            "event_id": "wd-19c2",
            "type": "withdrawal",
            "occurred_at": "2026-12-01T11:02:00Z",
            "player_id": "p-1001",
            "transaction_id": "tx-88190",
            "amount": "120.00",
            "currency": "EUR",
            "status": "pending",
            "method": "bank_transfer",
        },
    ),
    "gameround": (
        (
            "One casino bet or one win (`kind`), linked by `round_id`; a round with a win is two events. Rounds of one "
            "`session_id` aggregate into one InTarget casino session."
        ),
        {
            "event_id": "gr-55a0-bet",
            "type": "gameround",
            "occurred_at": "2026-12-01T10:20:03Z",
            "player_id": "p-1001",
            "round_id": "r-998877",
            "game_id": "book-of-dead",
            "kind": "bet",
            "amount": "1.00",
            "currency": "EUR",
            "session_id": "s-4411",
            "game_name": "Book of Dead",
            "game_vendor": "Play'n GO",
        },
    ),
    "login": (
        "A login attempt; `success: false` for a failed one.",
        {
            "event_id": "login-3c9e",
            "type": "login",
            "occurred_at": "2026-12-01T10:14:30Z",
            "player_id": "p-1001",
            "success": True,
            "ip": "203.0.113.7",
            "host": "casino-a.example",
        },
    ),
    "player": (
        (
            "A registration or a profile change, as a partial update: a field left out is unchanged, an explicit null "
            "clears it. Personal data (names, email, phone...) goes only to the vendors configured to take it."
        ),
        {
            "event_id": "pl-0a1b",
            "type": "player",
            "occurred_at": "2026-12-01T09:00:00Z",
            "player_id": "p-1001",
            "registered_at": "2026-12-01T09:00:00Z",
            "country": "DE",
            "currency": "EUR",
            "locale": "de_DE",
            "consent_email": True,
            "tags": ["vip"],
            "custom": {"loyalty_tier": "gold"},
        },
    ),
    "game": (
        (
            "A game catalog entry (not about a player: a `player_id` is ignored). InTarget uses it to name casino "
            "sessions."
        ),
        {
            "event_id": "game-book-of-dead-v3",
            "type": "game",
            "occurred_at": "2026-12-01T00:00:00Z",
            "game_id": "book-of-dead",
            "name": "Book of Dead",
            "provider": "Play'n GO",
            "categories": ["slots"],
            "has_freespins": True,
        },
    ),
    "custom": (
        (
            "An operator-defined event, e.g. a mission trigger: `name` becomes the vendor's event name, `value` what a "
            "mission counts."
        ),
        {
            "event_id": "cu-71d4",
            "type": "custom",
            "occurred_at": "2026-12-01T10:30:00Z",
            "player_id": "p-1001",
            "name": "tournament_joined",
            "value": 1,
            "tags": ["weekend"],
            "attributes": {"tournament": "spring-cup"},
        },
    ),
    "revenue": (
        (
            "Revenue. With a `player_id` it is the player's (UserWise); without one it is operator-level revenue "
            "(Enable3, in USDT only). A refund is `kind: refund` under its own `revenue_id`."
        ),
        {
            "event_id": "rev-2026-12-01",
            "type": "revenue",
            "occurred_at": "2026-12-01T23:59:59Z",
            "revenue_id": "ggr-2026-12-01",
            "amount": "15230.75",
            "currency": "USDT",
        },
    ),
    "segment": (
        "Adds the player to, or removes them from, named segments.",
        {
            "event_id": "seg-9e01",
            "type": "segment",
            "occurred_at": "2026-12-01T12:00:00Z",
            "player_id": "p-1001",
            "segments": ["high_rollers"],
            "action": "add",
        },
    ),
    "wallet": (
        "A snapshot of one wallet's balance (InTarget's wallets feed).",
        {
            "event_id": "wal-5521",
            "type": "wallet",
            "occurred_at": "2026-12-01T10:16:00Z",
            "player_id": "p-1001",
            "wallet_id": "w-1001-eur",
            "balance": "250.40",
            "currency": "EUR",
            "wallet_type": "real",
        },
    ),
    "bonus": (
        "A change of one bonus assignment (InTarget's bonus assignments and bonus list).",
        {
            "event_id": "bon-77aa",
            "type": "bonus",
            "occurred_at": "2026-12-01T10:40:00Z",
            "player_id": "p-1001",
            "assignment_id": "ba-3301",
            "bonus_id": "welcome-100",
            "bonus_name": "Welcome 100%",
            "status": "active",
            "end_date": "2026-12-31T23:59:59Z",
        },
    ),
    "sports_bet": (
        (
            "A sports bet placed or changed, with its selections, their sport events and tournaments (InTarget's sports"
            " feeds)."
        ),
        {
            "event_id": "sb-6d2f",
            "type": "sports_bet",
            "occurred_at": "2026-12-01T18:05:00Z",
            "player_id": "p-1001",
            "bet_id": "bet-7781",
            "status": "accepted",
            "bet_type": "single",
            "stake": "10.00",
            "currency": "EUR",
            "selections": [
                {
                    "selection_id": "sel-1",
                    "event_id": "match-4410",
                    "market": "1x2",
                    "ratio": "2.10",
                    "event_title": "Team A - Team B",
                    "event_type": "match",
                    "event_start": "2026-12-01T19:00:00Z",
                    "tournament_id": "t-bundesliga",
                    "tournament_name": "Bundesliga",
                    "sport_name": "Football",
                }
            ],
        },
    ),
}
"""Event type -> (description, example). A test validates every example against the contract."""


def documented(event_type: str) -> ConfigDict:
    """The model_config adding `event_type`'s description and example to its JSON Schema."""
    description, example = EVENT_DOCS[event_type]
    return ConfigDict(json_schema_extra={"description": description, "examples": [example]})
