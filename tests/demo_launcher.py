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

from tests.exchange_emulator.transport import BINANCE_HOSTS, RerouteAdapter

EMULATOR_ENV = "SECTORBOT_TEST_EMULATOR_URL"
HOSTS_ENV = "SECTORBOT_TEST_EMULATOR_HOSTS"
"""``okx`` or ``bybit``: reroute that venue's hosts (to its emulator) instead of Binance's."""
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
        adapter = RerouteAdapter(target, _hosts())
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    Exchange.__init__ = routed_init


def _hosts() -> frozenset[str]:
    venue = os.environ.get(HOSTS_ENV, "binance")
    if venue == "okx":
        from tests.exchange_emulator.okx_server import OKX_HOSTS

        return OKX_HOSTS
    if venue == "bybit":
        from tests.exchange_emulator.bybit_server import BYBIT_HOSTS

        return BYBIT_HOSTS
    return BINANCE_HOSTS


def main() -> None:
    target = os.environ.get(EMULATOR_ENV)
    if not target:
        raise SystemExit(f"{EMULATOR_ENV} is not set: refusing to run against a real venue")
    install(target)
    from bot.cli import entry

    entry()


if __name__ == "__main__":
    main()
