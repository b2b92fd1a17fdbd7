"""Secrets scan (issue #17, Security): run the daemon with recognisable fake credentials of
every kind the config knows, force the errors that tend to carry them (refused keys, error
bodies that echo the signed request and the API-key header, providers and alert channels
answering 401/500 with the request echoed, a proxy that wants credentials), then look for
each secret, URL-encoded and base64 too, in everything the run left behind: every stdout and
stderr line, ``status`` (text and ``--json``), ``orders``, ``decisions``, ``check-config``,
``explain``, the SQLite store's bytes (every table, the WAL too) and a backtest's report.

The venue is the Binance emulator on loopback (``tests.demo_launcher``); the providers, the
alert channels and the proxy are small loopback servers defined here.
"""

from __future__ import annotations

import base64
import inspect
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

import pytest

from bot.config import ALERT_SECRET_FIELDS, SECRET_FIELDS, Settings
from tests.daemon_proc import env_for, events, named
from tests.demo_launcher import EMULATOR_ENV, NO_THROTTLE_ENV
from tests.exchange_emulator import BinanceEmulator
from tests.test_security import external_moves

KEY = "SCANkey7Rk2Lp9Xw4Tz8Vb3Nm6Hd1Fg5Js0Ac"
SECRET = "SCANsecretz9Yx8Wv7Ut6Sr5Qp4On3Ml2Kj1Ih"
PASSWORD = "scan-Passphrase+9/Q="
PROXY_USER, PROXY_PASSWORD = "scanproxyuser", "scan:proxy/pw+7="
GITHUB_TOKEN = "ghp_SCANgithubTokenR4nd0mV4lue0123456789"
GECKO_KEY = "CG-SCANgeckoKey7Hj3Kl9Pq2"
HOOK_PATH = "scanWebhookS3cretPathXyz"
TELEGRAM_TOKEN = "123456789:SCANtelegramTokenAAHdqTcvCH1vGWJxfSeof"
STATE_PASSWORD = "scan-pg-Pa55word!x"


