"""An offline Binance venue for integration tests: real HTTP, real signatures, real ccxt.

``BinanceEmulator`` serves Binance spot (``/api/v3``) and USD-M futures (``/fapi``) REST on
127.0.0.1 with a random port; ``route_to(exchange, emulator)`` points a sync ccxt instance at
it while keeping the real host names, so ccxt's error mapping is the production one.
"""

from tests.exchange_emulator.book import Instrument, VenueError
from tests.exchange_emulator.server import BinanceEmulator, Fault, Recorded, default_instruments
from tests.exchange_emulator.transport import BINANCE_HOSTS, RerouteAdapter, route_to

__all__ = [
    "BINANCE_HOSTS",
    "BinanceEmulator",
    "Fault",
    "Instrument",
    "Recorded",
    "RerouteAdapter",
    "VenueError",
    "default_instruments",
    "route_to",
]
