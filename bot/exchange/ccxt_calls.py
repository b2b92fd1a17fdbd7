"""How the ccxt adapter calls a venue: retry policy, rate-limit pacing, error translation.

Reads are idempotent, so they are retried on any ``ccxt.OperationFailed`` (network errors,
timeouts, 5xx, bad responses) with exponential backoff and jitter, and for longer on
``RateLimitExceeded``/``DDoSProtection`` (Binance answers 429/418 with ``Retry-After``, which
is honoured). Orders are never retried here: ``ccxt_orders`` decides, because an order whose
send timed out may exist. Every message that leaves this module has the account's secrets
scrubbed out, since ccxt error texts carry URLs and response bodies. The TLS-bundle transport
lives here too, being part of how requests leave.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import ccxt
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from bot.exchange.port import ExchangeError, ExchangeUnavailable, OrderRejected
from bot.retry_after import parse_retry_after

T = TypeVar("T")
REDACTED = "**********"


class CaBundleAdapter(HTTPAdapter):
    """Verifies TLS against ``ca_bundle``. ccxt sends ``verify=self.verify and
    self.validateServerSsl`` on every request, which is ``True`` even when ``verify`` holds
    a path and which overrides ``session.verify``, so the bundle is applied here instead."""

    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self._ca_bundle = ca_bundle

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        if kwargs.get("verify") is True:
            kwargs["verify"] = self._ca_bundle
        return super().send(request, *args, **kwargs)


class HaltedError(ExchangeUnavailable):
    """The daemon halted (its shutdown bound passed): the request was not sent."""


class CredentialsRejected(ExchangeError):
    """The venue refused the API key, signature or permissions: fix the config, don't retry."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff settings. Defaults suit a daemon; tests shrink them to milliseconds.

    ``read_attempts`` counts the first try. A rate-limit answer waits ``Retry-After`` when the
    venue sends it (capped at ``max_rate_limit_wait``), else ``rate_limit_delay`` doubled per
    attempt. ``write_throttle_attempts`` bounds how often a rate-limited order is re-sent
    (each time only after a lookup by client id found nothing). ``lookup_attempts`` and
    ``lookup_delay`` pace the search for an order whose send failed, since a venue may show
    an accepted order a moment late.
    """

    read_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.5
    rate_limit_delay: float = 5.0
    max_rate_limit_wait: float = 120.0
    write_throttle_attempts: int = 3
    lookup_attempts: int = 3
    lookup_delay: float = 0.5

    def __post_init__(self) -> None:
        if self.read_attempts < 1 or self.write_throttle_attempts < 1 or self.lookup_attempts < 1:
            raise ValueError("retry attempt counts must be >= 1")
        if min(self.base_delay, self.max_delay, self.rate_limit_delay, self.lookup_delay,
               self.max_rate_limit_wait) < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("retry delays must be >= 0 and jitter within [0, 1]")

    def delay(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed ``attempt`` (1-based) that raised ``exc``."""
        if is_throttle(exc):
            hinted = getattr(exc, "retry_after", None)
            if hinted is not None:
                return float(min(hinted, self.max_rate_limit_wait))
            return float(min(self.rate_limit_delay * 2 ** (attempt - 1), self.max_rate_limit_wait))
        raw = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        return float(raw * (1 - self.jitter * random.random()))


def is_throttle(exc: BaseException | None) -> bool:
    return isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection)


