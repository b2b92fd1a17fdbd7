"""The emulated OKX venue's records: instruments, orders, algo orders, fills, positions.

Field names follow OKX v5 (``clOrdId``, ``algoClOrdId``, ``accFillSz``...) in snake case;
``okx_dialect`` prints them the way OKX sends them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)
DEFAULT_LEVER = 10
CLIENT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


class OkxError(Exception):
    """An OKX error: the venue's code (a string, as OKX sends it), message, HTTP status."""

    def __init__(self, code: str, msg: str, status: int = 200) -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.status = code, msg, status


@dataclass
class OkxInstrument:
    """One base asset: spot ``BASE-USDT`` and/or linear swap ``BASE-USDT-SWAP``."""

    base: str
    price: Decimal
    tick: Decimal = Decimal("0.01")
    spot_lot: Decimal = Decimal("0.000001")
    spot_min: Decimal = Decimal("0.01")
    ct_val: Decimal = Decimal(1)
    swap_lot: Decimal = Decimal("0.01")
    swap_min: Decimal = Decimal("0.01")
    funding_rate: Decimal = Decimal("0.0001")
    funding_hours: int = 8
    max_lever: int = 50
    spot: bool = True
    swap: bool = True
    state: str = "live"

    @property
    def spot_id(self) -> str:
        return f"{self.base}-USDT"

    @property
    def swap_id(self) -> str:
        return f"{self.base}-USDT-SWAP"


@dataclass
class OkxFill:
    trade_id: str
    ord_id: str
    cl_ord_id: str
    inst_id: str
    inst_type: str
    side: str
    px: Decimal
    sz: Decimal
    fee: Decimal  # negative: a charge, as OKX prints it
    fee_ccy: str
    pnl: Decimal
    ts: int


@dataclass
class OkxOrder:
    ord_id: str
    cl_ord_id: str
    inst_id: str
    inst_type: str  # SPOT | SWAP
    side: str
    ord_type: str  # market | limit
    sz: Decimal
    px: Decimal
    td_mode: str
    reduce_only: bool
    tgt_ccy: str
    lever: int
    c_time: int
    state: str = "live"  # live | partially_filled | filled | canceled
    acc_fill_sz: Decimal = ZERO
    avg_px: Decimal = ZERO
    fee: Decimal = ZERO
    fee_ccy: str = ""
    pnl: Decimal = ZERO
    u_time: int = 0
    fill_time: int = 0
    algo_id: str = ""


@dataclass
class OkxAlgo:
    algo_id: str
    algo_cl_ord_id: str
    cl_ord_id: str
    inst_id: str
    inst_type: str
    side: str
    ord_type: str  # conditional
    sz: Decimal
    sl_trigger_px: Decimal
    sl_ord_px: str
    sl_trigger_px_type: str
    td_mode: str
    reduce_only: bool
    lever: int
    c_time: int
    state: str = "live"  # live | effective | canceled | order_failed
    u_time: int = 0
    trigger_time: int = 0
    ord_id: str = ""
    fail_code: str = ""
    actual_sz: Decimal = ZERO
    actual_px: Decimal = ZERO


@dataclass
class OkxPosition:
    inst_id: str
    pos: Decimal = ZERO  # signed contracts (net mode)
    avg_px: Decimal = ZERO
    margin: Decimal = ZERO
    lever: int = DEFAULT_LEVER
    mgn_mode: str = "isolated"
    c_time: int = 0
    u_time: int = 0



@dataclass
class Totals:
    """Per-currency balance view (what ``account/balance`` prints)."""

    ccy: str
    cash: Decimal
    frozen: Decimal
    upl: Decimal
    iso_eq: Decimal
    extra: dict[str, str] = field(default_factory=dict)
