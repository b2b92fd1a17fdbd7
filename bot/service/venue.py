"""Wiring for a real venue (testnet, demo, live): the ccxt adapter, its signals, a wall clock.

Paper mode replays history on a simulated clock; here the exchange is the source of truth
for both holdings and prices, and time is the wall clock. Secrets are unwrapped only at the
adapter's construction (``get_secret_value``) and live on inside the ccxt instances and the
adapter's scrubber; nothing in this module logs them.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot import __version__
from bot.config import ConfigError, SectorSources, Settings, load_sector_sources
from bot.domain.models import MarketKind, SectorSpec, TokenSpec, Universe
from bot.exchange.ccxt_exchange import CcxtExchange, CredentialsRejected, RetryPolicy
from bot.exchange.port import ExchangeError
from bot.service.clock import WallClock
from bot.sources.coingecko import CoinGeckoCategories, HistoryReader
from bot.sources.defillama import DefiLlamaSectors
from bot.sources.github import GitHubActivity
from bot.sources.http_cache import ResponseCache
from bot.sources.http_client import HttpPolicy, PoliteClient
from bot.sources.market import VenueSignals
from bot.sources.provider_rounds import RoundedProvider


class VenueStartupError(Exception):
    """The venue cannot be used with this configuration (keys refused, nothing listed)."""


@dataclass
class VenueSetup:
    exchange: CcxtExchange
    signals: VenueSignals
    universe: Universe
    clock: WallClock


def build_exchange(settings: Settings, universe: Universe,
                   halted: threading.Event | None = None) -> CcxtExchange:
    """The ccxt adapter for ``settings``, trading the universe's spot and perp tokens.
    ``halted`` is set by the daemon once it has stopped: the adapter then sends nothing."""
    ex = settings.exchange

    def secret(value: Any) -> str | None:
        return None if value is None else str(value.get_secret_value())

    tokens = universe.all_tokens()
    return CcxtExchange(
        ex.name, settings.mode,
        api_key=secret(ex.api_key), api_secret=secret(ex.api_secret),
        password=secret(ex.password),
        tokens=[t.symbol for t in tokens if t.spot],
        perp_tokens=[t.symbol for t in tokens if t.perp],
        max_leverage=settings.risk.max_leverage, margin_mode=ex.margin_mode,
        https_proxy=secret(ex.https_proxy), trust_env=ex.trust_env, ca_bundle=ex.ca_bundle,
        retry=RetryPolicy(read_attempts=ex.read_attempts), halted=halted)


def listed_universe(universe: Universe, exchange: CcxtExchange, log: Any) -> Universe:
    """The universe as the venue lists it: a token's spot/perp flag is kept only where its
    market exists; a token with neither market left is dropped (and logged), so the engine
    never targets a market the planner could not trade."""
    markets = exchange.load_markets()
    dropped: list[str] = []

    def fit(token: TokenSpec) -> TokenSpec | None:
        spot = token.spot and (token.symbol, MarketKind.SPOT) in markets
        perp = token.perp and (token.symbol, MarketKind.PERP) in markets
        if not spot and not perp:
            dropped.append(token.symbol)
            return None
        return dataclasses.replace(token, spot=spot, perp=perp)

    core = tuple(t for t in map(fit, universe.core) if t is not None)
    sectors = tuple(
        SectorSpec(s.name, s.bucket, tuple(t for t in map(fit, s.tokens) if t is not None),
                   s.cycle_stage)
        for s in universe.sectors)
    if dropped:
        log.info("universe.dropped", tokens=sorted(dropped), reason="not listed by the venue")
    # Tokens kept on one market only (e.g. listed spot, no perp): the engine will not use
    # the other one, which an operator comparing with sectors.toml wants to know.
    partial = sorted(f"{t} {k.value}: {why}" for (t, k), why in exchange.dropped.items()
                     if t not in dropped)
    if partial:
        log.info("universe.dropped", tokens=sorted({p.split()[0] for p in partial}),
                 reason="market not listed by the venue", markets=partial)
    if not core:
        raise VenueStartupError(f"universe: no core token is listed on {exchange.name}")
    return Universe(core=core, sectors=sectors)


def build_venue(settings: Settings, universe: Universe, lookback_days: int,
                log: Any, halted: threading.Event | None = None,
                stopping: Callable[[], bool] | None = None,
                metric_history: HistoryReader | None = None) -> VenueSetup:
    """Adapter, venue-restricted universe, signal source and clock for a non-paper mode.

    This is the start-up check, before anything is scheduled or written: markets are
    loaded (an unreachable venue shows now) and the balances read, because market data is
    public and refused keys would otherwise only show in the first cycle's signed request.
    ``metric_history`` reads the sector figures kept so far (read-only), for the providers
    that build their history as they run (CoinGecko category attention).
    """
    try:
        sources = load_sector_sources(settings.universe_file)
    except ConfigError as exc:  # checked before the venue is contacted
        raise VenueStartupError("; ".join(exc.lines)) from exc
    exchange = build_exchange(settings, universe, halted)
    try:
        restricted = listed_universe(universe, exchange, log)
        exchange.fetch_balances()
    except CredentialsRejected as exc:
        exchange.close()
        hint = exchange.key_environment_hint(exc)
        raise VenueStartupError(f"exchange.api_key: {hint}; the venue said: {exc}" if hint
                                else f"exchange.api_key: {exc}") from exc
    except ExchangeError:
        exchange.close()
        raise
    warn_withdrawals(exchange, settings.mode, log)
    signals = VenueSignals(exchange, restricted.all_tokens(), lookback_days, log,
                           sector_metrics=providers(settings, restricted, sources, stopping,
                                                    metric_history))
    return VenueSetup(exchange, signals, restricted, WallClock())


def warn_withdrawals(exchange: CcxtExchange, mode: str, log: Any) -> None:
    """Warn when the venue says the API key may withdraw (``exchange.withdrawal_permission``):
    the daemon never withdraws, so a key that can only widens the damage a leaked key does.
    Where the venue does not say, or the check fails, a debug line and nothing more."""
    try:
        allowed = exchange.withdrawal_permission()
    except Exception as exc:  # an advisory check: never fatal, never retried
        log.debug("exchange.withdrawal_permission", venue=exchange.name, mode=mode,
                  known=False, error=exchange.caller.message("withdrawal check", exc))
        return
    if allowed:
        log.warning("exchange.withdrawal_permission", venue=exchange.name, mode=mode,
                    enabled=True, advice="this API key may withdraw funds and sectorbot "
                    "never withdraws: create a key without the withdrawal permission")
    else:
        log.debug("exchange.withdrawal_permission", venue=exchange.name, mode=mode,
                  known=allowed is not None, enabled=allowed)


def providers(settings: Settings, universe: Universe, sources: Mapping[str, SectorSources],
              stopping: Callable[[], bool] | None = None,
              metric_history: HistoryReader | None = None) -> list[RoundedProvider]:
    """The sector-metrics providers switched on: DefiLlama (TVL, DEX volume, fees), GitHub
    (commits) and CoinGecko (category attention, its history seeded from
    ``metric_history``). They go out the way the venue does: the operator's proxy and CA
    bundle."""
    conf, ex = settings.signals, settings.exchange
    sectors = {s.name for s in universe.sectors}
    mine = {n: src for n, src in sources.items() if n in sectors}
    where = provider_cache_dir(settings)
    cache: ResponseCache | None = None
    if where is not None:
        try:
            cache = ResponseCache(where)
        except OSError:  # an unwritable directory costs the cache, never the start
            cache = None

    def client(url: str, headers: dict[str, str]) -> PoliteClient:
        policy = HttpPolicy(
            timeout_seconds=conf.timeout_seconds, attempts=conf.attempts,
            min_interval_seconds=conf.min_interval_seconds,
            proxy=ex.https_proxy.get_secret_value() if ex.https_proxy is not None else None,
            verify=str(ex.ca_bundle) if ex.ca_bundle is not None else True,
            trust_env=ex.trust_env)
        return PoliteClient(url, policy,
                            headers={"User-Agent": f"sectorbot/{__version__}", **headers},
                            cache=cache)

    out: list[RoundedProvider] = []
    if conf.defillama:
        out.append(DefiLlamaSectors(client(conf.defillama_url, {}), mine,
                                    top_protocols=conf.defillama_top_protocols,
                                    refresh_every=timedelta(hours=conf.refresh_hours),
                                    round_budget_seconds=conf.round_budget_seconds,
                                    stopping=stopping))
    if conf.github and any(src.repos for src in mine.values()):
        headers = {"Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": "2022-11-28"}
        if conf.github_token is not None:
            headers["Authorization"] = f"Bearer {conf.github_token.get_secret_value()}"
        out.append(GitHubActivity(client(conf.github_url, headers), mine,
                                  refresh_every=timedelta(hours=conf.github_refresh_hours),
                                  round_budget_seconds=conf.round_budget_seconds,
                                  stopping=stopping))
    if conf.coingecko and any(src.coingecko_categories for src in mine.values()):
        headers = {"Accept": "application/json"}
        if conf.coingecko_api_key is not None:
            headers["x-cg-demo-api-key"] = conf.coingecko_api_key.get_secret_value()
        out.append(CoinGeckoCategories(client(conf.coingecko_url, headers), mine,
                                       refresh_every=timedelta(hours=conf.refresh_hours),
                                       round_budget_seconds=conf.round_budget_seconds,
                                       stopping=stopping, history=metric_history))
    return out


def provider_cache_dir(settings: Settings) -> Path | None:
    """Where provider answers are kept (``bot.sources.http_cache``): ``signals.cache_dir``,
    else ``provider-cache`` beside a state file; None (no cache) when switched off or the
    state is a database URL without a ``cache_dir``."""
    conf = settings.signals
    if not conf.cache:
        return None
    if conf.cache_dir is not None:
        return conf.cache_dir
    if settings.state.url is None:
        return settings.state.path.parent / "provider-cache"
    return None


__all__ = ["VenueSetup", "VenueStartupError", "WallClock", "build_exchange", "build_venue",
           "listed_universe", "warn_withdrawals"]
