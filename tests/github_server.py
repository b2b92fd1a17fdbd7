"""A loopback GitHub answering ``/repos/{owner}/{repo}/stats/commit_activity``.

The answers have the documented shape (52 weeks of ``{days: [7 counts], total, week}``,
weeks starting Sunday 00:00 UTC); the counts are synthetic and deterministic per repository.
A test can script 202 ("computing") answers, rate limiting and unknown repositories.
"""

from __future__ import annotations

import json
import threading
import zlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.defillama_server import Fault


def weeks_for(repo: str, last_day: date) -> list[dict[str, Any]]:
    """52 weeks ending with the week that holds ``last_day``; counts from the repo name."""
    sunday = last_day - timedelta(days=(last_day.weekday() + 1) % 7)
    seed = zlib.crc32(repo.encode())
    out = []
    for w in range(52):
        start = sunday - timedelta(weeks=51 - w)
        days = [(seed >> (i % 16)) % 7 + (w % 5) + i for i in range(7)]
        out.append({"days": days, "total": sum(days),
                    "week": int(datetime(start.year, start.month, start.day,
                                         tzinfo=UTC).timestamp())})
    return out


class GitHubFake:
    def __init__(self, last_day: date, repos: set[str]) -> None:
        self.last_day = last_day
        self.repos = repos
        self.faults: dict[str, list[Fault]] = {}
        self.requests: list[str] = []
        self.headers_seen: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def fail(self, path: str, *faults: Fault) -> None:
        with self.lock:
            self.faults.setdefault(path, []).extend(faults)

    def count(self, prefix: str = "") -> int:
        return sum(1 for p in self.requests if p.startswith(prefix))

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes, float]:
        with self.lock:
            self.requests.append(path)
            queued = self.faults.get(path)
            fault = queued.pop(0) if queued else None
        if fault is not None:
            return fault.status, fault.headers, fault.body or b"", fault.stall
        parts = path.strip("/").split("/")
        if len(parts) == 5 and parts[0] == "repos" and parts[3:] == ["stats",
                                                                     "commit_activity"]:
            repo = f"{parts[1]}/{parts[2]}"
            if repo in self.repos:
                return 200, {}, json.dumps(weeks_for(repo, self.last_day)).encode(), 0.0
        return 404, {}, b'{"message": "Not Found"}', 0.0
