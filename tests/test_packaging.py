"""The README's commands are the ones CI runs, and the wheel carries the bundled data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    command = next(ln for ln in ci_lines if ln.startswith("python3 -m venv"))
    assert command in (REPO / "README.md").read_text()
    assert "pytest" in command


def test_wheel_contains_sample_data_and_defaults(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, capture_output=True,
                   cwd=tmp_path)
    wheel = next(tmp_path.glob("sectorbot-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("bot/data/sample/ohlcv/BTC.csv", "bot/data/sample/PROVENANCE.md",
                     "bot/data/sample/sector_metrics.csv", "bot/defaults/sectors.toml",
                     "bot/data/extended/PROVENANCE.md", "bot/data/extended/ohlcv/OP.csv",
                     "bot/py.typed", "bot/store/migrations/env.py",
                     "bot/store/migrations/versions/v0001_baseline.py"):
        assert required in names, required
    assert not any(n.startswith("tests/") for n in names)
