"""Deposits, withdrawals and transfers: balance changes the market did not make.

The kill switch compares equity with its high-water mark. Money moved in or out by the user
(a withdrawal, a transfer out of the futures wallet, a deposit) changes equity without any
gain or loss, and a 40 % withdrawal must not read as a 40 % drawdown. Between two readings
of the account, the market explains ``sum(amount_before x price change)`` over what was held
(spot and perps); our own trades only exchange one asset for another (less fees). What is
left, when it is large, is an external flow: the high-water mark moves with it.

A venue's ledger would name each flow exactly, but it is not reachable everywhere (Binance's
demo has no wallet endpoints), so the account's own arithmetic is the source that works on
every venue. Small residues (fees, funding, a stop filled away from the mark) stay below the
threshold and are left to the drawdown rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.domain.models import Portfolio


@dataclass(frozen=True, slots=True)
class Reading:
    """What the risk watch saw: equity, holdings and the prices they were valued at."""

    equity: Decimal
    spot: Mapping[str, Decimal]
    perps: Mapping[str, Decimal]
    prices: Mapping[str, Decimal]
    fills: int = 0
    """How many fills the journal held: any fill in between (a leg opened and stopped out
    within one interval leaves the holdings as they were) makes two readings incomparable."""

    @classmethod
    def of(cls, portfolio: Portfolio, fills: int = 0) -> Reading:
        prices = dict(portfolio.prices)
        prices.update({t: p.mark_price for t, p in portfolio.perps.items()})
        return cls(portfolio.equity(), dict(portfolio.spot),
                   {t: p.amount for t, p in portfolio.perps.items()}, prices, fills)

    def to_dict(self) -> dict[str, Any]:
        def text(values: Mapping[str, Decimal]) -> dict[str, str]:
            return {k: format(v, "f") for k, v in sorted(values.items())}

        return {"equity": format(self.equity, "f"), "spot": text(self.spot),
                "perps": text(self.perps), "prices": text(self.prices), "fills": self.fills}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reading:
        def numbers(values: Mapping[str, str]) -> dict[str, Decimal]:
            return {k: Decimal(v) for k, v in values.items()}

        return cls(Decimal(data["equity"]), numbers(data["spot"]), numbers(data["perps"]),
                   numbers(data["prices"]), int(data.get("fills", -1)))


def market_move(before: Reading, after: Reading) -> Decimal:
    """The change in equity the price moves explain, on what was held before."""
    move = Decimal(0)
    for holdings in (before.spot, before.perps):
        for token, amount in holdings.items():
            old, new = before.prices.get(token), after.prices.get(token)
            if old is not None and new is not None:
                move += amount * (new - old)
    return move


def external_flow(before: Reading, after: Reading, threshold: float) -> Decimal | None:
    """The deposit (> 0) or withdrawal (< 0) between two readings, or None.

    A flow is reported only when the unexplained change is above ``threshold`` of the
    equity before: fees and funding stay well under it. Only between readings with the
    same holdings, every one priced both times: a trade, a stop that fired or a price that
    went missing changes equity for reasons this arithmetic cannot tell from a flow, and a
    real loss must never be explained away as a withdrawal.
    """
    if before.equity <= 0 or not _comparable(before, after):
        return None
    unexplained = after.equity - before.equity - market_move(before, after)
    if abs(unexplained) <= before.equity * Decimal(str(threshold)):
        return None
    return unexplained


def _comparable(before: Reading, after: Reading) -> bool:
    """Same holdings and no fill in between; a token priced in one reading is priced in the
    other (a price that went missing changes equity, not the account). A holding priced in
    neither (dust outside the universe) counts for nothing either time."""
    if before.fills < 0 or before.fills != after.fills:
        return False

    def held(values: Mapping[str, Decimal]) -> dict[str, Decimal]:
        return {t: a for t, a in values.items() if a != 0}

    if held(before.spot) != held(after.spot) or held(before.perps) != held(after.perps):
        return False
    tokens = set(held(before.spot)) | set(held(before.perps))
    return all((before.prices.get(t, 0) > 0) == (after.prices.get(t, 0) > 0) for t in tokens)


def rebased_high_water(high_water: Decimal, flow: Decimal, equity_after: Decimal) -> Decimal:
    """The high-water mark scaled by the flow, so the drawdown it measures is unchanged: a
    deposit or withdrawal during a drawdown neither hides nor deepens it."""
    before_flow = equity_after - flow
    if before_flow <= 0:
        return max(Decimal(0), equity_after)
    return high_water * equity_after / before_flow
