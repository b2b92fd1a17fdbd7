"""Configuration: one validated object, loaded once and passed down.

Sources, strongest first: environment (``SECTORBOT__SECTION__KEY``), the secrets file, the TOML
config file, built-in defaults. API keys are refused in the TOML file because that file is
meant to be committed; they come from the environment or a separate secrets file.

Every model forbids unknown keys so a typo fails loudly instead of silently running with a
default; ``ConfigError`` carries one line per bad field naming the field and the reason.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from bot.domain.models import Bucket, SectorSpec, TokenSpec, Universe
from bot.domain.params import StrategyParams
from bot.domain.risk_limits import HARD_MAX_LEVERAGE, RiskLimits
from bot.logs import url_secrets

Mode = Literal["paper", "testnet", "demo", "live"]
ExchangeName = Literal["paper", "binance", "bybit", "okx"]

SECRET_FIELDS = ("api_key", "api_secret", "password")
ALERT_SECRET_FIELDS = ("webhook_url", "telegram_bot_token")


class ConfigError(Exception):
    """Invalid configuration; ``lines`` holds one ``field: reason`` line per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExchangeSettings(_Section):
    """Which venue to trade on. ``paper`` is the in-process simulated exchange."""

    name: ExchangeName = "paper"
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    password: SecretStr | None = None
    margin_mode: Literal["isolated", "cross"] = "isolated"
    https_proxy: SecretStr | None = None
    """Proxy for every venue request (``http://proxy:3128``); ccxt ignores ``HTTPS_PROXY``.
    A secret: corporate proxies often carry credentials (``http://user:pass@proxy:3128``),
    so the URL is masked in reprs and both it and its password are scrubbed from logs."""
    trust_env: bool = False
    """Honour ``HTTPS_PROXY``/``REQUESTS_CA_BUNDLE`` from the environment (off: ccxt's default)."""
    ca_bundle: Path | None = None
    """PEM file of CAs to verify the venue's TLS against (a TLS-intercepting corporate proxy)."""
    read_attempts: int = Field(5, ge=1, le=10)
    """Tries per venue read before it counts as failed (its signal then goes stale)."""
    auto_transfer: bool = False
    """Move USDT between the spot and futures wallets where the venue keeps two (Binance),
    so each side can pay for its legs. Binance's demo hosts have no wallet API: live only.
    Off, each side is sized on its own wallet and ``status`` lists what is unfunded."""
    max_transfer_usdt: float = Field(1000.0, gt=0)
    """The most one transfer may move (one per decision)."""


class PaperSettings(_Section):
    """The simulated exchange used in paper mode."""

    starting_cash: float = Field(10_000.0, gt=0)
    spot_fee_bps: float = Field(10.0, ge=0, le=100)
    perp_fee_bps: float = Field(5.0, ge=0, le=100)
    slippage_bps: float = Field(5.0, ge=0, le=500)
    depth_notional: float = Field(0.0, ge=0)
    """Most USDT one market order fills; the rest expires (0: unlimited). Simulates a thin
    book, so partial fills can be rehearsed in paper mode."""


class ReplaySettings(_Section):
    """Replayed history: ``data_dir`` unset means the sample bundled with the package.

    ``start`` unset means ``warmup_days`` after the data's first day, so the engine has the
    history its 200-day regime filter and 90-day funding percentile need.
    """

    data_dir: Path | None = None
    start: date | None = None
    end: date | None = None
    """Last simulated day (default: the data's last day)."""
    warmup_days: int = Field(240, ge=0, le=3650)
    step_days: int = Field(1, ge=1, le=30)
    tick_seconds: float = Field(1.0, gt=0, le=86_400)


class SchedulerSettings(_Section):
    """Job intervals for live/testnet modes (replay ticks use ``replay.tick_seconds``)."""

    signal_refresh_seconds: float = Field(3_600.0, gt=0)
    cycle_seconds: float = Field(86_400.0, gt=0)
    risk_watch_seconds: float = Field(60.0, gt=0)
    shutdown_timeout_seconds: float = Field(8.0, gt=0, le=60)


