"""OKX v5's JSON shapes for the emulator's state: every number a string, "" for "none".

Field names follow OKX's REST docs (public/instruments, market/tickers, account/balance,
account/positions, trade/order, trade/order-algo, trade/fills); only the fields ccxt 4.5.x
reads plus a few for realism are filled in.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.exchange_emulator.okx_book import MMR, OkxBook, totals
from tests.exchange_emulator.okx_types import (
    ZERO,
    OkxAlgo,
    OkxFill,
    OkxInstrument,
    OkxOrder,
    OkxPosition,
)


def s(value: Decimal | int) -> str:
    """Decimal as OKX prints it: plain notation, no exponent."""
    text = format(Decimal(value).normalize(), "f")
    return text if text != "-0" else "0"


def instrument(inst: OkxInstrument, kind: str) -> dict[str, Any]:
    spot = kind == "SPOT"
    return {
        "alias": "", "auctionEndTime": "", "baseCcy": inst.base if spot else "",
        "category": "1", "ctMult": "" if spot else "1", "ctType": "" if spot else "linear",
        "ctVal": "" if spot else s(inst.ct_val), "ctValCcy": "" if spot else inst.base,
        "expTime": "", "instFamily": "" if spot else f"{inst.base}-USDT",
        "instId": inst.spot_id if spot else inst.swap_id, "instType": kind,
        "lever": "10" if spot else str(inst.max_lever), "listTime": "1606468572000",
        "lotSz": s(inst.spot_lot if spot else inst.swap_lot),
        "maxIcebergSz": "9999999999", "maxLmtAmt": "20000000", "maxLmtSz": "9999999999",
        "maxMktAmt": "1000000", "maxMktSz": "1000000" if spot else "5000",
        "maxStopSz": "5000", "maxTriggerSz": "9999999999", "maxTwapSz": "9999999999",
        "minSz": s(inst.spot_min if spot else inst.swap_min), "optType": "",
        "quoteCcy": "USDT" if spot else "", "ruleType": "normal",
        "settleCcy": "" if spot else "USDT", "state": inst.state, "stk": "",
        "tickSz": s(inst.tick), "uly": "" if spot else f"{inst.base}-USDT",
    }


def ticker(inst: OkxInstrument, kind: str, now: int) -> dict[str, Any]:
    px = inst.price
    return {
        "instType": kind, "instId": inst.spot_id if kind == "SPOT" else inst.swap_id,
        "last": s(px), "lastSz": "1", "askPx": s(px + inst.tick), "askSz": "10",
        "bidPx": s(px - inst.tick), "bidSz": "10", "open24h": s(px), "high24h": s(px),
        "low24h": s(px), "volCcy24h": "1000000", "vol24h": "10000", "ts": str(now),
        "sodUtc0": s(px), "sodUtc8": s(px),
    }


def funding(inst: OkxInstrument, now: int) -> dict[str, Any]:
    """``fundingTime`` is the coming settlement, ``nextFundingTime`` the one after: their
    gap is the market's interval, the only place OKX states it."""
    step = inst.funding_hours * 3_600_000
    coming = (now // step + 1) * step
    return {
        "instType": "SWAP", "instId": inst.swap_id, "fundingRate": s(inst.funding_rate),
        "fundingTime": str(coming), "nextFundingTime": str(coming + step),
        "nextFundingRate": "", "method": "current_period", "formulaType": "withRate",
        "interestRate": "0.0001", "impactValue": "20000", "maxFundingRate": "0.015",
        "minFundingRate": "-0.015", "premium": "0.0001", "settFundingRate": "0.0001",
        "settState": "settled", "sodUtc0": "", "ts": str(now),
    }


def order(o: OkxOrder) -> dict[str, Any]:
    filled = o.acc_fill_sz > 0
    return {
        "accFillSz": s(o.acc_fill_sz), "algoClOrdId": "", "algoId": o.algo_id,
        "attachAlgoOrds": [], "avgPx": s(o.avg_px) if filled else "",
        "cTime": str(o.c_time), "cancelSource": "", "category": "normal", "ccy": "",
        "clOrdId": o.cl_ord_id, "fee": s(o.fee), "feeCcy": o.fee_ccy or "USDT",
        "fillPx": s(o.avg_px) if filled else "", "fillSz": s(o.acc_fill_sz),
        "fillTime": str(o.fill_time) if filled else "", "instId": o.inst_id,
        "instType": o.inst_type, "lever": str(o.lever) if o.inst_type == "SWAP" else "",
        "ordId": o.ord_id, "ordType": o.ord_type, "pnl": s(o.pnl),
        "posSide": "net" if o.inst_type == "SWAP" else "",
        "px": s(o.px) if o.ord_type == "limit" else "", "rebate": "0", "rebateCcy": "USDT",
        "reduceOnly": "true" if o.reduce_only else "false", "side": o.side,
        "slOrdPx": "", "slTriggerPx": "", "slTriggerPxType": "", "source": "",
        "state": o.state, "stpMode": "cancel_maker", "sz": s(o.sz), "tag": "",
        "tdMode": o.td_mode, "tgtCcy": o.tgt_ccy, "tpOrdPx": "", "tpTriggerPx": "",
        "tpTriggerPxType": "", "tradeId": "", "uTime": str(o.u_time),
    }


def algo(a: OkxAlgo, last: Decimal) -> dict[str, Any]:
    """A conditional (stop) order: its trigger is ``slTriggerPx``; ``triggerPx`` belongs to
    ``ordType=trigger`` orders and stays empty here, as on OKX."""
    return {
        "activePx": "", "actualPx": s(a.actual_px) if a.ord_id else "",
        "actualSide": "sl" if a.ord_id else "", "actualSz": s(a.actual_sz),
        "algoClOrdId": a.algo_cl_ord_id, "algoId": a.algo_id, "amendPxOnTriggerType": "0",
        "attachAlgoOrds": [], "cTime": str(a.c_time), "callbackRatio": "",
        "callbackSpread": "", "ccy": "", "clOrdId": a.cl_ord_id, "closeFraction": "",
        "failCode": a.fail_code, "instId": a.inst_id, "instType": a.inst_type,
        "last": s(last), "lever": str(a.lever), "moveTriggerPx": "", "ordId": a.ord_id,
        "ordIdList": [a.ord_id] if a.ord_id else [], "ordPx": "", "ordType": a.ord_type,
        "posSide": "net", "pxLimit": "", "pxSpread": "", "pxVar": "", "quickMgnType": "",
        "reduceOnly": "true" if a.reduce_only else "false", "side": a.side,
        "slOrdPx": a.sl_ord_px, "slTriggerPx": s(a.sl_trigger_px),
        "slTriggerPxType": a.sl_trigger_px_type, "state": a.state, "sz": s(a.sz),
        "szLimit": "", "tag": "", "tdMode": a.td_mode, "tgtCcy": "", "timeInterval": "",
        "tpOrdPx": "", "tpTriggerPx": "", "tpTriggerPxType": "", "triggerPx": "",
        "triggerPxType": "", "triggerTime": str(a.trigger_time) if a.trigger_time else "",
        "uTime": str(a.u_time),
    }


def fill(f: OkxFill) -> dict[str, Any]:
    return {
        "instType": f.inst_type, "instId": f.inst_id, "tradeId": f.trade_id,
        "ordId": f.ord_id, "clOrdId": f.cl_ord_id, "billId": f.trade_id, "tag": "",
        "fillPx": s(f.px), "fillSz": s(f.sz), "fillIdxPx": s(f.px), "fillPnl": s(f.pnl),
        "fillMarkPx": s(f.px), "side": f.side,
        "posSide": "net" if f.inst_type == "SWAP" else "", "execType": "T",
        "feeCcy": f.fee_ccy, "fee": s(f.fee), "ts": str(f.ts), "fillTime": str(f.ts),
    }


def position(book: OkxBook, p: OkxPosition) -> dict[str, Any]:
    inst, _ = book.resolve(p.inst_id)
    base_qty = abs(p.pos) * inst.ct_val
    notional = base_qty * inst.price
    upl = book.upl(p)
    mmr = notional * MMR
    liq = ZERO
    if p.pos:  # isolated: margin + upl hits the maintenance margin
        per = (p.margin - mmr) / (p.pos * inst.ct_val)
        liq = max(p.avg_px - per, ZERO)
    return {
        "adl": "1", "availPos": s(abs(p.pos)), "avgPx": s(p.avg_px), "cTime": str(p.c_time),
        "ccy": "USDT", "deltaBS": "", "deltaPA": "", "gammaBS": "", "gammaPA": "",
        "imr": "", "instId": p.inst_id, "instType": "SWAP", "interest": "0",
        "idxPx": s(inst.price), "last": s(inst.price), "lever": str(p.lever),
        "liab": "", "liabCcy": "", "liqPx": s(liq.quantize(inst.tick)) if liq else "",
        "margin": s(p.margin), "markPx": s(inst.price), "mgnMode": p.mgn_mode,
        "mgnRatio": s(((p.margin + upl) / mmr).quantize(Decimal("0.01"))) if mmr else "",
        "mmr": s(mmr), "notionalUsd": s(notional), "optVal": "", "pendingCloseOrdLiabVal": "",
        "pos": s(p.pos), "posCcy": "", "posId": f"pos{p.inst_id}", "posSide": "net",
        "quoteBal": "", "baseBal": "", "realizedPnl": "0", "thetaBS": "", "thetaPA": "",
        "tradeId": "", "uTime": str(p.u_time), "upl": s(upl),
        "uplRatio": s((upl / p.margin).quantize(Decimal("0.0001"))) if p.margin else "0",
        "usdPx": "", "vegaBS": "", "vegaPA": "",
    }


def balance(book: OkxBook, now: int, ccys: set[str] | None = None) -> dict[str, Any]:
    """``eq`` = cash + unrealised PnL; ``availBal`` = cash - frozen (isolated margin and
    resting orders); ``isoEq`` = isolated margin + its unrealised PnL."""
    details = []
    total = ZERO
    for t in totals(book):
        if ccys and t.ccy not in ccys:
            continue
        inst = book.instruments.get(t.ccy)
        usd = Decimal(1) if t.ccy == "USDT" else (inst.price if inst else ZERO)
        eq = t.cash + t.upl
        total += eq * usd
        details.append({
            "availBal": s(t.cash - t.frozen), "availEq": s(t.cash - t.frozen),
            "borrowFroz": "", "cashBal": s(t.cash), "ccy": t.ccy, "crossLiab": "",
            "disEq": s(eq * usd), "eq": s(eq), "eqUsd": s(eq * usd), "fixedBal": "0",
            "frozenBal": s(t.frozen), "imr": "", "interest": "", "isoEq": s(t.iso_eq),
            "isoLiab": "", "isoUpl": s(t.upl), "liab": "", "maxLoan": "", "mgnRatio": "",
            "mmr": "", "notionalLever": "", "ordFrozen": "0", "spotInUseAmt": "",
            "stgyEq": "0", "twap": "0", "uTime": str(now), "upl": s(t.upl),
            "uplLiab": "",
        })
    return {"adjEq": "", "borrowFroz": "", "details": details, "imr": "", "isoEq": "",
            "mgnRatio": "", "mmr": "", "notionalUsd": "", "ordFroz": "",
            "totalEq": s(total), "uTime": str(now), "upl": ""}


def candles(inst: OkxInstrument, bar_ms: int, limit: int, now: int, after: int | None,
            before: int | None) -> list[list[str]]:
    """Newest first, as OKX sends them: opened before ``after`` and after ``before`` (both
    optional), at most ``limit``; the current candle is unconfirmed (still forming)."""
    current = now // bar_ms * bar_ms
    start = current if after is None else min(current, (after - 1) // bar_ms * bar_ms)
    px = s(inst.price)
    rows = []
    opened = start
    while len(rows) < limit and (before is None or opened > before):
        rows.append([str(opened), px, px, px, px, "100", "1000", "1000",
                     "0" if opened == current else "1"])
        opened -= bar_ms
    return rows
