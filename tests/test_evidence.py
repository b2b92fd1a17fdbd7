"""The signal-evidence report: it finds an edge where one was planted, none in noise, and it
never lets a component without evidence keep weight."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import load_settings, load_universe
from bot.domain.params import StrategyParams
from bot.research.evidence import evidence_report as report_of
from bot.research.evidence import ranks, spearman, suggested_weights
from bot.sources.replay import ReplayData
from tests.daemon_proc import run_cli

SECTORS = {"AAA": ["A1", "A2", "A3"], "BBB": ["B1", "B2", "B3"], "CCC": ["C1", "C2", "C3"],
           "DDD": ["D1", "D2", "D3"], "EEE": ["E1", "E2", "E3"]}
DAYS = 420
START = date(2022, 1, 1)


def synthetic(root: Path, persistent: bool, seed: int) -> tuple[Path, Path]:
    """Replay data and a universe: five sectors of three tokens plus BTC/ETH. With
    ``persistent`` each sector keeps a drift for 60 days (momentum predicts the next weeks);
    without it every day is independent noise."""
    rng = random.Random(seed)
    (root / "ohlcv").mkdir(parents=True)
    drifts = {s: 0.0 for s in SECTORS}
    series: dict[str, list[float]] = {t: [100.0] for ts in SECTORS.values() for t in ts}
    series["BTC"], series["ETH"] = [30000.0], [2000.0]
    for day in range(1, DAYS):
        if persistent and day % 60 == 1:
            drifts = {s: rng.choice((-0.012, -0.004, 0.004, 0.012)) for s in SECTORS}
        for sector, tokens in SECTORS.items():
            common = drifts[sector] + rng.gauss(0, 0.01)
            for t in tokens:
                series[t].append(series[t][-1] * math.exp(common + rng.gauss(0, 0.01)))
        for t in ("BTC", "ETH"):
            series[t].append(series[t][-1] * math.exp(rng.gauss(0, 0.02)))
    for token, closes in series.items():
        rows = ["date,open,high,low,close,volume,quote_volume"]
        for i, c in enumerate(closes):
            rows.append(f"{START + timedelta(days=i)},{c:.6f},{c * 1.01:.6f},{c * 0.99:.6f},"
                        f"{c:.6f},1000,1000000")
        (root / "ohlcv" / f"{token}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    universe = root / "universe.toml"
    lines = ['[core]\ntokens = ["BTC", "ETH"]\n']
    for stage, (sector, tokens) in enumerate(SECTORS.items(), start=1):
        quoted = ", ".join(f'"{t}"' for t in tokens)
        lines.append(f'[sectors.{sector}]\nbucket = "rotational"\ncycle_stage = {stage}\n'
                     f"tokens = [{quoted}]\n")
    universe.write_text("\n".join(lines), encoding="utf-8")
    return root, universe


def evidence(root: Path, universe: Path) -> object:
    data = ReplayData.load(root)
    return report_of(data, load_universe(universe), StrategyParams(), START + timedelta(
        days=45), data.last_day)


def test_ranks_and_spearman_on_known_cases() -> None:
    assert ranks([3.0, 1.0, 2.0, 2.0]) == [4.0, 1.0, 2.5, 2.5]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_a_planted_momentum_edge_is_found_and_earns_weight(tmp_path: Path) -> None:
    report = evidence(*synthetic(tmp_path, persistent=True, seed=1))
    mom = report.of("mom_28d", 14)  # type: ignore[attr-defined]
    assert mom is not None and mom.mean_ic > 0.2 and mom.t_stat > 2.0
    assert mom.independent_days <= mom.days // 14 + 1  # t counts non-overlapping days only
    weights = suggested_weights(report, StrategyParams())  # type: ignore[arg-type]
    assert weights["mom_28d"] > 0
    assert weights["tvl_7d"] == 0.0 and weights["volume"] == 0.0  # no data, no weight
    total = sum(StrategyParams().component_weights().values())
    assert sum(weights.values()) == pytest.approx(total)


def test_noise_shows_no_edge_and_nothing_keeps_weight(tmp_path: Path) -> None:
    report = evidence(*synthetic(tmp_path, persistent=False, seed=2))
    for horizon in (7, 14, 28):
        mom = report.of("mom_28d", horizon)  # type: ignore[attr-defined]
        assert mom is not None and abs(mom.mean_ic) < 0.15 and abs(mom.t_stat) < 3.0
    weights = suggested_weights(report, StrategyParams())  # type: ignore[arg-type]
    assert sum(1 for w in weights.values() if w > 0) <= 1


def test_the_command_writes_the_report_and_refuses_a_short_range(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    done = run_cli(["evidence", "--out", str(out), "--start", "2023-01-01", "--end",
                    "2023-03-31"], tmp_path / "s.sqlite3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("signal evidence 2023-01-01 .. 2023-03-31")
    summary = json.loads((out / "evidence.json").read_text())
    assert set(summary["suggested_weights"]) == set(load_settings(None).strategy
                                                    .component_weights())
    assert "mom_7d" in summary["components"]
    assert (out / "ic_daily.csv").read_text().startswith("date,component,horizon_days,ic")
    short = run_cli(["evidence", "--out", str(out), "--start", "2023-01-01", "--end",
                     "2023-01-20"], tmp_path / "s.sqlite3", cwd=tmp_path)
    assert short.returncode == 2 and "no day with 28 days of future" in short.stderr


def test_the_extended_set_prices_four_or_more_tokens_in_every_sector_but_lending() -> None:
    """What docs/signals.md claims of bot/data/extended, checked on the shipped files."""
    from bot.data import bundled_sample_dir

    root = bundled_sample_dir().parent / "extended"
    data = ReplayData.load(root)
    marks = data.marks(datetime(2024, 7, 1, tzinfo=UTC))
    provenance = (root / "PROVENANCE.md").read_text(encoding="utf-8")
    for sector in load_universe(None).sectors:
        priced = [t.symbol for t in sector.tokens if t.symbol in marks]
        assert len(priced) >= (2 if sector.name == "LENDING" else 4), (sector.name, priced)
        for token in priced:
            perp = f"| {token} |" in provenance
            spot = (bundled_sample_dir() / "ohlcv" / f"{token}.csv").exists()
            assert perp != spot, token  # each token priced by exactly one named source
