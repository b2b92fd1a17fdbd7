"""Run the daemon itself over a stretch of history, on a throwaway store, and keep a record.

There is no second strategy implementation: the backtest builds the paper-mode ``Daemon``
(engine, risk rules, planner, executor, paper exchange, state store, replay driver) and calls
its ``step`` once per simulated day, exactly as ``sectorbot run --cycles N`` does. The only
additions are a temporary store and, after each step, a reading of the simulated account
(holdings and marks) that the report needs and the store does not keep (it keeps the latest
positions only).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.domain.models import Portfolio
from bot.service.daemon import Daemon

Progress = Callable[[int, int, datetime], None]


@dataclass(frozen=True, slots=True)
class BookPoint:
    """The simulated account at the end of one step (values in USDT at the day's marks)."""

    ts: datetime
    equity: Decimal
    cash: Decimal
    spot: Mapping[str, Decimal]
    """Spot value per token."""
    perps: Mapping[str, Decimal]
    """Signed perp notional per token (> 0 long)."""
    prices: Mapping[str, Decimal]
    amounts: Mapping[str, Decimal]
    """Spot amount per token, then perp amounts under ``perp:<token>``."""


@dataclass
class BacktestRun:
    """What a run produced: the per-step account and the store it wrote (still open)."""

    settings: Settings
    points: list[BookPoint] = field(default_factory=list)
    store_path: Path | None = None
    daemon: Daemon | None = None
    started: datetime | None = None
    data_dir: Path | None = None


def book_point(ts: datetime, portfolio: Portfolio) -> BookPoint:
    spot = {t: portfolio.spot_value(t) for t in sorted(portfolio.spot)
            if portfolio.spot[t] > 0 and portfolio.prices.get(t)}
    perps = {t: p.amount * p.mark_price for t, p in sorted(portfolio.perps.items())
             if p.amount != 0}
    prices = dict(portfolio.prices)
    prices.update({t: p.mark_price for t, p in portfolio.perps.items()})
    amounts: dict[str, Decimal] = {t: a for t, a in portfolio.spot.items() if a > 0}
    amounts.update({f"perp:{t}": p.amount for t, p in portfolio.perps.items() if p.amount})
    return BookPoint(ts, portfolio.equity(), portfolio.cash, spot, perps, prices, amounts)


def backtest_settings(settings: Settings, workdir: Path, data_dir: Path | None,
                      start: date | None, end: date | None) -> Settings:
    """Paper mode on a store of its own in ``workdir``, over ``[start, end]``."""
    replay = settings.replay.model_copy(update={
        k: v for k, v in (("data_dir", data_dir), ("start", start), ("end", end))
        if v is not None})
    state = settings.state.model_copy(update={"path": workdir / "backtest.sqlite3",
                                              "url": None})
    return settings.model_copy(update={"mode": "paper", "replay": replay, "state": state})


def run_backtest(settings: Settings, log: Any, workdir: Path | None = None,
                 data_dir: Path | None = None, start: date | None = None,
                 end: date | None = None, progress: Progress | None = None) -> BacktestRun:
    """Step the paper daemon from ``start`` to ``end`` on a fresh store in ``workdir``
    (a temporary directory by default) and record the account after every step."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="sectorbot-backtest-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run_settings = backtest_settings(settings, workdir, data_dir, start, end)
    store_file = run_settings.state.path
    if store_file.exists():
        raise FileExistsError(f"{store_file} exists: a backtest starts from an empty store")
    daemon = Daemon(run_settings, log, durable=False)
    run = BacktestRun(run_settings, store_path=store_file, daemon=daemon,
                      data_dir=daemon.data.root)
    driver = daemon.driver
    total = max(0, (driver.end - driver.cursor) // driver.step)  # type: ignore[union-attr]
    done = 0
    try:
        while True:
            with daemon.store.batch():  # one commit per step: see StateStore.batch
                if not daemon.step():
                    break
            done += 1
            when = daemon.driver.cursor
            run.points.append(book_point(when, daemon.cycle.read_portfolio()))
            if run.started is None:
                run.started = when
            if progress is not None:
                progress(done, total, when)
    finally:
        daemon.stop_event.set()
        daemon.driver.persist()  # the store ends holding the account it describes
    return run


def tty_progress(stream: Any = None) -> Progress | None:
    """A one-line progress bar on a terminal; nothing when output is not a TTY."""
    out = stream or sys.stderr
    if not out.isatty():
        return None

    def show(done: int, total: int, when: datetime) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                  f"{when:%Y-%m-%d}")
        if done >= total:
            out.write("\n")
        out.flush()

    return show


__all__ = ["BacktestRun", "BookPoint", "backtest_settings", "book_point", "run_backtest",
           "tty_progress"]
