"""The monitoring endpoint (issue #16): /healthz's rule, /metrics, and a real service daemon.

The rule is tested on the health snapshot with an injected clock; the endpoint on a paper
daemon run as a service in a subprocess (``SECTORBOT__HTTP__PORT=0``, the port read from its
``http.listening`` line), which must bind only once it owns its store, keep trading when the
port is taken, and report a tripped kill switch as unhealthy.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.logs import get_logger
from bot.service.health import (
    HealthFacts,
    HealthState,
    health_report,
    liveness_report,
    stale_after,
)
from bot.service.telemetry import Telemetry
from tests.browser import screenshot_bytes
from tests.daemon_proc import env_for, events, named, run_cli

SECRET = "ghp_MonitoringSecret0123456789abcdef"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# -- the rule, on the snapshot ---------------------------------------------------------------
def facts(**changes: Any) -> HealthFacts:
    base = HealthFacts(mode="live", scheduler_alive=True, service_started_at=T0,
                       cycle_interval_seconds=3600.0)
    return HealthFacts(**{**base.__dict__, **changes})


def test_a_fresh_service_is_healthy_within_its_grace_and_stale_after_it() -> None:
    limit = stale_after(3600.0)
    assert limit == 2 * 3600 + 60
    healthy, body = health_report(facts(), T0 + timedelta(seconds=limit - 1))
    assert healthy and body["status"] == "ok" and body["last_cycle_at"] is None
    healthy, body = health_report(facts(), T0 + timedelta(seconds=limit + 1))
    assert not healthy and "no cycle completed" in body["reasons"][0]


def test_the_last_cycle_age_decides_once_cycles_run() -> None:
    done = facts(last_cycle_at=T0 + timedelta(hours=5), cycles_completed=5)
    healthy, body = health_report(done, T0 + timedelta(hours=6))
    assert healthy and body["last_cycle_age_seconds"] == 3600.0
    assert body["stale_after_seconds"] == 7260.0
    healthy, body = health_report(done, T0 + timedelta(hours=7, seconds=61))
    assert not healthy and body["reasons"] == [
        "last cycle completed for 7261s > 7260s (2 x 3600s interval + 60s)"]


def test_liveness_fails_only_when_the_daemon_stopped_working() -> None:
    """/livez is what an orchestrator restarts on: a tripped kill switch or a venue outage
    makes the daemon unhealthy but alive (a restart cures neither); a stopped scheduler
    or stalled cycles make it dead."""
    now = T0 + timedelta(hours=1)
    tripped = facts(kill_switch_reason="drawdown 26% >= 25%", venue_attempts=3,
                    venue_consecutive_failures=3, last_cycle_at=now, cycles_completed=1)
    assert not health_report(tripped, now)[0]
    alive, body = liveness_report(tripped, now)
    assert alive and body["status"] == "alive" and body["reasons"] == []
    assert not liveness_report(facts(scheduler_alive=False), now)[0]
    dead, body = liveness_report(facts(), T0 + timedelta(seconds=stale_after(3600.0) + 1))
    assert not dead and "no cycle completed" in body["reasons"][0]


def test_scheduler_venue_and_kill_switch_each_make_it_unhealthy() -> None:
    now = T0 + timedelta(minutes=1)
    assert not health_report(facts(scheduler_alive=False), now)[0]
    one = facts(venue_attempts=3, venue_consecutive_failures=1,
                last_venue_error="ExchangeUnavailable")
    healthy, body = health_report(one, now)
    assert healthy and body["venue_reachable"] is False  # one blip is not an outage
    healthy, body = health_report(facts(venue_attempts=3, venue_consecutive_failures=2,
                                        last_venue_error="ExchangeUnavailable"), now)
    assert not healthy and "venue unreachable" in body["reasons"][0]
    healthy, body = health_report(facts(kill_switch_reason="drawdown 26% >= 25%",
                                        kill_switch_tripped_at=T0), now)
    assert not healthy and body["kill_switch"]["reason"] == "drawdown 26% >= 25%"
    assert "sectorbot resume" in body["reasons"][0]


def test_the_state_asks_the_scheduler_at_each_probe_and_counts_venue_runs() -> None:
    state = HealthState("paper")
    state.update(scheduler_alive=True, service_started_at=T0, cycle_interval_seconds=1.0)
    running = [True]
    state.set_alive_probe(lambda: running[0])
    assert state.facts().scheduler_alive
    running[0] = False  # the scheduler's thread is gone: no flag was cleared
    assert not health_report(state.facts(), T0)[0]
    state.venue_attempt("ExchangeUnavailable")
    state.venue_attempt("ExchangeUnavailable")
    assert state.facts().venue_consecutive_failures == 2
    state.venue_attempt(None)
    assert state.facts().venue_consecutive_failures == 0


def test_log_events_feed_the_counters_and_a_venue_error_in_a_risk_step() -> None:
    """Order outcomes and funding come from the log-event contract through the daemon's
    tapped logger; two risk watches whose step failed on the venue make it unhealthy."""
    seen: list[str] = []

    class Log:
        def info(self, event: str, **fields: Any) -> None:
            seen.append(event)

        warning = error = exception = debug = info

    telemetry = Telemetry("paper", Log(), clock=lambda: T0)
    log = telemetry.wrap_log(Log())
    log.info("order.submitted", client_id="a")
    log.info("order.filled", client_id="a")
    log.warning("order.rejected", client_id="b", reason="x")
    log.info("funding.paid", token="ETH", cash_delta="-1.5")
    log.info("funding.paid", token="ETH", cash_delta="0.5")
    assert seen == ["order.submitted", "order.filled", "order.rejected", "funding.paid",
                    "funding.paid"]

    class Store:
        def active_kill_switch(self) -> None:
            return None

    for _ in range(2):
        log.error("risk.step_failed", step="stop_watchdog", error="down",
                  error_type="ExchangeUnavailable")
        log.warning("stoploss.missing", token="ETH", amount="1", covered="0",
                    action="replace")
        telemetry.risk_watch_done(["stop_watchdog"], None, Store())  # type: ignore[arg-type]
    values = scrape(telemetry.metrics.render().decode())
    assert values[("sectorbot_orders_total", (("status", "filled"),))] == 1
    assert values[("sectorbot_orders_total", (("status", "rejected"),))] == 1
    assert values[("sectorbot_funding_paid_usdt_total", ())] == 1.5
    assert values[("sectorbot_funding_received_usdt_total", ())] == 0.5
    assert values[("sectorbot_venue_errors_total",
                   (("error_class", "ExchangeUnavailable"),))] == 2
    assert values[("sectorbot_stops_missing", ())] == 1
    healthy, body = health_report(telemetry.health.facts(), T0)
    assert not healthy and body["venue_consecutive_failures"] == 2


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics body, parsed by prometheus-client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# -- a real service daemon -----------------------------------------------------------------
@dataclass
class Service:
    proc: subprocess.Popen[str]
    state: Path
    lines: list[str] = field(default_factory=list)
    port: int = 0

    def wait_for(self, pick: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                ev = json.loads(line)
                if pick(ev):
                    return ev
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"not seen; last lines: {self.lines[-5:]}")

    def get(self, path: str) -> tuple[int, str, dict[str, str]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=10) as answer:
                return answer.status, answer.read().decode(), dict(answer.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)


def start_service(tmp: Path, **env: str) -> Service:
    state = tmp / "state.sqlite3"
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=tmp,
                            env=env_for(state, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    service = Service(proc, state)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip():
                service.lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service")
    svc = start_service(tmp, SECTORBOT__HTTP__PORT="0", SECTORBOT__REPLAY__TICK_SECONDS="0.1",
                        SECTORBOT__SIGNALS__GITHUB_TOKEN=SECRET)
    try:
        svc.port = svc.wait_for(lambda e: e["event"] == "http.listening")["port"]
        svc.wait_for(lambda e: e["event"] == "cycle.completed")
        yield svc
    finally:
        svc.proc.send_signal(signal.SIGTERM)
        svc.proc.communicate(timeout=20)
    assert svc.proc.returncode == 0



@pytest.mark.process
def test_healthz_is_200_with_its_fields_on_a_running_service(service: Service) -> None:
    code, body, headers = service.get("/healthz")
    assert code == 200, body
    health = json.loads(body)
    assert headers["Content-Type"] == "application/json"
    assert health["status"] == "ok" and health["reasons"] == []
    assert health["scheduler_alive"] is True and health["venue_reachable"] is True
    assert health["kill_switch"] is None and health["cycle_interval_seconds"] == 0.1
    assert health["last_cycle_age_seconds"] < health["stale_after_seconds"]
    assert health["cycles_completed"] >= 1
    listening = named(events("".join(service.lines)), "http.listening")[0]
    assert listening["host"] == "127.0.0.1" and listening["port"] == service.port


@pytest.mark.process
def test_metrics_parse_and_the_cycle_counter_grows(service: Service) -> None:
    completed = ("sectorbot_cycles_total", (("outcome", "completed"),))
    first = scrape(service.get("/metrics")[1])
    deadline = time.monotonic() + 30
    second = first
    while second[completed] <= first[completed] and time.monotonic() < deadline:
        time.sleep(0.1)
        second = scrape(service.get("/metrics")[1])
    assert second[completed] > first[completed] >= 1
    assert second[("sectorbot_equity_usdt", ())] > 0
    assert second[("sectorbot_orders_total", (("status", "filled"),))] > 0
    assert second[("sectorbot_kill_switch_tripped", ())] == 0
    assert second[("sectorbot_last_cycle_timestamp_seconds", ())] > time.time() - 60
    assert second[("sectorbot_sector_weight_ratio", (("sector", "CORE"),))] > 0.3
    assert second[("sectorbot_cycle_duration_seconds_count", ())] >= second[completed]
    for name in ("sectorbot_drawdown_ratio", "sectorbot_gross_leverage",
                 "sectorbot_net_leverage", "sectorbot_stops_missing",
                 "sectorbot_funding_paid_usdt_total"):
        assert (name, ()) in second, name
    assert any(k[0] == "sectorbot_signal_age_seconds" for k in second)


@pytest.mark.process
def test_healthcheck_command_asks_the_running_daemon(service: Service) -> None:
    done = run_cli(["healthcheck"], service.state, service.state.parent, timeout=60,
                   SECTORBOT__HTTP__PORT=str(service.port))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok (200)")


@pytest.mark.process
def test_a_second_daemon_is_refused_before_it_binds(service: Service) -> None:
    """Its port is free and fixed: it must not bind it, since it must not start at all."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    second = run_cli(["run"], service.state, service.state.parent, timeout=60,
                     SECTORBOT__HTTP__PORT=str(free))
    assert second.returncode == 2, second.stderr
    assert "http." not in second.stdout
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", free))  # nobody holds it


