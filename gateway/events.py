"""The normalized event contract (docs/event-contract.md) as pydantic models, and `decode`, the pipeline's hot path."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, TypeAlias, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from gateway.errors import InvalidEvent, InvalidJson
from gateway.event_decoding import describe_failure, may_hold_inexact_numbers, quote_inexact_numbers
from gateway.event_docs import documented
from gateway.event_fields import (
    CRYPTO_TICKERS,
    EXACT_NUMBERS_CONTEXT,
    MAX_CUSTOM_FIELDS,
    Brand,
    Country,
    Currency,
    CustomKey,
    CustomValue,
    EventId,
    Money,
    NaturalId,
    NonEmptyStr,
    NonNegativeMoney,
    PlayerId,
    Scalar,
    UtcDatetime,
)

__all__ = [
    "CRYPTO_TICKERS",
    "EVENT_TYPES",
    "BaseEvent",
    "BonusEvent",
    "CustomEvent",
    "DepositEvent",
    "Event",
    "EventType",
    "GameEvent",
    "GameRoundEvent",
    "LoginEvent",
    "PlayerEvent",
    "RevenueEvent",
    "SegmentEvent",
    "SportsBetEvent",
    "SportsSelection",
    "WalletEvent",
    "WithdrawalEvent",
    "decode",
    "json_schema",
]

EventType: TypeAlias = Literal[
    "deposit", "withdrawal", "gameround", "login", "player", "game",
    "custom", "revenue", "segment", "wallet", "bonus", "sports_bet",
]  # fmt: skip
EVENT_TYPES: Final[tuple[EventType, ...]] = get_args(EventType)
"""Every event type, in the contract's order."""

StrictDate: TypeAlias = Annotated[date, Strict()]
"""A calendar date, YYYY-MM-DD only (no timestamps, no date-times)."""


class BaseEvent(BaseModel):
    """Fields common to every event. `player_id` is required by most types (see `_PlayerScopedEvent`)."""

    model_config = ConfigDict(
        extra="allow",  # forward compatibility: unknown fields are kept (model_extra) and ignored
        frozen=True,  # connectors share one decoded event; none can change what the next one sees
        hide_input_in_errors=True,  # a ValidationError printed anywhere must not carry player data
    )

    event_id: EventId
    type: EventType
    occurred_at: UtcDatetime
    player_id: PlayerId | None = None
    brand: Brand = "default"
    schema_version: Literal[1] = 1


class _PlayerScopedEvent(BaseEvent):
    """An event about one player: `player_id` is required."""

    player_id: PlayerId


class _MoneyMovementEvent(_PlayerScopedEvent):
    """The fields shared by deposits and withdrawals."""

    transaction_id: NaturalId
    amount: NonNegativeMoney
    currency: Currency
    status: Literal["success", "pending", "failed", "cancelled"] = "success"
    method: str | None = None
    amount_eur: Money | None = None
    money_type: Literal["real", "bonus"] = "real"
    wallet_id: NaturalId | None = None
    requisite: str | None = Field(default=None, description="Masked payment requisite (card or account).")
    ref_code: str | None = None
    comment: str | None = None


class DepositEvent(_MoneyMovementEvent):
    """Money in."""

    model_config = documented("deposit")

    type: Literal["deposit"] = "deposit"


class WithdrawalEvent(_MoneyMovementEvent):
    """Money out."""

    model_config = documented("withdrawal")

    type: Literal["withdrawal"] = "withdrawal"


def _session_default(data: dict[str, Any]) -> str:
    # Only called when round_id validated; "" is unreachable and keeps the factory total.
    round_id = data.get("round_id", "")
    return round_id if isinstance(round_id, str) else ""


class GameRoundEvent(_PlayerScopedEvent):
    """One casino bet or one win."""

    model_config = documented("gameround")

    type: Literal["gameround"] = "gameround"
    round_id: NaturalId
    game_id: NaturalId
    kind: Literal["bet", "win"]
    amount: NonNegativeMoney
    currency: Currency
    is_bonus: StrictBool = False
    session_id: NaturalId = Field(default_factory=_session_default, description="Game session; defaults to round_id.")
    transaction_id: NaturalId | None = None
    game_name: str | None = None
    game_vendor: str | None = None
    ip: str | None = None
    user_agent: str | None = None


class LoginEvent(_PlayerScopedEvent):
    """A login attempt."""

    model_config = documented("login")

    type: Literal["login"] = "login"
    success: StrictBool = True
    ip: str | None = None
    user_agent: str | None = None
    host: str | None = None
    traffic_source: str | None = None
    ref_code: str | None = None