class StateSettings(_Section):
    """Where state lives: a SQLite file, or a database URL (``postgresql+psycopg://...``).

    A URL may carry a password, so give it through ``SECTORBOT__STATE__URL`` or the secrets
    file, like the exchange keys; it is masked in ``check-config``.
    """

    path: Path = Path("state/sectorbot.sqlite3")
    url: SecretStr | None = None

    def target(self) -> Path | str:
        return self.url.get_secret_value() if self.url is not None else self.path


class RiskSettings(_Section):
    """Risk limits; ``max_leverage`` is refused above 5 whatever else is configured."""

    max_leverage: float = Field(3.0, gt=0, le=HARD_MAX_LEVERAGE)
    max_account_leverage: float = Field(1.5, gt=0, le=HARD_MAX_LEVERAGE)
    stop_loss_pct: float = Field(8.0, gt=0, lt=100)
    max_drawdown_pct: float = Field(25.0, gt=0, lt=100)
    funding_exit_apr_pct: float = Field(30.0, gt=0)
    liquidation_buffer_pct: float = Field(10.0, ge=0, lt=100)
    max_slippage_pct: float = Field(2.0, gt=0, lt=100)
    kill_switch_action: Literal["freeze", "to_core", "to_cash"] = "to_cash"
    stop_cooldown_days: float = Field(7.0, ge=0, le=365)

    def limits(self) -> RiskLimits:
        return RiskLimits(
            max_leverage=self.max_leverage,
            max_account_leverage=self.max_account_leverage,
            stop_loss_fraction=self.stop_loss_pct / 100,
            max_drawdown_fraction=self.max_drawdown_pct / 100,
            funding_exit_apr=self.funding_exit_apr_pct / 100,
            liquidation_buffer_fraction=self.liquidation_buffer_pct / 100,
            max_slippage_fraction=self.max_slippage_pct / 100,
            kill_switch_action=self.kill_switch_action,
            stop_cooldown_days=self.stop_cooldown_days,
        )


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class HttpSettings(_Section):
    """The health, metrics and dashboard endpoint of a daemon run as a service
    (``docs/operations.md``). Loopback by default: the dashboard is read-only and shows no
    secret, but it shows the book, which is nobody else's business."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9310, ge=0, le=65535)
    """0: an ephemeral port (tests); the port bound is logged as ``http.listening``."""


class SignalSettings(_Section):
    """Sector signals from public providers, in testnet/demo/live (replay reads its files)."""

    defillama: bool = True
    defillama_url: str = "https://api.llama.fi"
    defillama_top_protocols: int = Field(10, ge=1, le=50)
    """How many of a category's largest protocols make its TVL history."""
    refresh_hours: float = Field(6.0, gt=0)
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    attempts: int = Field(3, ge=1, le=10)
    min_interval_seconds: float = Field(1.0, ge=0)
    """Between two requests to one provider (DefiLlama publishes no limit: be polite)."""
    round_budget_seconds: float = Field(120.0, gt=0, le=900)
    """The longest one provider round may take; what is left is fetched in the next one."""
    cache: bool = True
    """Keep provider answers on disk and ask conditionally (ETag / Last-Modified: a 304
    reuses the kept body)."""
    cache_dir: Path | None = None
    """Where; by default ``provider-cache`` beside the state file (with a database URL and
    no ``cache_dir``: no cache)."""
    github: bool = True
    github_url: str = "https://api.github.com"
    github_token: SecretStr | None = None
    """Optional (60 requests an hour without); a secret: environment or secrets file only."""
    github_refresh_hours: float = Field(24.0, gt=0)
    coingecko: bool = True
    coingecko_url: str = "https://api.coingecko.com/api/v3"
    coingecko_api_key: SecretStr | None = None
    """Optional CoinGecko demo key (sent as ``x-cg-demo-api-key``); a secret: environment or
    secrets file only."""


