"""``ExchangePort`` over ccxt (sync): Binance spot + USD-M, Bybit v5 unified, OKX.

One ccxt instance per market type (spot, perps) for one account, with ccxt's rate limiter on
and its own retry off. Reads retry (``ccxt_calls``); writes never resend blindly: a failed
send is looked up by client id first (``ccxt_orders``). Everything the venue would refuse
for size or leverage is refused here *before* a request leaves, so a bad plan costs no
request weight and leaves no trace on the venue. Secrets live only inside the ccxt instances
and the message scrubber; ``repr`` and every raised message are free of them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import ccxt
from pydantic import SecretStr

from bot.domain.models import (
    QUOTE,
    FundingRate,
    MarketInfo,
    MarketKind,
    OrderIntent,
    OrderResult,
    PerpPosition,
)
from bot.domain.risk_limits import HARD_MAX_LEVERAGE
from bot.exchange import ccxt_convert as cv
from bot.exchange.ccxt_calls import (
    CaBundleAdapter,
    Caller,
    CredentialsRejected,
    RetryPolicy,
    Scrubber,
)
from bot.exchange.ccxt_orders import OrderDesk
from bot.exchange.port import (
    Balances,
    ExchangeError,
    ExchangeUnavailable,
    OpenInterestHistory,
    OrderRejected,
    OutcomeUnknown,
)
from bot.exchange.venues import MODES, dec, hours_from_text, venue_for
from bot.logs import url_secrets

__all__ = ["CcxtExchange", "CredentialsRejected", "RetryPolicy"]

Secret = SecretStr | str | None

# ccxt logs every request's headers (the API key among them) at DEBUG on its module logger,
# so a daemon run at DEBUG would write the key to its logs. Each instance logs here instead,
# a logger that never passes DEBUG whatever the root level is.
WIRE_LOGGER = logging.getLogger("bot.exchange.ccxt_wire")
WIRE_LOGGER.setLevel(logging.INFO)
ExchangeFactory = Callable[[str, dict[str, Any]], Any]


def _plain(value: Secret) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value or ""


def _tokens(tokens: Iterable[str]) -> frozenset[str]:
    out = frozenset(tokens)
    if QUOTE in out or any(not t for t in out):
        raise ValueError(f"tokens must be non-empty base symbols other than {QUOTE}")
    return out


DAY_MS = 86_400_000


class CcxtExchange:
    """A real venue (``"binance"``, ``"bybit"``, ``"okx"``) in mode ``"testnet"``, ``"demo"``
    or ``"live"``. ``tokens`` trade spot against USDT, ``perp_tokens`` as USDT perpetuals.

    ``max_leverage`` (<= 5) is enforced before any request. ``https_proxy``, ``trust_env``
    (honour ``HTTPS_PROXY``/``REQUESTS_CA_BUNDLE``, which ccxt ignores by default) and
    ``ca_bundle`` serve corporate networks. ``session_hook(exchange)`` runs on each ccxt
    instance once it is configured (tests mount a transport there); ``exchange_factory(cls,
    config)`` replaces ``getattr(ccxt, cls)(config)``. Listed-nowhere tokens end up in
    ``dropped`` after ``load_markets`` and perps without a known funding interval in
    ``funding_unknown``: both are for the caller to log.
    """

    def __init__(
        self,
        venue: str,
        mode: str,
        *,
        api_key: Secret = None,
        api_secret: Secret = None,
        password: Secret = None,
        tokens: Iterable[str] = (),
        perp_tokens: Iterable[str] = (),
        max_leverage: Decimal | float | int = Decimal(3),
        margin_mode: str = "isolated",
        https_proxy: str | None = None,
        trust_env: bool = False,
        ca_bundle: str | Path | None = None,
        timeout_ms: int = 10_000,
        rate_limit_ms: float | None = None,
        retry: RetryPolicy | None = None,
        markets_ttl_seconds: float = 3600.0,
        session_hook: Callable[[Any], None] | None = None,
        exchange_factory: ExchangeFactory | None = None,
        halted: threading.Event | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        cap = Decimal(str(max_leverage))
        if not cap.is_finite() or not 1 <= cap <= Decimal(str(HARD_MAX_LEVERAGE)):
            raise ValueError(f"max_leverage must be within [1, {HARD_MAX_LEVERAGE}], got {cap}")
        if margin_mode not in ("isolated", "cross"):
            raise ValueError(f"margin_mode must be isolated or cross, got {margin_mode!r}")
        self.venue = venue_for(venue)
        self.name: str = self.venue.name
        self.mode = mode
        self.max_leverage = cap
        self.margin_mode = margin_mode
        self._spot_tokens, self._perp_tokens = _tokens(tokens), _tokens(perp_tokens)
        secrets = [_plain(api_key), _plain(api_secret), _plain(password)]
        proxy_secrets = url_secrets(https_proxy) if https_proxy else []
        self._caller = Caller(retry or RetryPolicy(), Scrubber([*secrets, *proxy_secrets]),
                              retry_hint=self.venue.retry_after, halted=halted)
        self.request_timeout_seconds = timeout_ms / 1000
        self._markets_ttl = markets_ttl_seconds
        config: dict[str, Any] = {"enableRateLimit": True, "timeout": int(timeout_ms)}
        for key, value in zip(("apiKey", "secret", "password"), secrets, strict=True):
            if value:
                config[key] = value
        if rate_limit_ms is not None:
            config["rateLimit"] = rate_limit_ms
        if trust_env:
            config["requests_trust_env"] = True
        factory = exchange_factory or (lambda cls, cfg: getattr(ccxt, cls)(cfg))
        self._exchanges: dict[MarketKind, Any] = {}
        for kind, wanted in ((MarketKind.SPOT, self._spot_tokens),
                             (MarketKind.PERP, self._perp_tokens)):
            if not wanted:
                continue
            cls = self.venue.spot_class if kind is MarketKind.SPOT else self.venue.perp_class
            exchange = factory(cls, {**config, "options": self.venue.options(kind)})
            self.venue.enter_mode(exchange, mode, kind)
            exchange.logger = WIRE_LOGGER
            if https_proxy:
                exchange.https_proxy = https_proxy
            if ca_bundle is not None:
                exchange.session.mount("https://", CaBundleAdapter(str(ca_bundle)))
            if session_hook is not None:
                session_hook(exchange)
            self._exchanges[kind] = exchange
        self._lock = threading.RLock()
        self._markets: dict[tuple[str, MarketKind], MarketInfo] = {}
        self._symbols: dict[tuple[str, MarketKind], str] = {}
        self._tokens_by_symbol: dict[tuple[str, MarketKind], str] = {}
        self._markets_at: float | None = None
        self._funding_hours: dict[str, float] = {}
        self._funding_at: float | None = None
        self.dropped: dict[tuple[str, MarketKind], str] = {}
        self.funding_unknown: set[str] = set()
        self._oi_served: bool | None = None
        self._orders = OrderDesk(self)

    def __repr__(self) -> str:
        return (f"CcxtExchange(venue={self.name!r}, mode={self.mode!r}, "
                f"spot={len(self._spot_tokens)}, perps={len(self._perp_tokens)})")

    def close(self) -> None:
        for exchange in self._exchanges.values():
            exchange.close()

    # -- plumbing shared with OrderDesk --------------------------------------------------------
    @property
    def caller(self) -> Caller:
        return self._caller

    def instance(self, kind: MarketKind) -> Any | None:
        """The ccxt instance for ``kind``, if any tokens of that kind are configured."""
        return self._exchanges.get(kind)

    def exchange(self, kind: MarketKind) -> Any:
        exchange = self._exchanges.get(kind)
        if exchange is None:
            raise OrderRejected(f"no {kind.value} tokens configured on {self.name}")
        return exchange

    def route(self, token: str, kind: MarketKind) -> tuple[Any, str, dict[str, Any]]:
        """The ccxt instance, symbol and market of a tradable token, else OrderRejected."""
        self._ensure_markets()
        symbol = self._symbols.get((token, kind))
        if symbol is None:
            reason = self.dropped.get((token, kind), "not configured")
            raise OrderRejected(f"{token} {kind.value} is not tradable on {self.name}: {reason}")
        exchange = self.exchange(kind)
        return exchange, symbol, exchange.markets[symbol]

    def token_of(self, symbol: str, kind: MarketKind) -> str | None:
        return self._tokens_by_symbol.get((symbol, kind))

    def symbols(self, kind: MarketKind) -> list[str]:
        self._ensure_markets()
        return sorted(s for (_, k), s in self._symbols.items() if k is kind)

    def check_leverage(self, value: Decimal | float | int) -> Decimal:
        """Refuse before any request: outside [1, cap], or fractional where the venue
        only takes whole numbers (Binance)."""
        leverage = Decimal(str(value))
        if not leverage.is_finite() or not 1 <= leverage <= self.max_leverage:
            raise OrderRejected(f"leverage {leverage} outside [1, {self.max_leverage}] "
                                f"(not sent)")
        if self.venue.whole_leverage and leverage != leverage.to_integral_value():
            raise OrderRejected(f"{self.name} takes whole leverage only, got {leverage}")
        return leverage

    # -- ExchangePort: reads -------------------------------------------------------------------
    def load_markets(self, reload: bool = False) -> Mapping[tuple[str, MarketKind], MarketInfo]:
        with self._lock:
            self._ensure_markets(force=reload)
            return dict(self._markets)

    def _ensure_markets(self, force: bool = False) -> None:
        """Load once, then again after ``markets_ttl_seconds``. A failed *periodic* refresh
        keeps the markets already known (listings rarely change within the hour); a forced
        one (``load_markets(reload=True)``) raises."""
        if self._markets_at is not None and not force:
            if time.monotonic() - self._markets_at < self._markets_ttl:
                return
            try:
                self._refresh_markets()
            except ExchangeUnavailable:
                self._markets_at = time.monotonic()
            return
        self._refresh_markets()

    def _refresh_markets(self) -> None:
        markets: dict[tuple[str, MarketKind], MarketInfo] = {}
        symbols: dict[tuple[str, MarketKind], str] = {}
        dropped: dict[tuple[str, MarketKind], str] = {}
        for kind, exchange in self._exchanges.items():

            def load(ex: Any = exchange) -> dict[str, Any]:
                return dict(ex.load_markets(True))

            listed = self._caller.read(exchange, "load_markets", load)
            wanted = self._spot_tokens if kind is MarketKind.SPOT else self._perp_tokens
            for token in sorted(wanted):
                symbol = f"{token}/{QUOTE}" + ("" if kind is MarketKind.SPOT else f":{QUOTE}")
                market = listed.get(symbol)
                if market is None:
                    dropped[(token, kind)] = f"{symbol} is not listed"
                elif market.get("active") is False:
                    dropped[(token, kind)] = f"{symbol} is not trading"
                else:
                    symbols[(token, kind)] = symbol
                    markets[(token, kind)] = cv.market_info(
                        token, kind, market, exchange.precisionMode, self.max_leverage)
        self._markets, self._symbols, self.dropped = markets, symbols, dropped
        self._tokens_by_symbol = {(s, k): t for (t, k), s in symbols.items()}
        self._markets_at = time.monotonic()

    def fetch_balances(self) -> Balances:
        """Spot wallet plus the perp wallet's USDT (separate wallets on Binance; summed, so
        ``free`` USDT may sit in either one). Perp USDT excludes unrealised PnL."""
        with self._lock:
            free: dict[str, Decimal] = {}
            total: dict[str, Decimal] = {}
            wallets = self.fetch_wallet_balances()
            for wallet in wallets.values():
                for asset, amount in wallet.total.items():
                    total[asset] = total.get(asset, Decimal(0)) + amount
                    free[asset] = free.get(asset, Decimal(0)) + wallet.free.get(asset, Decimal(0))
            spot = wallets.get(MarketKind.SPOT)
            perp = wallets.get(MarketKind.PERP)
            spot_free = spot.free.get(QUOTE, Decimal(0)) if spot is not None else None
            perp_free = perp.free.get(QUOTE, Decimal(0)) if perp is not None else None
            return Balances(free=free, total=total, spot_quote_free=spot_free,
                            futures_quote_free=perp_free)

    def fetch_wallet_balances(self) -> dict[MarketKind, Balances]:
        """Each wallet on its own, for callers that must know where USDT sits."""
        with self._lock:
            out: dict[MarketKind, Balances] = {}
            spot = self._exchanges.get(MarketKind.SPOT)
            perp = self._exchanges.get(MarketKind.PERP)
            if self.venue.unified_wallet:
                spot = spot or perp
                perp = None
            if spot is not None:
                raw = self._caller.read(spot, "fetch_balance", spot.fetch_balance)
                totals = raw.get("total") or {}
                free = {a: dec((raw.get("free") or {}).get(a)) for a in totals
                        if dec(totals[a]) > 0 or a == QUOTE}
                total = {a: dec(v) for a, v in totals.items() if dec(v) > 0 or a == QUOTE}
                if self.venue.unified_wallet:
                    # One wallet holds the perp margin too: the venue says which quote figure
                    # leaves out unrealised PnL (OKX's USDT total, eq, includes it, and the
                    # core adds the positions' PnL itself).
                    free[QUOTE], total[QUOTE] = self.venue.perp_wallet(raw)
                out[MarketKind.SPOT] = Balances(free=free, total=total)
            if perp is not None:
                raw = self._caller.read(perp, "fetch_balance", perp.fetch_balance)
                wallet_free, wallet_total = self.venue.perp_wallet(raw)
                out[MarketKind.PERP] = Balances({QUOTE: wallet_free}, {QUOTE: wallet_total})
            return out

    def fetch_positions(self) -> list[PerpPosition]:
        """Open perps of our tokens, each with the trigger of its live protective stop (one
        more request), which is what tells the risk watch a position is covered."""
        with self._lock:
            if MarketKind.PERP not in self._exchanges:
                return []
            exchange, symbols = self._exchanges[MarketKind.PERP], self.symbols(MarketKind.PERP)
            if not symbols:
                return []
            raws = self._caller.read(exchange, "fetch_positions",
                                     lambda: self.venue.fetch_positions(exchange, symbols))
            stops = self._orders.open_orders(trigger=True)
            out = []
            for raw in raws:
                token = self.token_of(str(raw.get("symbol")), MarketKind.PERP)
                if token is None:
                    continue
                market = exchange.markets[raw["symbol"]]
                position = cv.perp_position(token, raw, cv.contract_size(market),
                                            self._orders.leverage_set.get(token), None)
                if position is not None:
                    out.append(cv.with_stop(position, stops))
            return sorted(out, key=lambda p: p.token)

    def fetch_prices(self, tokens: Iterable[str], market: MarketKind) -> dict[str, Decimal]:
        """Last traded prices of the listed ones among ``tokens``."""
        with self._lock:
            if market not in self._exchanges:
                return {}
            self._ensure_markets()
            wanted = {self._symbols[(t, market)]: t for t in tokens
                      if (t, market) in self._symbols}
            if not wanted:
                return {}
            exchange = self._exchanges[market]
            prices = self._caller.read(exchange, "fetch_prices",
                                       lambda: _last_prices(exchange, sorted(wanted)))
            out = {wanted[s]: dec(p) for s, p in prices.items() if s in wanted and p}
            self._orders.remember_prices(market, out)
            return out

    def fetch_daily_candles(self, token: str, market: MarketKind,
                            limit: int) -> Sequence[Sequence[Any]]:
        """One klines read through the retrying, secret-scrubbing caller."""
        instance, symbol, _ = self.route(token, market)
        # Some venues cap one request below ``limit`` without saying so (OKX: 300 bars); with
        # ``since`` and ``paginate`` ccxt pages through them (Binance still takes one request).
        # ``maxRetries=0``: ccxt's paging would retry each page 3 times on its own, without
        # backoff, under our own retry policy.
        since = int(instance.milliseconds()) - limit * DAY_MS
        rows = self._caller.read(
            instance, f"fetch_ohlcv {symbol}",
            lambda: instance.fetch_ohlcv(symbol, "1d", since, limit,
                                         {"paginate": True, "maxRetries": 0}))
        return list(rows or [])

    def fetch_open_interest_history(self, tokens: Iterable[str],
                                    days: int) -> OpenInterestHistory | None:
        """ccxt's ``fetch_open_interest_history(symbol, "1d")`` per perp (Binance USD-M
        ``/futures/data/openInterestHist``, Bybit ``/v5/market/open-interest``, OKX
        ``rubik/stat/contracts/open-interest-history``): one request per token, as none of
        the three has a batch endpoint for the history. None where the venue does not serve
        it (``has['fetchOpenInterestHistory']`` false, or ccxt raises ``NotSupported``: a
        host without the endpoint, e.g. Binance's testnet); a token's failed read is named
        in ``failed``. Amounts are ``openInterestAmount`` (base asset: price moves alone are
        not growth) where every row has it, else ``openInterestValue``."""
        instance = self._exchanges.get(MarketKind.PERP)
        if (instance is None or self._oi_served is False
                or not instance.has.get("fetchOpenInterestHistory")):
            return None
        history: dict[str, list[tuple[int, float]]] = {}
        failed: dict[str, str] = {}
        for token in sorted(set(tokens)):
            try:
                exchange, symbol, _ = self.route(token, MarketKind.PERP)
            except OrderRejected:
                continue  # not listed as a perp here: nothing to read, nothing stale

            def read(ex: Any = exchange, sym: str = symbol) -> Any:
                return ex.fetch_open_interest_history(sym, "1d", None, days)

            try:
                rows = self._caller.read(exchange, f"fetch_open_interest_history {symbol}",
                                         read)
            except ExchangeError as exc:
                if isinstance(exc.__cause__, ccxt.NotSupported):
                    self._oi_served = False
                    return None
                failed[token] = str(exc)
                continue
            history[token] = _open_interest_rows(rows or [])
        self._oi_served = True
        return OpenInterestHistory(history, failed)

    def fetch_funding_rates(self, tokens: Iterable[str]) -> dict[str, FundingRate]:
        """Per-hour rates using each market's own interval (1h/4h/8h all occur). Interval
        sources, in order: the venue's interval data (Binance ``fundingInfo``, Bybit market
        info), ccxt's ``interval``, the gap between two announced settlements (OKX), the
        venue's documented default (Binance: 8h for symbols ``fundingInfo`` omits). A token
        with none of these is left out and named in ``funding_unknown``: never a silent 8h."""
        with self._lock:
            if MarketKind.PERP not in self._exchanges:
                return {}
            self._ensure_markets()
            wanted = {self._symbols[(t, MarketKind.PERP)]: t for t in tokens
                      if (t, MarketKind.PERP) in self._symbols}
            if not wanted:
                return {}
            exchange = self._exchanges[MarketKind.PERP]
            self._ensure_funding_intervals(exchange, sorted(wanted))
            raws = self._caller.read(exchange, "fetch_funding_rates",
                                     lambda: exchange.fetch_funding_rates(sorted(wanted)))
            out: dict[str, FundingRate] = {}
            for symbol, token in sorted(wanted.items()):
                raw = raws.get(symbol)
                if raw is None or raw.get("fundingRate") is None:
                    continue
                hours = (self._funding_hours.get(symbol) or hours_from_text(raw.get("interval"))
                         or cv.interval_from_rate(raw) or self.venue.default_funding_hours)
                if not hours:
                    self.funding_unknown.add(token)
                    continue
                self.funding_unknown.discard(token)
                out[token] = cv.funding_rate(token, raw, hours)
            return out

    def _ensure_funding_intervals(self, exchange: Any, symbols: list[str]) -> None:
        if self._funding_at is not None and (
                time.monotonic() - self._funding_at < self._markets_ttl):
            return
        self._funding_hours = self._caller.read(
            exchange, "funding_intervals",
            lambda: self.venue.funding_intervals(exchange, symbols))
        self._funding_at = time.monotonic()

    def fetch_order_by_client_id(self, client_id: str, token: str, market: MarketKind,
                                 trigger: bool = False) -> OrderResult | None:
        with self._lock:
            return self._orders.find(client_id, token, market, trigger)

    def fetch_open_orders(self, trigger: bool = False) -> list[OrderResult]:
        with self._lock:
            return self._orders.open_orders(trigger)

    def now(self) -> datetime:
        with self._lock:
            exchange = self._exchanges.get(MarketKind.PERP) or self._exchanges.get(
                MarketKind.SPOT)
            if exchange is None:
                raise ExchangeError("no markets configured: nothing to ask the time")
            stamp = cv.ms_to_datetime(self._caller.read(exchange, "fetch_time",
                                                        exchange.fetch_time))
            if stamp is None:
                raise ExchangeError(f"{self.name} returned no server time")
            return stamp

    def withdrawal_permission(self) -> bool | None:
        """Whether the API key may withdraw, where the venue tells (Binance live: its API
        restrictions; OKX: the account config); None: not known here. One request, not
        retried; a failure raises the raw ccxt error for the caller to log (never fatal)."""
        with self._lock:
            exchange = self._exchanges.get(MarketKind.SPOT) or self._exchanges.get(
                MarketKind.PERP)
            if exchange is None:
                return None
            return self._caller.once(
                exchange, lambda: self.venue.withdrawals_enabled(exchange, self.mode))

    def key_environment_hint(self, refusal: BaseException) -> str | None:
        """What to tell the operator when the venue refused the key (``refusal``), if the
        venue's answer can mean a key of another environment (testnet, demo, live)."""
        return self.venue.key_environment_hint(self.mode, self._caller.scrub(refusal))

    # -- ExchangePort: writes ------------------------------------------------------------------
    def set_leverage(self, token: str, leverage: Decimal) -> None:
        with self._lock:
            self._orders.set_leverage(token, leverage)

    def set_margin_mode(self, token: str, mode: str) -> None:
        with self._lock:
            self._orders.set_margin_mode(token, mode)

    def place_order(self, intent: OrderIntent) -> OrderResult:
        with self._lock:
            return self._orders.place(intent)

    def cancel_order(self, result: OrderResult) -> None:
        with self._lock:
            self._orders.cancel(result)

    def transfer_quote(self, amount: Decimal, to: MarketKind) -> str:
        """Move ``amount`` USDT to the ``to`` wallet (from the other one); the venue's id.

        Never retried here: a transfer whose answer was lost may have happened, so a
        timeout or 5xx is ``OutcomeUnknown`` and the caller looks it up before anything
        else (``find_transfer``). A refusal (funds, a venue without two wallets, demo hosts
        without the wallet API) is ``OrderRejected``.
        """
        with self._lock:
            exchange = self.exchange(MarketKind.SPOT)
            wire = format(amount.quantize(Decimal("0.01"), rounding=ROUND_DOWN), "f")
            try:
                return self._caller.once(exchange, lambda: self.venue.transfer(
                    exchange, wire, to is MarketKind.PERP))
            except ccxt.NotSupported as exc:
                raise OrderRejected(self._caller.message("transfer", exc)) from exc
            except ccxt.OperationFailed as exc:
                raise OutcomeUnknown(self._caller.message("transfer: no answer", exc)) from exc
            except ccxt.BaseError as exc:
                raise self._caller.translate("transfer", exc, write=True) from exc

    def find_transfer(self, amount: Decimal, to: MarketKind, since: datetime) -> str | None:
        """The id of a transfer of ``amount`` USDT to ``to`` made since ``since``, if any."""
        with self._lock:
            exchange = self.exchange(MarketKind.SPOT)
            wire = amount.quantize(Decimal("0.01"), rounding=ROUND_DOWN)
            return self._caller.read(exchange, "find transfer", lambda: self.venue.find_transfer(
                exchange, wire, to is MarketKind.PERP, int(since.timestamp() * 1000)))


def _open_interest_rows(rows: Iterable[Any]) -> list[tuple[int, float]]:
    """ccxt open-interest structures as ``(ms, amount)``, oldest first; base-asset amounts
    when every row has one, else USD values; a malformed row is skipped (missing data)."""
    def column(key: str) -> list[tuple[int, float]]:
        out: dict[int, float] = {}
        for row in rows:
            try:
                stamp, value = int(row["timestamp"]), float(row[key])
            except (TypeError, ValueError, KeyError):
                continue
            if math.isfinite(value) and value > 0:
                out[stamp] = value
        return sorted(out.items())

    rows = list(rows)
    amounts, values = column("openInterestAmount"), column("openInterestValue")
    return amounts if len(amounts) >= len(values) else values


def _last_prices(exchange: Any, symbols: list[str]) -> dict[str, Any]:
    if exchange.has.get("fetchLastPrices"):
        return {s: v.get("price") for s, v in exchange.fetch_last_prices(symbols).items()}
    return {s: t.get("last") for s, t in exchange.fetch_tickers(symbols).items()}

