"""Issue #17, Security: keys of the wrong environment, withdrawals, file modes, the container.

* A key from another environment (testnet, demo, live) is refused at start, exit 2, one line
  naming the mode and what to do, never retried. OKX says it outright (50101 "APIKey does not
  match current environment"); Binance (-2015) and Bybit (10003) answer a wrong-environment
  key like any invalid key, so their line lists that cause among the others.
* No withdrawal: no emulator request of a demo run is a withdrawal or a transfer out, no code
  in ``bot/`` calls one, and a key that may withdraw is warned about at start where the venue
  tells (Binance live: ``GET /sapi/v1/account/apiRestrictions``; OKX: the account config).
* File modes: a secrets file open to others is warned about; the container runs non-root.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.exchange.ccxt_exchange import CcxtExchange, CredentialsRejected, RetryPolicy
from bot.secrets_mode import secrets_file_warning
from tests.daemon_proc import REPO, env_for
from tests.demo_launcher import EMULATOR_ENV, HOSTS_ENV, NO_THROTTLE_ENV
from tests.exchange_emulator import BinanceEmulator, route_to
from tests.exchange_emulator.bybit_server import BYBIT_HOSTS, BybitEmulator
from tests.exchange_emulator.okx_server import OKX_HOSTS, OkxEmulator

KEY, SECRET, PASSPHRASE = "sec-key-7f3a9c21", "sec-secret-b84e6d0f59a2", "sec-Pass-phrase-1"
FAST = RetryPolicy(read_attempts=3, base_delay=0.01, max_delay=0.05)
WITHDRAWAL = re.compile(r"withdraw|/capital/|sub-account|transfer", re.I)


class Events:
    """A logger that keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append((level, event, fields))

    def named(self, event: str) -> list[tuple[str, dict[str, Any]]]:
        return [(lvl, f) for lvl, e, f in self.lines if e == event]


def adapter(venue: str, mode: str, emu: Any, hosts: Any, **extra: Any) -> CcxtExchange:
    return CcxtExchange(venue, mode, api_key=KEY, api_secret=SECRET, password=PASSPHRASE,
                        tokens=["BTC", "ETH"], perp_tokens=["BTC"], retry=FAST,
                        rate_limit_ms=1, timeout_ms=2000,
                        session_hook=lambda ex: route_to(ex, emu, hosts=hosts), **extra)


