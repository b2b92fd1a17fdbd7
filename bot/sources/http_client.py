"""A polite JSON-over-HTTP client for the signal providers (DefiLlama and the like).

Free public APIs publish few limits and throttle without warning, so every provider goes
through this one client: a timeout on every request, a minimum interval between requests to
one host, retries with exponential backoff only where a retry is safe (GETs: timeouts,
connection errors, 429 and 5xx), and a 429's ``Retry-After`` honoured up to a bound (a wait
longer than that is a failure now, not a stall of the signal job). Anything else, or a body
that is not JSON, is a :class:`ProviderError` whose text says what went wrong; the caller
marks its signal stale and keeps the last good value. With a cache
(:class:`bot.sources.http_cache.ResponseCache`) requests are conditional where the provider
gave a validator, and a 304 reuses the kept body.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from bot.retry_after import parse_retry_after
from bot.sources.http_cache import CachedAnswer, ResponseCache


class ProviderError(Exception):
    """A provider could not be read: the reason, without the request's secrets."""


class ProviderUnreachable(ProviderError):
    """No connection to the host could be made on the last try (refused, connect timeout,
    proxy down): further requests to it in the same round would only wait the same way."""


class ProviderStatusError(ProviderError):
    """The host answered with a status that retrying will not change (4xx but 429)."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


class _Retryable(ProviderError):
    """A failure a later identical GET may not repeat (timeout, reset, 429, 5xx)."""

    def __init__(self, reason: str, wait_hint: float | None = None,
                 no_answer: bool = False) -> None:
        super().__init__(reason)
        self.wait_hint = wait_hint
        self.no_answer = no_answer


TOTAL_TIMEOUT_FACTOR = 3.0
"""A request's whole time, headers to last byte, is bounded at this many timeouts
(:attr:`PoliteClient.request_deadline`)."""


@dataclass(frozen=True)
class HttpPolicy:
    timeout_seconds: float = 10.0
    attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 60.0
    """The longest ``Retry-After`` obeyed; a longer one fails the fetch at once."""
    min_interval_seconds: float = 1.0
    """Between two requests to the same host."""
    proxy: str | None = None
    """The operator's HTTPS proxy (``exchange.https_proxy``): providers go the same way."""
    verify: str | bool = True
    """A CA bundle path for a TLS-intercepting proxy (``exchange.ca_bundle``)."""
    trust_env: bool = False


class PoliteClient:
    def __init__(self, base_url: str, policy: HttpPolicy,
                 headers: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None,
                 cache: ResponseCache | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.cache = cache
        self.not_modified = 0
        """Answers confirmed current by a 304 (the body came from the cache)."""
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last_request = 0.0
        self._http = httpx.Client(base_url=self.base_url, headers=dict(headers or {}),
                                  timeout=httpx.Timeout(policy.timeout_seconds),
                                  follow_redirects=False, transport=transport,
                                  proxy=policy.proxy, verify=policy.verify,
                                  trust_env=policy.trust_env)

    def close(self) -> None:
        self._http.close()

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET ``path`` and decode its JSON, retrying what is safe to retry."""
        retrying = Retrying(
            stop=stop_after_attempt(self.policy.attempts),
            retry=retry_if_exception_type(_Retryable),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(self._get_once, path, params)
        except _Retryable as exc:
            kind = ProviderUnreachable if exc.no_answer else ProviderError
            raise kind(f"GET {path}: {exc} (after {self.policy.attempts} tries)") from None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = exc.wait_hint if isinstance(exc, _Retryable) else None
        if hint is not None:
            return hint
        backoff = self.policy.base_delay * 2 ** (state.attempt_number - 1)
        return float(min(self.policy.max_delay, backoff))

    def _pace(self) -> None:
        with self._lock:
            due = self._last_request + self.policy.min_interval_seconds - time.monotonic()
            if due > 0:
                self._sleep(due)
            self._last_request = time.monotonic()

    def _get_once(self, path: str, params: Mapping[str, str] | None) -> Any:
        self._pace()
        url = self.base_url + path + (f"?{urlencode(sorted(params.items()))}" if params else "")
        cached = self.cache.get(url) if self.cache is not None else None
        try:
            response, body = self._fetch(path, params, cached)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
            # Nobody there: the host (or the way to it) is down, for every path.
            raise _Retryable(f"cannot connect ({type(exc).__name__})", no_answer=True) \
                from None
        except httpx.TimeoutException:
            # Connected but slow: this path may be heavy; the host is not down.
            raise _Retryable(f"no answer within {self.policy.timeout_seconds:g}s") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"connection failed ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:  # a body that cannot be decoded, and the like
            raise ProviderError(f"GET {path}: {type(exc).__name__}") from None
        status = response.status_code
        if status == 304 and cached is not None:
            return self._from_cache(url, path, cached)
        if status == 202:  # GitHub: "computing the statistics, ask again shortly"
            raise _Retryable("accepted, still computing (202)")
        if status == 429 or (status == 403
                             and response.headers.get("x-ratelimit-remaining") == "0"):
            wait = parse_retry_after(response.headers.get("Retry-After"))
            reset = response.headers.get("x-ratelimit-reset")
            if wait is None and reset is not None and reset.isdigit():
                wait = max(0.0, int(reset) - time.time())  # GitHub: when the quota refills
            if wait is not None and wait > self.policy.max_retry_after:
                raise ProviderError(f"GET {path}: throttled, asked to wait {wait:.0f}s")
            raise _Retryable("throttled (429)", wait)
        if status >= 500:
            raise _Retryable(f"server error {status}")
        if status != 200:
            raise ProviderStatusError(f"GET {path}: HTTP {status}", status)
        try:
            decoded = json.loads(body)
        except ValueError:
            raise ProviderError(f"GET {path}: the body is not valid JSON "
                                f"({len(body)} bytes)") from None
        if self.cache is not None:
            self.cache.put(url, response.headers.get("ETag"),
                           response.headers.get("Last-Modified"), body)
        return decoded

    @property
    def request_deadline(self) -> float:
        """The most one request may take, headers to last byte: the timeout bounds each
        read, and a host trickling a byte within it would otherwise hold the request (and
        its provider's round) for ever. A read under way when it passes may add one
        timeout more."""
        return TOTAL_TIMEOUT_FACTOR * self.policy.timeout_seconds

    def _fetch(self, path: str, params: Mapping[str, str] | None,
               cached: CachedAnswer | None) -> tuple[httpx.Response, bytes]:
        """One GET, its body streamed and given up once :attr:`request_deadline` passed."""
        deadline = time.monotonic() + self.request_deadline
        with self._http.stream("GET", path, params=dict(params or {}),
                               headers=cached.conditions() if cached else None) as response:
            chunks: list[bytes] = []
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise _Retryable(f"no full answer within {self.request_deadline:g}s "
                                     "(the host sends too slowly)")
        return response, b"".join(chunks)

    def _from_cache(self, url: str, path: str, cached: CachedAnswer) -> Any:
        """A 304: the kept body is still the answer."""
        assert self.cache is not None
        try:
            decoded = json.loads(cached.body)
        except ValueError:
            # Kept but unreadable (it passed its checksum, so it was stored that way): ask
            # again without conditions.
            self.cache.drop(url)
            raise _Retryable("the cached answer is not valid JSON") from None
        self.cache.touch(url)
        self.not_modified += 1
        return decoded
