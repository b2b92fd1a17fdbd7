"""The secrets file's permissions: a file holding API keys that others on the host may read
is worth a warning at start (``config.secrets_file_mode``), not a refusal: the daemon cannot
know who else is in the file's group, and the operator may have reasons. The state store is
created owner-only (0600) by the store itself (``bot/store/engine.py``)."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path


def secrets_file_warning(config_path: Path | None) -> str | None:
    """Why the config's ``secrets_file`` is too open (group or others may read or write it),
    or None. The config has already been loaded and validated, so a file that cannot be read
    again here is simply not checked."""
    if config_path is None:
        return None
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    name = data.get("secrets_file")
    if not isinstance(name, str):
        return None
    path = config_path.parent / name
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    who = " and ".join(w for w, bits in (("its group", 0o070), ("other users", 0o007))
                       if mode & bits)
    return (f"secrets_file: {path} is open to {who} (mode {mode:04o}); it holds API keys: "
            f"run chmod 600 {path}")
