"""Paper-mode start checks that need the replay data or the store: a configuration that would
quietly do nothing, or quietly not apply, is refused (exit 2) before the first step.

* ``replay.start`` past the data's last day used to persist a replay cursor beyond the data:
  that run did nothing, and so did every later one on the same store, whatever the config
  said by then.
* ``paper.starting_cash`` is read only when the simulated account is created; changing it on
  an existing store was silently ignored, so a run reported returns on an account the
  operator did not configure. The value the account started with is kept in the store.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from bot.config import ReplaySettings
from bot.store.repo import StateStore

STARTING_CASH_KEY = "paper.starting_cash"


def replay_window_problem(replay: ReplaySettings, first: date, last: date) -> str | None:
    """Why this replay window has no day to run, or None. ``first``/``last``: the data's."""
    covers = f"the replay data covers {first}..{last}"
    start = replay.start
    if start is None:
        start = first + timedelta(days=replay.warmup_days)
        if start > last:
            return (f"replay.warmup_days: {replay.warmup_days} days after the data's first day "
                    f"is {start}, after its last day ({covers}); lower replay.warmup_days or "
                    "set replay.start")
    elif start > last:
        return (f"replay.start: {start} is after the last day of the data ({covers}); choose "
                "a start in that range")
    if replay.end is not None and replay.end < start:
        return f"replay.end: {replay.end} is before the first simulated day {start}"
    return None


def record_starting_cash(store: StateStore, configured: float, resumed: bool) -> str | None:
    """Keep the simulated account's starting cash in the store; say why a resumed account
    cannot take a different one (None: fine). A store written before this check is adopted
    with the configured value: what it started with is no longer known."""
    value = Decimal(str(configured))
    recorded = store.get(STARTING_CASH_KEY)
    if resumed and recorded is not None:
        if Decimal(str(recorded)) == value:
            return None
        return (f"paper.starting_cash: the account in {store.location} was started with "
                f"{recorded} USDT, not {value}; set paper.starting_cash = {recorded} again, or "
                f"delete {store.location} to start a fresh account with {value}")
    if recorded is None or Decimal(str(recorded)) != value:
        store.put(STARTING_CASH_KEY, str(value))
    return None
