"""``--log-format console`` keeps lines short and readable (issue #16): a field's long value
is shortened on the console only (``decision.made`` with every reason, ``universe.dropped``
with dozens of tokens); the JSON log, the documented contract, keeps every value whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bot.cli import main
from bot.log_console import VALUE_BUDGET, shorten, shorten_for_console

ENV = {"SECTORBOT__SIGNALS__DEFILLAMA": "false", "SECTORBOT__SIGNALS__GITHUB": "false",
       "SECTORBOT__SIGNALS__COINGECKO": "false"}


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        fmt: str, name: str) -> list[str]:
    for key in [k for k in os.environ if k.startswith("SECTORBOT__")]:
        monkeypatch.delenv(key)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SECTORBOT__STATE__PATH", str(tmp_path / name))
    assert main(["run", "--cycles", "3", "--log-format", fmt]) == 0
    return capsys.readouterr().out.splitlines()


def test_console_lines_stay_short_while_the_json_log_keeps_every_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    console = run(tmp_path, monkeypatch, capsys, "console", "console.sqlite3")
    full = [json.loads(line) for line in run(tmp_path, monkeypatch, capsys, "json",
                                             "json.sqlite3")]
    longest = max(len(json.dumps(e)) for e in full)
    assert longest > 500  # what the console used to print on one line
    assert console and max(len(line) for line in console) <= 300, max(console, key=len)
    [dropped] = [line for line in console if " universe.dropped " in line]
    [tokens] = [e["tokens"] for e in full if e["event"] == "universe.dropped"]
    shown = dropped.split("tokens=[")[1].split(", ...")[0].split(", ")
    assert shown == [repr(t) for t in tokens[:len(shown)]]
    assert dropped.endswith(f", ... +{len(tokens) - len(shown)} more]")
    decision = next(e for e in full if e["event"] == "decision.made")
    assert len(decision["reasons"]) > 3 and all(len(r) > 10 for r in decision["reasons"])
    line = next(line for line in console if " decision.made " in line)
    assert f"decision_id={decision['decision_id']}" in line and "more]" in line
    # Seconds are enough on a console; the JSON timestamp keeps its microseconds.
    assert console[0][19:21] == "Z " and "." in full[0]["timestamp"]


def test_shorten_cuts_strings_and_collections_and_says_what_it_left_out() -> None:
    assert shorten("short") == "short" and shorten([1, 2]) == [1, 2]
    text = repr(shorten("x" * 200))
    assert text.endswith("...'") and len(text) <= VALUE_BUDGET
    listed = repr(shorten([f"TOKEN{i}" for i in range(40)]))
    assert listed.startswith("['TOKEN0', ") and listed.endswith("more]")
    assert len(listed) <= VALUE_BUDGET + 15
    mapping = repr(shorten({f"K{i}": i / 7 for i in range(30)}))
    assert mapping.startswith("{'K0': ") and mapping.endswith("more}")
    event = shorten_for_console(None, "info", {
        "event": "x" * 100, "level": "info", "timestamp": "2026-12-02T16:24:11.802239Z",
        "gone": None, "kept": 0})
    assert event == {"event": "x" * 100, "level": "info", "timestamp": "2026-12-02T16:24:11Z",
                     "kept": 0}
