"""The clock of a daemon trading a real venue.

Kept apart from the venue wiring (``bot.service.venue``) so that paper mode, which never
talks to a venue, does not import ccxt to learn what kind of clock it is not running on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


class WallClock:
    """The clock of a live daemon: decisions are taken ``as of`` the current UTC hour.

    Every price signal is a daily candle stamped at its close (00:00 UTC), so any ``as_of``
    within a day sees the same closes; funding and fetch failures change within the day,
    though. Aligning to the hour lets the hourly signal job fetch anew (and so retry a fetch
    that failed and left a signal stale), while cycles repeated within one hour reuse one
    snapshot and, unless the book moved, one decision id and its orders' client ids. The risk
    watch, which must be free to act again within the hour, salts its ids with the current
    minute instead (:meth:`salt_time`).
    """

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))
        self.cursor = self.as_of()
        self.resumed = False

    def as_of(self) -> datetime:
        return self._now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)

    def salt_time(self) -> datetime:
        return self._now().astimezone(UTC).replace(second=0, microsecond=0)

    def advance(self) -> datetime:
        self.cursor = self.as_of()
        return self.cursor

    def persist(self) -> None:
        """Nothing to keep: the venue holds the positions, the store the decisions."""
