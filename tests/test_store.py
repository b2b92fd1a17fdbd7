"""SQLite specifics of the state store. The behaviours every backend must share (journal,
exact decimals, fills once, positions) run on SQLite and PostgreSQL in test_store_postgres.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from bot.store.repo import StateStore


def test_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "s.sqlite3"
    store = StateStore(path)
    store.put("k", {"a": 1})
    assert (path.stat().st_mode & 0o777) == 0o600
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_daemon_store_fsyncs_every_commit_and_only_a_backtest_store_does_not(
        tmp_path: Path) -> None:
    """The order journal must survive power loss (synchronous=FULL); a backtest's throwaway
    store opts out with ``durable=False`` and nothing else does."""
    def synchronous(store: StateStore) -> int:
        with store.engine.connect() as conn:
            return int(conn.execute(text("PRAGMA synchronous")).scalar_one())

    daemon_store = StateStore(tmp_path / "d.sqlite3")
    backtest_store = StateStore(tmp_path / "b.sqlite3", durable=False)
    try:
        assert synchronous(daemon_store) == 2  # FULL
        assert synchronous(backtest_store) == 0  # OFF
    finally:
        daemon_store.close()
        backtest_store.close()
