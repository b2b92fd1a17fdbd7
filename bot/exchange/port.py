"""The exchange port: what the service layer needs from a venue, in the core's terms.

Adapters (the paper exchange, ccxt) translate tokens and market kinds into venue symbols, so
nothing above this line ever sees ``SOL/USDT:USDT`` or a venue error code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from bot.domain.models import (
    FundingRate,
    MarketInfo,
    MarketKind,
    OrderIntent,
    OrderResult,
    PerpPosition,
)


@dataclass(frozen=True, slots=True)
class Balances:
    """Per-asset balances; ``total`` includes margin posted for open perps.

    ``spot_quote_free`` is the USDT that spot buys can actually use. On venues with separate
    spot and futures wallets (Binance) it is the spot wallet's free USDT, which is less than
    ``free[USDT]``; None means one wallet, so ``free[USDT]`` is spendable as it is.
    """

    free: Mapping[str, Decimal]
    total: Mapping[str, Decimal]
    spot_quote_free: Decimal | None = None
    futures_quote_free: Decimal | None = None
    """The futures wallet's free USDT where it is a wallet of its own (Binance USD-M); None
    where one wallet serves spot and perps (the paper exchange, Bybit UTA, OKX)."""


class ExchangeError(Exception):
    """Base for adapter errors the service layer reacts to."""


class OrderRejected(ExchangeError):
    """The venue refused the order for a reason retrying cannot fix (funds, size, rules)."""


class OutcomeUnknown(ExchangeError):
    """A write whose outcome is unknown (timeout, 5xx): look it up by client id, never resend."""


class ExchangeUnavailable(ExchangeError):
    """Reads kept failing after the safe retries."""


@dataclass(frozen=True, slots=True)
class OpenInterestHistory:
    """Daily open interest per perp token: ``[(unix ms of the reading, amount)]`` oldest
    first, the amount in the base asset where the venue gives it, else in USD (one unit per
    token, whichever it is: only its growth is read). ``failed`` names the tokens whose read
    failed, with why (their ``oi:<TOKEN>`` signal is stale)."""

    history: Mapping[str, Sequence[tuple[int, float]]]
    failed: Mapping[str, str]


class MarketDataPort(Protocol):
    """What a signal source reads from a venue: its markets, daily candles, funding and
    open interest."""

    name: str

    def load_markets(self, reload: bool = False) -> Mapping[tuple[str, MarketKind], MarketInfo]:
        ...

    def fetch_daily_candles(self, token: str, market: MarketKind,
                            limit: int) -> Sequence[Sequence[Any]]:
        """The newest ``limit`` daily candles as ``[open ms, open, high, low, close, base
        volume]`` rows, oldest first (the venue's still-open candle included)."""
        ...

    def fetch_funding_rates(self, tokens: Iterable[str]) -> dict[str, FundingRate]:
        ...

    def fetch_open_interest_history(self, tokens: Iterable[str],
                                    days: int) -> OpenInterestHistory | None:
        """The last ``days`` daily open-interest readings of each perp token; None where
        the venue (or this mode of it) serves none: nothing is stale then, the engine reads
        crowding from funding alone."""
        ...


class ExchangePort(Protocol):
    """Synchronous venue interface. Implementations must be safe to call from one thread."""

    name: str

    def load_markets(self, reload: bool = False) -> Mapping[tuple[str, MarketKind], MarketInfo]:
        ...

    def fetch_balances(self) -> Balances:
        ...

    def fetch_positions(self) -> list[PerpPosition]:
        ...

    def fetch_prices(self, tokens: Iterable[str], market: MarketKind) -> dict[str, Decimal]:
        ...

    def fetch_funding_rates(self, tokens: Iterable[str]) -> dict[str, FundingRate]:
        ...

    def set_leverage(self, token: str, leverage: Decimal) -> None:
        ...

    def set_margin_mode(self, token: str, mode: str) -> None:
        ...

    def place_order(self, intent: OrderIntent) -> OrderResult:
        """Send one order (a stop when ``intent.order_type`` is STOP_MARKET)."""
        ...

    def cancel_order(self, result: OrderResult) -> None:
        ...

    def fetch_order_by_client_id(
        self, client_id: str, token: str, market: MarketKind, trigger: bool = False
    ) -> OrderResult | None:
        ...

    def fetch_open_orders(self, trigger: bool = False) -> list[OrderResult]:
        ...

    def now(self) -> datetime:
        """The venue's clock (the simulated clock for the paper exchange)."""
        ...

    def transfer_quote(self, amount: Decimal, to: MarketKind) -> str:
        """Move USDT into the ``to`` wallet from the other one (venues with two wallets);
        the venue's id. ``OutcomeUnknown`` when the answer was lost: never resend before
        :meth:`find_transfer` came back empty."""
        ...

    def find_transfer(self, amount: Decimal, to: MarketKind, since: datetime) -> str | None:
        ...
