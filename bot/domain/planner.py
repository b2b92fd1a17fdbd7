"""Turn a decision into the orders that move the book from where it is to where it should be.

Only differences are traded (never sell everything and buy back). Order matters: spot sells
first so their proceeds fund the buys, perp reductions before perp opens so margin is freed
before it is needed. Orders too small for the venue are skipped here, with a reason, rather
than sent to be rejected. Stops are not planned here: they depend on the fill, so the executor
places them right after each open with :func:`bot.domain.risk.stop_price_for`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal

from bot.domain.models import (
    QUOTE,
    Decision,
    MarketInfo,
    MarketKind,
    OrderIntent,
    OverlayLeg,
    Portfolio,
    PositionSide,
    Side,
)

FEE_BUFFER = Decimal("0.995")
"""Buys are sized to at most this share of the cash they can use, leaving room for fees."""


@dataclass(frozen=True, slots=True)
class Skip:
    token: str
    market: MarketKind
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Orders in the order they must be sent, plus what was skipped and why.

    ``plan_id`` is the identity every order id of the plan is derived from (see
    :func:`client_order_id`); the store hands it out. Empty for a plan built by hand.
    """

    intents: tuple[OrderIntent, ...]
    skipped: tuple[Skip, ...]
    stop_distance: Mapping[str, float]
    plan_id: str = ""


def client_order_id(plan_id: str, purpose: str, token: str, market: MarketKind, side: Side,
                    amount: Decimal, reduce_only: bool = False) -> str:
    """The id of the order that *is* this: a digest of the plan and the order's content.

    Never a position in a list: a plan that changes (a stop fired, a position opened by
    hand) would give the same number to a different order, and the venue and the journal
    would then take one order for another. The same plan asking for the same order gets the
    same id, so a re-run after a crash recognises what it already sent; anything that differs
    (plan, purpose, token, market, side, amount, reduce-only) gives another id.

    ``sb-`` and 24 hex digits: within every venue's limit (Binance 36, OKX 32 once its
    ``-`` is encoded) and made of characters all of them accept.
    """
    content = "|".join((plan_id, purpose, token, market.value, side.value,
                        format(amount.normalize(), "f"), "ro" if reduce_only else "-"))
    return f"sb-{hashlib.sha256(content.encode()).hexdigest()[:24]}"


def round_step(amount: Decimal, step: Decimal) -> Decimal:
    """Round an amount down to the venue's step (never up: that could overspend)."""
    if step <= 0:
        return amount
    return (amount / step).to_integral_value(rounding=ROUND_DOWN) * step


def _fits(amount: Decimal, price: Decimal, info: MarketInfo) -> str | None:
    if amount <= 0 or amount < info.min_amount:
        return f"amount {amount} below minimum {info.min_amount}"
    if amount * price < info.min_notional:
        return f"notional {amount * price:.2f} below minimum {info.min_notional}"
    return None


def posted_margin(portfolio: Portfolio) -> Decimal:
    """Margin the open perps hold (notional / leverage), already out of free cash."""
    return sum((p.notional / p.leverage for p in portfolio.perps.values() if p.leverage > 0),
               Decimal(0))


def spot_cash(decision: Decision, portfolio: Portfolio, equity: Decimal) -> Decimal:
    """USDT spot buys may use before this plan's sells.

    One wallet: its free USDT less the part of the overlay's reserve not yet posted as
    margin (posted margin is already out of free cash: reserving it again would leave the
    book under target forever). Two wallets (Binance): the spot wallet's free USDT, all of
    it; the overlay's margin lives in the futures wallet.
    """
    if portfolio.futures_free is not None:
        return portfolio.free_cash if portfolio.free_cash is not None else Decimal(0)
    posted = posted_margin(portfolio)
    free = portfolio.free_cash if portfolio.free_cash is not None else portfolio.cash - posted
    reserve = equity * Decimal(str(decision.cash_reserve))
    return free - max(Decimal(0), reserve - posted)


