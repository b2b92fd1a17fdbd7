"""One trading cycle: signals -> decision -> risk -> plan -> orders -> state.

The cycle owns no policy: the engine decides, the risk rules clip, the planner sizes. This
module only moves data between them and the adapters, and says what happened in the log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from bot.domain.codec import rotation_state_from_dict, rotation_state_to_dict
from bot.domain.engine import decide
from bot.domain.models import (
    QUOTE,
    Decision,
    MarketKind,
    MarketSnapshot,
    Portfolio,
    Series,
    Universe,
)
from bot.domain.params import StrategyParams
from bot.domain.planner import plan_orders
from bot.domain.risk import check_overlay
from bot.domain.risk_limits import RiskLimits
from bot.domain.wallets import pooled, wallet_transfer
from bot.exchange.port import ExchangeError, ExchangePort, OutcomeUnknown
from bot.service.executor import ExecutionReport, Executor
from bot.service.market_keep import candle_markets, kept_candles, kept_funding
from bot.service.risk_watch import RiskWatch
from bot.sources.venue_read import VenueRead
from bot.store.repo import StateStore

ROTATION_KEY = "engine.rotation"


TRANSFER_LOOKBACK = timedelta(minutes=5)


@dataclass(frozen=True)
class TransferPolicy:
    """``exchange.auto_transfer``: the most one transfer may move, and the least worth it."""

    cap: Decimal
    minimum: Decimal = Decimal(10)


class SignalSource(Protocol):
    """Where a cycle's snapshot comes from (replayed files now, live HTTP providers later)."""

    def snapshot(self, as_of: datetime) -> MarketSnapshot:
        ...


def snapshot_summary(snap: MarketSnapshot) -> dict[str, Any]:
    """The latest value of every signal a decision saw (the full history is in the source);
    enough to see afterwards what the engine was looking at, small enough to keep per cycle."""
    def latest(series: Series) -> list[Any] | None:
        last = series.last()
        return None if last is None else [last[0].isoformat(), last[1]]

    return {
        "closes": {t: latest(s) for t, s in sorted(snap.closes.items())},
        "funding": {t: latest(s) for t, s in sorted(snap.funding.items())},
        "sector_metrics": {sector: {m: latest(s) for m, s in sorted(metrics.items())}
                           for sector, metrics in sorted(snap.sector_metrics.items())},
    }


def read_portfolio(exchange: ExchangePort, tokens: list[str],
                   perp_only: list[str] | None = None) -> Portfolio:
    """The venue's view of our holdings: the only source of truth for positions.

    Prices are spot prices; ``perp_only`` tokens (no spot market, hedge legs only) are
    priced from their perpetual, or the planner could never size a leg on them."""
    balances = exchange.fetch_balances()
    prices = exchange.fetch_prices(tokens, MarketKind.SPOT)
    if perp_only:
        perp_prices = exchange.fetch_prices(perp_only, MarketKind.PERP)
        prices.update({t: p for t, p in perp_prices.items() if t not in prices})
    perps = {p.token: p for p in exchange.fetch_positions()}
    for token, p in perps.items():
        prices.setdefault(token, p.mark_price)
    spot = {a: amt for a, amt in balances.total.items() if a != QUOTE and amt > 0}
    return Portfolio(cash=balances.total.get(QUOTE, Decimal(0)), spot=spot, perps=perps,
                     prices=prices,
                     free_cash=balances.spot_quote_free if balances.spot_quote_free is not None
                     else balances.free.get(QUOTE, Decimal(0)),
                     futures_free=balances.futures_quote_free)


@dataclass(frozen=True)
class CycleOutcome:
    decision: Decision
    report: ExecutionReport
    equity: Decimal
    portfolio: Portfolio | None = None
    """The book as read after the orders (what ``equity`` is the equity of)."""
    snapshot: MarketSnapshot | None = None
    """The signals the decision saw (for their ages in the metrics)."""


