"""Before a command opens the state store: is it a store this build can use, as asked?

Opening a bad store used to end in a traceback halfway through start-up (``file is not a
database``, ``attempt to write a readonly database``, ``No module named 'psycopg'``), or
worse, silently: an empty file became a fresh account. These checks run before anything is
locked, migrated or logged, and turn each case into one line naming the path (never a
password) and what to do. They only read: a damaged file is left byte for byte as it was.

* :class:`StateFileError`: the store cannot be used (exit status 2, like bad configuration).
* :class:`NoStateYet`: nothing to show yet (``status``/``explain``/``resume``: exit 1, as
  before).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from bot.store.engine import SQLITE_SIBLINGS, StoreTarget, parse_target
from bot.store.owner import left_empty_by_a_start

SQLITE_MAGIC = b"SQLite format 3\x00"
POSTGRES_EXTRA = "pip install 'sectorbot[postgres]'"


class StateFileError(Exception):
    """The state store cannot be used as it is; the message is one line."""


class NoStateYet(Exception):
    """No store has been written yet: there is nothing to read or resume."""


def check_target(value: Path | str) -> StoreTarget:
    """Parse ``state.path``/``state.url`` and make sure its driver is importable.

    ``parse_target`` messages hide the password; SQLAlchemy's own parse errors may not, so
    they are replaced by a generic line.
    """
    try:
        target = parse_target(value)
    except ValueError as exc:
        text = str(exc)
        if not text.startswith(("unsupported state store URL", "the state store needs")):
            text = "not a database URL; use a SQLite path or postgresql+psycopg://user@host/db"
        raise StateFileError(f"state.url: {text}") from None
    except ArgumentError:
        raise StateFileError("state.url: not a database URL; use a SQLite path or "
                             "postgresql+psycopg://user@host/db") from None
    if target.path is not None:
        return target
    try:
        target.url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise StateFileError(f"state.url: unknown database driver {target.url.drivername!r}; "
                             "use postgresql+psycopg://") from None
    except ImportError as exc:
        raise StateFileError(f"state.url: the PostgreSQL driver ({exc.name or 'psycopg'}) is "
                             f"not installed; {POSTGRES_EXTRA}") from None
    return target


def check_state_file(path: Path, *, write: bool, create: bool) -> None:
    """Refuse a SQLite state file this command cannot use, before it is opened.

    ``write``: the command writes (``run``, ``resume``); ``create``: it may start a new store
    (``run``). Read-only commands (``status``, ``explain``) need neither: they work on a
    read-only file or in a read-only directory.
    """
    uid = os.getuid()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not create:
            raise NoStateYet(f"no state yet at {path}: run `sectorbot run` first") from None
        _check_creatable(path, uid)
        return
    except (OSError, ValueError) as exc:  # a parent that is a file, no search permission, NUL
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StateFileError(f"state.path: cannot reach {path!r}: {reason}; point state.path "
                             "at a file in a directory this user can use") from None
    if stat.S_ISDIR(st.st_mode):
        raise StateFileError(f"state.path: {path} is a directory; point state.path at a file, "
                             f"such as {path / 'sectorbot.sqlite3'}")
    if not stat.S_ISREG(st.st_mode):
        raise StateFileError(f"state.path: {path} is not a regular file; point state.path at "
                             "a SQLite file")
    if not os.access(path, os.R_OK):
        raise StateFileError(f"state.path: cannot read {path}: permission denied for uid {uid} "
                             f"(mode {stat.S_IMODE(st.st_mode):o}, owner uid {st.st_uid}); "
                             "fix its permissions or run as its owner")
    wal_size = _size(_sibling(path, "-wal"))
    if st.st_size == 0 and wal_size == 0:
        if not create:
            raise NoStateYet(f"no state yet at {path} (the file is empty): run "
                             "`sectorbot run` first")
        if not left_empty_by_a_start(path):
            raise StateFileError(
                f"state.path: {path} is empty (0 bytes) and no interrupted sectorbot start "
                "left it so: it holds no state (a truncated copy?); restore the store from a "
                "backup, or delete the file to start a fresh account")
    elif st.st_size > 0:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
        if head != SQLITE_MAGIC:
            raise StateFileError(
                f"state.path: {path} is not a SQLite database ({st.st_size} bytes that "
                "sectorbot did not write); point state.path at the store, or move the file "
                "away to start a fresh account")
    if write:
        _check_writable(path, uid)
    if st.st_size > 0 or wal_size > 0:
        _check_integrity(path)


def read_only_uri(path: Path) -> str:
    """A ``mode=ro`` SQLite URI for ``path``. SQLite reads a WAL database through its
    ``-shm`` file, which it must create if it is missing: where this user cannot write the
    directory and no ``-wal``/``-shm`` exists (the store was closed cleanly, everything is
    in the main file), the file is opened ``immutable`` instead, so ``status`` still works
    on a read-only volume."""
    uri = f"file:{quote(path.resolve().as_posix())}?mode=ro"
    siblings_absent = not any(_sibling(path, s).exists() for s in ("-wal", "-shm"))
    if siblings_absent and not os.access(path.resolve().parent, os.W_OK):
        uri += "&immutable=1"
    return uri


def _check_integrity(path: Path) -> None:
    """``PRAGMA quick_check`` on a read-only connection: a damaged page is reported before
    the daemon starts (or ``status`` prints half a table), and nothing is written."""
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise StateFileError(f"state.path: cannot open {path}: {exc}") from None
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError as exc:
        if "malformed" not in str(exc) and "not a database" not in str(exc):
            raise StateFileError(f"state.path: cannot read {path}: {exc}") from None
        rows = [(str(exc),)]
    except sqlite3.DatabaseError as exc:
        rows = [(str(exc),)]
    finally:
        conn.close()
    if rows != [("ok",)]:
        first = " ".join(str(rows[0][0]).split()) if rows else "no answer"
        more = f" (+{len(rows) - 1} more)" if len(rows) > 1 else ""
        raise StateFileError(
            f"state.path: {path} is damaged (SQLite quick_check: {first}{more}); it was left "
            "as it is: restore it from a backup, or move it away to start a fresh account")


def _check_creatable(path: Path, uid: int) -> None:
    """A new store needs its directory (created if missing) to be writable."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise StateFileError(f"state.path: cannot create {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StateFileError(f"state.path: cannot create {path}: directory "
                             f"{parent.resolve()} is not writable by uid {uid}; fix its "
                             "permissions or point state.path elsewhere")


def _check_writable(path: Path, uid: int) -> None:
    """The daemon writes the file, SQLite's ``-wal``/``-shm`` beside it and the owner lock
    ``<file>.lock``: each must be writable, or the start fails half-way."""
    for item in (path, *(_sibling(path, s) for s in (*SQLITE_SIBLINGS, ".lock"))):
        if item.exists() and not os.access(item, os.W_OK):
            mode = stat.S_IMODE(item.stat().st_mode)
            raise StateFileError(f"state.path: {item} is not writable by uid {uid} (mode "
                                 f"{mode:o}, owner uid {item.stat().st_uid}); fix its "
                                 "permissions (chmod u+w, chown) or run as its owner")
    directory = path.resolve().parent
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StateFileError(f"state.path: directory {directory} is not writable by uid {uid}; "
                             "SQLite and the owner lock write files beside the store there: "
                             "fix its permissions or point state.path elsewhere")


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
