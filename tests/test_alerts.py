"""Operator alerts (issue #16): a webhook and Telegram on loopback receive what the daemon's
log events say (kill switch, stop-out, start, stop), sending never slows a cycle, a failing
notifier is retried then dropped, duplicates are rate-limited, and the webhook URL and bot
token are secrets: refused in the config file, masked, never in a log line or the store.

The webhook and the Telegram API are one stdlib HTTP server on loopback; the daemon is the
paper daemon in-process on the bundled data (a few replayed days), and once as
``sectorbot run --cycles`` for the command's own wiring.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, load_settings
from bot.logs import configure_logging, get_logger
from bot.service.alerts import Alert, AlertObserver, Notifier
from bot.service.daemon import Daemon
from tests.daemon_proc import events, run_cli

HOOK_SECRET = "hooksecret-T0KEN-abcdef123456"
BOT_TOKEN = "123456:AAbotTokenSecret-xyz987654"
CHAT = "-100424242"


class Loopback:
    """Records every POST; ``mode`` is ``ok``, ``stall`` (answers after ``release`` or 10 s)
    or ``fail`` (HTTP 500)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.mode = "ok"
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.received.append((self.path, body))
                if outer.mode == "stall":
                    outer.release.wait(10)
                code = 500 if outer.mode == "fail" else 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def texts(self) -> list[str]:
        return [body.get("text", "") for _, body in self.received]

    def wait_for(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Loopback]:
    server = Loopback()
    try:
        yield server
    finally:
        server.close()


def alert_env(hook: Loopback, **extra: str) -> dict[str, str]:
    return {"SECTORBOT__ALERTS__ENABLED": "true",
            "SECTORBOT__ALERTS__WEBHOOK_URL": f"{hook.base}/hooks/{HOOK_SECRET}",
            "SECTORBOT__ALERTS__TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "SECTORBOT__ALERTS__TELEGRAM_CHAT_ID": CHAT,
            "SECTORBOT__ALERTS__TELEGRAM_API_URL": hook.base,
            "SECTORBOT__ALERTS__RETRY_WAIT_SECONDS": "0.01",
            "SECTORBOT__SIGNALS__DEFILLAMA": "false", "SECTORBOT__SIGNALS__GITHUB": "false",
            **extra}


