"""End-to-end UserWise: one mixed stream (with 503s on the way) through Kafka to the UserWise sandbox, then checked."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from devkit.sandbox.faults import FaultPlan
from devkit.sandbox.server import SandboxServer
from devkit.sandbox.userwise.sandbox import AppLog, UserWiseSandbox
from devkit.testbed.broker import EmbeddedBroker
from devkit.testbed.traffic import Traffic
from tests.integration.harness import (
    DeadLetter,
    committed,
    gateway_config,
    produce,
    read_topic,
    running_gateway,
    wait_for,
)
from tests.integration.userwise_support import (
    PII_FIELDS,
    USERWISE_KEY,
    USERWISE_SECRET,
    Expected,
    collapsed,
    expected_at_userwise,
    userwise_destination,
)

ENCODED_PLAYERS = ("with space", "a/b", "jos\u00e9", "\u73a9\u5bb6", "50%", "it's(1)!", "q?x#y&z=1")
_ids = itertools.count()


def _player_story(player: str, index: int) -> list[dict[str, Any]]:
    """A profile change, a deposit, a login, a bet, and two purchases each refunded: the first refund under the
    purchase's own revenue_id, the second under a new one, for one player, in that order."""
    base = {"player_id": player}
    stamp = f"2026-11-02T10:{index:02d}:"
    return [
        {**base, "event_id": f"enc-{index}-pl", "type": "player", "occurred_at": f"{stamp}00Z", "country": "mt",
         "email": f"secret{index}@example.com"},
        {**base, "event_id": f"enc-{index}-dp", "type": "deposit", "occurred_at": f"{stamp}01Z",
         "transaction_id": f"enc-tx-{index}", "amount": "20", "currency": "EUR"},
        {**base, "event_id": f"enc-{index}-lg", "type": "login", "occurred_at": f"{stamp}02.500Z"},
        {**base, "event_id": f"enc-{index}-gr", "type": "gameround", "occurred_at": f"{stamp}03Z", "round_id": "r",
         "game_id": "g", "kind": "bet", "amount": "1", "currency": "EUR"},
        {**base, "event_id": f"enc-{index}-rv", "type": "revenue", "occurred_at": f"{stamp}04Z",
         "revenue_id": f"enc-rev-{index}", "amount": "4.99", "currency": "USD"},
        {**base, "event_id": f"enc-{index}-rf", "type": "revenue", "occurred_at": f"{stamp}05Z",
         "revenue_id": f"enc-rev-{index}", "amount": "4.99", "currency": "USD", "kind": "refund"},
        {**base, "event_id": f"enc-{index}-rv2", "type": "revenue", "occurred_at": f"{stamp}06Z",
         "revenue_id": f"enc-rev2-{index}", "amount": "2.50", "currency": "USD"},
        {**base, "event_id": f"enc-{index}-rf2", "type": "revenue", "occurred_at": f"{stamp}07Z",
         "revenue_id": f"enc-ref2-{index}", "amount": "2.50", "currency": "USD", "kind": "refund"},
    ]  # fmt: skip


@dataclass
class Run:
    """What one gateway run left behind."""

    events: list[dict[str, Any]]
    expected: Expected
    log: AppLog
    retries: float
    committed: int
    dead: list[DeadLetter]


@pytest.fixture(scope="module")
async def run(broker: EmbeddedBroker) -> AsyncIterator[Run]:
    """Deliver a realistic stream plus players whose ids need percent-encoding, through 10% injected 503s."""
    topic = f"uw-delivery-{next(_ids)}"
    await broker.create_topic(topic, partitions=3)
    await broker.create_topic(f"{topic}.dlq", partitions=1)
    events = list(Traffic(seed=31, players=150, prefix="uw").stream(2500))
    for index, player in enumerate(ENCODED_PLAYERS):
        events += _player_story(player, index)
    expected = expected_at_userwise(events)
    sandbox = UserWiseSandbox({USERWISE_KEY: "default"}, USERWISE_SECRET, keep_payloads=True, fault_seed=3)
    sandbox.faults.add(FaultPlan(kind="status", status=503, fraction=0.1, path_prefix="/api/v1/appuser/"))
    await produce(broker.bootstrap_servers, topic, events)
    async with SandboxServer(sandbox.app()) as server:
        tree = gateway_config(broker.bootstrap_servers, topic, [userwise_destination(server.url)])
        async with running_gateway(tree) as gateway:
            log = sandbox.app_log

            await wait_for(
                lambda: (
                    len(log("default").event_uids) >= len(expected.event_uids)
                    and len(log("default").revenue) >= len(expected.transaction_ids)
                    and gateway.value("gateway_in_flight_events", destination="userwise") == 0
                ),
                90,
                "the stream at the UserWise sandbox",
            )
            retries = gateway.value("gateway_delivery_retries_total", destination="userwise", reason="http_503")
    offsets = await committed(broker.bootstrap_servers, f"gw-{topic}.userwise", topic)
    dead = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", timeout=2)
    yield Run(events, expected, sandbox.app_log("default"), retries, sum(o or 0 for o in offsets.values()), dead)


