"""The emulated Bybit v5 venue's vocabulary: instruments, orders, fills, positions, errors.

Plain data shared by ``bybit_book`` (the rules) and ``bybit_routes`` (the JSON shapes), plus
the helpers that read a request field whether it came as JSON (bools, ints) or as a query
string.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

ZERO = Decimal(0)
SPOT_FEE = Decimal("0.001")
PERP_FEE = Decimal("0.00055")
MAINT_MARGIN_RATE = Decimal("0.005")
OPEN_STATUSES = ("New", "PartiallyFilled", "Untriggered")
LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
QUOTE = "USDT"


class BybitError(Exception):
    """A refusal: Bybit's retCode and retMsg (HTTP 200, as Bybit answers business errors)."""

    def __init__(self, code: int, msg: str, status: int = 200, result: Any = None) -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.status = code, msg, status
        self.result: Any = {} if result is None else result


@dataclass
class BybitInstrument:
    """One base coin listed on spot and/or as a USDT linear perpetual."""

    base: str
    price: Decimal
    tick: Decimal = Decimal("0.01")
    spot_step: Decimal = Decimal("0.001")  # lotSizeFilter.basePrecision
    spot_min_qty: Decimal = Decimal("0.001")
    spot_min_amount: Decimal = Decimal("5")  # lotSizeFilter.minOrderAmt (USDT)
    perp_step: Decimal = Decimal("0.01")  # lotSizeFilter.qtyStep
    perp_min_qty: Decimal = Decimal("0.01")
    perp_min_notional: Decimal = Decimal("5")  # lotSizeFilter.minNotionalValue
    funding_rate: Decimal = Decimal("0.0001")
    funding_interval_minutes: int = 480
    max_leverage: Decimal = Decimal("25")
    spot: bool = True
    perp: bool = True

    @property
    def symbol(self) -> str:
        return f"{self.base}{QUOTE}"


@dataclass
class BybitOrder:
    order_id: str
    link_id: str
    category: str  # "spot" | "linear"
    symbol: str
    side: str  # "Buy" | "Sell"
    order_type: str  # "Market" | "Limit"
    qty: Decimal
    price: Decimal
    created: int
    status: str = "New"
    cum_qty: Decimal = ZERO
    cum_value: Decimal = ZERO
    cum_fee: Decimal = ZERO
    fee_coin: str = ""
    reduce_only: bool = False
    close_on_trigger: bool = False
    trigger_price: Decimal | None = None
    trigger_direction: int = 0
    trigger_by: str = ""
    market_unit: str = ""
    time_in_force: str = "GTC"
    last_price_on_created: Decimal = ZERO
    updated: int = 0
    cancel_type: str = "UNKNOWN"

    @property
    def conditional(self) -> bool:
        return self.trigger_price is not None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass
class Execution:
    exec_id: str
    order: BybitOrder
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_coin: str
    closed_size: Decimal
    time: int


@dataclass
class Position:
    qty: Decimal = ZERO  # signed base units (one-way mode)
    entry: Decimal = ZERO
    realised: Decimal = ZERO
    created: int = 0
    updated: int = 0


def now_ms() -> int:
    return int(time.time() * 1000)


def text(p: dict[str, Any], key: str) -> str | None:
    """A request field as text: JSON bodies carry bools and ints, queries carry strings."""
    value = p.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flag(p: dict[str, Any], key: str) -> bool:
    return text(p, key) in ("true", "1", "True")


def number(p: dict[str, Any], key: str, code: int = 10001) -> Decimal:
    raw = text(p, key)
    try:
        value = Decimal(raw or "")
    except InvalidOperation:
        raise BybitError(code, f"params error: {key} invalid") from None
    if not value.is_finite():
        raise BybitError(code, f"params error: {key} invalid")
    return value
