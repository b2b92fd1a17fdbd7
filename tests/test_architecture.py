"""The pure core imports no I/O library; adapters depend on the core, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[1] / "bot" / "domain"
ALLOWED_STDLIB = {
    "__future__", "bisect", "collections", "dataclasses", "datetime", "decimal", "enum",
    "functools", "hashlib", "itertools", "json", "math", "operator", "statistics", "typing",
    "types", "abc", "re", "textwrap",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_imports_only_stdlib_maths_and_itself() -> None:
    offenders = {}
    files = sorted(DOMAIN.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        bad = {m for m in imported_modules(path)
               if m.split(".")[0] not in ALLOWED_STDLIB and not m.startswith("bot.domain")}
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_paper_mode_never_imports_ccxt(tmp_path: Path) -> None:
    """Paper mode talks to no venue: importing ccxt would only add half a second to every
    start (and to every backtest worker). A fresh interpreter runs one paper cycle and
    reports whether ccxt was loaded."""
    import subprocess
    import sys

    code = ("import sys\nfrom bot.cli import main\n"
            "try:\n    main(['run', '--cycles', '1'])\nexcept SystemExit:\n    pass\n"
            "print('CCXT', any(m.split('.')[0] == 'ccxt' for m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert "cycle.completed" in done.stderr + done.stdout, done.stderr[-2000:]
    assert "CCXT False" in done.stdout, done.stdout[-500:]


def test_signal_sources_reach_a_venue_only_through_its_port() -> None:
    """The sources read market data through ``MarketDataPort``, never a concrete adapter
    (a second venue adapter would otherwise need a second signal source)."""
    sources = Path(__file__).resolve().parents[1] / "bot" / "sources"
    offenders = {p.name: sorted(m for m in imported_modules(p)
                                if m.startswith("bot.exchange.") and m != "bot.exchange.port")
                 for p in sorted(sources.glob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_signal_providers_do_not_import_each_other() -> None:
    """Each provider stands on the shared round machinery and the HTTP client alone."""
    sources = Path(__file__).resolve().parents[1] / "bot" / "sources"
    providers = {"defillama", "github", "coingecko"}
    for name in sorted(providers):
        imported = imported_modules(sources / f"{name}.py")
        assert not {f"bot.sources.{other}" for other in providers - {name}} & imported, name


def test_signal_sources_read_kept_history_through_a_callable_not_the_store() -> None:
    """A provider that seeds its history from what the daemon kept (CoinGecko) is handed a
    read-only callable by the wiring; bot/sources never imports the store or the service."""
    sources = Path(__file__).resolve().parents[1] / "bot" / "sources"
    offenders = {p.name: sorted(m for m in imported_modules(p)
                                if m.split(".")[:2] in (["bot", "store"], ["bot", "service"]))
                 for p in sorted(sources.glob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_trading_code_reports_through_the_observer_port_only() -> None:
    """prometheus-client and the HTTP server stay in the modules that publish; the daemon
    knows only the observer port (bot/service/observer.py), so a backtest or a ``--cycles``
    run loads neither and monitoring cannot reach into trading."""
    bot = Path(__file__).resolve().parents[1] / "bot"
    publishing = {"metrics.py", "http_server.py"}
    offenders = {str(p.relative_to(bot)): sorted(bad) for p in sorted(bot.rglob("*.py"))
                 if p.name not in publishing and (bad := {
                     m for m in imported_modules(p)
                     if m.split(".")[0] == "prometheus_client" or m == "http.server"})}
    assert offenders == {}
    daemon = imported_modules(bot / "service" / "daemon.py")
    assert "bot.service.observer" in daemon
    assert not {"bot.service.telemetry", "bot.service.http_server",
                "bot.service.metrics"} & daemon
