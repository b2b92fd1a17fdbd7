"""``export-signals --replay-dir`` never writes into an existing directory that is not empty
(one that appeared after the command checked, say): it writes a temporary sibling and
renames it into place, and a rename onto a non-empty directory or a file fails."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.service.replay_export import ExportTargetExists, write_replay_dir
from bot.store.market_data import KeptCandle
from bot.store.repo import StateStore

T0 = datetime(2024, 3, 2, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = StateStore(tmp_path / "state.sqlite3", durable=False)
    c = Decimal("100")
    s.record_market_data("binance", [KeptCandle("BTC", date(2024, 3, 1), "spot", c, None,
                                                None, c, Decimal("1"), c)], [], T0)
    return s


def test_an_existing_non_empty_target_is_never_written_into(store: StateStore,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "exports" / "replay"
    out.mkdir(parents=True)
    (out / "mine.txt").write_text("the operator's", encoding="utf-8")
    with pytest.raises(ExportTargetExists):
        write_replay_dir(store, out, mode="demo", exchange="binance")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert (out / "mine.txt").read_text(encoding="utf-8") == "the operator's"
    assert sorted(p.name for p in out.parent.iterdir()) == ["replay"], "no partial left"


def test_a_file_at_the_target_is_left_alone(store: StateStore, tmp_path: Path) -> None:
    out = tmp_path / "replay"
    out.write_text("a file", encoding="utf-8")
    with pytest.raises(ExportTargetExists):
        write_replay_dir(store, out, mode="demo", exchange="binance")
    assert out.read_text(encoding="utf-8") == "a file"
    assert not list(tmp_path.glob("*.partial")), "no partial left"


@pytest.mark.parametrize("exists", [False, True])
def test_a_new_or_empty_target_gets_the_whole_export(store: StateStore, tmp_path: Path,
                                                     exists: bool) -> None:
    out = tmp_path / "new" / "replay"
    if exists:
        out.mkdir(parents=True)
    done = write_replay_dir(store, out, mode="demo", exchange="binance")
    assert list(done.candles) == ["BTC"]
    assert sorted(p.name for p in out.iterdir()) == ["PROVENANCE.md", "ohlcv"]
    assert (out / "ohlcv" / "BTC.csv").read_text(encoding="utf-8").startswith("date,open")
    assert sorted(p.name for p in out.parent.iterdir()) == ["replay"]