class Scrubber:
    """Replaces every secret value in a text; secrets shorter than 4 chars are ignored so a
    one-letter 'secret' cannot mangle every message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: object) -> str:
        out = str(text)
        for secret in self._secrets:
            out = out.replace(secret, REDACTED)
        return out


class Caller:
    """Runs ccxt calls for one adapter: pacing after 429s, read retries, error translation.

    After a rate-limit answer *every* call on this account waits until the venue's
    ``Retry-After`` has passed, not only the call that was refused: the limit is per account
    (or IP), so the next request would be refused too and could extend a ban.
    """

    def __init__(self, policy: RetryPolicy, scrub: Scrubber,
                 sleep: Callable[[float], None] | None = None,
                 retry_hint: Callable[[Any], float | None] | None = None,
                 halted: threading.Event | None = None) -> None:
        self.policy = policy
        self.scrub = scrub
        self._halted = halted if halted is not None else threading.Event()
        self._sleep = sleep or self._wait
        self._retry_hint = retry_hint
        self._quiet_until = 0.0
        self._lock = threading.Lock()

    def _wait(self, seconds: float) -> None:
        # A halt ends the wait; the next request is then refused by ``gate``.
        self._halted.wait(seconds)

    def pause(self, seconds: float) -> None:
        self._sleep(seconds)

    # -- pacing ------------------------------------------------------------------------------
    def gate(self) -> None:
        """Wait out an account-wide rate-limit pause, then let one request through, unless
        the daemon has halted: once it has said it stopped, nothing may leave for the venue.
        (A shutdown request alone does not halt: the order in flight and the stop of a leg
        that filled still need their full retries.)"""
        if self._halted.is_set():
            raise HaltedError("the daemon has stopped: no request leaves for the venue")
        with self._lock:
            remaining = self._quiet_until - time.monotonic()
        if remaining > 0:
            self._sleep(remaining)
        if self._halted.is_set():
            raise HaltedError("the daemon has stopped: no request leaves for the venue")

    def note_throttle(self, exchange: Any, exc: BaseException, attempt: int) -> None:
        """Read when the limit lifts from the refused response (the venue's own header via
        ``retry_hint``, e.g. Bybit's ``X-Bapi-Limit-Reset-Timestamp``, else ``Retry-After``)
        and pause the whole account."""
        headers = getattr(exchange, "last_response_headers", None) or {}
        if not hasattr(headers, "get"):
            headers = {}
        hinted = self._retry_hint(headers) if self._retry_hint is not None else None
        if hinted is None:
            hinted = parse_retry_after(headers.get("Retry-After"))
        if hinted is not None:
            exc.retry_after = hinted  # type: ignore[attr-defined]
        wait = self.policy.delay(attempt, exc)
        with self._lock:
            self._quiet_until = max(self._quiet_until, time.monotonic() + wait)

    def once(self, exchange: Any, fn: Callable[[], T], attempt: int = 1) -> T:
        """One paced call; a rate-limit answer records the pause before propagating, and a
        clock refusal resynchronises with the venue's clock before propagating."""
        self.gate()
        try:
            return fn()
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
            self.note_throttle(exchange, exc, attempt)
            raise
        except ccxt.InvalidNonce:
            self.resync_clock(exchange)
            raise

    def resync_clock(self, exchange: Any) -> None:
        """Measure the venue's clock again after it refused a request's timestamp (Binance
        -1021 "outside of the recvWindow", Bybit 10002). ccxt measures the offset only when
        markets load (at start, then hourly), so a clock that drifted or stepped since then
        would fail every signed call, orders included, until the next reload. The request
        was refused unprocessed; the caller's retry (or resend) then carries a good stamp."""
        options = getattr(exchange, "options", None) or {}
        if not options.get("adjustForTimeDifference") or self._halted.is_set():
            return
        # An unreachable venue: the retry fails on its own and is counted as usual.
        with contextlib.suppress(ccxt.BaseError):
            exchange.load_time_difference()

    # -- reads -------------------------------------------------------------------------------
    def read(self, exchange: Any, what: str, fn: Callable[[], T], write: bool = False) -> T:
        """Call ``fn`` with retries; failures become port errors with scrubbed messages.

        Also used for idempotent writes (set leverage, set margin mode: sending the same
        value twice is harmless); ``write`` makes a refusal an ``OrderRejected``.
        """
        counter = {"attempt": 0}

        def attempt() -> T:
            counter["attempt"] += 1
            return self.once(exchange, fn, counter["attempt"])

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            if is_throttle(exc):
                return 0.0  # ``once`` already set the account-wide pause; ``gate`` waits
            return self.policy.delay(state.attempt_number, exc)

        retrying = Retrying(stop=stop_after_attempt(self.policy.read_attempts), wait=wait,
                            retry=retry_if_exception_type(ccxt.OperationFailed), reraise=True,
                            sleep=self._sleep)
        try:
            return retrying(attempt)
        except ccxt.OperationFailed as exc:
            raise ExchangeUnavailable(self.message(
                f"{what} failed {self.policy.read_attempts} times", exc)) from exc
        except ccxt.BaseError as exc:
            raise self.translate(what, exc, write=write) from exc

    # -- translation ------------------------------------------------------------------------
    def message(self, what: str, exc: BaseException) -> str:
        return self.scrub(f"{what}: {type(exc).__name__}: {exc}")

    def translate(self, what: str, exc: BaseException, write: bool) -> ExchangeError:
        """A definite refusal from the venue as the port's error type.

        Any ``ccxt.ExchangeError`` on a write means the venue answered and refused, so the
        order does not exist: ``OrderRejected``. Credentials problems get their own type
        because no order will ever pass until the config is fixed.
        """
        text = self.message(what, exc)
        if isinstance(exc, ccxt.AuthenticationError):
            return CredentialsRejected(text)
        if write and isinstance(exc, ccxt.ExchangeError):
            return OrderRejected(text)
        return ExchangeError(text)
