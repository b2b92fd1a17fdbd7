"""Start the daemon as a real subprocess and read its JSON log lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def env_for(state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECTORBOT__")}
    env["PYTHONPATH"] = str(REPO)
    env["SECTORBOT__STATE__PATH"] = str(state)
    # No test reaches the internet: a test that wants sector metrics serves DefiLlama, GitHub
    # or CoinGecko on loopback (tests/defillama_server.py, tests/github_server.py,
    # tests/coingecko_server.py) and turns the provider back on.
    env["SECTORBOT__SIGNALS__DEFILLAMA"] = "false"
    env["SECTORBOT__SIGNALS__GITHUB"] = "false"
    env["SECTORBOT__SIGNALS__COINGECKO"] = "false"
    # A service-mode daemon serves /healthz on a port of its own (two tests' daemons, or a
    # real one on this machine, must not meet on the default port).
    env["SECTORBOT__HTTP__PORT"] = "0"
    # The emulators have no rate limit to respect: ccxt's client-side throttle only spent
    # seconds of CI per demo run (about 2 s per algo-order listing).
    env["SECTORBOT_TEST_NO_THROTTLE"] = "1"
    env.update(extra)
    return env


def run_cli(args: list[str], state: Path, cwd: Path, timeout: float = 240,
            **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env=env_for(state,
                          **extra), capture_output=True, text=True, timeout=timeout)


def events(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line must be one JSON object; return them in order."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def named(evs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in evs if e["event"] == name]