def plan_orders(
    decision: Decision,
    portfolio: Portfolio,
    markets: Mapping[tuple[str, MarketKind], MarketInfo],
    overlay: tuple[OverlayLeg, ...],
    min_trade_fraction: float = 0.005,
    *,
    plan_id: str,
    sell_only: bool = False,
) -> Plan:
    """The ordered legs that take ``portfolio`` to ``decision``'s targets.

    ``overlay`` is the decision's overlay after the risk check. ``min_trade_fraction`` of
    equity is the smallest spot change worth an order: below it, drift is tolerated.
    ``plan_id`` comes from the store (``begin_plan``); every order id is derived from it.
    ``sell_only`` (a tripped kill switch): no buy and no perp open, whatever the weights say.
    """
    equity = portfolio.equity()
    intents: list[OrderIntent] = []
    skipped: list[Skip] = []
    if equity <= 0:
        return Plan((), (Skip("*", MarketKind.SPOT, "no equity"),), {}, plan_id)
    min_trade = equity * Decimal(str(min_trade_fraction))
    frozen = set(decision.frozen)

    def order(purpose: str, token: str, market: MarketKind, side: Side, amount: Decimal, *,
              reason: str, reference_price: Decimal, reduce_only: bool = False,
              leverage: Decimal | None = None) -> OrderIntent:
        cid = client_order_id(plan_id, purpose, token, market, side, amount, reduce_only)
        return OrderIntent(cid, token, market, side, amount, reduce_only=reduce_only,
                           leverage=leverage, reason=reason, reference_price=reference_price)

    # ---- spot: sells, then buys scaled to the cash they can use ---------------------------
    sells: list[tuple[str, Decimal]] = []
    buys: list[tuple[str, Decimal]] = []
    tokens = sorted(set(decision.spot_weights) | {t for t, a in portfolio.spot.items() if a > 0})
    for token in tokens:
        if token == QUOTE:
            continue
        if token in frozen:
            skipped.append(Skip(token, MarketKind.SPOT,
                                "frozen: no fresh price, neither bought nor sold"))
            continue
        price = portfolio.prices.get(token)
        info = markets.get((token, MarketKind.SPOT))
        if price is None or price <= 0 or info is None:
            skipped.append(Skip(token, MarketKind.SPOT, "no market or price"))
            continue
        target_value = equity * Decimal(str(decision.spot_weights.get(token, 0.0)))
        held = portfolio.spot.get(token, Decimal(0))
        delta_value = target_value - held * price
        if abs(delta_value) < min_trade and target_value > 0:
            continue
        if delta_value < 0:
            amount = held if target_value == 0 else min(held, -delta_value / price)
            amount = round_step(amount, info.amount_step)
            why = _fits(amount, price, info)
            if why:
                skipped.append(Skip(token, MarketKind.SPOT, why))
                continue
            sells.append((token, amount))
        elif delta_value > 0 and not sell_only:
            buys.append((token, delta_value))
    proceeds = sum((a * portfolio.prices[t] for t, a in sells), Decimal(0))
    spendable = max(Decimal(0), (spot_cash(decision, portfolio, equity) + proceeds) * FEE_BUFFER)
    wanted = sum((v for _, v in buys), Decimal(0))
    scale = min(Decimal(1), spendable / wanted) if wanted > 0 else Decimal(1)
    for token, amount in sells:
        intents.append(order("rebalance", token, MarketKind.SPOT, Side.SELL, amount,
                             reason="spot rebalance: above target",
                             reference_price=portfolio.prices[token]))
    for token, value in buys:
        price = portfolio.prices[token]
        info = markets[(token, MarketKind.SPOT)]
        amount = round_step(value * scale / price, info.amount_step)
        why = _fits(amount, price, info)
        if why:
            if scale < 1:
                why += f" (buys scaled to {scale:.3f} of target: spot cash {spendable:.2f})"
            skipped.append(Skip(token, MarketKind.SPOT, why))
            continue
        reason = "spot rebalance: below target" + ("" if scale == 1 else f" (scaled {scale:.3f})")
        intents.append(order("rebalance", token, MarketKind.SPOT, Side.BUY, amount,
                             reason=reason, reference_price=price))

    # ---- perps: reductions first, then opens ----------------------------------------------
    targets: dict[str, tuple[Decimal, OverlayLeg | None]] = {}
    for wanted_leg in overlay:
        price = portfolio.prices.get(wanted_leg.token)
        if price is None or price <= 0:
            skipped.append(Skip(wanted_leg.token, MarketKind.PERP, "no price"))
            continue
        sign = Decimal(1) if wanted_leg.side is PositionSide.LONG else Decimal(-1)
        targets[wanted_leg.token] = (
            sign * Decimal(str(wanted_leg.equity_fraction)) * equity / price, wanted_leg)
    for token in portfolio.perps:
        targets.setdefault(token, (Decimal(0), None))
    reduces: list[OrderIntent] = []
    opens: list[_Open] = []
    for token in sorted(targets):
        target, o = targets[token]
        info = markets.get((token, MarketKind.PERP))
        price = portfolio.prices.get(token)
        if info is None or price is None:
            skipped.append(Skip(token, MarketKind.PERP, "no perp market or price"))
            continue
        current = portfolio.perps[token].amount if token in portfolio.perps else Decimal(0)
        closing = current != 0 and (target == 0 or (target > 0) != (current > 0))
        if closing:
            amount = round_step(abs(current), info.amount_step)
            side = Side.SELL if current > 0 else Side.BUY
            reduces.append(order("close", token, MarketKind.PERP, side, amount,
                                 reduce_only=True, reason="overlay: close leg",
                                 reference_price=price))
            current = Decimal(0)
        delta = target - current
        if abs(delta) * price < min_trade:
            continue
        amount = round_step(abs(delta), info.amount_step)
        why = _fits(amount, price, info)
        if why:
            skipped.append(Skip(token, MarketKind.PERP, why))
            continue
        side = Side.BUY if delta > 0 else Side.SELL
        shrinking = abs(target) < abs(current)
        leverage = Decimal(str(o.leverage)) if o is not None else None
        if shrinking:
            reduces.append(order("reduce", token, MarketKind.PERP, side, amount,
                                 reduce_only=True, leverage=leverage, reason="overlay: reduce",
                                 reference_price=price))
        else:
            opens.append(_Open(token, side, amount, price, leverage or Decimal(1),
                               f"overlay: {o.reason}" if o else "overlay"))
    intents.extend(reduces)
    for leg in ([] if sell_only else _funded(opens, portfolio, markets, skipped)):
        intents.append(order("open", leg.token, MarketKind.PERP, leg.side, leg.amount,
                             leverage=leg.leverage, reason=leg.reason,
                             reference_price=leg.price))
    stops = {o.token: o.stop_distance for o in overlay}
    return Plan(tuple(intents), tuple(skipped), stops, plan_id)


