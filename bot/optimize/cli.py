"""``sectorbot optimize`` on the command line: its flags, and every way it can be refused.

Everything a user can get wrong is checked before a trial runs and refused with exit 2 and one
line per problem (never a traceback, never the storage URL): the flags, the space file, the
windows, the universe, the storage (unreachable, wrong credentials, a path that cannot hold
a file) and ``--out``. A search interrupted with Ctrl-C keeps its finished trials; the same
command continues it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from bot.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, fail_config
from bot.config import ConfigError, Settings, load_universe
from bot.logs import configure_logging, get_logger, register_secrets, url_secrets

OPTIMIZE_STORAGE_ENV = "SECTORBOT_OPTIMIZE_STORAGE"
EXIT_INTERRUPTED = 130


def add_arguments(sp: argparse.ArgumentParser, day: Callable[[str], date]) -> None:
    sp.add_argument("--space", type=Path, required=True,
                    help="the search space file (TOML: [params] and [objective])")
    sp.add_argument("--trials", type=int, required=True,
                    help="finished trials the study should hold in total (a rerun resumes)")
    sp.add_argument("--out", type=Path, required=True, help="directory for the results")
    sp.add_argument("--jobs", type=int, default=1, help="worker processes on this machine")
    sp.add_argument("--study", default="sectorbot", help="study name in the storage")
    sp.add_argument("--storage", default=None,
                    help="Optuna storage URL shared by every worker (a secret; "
                         f"or set {OPTIMIZE_STORAGE_ENV}); default: a SQLite file in --out")
    sp.add_argument("--folds", type=int, default=4, help="walk-forward folds")
    sp.add_argument("--scheme", choices=("rolling", "anchored"), default="rolling",
                    help="training windows: the days before each test (rolling) or all "
                         "history from the start (anchored)")
    sp.add_argument("--train-days", type=int, default=None,
                    help="rolling training window length (default: one test window; 0: no "
                         "in-sample run)")
    sp.add_argument("--holdout-from", type=day, default=None,
                    help="keep the data from this day on out of the search (YYYY-MM-DD)")
    sp.add_argument("--start", type=day, default=None, help="first day the search may use")
    sp.add_argument("--end", type=day, default=None, help="last day the search may use")
    sp.add_argument("--data-dir", type=Path, default=None, help="replay data directory")
    sp.add_argument("--seed", type=int, default=None, help="sampler seed")
    sp.add_argument("--heartbeat", type=int, default=30,
                    help="seconds between trial heartbeats; a trial silent for three is "
                         "taken to be dead and run again")


def storage_url(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The storage URL and, when it cannot work, why (never echoing the URL itself)."""
    url = args.storage or os.environ.get(OPTIMIZE_STORAGE_ENV)
    if not url:
        return f"sqlite:///{(args.out / 'study.sqlite3').absolute()}", None
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "sqlite":
        return url, None
    if scheme in ("postgresql", "postgresql+psycopg"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return None, ("--storage: PostgreSQL needs the driver: pip install "
                          "'sectorbot[postgres]'")
        return "postgresql+psycopg://" + url.split("://", 1)[1], None
    return None, (f"--storage: unsupported scheme {scheme or '(none)'!r}; use "
                  "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB")


def without_url(text: str, url: str) -> str:
    """``text`` with every piece of the URL's user part removed: a driver's message may echo
    a host it parsed out of a password holding an unencoded ``@``."""
    rest = url.split("://", 1)[-1]
    userinfo = rest.rsplit("@", 1)[0] if "@" in rest else ""
    pieces = {url, rest, userinfo, *url_secrets(url)}
    for sep in (":", "@"):
        pieces.update(part for chunk in list(pieces) for part in chunk.split(sep))
    for piece in sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


def _flag_problems(settings: Settings, args: argparse.Namespace) -> list[str]:
    checks = (
        (args.trials >= 1, "--trials: must be at least 1"),
        (args.jobs >= 1, "--jobs: must be at least 1"),
        (args.heartbeat >= 1, "--heartbeat: must be at least 1 second"),
        (not (args.start and args.end and args.start > args.end),
         f"--start {args.start} is after --end {args.end}"),
        # Returns are annualised per day and the penalties are yearly: a multi-day step
        # would score every trial on a different scale.
        (settings.replay.step_days == 1,
         f"replay.step_days: optimize needs daily steps (1), not {settings.replay.step_days}"),
    )
    return [msg for ok, msg in checks if not ok]


def run_optimize(settings: Settings, args: argparse.Namespace) -> int:
    """Check everything, search, write the files; exit 0, 1 (a trial failed), 2 (refused)
    or 130 (interrupted: finished trials kept)."""
    from bot.optimize.folds import FoldError
    from bot.optimize.space import load_space

    problems = _flag_problems(settings, args)
    url, bad_url = storage_url(args)
    if bad_url:
        problems.append(bad_url)
    if problems:
        return fail_config(problems)
    assert url is not None
    register_secrets(url_secrets(url))
    try:
        space = load_space(args.space, settings)
        load_universe(settings.universe_file)
    except ConfigError as exc:
        return fail_config(exc.lines)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return fail_config([f"--out: cannot use {args.out}: {exc.strerror}"])
    configure_logging("info", settings.log.format)
    from bot.optimize.command import OptimizeRequest, optimize, study_plan
    from bot.optimize.study import StudyMismatch, open_study
    from bot.sources.replay import ReplayDataError

    request = OptimizeRequest(
        settings=settings, space=space, trials=args.trials, out=args.out, storage_url=url,
        config_file=args.config, study_name=args.study, jobs=args.jobs, folds=args.folds,
        scheme=args.scheme, train_days=args.train_days, holdout_from=args.holdout_from,
        start=args.start, end=args.end, data_dir=args.data_dir, seed=args.seed,
        heartbeat_seconds=args.heartbeat, log_format=settings.log.format)
    try:
        plan, _ = study_plan(request)
        open_study(plan)  # the storage answers and the study is this search's, or refused
    except (FoldError, ReplayDataError, StudyMismatch) as exc:
        return fail_config([str(exc)])
    except Exception as exc:  # the storage: unreachable, refused, unwritable; said in one line
        reason = without_url(str(getattr(exc, "orig", None) or exc).splitlines()[0], url)
        return fail_config([f"--storage: cannot open the study ({type(exc).__name__}: "
                            f"{reason}); check the URL, the server and the credentials"])
    try:
        summary = optimize(request, get_logger())
    except KeyboardInterrupt:
        print("optimize interrupted: the study keeps its finished trials; the same command "
              "continues it", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RuntimeError as exc:
        print(f"optimize failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    best = summary.get("best")
    if best:
        # stderr, as `run` does: stdout carries the JSON log lines only.
        print(f"best trial {best['number']}: objective {best['objective']:.3f} "
              f"{json.dumps(best['params'], sort_keys=True)}", file=sys.stderr)
    print(f"report: {args.out / 'report.html'}", file=sys.stderr)
    return EXIT_OK


__all__ = ["EXIT_CONFIG", "OPTIMIZE_STORAGE_ENV", "add_arguments", "run_optimize",
           "storage_url", "without_url"]
