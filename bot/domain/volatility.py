"""Average true range as a fraction of price: how far a token normally moves in a day.

A fixed percentage stop is too tight for a volatile token and too loose for a calm one; a
stop a few ATRs away scales with the token. The true range of a day is the largest of its
high-low span and the gaps from the previous close; where a day's high or low is unknown
(a source that only has closes) the close-to-close move stands in for it, which can only
understate the range. The average is a plain mean over the window (not Wilder's smoothing):
the stop needs a level, not a trend, and a plain mean is reproducible from any window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def true_ranges(closes: Sequence[float], highs: Sequence[float | None],
                lows: Sequence[float | None]) -> list[float]:
    """One true range per day after the first (``closes``, ``highs``, ``lows`` aligned)."""
    if not len(closes) == len(highs) == len(lows):
        raise ValueError("closes, highs and lows must be aligned day by day")
    out: list[float] = []
    for i in range(1, len(closes)):
        previous, close = closes[i - 1], closes[i]
        high, low = highs[i], lows[i]
        if high is None or low is None or high < low:
            out.append(abs(close - previous))
            continue
        out.append(max(high - low, abs(high - previous), abs(low - previous)))
    return out


def atr_fraction(closes: Sequence[float], highs: Sequence[float | None],
                 lows: Sequence[float | None], days: int) -> float | None:
    """Mean true range of the last ``days`` days over the last close; None without
    ``days + 1`` positive closes (a stop must not be sized on a guess)."""
    if days < 1 or len(closes) < days + 1:
        return None
    window = slice(len(closes) - days - 1, len(closes))
    tail = list(closes[window])
    if any(not (c > 0 and math.isfinite(c)) for c in tail):
        return None
    ranges = true_ranges(tail, list(highs[window]), list(lows[window]))
    return (sum(ranges) / len(ranges)) / tail[-1]


def atr_stop_distance(atr: float | None, multiple: float, floor: float,
                      ceiling: float) -> float | None:
    """``multiple`` ATRs, kept inside ``[floor, ceiling]``; None when the ATR is unknown."""
    if atr is None or not math.isfinite(atr) or atr < 0:
        return None
    return min(max(atr * multiple, floor), ceiling)