class AlertSettings(_Section):
    """Operator alerts (``docs/operations.md``): a kill switch tripped, a stop-out, a funding
    exit, a reconcile anomaly, repeated failures, the daemon's start and stop, sent to a
    Slack/Discord-compatible webhook and/or a Telegram chat. Off by default. The webhook URL
    and the bot token are secrets: environment or secrets file only, like the exchange keys."""

    enabled: bool = False
    webhook_url: SecretStr | None = None
    """A Slack or Discord incoming webhook (its URL is the credential)."""
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    repeat_minutes: float = Field(60.0, ge=0, le=10_080)
    """The same alert (same kind, same token) at most once per this many minutes."""
    failures_threshold: int = Field(3, ge=1, le=100)
    """Consecutive failures of one job before it is alerted."""
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    attempts: int = Field(3, ge=1, le=10)
    retry_wait_seconds: float = Field(2.0, ge=0, le=60)
    """First pause between two attempts (doubled each time)."""
    queue_size: int = Field(100, ge=1, le=10_000)
    """Alerts waiting to be sent; when full, the oldest is dropped (and counted)."""

    @model_validator(mode="after")
    def _channels(self) -> AlertSettings:
        if self.telegram_bot_token is not None and not self.telegram_chat_id:
            raise ValueError("telegram_chat_id is needed with telegram_bot_token")
        if self.enabled and self.webhook_url is None and self.telegram_bot_token is None:
            raise ValueError("enabled needs a channel: set SECTORBOT__ALERTS__WEBHOOK_URL "
                             "or SECTORBOT__ALERTS__TELEGRAM_BOT_TOKEN (with telegram_chat_id)")
        return self


