"""The health stall clock leaves room for the providers' prefill before the first cycle:
with a short cycle (10 s: stalled after 80 s) a prefill of up to its budget (120 s) must not
make ``/healthz`` or ``/livez`` report the daemon stalled, or a liveness probe would restart
it in a loop. Once a cycle completed, the usual limit holds again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.service.health import health_report, liveness_report, stale_after
from bot.service.observer import ObserverChain
from bot.service.telemetry import Telemetry

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CYCLE = 10.0
PREFILL = 120.0


class Quiet:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


class NoTokens:
    def all_tokens(self) -> list[Any]:
        return []


class EmptyStore:
    def active_kill_switch(self) -> None:
        return None


def started(grace: float) -> Telemetry:
    telemetry = Telemetry("paper", Quiet(), clock=lambda: T0)
    store: Any = EmptyStore()
    universe: Any = NoTokens()
    ObserverChain([telemetry]).service_started(CYCLE, lambda: True, store, universe,
                                               first_cycle_grace=grace)
    return telemetry


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_prefill_within_its_budget_is_not_a_stall() -> None:
    limit = stale_after(CYCLE)
    assert limit < PREFILL  # the case: the prefill outlasts a short cycle's limit
    facts = started(PREFILL).health.facts()
    for check in (health_report, liveness_report):
        ok, body = check(facts, at(PREFILL))
        assert ok, body
        ok, body = check(facts, at(limit + PREFILL - 1))
        assert ok, body
        ok, body = check(facts, at(limit + PREFILL + 1))
        assert not ok and "prefill" in body["reasons"][0], body


def test_without_a_prefill_the_limit_is_the_usual_one() -> None:
    facts = started(0.0).health.facts()
    ok, body = liveness_report(facts, at(stale_after(CYCLE) + 1))
    assert not ok, body


def test_once_a_cycle_completed_the_prefill_grace_is_spent() -> None:
    telemetry = started(PREFILL)
    telemetry.health.update(last_cycle_at=at(PREFILL), cycles_completed=1)
    facts = telemetry.health.facts()
    ok, body = liveness_report(facts, at(PREFILL + stale_after(CYCLE) - 1))
    assert ok, body
    ok, body = liveness_report(facts, at(PREFILL + stale_after(CYCLE) + 1))
    assert not ok, body
