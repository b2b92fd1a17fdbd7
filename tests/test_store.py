"""SQLite specifics of the state store. The behaviours every backend must share (journal,
exact decimals, fills once, positions) run on SQLite and PostgreSQL in test_store_postgres.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.store.repo import StateStore


def test_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "s.sqlite3"
    store = StateStore(path)
    store.put("k", {"a": 1})
    assert (path.stat().st_mode & 0o777) == 0o600
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
