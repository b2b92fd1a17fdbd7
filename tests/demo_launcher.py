"""Run the real CLI in a subprocess with every ccxt instance routed to the Binance emulator.

The daemon under test is production code with no test hooks: this launcher patches the sync
ccxt base ``Exchange.__init__`` so each instance, once built, gets a ``RerouteAdapter`` on its
``requests`` session. URLs keep the real Binance host names, so ccxt's error mapping (which
keys on the URL) is production's, and any other host is refused instead of reaching the
network. The emulator's address comes from ``SECTORBOT_TEST_EMULATOR_URL``.

Usage: ``python -m tests.demo_launcher run --once --config demo.toml``.
"""

from __future__ import annotations

import os
from typing import Any

from ccxt.base.exchange import Exchange

from tests.exchange_emulator.transport import RerouteAdapter

EMULATOR_ENV = "SECTORBOT_TEST_EMULATOR_URL"
NO_THROTTLE_ENV = "SECTORBOT_TEST_NO_THROTTLE"
"""Set to 1 to turn ccxt's client-side throttle off: the emulator has no limit to respect,
and the crash tests restart the daemon many times."""


def install(target: str) -> None:
    """Patch ccxt so every exchange created from now on talks to ``target``."""
    original = Exchange.__init__

    def routed_init(self: Any, config: Any = None) -> None:
        original(self, {} if config is None else config)
        if os.environ.get(NO_THROTTLE_ENV) == "1":
            self.enableRateLimit = False
        adapter = RerouteAdapter(target)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    Exchange.__init__ = routed_init


def main() -> None:
    target = os.environ.get(EMULATOR_ENV)
    if not target:
        raise SystemExit(f"{EMULATOR_ENV} is not set: refusing to run against a real venue")
    install(target)
    from bot.cli import entry

    entry()


if __name__ == "__main__":
    main()
