"""Turning one batch into UserWise requests: per player, runs of one route, in source order, each body built once."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from connectors.userwise.mapping import ATTRIBUTES
from gateway.connector import VendorRecord
from gateway.immutable import immutable


@immutable
class PlannedRequest:
    """One POST: the player, the endpoint, the body bytes, and which batch records it carries."""

    player: str
    route: str
    body: bytes
    indexes: tuple[int, ...]


def _attributes_body(records: Sequence[VendorRecord]) -> bytes:
    """`{"attributes": [...]}` with each name once, holding its latest value: no upsert order to guess."""
    latest: dict[str, object] = {}
    for record in records:
        for item in orjson.loads(record.body):
            latest.pop(item["name"], None)  # re-insert: the last change decides the position too
            latest[item["name"]] = item
    return b'{"attributes":' + orjson.dumps(list(latest.values())) + b"}"


def request_body(route: str, records: Sequence[VendorRecord]) -> bytes:
    """The JSON body for `records` of one route, from item bytes serialized once at mapping time."""
    if route == ATTRIBUTES:
        return _attributes_body(records)
    return b'{"%b":[%b]}' % (route.encode(), b",".join(record.body for record in records))


def plan(records: Sequence[VendorRecord], max_items: int) -> list[list[PlannedRequest]]:
    """Requests grouped per player (players in order of first appearance), each player's list in source order.

    Consecutive records of one player and one route share a request (at most `max_items`); a change of route starts
    a new request, which keeps the player's order across the three endpoints.
    """
    players: dict[str, list[list[int]]] = {}
    for index, record in enumerate(records):
        runs = players.setdefault(record.key, [])
        last = runs[-1] if runs else None
        if last is not None and records[last[0]].route == record.route and len(last) < max_items:
            last.append(index)
        else:
            runs.append([index])
    planned: list[list[PlannedRequest]] = []
    for player, runs in players.items():
        requests = []
        for run in runs:
            route = records[run[0]].route
            body = request_body(route, [records[index] for index in run])
            requests.append(PlannedRequest(player, route, body, tuple(run)))
        planned.append(requests)
    return planned