@dataclass(frozen=True)
class SectorSources:
    """Where a sector's metrics come from: DefiLlama chains and categories
    (``[sectors.X.defillama]``) and GitHub repositories (``[sectors.X.github]``)."""

    chains: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    repos: tuple[str, ...] = ()
    coingecko_categories: tuple[str, ...] = ()
    """CoinGecko category ids (``[sectors.X.coingecko] categories``): category attention."""


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix="SECTORBOT__",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    mode: Mode = "paper"
    universe_file: Path | None = None
    exchange: ExchangeSettings = ExchangeSettings()
    paper: PaperSettings = PaperSettings()
    replay: ReplaySettings = ReplaySettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    state: StateSettings = StateSettings()
    risk: RiskSettings = RiskSettings()
    strategy: StrategyParams = StrategyParams()
    signals: SignalSettings = SignalSettings()
    log: LogSettings = LogSettings()
    http: HttpSettings = HttpSettings()
    alerts: AlertSettings = AlertSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment beats the files (passed in as init values), as operators expect.
        return (env_settings, init_settings)

    @model_validator(mode="before")
    @classmethod
    def _one_leverage_cap(cls, data: Any) -> Any:
        """``risk.max_leverage`` is the only cap: the engine's copy is derived from it."""
        if not isinstance(data, dict):
            return data
        strategy = data.get("strategy")
        strategy = dict(strategy) if isinstance(strategy, dict) else {}
        if "max_leverage" in strategy:
            raise ValueError("strategy.max_leverage: not settable; the engine uses "
                             "risk.max_leverage")
        risk_raw = data.get("risk")
        risk: dict[str, Any] = risk_raw if isinstance(risk_raw, dict) else {}
        cap = risk.get("max_leverage", RiskSettings.model_fields["max_leverage"].default)
        try:
            cap_value = float(cap)
        except (TypeError, ValueError):
            return data  # risk.max_leverage reports its own error
        if 0 < cap_value <= HARD_MAX_LEVERAGE:
            strategy["max_leverage"] = cap_value
            data = {**data, "strategy": strategy}
        return data

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        problems: list[str] = []
        if self.mode == "paper" and self.exchange.name != "paper":
            problems.append("exchange.name: paper mode trades on the simulated exchange only")
        if self.mode != "paper" and self.exchange.name == "paper":
            problems.append(f"exchange.name: mode {self.mode!r} needs a real venue")
        if self.mode != "paper" and (self.exchange.api_key is None or self.exchange.api_secret
                                     is None):
            problems.append(f"exchange.api_key: mode {self.mode!r} needs api_key and api_secret")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def public_dict(self) -> dict[str, Any]:
        """The effective config as JSON-able data with secrets masked (for check-config)."""
        data: dict[str, Any] = self.model_dump(mode="json")
        for key in SECRET_FIELDS:
            if data["exchange"].get(key) is not None:
                data["exchange"][key] = "**********"
        for key in ("github_token", "coingecko_api_key"):
            if data["signals"].get(key) is not None:
                data["signals"][key] = "**********"
        if data["state"].get("url") is not None:
            data["state"]["url"] = "**********"
        for key in ALERT_SECRET_FIELDS:
            if data["alerts"].get(key) is not None:
                data["alerts"][key] = "**********"
        return data

    def secret_values(self) -> list[str]:
        """Raw secret strings, so the log redactor can scrub them wherever they appear."""
        out = []
        if self.state.url is not None:
            out.append(self.state.url.get_secret_value())
        for key in SECRET_FIELDS:
            value = getattr(self.exchange, key)
            if value is not None and value.get_secret_value():
                out.append(value.get_secret_value())
        if self.exchange.https_proxy is not None:
            out += url_secrets(self.exchange.https_proxy.get_secret_value())
        if self.signals.github_token is not None and self.signals.github_token.get_secret_value():
            out.append(self.signals.github_token.get_secret_value())
        gecko = self.signals.coingecko_api_key
        if gecko is not None and gecko.get_secret_value():
            out.append(gecko.get_secret_value())
        for key in ALERT_SECRET_FIELDS:
            value = getattr(self.alerts, key)
            if value is not None and value.get_secret_value():
                out += url_secrets(value.get_secret_value())
        return out


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    """The file as a table, or one ``config error`` line saying what is wrong with it: a
    directory, an unreadable or non-UTF-8 file is bad input, never a traceback. A FIFO or
    a device is refused before it is opened: reading one could block forever."""
    try:
        if path.exists() and not (path.is_file() or path.is_dir()):
            raise ConfigError([f"{what}: {path} is not a regular file; give a TOML file"])
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError([f"{what}: file not found: {path}"]) from exc
    except IsADirectoryError as exc:
        raise ConfigError([f"{what}: {path} is a directory; give the path of a TOML file"]
                          ) from exc
    except PermissionError as exc:
        raise ConfigError([f"{what}: cannot read {path}: permission denied; make it readable "
                           f"by this user (uid {os.getuid()})"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{what}: {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x}"
                           f" at offset {exc.start}); save it as UTF-8"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{what}: {path} is not valid TOML: {exc}"]) from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{what}: cannot read {str(path)!r}: {reason}"]) from exc


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            msg = "unknown key"
        value = err.get("input")
        shown = "" if err["type"] in ("extra_forbidden", "unexpected_keyword_argument",
                                      "missing") or isinstance(
            value, dict
        ) else f" (got {value!r})"
        if any(s in loc for s in SECRET_FIELDS + ALERT_SECRET_FIELDS) or \
                "github_token" in loc or \
                "coingecko_api_key" in loc or "proxy" in loc or loc == "state.url":
            shown = ""
        lines.append(f"{loc}: {msg}{_without_url_credentials(shown)}")
    return lines


