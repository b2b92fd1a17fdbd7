"""Run sectorbot as a user that file permissions apply to.

Permission tests mean nothing as root (root reads and writes a mode-000 file), and CI
containers often run as root. There the command runs as ``nobody`` through ``setpriv``, in a
directory under /tmp that ``nobody`` owns; as an ordinary user it simply runs as that user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

NOBODY = 65534
REPO = Path(__file__).resolve().parents[1]


def _as_root() -> bool:
    return os.geteuid() == 0


@contextmanager
def workdir() -> Iterator[Path]:
    """A directory the unprivileged user owns (pytest's tmp_path is root-only as root)."""
    if _as_root() and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop privileges")
    path = Path(tempfile.mkdtemp(prefix="sectorbot-perm-", dir="/tmp"))
    try:
        if _as_root():
            os.chown(path, NOBODY, NOBODY)
        yield path
    finally:
        for root, dirs, _files in os.walk(path):  # undo chmods so the tree can be removed
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o700)
        os.chmod(path, 0o700)
        shutil.rmtree(path, ignore_errors=True)


def give(path: Path) -> None:
    """Hand a file or directory made by the test to the unprivileged user."""
    if _as_root():
        os.chown(path, NOBODY, NOBODY)


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """``python -m bot ARGS`` as the unprivileged user, SECTORBOT__* from ``env`` only."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SECTORBOT__")}
    base.update(env or {}, HOME=str(cwd), PYTHONPATH=str(REPO))
    prefix = (["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
              if _as_root() else [])
    return subprocess.run([*prefix, sys.executable, "-m", "bot", *args], cwd=cwd, env=base,
                          capture_output=True, text=True, timeout=180, check=False)