@pytest.mark.process
def test_the_dashboard_shows_the_book_and_renders_offline(service: Service,
                                                         tmp_path: Path) -> None:
    code, page, headers = service.get("/")
    assert code == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    for heading in ("Equity against BTC", "Buckets", "Sector weights",
                    "Open positions and their stops", "Last decisions", "Recent orders"):
        assert heading in page, heading
    assert "<polyline" in page and "regime" in page
    assert ">BTC<" in page and ">spot<" in page  # a position row
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert len(page) < 200_000
    saved = tmp_path / "dashboard.html"
    saved.write_text(page, encoding="utf-8")
    assert screenshot_bytes(saved, tmp_path) > 20_000


@pytest.mark.process
def test_no_endpoint_shows_a_secret(service: Service) -> None:
    for path in ("/healthz", "/metrics", "/"):
        assert SECRET not in service.get(path)[1], path
    assert service.get("/nothing")[0] == 404


@pytest.mark.process
def test_healthz_turns_unhealthy_when_cycles_stop_and_recovers_when_they_resume(
        service: Service) -> None:
    """Cycles stop for real: the test holds the store's write lock (as a stuck disk or a
    runaway writer would), the daemon's step waits on it and no cycle completes. Past the
    stall limit (2 x 0.1 s tick + 10 ticks) /healthz and /livez answer 503 from the
    endpoint's own thread; once the lock is released the cycles resume and both recover."""
    assert service.get("/healthz")[0] == 200
    blocker = sqlite3.connect(service.state, timeout=10, isolation_level=None)
    seen: tuple[int, dict[str, Any]] | None = None
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        deadline = time.monotonic() + 3.5  # under SQLite's 5 s busy wait: the step waits
        while time.monotonic() < deadline:
            code, body, _ = service.get("/healthz")
            if code == 503:
                seen = code, json.loads(body)
                break
            time.sleep(0.05)
        live_code = service.get("/livez")[0]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert seen is not None, "cycles stopped but /healthz stayed 200"
    assert any(r.startswith("last cycle completed for") for r in seen[1]["reasons"]), seen
    assert seen[1]["kill_switch"] is None
    assert live_code == 503  # stalled: this is what a restart is for
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and service.get("/healthz")[0] != 200:
        time.sleep(0.05)
    assert service.get("/healthz")[0] == 200 and service.get("/livez")[0] == 200


