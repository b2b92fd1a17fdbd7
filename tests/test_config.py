"""Config loading and validation: bad input gets one clear line per field, exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, load_settings, load_universe

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_defaults_are_paper_mode() -> None:
    s = load_settings(None)
    assert s.mode == "paper"
    assert s.exchange.name == "paper"
    assert s.risk.max_leverage == 3.0


def test_shipped_default_file_equals_builtin_defaults() -> None:
    """config/default.toml documents the defaults; it must not drift from the code."""
    from_file = load_settings(REPO / "config" / "default.toml").model_dump()
    builtin = load_settings(None).model_dump()
    # The file states paths relative to itself; compare the rest exactly.
    for d in (from_file, builtin):
        d["state"].pop("path")
        d.pop("universe_file")
    assert from_file == builtin


def test_packaged_universe_is_the_documented_one() -> None:
    packaged = (REPO / "bot" / "defaults" / "sectors.toml").read_bytes()
    assert packaged == (REPO / "config" / "sectors.toml").read_bytes()
    u = load_universe(None)
    assert [t.symbol for t in u.core] == ["BTC", "ETH"]
    assert u.token("POL").former_symbols == ("MATIC",)
    assert u.token("XMR").spot is False


@pytest.mark.parametrize("leverage", [5.01, 6, 10, 100])
def test_leverage_above_five_is_refused(tmp_path: Path, leverage: float) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, f"[risk]\nmax_leverage = {leverage}\n"))
    assert any(line.startswith("risk.max_leverage:") for line in err.value.lines)
    assert "less than or equal to 5" in err.value.lines[0]


def test_each_bad_field_gets_its_own_line(tmp_path: Path) -> None:
    path = write(tmp_path, """
mode = "paper"
bogus = 1
[risk]
max_leverage = "lots"
stop_loss_pct = -1
[replay]
step_days = 0
""")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    fields = sorted(line.split(":")[0] for line in err.value.lines)
    assert fields == ["bogus", "replay.step_days", "risk.max_leverage", "risk.stop_loss_pct"]
    assert any("unknown key" in line for line in err.value.lines)


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECTORBOT__RISK__MAX_LEVERAGE", "2")
    s = load_settings(write(tmp_path, "[risk]\nmax_leverage = 3\n"))
    assert s.risk.max_leverage == 2.0


def test_env_above_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECTORBOT__RISK__MAX_LEVERAGE", "7")
    with pytest.raises(ConfigError) as err:
        load_settings(None)
    assert err.value.lines[0].startswith("risk.max_leverage:")


def test_secrets_in_config_file_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[exchange]\napi_key = "abc123456"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.lines[0].startswith("exchange.api_key: secrets are refused")
    assert "abc123456" not in str(err.value)


def test_secrets_file_and_masking(tmp_path: Path) -> None:
    write(tmp_path, '[exchange]\napi_key = "KEY-1234567"\napi_secret = "SEC-7654321"\n',
          "secrets.toml")
    path = write(tmp_path, 'mode = "demo"\nsecrets_file = "secrets.toml"\n'
                           '[exchange]\nname = "binance"\n')
    s = load_settings(path)
    assert s.exchange.api_key is not None
    assert s.exchange.api_key.get_secret_value() == "KEY-1234567"
    public = str(s.public_dict())
    assert "KEY-1234567" not in public and "SEC-7654321" not in public
    assert "KEY-1234567" not in repr(s)


def test_a_proxy_url_with_credentials_is_a_secret(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Corporate proxies carry passwords: masked in reprs, scrubbed from logs."""
    url = "http://svc-user:pr0xy-pa55word@proxy.corp.invalid:3128"
    monkeypatch.setenv("SECTORBOT__EXCHANGE__HTTPS_PROXY", url)
    s = load_settings(write(tmp_path, 'mode = "paper"\n'))
    assert s.exchange.https_proxy is not None
    assert s.exchange.https_proxy.get_secret_value() == url
    assert "pr0xy-pa55word" not in repr(s) and "pr0xy-pa55word" not in str(s.public_dict())
    assert {url, "pr0xy-pa55word"} <= set(s.secret_values())


def test_non_paper_mode_needs_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, 'mode = "testnet"\n[exchange]\nname = "bybit"\n'))
    assert any(line.startswith("exchange.api_key") or "api_key" in line
               for line in err.value.lines)


def test_cli_exits_2_and_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    state = tmp_path / "state.sqlite3"
    path = write(tmp_path, f'[risk]\nmax_leverage = 10\n[state]\npath = "{state}"\n')
    assert main(["run", "--once", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "risk.max_leverage" in err
    assert not state.exists(), "nothing may be written when the config is invalid"


def test_live_mode_refused_without_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECTORBOT__EXCHANGE__API_KEY", "k" * 16)
    monkeypatch.setenv("SECTORBOT__EXCHANGE__API_SECRET", "s" * 16)
    path = write(tmp_path, 'mode = "live"\n[exchange]\nname = "binance"\n')
    assert main(["run", "--once", "--config", str(path)]) == 2
    assert "--i-understand-live-trading" in capsys.readouterr().err


def test_universe_errors_name_the_token(tmp_path: Path) -> None:
    path = write(tmp_path, """
[core]
tokens = ["BTC"]
[sectors.L1]
bucket = "rotational"
tokens = ["SOL", "BTC"]
[tokens.SOL]
listed = "yesterday"
color = "red"
""")
    with pytest.raises(ConfigError) as err:
        load_universe(path)
    text = "\n".join(err.value.lines)
    assert "tokens.SOL.color: unknown key" in text
    assert "tokens.SOL.listed" in text
    assert "BTC is listed twice" in text


def test_strategy_typos_and_bad_values_name_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "[strategy]\ndrift_bandd = 0.02\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.lines == ["strategy.drift_bandd: unknown key"]
    path = write(tmp_path, "[strategy]\ncore_min = 0.7\ncore_max = 0.6\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.lines[0].startswith("strategy:") and "core_min" in err.value.lines[0]


def test_strategy_max_leverage_follows_the_risk_cap(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "[risk]\nmax_leverage = 2.5\n"))
    assert s.strategy.max_leverage == 2.5
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, "[strategy]\nmax_leverage = 2\n"))
    assert "risk.max_leverage" in err.value.lines[0]
