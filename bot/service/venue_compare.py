"""``sectorbot venues``: the supported venues side by side, for choosing where to trade.

For each venue (Binance, Bybit, OKX): spot and perp taker/maker fees, the funding interval,
the universe's minimum order sizes and what the current plan would cost there.

What is read from where:

- **fees**: the account's own (ccxt ``fetch_trading_fees``) on the venue whose keys are
  configured (``mode`` not ``paper``, ``exchange.name`` that venue, ``exchange.api_key``
  set); otherwise ccxt's published default tier, the ``fees`` property of the venue's ccxt
  class, which is part of ccxt's source (the class is instantiated, no market is loaded and
  nothing is sent). An account figure the venue will not give (Binance's demo hosts have no
  wallet API, so no spot fee endpoint) falls back to the published one and says why;
- **funding interval**: the venue's own per-market intervals (the adapter's
  ``fetch_funding_rates``) where it is contacted, else "8 h (published)", the interval the
  three venues document for most USDT perpetuals;
- **minimum order sizes**: the venue's markets (amount step, minimum amount and notional),
  only where the venue is contacted; otherwise "unknown offline";
- **plan cost**: the last decision's orders from the state store (opened read-only: no lock,
  nothing written), each at its fill price, or its planned price, or the close the decision
  saw, times the venue's taker fee plus ``paper.slippage_bps``.

Only the configured venue is ever contacted, and only with reads (markets, fees, funding):
no order, no leverage or margin setting, nothing written anywhere. Paper mode contacts
nothing at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import ccxt
from sqlalchemy import select

from bot.config import Settings
from bot.domain.models import MarketInfo, MarketKind, Universe
from bot.exchange.venues import VENUES, venue_for

VENUE_NAMES: tuple[str, ...] = tuple(VENUES)
PUBLISHED_FUNDING_HOURS = 8.0
UNKNOWN_OFFLINE = "unknown offline"
KINDS = (MarketKind.SPOT, MarketKind.PERP)


@dataclass(frozen=True, slots=True)
class Fee:
    """A fee as a fraction of the notional (0.001 = 0.1 % = 10 bps)."""

    taker: float
    maker: float
    source: str  # "account" | "published"
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"taker": self.taker, "maker": self.maker, "source": self.source,
                "note": self.note or None}


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    token: str
    market: MarketKind
    side: str
    amount: Decimal
    price: Decimal | None
    price_source: str  # "fill" | "order" | "decision close" | "none"

    @property
    def notional(self) -> Decimal:
        return self.amount * self.price if self.price is not None else Decimal(0)


@dataclass(frozen=True, slots=True)
class CurrentPlan:
    """The orders of the decision being costed; ``note`` says which and why."""

    decision_id: str | None
    as_of: datetime | None
    orders: tuple[PlannedOrder, ...]
    note: str

    def notional(self, kind: MarketKind) -> Decimal:
        return sum((o.notional for o in self.orders if o.market is kind), Decimal(0))

    @property
    def unpriced(self) -> list[str]:
        return [f"{o.token} {o.market.value}" for o in self.orders if o.price is None]


@dataclass(frozen=True, slots=True)
class PlanCost:
    fees: float
    slippage: float

    @property
    def total(self) -> float:
        return self.fees + self.slippage


@dataclass
class VenueOffer:
    name: str
    contacted: bool
    status: str
    fees: dict[MarketKind, Fee]
    funding: str
    funding_hours: dict[str, float] = field(default_factory=dict)
    minimums: dict[str, dict[MarketKind, MarketInfo | str]] | None = None
    minimums_note: str = UNKNOWN_OFFLINE
    cost: PlanCost | None = None


@dataclass
class Comparison:
    mode: str
    configured: str
    slippage_bps: float
    paper: dict[str, float]
    venues: list[VenueOffer]
    plan: CurrentPlan


# -- published figures (ccxt's source, no network) ---------------------------------------------
def published_fees(venue: str,
                   factory: Callable[[str], Any] | None = None) -> dict[MarketKind, Fee]:
    """ccxt's default tier for ``venue``'s spot and USDT-perp classes, from the classes'
    ``fees`` property (instantiated without config: no market loaded, nothing sent)."""
    make = factory or (lambda cls: getattr(ccxt, cls)())
    v = venue_for(venue)
    out: dict[MarketKind, Fee] = {}
    for kind, cls in ((MarketKind.SPOT, v.spot_class), (MarketKind.PERP, v.perp_class)):
        fees = make(cls).fees
        entry, note = _fee_entry(fees, kind)
        out[kind] = Fee(float(entry["taker"]), float(entry["maker"]), "published", note)
    return out


def _fee_entry(fees: Mapping[str, Any], kind: MarketKind) -> tuple[Mapping[str, Any], str]:
    """The most specific entry ccxt publishes for ``kind``: ``spot``/``swap`` sections
    (OKX), ``linear.trading`` (Binance USD-M), else the class-wide ``trading`` figure."""
    keys = [("spot",)] if kind is MarketKind.SPOT else [("linear", "trading"), ("swap",)]
    for path in keys:
        entry: Any = fees
        for key in path:
            entry = entry.get(key) if isinstance(entry, Mapping) else None
        if isinstance(entry, Mapping) and entry.get("taker") is not None:
            return entry, ""
    trading = fees["trading"]
    shared = "" if kind is MarketKind.SPOT else "ccxt publishes one default for every market"
    return trading, shared


# -- the current plan (the store, read-only) ---------------------------------------------------
def current_plan(settings: Settings) -> CurrentPlan:
    """The last decision's orders (stops excluded: they only trade if triggered). A last
    decision that planned nothing (a hold) is said, and the newest decision with orders is
    costed instead."""
    from bot.store.preflight import NoStateYet, StateFileError, check_state_file, check_target
    from bot.store.repo import StateStore
    from bot.store.schema import DecisionRow, OrderRow

    try:
        target = check_target(settings.state.target())
        if target.path is not None:
            check_state_file(target.path, write=False, create=False)
    except NoStateYet:
        return CurrentPlan(None, None, (), "no state yet: no plan to cost")
    except StateFileError as exc:
        return CurrentPlan(None, None, (), f"state store not readable: {exc}")
    store = StateStore(settings.state.target(), read_only=True)
    try:
        last = store.last_decision()
        if last is None:
            return CurrentPlan(None, None, (), "no decision yet: no plan to cost")
        with store.session() as s:
            planned = select(OrderRow.decision_id).where(
                OrderRow.decision_id.is_not(None), OrderRow.trigger_price.is_(None))
            row = s.scalars(select(DecisionRow).where(DecisionRow.decision_id.in_(planned))
                            .order_by(DecisionRow.seq.desc()).limit(1)).first()
            if row is None:
                return CurrentPlan(last.decision_id, last.as_of, (),
                                   f"decision {last.decision_id} ({last.action}) planned no "
                                   "orders, nor did any before it")
            decision_id, as_of = row.decision_id, row.as_of
            orders = list(s.scalars(
                select(OrderRow).where(OrderRow.decision_id == decision_id,
                                       OrderRow.trigger_price.is_(None))
                .order_by(OrderRow.created_at, OrderRow.client_id)))
        snapshot = store.signal_snapshot(as_of)
        closes = snapshot.payload.get("closes", {}) if snapshot is not None else {}
        priced = tuple(_priced(o, closes) for o in orders)
    finally:
        store.close()
    note = f"decision {decision_id}"
    if decision_id != last.decision_id:
        note += (f" (the last decision, {last.decision_id} ({last.action}), planned no "
                 "orders)")
    return CurrentPlan(decision_id, as_of, priced, note)


def _priced(o: Any, closes: Mapping[str, Any]) -> PlannedOrder:
    market = MarketKind(o.market)
    price: Decimal | None
    if o.average_price is not None and o.filled > 0:
        price, source = Decimal(o.average_price), "fill"
    elif o.price is not None:
        price, source = Decimal(o.price), "order"
    elif o.token in closes:
        price, source = Decimal(str(closes[o.token][1])), "decision close"
    else:
        price, source = None, "none"
    return PlannedOrder(o.token, market, o.side, Decimal(o.amount), price, source)


def plan_cost(plan: CurrentPlan, fees: Mapping[MarketKind, Fee],
              slippage_bps: float) -> PlanCost:
    """Every order at the venue's taker fee (market orders take) plus the slippage."""
    fee = sum(float(plan.notional(kind)) * fees[kind].taker for kind in KINDS)
    notional = sum(float(plan.notional(kind)) for kind in KINDS)
    return PlanCost(fee, notional * slippage_bps / 10_000)