class PlayerEvent(_PlayerScopedEvent):
    """A registration or profile change: a partial update where absent = unchanged and null = cleared; see `changes`."""

    model_config = documented("player")

    type: Literal["player"] = "player"
    registered_at: UtcDatetime | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    gender: Literal["male", "female", "other"] | None = None
    birthday: StrictDate | None = Field(default=None, description="YYYY-MM-DD")
    country: Country | None = None
    city: str | None = None
    locale: str | None = None
    timezone: str | None = Field(default=None, description="IANA time zone name, e.g. Europe/Berlin.")
    currency: Currency | None = None
    affiliate: str | None = None
    ref_code: str | None = None
    traffic_source: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    tags: list[str] | None = None
    status: str | None = None
    is_blocked: StrictBool | None = None
    self_excluded: StrictBool | None = None
    consent_email: StrictBool | None = None
    consent_sms: StrictBool | None = None
    consent_push: StrictBool | None = None
    email_confirmed_at: UtcDatetime | None = None
    phone_confirmed_at: UtcDatetime | None = None
    push_token: str | None = Field(default=None, repr=False)
    auto_login_token: str | None = Field(default=None, repr=False)
    custom: dict[CustomKey, CustomValue] | None = Field(default=None, max_length=MAX_CUSTOM_FIELDS)

    def changes(self) -> dict[str, Any]:
        """The profile fields this message carried, in contract order: an explicit null is present as None."""
        given = self.model_fields_set
        return {name: getattr(self, name) for name in _PLAYER_PROFILE_FIELDS if name in given}


class GameEvent(BaseEvent):
    """A game catalog entry; not about a player, so a `player_id` in the message is ignored."""

    model_config = documented("game")

    type: Literal["game"] = "game"
    player_id: SkipJsonSchema[None] = Field(default=None, exclude=True, repr=False)
    game_id: NaturalId
    name: str | None = None
    provider: str | None = None
    categories: list[str] | None = None
    features: list[str] | None = None
    themes: list[str] | None = None
    device: str | None = None
    has_freespins: StrictBool | None = None

    @field_validator("player_id", mode="plain")
    @classmethod
    def _ignore_player_id(cls, value: object) -> None:
        return None


class CustomEvent(_PlayerScopedEvent):
    """An operator-defined event, e.g. a mission trigger."""

    model_config = documented("custom")

    type: Literal["custom"] = "custom"
    name: NonEmptyStr
    value: Money = Decimal(1)
    tags: list[str] = Field(default_factory=list)
    attributes: dict[NonEmptyStr, Scalar] = Field(default_factory=dict)


class RevenueEvent(BaseEvent):
    """Revenue; without `player_id` it is operator-level revenue."""

    model_config = documented("revenue")

    type: Literal["revenue"] = "revenue"
    revenue_id: NaturalId
    amount: Money
    currency: Currency
    kind: Literal["purchase", "refund"] = "purchase"
    product_id: NaturalId | None = None


class SegmentEvent(_PlayerScopedEvent):
    """Adds the player to, or removes them from, named segments."""

    model_config = documented("segment")

    type: Literal["segment"] = "segment"
    segments: list[NonEmptyStr] = Field(min_length=1)
    action: Literal["add", "remove"]


class WalletEvent(_PlayerScopedEvent):
    """A wallet balance snapshot."""

    model_config = documented("wallet")

    type: Literal["wallet"] = "wallet"
    wallet_id: NaturalId
    balance: Money
    currency: Currency
    wallet_type: NonEmptyStr = Field(default="real", description="`real`, `bonus` or any other operator text.")


class BonusEvent(_PlayerScopedEvent):
    """A change of one bonus assignment."""

    model_config = documented("bonus")

    type: Literal["bonus"] = "bonus"
    assignment_id: NaturalId
    bonus_id: NaturalId
    bonus_name: str | None = None
    status: Literal["active", "used", "expired", "cancelled"]
    end_date: UtcDatetime | None = None


class SportsSelection(BaseModel):
    """One selection (odd) of a sports bet, with its sport event and tournament."""

    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)

    selection_id: NaturalId
    event_id: NaturalId = Field(description="The sport event's id (not the message's event_id).")
    market: NonEmptyStr
    ratio: Money | None = None
    status: str | None = Field(default=None, description="e.g. win, not_resulted, running, refunded, lost...")
    event_title: str | None = None
    event_status: str | None = Field(default=None, description="e.g. not_started, live, ended, cancelled...")
    event_type: Literal["match", "outright"] | None = None
    event_start: UtcDatetime | None = None
    tournament_id: NaturalId | None = None
    tournament_name: str | None = None
    tournament_start: UtcDatetime | None = None
    tournament_end: UtcDatetime | None = None
    sport_id: NaturalId | None = None
    sport_name: str | None = None
    country_code: str | None = Field(default=None, description="As the sportsbook gives it, e.g. DE or International.")


