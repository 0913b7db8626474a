"""Realistic, reproducible player-event traffic for the demo, the benchmarks and the integration tests."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

# Share of each type in a casino's stream: game rounds dominate, payments and profile changes are rarer.
MIX: tuple[tuple[str, int], ...] = (
    ("gameround", 60),
    ("login", 8),
    ("deposit", 10),
    ("withdrawal", 4),
    ("player", 6),
    ("game", 2),
    ("custom", 3),
    ("revenue", 1),
    ("wallet", 2),
    ("bonus", 1),
    ("segment", 1),
    ("sports_bet", 2),
)
# A sports selection with its event and tournament complete (InTarget holds back an event without its start date).
SELECTION = {
    "selection_id": "s1",
    "event_id": "m1",
    "market": "1x2",
    "ratio": "1.85",
    "event_title": "A - B",
    "event_start": "2026-11-01T18:00:00Z",
    "tournament_id": "league",
    "tournament_start": "2026-08-01T00:00:00Z",
}
CURRENCIES = ("EUR", "USD", "BRL", "CAD", "USDT")
METHODS = ("card", "pix", "skrill", "crypto", None)
COUNTRIES = ("DE", "BR", "CA", "FI", "MT")


@dataclass
class Traffic:
    """Generates event dicts; the same seed gives the same stream."""

    seed: int = 7
    players: int = 1000
    brands: tuple[str, ...] = ("default",)
    start: datetime = field(default_factory=lambda: datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    prefix: str = "ev"

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._types = [name for name, weight in MIX for _ in range(weight)]
        self._count = 0

    def _common(self, kind: str) -> dict[str, Any]:
        rng = self._rng
        self._count += 1
        player = rng.randrange(self.players)
        occurred = self.start + timedelta(milliseconds=self._count * 37)
        event: dict[str, Any] = {
            "event_id": f"{self.prefix}-{self._count:09d}",
            "type": kind,
            "occurred_at": occurred.isoformat().replace("+00:00", "Z"),
            "player_id": f"p{player:06d}",
        }
        if len(self.brands) > 1 or self.brands[0] != "default":
            event["brand"] = self.brands[player % len(self.brands)]
        return event

    def event(self, kind: str | None = None) -> dict[str, Any]:  # noqa: PLR0912 - one branch per event type
        """One event of `kind` (or a type drawn from the mix)."""
        rng = self._rng
        kind = kind or rng.choice(self._types)
        event = self._common(kind)
        money = f"{rng.randrange(100, 500_000) / 100:.2f}"
        currency = rng.choice(CURRENCIES[:4])
        if kind in ("deposit", "withdrawal"):
            status = rng.choices(("success", "pending", "failed"), (90, 6, 4))[0]
            event.update(transaction_id=f"tx-{event['event_id']}", amount=money, currency=currency, status=status)
            method = rng.choice(METHODS)
            if method:
                event["method"] = method
            if kind == "deposit" and currency == "EUR":
                event["amount_eur"] = money
        elif kind == "gameround":
            event.update(
                round_id=f"r-{rng.randrange(10**9)}",
                game_id=f"g{rng.randrange(300)}",
                kind=rng.choice(("bet", "bet", "win")),
                amount=float(money) if rng.random() < 0.5 else money,
                currency=currency,
                is_bonus=rng.random() < 0.1,
            )
        elif kind == "login":
            event.update(success=rng.random() < 0.95, ip="203.0.113.7", user_agent="Mozilla/5.0")
        elif kind == "player":
            event.update(
                username=f"lucky{rng.randrange(10**6)}",
                country=rng.choice(COUNTRIES),
                currency=currency,
                email=f"player{rng.randrange(10**6)}@example.com",
                phone="+15550100",
                first_name="Alex",
                consent_email=rng.random() < 0.5,
                is_blocked=False,
                tags=["vip"] if rng.random() < 0.1 else [],
            )
            if rng.random() < 0.3:
                event["registered_at"] = (self.start - timedelta(days=rng.randrange(400))).isoformat()
            if rng.random() < 0.1:
                event["affiliate"] = None  # an explicit null clears the field
        elif kind == "game":
            event.pop("player_id")
            event.update(
                game_id=f"g{rng.randrange(300)}",
                name="Book of Gains",
                provider="Acme",
                categories=["slots"],
                has_freespins=rng.choice((True, False, None)),
            )
        elif kind == "custom":
            event.update(name="mission_step", value=rng.randrange(1, 5), tags=["daily"])
        elif kind == "revenue":
            event.pop("player_id")
            event.update(revenue_id=f"rev-{event['event_id']}", amount=money, currency="USDT")
        elif kind == "wallet":
            event.update(wallet_id=f"w-{event['player_id']}", balance=money, currency=currency)
        elif kind == "bonus":
            event.update(assignment_id=f"a-{event['event_id']}", bonus_id="b1", status="active")
        elif kind == "segment":
            event.update(segments=["high_roller"], action="add")
        elif kind == "sports_bet":
            event.update(
                bet_id=f"bet-{event['event_id']}",
                status="open",
                bet_type="single",
                stake=money,
                currency=currency,
                selections=[dict(SELECTION)],
            )
        return event

    def stream(self, count: int) -> Iterator[dict[str, Any]]:
        """`count` events from the mix."""
        for _ in range(count):
            yield self.event()


def message(event: dict[str, Any]) -> tuple[bytes | None, bytes]:
    """The Kafka key (player_id, else game_id) and value for an event dict."""
    key = event.get("player_id") or event.get("game_id")
    return (key.encode() if isinstance(key, str) else None), orjson.dumps(event)


def unibo_takes(event: dict[str, Any]) -> bool:
    """Whether Unibo should receive this event, by the vendor's rules (independent of the connector's code)."""
    kind = event["type"]
    if kind in ("deposit", "withdrawal"):
        return bool(event.get("status", "success") == "success")
    if kind == "login":
        return bool(event.get("success", True))
    if kind == "gameround":
        return float(event["amount"]) > 0  # Unibo's amounts are positive: a zero bet or win is not sent
    return kind in ("player", "game")
