"""The replay source: visibility (no look-ahead), absent data, funding units, staleness,
malformed input, and the bundled sample. Fixtures are real CSV directories in ``tmp_path``."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.domain.market_view import DailyValues, MarketView
from bot.domain.models import DailySeries, FiniteSeries, MarketSnapshot, Series
from bot.sources.replay import (
    ReplayData,
    ReplayDataError,
    bundled_sample_dir,
    close_time,
)

OHLCV_HEADER = "date,open,high,low,close,volume,quote_volume"


def at(y: int, m: int, d: int, h: int = 0, minute: int = 0, s: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, s, tzinfo=UTC)


def candle(day: str, close: float, high: float | None = None, low: float | None = None) -> str:
    hi = high if high is not None else close + 5
    lo = low if low is not None else close - 5
    return f"{day},{close},{hi},{lo},{close},10,{close * 10}"


def write(root: Path, files: dict[str, list[str]]) -> Path:
    for rel, lines in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """BTC from 2024-01-01, SOL from 2024-01-03 with 2024-01-04 missing; BTC funding every
    8 h, ETH funding every 4 h; L1 TVL with a missing day, DEX volume; nothing for RWA."""
    return write(tmp_path, {
        "ohlcv/BTC.csv": ["# a comment line", OHLCV_HEADER,
                          candle("2024-01-01", 100), candle("2024-01-02", 110, 130, 90),
                          candle("2024-01-03", 120, 140, 80), candle("2024-01-04", 130),
                          candle("2024-01-05", 140)],
        "ohlcv/SOL.csv": [OHLCV_HEADER, candle("2024-01-03", 20), candle("2024-01-05", 22)],
        "funding/BTC.csv": ["timestamp,rate,interval_hours",
                            "2024-01-01T00:00:00Z,0.0008,8", "2024-01-01T08:00:00Z,0.0016,8",
                            "2024-01-01T16:00:00+00:00,-0.0008,8"],
        "funding/ETH.csv": ["timestamp,rate,interval_hours",
                            "2024-01-01T00:00:00Z,0.0008,8", "2024-01-01T08:00:00Z,0.0004,4",
                            "2024-01-01T12:00:00Z,0.0002,4"],
        "sector_metrics.csv": ["date,sector,metric,value",
                               "2024-01-01,L1,tvl_usd,1000", "2024-01-01,DEX,volume_usd,50",
                               "2024-01-03,L1,tvl_usd,1200", "2024-01-02,DEX,volume_usd,55"],
    })


# ------------------------------------------------------------------------------ visibility


def test_candle_dated_d_is_stamped_and_visible_at_d_plus_one_midnight(small: Path) -> None:
    data = ReplayData.load(small)
    before = data.snapshot(at(2024, 1, 1, 23, 59, 59))
    assert "BTC" not in before.closes and "prices" in before.stale
    first = data.snapshot(at(2024, 1, 2))
    assert first.closes["BTC"].points == ((at(2024, 1, 2), 100.0),)
    assert first.quote_volumes["BTC"].points == ((at(2024, 1, 2), 1000.0),)
    assert data.snapshot(at(2024, 1, 3, 12)).price("BTC") == 110.0
    assert close_time(date(2024, 2, 29)) == at(2024, 3, 1)
    assert (data.first_day, data.last_day) == (date(2024, 1, 1), date(2024, 1, 5))
    assert data.calendar() == tuple(date(2024, 1, d) for d in range(1, 6))
    assert data.tokens == ("BTC", "SOL")


def _everything_visible(snap: MarketSnapshot) -> list[datetime]:
    series = [*snap.closes.values(), *snap.quote_volumes.values(), *snap.funding.values()]
    series += [s for metrics in snap.sector_metrics.values() for s in metrics.values()]
    return [t for s in series for t, _ in s.points]


def test_no_look_ahead_future_rows_cannot_change_a_snapshot(small: Path, tmp_path: Path) -> None:
    """A snapshot from the full files equals one from files cut to what was visible then."""
    full = ReplayData.load(small)
    for as_of in (at(2024, 1, 2, 8), at(2024, 1, 3, 12), at(2024, 1, 4), at(2024, 1, 5, 23)):
        cut_root = _cut_copy(small, tmp_path / f"cut{as_of:%d%H}", as_of)
        snap, cut = full.snapshot(as_of), ReplayData.load(cut_root).snapshot(as_of)
        assert snap == cut
        assert all(t <= as_of for t in _everything_visible(snap))
        assert full.marks(as_of) == ReplayData.load(cut_root).marks(as_of)


def test_load_until_keeps_only_what_the_last_day_could_see(small: Path, tmp_path: Path) -> None:
    """``until`` is the files cut at that day's close: same snapshots, nothing later held."""
    for until in (date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)):
        limit = close_time(until)
        cut_root = _cut_copy(small, tmp_path / f"until{until:%d}", limit)
        held = ReplayData.load(small, until=until)
        assert held.last_day == until
        assert held.snapshot(limit) == ReplayData.load(cut_root).snapshot(limit)
        later = held.snapshot(limit + timedelta(days=30))
        assert all(t <= limit for t in _everything_visible(later))