# -- keys of another environment -------------------------------------------------------------
@pytest.mark.process
def test_a_live_okx_key_in_demo_mode_is_refused_at_start_in_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "demo.toml"
    cfg.write_text('mode = "demo"\n\n[exchange]\nname = "okx"\n')
    with OkxEmulator(KEY, SECRET, PASSPHRASE, demo=False) as emu:  # it holds a live key
        env = env_for(tmp_path / "state.sqlite3", SECTORBOT__EXCHANGE__API_KEY=KEY,
                      SECTORBOT__EXCHANGE__API_SECRET=SECRET,
                      SECTORBOT__EXCHANGE__PASSWORD=PASSPHRASE,
                      **{EMULATOR_ENV: emu.base_url, HOSTS_ENV: "okx", NO_THROTTLE_ENV: "1"})
        proc = subprocess.run([sys.executable, "-m", "tests.demo_launcher", "run", "--once",
                               "--config", str(cfg)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        signed = [r for r in emu.requests if r.api_key]
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("config error: exchange.api_key: okx says this API key is not a "
                           "demo-trading key (50101"), line
    assert "mode is demo" in line and "Demo Trading" in line and 'mode = "live"' in line
    assert len(signed) == 1  # refused once, not retried, nothing else signed
    assert proc.stdout.count('"event": "daemon.started"') == 0
    assert not (tmp_path / "state.sqlite3").exists()
    assert KEY not in proc.stdout + proc.stderr and SECRET not in proc.stdout + proc.stderr


def test_a_demo_okx_key_in_live_mode_is_named_as_such() -> None:
    with OkxEmulator(KEY, SECRET, PASSPHRASE, demo=True) as emu:
        exchange = adapter("okx", "live", emu, OKX_HOSTS)
        with pytest.raises(CredentialsRejected) as refused:
            exchange.fetch_balances()
        hint = exchange.key_environment_hint(refused.value)
        exchange.close()
    assert "50101" in str(refused.value)
    assert hint is not None and "not a live key" in hint and 'mode = "demo"' in hint


def test_binance_and_bybit_refusals_name_the_environment_among_the_causes() -> None:
    with BinanceEmulator("a-live-key-elsewhere", SECRET) as emu:
        exchange = adapter("binance", "demo", emu, frozenset(
            {"demo-api.binance.com", "demo-fapi.binance.com"}))
        with pytest.raises(CredentialsRejected) as refused:
            exchange.fetch_balances()
        hint = exchange.key_environment_hint(refused.value)
        exchange.close()
    assert "-2015" in str(refused.value)
    assert hint is not None and "demo.binance.com" in hint and "demo mode" in hint
    with BybitEmulator(KEY, SECRET, host_keys={"api-testnet.bybit.com": "a-demo-key"}) as emu:
        exchange = adapter("bybit", "testnet", emu, BYBIT_HOSTS)
        with pytest.raises(CredentialsRejected) as refused:
            exchange.fetch_balances()
        hint = exchange.key_environment_hint(refused.value)
        exchange.close()
    assert "10003" in str(refused.value)
    assert hint is not None and "testnet.bybit.com" in hint
    # a refusal that says nothing about environments gets no such line
    assert exchange.venue.key_environment_hint("testnet", "10004 error sign!") is None


# -- withdrawals -------------------------------------------------------------------------------
def test_no_code_in_the_bot_can_withdraw() -> None:
    """Neither ccxt's unified ``withdraw`` nor any implicit withdrawal or transfer-out
    endpoint is named anywhere in ``bot/``; the only wallet move is Binance's own
    spot <-> USD-M transfer (``exchange.auto_transfer``, MAIN_UMFUTURE / UMFUTURE_MAIN)."""
    calls = re.compile(r"\.withdraw\(|withdraw_?apply|capital_?withdraw|sub_?account|"
                       r"universal_?transfer|inter_?transfer|asset_?withdrawal", re.I)
    offenders = []
    for path in sorted((REPO / "bot").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if calls.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == [], offenders
    transfers = (REPO / "bot/exchange/venues/binance.py").read_text()
    assert set(re.findall(r'"(\w+_\w*UMFUTURE\w*|UMFUTURE_\w+)"', transfers)) == {
        "MAIN_UMFUTURE", "UMFUTURE_MAIN"}


def external_moves(paths: list[str]) -> list[str]:
    """Request paths that would move funds off the account, or between accounts."""
    return [p for p in paths if WITHDRAWAL.search(p)]


def test_the_withdrawal_pattern_knows_the_venues_paths() -> None:
    """The pattern ``tests/test_secret_scan.py`` applies to every request of its demo run
    (``auto_transfer`` on, forced errors), which must match none."""
    assert external_moves(["/sapi/v1/capital/withdraw/apply", "/api/v5/asset/withdrawal",
                           "/v5/asset/transfer/inter-transfer", "/sapi/v1/asset/transfer",
                           "/sapi/v1/sub-account/universalTransfer"]) == [
        "/sapi/v1/capital/withdraw/apply", "/api/v5/asset/withdrawal",
        "/v5/asset/transfer/inter-transfer", "/sapi/v1/asset/transfer",
        "/sapi/v1/sub-account/universalTransfer"]
    assert external_moves(["/api/v3/order", "/fapi/v1/algoOrder", "/fapi/v3/account"]) == []


@pytest.fixture
def binance_live() -> Iterator[tuple[BinanceEmulator, CcxtExchange]]:
    with BinanceEmulator(KEY, SECRET) as emu:
        exchange = adapter("binance", "live", emu, frozenset(
            {"api.binance.com", "fapi.binance.com"}))
        yield emu, exchange
        exchange.close()


def test_a_key_that_may_withdraw_is_warned_about_at_start(
        binance_live: tuple[BinanceEmulator, CcxtExchange]) -> None:
    from bot.service.venue import warn_withdrawals

    emu, exchange = binance_live
    log = Events()
    warn_withdrawals(exchange, "live", log)
    assert log.named("exchange.withdrawal_permission") == [
        ("debug", {"venue": "binance", "mode": "live", "known": True, "enabled": False})]
    emu.book.enable_withdrawals = True  # type: ignore[attr-defined]
    log = Events()
    warn_withdrawals(exchange, "live", log)
    [(level, fields)] = log.named("exchange.withdrawal_permission")
    assert level == "warning" and fields["enabled"] is True
    assert "never withdraws" in fields["advice"]
    assert emu.count("GET", "/sapi/v1/account/apiRestrictions") == 2
    # A failed check is a debug line, never an error and never retried.
    emu.inject_error(-1003, "Too much request weight used", path=(
        "/sapi/v1/account/apiRestrictions"), status=418)
    log = Events()
    warn_withdrawals(exchange, "live", log)
    [(level, fields)] = log.named("exchange.withdrawal_permission")
    assert level == "debug" and fields["known"] is False and "withdrawal check" in fields[
        "error"]
    assert emu.count("GET", "/sapi/v1/account/apiRestrictions") == 3


def test_demo_hosts_are_not_asked_and_okx_reads_its_account_config() -> None:
    from bot.service.venue import warn_withdrawals

    with BinanceEmulator(KEY, SECRET) as emu:
        exchange = adapter("binance", "demo", emu, frozenset(
            {"demo-api.binance.com", "demo-fapi.binance.com"}))
        log = Events()
        warn_withdrawals(exchange, "demo", log)
        exchange.close()
        assert emu.count() == 0  # Binance's demo hosts have no sapi: nothing asked
    assert log.named("exchange.withdrawal_permission")[0][1]["known"] is False
    with OkxEmulator(KEY, SECRET, PASSPHRASE) as okx:
        exchange = adapter("okx", "demo", okx, OKX_HOSTS)
        assert exchange.withdrawal_permission() is False
        okx.book.perm = "read_only,withdraw,trade"  # type: ignore[attr-defined]
        log = Events()
        warn_withdrawals(exchange, "demo", log)
        exchange.close()
    [(level, fields)] = log.named("exchange.withdrawal_permission")
    assert (level, fields["venue"], fields["enabled"]) == ("warning", "okx", True)


def test_start_up_on_a_venue_checks_the_withdrawal_permission(
        binance_live: tuple[BinanceEmulator, CcxtExchange],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``build_venue`` (the start-up check of every venue mode) runs it after the keys."""
    import bot.service.venue as venue
    from bot.config import load_settings, load_universe

    emu, _ = binance_live
    emu.book.enable_withdrawals = True  # type: ignore[attr-defined]
    monkeypatch.setattr(venue, "CcxtExchange", functools.partial(
        CcxtExchange, session_hook=lambda ex: route_to(ex, emu, hosts=frozenset(
            {"api.binance.com", "fapi.binance.com"})), rate_limit_ms=1))
    for key, value in {"MODE": "live", "EXCHANGE__NAME": "binance",
                       "EXCHANGE__API_KEY": KEY, "EXCHANGE__API_SECRET": SECRET,
                       "SIGNALS__DEFILLAMA": "false", "SIGNALS__GITHUB": "false",
                       "SIGNALS__COINGECKO": "false"}.items():
        monkeypatch.setenv(f"SECTORBOT__{key}", value)
    settings = load_settings(None)
    log = Events()
    setup = venue.build_venue(settings, load_universe(None), 30, log)
    setup.exchange.close()
    [(level, fields)] = log.named("exchange.withdrawal_permission")
    assert level == "warning" and fields["mode"] == "live"
    assert external_moves([r.path for r in emu.requests]) == []


# -- file modes and the container ---------------------------------------------------------------
def test_a_secrets_file_open_to_others_is_warned_about(tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text('secrets_file = "secrets.toml"\n')
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[exchange]\napi_key = "{KEY}"\n')
    secrets.chmod(0o600)
    assert secrets_file_warning(cfg) is None
    secrets.chmod(0o640)
    warning = secrets_file_warning(cfg)
    assert warning is not None and "its group" in warning and "0640" in warning
    assert f"chmod 600 {secrets}" in warning and KEY not in warning
    secrets.chmod(0o604)
    assert "other users" in (secrets_file_warning(cfg) or "")
    assert secrets_file_warning(None) is None
    cfg.write_text("")  # no secrets file: nothing to say
    assert secrets_file_warning(cfg) is None


def test_the_container_runs_as_a_non_root_user() -> None:
    text = (REPO / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0", "0:0")
    uid = re.search(r"useradd[^\n]*--uid\s+(\d+)", text)
    assert uid is not None and int(uid.group(1)) >= 1000
    # nothing after the last USER switches back
    assert "USER root" not in text.split(f"USER {users[-1]}")[-1]
    assert os.path.basename(users[-1]) == users[-1]


def test_the_lock_pins_every_dependency_and_ci_does_not_audit_over_the_network() -> None:
    """``requirements.lock`` (a constraints file) pins each dependency of ``.[dev]`` with
    ``==`` and names no index or URL; ``scripts/audit.sh`` needs the vulnerability services,
    so CI (``.ci/run``) does not call it."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    names = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-")
             for d in wanted}
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), line
            pins[name.lower().replace("_", "-")] = version
    assert names <= set(pins), sorted(names - set(pins))
    assert "sectorbot" not in pins
    assert "://" not in (REPO / "requirements.lock").read_text()
    assert "audit" not in (REPO / ".ci" / "run").read_text()
    assert os.access(REPO / "scripts" / "audit.sh", os.X_OK)
