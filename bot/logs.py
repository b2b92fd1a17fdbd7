"""Structured logging: one JSON object per line on stdout, secrets redacted by a processor.

Redaction is structural, not a matter of care at each call site: any field whose *name* looks
secret is masked, any ``SecretStr`` is masked, and every registered secret *value* is scrubbed
from every string (exception texts and URLs included) before rendering. Event names are a
contract documented in ``docs/log-events.md``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterable, MutableMapping
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import structlog
from pydantic import SecretStr

MASK = "**********"
_SECRET_KEY = re.compile(r"(secret|api_?key|apikey|password|passphrase|signature|token_key)", re.I)
_registered: set[str] = set()


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL that may carry credentials (``http://user:pw@proxy``): the
    whole URL and its password, percent-encoded as written and decoded as a library may
    print it."""
    out = [url]
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        out += [password, unquote(password)]
    return out


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so they are scrubbed from any log line that contains them."""
    _registered.update(v for v in values if v and len(v) >= 4)


def _scrub(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, str):
        for secret in _registered:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {
            k: (MASK if isinstance(k, str) and _SECRET_KEY.search(k) else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def scrub_text(text: str) -> str:
    """``text`` with every registered secret value masked (for what leaves the process by
    another way than the log: an alert's message, an error shown to an operator)."""
    return str(_scrub(text))


def install_scrubbing_excepthooks() -> None:
    """An exception nothing caught still prints its traceback on stderr (the main thread's
    through ``sys.excepthook``, another thread's through ``threading.excepthook``), chained
    causes included: a ccxt error's text may quote a venue's answer that echoes the API key.
    These hooks print the same traceback with every registered secret masked."""

    def main_hook(exc_type: type[BaseException], exc: BaseException,
                  tb: TracebackType | None) -> None:
        sys.stderr.write(scrub_text("".join(traceback.format_exception(exc_type, exc, tb))))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "?"
        sys.stderr.write(scrub_text(f"Exception in thread {name}:\n" + "".join(
            traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))))

    sys.excepthook = main_hook
    threading.excepthook = thread_hook


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-looking keys and scrub registered secret values."""
    for key in list(event_dict):
        if _SECRET_KEY.search(key):
            event_dict[key] = MASK
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def configure_logging(
    level: str = "info", fmt: str = "json", stream: TextIO | None = None
) -> None:
    """Configure structlog for the process. Safe to call again (tests, CLI re-entry)."""
    out = stream or sys.stdout
    renderer: Any
    short: list[Any] = []  # console lines keep each value short; JSON keeps it whole
    if fmt == "console":
        from bot.log_console import shorten_for_console

        renderer = structlog.dev.ConsoleRenderer(colors=False)
        short = [shorten_for_console]
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    _route_stdlib("apscheduler", level, renderer, out)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            redact_secrets,
            *short,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


STDLIB_LOG_EVENT = "scheduler.log"
"""The event name of a line APScheduler logged (its text in ``message``)."""


def _stdlib_event(_logger: Any, _method: str,
                  event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A library's free-text message under a stable event name (the log is a contract)."""
    record = event_dict.get("_record")
    event_dict["message"] = event_dict.get("event")
    event_dict["event"] = STDLIB_LOG_EVENT
    event_dict["logger"] = record.name if record is not None else None
    return event_dict


def _route_stdlib(name: str, level: str, renderer: Any, out: TextIO) -> None:
    """The stdlib logger ``name`` (APScheduler's) through the same processors and renderer as
    structlog, on the same stream, instead of Python's last-resort handler printing plain
    text on stderr. Warnings and up only: APScheduler says "Running job" at info twice per
    run, every minute."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            _stdlib_event,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    stdlib = logging.getLogger(name)
    stdlib.handlers = [handler]
    stdlib.propagate = False
    stdlib.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]))


def get_logger(**bound: Any) -> Any:
    """A bound structlog logger (typed loosely: structlog's own types are a Protocol zoo)."""
    return structlog.get_logger(**bound)