class SportsBetEvent(_PlayerScopedEvent):
    """A sports bet placed or changed, with its selections."""

    model_config = documented("sports_bet")

    type: Literal["sports_bet"] = "sports_bet"
    bet_id: NaturalId
    status: NonEmptyStr = Field(description="e.g. accepted, declined, unsettled, placed, win, lost, cashout...")
    bet_type: NonEmptyStr = Field(description="e.g. single, express, system.")
    stake: Money | None = None
    win_amount: Money | None = None
    currency: Currency | None = None
    ref_code: str | None = None
    selections: list[SportsSelection] = Field(default_factory=list)


_PLAYER_PROFILE_FIELDS: Final = tuple(name for name in PlayerEvent.model_fields if name not in BaseEvent.model_fields)

Event: TypeAlias = Annotated[
    DepositEvent
    | WithdrawalEvent
    | GameRoundEvent
    | LoginEvent
    | PlayerEvent
    | GameEvent
    | CustomEvent
    | RevenueEvent
    | SegmentEvent
    | WalletEvent
    | BonusEvent
    | SportsBetEvent,
    Field(discriminator="type"),
]
"""Any normalized event; the `type` field selects the model."""

_EVENT_ADAPTER: Final[TypeAdapter[Event]] = TypeAdapter(Event)
# pydantic-core's validator itself: TypeAdapter.validate_json is a Python wrapper that passes five keyword defaults on
# (about 2,500 instructions an event); decode needs none of them.
_validate_event_json: Final = _EVENT_ADAPTER.validator.validate_json


def _holds_decimals(annotation: Any) -> bool:
    """Whether a field of this type can hold a Decimal read from a JSON number (directly, in a union, list, map or
    nested model): only then can the parser's f64 have altered a number the event keeps."""
    if annotation is Decimal:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(_holds_decimals(field.annotation) for field in annotation.model_fields.values())
    return any(_holds_decimals(argument) for argument in get_args(annotation))


_EXACT_NUMBER_MODELS: Final = frozenset(model for model in get_args(get_args(Event)[0]) if _holds_decimals(model))
"""The event models with a Decimal somewhere: decode checks their messages for numbers f64 would alter, no others."""


def decode(raw: bytes | None) -> Event:
    """Parse and validate one Kafka message value.

    Raises `InvalidJson` (not UTF-8, not JSON, not an object, or a tombstone) or `InvalidEvent` (fails the contract),
    each with a one-line detail of at most 1024 characters that names fields but never echoes their values.
    """
    if raw is None:
        raise InvalidJson("empty message (tombstone); expected a JSON object")
    try:
        event: Event = _validate_event_json(raw)
        if type(event) in _EXACT_NUMBER_MODELS and may_hold_inexact_numbers(raw):
            event = _revalidate_exactly(raw, event)
    except ValidationError as exc:
        raise describe_failure(exc, EVENT_TYPES) from None
    except (ValueError, ArithmeticError, RecursionError) as exc:  # defensive: the pipeline must never stop on a message
        raise InvalidEvent(f"cannot validate the event ({type(exc).__name__})") from None
    return event


def _revalidate_exactly(raw: bytes, event: Event) -> Event:
    """Validate again with the numbers f64 would alter quoted, so that they reach Decimal from their text.

    The first pass, on the original bytes, has decided validity, so quoting cannot make a number acceptable where the
    contract wants text; the quoted literals go in the context so that custom values still read them as numbers.
    """
    rewritten, quoted = quote_inexact_numbers(raw)
    if not quoted:
        return event
    return _EVENT_ADAPTER.validate_json(rewritten, context={EXACT_NUMBERS_CONTEXT: quoted})


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `Event`, for producers (`gateway schema`)."""
    schema = _EVENT_ADAPTER.json_schema(mode="validation")
    for definition in schema.get("$defs", {}).values():
        properties = definition.get("properties", {})
        if "event_id" in properties and "type" in properties:  # the tag is required on the wire, defaulted in Python
            required = definition.setdefault("required", [])
            if "type" not in required:
                required.insert(0, "type")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:event-gateway:normalized-event:1",
        "title": "Normalized player event, schema_version 1",
        "description": "One Kafka message value of the event gateway's input topic (UTF-8 JSON object). "
        "Unknown fields are accepted and ignored.",
        **schema,
    }
