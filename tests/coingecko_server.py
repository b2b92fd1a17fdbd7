"""A loopback CoinGecko answering ``/coins/categories`` from tests/fixtures/coingecko, with
faults a test can script (tests/provider_server.py serves it).

The endpoint only ever gives today's figures; a test moves the fake's clock (``now``) and
scales a category's figures (``scale``) to stand for another day's answer.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.provider_server import Fault, ScriptedFake, serve

__all__ = ["FIXTURES", "CoinGeckoFake", "Fault", "serve"]

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "coingecko"


class CoinGeckoFake(ScriptedFake):
    def __init__(self, now: datetime | None = None) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = json.loads((FIXTURES / "categories.json")
                                                     .read_text())
        self.now = now or datetime.now(UTC)
        """Every row's ``updated_at`` (CoinGecko refreshes the figures every few minutes)."""
        self.scale: dict[str, float] = {}
        """A category's figures multiplied by this (one factor for every category: "*")."""

    def row(self, category: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["id"] == category)

    def body(self, path: str) -> Any:
        if path != "/coins/categories":
            return None
        stamp = self.now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        out = []
        for row in self.rows:
            factor = self.scale.get(row["id"], self.scale.get("*", 1.0))
            out.append({**row, "updated_at": stamp,
                        **{k: row[k] * factor for k in ("market_cap", "volume_24h")
                           if row[k] is not None}})
        return out