def _cut_copy(small: Path, root: Path, limit: datetime) -> Path:
    """The replay files with only the rows stamped ``<= limit``, written under ``root``."""
    for path in sorted(small.rglob("*.csv")):
        rows = path.read_text().splitlines()
        kept = [r for r in rows if r.startswith(("#", "date", "timestamp"))
                or _row_time(r) <= limit]
        write(root, {str(path.relative_to(small)): kept})
    return root


def _row_time(row: str) -> datetime:
    first = row.split(",")[0]
    if "T" in first:
        return datetime.fromisoformat(first)
    return close_time(date.fromisoformat(first))


def test_marks_and_candle_range_cover_the_candles_closed_in_the_half_open_window(
        small: Path) -> None:
    data = ReplayData.load(small)
    assert data.marks(at(2024, 1, 3, 23)) == {"BTC": Decimal("110")}
    assert data.marks(at(2024, 1, 4)) == {"BTC": Decimal("120"), "SOL": Decimal("20")}
    rng = data.candle_range("BTC", at(2024, 1, 2), at(2024, 1, 5))  # days 2, 3 and 4
    assert rng is not None
    assert (rng.open, rng.high, rng.low, rng.close, rng.candles) == (
        Decimal("110"), Decimal("140"), Decimal("80"), Decimal("130"), 3)
    assert data.candle_range("BTC", at(2024, 1, 4), at(2024, 1, 4, 23)) is None
    assert data.candle_range("XMR", at(2024, 1, 1), at(2024, 1, 9)) is None


# ------------------------------------------------------------------------------ absent data


def test_absent_rows_stay_absent(small: Path) -> None:
    snap = ReplayData.load(small).snapshot(at(2024, 1, 6))
    assert snap.closes["SOL"].points == ((at(2024, 1, 4), 20.0), (at(2024, 1, 6), 22.0))
    assert snap.sector_metrics["L1"]["tvl_usd"].points == ((at(2024, 1, 2), 1000.0),
                                                          (at(2024, 1, 4), 1200.0))
    assert set(snap.sector_metrics) == {"L1", "DEX"}
    assert not any("RWA" in key for key in snap.stale)


def test_missing_optional_files_mean_absent_signals(tmp_path: Path) -> None:
    root = write(tmp_path, {"ohlcv/BTC.csv": [OHLCV_HEADER, candle("2024-01-01", 100)]})
    snap = ReplayData.load(root).snapshot(at(2024, 1, 2))
    assert (dict(snap.funding), dict(snap.sector_metrics), snap.stale) == ({}, {}, frozenset())
    assert ReplayData.load(root).funding_rates(at(2024, 1, 2)) == {}


def test_lookback_trims_old_points(small: Path) -> None:
    snap = ReplayData.load(small).snapshot(at(2024, 1, 6), lookback_days=2)
    assert [t for t, _ in snap.closes["BTC"].points] == [at(2024, 1, 5), at(2024, 1, 6)]


# ------------------------------------------------------------------------------ funding


def test_funding_is_normalised_per_hour_by_its_own_interval(small: Path) -> None:
    data = ReplayData.load(small)
    snap = data.snapshot(at(2024, 1, 1, 12))
    assert snap.funding["ETH"].points == ((at(2024, 1, 1), 0.0001), (at(2024, 1, 1, 8), 0.0001),
                                          (at(2024, 1, 1, 12), 0.00005))
    assert snap.funding["BTC"].points == ((at(2024, 1, 1), 0.0001), (at(2024, 1, 1, 8), 0.0002))
    rates = data.funding_rates(at(2024, 1, 1, 12))
    assert (rates["ETH"].hourly_rate, rates["ETH"].interval_hours) == (0.00005, 4.0)
    assert rates["ETH"].next_settlement == at(2024, 1, 1, 16)
    assert rates["BTC"].hourly_rate == 0.0002
    assert data.funding_rates(at(2024, 1, 1, 7, 59, 59))["ETH"].hourly_rate == 0.0001
    assert data.funding_rates(at(2024, 1, 3), max_age=timedelta(days=1)) == {}
    settled = data.funding_settlements("ETH", at(2024, 1, 1), at(2024, 1, 1, 12))
    assert [(t, r.hourly_rate) for t, r in settled] == [(at(2024, 1, 1, 8), 0.0001),
                                                        (at(2024, 1, 1, 12), 0.00005)]


