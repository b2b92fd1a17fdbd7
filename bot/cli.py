"""Command line: ``sectorbot run | check-config | status | explain | backtest | optimize``.

Exit status: 0 success, 1 runtime failure, 2 invalid configuration or refused start (nothing
was started and nothing was written), 3 (``status``) a daemon holds the store but its last
cycle is older than ``/healthz`` allows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from bot import __version__
from bot.config import ConfigError, Settings, load_settings, load_universe
from bot.logs import (
    configure_logging,
    get_logger,
    install_scrubbing_excepthooks,
    register_secrets,
)

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
LIVE_FLAG = "--i-understand-live-trading"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sectorbot", description=__doc__)
    p.add_argument("--version", action="version", version=f"sectorbot {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--config", type=Path, default=None,
                        help="TOML config file (default: the built-in paper-mode defaults)")
        return sp

    run = with_config(sub.add_parser("run", help="run the daemon"))
    group = run.add_mutually_exclusive_group()
    group.add_argument("--once", action="store_true", help="run one full cycle and exit")
    group.add_argument("--cycles", type=int, metavar="N", help="run N cycles and exit")
    run.add_argument("--log-format", choices=["json", "console"], default=None)
    run.add_argument(LIVE_FLAG, dest="live_ok", action="store_true",
                     help="required to start in live mode (real money)")
    with_config(sub.add_parser("check-config", help="print the effective config, secrets masked"))
    status = with_config(sub.add_parser(
        "status", help="whether a daemon runs, positions, P&L and last decision (exit 3: a "
                       "running daemon's last cycle is stale)"))
    status.add_argument("--json", action="store_true", help="one JSON object on stdout")
    for name, what in (("orders", "the journalled orders, newest last"),
                       ("decisions", "the decisions, newest last (ids for `explain`)")):
        listing = with_config(sub.add_parser(name, help=what))
        listing.add_argument("--limit", type=int, default=20, metavar="N",
                             help="the last N (default 20)")
        listing.add_argument("--json", action="store_true", help="a JSON list on stdout")
    with_config(sub.add_parser("resume", help="clear a tripped kill switch"))
    with_config(sub.add_parser("healthcheck", help="exit 0 if the running daemon's /healthz "
                                                   "says healthy (Docker HEALTHCHECK)"))
    backtest = with_config(sub.add_parser(
        "backtest", help="run the strategy over history and write a report"))
    backtest.add_argument("--out", type=Path, required=True,
                          help="directory for report.html, metrics.json, equity.csv, trades.csv")
    backtest.add_argument("--data-dir", type=Path, default=None,
                          help="replay data (default: replay.data_dir, else the bundled sample)")
    backtest.add_argument("--start", type=_day, default=None, help="first day (YYYY-MM-DD)")
    backtest.add_argument("--end", type=_day, default=None, help="last day (YYYY-MM-DD)")
    signals = with_config(sub.add_parser(
        "signals", help="print the current sector signals without trading"))
    signals.add_argument("--json", action="store_true", help="one JSON object on stdout")
    signals.add_argument("--as-of", type=_day, default=None, dest="as_of",
                         help="paper mode: the day whose close to read (default: the last)")
    venues = with_config(sub.add_parser(
        "venues", help="compare the supported venues: fees, funding interval, minimum "
                       "order sizes, the current plan's cost (reads only, never trades)"))
    venues.add_argument("--json", action="store_true", help="one JSON object on stdout")
    export = with_config(sub.add_parser(
        "export-signals", help="write the signals the daemon saw, as first seen, as replay "
                               "data"))
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path,
                        help="the sector_metrics.csv to write (docs/data-format.md)")
    target.add_argument("--replay-dir", type=Path, dest="replay_dir",
                        help="a new replay directory: the venue's candles and funding, the "
                             "provider figures and PROVENANCE.md (for backtest --data-dir)")
    from bot.optimize.cli import add_arguments as optimize_arguments

    optimize_arguments(with_config(sub.add_parser(
        "optimize", help="search parameters on walk-forward folds of the backtest")), _day)
    evidence = with_config(sub.add_parser(
        "evidence", help="measure each signal's predictive power on the replay data"))
    evidence.add_argument("--out", type=Path, required=True,
                          help="directory for evidence.json and ic_daily.csv")
    evidence.add_argument("--data-dir", type=Path, default=None, help="replay data directory")
    evidence.add_argument("--start", type=_day, default=None, help="first day (YYYY-MM-DD)")
    evidence.add_argument("--end", type=_day, default=None, help="last day (YYYY-MM-DD)")
    explain = with_config(sub.add_parser("explain", help="explain the last or a given decision"))
    explain.add_argument("decision_id", nargs="?", help="decision id (prefix); default: last")
    return p


def fail_config(lines: Sequence[str]) -> int:
    """One ``config error:`` line per problem. A key, value or path may hold a newline or
    another line break (TOML allows any character in a quoted key): those are escaped, so
    each problem stays one line."""
    for line in lines:
        print(f"config error: {_one_line(line)}", file=sys.stderr)
    return EXIT_CONFIG


def _one_line(text: str) -> str:
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        return fail_config(exc.lines)
    register_secrets(settings.secret_values())
    if args.command == "check-config":
        problems = _referenced_files_problems(settings)
        if problems:
            return fail_config(problems)
        print(json.dumps(settings.public_dict(), indent=2, sort_keys=True))
        return EXIT_OK
    if args.command == "status":
        return _status(settings, args.json)
    if args.command in ("orders", "decisions"):
        return _listing(settings, args.command, args.limit, args.json)
    if args.command == "explain":
        return _explain(settings, args.decision_id)
    if args.command == "healthcheck":
        return _healthcheck(settings)
    if args.command == "resume":
        return _resume(settings)
    if args.command == "backtest":
        return _backtest(settings, args)
    if args.command == "optimize":
        from bot.optimize.cli import run_optimize

        return run_optimize(settings, args)
    if args.command == "evidence":
        return _evidence(settings, args)
    if args.command == "signals":
        return _signals(settings, args)
    if args.command == "export-signals":
        if args.replay_dir is not None:
            return _export_replay_dir(settings, args.replay_dir)
        return _export_signals(settings, args.out)
    if args.command == "venues":
        return _venues(settings, args.json)
    return _run(settings, args)


def _referenced_files_problems(settings: Settings) -> list[str]:
    """``check-config`` also reads what the settings point at (the universe file, the store
    URL's driver), so a config it accepts does not fail at start-up on those instead."""
    from bot.config import load_sector_sources
    from bot.store.preflight import StateFileError, check_target

    problems: list[str] = []
    for load in (load_universe, load_sector_sources):
        try:
            load(settings.universe_file)
        except ConfigError as exc:
            problems += [line for line in exc.lines if line not in problems]
    try:
        check_target(settings.state.target())
    except StateFileError as exc:
        problems.append(str(exc))
    return problems


def _check_store(settings: Settings, *, write: bool, create: bool) -> int | None:
    """The store preflight (:mod:`bot.store.preflight`): None if the store can be opened,
    else the exit status after one line on stderr (2: unusable store, 1: no state yet)."""
    from bot.store.preflight import NoStateYet, StateFileError, check_state_file, check_target

    try:
        target = check_target(settings.state.target())
        if target.path is not None:
            check_state_file(target.path, write=write, create=create)
    except StateFileError as exc:
        return fail_config([str(exc)])
    except NoStateYet as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILURE
    return None


def _run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.mode == "live" and not args.live_ok:
        return fail_config([f"mode: live trading refused without {LIVE_FLAG}"])
    if args.cycles is not None and args.cycles < 1:
        return fail_config(["--cycles: must be at least 1"])
    refused = _check_store(settings, write=True, create=True)
    if refused is not None:  # before any log line: nothing started, the file untouched
        return refused
    configure_logging(settings.log.level, args.log_format or settings.log.format)
    log = get_logger()
    from bot.secrets_mode import secrets_file_warning

    too_open = secrets_file_warning(args.config)
    if too_open is not None:  # warned, not refused (docs/reliability.md, Security)
        log.warning("config.secrets_file_mode", detail=too_open)
    service = not (args.once or args.cycles)
    telemetry = None
    if service and settings.http.enabled:  # /healthz, /metrics and the dashboard
        from bot.service.telemetry import Telemetry

        telemetry = Telemetry(settings.mode, log)
    alerts = None
    if settings.alerts.enabled:  # sent from a thread of their own, off the trading path
        from bot.service.alerts import AlertObserver

        alerts = AlertObserver(settings.alerts, log, settings.mode)
    from bot.service.observer import DaemonObserver, ObserverChain

    observer: DaemonObserver | None = (
        ObserverChain([telemetry, alerts]) if telemetry is not None and alerts is not None
        else telemetry or alerts)
    try:
        code = _run_daemon(settings, args, log, service, observer, telemetry)
    finally:
        if alerts is not None:
            alerts.close()
    return code


def _run_daemon(settings: Settings, args: argparse.Namespace, log: Any, service: bool,
                observer: Any, telemetry: Any) -> int:
    from bot.exchange.port import ExchangeError
    from bot.service.daemon import Daemon, StartupError
    from bot.sources.replay import ReplayDataError
    from bot.store.migrate import SchemaError

    try:
        daemon = Daemon(settings, log, observer=observer)
    except ConfigError as exc:  # the universe file, read at start
        return fail_config(exc.lines)
    except (StartupError, ReplayDataError) as exc:
        return fail_config([str(exc)])
    except SchemaError as exc:  # a newer sectorbot's store: left as it is
        return fail_config([f"state: {exc}"])
    except ExchangeError as exc:  # venue unreachable at start-up: say so, no traceback
        log.error("daemon.start_failed", error=str(exc), error_type=type(exc).__name__)
        print(f"start-up failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if not service:
        code = daemon.run_cycles(1 if args.once else args.cycles)
    elif telemetry is None:
        code = daemon.run_forever()
    else:  # bound only now: the daemon holds its store's owner lock
        from bot.service.http_server import run_monitored

        code = run_monitored(daemon, telemetry, settings, log)
    if daemon.summary:
        print(summary_line(daemon.summary), file=sys.stderr)
    return code


def _healthcheck(settings: Settings) -> int:
    """Ask the running daemon's ``/healthz`` (http.host/port of this config); 0 if healthy."""
    if not settings.http.enabled:
        print("healthcheck: http.enabled is false; the daemon serves no /healthz",
              file=sys.stderr)
        return EXIT_FAILURE
    from bot.service.http_server import probe

    code, body = probe(settings.http)
    print(f"{body.get('status', 'unknown')} ({code or 'no answer'})"
          + "".join(f"; {r}" for r in body.get("reasons", [])))
    return EXIT_OK if code == 200 else EXIT_FAILURE


def _signals(settings: Settings, args: argparse.Namespace) -> int:
    """The sector table the engine would decide on now; nothing written, nothing sent."""
    if args.as_of is not None and settings.mode != "paper":
        return fail_config(["--as-of: only in paper mode (a venue answers for now)"])
    configure_logging("warning", "json", stream=sys.stderr)
    from bot.domain.explain import render_signals
    from bot.exchange.port import ExchangeError
    from bot.service.daemon import StartupError
    from bot.service.signal_table import current_table
    from bot.service.venue import VenueStartupError
    from bot.sources.replay import ReplayDataError

    try:
        table = current_table(settings, get_logger(), args.as_of)
    except ConfigError as exc:
        return fail_config(exc.lines)
    except (StartupError, ReplayDataError, VenueStartupError) as exc:
        return fail_config([str(exc)])
    except ExchangeError as exc:
        print(f"signals failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(table.to_json(), sort_keys=True))
    else:
        print(render_signals(table.as_of, table.report.scores, table.ages, table.stale,
                             table.source), end="")
    return EXIT_OK


def _venues(settings: Settings, as_json: bool) -> int:
    """The supported venues side by side (bot/service/venue_compare.py); only the configured
    venue is contacted, with reads only, and the store is opened read-only."""
    configure_logging("warning", "json", stream=sys.stderr)
    from bot.service.venue_compare import compare, render, to_json

    try:
        comparison = compare(settings, load_universe(settings.universe_file))
    except ConfigError as exc:
        return fail_config(exc.lines)
    print(json.dumps(to_json(comparison), sort_keys=True) if as_json else render(comparison))
    return EXIT_OK


def _evidence(settings: Settings, args: argparse.Namespace) -> int:
    """The signal-evidence report (docs/signals.md); reads the replay data, writes ``--out``."""
    problems = _data_dir_problem(args.data_dir) + _out_problem(args.out)
    if problems:
        return fail_config(problems)
    configure_logging("warning", "json", stream=sys.stderr)
    from bot.research.command import render, run_evidence
    from bot.sources.replay import ReplayDataError

    try:
        summary = run_evidence(settings, args.out, get_logger(), data_dir=args.data_dir,
                               start=args.start, end=args.end)
    except ConfigError as exc:
        return fail_config(exc.lines)
    except (ReplayDataError, ValueError) as exc:
        return fail_config([str(exc)])
    print(render(summary), end="")
    return EXIT_OK


def _data_dir_problem(data_dir: Path | None) -> list[str]:
    """``--data-dir`` named in the error, not just a path deep in the replay loader."""
    if data_dir is None or data_dir.is_dir():
        return []
    what = "does not exist" if not data_dir.exists() else "is not a directory"
    return [f"--data-dir: {data_dir} {what}; give a replay data directory "
            "(docs/data-format.md)"]


def _out_problem(out: Path) -> list[str]:
    if out.exists() and not out.is_dir():
        return [f"--out: {out} is a file; give a directory"]
    return []


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def _backtest(settings: Settings, args: argparse.Namespace) -> int:
    """Run the paper daemon over history on a throwaway store, then write the report."""
    if args.start and args.end and args.start > args.end:
        return fail_config([f"--start {args.start} is after --end {args.end}"])
    problems = _data_dir_problem(args.data_dir) + _out_problem(args.out)
    if problems:
        return fail_config(problems)
    if (args.out / ".state").exists():
        return fail_config([f"--out: {args.out} holds an earlier backtest; choose an empty "
                             "directory"])
    configure_logging("warning", settings.log.format)
    from bot.backtest.command import backtest
    from bot.backtest.runner import tty_progress
    from bot.service.daemon import StartupError
    from bot.sources.replay import ReplayDataError

    try:
        # Bound once: a lazy logger re-resolves itself on every call, even for the info
        # lines a backtest filters out (about 5 us each, some 20 a step).
        result = backtest(settings, args.out, get_logger().bind(), data_dir=args.data_dir,
                          start=args.start, end=args.end, progress=tty_progress())
    except ConfigError as exc:
        return fail_config(exc.lines)
    except (ReplayDataError, ValueError, StartupError) as exc:
        return fail_config([str(exc)])
    print(summary_line(result.metrics))
    print(f"report: {args.out / 'report.html'}")
    return EXIT_OK


def summary_line(metrics: dict) -> str:  # type: ignore[type-arg]
    """One line a user reads first: the strategy against BTC and the static buckets."""
    s = metrics["strategy"]
    parts = [f"sectorbot {s['total_return']:+.1%} (Sharpe {s['sharpe']:.2f}, "
             f"max drawdown {s['max_drawdown']:.1%})"]
    for name in ("BTC buy and hold", "static buckets"):
        b = metrics["benchmarks"].get(name)
        if b:
            parts.append(f"{name} {b['total_return']:+.1%} (Sharpe {b['sharpe']:.2f}, "
                         f"max drawdown {b['max_drawdown']:.1%})")
    return f"{metrics['period']}: " + "; ".join(parts)


def _open_store(settings: Settings, read_only: bool = False):  # type: ignore[no-untyped-def]
    """The state store, or the exit status (said on stderr: 1 no state yet, 2 a store that
    cannot be used). ``read_only`` for commands that only look: they take no owner lock, so
    they work beside a running daemon, and write nothing."""
    from bot.store.migrate import SchemaError
    from bot.store.repo import StateStore

    refused = _check_store(settings, write=not read_only, create=False)
    if refused is not None:
        return refused
    try:
        return StateStore(settings.state.target(), read_only=read_only)
    except SchemaError as exc:
        return fail_config([f"state: {exc}"])


def _status(settings: Settings, as_json: bool = False) -> int:
    """Exit 3 (``EXIT_STALLED``) when a daemon holds the store and its last cycle is older
    than /healthz allows."""
    store = _open_store(settings, read_only=True)
    if isinstance(store, int):
        return store
    try:
        from bot.service.status import (
            EXIT_STALLED,
            daemon_state,
            render_status,
            status_json,
        )
        from bot.store.engine import parse_target
        from bot.store.owner import holder_of

        state = daemon_state(store, settings, holder_of(parse_target(settings.state.target())))
        if as_json:
            print(json.dumps(status_json(store, state), sort_keys=True))
        else:
            print(render_status(store, state))
    finally:
        store.close()
    return EXIT_STALLED if state.stalled else EXIT_OK


def _listing(settings: Settings, what: str, limit: int, as_json: bool) -> int:
    """``sectorbot orders`` / ``decisions``: the last ``limit`` rows, read-only."""
    if limit < 1:
        return fail_config(["--limit: must be at least 1"])
    store = _open_store(settings, read_only=True)
    if isinstance(store, int):
        return store
    from bot.service import status as st

    try:
        if what == "orders":
            orders = st.recent_orders(store, limit)
            print(json.dumps([st.order_json(o) for o in orders], sort_keys=True) if as_json
                  else st.render_orders(orders))
        else:
            decisions = st.recent_decisions(store, limit)
            print(json.dumps([st.decision_json(d, n) for d, n in decisions], sort_keys=True)
                  if as_json else st.render_decisions(decisions))
    finally:
        store.close()
    return EXIT_OK


def _export_signals(settings: Settings, out: Path) -> int:
    """The sector figures a daemon on a venue kept as first seen, in the replay format, so
    a later backtest replays the days with what the engine knew."""
    if out.exists():
        return fail_config([f"--out: {out} exists; choose a new file"])
    store = _open_store(settings, read_only=True)
    if isinstance(store, int):
        return store
    try:
        rows = store.sector_metric_points()
    finally:
        store.close()
    from bot.service.replay_export import metrics_csv

    out.parent.mkdir(parents=True, exist_ok=True)
    try:  # "x": a file that appeared since the check above is never overwritten
        with out.open("x", encoding="utf-8") as f:
            f.write(metrics_csv(rows))
    except FileExistsError:
        return fail_config([f"--out: {out} exists; choose a new file"])
    print(f"{len(rows)} figures written to {out}", file=sys.stderr)
    return EXIT_OK


def _export_replay_dir(settings: Settings, out: Path) -> int:
    """Everything a daemon on a venue kept as first seen (the venue's candles and funding,
    the provider figures), as a replay directory a backtest reads what it read from."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        return fail_config([f"--replay-dir: {out} exists and is not empty; choose a new "
                            "directory"])
    store = _open_store(settings, read_only=True)
    if isinstance(store, int):
        return store
    from bot.service.replay_export import ExportTargetExists, write_replay_dir

    try:
        if not store.newest_kept_candles():
            print(f"no venue candles kept in {store.location}: a daemon in testnet, demo "
                  "or live mode keeps them as it runs", file=sys.stderr)
            return EXIT_FAILURE
        done = write_replay_dir(store, out, mode=settings.mode,
                                exchange=settings.exchange.name)
    except ExportTargetExists:  # it appeared since the check above: left untouched
        return fail_config([f"--replay-dir: {out} exists and is not empty; choose a new "
                            "directory"])
    finally:
        store.close()
    print(f"{sum(map(len, done.candles.values()))} candles of {len(done.candles)} tokens, "
          f"{sum(map(len, done.funding.values()))} funding readings and "
          f"{len(done.metrics)} sector figures written to {out}", file=sys.stderr)
    return EXIT_OK


def _resume(settings: Settings) -> int:
    from bot.service.risk_watch import clear_kill_switch

    store = _open_store(settings)
    if isinstance(store, int):
        return store
    try:
        tripped = clear_kill_switch(store)
    finally:
        store.close()
    print(f"kill switch cleared (tripped {tripped.tripped_at:%Y-%m-%d %H:%M} UTC: "
          f"{tripped.reason})" if tripped else "kill switch was armed")
    return EXIT_OK


def _explain(settings: Settings, decision_id: str | None) -> int:
    from bot.domain.codec import decision_from_dict
    from bot.domain.explain import render_decision

    store = _open_store(settings, read_only=True)
    if isinstance(store, int):
        return store
    try:
        stored = store.decision(decision_id) if decision_id else store.last_decision()
        if stored is None:
            print(f"no decision {decision_id or ''} in {settings.state.path}".replace("  ", " "),
                  file=sys.stderr)
            return EXIT_FAILURE
        universe = load_universe(settings.universe_file)
        print(render_decision(decision_from_dict(stored.payload), universe))
        from bot.service.status import execution_json, render_execution

        print(render_execution(execution_json(store, stored.decision_id)))
    finally:
        store.close()
    return EXIT_OK


def entry() -> None:
    """Console-script entry: a closed pipe (``sectorbot status | head``) is not an error.
    A traceback nothing caught is printed with the secrets masked, like the log."""
    install_scrubbing_excepthooks()
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
