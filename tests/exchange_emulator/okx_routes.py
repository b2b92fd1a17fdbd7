"""The OKX emulator's REST routes: ``(method, path) -> OkxRoute``, one function per endpoint.

Each handler gets the book, the query parameters, the parsed JSON body (a dict, a list for
the batch endpoints, or None) and the server time in ms, and returns the ``data`` list or
raises ``OkxError`` (a whole-request refusal) or ``ItemsFailed`` (order endpoints: HTTP 200
with ``code`` "1" and each item's ``sCode``/``sMsg``, which is how OKX refuses orders).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.exchange_emulator import okx_dialect as d
from tests.exchange_emulator.okx_book import OkxBook
from tests.exchange_emulator.okx_types import OkxAlgo, OkxError, OkxOrder

Handler = Callable[[OkxBook, dict[str, str], Any, int], list[Any]]
BARS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1H": 3_600_000, "4H": 14_400_000,
        "1D": 86_400_000, "1Dutc": 86_400_000, "6Hutc": 21_600_000}
MAX_INST_IDS = 10  # account/positions: "no more than 10" comma-separated instIds
MAX_CANDLES = 300


class ItemsFailed(Exception):
    """Every item of an order request was refused: ``code`` "1" plus per-item codes."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__(items)
        self.items = items


@dataclass(frozen=True)
class OkxRoute:
    handler: Handler
    signed: bool


def _need(q: dict[str, str], name: str) -> str:
    if not q.get(name):
        raise OkxError("50014", f"Parameter {name} can not be empty", 400)
    return q[name]


def _inst_types(book: OkxBook, kind: str) -> list[Any]:
    return [i for i in book.instruments.values() if (i.spot if kind == "SPOT" else i.swap)]