def test_every_event_uid_arrives_once_despite_retries(run: Run) -> None:
    """Every expected event_uid is at UserWise exactly once, though 503s forced retries: acknowledged requests are
    never re-sent."""
    assert run.retries > 0
    assert set(run.log.event_uids) == run.expected.event_uids
    assert run.log.duplicates == 0


def test_every_revenue_transaction_id_arrives_with_its_sign(run: Run) -> None:
    """Successful deposits and player revenue arrive under their transaction ids; each refund is negative under a
    key of its own, so at the sandbox (which upserts by transaction_id, as UserWise does) both purchases net to 0
    whether the refund reused the purchase's id or not."""
    assert set(run.log.revenue) == run.expected.transaction_ids
    for index in range(len(ENCODED_PLAYERS)):
        assert run.log.revenue[f"enc-rev-{index}"]["revenue"] == 4.99
        refund = run.log.revenue[f"enc-rev-{index}:refund:enc-{index}-rf"]
        assert (refund["revenue"], refund["revenue_type"]) == (-4.99, "refund")
        assert run.log.revenue[f"enc-ref2-{index}:refund:enc-{index}-rf2"]["revenue"] == -2.50
        player = [
            item["revenue"]
            for key, item in run.log.revenue.items()
            if key.startswith(("enc-rev", "enc-ref")) and key.split(":")[0].endswith(f"-{index}")
        ]
        assert round(sum(player), 2) == 0


def test_every_attribute_ends_with_its_last_value(run: Run) -> None:
    """Each player's attributes at UserWise equal the last value the stream gave them (profile fields, last_login)."""
    expected = {player: values for player, values in run.expected.attributes.items() if values}
    assert run.log.attributes == expected


def test_per_player_order_holds_across_the_three_endpoints(run: Run) -> None:
    """Each player's events, revenue events and attribute upserts arrived in source order, across endpoints."""
    assert set(run.log.timeline) <= set(run.expected.timelines)
    for player, timeline in run.expected.timelines.items():
        assert collapsed(run.log.timeline.get(player, [])) == collapsed(timeline), player


def test_pii_is_not_sent_by_default(run: Run) -> None:
    """No email, phone, name or other PII field (or value) reached UserWise, in attributes or event payloads."""
    emails = {event["email"] for event in run.events if "email" in event}
    phones = {event["phone"] for event in run.events if "phone" in event}
    assert emails and phones
    for attributes in run.log.attributes.values():
        assert not set(attributes) & set(PII_FIELDS)
        assert not set(map(str, attributes.values())) & (emails | phones)
    for item in run.log.payloads.values():
        for attribute in item["attributes"]:
            assert attribute["name"] not in PII_FIELDS
            assert attribute["value"] not in emails | phones


def test_ids_needing_percent_encoding_sign_and_deliver(run: Run) -> None:
    """Players with spaces, `/`, unicode, `%`, `?#&=` in their ids got all their records, under the decoded id."""
    for index, player in enumerate(ENCODED_PLAYERS):
        uids = [ident for endpoint, ident in run.log.timeline[player] if endpoint == "events"]
        assert uids == [f"enc-{index}-dp", f"enc-{index}-lg", f"enc-{index}-gr"], player
        assert run.log.attributes[player] == {"country": "MT", "last_login": f"2026-11-02T10:{index:02d}:02Z"}


def test_offsets_reach_the_end_and_nothing_is_dead_lettered(run: Run) -> None:
    """Every message is settled (committed) and none went to the DLQ."""
    assert run.committed == len(run.events)
    assert run.dead == []