# ------------------------------------------------------------------------------ staleness


def test_staleness_keys_follow_the_age_of_each_series(small: Path) -> None:
    data = ReplayData.load(small)
    # 2024-01-03 12:00: SOL not listed yet (no key); metrics fresh; funding 20 h old.
    assert data.snapshot(at(2024, 1, 3, 12)).stale == frozenset()
    # 2024-01-04 00:00: L1 last point 01-04 00:00, DEX last 01-03 00:00 -> fresh;
    # funding last 01-01 16:00 -> 56 h old -> stale per token and as a whole.
    assert data.snapshot(at(2024, 1, 4)).stale == {"funding", "funding:BTC", "funding:ETH"}
    # 2024-01-06 01:00: DEX volume 3 days + 1 h old -> stale; L1 TVL 2 days + 1 h -> fresh.
    snap = data.snapshot(at(2024, 1, 6, 1))
    assert {k for k in snap.stale if k.startswith("metric")} == {
        "metric:volume_usd:DEX", "metric:volume_usd"}
    # 2024-01-08 00:01: every close is older than 2 days -> per token and global "prices".
    late = data.snapshot(at(2024, 1, 8, 0, 1))
    assert {"prices", "prices:BTC", "prices:SOL", "metric:tvl_usd:L1",
            "metric:tvl_usd"} <= late.stale
    # A token whose own feed stops is flagged while the others keep "prices" fresh.
    ok = data.snapshot(at(2024, 1, 5, 12), max_age={"prices:SOL": timedelta(days=1)})
    assert {"prices:SOL"} == {k for k in ok.stale if k.startswith("prices")}
    # Freshness does not depend on the lookback: a fresh close outside a 1-day window.
    short = data.snapshot(at(2024, 1, 7, 1), lookback_days=1)
    assert not short.closes and "prices" not in short.stale
    relaxed = data.snapshot(at(2024, 1, 8, 0, 1), max_age={"prices": timedelta(days=5),
                                                           "metric": timedelta(days=30)})
    assert relaxed.stale == {"funding", "funding:BTC", "funding:ETH"}


def test_naive_times_are_refused(small: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ReplayData.load(small).snapshot(datetime(2024, 1, 2))


# ------------------------------------------------------------------------------ malformed


GOOD = candle("2024-01-01", 100)
MALFORMED = [
    ("ohlcv/BTC.csv", [OHLCV_HEADER, candle("2024-01-02", 100), GOOD], 3, "rows not sorted"),
    ("ohlcv/BTC.csv", ["#c", OHLCV_HEADER, GOOD, GOOD], 4, "duplicate 2024-01-01 (also on line 3)"),
    ("ohlcv/BTC.csv", [OHLCV_HEADER, "2024-01-01,1,2,1,,1,1"], 2, "empty cell in column 'close'"),
    ("ohlcv/BTC.csv", [OHLCV_HEADER, "2024-01-01,1,2,1,x,1,1"], 2, "'x' is not a number"),
    ("ohlcv/BTC.csv", [OHLCV_HEADER, "2024-01-01,1,2,1,NaN,1,1"], 2, "not a finite number"),
    ("ohlcv/BTC.csv", ["date,open,high,low,close,volume", "2024-01-01,1,2,1,1,1"], 1,
     "missing column 'quote_volume'"),
    ("ohlcv/BTC.csv", [OHLCV_HEADER, "2024-1-01,1,2,1,1,1,1"], 2, "not a YYYY-MM-DD date"),
    ("ohlcv/BTC.csv", [OHLCV_HEADER, "2024-01-01,1,2,1,3,1,1"], 2, "do not bracket"),
    ("ohlcv/BTC.csv", [OHLCV_HEADER, "2024-01-01,1,2,1,1,1"], 2, "expected 7 cells, found 6"),
    ("ohlcv/BTC.csv", [OHLCV_HEADER, '2024-01-01,1,2,1,1,1,"1', GOOD], 2, "runs past the end"),
    ("funding/BTC.csv", ["timestamp,rate,interval_hours", "2024-01-01T00:00:00,0.1,8"], 2,
     "not marked UTC"),
    ("funding/BTC.csv", ["timestamp,rate,interval_hours", "2024-01-01T00:00:00Z,0.1,0"], 2,
     "interval_hours must be > 0"),
    ("sector_metrics.csv", ["date,sector,metric,value", "2024-01-02,L1,tvl_usd,1",
                            "2024-01-01,L2,tvl_usd,1", "2024-01-02,L1,tvl_usd,2"], 4,
     "duplicate 2024-01-02 (also on line 2)"),
]


@pytest.mark.parametrize(("rel", "lines", "line", "reason"), MALFORMED,
                         ids=[m[3].split("'")[0].strip() or m[3] for m in MALFORMED])
def test_malformed_input_names_file_line_and_reason(
        tmp_path: Path, rel: str, lines: list[str], line: int, reason: str) -> None:
    files = {"ohlcv/BTC.csv": [OHLCV_HEADER, GOOD], rel: lines}
    root = write(tmp_path, files)
    with pytest.raises(ReplayDataError) as err:
        ReplayData.load(root)
    assert err.value.path == root / rel
    assert err.value.line == line
    assert str(err.value).startswith(f"{root / rel}:{line}: ")
    assert reason in str(err.value)


def test_directory_without_ohlcv_and_bad_file_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ReplayDataError, match="no ohlcv/ folder"):
        ReplayData.load(tmp_path)
    write(tmp_path, {"ohlcv/btc.csv": [OHLCV_HEADER, GOOD]})
    with pytest.raises(ReplayDataError, match="upper-case token symbol"):
        ReplayData.load(tmp_path)