def forms(value: str) -> set[str]:
    """A secret as it may be written: as is, percent-encoded, form-encoded, base64."""
    b64 = base64.b64encode(value.encode()).decode()
    return {value, quote(value, safe=""), quote_plus(value), b64, b64.rstrip("="),
            base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")}


SECRETS: dict[str, set[str]] = {
    "exchange.api_key": forms(KEY),
    "exchange.api_secret": forms(SECRET),
    "exchange.password": forms(PASSWORD),
    "exchange.https_proxy password": forms(PROXY_PASSWORD)
    | forms(f"{PROXY_USER}:{PROXY_PASSWORD}"),
    "signals.github_token": forms(GITHUB_TOKEN),
    "signals.coingecko_api_key": forms(GECKO_KEY),
    "alerts.webhook_url path": forms(HOOK_PATH),
    "alerts.telegram_bot_token": forms(TELEGRAM_TOKEN),
    "state.url password": forms(STATE_PASSWORD),
}


def hits(what: str, data: str | bytes) -> list[str]:
    blob = data.encode() if isinstance(data, str) else data
    return [f"{what}: {name} as {form!r}" for name, values in SECRETS.items()
            for form in sorted(values) if form.encode() in blob]


def test_the_scan_covers_every_secret_the_config_knows() -> None:
    """A secret field added to the config without a place in this scan fails here."""
    known = {f"exchange.{k}" for k in SECRET_FIELDS} | {"exchange.https_proxy", "state.url",
                                                        "signals.github_token",
                                                        "signals.coingecko_api_key"}
    known |= {f"alerts.{k}" for k in ALERT_SECRET_FIELDS}
    secret_fields = set()
    for section, field in Settings.model_fields.items():
        model = field.annotation
        for name, sub in getattr(model, "model_fields", {}).items():
            if "SecretStr" in str(sub.annotation):
                secret_fields.add(f"{section}.{name}")
    assert secret_fields == known
    scanned = {name.split()[0] for name in SECRETS}
    assert scanned == known


# -- loopback servers ----------------------------------------------------------------------------
class _Echo(BaseHTTPRequestHandler):
    """A provider or alert channel that refuses every request and echoes it back: the path
    (a Telegram token, a webhook's secret path) and every header (a bearer token, an API key
    header), the way an error page of a careless proxy or API gateway does."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status = 500 if self.path.startswith(("/bot", "/services")) else 401
        body = json.dumps({"message": "Bad credentials", "path": self.path,
                           "headers": dict(self.headers)}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


class _Proxy(BaseHTTPRequestHandler):
    """A proxy that wants other credentials: 407 to every CONNECT, echoing the
    ``Proxy-Authorization`` header it was sent (base64 of user:password)."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[str]] = []

    def do_CONNECT(self) -> None:
        sent = self.headers.get("Proxy-Authorization") or ""
        type(self).seen.append(sent)
        body = f"<html>407: credentials {sent} refused</html>".encode()
        self.send_response(407, f"Proxy Authentication Required ({sent})")
        self.send_header("Proxy-Authenticate", 'Basic realm="scan"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_CONNECT

    def log_message(self, *args: Any) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def echo() -> Iterator[str]:
    yield from _serve(_Echo)


@pytest.fixture
def proxy() -> Iterator[str]:
    _Proxy.seen = []
    yield from _serve(_Proxy)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proxy_url(base: str) -> str:
    return (f"http://{PROXY_USER}:{quote(PROXY_PASSWORD, safe='')}@"
            f"{base.removeprefix('http://')}")


def secret_env(echo: str, proxy: str) -> dict[str, str]:
    """Every secret the config knows, each at work where a loopback server can see it."""
    return {
        "SECTORBOT__EXCHANGE__API_KEY": KEY, "SECTORBOT__EXCHANGE__API_SECRET": SECRET,
        "SECTORBOT__EXCHANGE__PASSWORD": PASSWORD,
        "SECTORBOT__EXCHANGE__HTTPS_PROXY": proxy_url(proxy),
        "SECTORBOT__SIGNALS__GITHUB": "true", "SECTORBOT__SIGNALS__GITHUB_URL": echo,
        "SECTORBOT__SIGNALS__GITHUB_TOKEN": GITHUB_TOKEN,
        "SECTORBOT__SIGNALS__COINGECKO": "true", "SECTORBOT__SIGNALS__COINGECKO_URL": echo,
        "SECTORBOT__SIGNALS__COINGECKO_API_KEY": GECKO_KEY,
        "SECTORBOT__SIGNALS__ATTEMPTS": "1", "SECTORBOT__SIGNALS__MIN_INTERVAL_SECONDS": "0",
        "SECTORBOT__ALERTS__ENABLED": "true",
        "SECTORBOT__ALERTS__WEBHOOK_URL": f"{echo}/services/T0SCAN/B0SCAN/{HOOK_PATH}",
        "SECTORBOT__ALERTS__TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "SECTORBOT__ALERTS__TELEGRAM_CHAT_ID": "4242",
        "SECTORBOT__ALERTS__TELEGRAM_API_URL": echo,
        "SECTORBOT__ALERTS__ATTEMPTS": "1", "SECTORBOT__ALERTS__TIMEOUT_SECONDS": "3",
        "SECTORBOT__EXCHANGE__READ_ATTEMPTS": "2",
    }


def cli(args: list[str], cwd: Path, env: dict[str, str], launcher: bool = False,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    module = "tests.demo_launcher" if launcher else "bot"
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


_COMMANDS = """
import contextlib, io, json, sys
from bot.cli import main
out = {}
for args in json.loads(sys.argv[1]):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main([*args, "--config", sys.argv[2]])
        except SystemExit as exc:
            code = exc.code
    out[" ".join(args)] = [code, stdout.getvalue(), stderr.getvalue()]
print(json.dumps(out))
"""


def commands(cwd: Path, env: dict[str, str], argv: list[list[str]],
             cfg: Path) -> dict[str, tuple[int, str, str]]:
    """Operator commands, run one after another in one process (each as ``bot.cli.main``
    with its own stdout and stderr): one interpreter start instead of one per command."""
    done = subprocess.run([sys.executable, "-c", _COMMANDS, json.dumps(argv), str(cfg)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert hits("commands stderr", done.stderr) == []
    return {k: (v[0], v[1], v[2]) for k, v in json.loads(done.stdout).items()}


def outputs(what: str, proc: subprocess.CompletedProcess[str]) -> list[str]:
    return hits(f"{what} stdout", proc.stdout) + hits(f"{what} stderr", proc.stderr)


def store_hits(state: Path) -> list[str]:
    """The store's bytes (main file, WAL, shared memory, owner lock) and every table's rows."""
    found: list[str] = []
    for path in sorted(state.parent.glob(state.name + "*")):
        found += hits(path.name, path.read_bytes())
    import sqlite3

    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
            found += hits(f"table {table}", repr(rows))
    assert len(tables) >= 5, tables
    return found


def from_call(n: int) -> Any:
    """A fault predicate that lets the first ``n - 1`` matching requests through and fires
    once, on the ``n``-th."""
    seen = {"calls": 0}

    def when(params: dict[str, str]) -> bool:
        seen["calls"] += 1
        return seen["calls"] == n

    return when


# -- the runs ------------------------------------------------------------------------------------
@pytest.mark.process
def test_a_demo_run_with_forced_errors_leaks_no_secret(tmp_path: Path, echo: str,
                                                       proxy: str) -> None:
    cfg = tmp_path / "demo.toml"
    cfg.write_text('mode = "demo"\n\n[exchange]\nname = "binance"\n')
    state = tmp_path / "state.sqlite3"
    with BinanceEmulator(KEY, SECRET) as emu:
        # Start-up (markets, both wallets, reconcile) goes through; later calls misbehave.
        emu.inject_echo(400, path="/api/v3/account", code=-1100, when=from_call(2))
        emu.inject_error(-2015, "Invalid API-key, IP, or permissions for action.",
                         path="/fapi/v3/positionRisk", status=401, when=from_call(3))
        emu.inject_error(-1022, "Signature for this request is not valid.",
                         path="/api/v3/openOrders", when=from_call(3))
        emu.inject_echo(502, path="/fapi/v1/openAlgoOrders", html=True, when=from_call(3))
        emu.inject_echo(400, method="POST", path="/api/v3/order", code=-1013,
                        when=from_call(1))
        env = env_for(state, **secret_env(echo, proxy),
                      **{EMULATOR_ENV: emu.base_url, NO_THROTTLE_ENV: "1"})
        # The providers go out through the proxy too (a 407 there is the next test's): here
        # they reach the echoing server, which sends their tokens back in its 401 bodies.
        del env["SECTORBOT__EXCHANGE__HTTPS_PROXY"]
        env["SECTORBOT__EXCHANGE__READ_ATTEMPTS"] = "1"
        env["SECTORBOT__EXCHANGE__AUTO_TRANSFER"] = "true"  # on: still no transfer in demo
        run = cli(["run", "--once", "--config", str(cfg)], tmp_path, env, launcher=True)
        recorded = list(emu.requests)
    evs = events(run.stdout)  # every stdout line is JSON
    assert named(evs, "daemon.started"), run.stderr
    assert named(evs, "daemon.stopped"), run.stdout[-2000:] + run.stderr
    errors = " ".join(json.dumps(e) for e in evs if e["level"] in ("warning", "error"))
    # the forced errors happened, and their texts were logged (scrubbed)
    assert "-2015" in errors or "Invalid API-key" in errors, errors[:3000]
    assert "Illegal request" in errors and "Bad Gateway" in errors, errors[:3000]
    assert named(evs, "decision.made") and named(evs, "order.rejected")
    assert any(r.api_key == KEY for r in recorded)  # the key did travel, in its header
    # No withdrawal, no transfer of any kind (tests/test_security.py)
    assert len(recorded) > 20 and external_moves([r.path for r in recorded]) == []
    assert not any(r.path.startswith("/sapi/") for r in recorded)  # demo hosts have none
    for path in state.parent.glob(state.name + "*"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    found = outputs("run", run)
    env["SECTORBOT__EXCHANGE__HTTPS_PROXY"] = proxy_url(proxy)  # shown masked, if at all
    for name, (code, out, err) in commands(tmp_path, env, [
            ["status"], ["status", "--json"], ["orders"], ["decisions"], ["check-config"],
            ["explain"]], cfg).items():
        assert code in (0, 3), (name, err)
        assert out.strip(), name
        found += hits(f"{name} stdout", out) + hits(f"{name} stderr", err)
    found += store_hits(state)
    assert found == []


@pytest.mark.process
def test_refused_keys_at_start_leak_no_secret(tmp_path: Path, echo: str, proxy: str,
                                              request: pytest.FixtureRequest) -> None:
    """-2015 at the first signed read (a wrong key), on PostgreSQL when the test server is
    there so the state URL carries a password (trust auth ignores it), else on SQLite."""
    cfg = tmp_path / "demo.toml"
    cfg.write_text('mode = "demo"\n\n[exchange]\nname = "binance"\n')
    extra: dict[str, str] = {}
    try:
        from tests.pg_server import session_server

        url = session_server(request.config).fresh_url()
        password = quote(STATE_PASSWORD, safe="")
        extra["SECTORBOT__STATE__URL"] = url.replace("postgres@", f"postgres:{password}@", 1)
    except (pytest.skip.Exception, RuntimeError):
        pass
    with BinanceEmulator("another-key-entirely", SECRET) as emu:
        env = env_for(tmp_path / "state.sqlite3", **secret_env(echo, proxy),
                      **{EMULATOR_ENV: emu.base_url, NO_THROTTLE_ENV: "1"}, **extra)
        run = cli(["run", "--once", "--config", str(cfg)], tmp_path, env, launcher=True)
        assert emu.count("POST") == 0
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("config error: exchange.api_key:"), run.stderr
    assert "-2015" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    found = outputs("refused run", run)
    check = cli(["check-config", "--config", str(cfg)], tmp_path, env)
    assert check.returncode == 0, check.stderr
    shown = json.loads(check.stdout)
    assert shown["exchange"]["https_proxy"] == "**********"
    if extra:
        assert shown["state"]["url"] == "**********"
    assert found + outputs("check-config", check) == []


@pytest.mark.process
def test_a_proxy_that_wants_credentials_leaks_none(tmp_path: Path, proxy: str) -> None:
    """No emulator: the venue's host is reached through the configured proxy only, which
    answers 407 (echoing the credentials it got); the start fails without a secret shown."""
    cfg = tmp_path / "demo.toml"
    cfg.write_text('mode = "demo"\nsecrets_file = "secrets.toml"\n\n[exchange]\n'
                   'name = "binance"\n')
    secrets = tmp_path / "secrets.toml"  # left readable by all: warned, and the run goes on
    secrets.write_text(f'[exchange]\napi_key = "{KEY}"\napi_secret = "{SECRET}"\n'
                       f'https_proxy = "{proxy_url(proxy)}"\n')
    secrets.chmod(0o644)
    env = env_for(tmp_path / "state.sqlite3", SECTORBOT__EXCHANGE__READ_ATTEMPTS="1")
    run = cli(["run", "--once", "--config", str(cfg)], tmp_path, env)
    assert run.returncode == 1, run.stderr
    assert "start-up failed" in run.stderr
    [warned] = named(events(run.stdout), "config.secrets_file_mode")
    assert warned["level"] == "warning" and "chmod 600" in warned["detail"]
    assert _Proxy.seen and all(s.startswith("Basic ") for s in _Proxy.seen)
    assert outputs("proxy run", run) == []


def test_proxy_errors_in_exception_texts_carry_no_credentials(proxy: str) -> None:
    """The adapter's error texts for a proxy that refuses the connection and for one that
    answers 407, raised in-process (what the daemon logs is built from these)."""
    from bot.exchange.ccxt_exchange import CcxtExchange, RetryPolicy
    from bot.exchange.port import ExchangeError

    texts = []
    for url in (proxy_url(proxy), proxy_url(f"http://127.0.0.1:{_closed_port()}")):
        exchange = CcxtExchange("binance", "demo", api_key=KEY, api_secret=SECRET,
                                tokens=["BTC"], https_proxy=url, timeout_ms=3000,
                                retry=RetryPolicy(read_attempts=1))
        with pytest.raises(ExchangeError) as caught:
            exchange.fetch_balances()
        exchange.close()
        texts.append(str(caught.value))
        texts += [repr(caught.value), repr(exchange)]
    joined = "\n".join(texts)
    assert _Proxy.seen, "the 407 proxy was never asked"
    assert hits("exception", joined) == []


@pytest.mark.process
def test_a_backtest_report_carries_no_secret(tmp_path: Path, echo: str, proxy: str) -> None:
    env = env_for(tmp_path / "state.sqlite3", **secret_env(echo, proxy))
    for key in ("SECTORBOT__ALERTS__ENABLED",):
        env.pop(key)
    out = tmp_path / "report"
    done = cli(["backtest", "--out", str(out), "--start", "2024-03-01", "--end",
                "2024-03-31"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"report.html", "metrics.json"}
    found = outputs("backtest", done)
    for path in files:
        found += hits(path.name, path.read_bytes())
    assert found == []


def test_an_uncaught_traceback_is_printed_with_the_secrets_masked(tmp_path: Path) -> None:
    """Regression: ``sectorbot run --once`` whose cycle met a venue error ended with Python's
    own traceback on stderr, and its chained ccxt error quoted the venue's answer, API key
    included (an error page echoing the request). Tracebacks nothing caught (main thread or
    another thread) now print through the secret scrubber, like the log."""
    script = (
        "import sys, threading\n"
        "from bot.logs import install_scrubbing_excepthooks, register_secrets\n"
        "key = sys.argv[1]\n"
        "register_secrets([key])\n"
        "install_scrubbing_excepthooks()\n"
        "def venue_error():\n"
        "    try:\n"
        "        raise ValueError('502 <pre>X-MBX-APIKEY=' + key + '</pre>')\n"
        "    except ValueError as exc:\n"
        "        raise RuntimeError('fetch_balance failed 1 times') from exc\n"
        "thread = threading.Thread(target=venue_error, name='worker')\n"
        "thread.start(); thread.join()\n"
        "venue_error()\n")
    done = subprocess.run([sys.executable, "-c", script, KEY], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Exception in thread worker" in done.stderr
    assert done.stderr.count("X-MBX-APIKEY=**********") == 2, done.stderr
    assert "fetch_balance failed 1 times" in done.stderr
    assert hits("traceback", done.stderr) == []
    from bot.cli import entry
    from bot.logs import install_scrubbing_excepthooks

    assert "install_scrubbing_excepthooks()" in inspect.getsource(entry)
    assert install_scrubbing_excepthooks is not None
