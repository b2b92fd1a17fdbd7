"""Secrets never reach the log stream, whatever the call site does."""

from __future__ import annotations

import io
import json

from pydantic import SecretStr

from bot.logs import configure_logging, get_logger, register_secrets


def capture() -> io.StringIO:
    buf = io.StringIO()
    configure_logging("debug", "json", stream=buf)
    return buf


def test_json_lines_carry_the_contract_fields() -> None:
    buf = capture()
    get_logger().info("cycle.completed", equity="100.00")
    record = json.loads(buf.getvalue().splitlines()[0])
    assert record["event"] == "cycle.completed"
    assert record["level"] == "info"
    assert record["timestamp"].endswith("Z")
    assert record["equity"] == "100.00"


def test_secret_keys_values_and_exception_text_are_redacted() -> None:
    secret = "sk-live-ABCDEF123456"
    register_secrets([secret])
    buf = capture()
    log = get_logger()
    log.info("exchange.call", api_key=secret, headers={"X-MBX-APIKEY": secret},
             secret_obj=SecretStr("hidden-value-1"))
    log.warning("order.rejected", reason=f"HTTP 401 for https://x/?apiKey={secret}&sig=1")
    try:
        raise RuntimeError(f"auth failed with {secret}")
    except RuntimeError:
        log.exception("job.failed")
    text = buf.getvalue()
    assert secret not in text
    assert "hidden-value-1" not in text
    assert text.count("**********") >= 4
    for line in text.splitlines():
        json.loads(line)
