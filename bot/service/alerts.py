"""Operator alerts: what needs a human, pushed to a webhook (Slack/Discord) or Telegram.

What is alerted is read from the daemon's own log events (``docs/log-events.md``) through the
observer's log tap (:mod:`bot.service.log_tap`), as the metrics are: the kill switch tripped,
a stop fired, a position liquidated or closed for funding, a reconcile anomaly (an adopted
position, a client-id conflict, an order whose outcome is unknown), a stop the venue would not
take, repeated failures of one job, the owner lock lost, and the daemon's start and stop. No
call was added to the trading code.

Sending never touches the trading path. The tap only builds a short text and appends it to a
bounded queue (when full the oldest alert is dropped, counted, and ``alert.queue_full`` is
logged once); one background thread drains it over httpx with a timeout and a few retries
(tenacity, on a transport error, a 429 or a 5xx), then gives up on that alert
(``alert.failed``). A notifier that is down or stalls delays nothing but other alerts.

The same alert key (its kind, and the token or job it concerns) is sent at most once per
``alerts.repeat_minutes``. Every text passes the log's secret scrubber, and the webhook URL and
bot token (secrets, refused in the config file) appear in no log line and no error.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from bot.logs import MASK, register_secrets, scrub_text
from bot.service.log_tap import TappedLog
from bot.service.observer import NullObserver

if TYPE_CHECKING:
    from bot.config import AlertSettings
    from bot.store.repo import StateStore

MAX_TEXT = 3500
"""Telegram refuses a text over 4096 characters; Discord's content stops at 2000 (cut there)."""
DRAIN_SECONDS = 5.0
"""How long a stopping daemon waits for queued alerts (its ``daemon.stopped`` among them)."""


@dataclass(frozen=True)
class Alert:
    key: str
    text: str