@pytest.mark.process
def test_a_tripped_kill_switch_makes_healthz_503(service: Service) -> None:
    """Tripped as by the risk watch; the next risk watch reads it from the store."""
    from bot.store.repo import StateStore

    store = StateStore(service.state)
    try:
        store.trip_kill_switch("operator drill <b>", None, None)
    finally:
        store.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        code, body, _ = service.get("/healthz")
        if code == 503:
            break
        time.sleep(0.1)
    assert code == 503, body
    health = json.loads(body)
    assert health["kill_switch"]["reason"] == "operator drill <b>"
    assert any(r.startswith("kill switch tripped") for r in health["reasons"])
    code, body, _ = service.get("/livez")  # unhealthy, but alive: nothing for a restart
    assert code == 200 and json.loads(body)["status"] == "alive", body
    metrics = scrape(service.get("/metrics")[1])
    assert metrics[("sectorbot_kill_switch_tripped", ())] == 1
    page = service.get("/")[1]
    assert "kill switch TRIPPED: operator drill &lt;b&gt;" in page
    done = run_cli(["healthcheck"], service.state, service.state.parent, timeout=60,
                   SECTORBOT__HTTP__PORT=str(service.port))
    assert done.returncode == 1 and done.stdout.startswith("unhealthy (503)")