def load_settings(config_path: Path | None = None) -> Settings:
    """Load, merge and validate; raise :class:`ConfigError` listing every bad field.

    Without a path the built-in defaults apply (plus the environment): that is the embedded
    default a fresh install runs on. Relative paths inside a file are relative to that file.
    """
    data: dict[str, Any] = {}
    if config_path is not None:
        data = _read_toml(config_path, "config")
        problems = [
            f"exchange.{key}: secrets are refused in the config file; set "
            f"SECTORBOT__EXCHANGE__{key.upper()} or put it in a secrets_file"
            for key in SECRET_FIELDS
            if isinstance(data.get("exchange"), dict) and key in data["exchange"]
        ]
        signals = data.get("signals")
        for secret in ("github_token", "coingecko_api_key"):
            if isinstance(signals, dict) and secret in signals:
                problems.append(f"signals.{secret}: secrets are refused in the config file; "
                                f"set SECTORBOT__SIGNALS__{secret.upper()} or put it in a "
                                "secrets_file")
        alerts = data.get("alerts")
        problems += [
            f"alerts.{key}: secrets are refused in the config file; set "
            f"SECTORBOT__ALERTS__{key.upper()} or put it in a secrets_file"
            for key in ALERT_SECRET_FIELDS if isinstance(alerts, dict) and key in alerts]
        problems += _credentials_in_file(data)
        if problems:
            raise ConfigError(problems)
        base = config_path.parent
        secrets_path = data.pop("secrets_file", None)
        if isinstance(secrets_path, str):
            data = _deep_merge(data, _read_toml(base / secrets_path, "secrets_file"))
        elif secrets_path is not None:
            raise ConfigError(["secrets_file: expected a file name such as \"secrets.toml\""])
        for section, key in (("replay", "data_dir"), ("state", "path"),
                             ("exchange", "ca_bundle")):
            body = data.get(section)
            if isinstance(body, dict) and isinstance(body.get(key), str):
                body[key] = str(base / body[key])
        if isinstance(data.get("universe_file"), str):
            data["universe_file"] = str(base / data["universe_file"])
    # pydantic-settings reads ``_env_prefix``, ``_cli_parse_args``... from the keyword
    # arguments: from a file they would rewire how settings load, so they are unknown keys.
    private = [f"{key}: unknown key" for key in data if key.startswith("_")]
    if private:
        raise ConfigError(private)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc)) from None
    except SettingsError as exc:  # an environment value pydantic-settings cannot decode
        raise ConfigError([_env_error(str(exc))]) from None


def _without_url_credentials(text: str) -> str:
    """An echoed value with any URL's user part and ``password=`` masked: a token is often
    the user name (``https://TOKEN@host``), whatever key the URL was mistyped under."""
    text = re.sub(r"(://)[^/?#@\s'\"]*@", r"\1***@", text)
    return re.sub(r"(?i)([?&]password=)[^&\s'\"]*", r"\1***", text)


_URL_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://([^/?#]*)@")
_URL_PASSWORD_PARAM = re.compile(r"[?&]password=", re.IGNORECASE)


def _credentials_in_file(data: dict[str, Any], prefix: str = "") -> list[str]:
    """A URL in the config file that carries a password (``postgresql://u:pw@host``,
    ``?password=``) or, for a proxy, any credentials (``http://token@proxy``): the file is
    meant to be committed, so these are refused like the exchange keys, wherever they sit
    (a list included: a mistyped value would otherwise be echoed in its type error). The
    line names the key and the way to pass it, never the value."""
    out: list[str] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _credentials_in_file(value, name + ".")
        elif any(_has_credentials(v, "proxy" in str(key)) for v in _strings(value)):
            env = "SECTORBOT__" + name.upper().replace(".", "__")
            out.append(f"{name}: a URL with credentials is refused in the config file; set "
                       f"{env} or put it in a secrets_file")
    return out


