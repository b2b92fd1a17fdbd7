"""What a venue answered for one snapshot, kept beside it so it can be stored as seen.

:class:`bot.sources.market.VenueSignals` builds a :class:`MarketSnapshot` of floats; the
candle rows and funding rates it was built from are handed on as a :class:`VenueRead`, so
the cycle can keep each closed candle whole (its open and base volume too, which the
snapshot does not carry) and each funding rate with its interval (``venue_candles`` and
``venue_funding``, replayable by ``sectorbot export-signals --replay-dir``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.models import FundingRate


@dataclass(frozen=True)
class VenueRead:
    as_of: datetime
    """The snapshot's ``as_of``: a read belongs to the snapshot of the same time only."""
    candles: Mapping[str, Sequence[Sequence[Any]]]
    """Per token, the daily candle rows as the port returned them (open candle included)."""
    funding: Mapping[str, FundingRate]
    """Per perp token, the funding rate read (its interval with it)."""
