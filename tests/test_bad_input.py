"""Bad configuration input exits 2 with one ``config error:`` line per problem, naming the
thing and what to do, never a traceback and never a secret (issue #17, the README's promise).

Each case here used to end in a traceback (exit 1) or be accepted silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, load_settings, load_universe
from tests import unprivileged


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in [k for k in os.environ if k.startswith("SECTORBOT__")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SECTORBOT__STATE__PATH", str(tmp_path / "state" / "s.sqlite3"))


def config_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run the CLI in-process; it must exit 2 with only ``config error:`` lines."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("config error: ") for line in lines), err
    assert "Traceback" not in err
    return lines


def write(tmp_path: Path, text: str | bytes, name: str = "c.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# -- the config file itself ---------------------------------------------------------------

def test_a_directory_as_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = config_errors(["check-config", "--config", str(tmp_path)], capsys)
    assert lines == [f"config error: config: {tmp_path} is a directory; give the path of a "
                     "TOML file"]


def test_a_missing_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = config_errors(["run", "--once", "--config", str(tmp_path / "nope.toml")], capsys)
    assert lines == [f"config error: config: file not found: {tmp_path / 'nope.toml'}"]
    assert not (tmp_path / "state").exists()


def test_non_utf8_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, b'mode = "p\xe4per"\n')
    lines = config_errors(["check-config", "--config", str(path)], capsys)
    assert lines == [f"config error: config: {path} is not UTF-8 text (byte 0xe4 at offset "
                     "9); save it as UTF-8"]


def test_invalid_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "mode =\n")
    lines = config_errors(["check-config", "--config", str(path)], capsys)
    assert len(lines) == 1 and "is not valid TOML: Invalid value (at line 1" in lines[0]


def test_an_unreadable_config() -> None:
    with unprivileged.workdir() as work:
        path = work / "c.toml"
        path.write_text('mode = "paper"\n')
        unprivileged.give(path)
        path.chmod(0o000)
        done = unprivileged.run(["check-config", "--config", str(path)], work)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"config error: config: cannot read {path}: permission denied; make it readable by "
        f"this user (uid {os.geteuid() or unprivileged.NOBODY})"]


@pytest.mark.parametrize("key", ["_env_prefix", "_cli_parse_args", "_secrets_dir"])
def test_pydantic_settings_init_options_are_unknown_keys(key: str, tmp_path: Path) -> None:
    """``_cli_parse_args = true`` in a file made pydantic-settings parse sys.argv."""
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, f'{key} = "X"\n'))
    assert err.value.lines == [f"{key}: unknown key"]


def test_secrets_file_must_be_a_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, "secrets_file = 5\n"))
    assert err.value.lines[0].startswith("secrets_file: expected a file name")


# -- the environment ----------------------------------------------------------------------

def test_a_section_set_to_a_scalar_in_the_environment(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SECTORBOT__RISK", "xyz")
    lines = config_errors(["check-config"], capsys)
    assert lines == ["config error: risk: cannot decode SECTORBOT__RISK from the environment; "
                     "set one key per variable (SECTORBOT__RISK__KEY=value) and give lists as "
                     "JSON ([7, 14])"]


def test_an_undecodable_env_section_never_echoes_its_value(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SECTORBOT__EXCHANGE", '{"api_key": "AKIA-very-secret", ')
    err = "\n".join(config_errors(["check-config"], capsys))
    assert "SECTORBOT__EXCHANGE" in err and "AKIA-very-secret" not in err


@pytest.mark.parametrize(("name", "value", "field"), [
    ("SECTORBOT__RISK__MAX_LEVERAGE", "abc", "risk.max_leverage"),
    ("SECTORBOT__STRATEGY__MOMENTUM_LOOKBACKS", "[7, 14", "strategy.momentum_lookbacks"),
    ("SECTORBOT__MODE", "moon", "mode"),
    ("SECTORBOT__REPLAY__START", "yesterday", "replay.start"),
])
def test_malformed_env_values_name_the_field(name: str, value: str, field: str,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(name, value)
    lines = config_errors(["check-config"], capsys)
    assert any(line.startswith(f"config error: {field}") for line in lines), lines


# -- credentials in URLs ------------------------------------------------------------------

@pytest.mark.parametrize(("section", "key", "url"), [
    ("state", "url", "postgresql+psycopg://bot:Pa55-w0rd@db.internal/sectorbot"),
    ("state", "url", "postgresql+psycopg://bot@db.internal/sectorbot?password=Pa55-w0rd"),
    ("exchange", "https_proxy", "http://svc:Pa55-w0rd@proxy.corp:3128"),
    ("exchange", "https_proxy", "http://Pa55-w0rd@proxy.corp:3128"),
])
def test_credentials_in_a_url_are_refused_in_the_file(section: str, key: str, url: str,
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """The file is meant to be committed: like the exchange keys, a password in a URL comes
    from the environment or the secrets file, and the refusal does not echo it."""
    path = write(tmp_path, f'[{section}]\n{key} = "{url}"\n')
    lines = config_errors(["check-config", "--config", str(path)], capsys)
    env = f"SECTORBOT__{section.upper()}__{key.upper()}"
    assert lines == [f"config error: {section}.{key}: a URL with credentials is refused in "
                     f"the config file; set {env} or put it in a secrets_file"]
    assert "Pa55-w0rd" not in "".join(lines)


def test_credentials_in_a_url_are_fine_from_env_or_secrets_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, '[exchange]\nhttps_proxy = "http://svc:Pa55-w0rd@proxy.corp:3128"\n',
          "secrets.toml")
    settings = load_settings(write(tmp_path, 'secrets_file = "secrets.toml"\n'))
    assert settings.exchange.https_proxy is not None
    monkeypatch.setenv("SECTORBOT__STATE__URL", "postgresql://bot:Pa55-w0rd@db/s")
    assert load_settings(write(tmp_path, "[state]\n")).state.url is not None
    # A user name alone is not a secret, and a proxy without credentials is plain config.
    plain = load_settings(write(tmp_path, '[state]\nurl = "postgresql://bot@db/s"\n'
                                          '[exchange]\nhttps_proxy = "http://proxy:3128"\n'))
    assert plain.state.url is not None and plain.exchange.https_proxy is not None


def test_a_proxy_of_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, '[exchange]\nhttps_proxy = ["Pa55-w0rd"]\n'))
    assert "Pa55-w0rd" not in str(err.value)


# -- the universe file --------------------------------------------------------------------

UNIVERSE_CASES = [
    ('[core]\ntokens = ["BTC"]\n[sectors.X]\ntokens = 5\n', "sectors.X.tokens: expected a list"),
    ('sectors = 5\n[core]\ntokens = ["BTC"]\n', "sectors: expected a table"),
    ('[core]\ntokens = ["BTC"]\n[sectors.X]\ntokens = [1, 2]\n',
     "sectors.X.tokens: expected a list"),
    ('[core]\ntokens = ["BTC"]\n[sectors]\nX = 5\n', "sectors.X: expected a table"),
    ('core = 5\n', "core: expected a table"),
    ('[core]\ntokens = "BTC"\n', "core.tokens: expected a list"),
    ('[core]\ntokens = ["BTC"]\n[tokens]\nBTC = 5\n', "tokens.BTC: expected a table"),
    ('tokens = 5\n[core]\ntokens = ["BTC"]\n', "tokens: expected a table"),
    ('[core]\ntokens = ["BTC"]\n[tokens.BTC]\nspot = "no"\n', "tokens.BTC.spot: expected true"),
    ('[core]\ntokens = ["BTC"]\n[tokens.BTC]\nformer_symbols = 5\n',
     "tokens.BTC.former_symbols: expected a list"),
    ('[core]\ntokens = ["BTC"]\n[sectors.X]\nbucket = 5\ntokens = ["SOL"]\n',
     "sectors.X.bucket: must be rotational or speculative"),
    ('[core]\ntokens = ["BTC"]\n[sectors.X]\ncycle_stage = "one"\ntokens = ["SOL"]\n',
     "sectors.X.cycle_stage: expected a whole number"),
    ('[core]\ntokens = ["BTC"]\n[sectors.X]\ntokenz = ["SOL"]\n', "sectors.X.tokenz: unknown key"),
    ('[core]\ntokens = ["BTC"]\n[sectors.X.defillama]\nchains = 5\n',
     "sectors.X.defillama.chains: expected a list of names"),
]


@pytest.mark.parametrize(("text", "expected"), UNIVERSE_CASES)
def test_a_malformed_universe_names_the_key(text: str, expected: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, text, "sectors.toml")
    config = write(tmp_path, 'universe_file = "sectors.toml"\n')
    lines = config_errors(["check-config", "--config", str(config)], capsys)
    assert any(line.startswith(f"config error: {expected}") for line in lines), lines


def test_the_daemon_refuses_a_malformed_universe_without_writing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, '[core]\ntokens = ["BTC", "ETH"]\n[sectors.X]\ntokens = 5\n', "sectors.toml")
    config = write(tmp_path, 'universe_file = "sectors.toml"\n')
    lines = config_errors(["run", "--once", "--config", str(config)], capsys)
    assert lines == ['config error: sectors.X.tokens: expected a list of names such as '
                     '["SOL", "AVAX"]']
    assert not (tmp_path / "state").exists()


def test_check_config_reads_the_universe_file(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """It used to accept a universe_file that does not exist; `run` then refused it."""
    config = write(tmp_path, 'universe_file = "missing.toml"\n')
    lines = config_errors(["check-config", "--config", str(config)], capsys)
    assert lines == [f"config error: universe_file: file not found: {tmp_path / 'missing.toml'}"]


def test_the_shipped_universe_still_loads() -> None:
    universe = load_universe(None)
    assert [t.symbol for t in universe.core] == ["BTC", "ETH"]
    assert len(universe.sectors) >= 5


# -- command-line paths -------------------------------------------------------------------

@pytest.mark.parametrize("command", ["backtest", "evidence"])
def test_a_missing_data_dir_names_the_flag(command: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-data"
    lines = config_errors([command, "--out", str(tmp_path / "out"), "--data-dir", str(missing)],
                          capsys)
    assert lines == [f"config error: --data-dir: {missing} does not exist; give a replay data "
                     "directory (docs/data-format.md)"]
    assert not (tmp_path / "out").exists()


def test_optimize_names_a_missing_space(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    lines = config_errors(["optimize", "--space", str(tmp_path / "nope.toml"), "--trials", "2",
                           "--out", str(tmp_path / "out")], capsys)
    assert len(lines) == 1 and lines[0].startswith("config error: space: cannot read")


def test_the_entry_point_exits_2_without_a_traceback(tmp_path: Path) -> None:
    """The installed command end to end, on input that used to raise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECTORBOT__")}
    env["SECTORBOT__RISK"] = "xyz"
    cases = [(["check-config", "--config", str(tmp_path)], {}),
             (["run", "--once"], {"SECTORBOT__RISK": "xyz"}),
             (["run", "--once"], {"SECTORBOT__STATE__URL": "foo://bar"})]
    for args, extra in cases:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SECTORBOT__")}
        done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path,
                              env={**base, **extra}, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("config error: "), done.stderr
    assert not (tmp_path / "state").exists()


def test_an_echoed_value_never_shows_url_credentials(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the fuzz test: a URL with a token as its user name, mistyped under a key that
    echoes its value (``mode``), printed the token in ``(got ...)``."""
    monkeypatch.setenv("SECTORBOT__PAPER__STARTING_CASH", "postgresql://u@h/db?password=pw9")
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, 'mode = "https://ghp-T0KEN@github.com/x"\n'))
    text = "\n".join(err.value.lines)
    assert "mode: Input should be" in text and "https://***@github.com/x" in text
    assert "ghp-T0KEN" not in text and "pw9" not in text