def settings_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    for key in [k for k in os.environ if k.startswith("SECTORBOT__")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SECTORBOT__STATE__PATH", str(tmp_path / "state.sqlite3"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings(None)


def run_daemon(settings: Any, cycles: int, wait: float = 5.0) -> tuple[str, list[float]]:
    """The paper daemon in-process with alerts; (its log, each cycle's seconds)."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = get_logger()
    alerts = AlertObserver(settings.alerts, log, settings.mode)
    daemon = Daemon(settings, log, observer=alerts)
    seconds: list[float] = []
    try:
        for _ in range(cycles):
            started = time.monotonic()
            assert daemon.step()
            seconds.append(time.monotonic() - started)
    finally:
        daemon.shutdown()
        alerts.close(wait)
    return out.getvalue(), seconds


def test_a_tripped_kill_switch_reaches_the_webhook_and_telegram(
        hook: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(tmp_path, monkeypatch, alert_env(
        hook, SECTORBOT__REPLAY__START="2021-03-08", SECTORBOT__RISK__MAX_DRAWDOWN_PCT="1"))
    log, _ = run_daemon(settings, cycles=5)
    webhook = [body for path, body in hook.received if path == f"/hooks/{HOOK_SECRET}"]
    telegram = [body for path, body in hook.received if path == f"/bot{BOT_TOKEN}/sendMessage"]
    assert len(webhook) == len(telegram) == len(hook.received) // 2
    assert all(body["text"] == body["content"] for body in webhook)  # Slack and Discord
    assert all(body["chat_id"] == CHAT for body in telegram)
    texts = [body["text"] for body in webhook]
    assert texts[0] == "[sectorbot paper] Daemon started (paper on paper)."
    assert any("KILL SWITCH TRIPPED: drawdown" in t and "sectorbot resume" in t for t in texts)
    assert texts[-1] == "[sectorbot paper] Daemon stopped cleanly."
    assert [e["event"] for e in map(json.loads, log.splitlines())][-1] == "daemon.stopped"
    for secret in (HOOK_SECRET, BOT_TOKEN):
        assert secret not in log
        assert secret.encode() not in (tmp_path / "state.sqlite3").read_bytes()


def test_a_stop_out_is_alerted_once_per_token_within_the_repeat_window(
        hook: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = alert_env(hook, SECTORBOT__REPLAY__START="2021-03-01",
                    SECTORBOT__RISK__STOP_LOSS_PCT="0.5")
    del env["SECTORBOT__ALERTS__TELEGRAM_BOT_TOKEN"]  # the webhook alone
    settings = settings_for(tmp_path, monkeypatch, env)
    log, _ = run_daemon(settings, cycles=12)
    stops = [t for t in hook.texts() if "Stop-out on" in t]
    assert stops, hook.texts()
    triggered = [json.loads(line) for line in log.splitlines()
                 if '"stoploss.triggered"' in line]
    assert len(stops) == len({e["token"] for e in triggered})  # one per token


def test_a_stalled_notifier_does_not_slow_a_cycle(
        hook: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notifier answers after 10 s; each cycle (a trip and its alerts among them) still
    takes its usual fraction of a second, and the stop gives up on the queue when told."""
    hook.mode = "stall"
    settings = settings_for(tmp_path, monkeypatch, alert_env(
        hook, SECTORBOT__REPLAY__START="2021-03-08", SECTORBOT__RISK__MAX_DRAWDOWN_PCT="1",
        SECTORBOT__ALERTS__TIMEOUT_SECONDS="30"))
    started = time.monotonic()
    log, seconds = run_daemon(settings, cycles=5, wait=0.2)
    assert time.monotonic() - started < 5
    assert max(seconds) < 1.5, seconds
    assert '"killswitch.tripped"' in log
    assert len(hook.received) == 1  # the start alert, still waiting for its answer


def test_a_failing_notifier_is_retried_then_the_alert_dropped(hook: Loopback) -> None:
    from bot.config import AlertSettings

    hook.mode = "fail"
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    settings = AlertSettings(enabled=True, webhook_url=f"{hook.base}/hooks/{HOOK_SECRET}",
                             attempts=3, retry_wait_seconds=0.01)
    notifier = Notifier(settings, get_logger())
    try:
        notifier.submit(Alert("killswitch", "tripped"))
        deadline = time.monotonic() + 10
        while notifier.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(hook.received) == 3 and notifier.failed == 1 and notifier.sent == 0
        hook.mode = "ok"
        notifier.submit(Alert("stop:ETH", "stop-out"))  # the next alert goes out
        hook.wait_for(4)
        assert hook.received[-1][1]["text"].endswith("stop-out")
    finally:
        notifier.close(1)
    (failed,) = [json.loads(line) for line in out.getvalue().splitlines()
                 if '"alert.failed"' in line]
    assert failed["attempts"] == 3 and "HTTP 500" in failed["error"]
    assert HOOK_SECRET not in out.getvalue()


def test_an_error_page_echoing_the_webhook_path_never_reaches_the_log() -> None:
    """Review finding: a host or proxy answering 404 with ``Cannot POST <path>`` put the
    webhook's secret path into ``alert.failed`` (the scrubber knew only the whole URL)."""
    import httpx

    from bot.config import AlertSettings

    secret = "T0ECHO/B0ECHO/s3cretEchoedPath42"
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    settings = AlertSettings(enabled=True,
                             webhook_url=f"https://hooks.invalid/services/{secret}",
                             attempts=1, retry_wait_seconds=0.01)
    notifier = Notifier(settings, get_logger(), transport=httpx.MockTransport(
        lambda request: httpx.Response(404, text=f"Cannot POST {request.url.path}")))
    try:
        notifier.submit(Alert("killswitch", "tripped"))
        deadline = time.monotonic() + 10
        while notifier.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        notifier.close(1)
    assert notifier.failed == 1
    assert '"alert.failed"' in out.getvalue() and "HTTP 404" in out.getvalue()
    assert "s3cretEchoedPath42" not in out.getvalue()


def test_duplicates_are_rate_limited_and_a_full_queue_drops_the_oldest(
        hook: Loopback) -> None:
    from bot.config import AlertSettings

    hook.mode = "stall"
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    settings = AlertSettings(enabled=True, webhook_url=f"{hook.base}/h/{HOOK_SECRET}",
                             queue_size=2, timeout_seconds=30)
    notifier = Notifier(settings, get_logger())
    try:
        assert notifier.submit(Alert("a", "first"))
        assert not notifier.submit(Alert("a", "first again"))  # same key within the window
        hook.wait_for(1)  # "first" is in flight, stalled
        for key in "bcde":
            started = time.monotonic()
            assert notifier.submit(Alert(key, key))
            assert time.monotonic() - started < 0.1  # never blocks the caller
        assert notifier.suppressed == 1 and notifier.dropped == 2
        assert [a.key for a in notifier._queue] == ["d", "e"]
    finally:
        notifier.close(0.1)
    assert out.getvalue().count('"alert.queue_full"') == 1


def test_the_secrets_are_refused_in_the_file_and_masked(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("SECTORBOT__")]:
        monkeypatch.delenv(key)
    config = tmp_path / "c.toml"
    config.write_text(f'[alerts]\nenabled = true\nwebhook_url = "https://hooks/{HOOK_SECRET}"\n'
                      f'telegram_bot_token = "{BOT_TOKEN}"\ntelegram_chat_id = "1"\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert [line.split(":")[0] for line in refused.value.lines][:2] == [
        "alerts.webhook_url", "alerts.telegram_bot_token"]
    assert HOOK_SECRET not in str(refused.value) and BOT_TOKEN not in str(refused.value)
    config.write_text('[alerts]\nenabled = true\ntelegram_chat_id = "1"\n'
                      'secrets = 1\n')
    with pytest.raises(ConfigError):
        load_settings(config)
    config.write_text('[alerts]\nenabled = true\n')
    with pytest.raises(ConfigError) as no_channel:
        load_settings(config)
    assert "SECTORBOT__ALERTS__WEBHOOK_URL" in no_channel.value.lines[0]
    (tmp_path / "secrets.toml").write_text(f'[alerts]\ntelegram_bot_token = "{BOT_TOKEN}"\n')
    config.write_text('secrets_file = "secrets.toml"\n[alerts]\nenabled = true\n'
                      'telegram_chat_id = "7"\n')
    settings = load_settings(config)
    assert BOT_TOKEN in settings.secret_values()
    monkeypatch.setenv("SECTORBOT__ALERTS__WEBHOOK_URL", f"https://hooks/{HOOK_SECRET}")
    public = json.dumps(load_settings(config).public_dict())
    assert HOOK_SECRET not in public and BOT_TOKEN not in public
    assert json.loads(public)["alerts"]["webhook_url"] == "**********"
    assert repr(settings.alerts).count(BOT_TOKEN) == 0


@pytest.mark.process
def test_the_run_command_alerts_and_logs_no_secret(hook: Loopback, tmp_path: Path) -> None:
    env = alert_env(hook, SECTORBOT__REPLAY__START="2021-03-08",
                    SECTORBOT__RISK__MAX_DRAWDOWN_PCT="1")
    done = run_cli(["run", "--cycles", "5"], tmp_path / "state.sqlite3", tmp_path,
                   timeout=60, **env)
    assert done.returncode == 0, done.stderr[-2000:]
    evs = events(done.stdout)
    assert evs[-1]["event"] == "daemon.stopped"
    assert evs[0]["event"] == "alert.ready" and evs[0]["channels"] == ["webhook", "telegram"]
    texts = hook.texts()
    assert any("KILL SWITCH TRIPPED" in t for t in texts)
    assert texts.count("[sectorbot paper] Daemon stopped cleanly.") == 2  # both channels
    for secret in (HOOK_SECRET, BOT_TOKEN):
        assert secret not in done.stdout + done.stderr
        for path in tmp_path.iterdir():
            assert secret.encode() not in path.read_bytes(), path