# -- public ---------------------------------------------------------------------------------
def _instruments(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    kind = _need(q, "instType")
    if kind not in ("SPOT", "SWAP", "FUTURES", "OPTION", "MARGIN"):
        raise OkxError("51000", "Parameter instType error", 400)
    if kind not in ("SPOT", "SWAP"):
        return []  # nothing listed of these kinds here
    rows = [d.instrument(i, kind) for i in _inst_types(book, kind)]
    return [r for r in rows if not q.get("instId") or r["instId"] == q["instId"]]


def _tickers(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    kind = _need(q, "instType")
    return [d.ticker(i, kind, now) for i in _inst_types(book, kind)]


def _ticker(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    inst, kind = book.resolve(_need(q, "instId"))
    return [d.ticker(inst, kind, now)]


def _candles(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    inst, _ = book.resolve(_need(q, "instId"))
    bar = BARS.get(q.get("bar", "1m"))
    if bar is None:
        raise OkxError("51000", "Parameter bar error", 400)
    after, before = q.get("after"), q.get("before")
    return d.candles(inst, bar, min(int(q.get("limit", "100")), MAX_CANDLES), now,
                     int(after) if after else None, int(before) if before else None)


def _funding(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    wanted = _need(q, "instId")
    if wanted == "ANY":
        return [d.funding(i, now) for i in _inst_types(book, "SWAP")]
    inst, kind = book.resolve(wanted)
    if kind != "SWAP":
        raise OkxError("51000", "Parameter instId error", 400)
    return [d.funding(inst, now)]


def _currencies(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    return [{"ccy": c, "chain": f"{c}-ERC20", "name": c, "canDep": True, "canWd": True,
             "canInternal": True, "minWd": "1", "maxWd": "1000000", "minFee": "1",
             "maxFee": "2", "wdTickSz": "4", "mainNet": False}
            for c in ["USDT", *sorted(book.instruments)]]


# -- account --------------------------------------------------------------------------------
def _balance(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    ccys = set(q["ccy"].split(",")) if q.get("ccy") else None
    return [d.balance(book, now, ccys)]


def _positions(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    wanted = [i for i in q.get("instId", "").split(",") if i]
    if len(wanted) > MAX_INST_IDS:
        raise OkxError("51000", "Parameter instId error", 400)
    if q.get("instType") not in (None, "", "SWAP", "FUTURES", "MARGIN", "OPTION"):
        raise OkxError("51000", "Parameter instType error", 400)
    return [d.position(book, p) for p in book.positions.values()
            if (not wanted or p.inst_id in wanted)
            and q.get("instType") in (None, "", "SWAP")]


def _set_leverage(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    p = body or {}
    try:
        lever = int(Decimal(str(p.get("lever"))))
    except ArithmeticError:
        raise OkxError("51000", "Parameter lever error", 400) from None
    inst_id = str(p.get("instId") or "")
    mode = str(p.get("mgnMode") or "")
    book.set_leverage(inst_id, lever, mode)
    return [{"lever": str(lever), "mgnMode": mode, "instId": inst_id,
             "posSide": str(p.get("posSide") or "net")}]


def _config(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    return [{"acctLv": "2", "autoLoan": False, "ctIsoMode": "automatic", "greeksType": "PA",
             "level": "Lv1", "levelTmp": "", "mgnIsoMode": "automatic",
             "posMode": book.pos_mode, "uid": "44705892343619584", "mainUid": "",
             "label": "sectorbot", "perm": getattr(book, "perm", "read_only,trade"), "ip": "",
             "roleType": "0",
             "spotOffsetType": "", "enableSpotBorrow": False}]


# -- trading --------------------------------------------------------------------------------
def _ack(o: OkxOrder, now: int) -> dict[str, Any]:
    return {"clOrdId": o.cl_ord_id, "ordId": o.ord_id, "tag": "", "ts": str(now),
            "sCode": "0", "sMsg": "Order placed"}


def _each(items: list[Any], fn: Callable[[dict[str, Any]], dict[str, Any]],
          keys: tuple[str, ...]) -> list[Any]:
    """Process each item; refusals become ``sCode`` items (all refused -> ItemsFailed)."""
    out, failed = [], 0
    for item in items:
        try:
            out.append(fn(item))
        except OkxError as exc:
            failed += 1
            out.append({**{k: str(item.get(k) or "") for k in keys}, "sCode": exc.code,
                        "sMsg": exc.msg})
    if failed == len(out):
        raise ItemsFailed(out)
    return out


def _place(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    items = body if isinstance(body, list) else [body or {}]
    return _each(items, lambda p: _ack(book.place(p), now), ("clOrdId", "ordId", "tag"))


def _place_algo(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    def one(p: dict[str, Any]) -> dict[str, Any]:
        a = book.place_algo(p)
        return {"algoId": a.algo_id, "algoClOrdId": a.algo_cl_ord_id, "clOrdId": a.cl_ord_id,
                "tag": "", "sCode": "0", "sMsg": "Order placed"}

    return _each([body or {}], one, ("algoId", "algoClOrdId", "clOrdId", "tag"))


def _get_order(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    book.resolve(_need(q, "instId"))
    if not q.get("ordId") and not q.get("clOrdId"):
        raise OkxError("50014", "Parameter ordId can not be empty", 400)
    return [d.order(book.find_order(q["instId"], q.get("ordId"), q.get("clOrdId")))]


def _algo_view(book: OkxBook, a: OkxAlgo) -> dict[str, Any]:
    return d.algo(a, book.resolve(a.inst_id)[0].price)


def _get_algo(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    if not q.get("algoId") and not q.get("algoClOrdId"):
        raise OkxError("50014", "Parameter algoId can not be empty", 400)
    return [_algo_view(book, book.find_algo(q.get("algoId"), q.get("algoClOrdId")))]


def _match(o: OkxOrder, q: dict[str, str]) -> bool:
    return ((not q.get("instId") or o.inst_id == q["instId"])
            and (not q.get("instType") or o.inst_type == q["instType"]))


def _pending(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    rows = [o for o in book.orders.values() if o.state == "live" and _match(o, q)]
    return [d.order(o) for o in reversed(rows)][: int(q.get("limit", "100"))]


def _history(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    _need(q, "instType")
    states = q["state"].split(",") if q.get("state") else ["filled", "canceled"]
    rows = [o for o in book.orders.values() if o.state in states and _match(o, q)]
    return [d.order(o) for o in reversed(rows)][: int(q.get("limit", "100"))]


def _algo_types(q: dict[str, str]) -> list[str]:
    types = _need(q, "ordType").split(",")
    if len(types) > 1 and set(types) - {"conditional", "oco"}:
        raise OkxError("51000", "Parameter ordType error", 400)
    return types


def _algo_match(a: OkxAlgo, q: dict[str, str], types: list[str]) -> bool:
    return (a.ord_type in types and (not q.get("instId") or a.inst_id == q["instId"])
            and (not q.get("instType") or a.inst_type == q["instType"])
            and (not q.get("algoId") or a.algo_id == q["algoId"]))


def _algo_pending(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    types = _algo_types(q)
    return [_algo_view(book, a) for a in reversed(list(book.algos.values()))
            if a.state == "live" and _algo_match(a, q, types)]


def _algo_history(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    types = _algo_types(q)
    if not q.get("state") and not q.get("algoId"):
        raise OkxError("50014", "Parameter state can not be empty", 400)
    states = [q["state"]] if q.get("state") else ["effective", "canceled", "order_failed"]
    return [_algo_view(book, a) for a in reversed(list(book.algos.values()))
            if a.state in states and _algo_match(a, q, types)]


def _cancel(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    def one(p: dict[str, Any]) -> dict[str, Any]:
        try:
            book.resolve(str(p.get("instId") or ""))
            order = book.find_order(str(p.get("instId")), p.get("ordId"), p.get("clOrdId"))
        except OkxError:
            raise OkxError("51400", "Order cancellation failed as the order has been "
                           "filled, canceled or does not exist.") from None
        book.cancel(order)
        return {"clOrdId": order.cl_ord_id, "ordId": order.ord_id, "ts": str(now),
                "sCode": "0", "sMsg": ""}

    return _each([body or {}], one, ("clOrdId", "ordId"))


def _cancel_algos(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    def one(p: dict[str, Any]) -> dict[str, Any]:
        try:
            algo = book.find_algo(p.get("algoId"), p.get("algoClOrdId"))
        except OkxError:
            raise OkxError("51400", "Order cancellation failed as the order has been "
                           "filled, canceled or does not exist.") from None
        book.cancel_algo(algo)
        return {"algoId": algo.algo_id, "algoClOrdId": algo.algo_cl_ord_id, "sCode": "0",
                "sMsg": ""}

    return _each(body if isinstance(body, list) else [body or {}], one,
                 ("algoId", "algoClOrdId"))


def _fills(book: OkxBook, q: dict[str, str], body: Any, now: int) -> list[Any]:
    rows = [f for f in book.fills
            if (not q.get("instId") or f.inst_id == q["instId"])
            and (not q.get("instType") or f.inst_type == q["instType"])
            and (not q.get("ordId") or f.ord_id == q["ordId"])]
    return [d.fill(f) for f in reversed(rows)][: int(q.get("limit", "100"))]


def _public(fn: Handler) -> OkxRoute:
    return OkxRoute(fn, signed=False)


def _signed(fn: Handler) -> OkxRoute:
    return OkxRoute(fn, signed=True)


V5 = "/api/v5/"
OKX_ROUTES: dict[tuple[str, str], OkxRoute] = {
    ("GET", V5 + "public/time"): _public(lambda b, q, body, n: [{"ts": str(n)}]),
    ("GET", V5 + "public/instruments"): _public(_instruments),
    ("GET", V5 + "market/tickers"): _public(_tickers),
    ("GET", V5 + "market/ticker"): _public(_ticker),
    ("GET", V5 + "market/candles"): _public(_candles),
    ("GET", V5 + "market/history-candles"): _public(_candles),
    ("GET", V5 + "public/funding-rate"): _public(_funding),
    ("GET", V5 + "asset/currencies"): _signed(_currencies),
    ("GET", V5 + "account/balance"): _signed(_balance),
    ("GET", V5 + "account/positions"): _signed(_positions),
    ("POST", V5 + "account/set-leverage"): _signed(_set_leverage),
    ("GET", V5 + "account/config"): _signed(_config),
    ("POST", V5 + "trade/order"): _signed(_place),
    ("POST", V5 + "trade/batch-orders"): _signed(_place),
    ("POST", V5 + "trade/order-algo"): _signed(_place_algo),
    ("GET", V5 + "trade/order"): _signed(_get_order),
    ("GET", V5 + "trade/order-algo"): _signed(_get_algo),
    ("GET", V5 + "trade/orders-pending"): _signed(_pending),
    ("GET", V5 + "trade/orders-history"): _signed(_history),
    ("GET", V5 + "trade/orders-history-archive"): _signed(_history),
    ("GET", V5 + "trade/orders-algo-pending"): _signed(_algo_pending),
    ("GET", V5 + "trade/orders-algo-history"): _signed(_algo_history),
    ("POST", V5 + "trade/cancel-order"): _signed(_cancel),
    ("POST", V5 + "trade/cancel-algos"): _signed(_cancel_algos),
    ("GET", V5 + "trade/fills"): _signed(_fills),
    ("GET", V5 + "trade/fills-history"): _signed(_fills),
}

__all__ = ["OKX_ROUTES", "ItemsFailed", "OkxRoute"]