@dataclass(frozen=True, slots=True)
class _Open:
    token: str
    side: Side
    amount: Decimal
    price: Decimal
    leverage: Decimal
    reason: str


def _funded(opens: list[_Open], portfolio: Portfolio,
            markets: Mapping[tuple[str, MarketKind], MarketInfo],
            skipped: list[Skip]) -> list[_Open]:
    """Perp opens the futures wallet can margin, where it is a wallet of its own.

    The margin an open needs is its notional over its leverage. When the futures wallet's
    free USDT cannot carry all of them, each is scaled by the same factor (one left below
    the venue's minimum is skipped, saying the futures wallet is short) rather than sent to
    be refused for insufficient margin. One wallet: the spot side already left the overlay's
    reserve in cash.
    """
    if portfolio.futures_free is None or not opens:
        return opens
    needed = sum((o.amount * o.price / o.leverage for o in opens), Decimal(0))
    available = max(Decimal(0), portfolio.futures_free * FEE_BUFFER)
    if needed <= available:
        return opens
    scale = available / needed
    funded: list[_Open] = []
    for leg in opens:
        amount = round_step(leg.amount * scale, markets[(leg.token, MarketKind.PERP)].amount_step)
        why = _fits(amount, leg.price, markets[(leg.token, MarketKind.PERP)])
        if why:
            skipped.append(Skip(leg.token, MarketKind.PERP,
                                f"unfunded: futures wallet free {portfolio.futures_free:.2f} "
                                f"USDT < margin {needed:.2f} ({why})"))
            continue
        funded.append(replace(leg, amount=amount,
                              reason=f"{leg.reason} (scaled {scale:.3f}: futures wallet free "
                                     f"{portfolio.futures_free:.2f} USDT)"))
    return funded