# -- the configured venue (reads only) ---------------------------------------------------------
ExchangeBuilder = Callable[[Settings, Universe], Any]


def _has_keys(settings: Settings, venue: str) -> bool:
    ex = settings.exchange
    return settings.mode != "paper" and ex.name == venue and ex.api_key is not None


def _account_offer(name: str, settings: Settings, universe: Universe,
                   build: ExchangeBuilder, published: dict[MarketKind, Fee]) -> VenueOffer:
    """Markets, the account's fees and the funding intervals of the configured venue."""
    from bot.exchange.port import ExchangeError

    exchange = build(settings, universe)
    try:
        try:
            markets = exchange.load_markets()
        except ExchangeError as exc:
            return VenueOffer(name, True, f"unreachable ({settings.mode}): {exc}; published "
                              "figures", published, f"{PUBLISHED_FUNDING_HOURS:g} h (published)",
                              minimums_note=f"unknown: {type(exc).__name__}")
        fees = {kind: _account_fee(exchange, kind, universe, published[kind])
                for kind in KINDS}
        minimums = _minimums(universe, markets, exchange.dropped)
        perps = [t.symbol for t in universe.all_tokens() if t.perp]
        try:
            rates = exchange.fetch_funding_rates(perps)
            hours = {token: rate.interval_hours for token, rate in rates.items()}
            funding = _funding_text(hours)
        except ExchangeError as exc:
            hours, funding = {}, f"{PUBLISHED_FUNDING_HOURS:g} h (published; venue: {exc})"
        return VenueOffer(name, True, f"keys configured: read from the venue "
                          f"({settings.mode})", fees, funding, hours, minimums, "")
    finally:
        exchange.close()


