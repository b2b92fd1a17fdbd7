"""The three questions a rotation has to answer, on the same data and the same costs.

- **BTC buy and hold**: everything in BTC on the first day.
- **Equal weight**: every spot token of the universe that is listed and priced, in equal
  parts, rebalanced monthly (point in time: a token joins the month after it is listed and
  priced, and leaves when its prices stop).
- **Static buckets**: the playbook's allocation, never rotated: the core weight over the core
  tokens, the rotational weight over every rotational sector's spot tokens, the speculative
  weight over every speculative sector's, each part equal and rebalanced monthly. This is
  "does rotating beat just holding the buckets?".

Every trade pays the paper exchange's spot fee and slippage. Daily values at the same marks
the backtest's account is valued at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.domain.models import Bucket, Universe
from bot.domain.params import StrategyParams

Weights = Callable[[datetime, Mapping[str, Decimal]], dict[str, float]]


@dataclass(frozen=True, slots=True)
class Curve:
    name: str
    times: tuple[datetime, ...]
    values: tuple[float, ...]
    costs: float


def simulate(name: str, times: Sequence[datetime], marks: Sequence[Mapping[str, Decimal]],
             weights: Weights, starting_cash: Decimal, cost_bps: Decimal,
             monthly: bool = True) -> Curve:
    """Hold ``weights`` (shares of equity), trading to them on the first day and, when
    ``monthly``, on the first day of each month; every trade pays ``cost_bps``."""
    cost_rate = cost_bps / Decimal(10_000)
    cash, held = starting_cash, {}  # type: Decimal, dict[str, Decimal]
    last_price: dict[str, Decimal] = {}
    costs = Decimal(0)
    values: list[float] = []
    month = None
    for when, prices in zip(times, marks, strict=True):
        last_price.update({t: p for t, p in prices.items() if p > 0})
        equity = cash + sum((a * last_price[t] for t, a in held.items()), Decimal(0))
        if month is None or (monthly and (when.year, when.month) != month):
            month = (when.year, when.month)
            wanted = {t: w for t, w in weights(when, prices).items() if t in prices}
            target = {t: equity * Decimal(repr(w)) / prices[t] for t, w in wanted.items()}
            for token in sorted(set(held) | set(target)):
                price = prices.get(token)
                if price is None:
                    continue  # no price today: held as it is
                delta = target.get(token, Decimal(0)) - held.get(token, Decimal(0))
                value = abs(delta) * price
                cash -= delta * price + value * cost_rate
                costs += value * cost_rate
                held[token] = held.get(token, Decimal(0)) + delta
            equity = cash + sum((a * last_price[t] for t, a in held.items()), Decimal(0))
        values.append(float(equity))
    return Curve(name, tuple(times), tuple(values), float(costs))


def btc_weights(_when: datetime, prices: Mapping[str, Decimal]) -> dict[str, float]:
    return {"BTC": 1.0} if "BTC" in prices else {}


def equal_weights(universe: Universe) -> Weights:
    def weights(when: datetime, prices: Mapping[str, Decimal]) -> dict[str, float]:
        tokens = [t.symbol for t in universe.all_tokens()
                  if t.spot and t.is_listed(when.date()) and t.symbol in prices]
        return {t: 1.0 / len(tokens) for t in tokens} if tokens else {}
    return weights


def static_weights(universe: Universe, params: StrategyParams) -> Weights:
    """The configured buckets, each spread evenly over its priced spot tokens; a bucket with
    nothing priced hands its weight to the core."""
    def weights(when: datetime, prices: Mapping[str, Decimal]) -> dict[str, float]:
        def priced(tokens: Sequence[str]) -> list[str]:
            return [t for t in tokens if t in prices]

        core = priced([t.symbol for t in universe.core if t.spot])
        rotational = 1.0 - params.core_weight - params.speculative_weight
        buckets = {Bucket.ROTATIONAL: rotational, Bucket.SPECULATIVE: params.speculative_weight}
        out: dict[str, float] = {}
        core_weight = params.core_weight
        for bucket, share in buckets.items():
            members = priced([t.symbol for s in universe.sectors if s.bucket is bucket
                              for t in s.tokens if t.spot and t.is_listed(when.date())])
            if not members:
                core_weight += share
                continue
            for token in members:
                out[token] = out.get(token, 0.0) + share / len(members)
        for token in core:
            out[token] = out.get(token, 0.0) + core_weight / len(core)
        return out
    return weights


def benchmark_curves(times: Sequence[datetime], marks: Sequence[Mapping[str, Decimal]],
                     universe: Universe, params: StrategyParams, starting_cash: Decimal,
                     cost_bps: Decimal) -> list[Curve]:
    return [
        simulate("BTC buy and hold", times, marks, btc_weights, starting_cash, cost_bps,
                 monthly=False),
        simulate("equal weight", times, marks, equal_weights(universe), starting_cash,
                 cost_bps),
        simulate("static buckets", times, marks, static_weights(universe, params),
                 starting_cash, cost_bps),
    ]
