"""A loopback GitHub answering ``/repos/{owner}/{repo}/stats/commit_activity``.

The answers have the documented shape (52 weeks of ``{days: [7 counts], total, week}``,
weeks starting Sunday 00:00 UTC); the counts are synthetic and deterministic per repository.
A test can script 202 ("computing") answers, rate limiting and unknown repositories.
"""

from __future__ import annotations

import zlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.provider_server import ScriptedFake


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


class GitHubFake(ScriptedFake):
    def __init__(self, last_day: date, repos: set[str]) -> None:
        super().__init__()
        self.last_day = last_day
        self.repos = repos

    def body(self, path: str) -> Any:
        parts = path.strip("/").split("/")
        if len(parts) == 5 and parts[0] == "repos" and parts[3:] == ["stats",
                                                                     "commit_activity"]:
            repo = f"{parts[1]}/{parts[2]}"
            if repo in self.repos:
                return weeks_for(repo, self.last_day)
        return None