@pytest.mark.process
def test_a_taken_port_is_logged_and_the_daemon_trades_on(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run_cli(["run"], tmp_path / "state.sqlite3", tmp_path, timeout=120,
                       SECTORBOT__HTTP__PORT=str(port), SECTORBOT__REPLAY__TICK_SECONDS="0.001",
                       SECTORBOT__REPLAY__START="2021-03-01",
                       SECTORBOT__REPLAY__END="2021-03-08")
    assert proc.returncode == 0, proc.stderr[-2000:]
    evs = events(proc.stdout)
    failed = named(evs, "http.bind_failed")
    assert failed and failed[0]["level"] == "error" and failed[0]["port"] == port
    assert not named(evs, "http.listening")
    assert len(named(evs, "cycle.completed")) >= 5  # every replayed day of the window
    assert evs[-1]["event"] == "daemon.stopped" and evs[-1]["clean"] is True


@pytest.mark.process
def test_once_and_cycles_runs_serve_nothing(tmp_path: Path) -> None:
    proc = run_cli(["run", "--once"], tmp_path / "state.sqlite3", tmp_path,
                   SECTORBOT__HTTP__PORT="0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not [e for e in events(proc.stdout) if e["event"].startswith("http.")]


def test_a_flood_of_idle_connections_is_capped_and_the_endpoint_recovers() -> None:
    """Review finding: a thread per connection without a cap let idle connections use up
    the process's threads (the daemon's own jobs start threads too). Past the cap a
    connection is closed unanswered; once the flood ends the endpoint answers again."""
    from bot.service.http_server import MAX_CONNECTIONS, _Server

    telemetry = Telemetry("paper", get_logger())
    server = _Server(("127.0.0.1", 0), telemetry, lambda: "page", get_logger())
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS + 8)]
    try:
        time.sleep(0.5)
        assert threading.active_count() - before <= MAX_CONNECTIONS
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    code = 0
    while time.monotonic() < deadline and code != 503:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2)
        except urllib.error.HTTPError as exc:
            code = exc.code  # no cycle yet, no scheduler: stalled, but it answers
        except OSError:
            time.sleep(0.05)
    server.shutdown()
    server.server_close()
    assert code == 503
