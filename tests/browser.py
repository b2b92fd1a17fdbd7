"""Render an offline HTML report in headless Chromium and return its screenshot's size."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def screenshot_bytes(page: Path, tmp_path: Path) -> int:
    """Bytes of a 1280x4000 screenshot of ``page`` (0 when none was written); skips the test
    with the install hint when Chromium is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium not found: install Debian's `chromium` package (.ci/chromium.sh) "
                    "to render the report in a headless browser")
    shot = tmp_path / f"{page.stem}.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,4000",
                    "--virtual-time-budget=10000", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, text=True, timeout=120)
    return shot.stat().st_size if shot.exists() else 0
