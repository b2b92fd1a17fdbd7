"""Developer activity per sector from GitHub's commit statistics.

``/repos/{owner}/{repo}/stats/commit_activity`` returns the last 52 weeks, each with its
seven daily commit counts (merges excluded): a year of daily history on the first fetch.
A sector's ``dev_commits`` is the daily sum over its repositories
(``[sectors.X.github] repos``). GitHub answers 202 while it computes the statistics of a
repository: the client waits and asks again; still computing after its tries, the sector is
stale this round and asked again on the next. It is a slow quality signal (the engine
compares 30 days with the 90 before, at a small weight), so it is fetched daily.

A token is optional (``signals.github_token``, a secret like the exchange keys): without
one GitHub allows 60 requests an hour, ample for a daily fetch of a few dozen repositories.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, field_validator

from bot.config import SectorSources
from bot.domain.models import Series
from bot.sources.http_client import PoliteClient, ProviderError, ProviderStatusError
from bot.sources.provider_rounds import EARLIEST, Job, Round, RoundedProvider

DEV = "dev_commits"


class _Week(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    week: int
    days: list[int]

    @field_validator("days")
    @classmethod
    def _seven_counts(cls, days: list[int]) -> list[int]:
        if len(days) != 7 or any(d < 0 for d in days):
            raise ValueError("expected seven daily counts >= 0")
        return days

    @field_validator("week")
    @classmethod
    def _a_week_start(cls, week: int) -> int:
        if week < EARLIEST or week % 86_400:
            raise ValueError(f"{week} is not the unix time of a day's start")
        return week


_WEEKS = TypeAdapter(list[_Week])


class GitHubActivity(RoundedProvider):
    """Daily commits per sector, summed over its repositories."""

    name = "github"

    def __init__(self, client: PoliteClient, sources: Mapping[str, SectorSources],
                 refresh_every: timedelta = timedelta(hours=24),
                 round_budget_seconds: float = 90.0,
                 stopping: Callable[[], bool] | None = None) -> None:
        self._repos = {s: src.repos for s, src in sorted(sources.items()) if src.repos}
        super().__init__(client, [(s, DEV) for s in self._repos], refresh_every,
                         round_budget_seconds, stopping)

    def fetch(self, job: Job, round_: Round) -> Series:
        sector, _ = job
        components: dict[str, list[tuple[int, float]]] = {}
        for repo in self._repos[sector]:
            owner, _, name = repo.partition("/")
            path = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}/stats/commit_activity"
            try:
                raw = self.client.get_json(path)
            except ProviderStatusError as exc:
                if exc.status == 204:  # an empty repository: no activity to add
                    round_.dropped[f"dev {repo}"] = f"dev {repo}: empty repository"
                    continue
                if 400 <= exc.status < 500:
                    round_.dropped[f"dev {repo}"] = str(exc)
                    continue
                raise
            try:
                weeks = _WEEKS.validate_python(raw)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err.get("loc", ()))
                raise ProviderError(f"{path}: unexpected shape ({where}: {err['msg']})") \
                    from None
            components[f"dev {repo}"] = [(w.week + i * 86_400, float(n))
                                         for w in weeks for i, n in enumerate(w.days)]
        return self.summed(components, "commit", round_)