def _f(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    return "-" if value is None else str(value)


def alert_for(event: str, fields: Mapping[str, Any], failures_threshold: int) -> Alert | None:
    """The alert a log event calls for, None for the events nobody must be woken for."""
    token = _f(fields, "token")
    if event == "killswitch.tripped":
        return Alert("killswitch", f"KILL SWITCH TRIPPED: {_f(fields, 'reason')} (equity "
                     f"{_f(fields, 'equity')}). Leverage closed, no new risk until "
                     "`sectorbot resume`.")
    if event == "stoploss.triggered":
        cash = ("" if fields.get("cash_delta") is None  # a venue's stop: P&L not read
                else f" (cash {_f(fields, 'cash_delta')})")
        return Alert(f"stop:{token}", f"Stop-out on {token}: {_f(fields, 'amount')} at "
                     f"{_f(fields, 'price')}{cash}.")
    if event == "position.liquidated":
        return Alert(f"liquidated:{token}", f"LIQUIDATED {token}: {_f(fields, 'amount')} at "
                     f"{_f(fields, 'price')}.")
    if event == "funding.exit":
        return Alert(f"funding_exit:{token}", f"Funding exit on {token}: funding at "
                     f"{_f(fields, 'apr')} APR over {_f(fields, 'threshold')}; closed.")
    if event == "reconcile.adopted":
        return Alert(f"adopted:{token}", f"Reconcile adopted a position no order explains: "
                     f"{token} {_f(fields, 'amount')} (stop {_f(fields, 'stop_price')}).")
    if event == "order.id_conflict":
        return Alert(f"id_conflict:{_f(fields, 'client_id')}", f"Order id conflict "
                     f"{_f(fields, 'client_id')} ({token}): nothing sent. "
                     f"{_f(fields, 'reason')}")
    if event == "order.unknown":
        return Alert(f"unknown:{_f(fields, 'client_id')}", f"Order outcome unknown: "
                     f"{_f(fields, 'client_id')}: {_f(fields, 'reason')}; the next "
                     "reconciliation settles it.")
    if event == "stoploss.unplaceable":
        return Alert(f"unplaceable:{token}", f"The venue refused every stop for {token}: "
                     f"{_f(fields, 'action')}.")
    if event == "job.failed":
        count = fields.get("consecutive_failures")
        if isinstance(count, int) and count >= failures_threshold:
            return failures_alert(_f(fields, "job"), count, _f(fields, "error"))
        return None
    if event == "daemon.lock_lost":
        return Alert("lock_lost", "Owner lock of the state store lost: the daemon stops.")
    if event == "daemon.started":
        return Alert("daemon.started", f"Daemon started ({_f(fields, 'mode')} on "
                     f"{_f(fields, 'exchange')}).")
    if event == "daemon.stopped":
        clean = fields.get("clean")
        return Alert("daemon.stopped", "Daemon stopped cleanly." if clean else
                     f"Daemon stopped UNCLEAN: {_f(fields, 'reason')}")
    return None


def failures_alert(job: str, count: int, error: str) -> Alert:
    return Alert(f"failures:{job}", f"{count} consecutive failures of {job}: {error}")


ALERT_EVENTS = ("killswitch.tripped", "stoploss.triggered", "position.liquidated",
                "funding.exit", "reconcile.adopted", "order.id_conflict", "order.unknown",
                "stoploss.unplaceable", "job.failed", "daemon.lock_lost", "daemon.started",
                "daemon.stopped")
"""The log events that may raise an alert (docs/operations.md lists them)."""


class _Retryable(Exception):
    """A 429 or 5xx answer: worth another attempt."""


class _Channel:
    def __init__(self, name: str, url: str, body: Callable[[str], dict[str, Any]]) -> None:
        self.name = name
        self.url = url
        self.body = body


class Notifier:
    """A bounded queue and the thread that sends it. ``submit`` never blocks."""

    def __init__(self, settings: AlertSettings, log: Any, prefix: str = "sectorbot",
                 transport: httpx.BaseTransport | None = None) -> None:
        self._settings = settings
        self._log = log
        self._prefix = prefix
        self._secrets: list[str] = []
        self._channels: list[_Channel] = []
        if settings.webhook_url is not None:
            url = settings.webhook_url.get_secret_value()
            # The whole URL and its path: a host or proxy may echo either in an error.
            self._secrets += [url, *_url_parts(url)]
            self._channels.append(_Channel("webhook", url,
                                           lambda text: {"text": text, "content": text[:2000]}))
        if settings.telegram_bot_token is not None:
            token = settings.telegram_bot_token.get_secret_value()
            self._secrets.append(token)
            chat = settings.telegram_chat_id
            base = settings.telegram_api_url.rstrip("/")
            self._channels.append(_Channel("telegram", f"{base}/bot{token}/sendMessage",
                                           lambda text: {"chat_id": chat, "text": text}))
        register_secrets(self._secrets)  # the log's scrubber knows them, whoever logs
        self._client = httpx.Client(timeout=settings.timeout_seconds, transport=transport,
                                    follow_redirects=False)
        self._queue: collections.deque[Alert] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._last_sent: dict[str, float] = {}
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.suppressed = 0
        self._thread = threading.Thread(target=self._drain, name="sectorbot-alerts",
                                        daemon=True)
        self._thread.start()

    @property
    def channels(self) -> list[str]:
        return [c.name for c in self._channels]

    # -- the trading side: quick, never blocks, never raises --------------------------------
    def submit(self, alert: Alert) -> bool:
        """Queue ``alert`` unless the same key went out within ``repeat_minutes``."""
        now = time.monotonic()
        window = self._settings.repeat_minutes * 60
        with self._cond:
            if self._closing:
                return False
            last = self._last_sent.get(alert.key)
            if last is not None and now - last < window:
                self.suppressed += 1
                return False
            self._last_sent[alert.key] = now
            full = len(self._queue) >= self._settings.queue_size
            if full:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(alert)
            self._cond.notify()
            first_drop = full and self.dropped == 1
        if first_drop:  # once: a flood of drops must not flood the log too
            self._log.warning("alert.queue_full", size=self._settings.queue_size,
                              action="the oldest queued alert is dropped (counted)")
        return True

    # -- the sending side -------------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                alert = self._queue.popleft()
            self._send(alert)

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return scrub_text(text)

    def _send(self, alert: Alert) -> None:
        text = self._clean(f"[{self._prefix}] {alert.text}")[:MAX_TEXT]
        for channel in self._channels:
            try:
                self._post(channel, text)
            except Exception as exc:
                self.failed += 1
                if self._closing:  # ``daemon.stopped`` stays the last line (a contract)
                    continue
                self._log.warning("alert.failed", channel=channel.name, key=alert.key,
                                  attempts=self._settings.attempts,
                                  error=self._clean(_describe(exc)),
                                  action="this alert is dropped")
            else:
                self.sent += 1
                if not self._closing:
                    self._log.debug("alert.sent", channel=channel.name, key=alert.key)

    def _post(self, channel: _Channel, text: str) -> None:
        s = self._settings
        for attempt in Retrying(stop=stop_after_attempt(s.attempts),
                                wait=wait_exponential(multiplier=s.retry_wait_seconds,
                                                      max=60),
                                retry=retry_if_exception(_retryable), reraise=True):
            with attempt:
                answer = self._client.post(channel.url, json=channel.body(text))
                if answer.status_code == 429 or answer.status_code >= 500:
                    raise _Retryable(f"HTTP {answer.status_code}")
                if answer.status_code >= 300:
                    # The status only: a body may echo the request path, and a webhook's
                    # path is its secret (``Cannot POST /services/T0/B0/<secret>``).
                    raise RuntimeError(f"HTTP {answer.status_code} from the {channel.name}")

    def close(self, wait: float = DRAIN_SECONDS) -> None:
        """Send what is queued for at most ``wait`` seconds, then give up on the rest.
        Nothing is logged from here on: the daemon's ``daemon.stopped`` is its last line."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=wait)
        if not self._thread.is_alive():
            self._client.close()


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable | httpx.TransportError)


def _describe(exc: BaseException) -> str:
    """An error without the request's URL (httpx puts it in some messages)."""
    if isinstance(exc, httpx.TimeoutException):
        return f"{type(exc).__name__}: no answer in time"
    return f"{type(exc).__name__}: {exc}"


class AlertObserver(NullObserver):
    """Implements :class:`bot.service.observer.DaemonObserver`: alerts from the log events
    and, for the risk watch (whose failed steps raise nothing), from its hook; the other
    hooks report nothing (inherited)."""

    def __init__(self, settings: AlertSettings, log: Any, mode: str,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._settings = settings
        self.notifier = Notifier(settings, log, prefix=f"sectorbot {mode}", transport=transport)
        self._risk_failures = 0
        log.info("alert.ready", channels=self.notifier.channels,
                 repeat_minutes=settings.repeat_minutes)

    def wrap_log(self, log: Any) -> Any:
        return TappedLog(log, self.on_event)

    def on_event(self, event: str, fields: Mapping[str, Any]) -> None:
        alert = alert_for(event, fields, self._settings.failures_threshold)
        if alert is not None:
            self.notifier.submit(alert)

    def risk_watch_done(self, failed_steps: Sequence[str] | None,
                        error: BaseException | None, store: StateStore) -> None:
        if error is None and not failed_steps:
            self._risk_failures = 0
            return
        self._risk_failures += 1
        if self._risk_failures >= self._settings.failures_threshold:
            what = str(error) if error is not None else f"steps {', '.join(failed_steps or ())}"
            self.notifier.submit(failures_alert("risk_watch", self._risk_failures, what))

    def close(self, wait: float = DRAIN_SECONDS) -> None:
        self.notifier.close(wait)


def _url_parts(url: str) -> list[str]:
    """The secret-bearing parts of a webhook URL as an error might echo them: its path and
    query, raw and percent-decoded (a bare ``/`` or an empty part is no secret)."""
    parts = urlsplit(url)
    found = {p for p in (parts.path, parts.query) if len(p.strip("/")) >= 8}
    found |= {unquote(p) for p in found}
    return sorted(found)

