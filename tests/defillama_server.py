"""A loopback DefiLlama: its free endpoints answered from tests/fixtures/defillama, with
faults a test can script per path (tests/provider_server.py serves it). ``/overview/fees``
answers the recorded per-protocol breakdown; ``/overview/fees/<chain>`` the recorded chart
scaled by the chain's share, as for DEX volume."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tests.provider_server import Fault, ScriptedFake, serve

__all__ = ["CHAIN_VOLUME_SHARE", "FIXTURES", "DefiLlamaFake", "Fault", "serve"]

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "defillama"


CHAIN_VOLUME_SHARE = {"Solana": 0.3, "Avalanche": 0.05, "Arbitrum": 0.2, "Optimism": 0.05}
"""Chains the fake knows, and the share of the recorded DEX volume each is given."""


class DefiLlamaFake(ScriptedFake):
    def __init__(self, last_day: date | None = None) -> None:
        """``last_day``: shift every series so it ends that day (a daemon on the wall clock
        needs recent figures; the recorded ones end on 2023-07-25)."""
        super().__init__()
        self.protocols: list[dict[str, Any]] = json.loads((FIXTURES / "protocols.json")
                                                          .read_text())
        self.uniswap = json.loads((FIXTURES / "protocol_uniswap.json").read_text())
        self.overview = json.loads((FIXTURES / "overview_dexs.json").read_text())
        self.fees = json.loads((FIXTURES / "overview_fees.json").read_text())
        self.chain_fees = json.loads((FIXTURES / "overview_fees_chain.json").read_text())
        self.chains: dict[str, list[dict[str, Any]]] = {}
        """Extra or replaced ``/v2/historicalChainTvl/<chain>`` answers (unshifted)."""
        self.shift = 0
        if last_day is not None:
            end = datetime.fromtimestamp(self.uniswap["tvl"][-1]["date"], UTC).date()
            self.shift = (last_day - end).days * 86_400

    def body(self, path: str) -> Any:
        if path == "/protocols":
            return self.protocols
        if path.startswith("/v2/historicalChainTvl/"):
            chain = path.rsplit("/", 1)[1]
            file = FIXTURES / f"chain_{chain}.json"
            if chain in self.chains:
                rows = self.chains[chain]
            elif file.exists():
                rows = json.loads(file.read_text())
            else:
                return None
            return [{**p, "date": p["date"] + self.shift} for p in rows]
        if path == "/overview/dexs" or path.startswith("/overview/dexs/"):
            chain = path.removeprefix("/overview/dexs").strip("/")
            scale = CHAIN_VOLUME_SHARE.get(chain, 1.0) if chain else 1.0
            if chain and chain not in CHAIN_VOLUME_SHARE:
                return None
            return {**self.overview,
                    "totalDataChart": [[ts + self.shift, round(v * scale, 2)]
                                       for ts, v in self.overview["totalDataChart"]]}
        if path == "/overview/fees":
            return {**self.fees,
                    "totalDataChartBreakdown": [[ts + self.shift, values] for ts, values
                                                in self.fees["totalDataChartBreakdown"]]}
        if path.startswith("/overview/fees/"):
            chain = path.removeprefix("/overview/fees/")
            if chain not in CHAIN_VOLUME_SHARE:
                return None
            scale = CHAIN_VOLUME_SHARE[chain]
            return {**self.chain_fees, "chain": chain,
                    "totalDataChart": [[ts + self.shift, round(v * scale, 2)]
                                       for ts, v in self.chain_fees["totalDataChart"]]}
        if path.startswith("/protocol/"):
            slug = path.rsplit("/", 1)[1]
            listed = next((p for p in self.protocols if p["slug"] == slug), None)
            if listed is None:
                return None
            last = self.uniswap["tvl"][-1]["totalLiquidityUSD"]
            scale = float(listed["tvl"]) / last
            return {**self.uniswap, "name": listed["name"],
                    "tvl": [{"date": p["date"] + self.shift,
                             "totalLiquidityUSD": round(p["totalLiquidityUSD"] * scale, 2)}
                            for p in self.uniswap["tvl"]]}
        return None
