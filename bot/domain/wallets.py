"""How much USDT to move between a venue's spot and futures wallets (Binance keeps two).

With ``exchange.auto_transfer`` the account is planned as one pool, like a venue with one
wallet, and this says what must move before the orders can go out: the futures wallet must
hold the margin the overlay still has to post (its reserve, buffer included, less what is
posted already); what it holds beyond that goes back to spot, where the buckets can use it.
A transfer is capped per decision, never takes more than the sending wallet has free, and
is not worth sending below a minimum.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from bot.domain.models import Decision, Portfolio
from bot.domain.planner import posted_margin

CENT = Decimal("0.01")


def wallet_transfer(decision: Decision, portfolio: Portfolio, cap: Decimal,
                    minimum: Decimal) -> Decimal:
    """USDT to move into the futures wallet (> 0) or out of it to spot (< 0); 0 for none
    (one wallet, balanced already, or less than ``minimum``)."""
    if portfolio.futures_free is None:
        return Decimal(0)
    equity = portfolio.equity()
    needed = max(Decimal(0), equity * Decimal(str(decision.cash_reserve))
                 - posted_margin(portfolio))
    gap = needed - portfolio.futures_free
    if gap > 0:
        amount = min(gap, max(Decimal(0), portfolio.free_cash or Decimal(0)), cap)
    else:
        amount = -min(-gap, cap)
    amount = amount.quantize(CENT, rounding=ROUND_DOWN)
    return amount if abs(amount) >= minimum else Decimal(0)


def pooled(portfolio: Portfolio) -> Portfolio:
    """The account as one wallet, for an engine whose wallets the daemon may rebalance."""
    if portfolio.futures_free is None:
        return portfolio
    free = (portfolio.free_cash or Decimal(0)) + portfolio.futures_free
    return Portfolio(portfolio.cash, portfolio.spot, portfolio.perps, portfolio.prices,
                     free_cash=free, futures_free=None)
