"""Venue registry: ``venue_for(name)`` picks the subclass for a configured exchange."""

from __future__ import annotations

from bot.exchange.venues.base import MODES, Mode, Venue, dec, hours_from_text, leverage_arg
from bot.exchange.venues.binance import Binance
from bot.exchange.venues.bybit import Bybit
from bot.exchange.venues.okx import Okx

VENUES: dict[str, type[Venue]] = {"binance": Binance, "bybit": Bybit, "okx": Okx}


def venue_for(name: str) -> Venue:
    try:
        return VENUES[name]()
    except KeyError:
        raise ValueError(f"unsupported venue {name!r}; choose one of {sorted(VENUES)}") from None


__all__ = ["MODES", "VENUES", "Binance", "Bybit", "Mode", "Okx", "Venue", "dec",
           "hours_from_text", "leverage_arg", "venue_for"]