# ------------------------------------------------------------------------------ bundled sample


@pytest.fixture(scope="module")
def sample() -> ReplayData:
    return ReplayData.load(bundled_sample_dir())


def test_bundled_sample_has_the_documented_tokens_range_and_values(sample: ReplayData) -> None:
    assert set(sample.tokens) == {"BTC", "ETH", "SOL", "AVAX", "ADA", "SUI", "APT", "NEAR",
                                  "TON", "DOT", "LINK", "FIL", "ARB", "POL", "UNI", "AAVE",
                                  "ZEC", "PAXG"}
    assert (sample.first_day, sample.last_day) == (date(2020, 6, 1), date(2025, 6, 30))
    assert sample.funding_tokens == ("BTC", "ETH")
    # Real values (Binance BTCUSDT close 2025-06-30 was 107146.5; 6 significant digits).
    assert sample.marks(at(2025, 7, 1))["BTC"] == Decimal("107146")
    assert "TON" not in sample.marks(at(2024, 8, 8, 23))  # listed 2024-08-08: visible 08-09
    mid = sample.snapshot(at(2022, 6, 1))
    assert mid.stale == frozenset()
    assert {"L1", "L2", "DEX", "LENDING"} <= set(mid.sector_metrics)
    assert all(t <= mid.as_of for t in _everything_visible(mid))
    late = sample.snapshot(at(2025, 1, 1))
    assert {"funding", "metric:tvl_usd"} <= late.stale and "prices" not in late.stale


@pytest.mark.parametrize("as_of", [at(2020, 6, 2), at(2021, 11, 9, 13), at(2023, 3, 1),
                                   at(2025, 7, 1)])
def test_replay_day_series_read_exactly_as_their_points(sample: ReplayData,
                                                        as_of: datetime) -> None:
    """The replay hands the engine pre-split daily series (the fast path): they must read
    the same days, values and newest stamp as the generic conversion of the same points."""
    snap = sample.snapshot(as_of)
    series = [*snap.closes.values(), *snap.quote_volumes.values(), *snap.highs.values(),
              *snap.lows.values(),
              *(s for per in snap.sector_metrics.values() for s in per.values())]
    assert series and all(isinstance(s, DailySeries) for s in series)
    for s in series:
        assert DailyValues.from_series(s, as_of) == \
            DailyValues.from_series(Series(s.points), as_of)


@pytest.mark.parametrize("as_of", [at(2021, 11, 9, 13), at(2023, 3, 1)])
def test_replay_funding_read_exactly_as_its_points(sample: ReplayData, as_of: datetime) -> None:
    """Replay funding comes as validated finite series (taken as they are): the view must
    hold the same points as the generic, filtering conversion of the same points."""
    snap = sample.snapshot(as_of)
    assert snap.funding and all(isinstance(s, FiniteSeries) for s in snap.funding.values())
    plain = replace(snap, funding={t: Series(s.points) for t, s in snap.funding.items()})
    assert MarketView.build(snap).funding == MarketView.build(plain).funding


def test_a_series_not_known_finite_is_still_filtered() -> None:
    """Only a series that says it is finite skips the filter: a plain one keeps dropping
    NaN and points after ``as_of``."""
    as_of = at(2024, 1, 2)
    points = ((at(2024, 1, 1), 0.0001), (at(2024, 1, 1, 8), math.nan),
              (at(2024, 1, 3), 0.0002))
    snap = MarketSnapshot(as_of=as_of, closes={}, funding={"ETH": Series(points)})
    assert MarketView.build(snap).funding["ETH"] == ((at(2024, 1, 1), 0.0001),)
