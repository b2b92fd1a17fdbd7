"""Value types shared by the pure core and every adapter.

Everything here is immutable and free of I/O, so a decision can be rebuilt byte for byte from
its stored inputs. Money crossing the exchange boundary is ``Decimal``; scores and weights are
``float`` because they are statistics, not balances.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

QUOTE = "USDT"


class MarketKind(StrEnum):
    SPOT = "spot"
    PERP = "perp"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"


class Bucket(StrEnum):
    CORE = "core"
    ROTATIONAL = "rotational"
    SPECULATIVE = "speculative"


class Regime(StrEnum):
    BULL = "bull"
    BEAR = "bear"
    UNKNOWN = "unknown"


# --------------------------------------------------------------------------------------------
# Universe
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """One tradable token and where it may be used.

    ``listed`` makes replays point-in-time: before that date the token does not exist for the
    engine, so a backtest cannot pick today's winners with hindsight.
    """

    symbol: str
    sector: str
    listed: date | None = None
    spot: bool = True
    perp: bool = True
    former_symbols: tuple[str, ...] = ()

    def is_listed(self, on: date) -> bool:
        return self.listed is None or self.listed <= on


@dataclass(frozen=True, slots=True)
class SectorSpec:
    """A sector, the bucket its spot allocation belongs to and its place in the rotation cycle."""

    name: str
    bucket: Bucket
    tokens: tuple[TokenSpec, ...]
    cycle_stage: int | None = None


@dataclass(frozen=True, slots=True)
class Universe:
    core: tuple[TokenSpec, ...]
    sectors: tuple[SectorSpec, ...]

    def sector(self, name: str) -> SectorSpec:
        for s in self.sectors:
            if s.name == name:
                return s
        raise KeyError(name)

    def all_tokens(self) -> tuple[TokenSpec, ...]:
        return self.core + tuple(t for s in self.sectors for t in s.tokens)

    def token(self, symbol: str) -> TokenSpec:
        for t in self.all_tokens():
            if t.symbol == symbol:
                return t
        raise KeyError(symbol)


# --------------------------------------------------------------------------------------------
# Time series and snapshots
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """Points sorted by time. Missing observations are absent, never zero."""

    points: tuple[tuple[datetime, float], ...] = ()

    def __post_init__(self) -> None:
        times = [t for t, _ in self.points]
        if times != sorted(times):
            raise ValueError("Series points must be sorted by time")

    def __len__(self) -> int:
        return len(self.points)

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(v for _, v in self.points)

    def last(self) -> tuple[datetime, float] | None:
        return self.points[-1] if self.points else None

    def at_or_before(self, when: datetime) -> tuple[datetime, float] | None:
        """The latest point not after ``when`` (None when the series starts later)."""
        idx = bisect.bisect_right([t for t, _ in self.points], when)
        return self.points[idx - 1] if idx else None

    def until(self, when: datetime) -> Series:
        """The prefix visible at ``when``: what a live bot could have known then."""
        idx = bisect.bisect_right([t for t, _ in self.points], when)
        return Series(self.points[:idx])


@dataclass(frozen=True, slots=True)
class FiniteSeries(Series):
    """A series whose values are all finite floats (time-ordered, as every series): a
    source that validated its history once says so, and a decision takes the points as
    they are instead of filtering every point again."""

    def __post_init__(self) -> None:
        """Not re-checked per slice: only a source that validated (and sorted) the whole
        history at load builds one, like :class:`DailySeries`."""


@dataclass(frozen=True, slots=True)
class DailySeries(Series):
    """A series with at most one point per UTC day and only finite values, carrying its days
    and values ready for lookups, so a decision does not re-derive them from the points.

    A data source that already holds its history day by day (the replay) slices these in
    O(1) per decision; :class:`bot.domain.market_view.DailyValues` takes them as they are.
    """

    days: tuple[date, ...] = ()
    floats: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.days) != len(self.points) or len(self.floats) != len(self.points):
            raise ValueError("DailySeries needs one day and one value per point")


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Everything the engine may know at ``as_of``, with freshness per signal.

    ``highs``/``lows`` hold each token's daily extremes where the source has them (they size
    ATR stops; a source with closes only leaves them empty).
    ``sector_metrics[sector][metric]`` holds daily series such as ``tvl_usd``, ``volume_usd``,
    ``fees_usd`` or ``dev_commits``. ``funding[token]`` holds funding normalised to a rate per
    hour, one point per settlement. ``stale`` names signals whose source failed or lags; the
    engine must not move money on them. Keys: ``prices``, ``funding``, ``metric:<metric>`` for a
    whole metric, ``metric:<metric>:<sector>`` for one sector's series, ``oi:<TOKEN>``.
    """

    as_of: datetime
    closes: Mapping[str, Series]
    quote_volumes: Mapping[str, Series] = field(default_factory=dict)
    sector_metrics: Mapping[str, Mapping[str, Series]] = field(default_factory=dict)
    funding: Mapping[str, Series] = field(default_factory=dict)
    stale: frozenset[str] = frozenset()
    highs: Mapping[str, Series] = field(default_factory=dict)
    lows: Mapping[str, Series] = field(default_factory=dict)
    open_interest: Mapping[str, Series] = field(default_factory=dict)
    """Daily open interest per perp (contracts in the base asset where the venue says, else
    USD), stamped at the day's close like a candle; empty where no source serves it. A fetch
    that failed marks ``oi:<TOKEN>`` stale."""

    def price(self, token: str) -> float | None:
        last = self.closes.get(token, Series()).last()
        return last[1] if last else None


