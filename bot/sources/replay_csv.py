"""Reading the replay directory's CSV files: every row checked, every error located.

The format is ``docs/data-format.md``. Each reader returns plain rows in file order after
checking columns, numbers, dates and their order; a problem raises :class:`ReplayDataError`
naming the file, the line and the reason, so a bad file fails at start-up.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TOKEN = re.compile(r"[A-Z0-9]+")
_OHLCV = ("date", "open", "high", "low", "close", "volume", "quote_volume")
_FUNDING = ("timestamp", "rate", "interval_hours")
_METRICS = ("date", "sector", "metric", "value")


class ReplayDataError(ValueError):
    """A replay file is malformed; the message names the file, the line and the reason."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}" if line else f"{path}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@functools.cache
def close_time(day: date) -> datetime:
    """When the daily row dated ``day`` becomes visible: the next day at 00:00 UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Candle:
    """One daily spot candle in USDT, exact as read (Decimal: it becomes a mark price)."""

    day: date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells of ``columns``) per data row; comments and blank lines skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ReplayDataError(path, None, f"not UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise ReplayDataError(path, None, f"cannot read ({exc.strerror})") from None
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1)
                if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise ReplayDataError(path, None, "no header row")
    reader = csv.reader(line for _, line in numbered)
    header = [h.strip() for h in next(reader)]
    for col in columns:
        if col not in header:
            raise ReplayDataError(path, numbered[0][0], f"missing column {col!r}")
        if header.count(col) > 1:
            raise ReplayDataError(path, numbered[0][0], f"column {col!r} appears twice")
    index = [header.index(c) for c in columns]
    try:
        for row, cells in enumerate(reader, 2):
            n = numbered[row - 1][0]
            if reader.line_num != row:  # one CSV row per line keeps line numbers honest
                raise ReplayDataError(path, n, "a quoted cell runs past the end of the line")
            if len(cells) != len(header):
                raise ReplayDataError(path, n,
                                      f"expected {len(header)} cells, found {len(cells)}")
            values = [cells[i].strip() for i in index]
            for col, value in zip(columns, values, strict=True):
                if not value:
                    raise ReplayDataError(path, n, f"empty cell in column {col!r}")
            yield n, values
    except csv.Error as exc:
        line = numbered[min(reader.line_num, len(numbered)) - 1][0]
        raise ReplayDataError(path, line, f"not valid CSV ({exc})") from None


def _number(path: Path, n: int, col: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ReplayDataError(path, n, f"column {col!r}: {text!r} is not a number") from None
    if not value.is_finite():
        raise ReplayDataError(path, n, f"column {col!r}: {text!r} is not a finite number")
    return value


def _day(path: Path, n: int, text: str) -> date:
    parsed = _parse_day(text)
    if parsed is None:
        raise ReplayDataError(path, n, f"{text!r} is not a YYYY-MM-DD date")
    return parsed


def _timestamp(path: Path, n: int, text: str) -> datetime:
    when = _parse_timestamp(text)
    if when is None:
        raise ReplayDataError(path, n, f"{text!r} is not an ISO-8601 timestamp")
    if when.utcoffset() != timedelta(0):
        raise ReplayDataError(path, n, f"timestamp {text!r} is not marked UTC (Z or +00:00)")
    return when.astimezone(UTC)


# Every token's file repeats the same days and settlement times: parsed once, one object
# each (a 100-token set otherwise holds 100 copies of every timestamp).
@functools.lru_cache(maxsize=1 << 17)
def _parse_day(text: str) -> date | None:
    try:
        if _DATE.fullmatch(text):
            return date(int(text[:4]), int(text[5:7]), int(text[8:]))
    except ValueError:
        pass
    return None


@functools.lru_cache(maxsize=1 << 17)
def _parse_timestamp(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.astimezone(UTC) if when.utcoffset() == timedelta(0) else when


def _order(path: Path, n: int, when: date, prev: date | None, prev_line: int) -> None:
    """Refuse a row that is not strictly after the previous one of the same series."""
    if prev is None:
        return
    if when == prev:
        raise ReplayDataError(path, n, f"duplicate {when} (also on line {prev_line})")
    if when < prev:
        raise ReplayDataError(path, n, f"rows not sorted: {when} after {prev} "
                                       f"(line {prev_line})")


def read_ohlcv(path: Path) -> list[Candle]:
    out: list[Candle] = []
    prev_line = 0
    for n, cells in _rows(path, _OHLCV):
        day = _day(path, n, cells[0])
        o, h, lo, c, v, qv = (_number(path, n, col, x) for col, x in
                              zip(_OHLCV[1:], cells[1:], strict=True))
        if min(o, h, lo, c) <= 0 or v < 0 or qv < 0:
            raise ReplayDataError(path, n, "prices must be > 0 and volumes >= 0")
        if not lo <= min(o, c) <= max(o, c) <= h:
            raise ReplayDataError(path, n, "low/high do not bracket open and close")
        _order(path, n, day, out[-1].day if out else None, prev_line)
        out.append(Candle(day, o, h, lo, c, v, qv))
        prev_line = n
    return out


def read_funding(path: Path) -> list[tuple[datetime, Decimal, Decimal]]:
    out: list[tuple[datetime, Decimal, Decimal]] = []
    prev_line = 0
    for n, cells in _rows(path, _FUNDING):
        when = _timestamp(path, n, cells[0])
        rate = _number(path, n, "rate", cells[1])
        interval = _number(path, n, "interval_hours", cells[2])
        if interval <= 0:
            raise ReplayDataError(path, n, f"interval_hours must be > 0, not {interval}")
        _order(path, n, when, out[-1][0] if out else None, prev_line)
        out.append((when, rate, interval))
        prev_line = n
    return out


def read_metrics(path: Path) -> dict[str, dict[str, list[tuple[datetime, float]]]]:
    """Sector -> metric -> points; each (sector, metric) series must ascend on its own."""
    out: dict[str, dict[str, list[tuple[datetime, float]]]] = {}
    last: dict[tuple[str, str], tuple[date, int]] = {}
    for n, (text, sector, metric, value) in _rows(path, _METRICS):
        day = _day(path, n, text)
        number = float(_number(path, n, "value", value))
        prev = last.get((sector, metric))
        _order(path, n, day, prev[0] if prev else None, prev[1] if prev else 0)
        last[(sector, metric)] = (day, n)
        out.setdefault(sector, {}).setdefault(metric, []).append((close_time(day), number))
    return out


def token_of_file(path: Path) -> str:
    """The token a per-token file is for: its upper-case stem (``SOL.csv`` -> ``SOL``)."""
    if not _TOKEN.fullmatch(path.stem):
        raise ReplayDataError(path, None, "file name must be an upper-case token symbol")
    return path.stem