def _account_fee(exchange: Any, kind: MarketKind, universe: Universe, published: Fee) -> Fee:
    """The highest taker (and maker) fee ccxt reports for the universe's markets of
    ``kind``: the cost estimate errs on the dear side."""
    from bot.exchange.port import ExchangeError

    inst = exchange.instance(kind)
    symbols = set(exchange.symbols(kind)) if inst is not None else set()
    if inst is None or not symbols:
        return Fee(published.taker, published.maker, "published",
                   f"no {kind.value} market of the universe listed")
    try:
        table = exchange.caller.read(inst, "fetch_trading_fees",
                                     lambda: inst.fetch_trading_fees())
    except ExchangeError as exc:
        return Fee(published.taker, published.maker, "published",
                   f"the venue did not give the account's fees: {exc}")
    mine = [table[s] for s in sorted(symbols)
            if s in table and table[s].get("taker") is not None]
    if not mine:
        return Fee(published.taker, published.maker, "published",
                   "the venue's fee answer lists none of the universe's markets")
    return Fee(max(float(f["taker"]) for f in mine),
               max(float(f.get("maker") or 0) for f in mine), "account")


def _minimums(universe: Universe, markets: Mapping[tuple[str, MarketKind], MarketInfo],
              dropped: Mapping[tuple[str, MarketKind], str],
              ) -> dict[str, dict[MarketKind, MarketInfo | str]]:
    out: dict[str, dict[MarketKind, MarketInfo | str]] = {}
    for token in universe.all_tokens():
        row: dict[MarketKind, MarketInfo | str] = {}
        for kind, wanted in ((MarketKind.SPOT, token.spot), (MarketKind.PERP, token.perp)):
            if not wanted:
                continue
            info = markets.get((token.symbol, kind))
            row[kind] = info if info is not None else dropped.get((token.symbol, kind),
                                                                  "not listed")
        out[token.symbol] = row
    return out


def _funding_text(hours: Mapping[str, float]) -> str:
    if not hours:
        return f"{PUBLISHED_FUNDING_HOURS:g} h (published; no perp of the universe listed)"
    groups: dict[float, list[str]] = {}
    for token, h in sorted(hours.items()):
        groups.setdefault(h, []).append(token)
    if len(groups) == 1:
        return f"{next(iter(groups)):g} h (venue)"
    return "; ".join(f"{h:g} h: {', '.join(tokens)}"
                     for h, tokens in sorted(groups.items(), key=lambda kv: -len(kv[1])))


# -- the comparison ----------------------------------------------------------------------------
def compare(settings: Settings, universe: Universe,
            build: ExchangeBuilder | None = None) -> Comparison:
    """Every supported venue; only the configured one (with keys, outside paper mode) is
    contacted, and only read."""
    if build is None:
        from bot.service.venue import build_exchange

        build = build_exchange
    plan = current_plan(settings)
    slippage = settings.paper.slippage_bps
    offers: list[VenueOffer] = []
    for name in VENUE_NAMES:
        published = published_fees(name)
        if _has_keys(settings, name):
            offer = _account_offer(name, settings, universe, build, published)
        else:
            why = ("paper mode: nothing contacted" if settings.mode == "paper"
                   else f"no keys for {name}: not contacted")
            offer = VenueOffer(name, False, f"{why}; ccxt's published default fees",
                               published, f"{PUBLISHED_FUNDING_HOURS:g} h (published)")
        offer.cost = plan_cost(plan, offer.fees, slippage)
        offers.append(offer)
    paper = {"spot_fee_bps": settings.paper.spot_fee_bps,
             "perp_fee_bps": settings.paper.perp_fee_bps, "slippage_bps": slippage}
    return Comparison(settings.mode, settings.exchange.name, slippage, paper, offers, plan)


# -- output ------------------------------------------------------------------------------------
def _bps(fraction: float) -> str:
    return f"{fraction * 10_000:.1f}"


def _q(value: Decimal) -> str:
    return format(value.normalize(), "f")


