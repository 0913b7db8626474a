"""One map dispatch per connector: it maps by event type, and the connector's default events are its types."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest

from connectors.enable3 import connector as enable3
from connectors.intarget import connector as intarget
from connectors.unibo import connector as unibo
from connectors.userwise import connector as userwise
from gateway.connector import Connector, MapDispatch, VendorRecord
from gateway.events import Event, decode

LOGIN = {"event_id": "e1", "type": "login", "occurred_at": "2026-01-01T00:00:00Z", "brand": "b", "player_id": "p1"}


def _login(event: Event, options: str) -> Sequence[VendorRecord]:
    return (VendorRecord(route=options, body=b"{}", key=event.player_id or "", record_id=event.event_id),)


def test_dispatch_maps_by_type_and_nothing_else() -> None:
    """The mapper of the event's type makes the records, with the options; another type makes none."""
    dispatch: MapDispatch[str] = MapDispatch({"login": _login})
    login = decode(orjson.dumps(LOGIN))
    assert [(r.route, r.key, r.record_id) for r in dispatch(login, "route-a")] == [("route-a", "p1", "e1")]
    deposit = {**LOGIN, "type": "custom", "name": "level_up"}
    assert dispatch(decode(orjson.dumps(deposit)), "route-a") == ()
    assert dispatch.events == frozenset({"login"})


@pytest.mark.parametrize("connector", [unibo, enable3, userwise, intarget], ids=lambda c: c.name)
def test_default_events_are_the_dispatch_types(connector: Connector) -> None:
    """Each connector's default events are exactly the types its mapping dispatches (written once, in the dispatch)."""
    dispatch = connector.map
    assert isinstance(dispatch, MapDispatch)
    assert connector.defaults.events == dispatch.events
