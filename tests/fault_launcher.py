"""``tests.demo_launcher`` on a compressed clock, for the fault schedule (``fault_harness``).

The daemon stays production code; only time is scaled so that a thousand cycles, outages
"of minutes" and the risk watch's interval fit in a test run. ``SECTORBOT_TEST_TIME_SCALE``
(default 60: one second stands for one minute) speeds the daemon's ``WallClock`` up, so a
decision hour (one signal snapshot, one decision id) lasts a minute of real time. Less
compressed, so that a retry still spaces its attempts over an outage:

* the adapter's retry pauses are divided by 10 (``RetryPolicy``: backoff 0.05-0.8 s,
  lookup pauses 0.05 s, the 429 fallback pause 0.5 s) and a venue's ``Retry-After`` is
  capped at 2 s (120 s in production);
* the venue request timeout is ``SECTORBOT_TEST_TIMEOUT_MS`` (default 1500 ms instead of
  10 s: a tighter one would time out honest requests on a loaded 2-core machine).

The scheduler's own intervals come from the config file as usual.

Usage: ``python -m tests.fault_launcher run --config demo.toml`` with
``SECTORBOT_TEST_EMULATOR_URL`` set, like ``tests.demo_launcher``.
"""

from __future__ import annotations

import functools
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ccxt.base.exchange import Exchange

from tests.demo_launcher import EMULATOR_ENV, install

SCALE_ENV = "SECTORBOT_TEST_TIME_SCALE"
TIMEOUT_ENV = "SECTORBOT_TEST_TIMEOUT_MS"


def compress(scale: float, timeout_ms: int) -> None:
    import bot.service.clock as clock
    import bot.service.venue as venue
    from bot.exchange.ccxt_calls import RetryPolicy

    venue.RetryPolicy = functools.partial(  # type: ignore[assignment]
        RetryPolicy, base_delay=0.05, max_delay=0.8, rate_limit_delay=0.5,
        max_rate_limit_wait=2.0, lookup_delay=0.05)
    routed = Exchange.__init__

    def timed_init(self: Any, config: Any = None) -> None:
        routed(self, config)
        self.timeout = timeout_ms

    Exchange.__init__ = timed_init
    start_real = time.monotonic()
    start_wall = datetime.now(UTC)

    def fast_now() -> datetime:
        return start_wall + timedelta(seconds=(time.monotonic() - start_real) * scale)

    original = clock.WallClock.__init__

    def fast_clock(self: Any, now: Any = None) -> None:
        original(self, now or fast_now)

    clock.WallClock.__init__ = fast_clock  # type: ignore[method-assign]


def main() -> None:
    target = os.environ.get(EMULATOR_ENV)
    if not target:
        raise SystemExit(f"{EMULATOR_ENV} is not set: refusing to run against a real venue")
    install(target)
    compress(float(os.environ.get(SCALE_ENV, "60")), int(os.environ.get(TIMEOUT_ENV, "1500")))
    from bot.cli import entry

    entry()


if __name__ == "__main__":
    main()