# --------------------------------------------------------------------------------------------
# Portfolio as the core sees it
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PerpPosition:
    """A USDT-margined perpetual position; ``amount`` is signed base units (> 0 long)."""

    token: str
    amount: Decimal
    entry_price: Decimal
    leverage: Decimal
    mark_price: Decimal
    liquidation_price: Decimal | None = None
    stop_price: Decimal | None = None
    opened_at: datetime | None = None

    @property
    def side(self) -> PositionSide:
        return PositionSide.LONG if self.amount > 0 else PositionSide.SHORT

    @property
    def notional(self) -> Decimal:
        return abs(self.amount) * self.mark_price

    @property
    def unrealized_pnl(self) -> Decimal:
        return self.amount * (self.mark_price - self.entry_price)


@dataclass(frozen=True, slots=True)
class Portfolio:
    """Holdings read from the exchange. ``cash`` is all USDT, margin posted for perps
    included; ``free_cash`` is what spot buys can spend now (None: derive it from margins).
    ``futures_free`` is set where perps have a wallet of their own (Binance USD-M): the
    USDT free there, which alone funds the overlay's margin; None with one wallet."""

    cash: Decimal
    spot: Mapping[str, Decimal]
    perps: Mapping[str, PerpPosition]
    prices: Mapping[str, Decimal]
    free_cash: Decimal | None = None
    futures_free: Decimal | None = None

    def spot_value(self, token: str) -> Decimal:
        return self.spot.get(token, Decimal(0)) * self.prices.get(token, Decimal(0))

    def equity(self) -> Decimal:
        spot = sum((self.spot_value(t) for t in self.spot), Decimal(0))
        upnl = sum((p.unrealized_pnl for p in self.perps.values()), Decimal(0))
        return self.cash + spot + upnl

    def spot_weights(self) -> dict[str, float]:
        """Each token's share of equity (what the engine compares targets against)."""
        eq = self.equity()
        if eq <= 0:
            return {}
        return {t: float(self.spot_value(t) / eq) for t in sorted(self.spot) if self.spot[t] > 0}


# --------------------------------------------------------------------------------------------
# Decision
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SectorScore:
    """One sector's composite score and the parts it came from (None = signal missing)."""

    sector: str
    score: float | None
    confidence: float
    components: Mapping[str, float | None]
    rank: int | None = None


@dataclass(frozen=True, slots=True)
class OverlayLeg:
    """A perpetual leg the engine wants: notional = ``equity_fraction`` x equity."""

    token: str
    side: PositionSide
    equity_fraction: float
    leverage: float
    stop_distance: float
    reason: str


@dataclass(frozen=True, slots=True)
class RotationState:
    """A rotation in progress, carried from one decision to the next (the engine's memory)."""

    from_sector: str
    to_sector: str
    started: datetime
    from_weight_at_start: float
    confirmations: int = 0
    checked: datetime | None = None
    """When the engine last advanced this state. A re-run for the same ``as_of`` (a restart
    after a crash) does not count a confirmation twice."""
    abandoned: datetime | None = None
    """When the rotation was abandoned (signals flipped, the incoming sector lost its
    score, or the time stop): kept as memory so no new rotation starts, the reverse one
    least of all, within ``rotation_abandon_cooldown_days``."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's output: target spot book, perp overlay and every reason behind them.

    One base: ``spot_weights`` are shares of total equity, so a token's target value is
    ``spot_weights[token] * equity`` and the cash line (USDT) is ``1 - sum(spot_weights)``.
    ``cash_reserve`` is the part of that cash line held for the overlay's margin.
    ``bucket_weights`` are shares of equity too. ``frozen`` tokens have no fresh price: the
    planner neither buys nor sells them.
    """

    decision_id: str
    as_of: datetime
    regime: Regime
    action: str
    spot_weights: Mapping[str, float]
    bucket_weights: Mapping[Bucket, float]
    cash_reserve: float
    overlay: tuple[OverlayLeg, ...]
    scores: tuple[SectorScore, ...]
    rotation: RotationState | None
    reasons: tuple[str, ...]
    confidence: float
    frozen: tuple[str, ...] = ()

    @property
    def trades(self) -> bool:
        return self.action != "hold"


# --------------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------------


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"


class OrderStatus(StrEnum):
    PENDING = "pending"  # journalled, not yet acknowledged by the venue
    OPEN = "open"
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    TRIGGERED = "triggered"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """One order the planner wants sent. ``client_id`` is deterministic per decision and leg."""

    client_id: str
    token: str
    market: MarketKind
    side: Side
    amount: Decimal
    order_type: OrderType = OrderType.MARKET
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    leverage: Decimal | None = None
    reason: str = ""
    reference_price: Decimal | None = None
    """The price the planner sized this order at. The executor refuses to send a market
    order that adds risk once the venue's price has moved beyond the slippage limit from it."""


@dataclass(frozen=True, slots=True)
class OrderResult:
    """The venue's view of an order after a call."""

    client_id: str
    exchange_id: str
    token: str
    market: MarketKind
    side: Side
    order_type: OrderType
    status: OrderStatus
    amount: Decimal
    filled: Decimal
    average_price: Decimal | None
    fee: Decimal
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """What the planner needs to know about a tradable market to size orders that will pass."""

    token: str
    market: MarketKind
    amount_step: Decimal
    price_step: Decimal
    min_amount: Decimal
    min_notional: Decimal
    contract_size: Decimal = Decimal(1)
    max_leverage: Decimal | None = None


@dataclass(frozen=True, slots=True)
class FundingRate:
    """Funding as a rate per hour, whatever the venue's interval, plus that interval."""

    token: str
    hourly_rate: float
    interval_hours: float
    next_settlement: datetime | None = None

    @property
    def annualised(self) -> float:
        return self.hourly_rate * 24 * 365
