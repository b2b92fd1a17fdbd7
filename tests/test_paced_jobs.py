"""Replay jobs in service mode are paced (``Daemon._paced``): each run books the next one when
it ends. A next run due at once (a step longer than ``replay.tick_seconds``) was refused by
APScheduler while the current run still counted as running ("maximum number of running
instances reached"), and a refused one-shot job is dropped: the paper daemon stopped cycling
for good, alive and silent. ``benchmarks/soak.py`` found it after about 1,700 cycles."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bot.service.daemon import Daemon


class _Preempted(BackgroundScheduler):
    """A worker preempted right after it booked the next run (a loaded machine): the
    scheduler's thread then meets the next run while this one still counts as running."""

    def add_job(self, *args: Any, **kwargs: Any) -> Any:
        job = super().add_job(*args, **kwargs)
        if threading.current_thread().name.startswith("ThreadPoolExecutor"):
            time.sleep(0.005)
        return job


class _Stub:
    """What ``_paced`` reads from the daemon."""

    def __init__(self) -> None:
        self.stop_event = threading.Event()


def test_paced_jobs_due_at_once_are_never_dropped(caplog: pytest.LogCaptureFixture) -> None:
    stub = _Stub()
    scheduler = _Preempted(
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=UTC)
    runs = {"cycle": 0, "signals": 0, "risk_watch": 0}
    running = {"now": 0, "most": 0}
    lock = threading.Lock()

    def job(name: str) -> None:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        runs[name] += 1
        with lock:
            running["now"] -= 1

    caplog.set_level(logging.WARNING, logger="apscheduler")
    scheduler.start()
    try:
        for name in runs:  # every run is due at once: a tick of 0
            Daemon._paced(stub, scheduler, lambda n=name: job(n), name,  # type: ignore[arg-type]
                          0.0, datetime.now(UTC))
        time.sleep(1.0)
        before = dict(runs)
        time.sleep(0.5)
    finally:
        stub.stop_event.set()
        scheduler.shutdown(wait=True)
    assert "maximum number of running instances" not in caplog.text
    assert all(runs[n] > before[n] for n in runs), (before, runs)  # still going
    assert running["most"] == 1  # one worker: two runs never overlap
