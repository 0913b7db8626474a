"""Enable3's 404 from /api/v1/event ("User not found or unauthorized") told apart from a wrong base_url or key.

Enable3 creates users on their first event, so a real "user not found" is rare, while a wrong `base_url` or key
answers 404 to every request. One 404 dead-letters its record (the core's REJECT); a run of 404s for several
different players, with no success in between, halts the tenant instead: nothing more is dead-lettered, the events
are kept, and the core's prober re-sends a batch every `retry.halt_probe` seconds until one is accepted.
"""

from __future__ import annotations

NOT_FOUND = 404


class NotFoundRuns:
    """Per tenant, the different players whose /event answered 404 since that tenant's last accepted request."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold  # 0: never halt
        self._players: dict[int, set[str]] = {}

    def accepted(self, tenant: int) -> None:
        """A request of this tenant was accepted: the key and URL are right, the run ends."""
        self._players.pop(tenant, None)

    def not_found(self, tenant: int, player: str) -> bool:
        """Count a 404 for `player`; True when the tenant's run now covers `threshold` different players."""
        if self.threshold <= 0:
            return False
        players = self._players.setdefault(tenant, set())
        if len(players) < self.threshold:
            players.add(player)
        return len(players) >= self.threshold

    def message(self) -> str:
        """The halt's detail: what the run means and what to check."""
        return (
            f"Enable3 answered 404 to /api/v1/event for {self.threshold} different players in a row, with no request "
            "accepted in between: check the destination's base_url and the tenant's api_key (Enable3's 404 means "
            "'user not found or unauthorized'). The tenant is halted, its events are kept, and a probe resumes it."
        )