def to_json(c: Comparison) -> dict[str, Any]:
    def minimums(offer: VenueOffer) -> Any:
        if offer.minimums is None:
            return {"status": offer.minimums_note}
        return {token: {kind.value: ({"min_amount": str(v.min_amount),
                                      "min_notional": str(v.min_notional),
                                      "amount_step": str(v.amount_step),
                                      "contract_size": str(v.contract_size)}
                                     if isinstance(v, MarketInfo) else {"status": v})
                        for kind, v in row.items()} for token, row in offer.minimums.items()}

    plan = c.plan
    return {
        "mode": c.mode, "configured_exchange": c.configured, "slippage_bps": c.slippage_bps,
        "paper": c.paper,
        "plan": {"decision_id": plan.decision_id,
                 "as_of": plan.as_of.isoformat() if plan.as_of else None, "note": plan.note,
                 "notional_usdt": {k.value: float(plan.notional(k)) for k in KINDS},
                 "unpriced": plan.unpriced,
                 "orders": [{"token": o.token, "market": o.market.value, "side": o.side,
                             "amount": str(o.amount),
                             "price": None if o.price is None else str(o.price),
                             "price_source": o.price_source} for o in plan.orders]},
        "venues": [{"name": o.name, "contacted": o.contacted, "status": o.status,
                    "fees": {k.value: o.fees[k].to_json() for k in KINDS},
                    "funding": {"text": o.funding, "interval_hours": o.funding_hours or None},
                    "min_order_sizes": minimums(o),
                    "plan_cost_usdt": None if o.cost is None else {
                        "fees": round(o.cost.fees, 6), "slippage": round(o.cost.slippage, 6),
                        "total": round(o.cost.total, 6)}} for o in c.venues]}


def render(c: Comparison) -> str:
    out = [f"Venues (mode {c.mode}, exchange {c.configured}); fees in bps of the notional, "
           "taker / maker", ""]
    out.append(f"{'venue':<8} {'spot':^13} {'perp':^13}  {'funding':<22} source")
    for o in c.venues:
        s, p = o.fees[MarketKind.SPOT], o.fees[MarketKind.PERP]
        out.append(f"{o.name:<8} {_bps(s.taker):>6}/{_bps(s.maker):<6} "
                   f"{_bps(p.taker):>6}/{_bps(p.maker):<6}  {_short(o.funding, 22):<22} "
                   f"{o.status}")
        for kind, fee in ((MarketKind.SPOT, s), (MarketKind.PERP, p)):
            if fee.note:
                out.append(f"{'':<8} {kind.value} fee: {fee.source}: {fee.note}")
        if len(o.funding) > 22:
            out.append(f"{'':<8} funding: {o.funding}")
    out.append(f"{'paper':<8} {c.paper['spot_fee_bps']:>6.1f}/{'-':<6} "
               f"{c.paper['perp_fee_bps']:>6.1f}/{'-':<6}  {'replay data':<22} "
               "the simulator's configured fees (paper.spot_fee_bps, perp_fee_bps)")
    out += ["", "Minimum order sizes (the universe's markets):"]
    for o in c.venues:
        if o.minimums is None:
            out.append(f"  {o.name}: {o.minimums_note} (markets are read from the venue, "
                       "only when it is contacted)")
            continue
        out.append(f"  {o.name}: minimum amount / minimum notional")
        unlisted: list[str] = []
        for token, row in o.minimums.items():
            if not any(isinstance(v, MarketInfo) for v in row.values()):
                unlisted.append(token)
                continue
            cells = [f"{kind.value} " + (f"{_q(v.min_amount)} {token} / "
                                         f"{_q(v.min_notional)} USDT"
                                         if isinstance(v, MarketInfo) else "not listed")
                     for kind, v in row.items()]
            out.append(f"    {token:<8} " + "; ".join(cells))
        if unlisted:
            out.append(f"    not listed ({len(unlisted)}): {', '.join(unlisted)}")
    plan = c.plan
    out += ["", f"Estimated cost of the current plan: {plan.note}"]
    if plan.orders:
        spot, perp = plan.notional(MarketKind.SPOT), plan.notional(MarketKind.PERP)
        out.append(f"  {len(plan.orders)} orders, notional spot {spot:.2f} USDT, perp "
                   f"{perp:.2f} USDT; taker fee + slippage {c.slippage_bps:g} bps")
        if plan.unpriced:
            out.append(f"  without a price (not costed): {', '.join(plan.unpriced)}")
        for o in c.venues:
            if o.cost is not None:
                out.append(f"  {o.name:<8} {o.cost.total:>10.2f} USDT  (fees "
                           f"{o.cost.fees:.2f} + slippage {o.cost.slippage:.2f})")
    return "\n".join(out)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."