def _strings(value: Any) -> list[str]:
    """Every string in a value, lists and inline tables included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def _has_credentials(value: str, proxy: bool) -> bool:
    userinfo = _URL_USERINFO.match(value)
    return bool((userinfo and (":" in userinfo.group(1) or proxy)) or (
        "://" in value and _URL_PASSWORD_PARAM.search(value)))


def _env_error(message: str) -> str:
    """One line for a ``SECTORBOT__...`` value pydantic-settings could not decode (a section
    set to a scalar, a list that is not JSON). The variable is named, its value is not: it
    may be a secret."""
    found = re.search(r'field "([^"]+)"', message)
    field = found.group(1) if found else "config"
    names = sorted(k for k in os.environ
                   if k.upper().startswith(f"SECTORBOT__{field.upper()}"))
    where = ", ".join(names) or f"SECTORBOT__{field.upper()}"
    return (f"{field}: cannot decode {where} from the environment; set one key per variable "
            f"(SECTORBOT__{field.upper()}__KEY=value) and give lists as JSON ([7, 14])")


def bundled_universe_file() -> Path:
    """The universe shipped inside the package (a copy of ``config/sectors.toml``)."""
    return Path(str(resources.files("bot.defaults").joinpath("sectors.toml")))


def _table(value: Any, where: str, problems: list[str]) -> dict[str, Any]:
    """``value`` if it is a TOML table, else ``{}`` and a line saying ``where`` must be one."""
    if isinstance(value, dict):
        return value
    problems.append(f"{where}: expected a table ([{where}])")
    return {}


def _names(value: Any, where: str, problems: list[str]) -> list[str]:
    """``value`` if it is a list of non-empty strings, else ``[]`` and a line saying so."""
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return value
    problems.append(f"{where}: expected a list of names such as [\"SOL\", \"AVAX\"]")
    return []


def _sector_tables(data: dict[str, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
    """``[sectors.X]`` tables by name; anything else is one problem line, not a crash."""
    out: dict[str, dict[str, Any]] = {}
    for name, body in _table(data.get("sectors", {}), "sectors", problems).items():
        if isinstance(body, dict):
            out[name] = body
        else:
            problems.append(f"sectors.{name}: expected a table ([sectors.{name}])")
    return out


def load_sector_sources(path: Path | None) -> dict[str, SectorSources]:
    """Each sector's DefiLlama chains and categories, GitHub repositories and CoinGecko
    categories, from the universe file."""
    data = _read_toml(path or bundled_universe_file(), "universe_file")
    problems: list[str] = []
    out: dict[str, SectorSources] = {}
    tables = {"defillama": ("chains", "categories"), "github": ("repos",),
              "coingecko": ("categories",)}
    for name, body in _sector_tables(data, problems).items():
        lists: dict[str, tuple[str, ...]] = {}
        gecko: tuple[str, ...] = ()
        for provider, keys in tables.items():
            table = body.get(provider, {})
            if not isinstance(table, dict):
                problems.append(f"sectors.{name}.{provider}: expected a table")
                continue
            for bad in sorted(set(table) - set(keys)):
                problems.append(f"sectors.{name}.{provider}.{bad}: unknown key")
            for key in keys:
                value = table.get(key, [])
                if not isinstance(value, list) or not all(isinstance(v, str) and v
                                                          for v in value):
                    problems.append(f"sectors.{name}.{provider}.{key}: expected a list of "
                                    "names")
                    value = []
                if provider == "coingecko":
                    gecko = tuple(value)
                else:
                    lists[key] = tuple(value)
        for repo in lists.get("repos", ()):
            if repo.count("/") != 1 or repo.startswith("/") or repo.endswith("/"):
                problems.append(f"sectors.{name}.github.repos: {repo!r} is not owner/name")
        for category in gecko:
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", category):
                problems.append(f"sectors.{name}.coingecko.categories: {category!r} is not a "
                                "CoinGecko category id (lower case, digits and '-', such as "
                                "\"layer-1\")")
        out[name] = SectorSources(lists.get("chains", ()), lists.get("categories", ()),
                                  lists.get("repos", ()), gecko)
    if problems:
        raise ConfigError(problems)
    return out


UNIVERSE_KEYS = {"core", "sectors", "tokens"}
SECTOR_KEYS = {"bucket", "cycle_stage", "tokens", "defillama", "github", "coingecko"}


def load_universe(path: Path | None) -> Universe:
    """Parse ``sectors.toml`` (or the bundled copy) into the domain's :class:`Universe`.

    Every shape error (a sector that is not a table, ``tokens = 5``, a symbol that is not a
    string) is one ``config error`` line naming the key, like the settings' own errors."""
    data = _read_toml(path or bundled_universe_file(), "universe_file")
    problems: list[str] = [f"{bad}: unknown key" for bad in sorted(set(data) - UNIVERSE_KEYS)]
    token_opts = _table(data.get("tokens", {}), "tokens", problems)
    known_keys = {"listed", "spot", "perp", "former_symbols"}

    def spec(symbol: str, sector: str) -> TokenSpec:
        opts = token_opts.get(symbol, {})
        if not isinstance(opts, dict):
            problems.append(f"tokens.{symbol}: expected a table ([tokens.{symbol}])")
            opts = {}
        for bad in sorted(set(opts) - known_keys):
            problems.append(f"tokens.{symbol}.{bad}: unknown key")
        listed = opts.get("listed")
        if listed is not None and not isinstance(listed, date):
            problems.append(f"tokens.{symbol}.listed: expected a date like 2020-08-11")
            listed = None
        flags = {}
        for flag in ("spot", "perp"):
            flags[flag] = opts.get(flag, True)
            if not isinstance(flags[flag], bool):
                problems.append(f"tokens.{symbol}.{flag}: expected true or false")
        former = _names(opts.get("former_symbols", []), f"tokens.{symbol}.former_symbols",
                        problems)
        return TokenSpec(
            symbol=symbol,
            sector=sector,
            listed=listed,
            spot=flags["spot"] is not False,
            perp=flags["perp"] is not False,
            former_symbols=tuple(former),
        )

    core_table = _table(data.get("core", {}), "core", problems)
    for bad in sorted(set(core_table) - {"tokens"}):
        problems.append(f"core.{bad}: unknown key")
    core_tokens = _names(core_table.get("tokens", []), "core.tokens", problems)
    if not core_tokens:
        problems.append("core.tokens: at least one core token is required")
    core = tuple(spec(t, "CORE") for t in core_tokens)
    sectors = []
    seen: set[str] = set(core_tokens)
    for name, body in _sector_tables(data, problems).items():
        for bad in sorted(set(body) - SECTOR_KEYS):
            problems.append(f"sectors.{name}.{bad}: unknown key")
        raw_bucket = body.get("bucket", "rotational")
        try:
            bucket = Bucket(raw_bucket) if isinstance(raw_bucket, str) else None
        except ValueError:
            bucket = None
        if bucket is None:
            problems.append(f"sectors.{name}.bucket: must be rotational or speculative")
            continue
        if bucket is Bucket.CORE:
            problems.append(f"sectors.{name}.bucket: core tokens belong in [core]")
        stage = body.get("cycle_stage")
        if stage is not None and (isinstance(stage, bool) or not isinstance(stage, int)):
            problems.append(f"sectors.{name}.cycle_stage: expected a whole number (1-4)")
            stage = None
        tokens = []
        for sym in _names(body.get("tokens", []), f"sectors.{name}.tokens", problems):
            if sym in seen:
                problems.append(f"sectors.{name}.tokens: {sym} is listed twice in the universe")
            seen.add(sym)
            tokens.append(spec(sym, name))
        sectors.append(
            SectorSpec(name=name, bucket=bucket, tokens=tuple(tokens), cycle_stage=stage)
        )
    for sym in sorted(set(token_opts) - seen):
        problems.append(f"tokens.{sym}: not in any sector or core")
    if problems:
        raise ConfigError(problems)
    return Universe(core=core, sectors=tuple(sectors))