class TradingCycle:
    def __init__(self, *, universe: Universe, params: StrategyParams, limits: RiskLimits,
                 exchange: ExchangePort, store: StateStore, signals: SignalSource,
                 log: Any, margin_mode: str = "isolated",
                 should_stop: Callable[[], bool] | None = None,
                 transfers: TransferPolicy | None = None, keep_metrics: bool = False) -> None:
        """``keep_metrics``: keep each provider figure, and the venue's candles and funding,
        as first seen (on a venue; replay data is already on disk)."""
        self.universe = universe
        self.params = params
        self.limits = limits
        self.exchange = exchange
        self.store = store
        self.signals = signals
        self.log = log
        self.should_stop = should_stop or (lambda: False)
        self.transfers = transfers
        self.keep_metrics = keep_metrics
        self._transfers_refused = False
        """Set once the venue refuses a transfer (keys without the permission, a host without
        the wallet API): from then on each side is planned on its own wallet."""
        self.executor = Executor(exchange, store, log, margin_mode,
                                 max_slippage=limits.max_slippage_fraction,
                                 should_stop=self.should_stop)
        # ``keep_metrics`` says the cycle runs on a venue: there the risk watch looks for
        # perps the venue closed alone (the paper replay logs its own liquidations).
        self.risk = RiskWatch(exchange, store, self.executor, limits, log,
                              should_stop=self.should_stop, watch_liquidations=keep_metrics)
        self._snapshot: MarketSnapshot | None = None
        self._stale: frozenset[str] = frozenset()

    # -- signals ---------------------------------------------------------------------------
    def refresh_signals(self, as_of: datetime) -> MarketSnapshot:
        """Pull a snapshot; idempotent for the same ``as_of`` (the signal job and the cycle
        both call it, the second call reuses the first's work)."""
        if self._snapshot is not None and self._snapshot.as_of == as_of:
            return self._snapshot
        snap = self.signals.snapshot(as_of)
        metrics = sorted({m for per in snap.sector_metrics.values() for m in per})
        self.log.info("signals.refreshed", as_of=as_of.isoformat(), tokens=len(snap.closes),
                      sectors=len(snap.sector_metrics), metrics=metrics,
                      funding=len(snap.funding), stale=len(snap.stale))
        self._log_staleness(snap.stale, as_of)
        self.store.record_signal_snapshot(as_of, snapshot_summary(snap), snap.stale)
        if self.keep_metrics:
            self.store.record_sector_metrics(snap.sector_metrics, as_of)
            self._keep_market_data(snap)
        self._snapshot = snap
        return snap

    def _keep_market_data(self, snap: MarketSnapshot) -> None:
        """Keep the venue's candles and funding the snapshot holds, as first seen (only what
        is newer than the newest kept per token), for ``export-signals --replay-dir``."""
        read: VenueRead | None = getattr(self.signals, "last_read", None)
        if read is None or read.as_of != snap.as_of:
            return  # not a venue source, or its read belongs to another snapshot
        candles = kept_candles(snap, read, candle_markets(self.universe.all_tokens(),
                                                          self.exchange.load_markets()),
                               self.store.newest_kept_candles())
        funding = kept_funding(snap, read, self.store.newest_kept_funding())
        if candles or funding:
            self.store.record_market_data(self.exchange.name, candles, funding, snap.as_of)

    def _log_staleness(self, stale: frozenset[str], as_of: datetime) -> None:
        """Say when a signal goes stale and when it recovers, not at every cycle it stays
        so (one bundled replay logged 11,484 identical lines). A restarted daemon says it
        once more: its operator sees what is stale now."""
        for key in sorted(stale - self._stale):
            self.log.warning("signal.stale", signal=key, as_of=as_of.isoformat())
        for key in sorted(self._stale - stale):
            self.log.info("signal.recovered", signal=key, as_of=as_of.isoformat())
        self._stale = stale

    # -- portfolio -------------------------------------------------------------------------
    def read_portfolio(self) -> Portfolio:
        tokens = self.universe.all_tokens()
        return read_portfolio(self.exchange, [t.symbol for t in tokens if t.spot],
                              [t.symbol for t in tokens if t.perp and not t.spot])

    # -- the cycle -------------------------------------------------------------------------
    def run(self, as_of: datetime) -> CycleOutcome:
        self.log.info("cycle.started", as_of=as_of.isoformat())
        snapshot = self.refresh_signals(as_of)
        portfolio = self.read_portfolio()
        prior_raw = self.store.get(ROTATION_KEY)
        prior = rotation_state_from_dict(prior_raw) if prior_raw else None
        kill_action = self.risk.kill_action()
        killed = kill_action is not None
        # With transfers on, the engine plans the account as one pool: the daemon moves
        # USDT to the wallet that needs it before the orders go out. Not while the kill
        # switch is tripped (nothing is bought), nor once the venue refused a transfer.
        pooling = self.transfers is not None and not killed and not self._transfers_refused
        view = pooled(portfolio) if pooling else portfolio
        decision = decide(snapshot, view, self.universe, self.params, prior,
                          kill_switch=kill_action)
        self.store.save_decision(decision, {
            ROTATION_KEY: rotation_state_to_dict(decision.rotation)
            if decision.rotation else None})
        self.log.info("decision.made", decision_id=decision.decision_id,
                      action=decision.action, regime=decision.regime.value,
                      confidence=round(decision.confidence, 4),
                      rotation=None if decision.rotation is None else
                      f"{decision.rotation.from_sector}->{decision.rotation.to_sector}",
                      spot_weights={k: round(v, 4) for k, v in decision.spot_weights.items()},
                      overlay=[f"{leg.side.value} {leg.token} {leg.leverage}x "
                               f"{leg.equity_fraction:.3f}" for leg in decision.overlay],
                      reasons=list(decision.reasons))
        report = ExecutionReport()
        if decision.trades:
            overlay, blocks = check_overlay(decision.overlay, self.limits, decision.regime,
                                            killed,
                                            frozenset(self.risk.funding_blocked()),
                                            self._cooling(as_of, portfolio))
            for block in blocks:
                self.log.warning("risk.blocked", rule=block.rule, token=block.token,
                                 detail=block.detail, decision_id=decision.decision_id)
            markets = self.exchange.load_markets()
            if pooling and self._balance_wallets(decision, portfolio):
                portfolio = self.read_portfolio()
            plan = plan_orders(decision, portfolio, markets, overlay,
                               plan_id=self.store.begin_plan(decision.decision_id),
                               sell_only=killed)
            report = self.executor.execute(plan, decision.decision_id,
                                           self.limits.stop_loss_fraction)
        portfolio = self.read_portfolio()
        self.store.record_portfolio(portfolio, as_of)
        equity = portfolio.equity()
        self.log.info("cycle.completed", as_of=as_of.isoformat(),
                      decision_id=decision.decision_id, action=decision.action,
                      orders_sent=report.sent, orders_filled=report.filled,
                      orders_rejected=report.rejected, orders_blocked=report.blocked,
                      stops_placed=report.stops_placed,
                      equity=str(equity.quantize(Decimal("0.01"))))
        return CycleOutcome(decision, report, equity, portfolio, snapshot)

    def _balance_wallets(self, decision: Decision, portfolio: Portfolio) -> bool:
        """Move USDT between the spot and futures wallets if the decision needs it; True
        when a transfer went through (the balances must be read again).

        Write-ahead, like an order. A transfer whose answer was lost is looked up first; while
        one stays unknown no new one is sent (two transfers would move twice the money).
        """
        policy = self.transfers
        assert policy is not None
        for row in self.store.transfers(("pending", "unknown")):
            to = MarketKind(row.to_wallet)
            try:
                # From a little before it was written: the venue's clock may run behind.
                found = self.exchange.find_transfer(row.amount, to,
                                                    row.created_at - TRANSFER_LOOKBACK)
            except ExchangeError as exc:
                self.log.warning("wallet.transfer_unknown", transfer_id=row.transfer_id,
                                 reason=str(exc))
                return False
            self.store.settle_transfer(row.transfer_id,
                                       "done" if found is not None else "expired",
                                       venue_id=found)
        amount = wallet_transfer(decision, portfolio, policy.cap, policy.minimum)
        if amount < 0 and self.executor.margin_mode != "isolated":
            amount = Decimal(0)  # in cross margin, free futures USDT keeps positions alive
        if amount == 0:
            return False
        to = MarketKind.PERP if amount > 0 else MarketKind.SPOT
        row = self.store.journal_transfer(abs(amount), to.value, decision.decision_id)
        try:
            venue_id = self.exchange.transfer_quote(abs(amount), to)
        except OutcomeUnknown as exc:
            self.store.settle_transfer(row.transfer_id, "unknown", error=str(exc))
            self.log.warning("wallet.transfer_unknown", transfer_id=row.transfer_id,
                             reason=str(exc))
            return False
        except ExchangeError as exc:
            self.store.settle_transfer(row.transfer_id, "rejected", error=str(exc))
            self.log.warning("wallet.transfer_rejected", transfer_id=row.transfer_id,
                             amount=str(abs(amount)), to=to.value, reason=str(exc),
                             action="each side is now planned on its own wallet")
            self._transfers_refused = True
            return False
        self.store.settle_transfer(row.transfer_id, "done", venue_id=venue_id)
        self.log.info("wallet.transfer", transfer_id=row.transfer_id, amount=str(abs(amount)),
                      to=to.value, venue_id=venue_id, decision_id=decision.decision_id)
        return True

    def _cooling(self, as_of: datetime, portfolio: Portfolio) -> frozenset[str]:
        """Tokens stopped out within ``stop_cooldown_days`` that hold no position now."""
        window = timedelta(days=self.limits.stop_cooldown_days)
        if window <= timedelta(0):
            return frozenset()
        return frozenset(token for token, at in self.store.last_stop_outs().items()
                         if as_of - at < window and token not in portfolio.perps)

    def risk_watch(self, salt: str, consecutive_failures: int = 0) -> list[str]:
        """Stop watchdog, kill switch, funding exits and liquidation buffer, each guarded on
        its own (see :mod:`risk_watch`); returns the steps that failed."""
        return self.risk.run(self.read_portfolio, salt, consecutive_failures)
