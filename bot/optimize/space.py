"""The search space file: which engine and risk keys a search may move, and how it is scored.

A space names configuration keys (``strategy.rotation_threshold``, ``risk.stop_loss_pct``)
with a range or a list of choices. It is validated against the same schema as the config:
an unknown key is refused, and every range end and every choice is applied to the base
config and validated there, so a range outside a key's own bounds (``risk.max_leverage``
above 5, a negative cooldown) fails before any trial runs, with the key and the reason.
Combinations are still checked per trial (two keys can be valid alone and incoherent
together); such a trial is recorded as invalid and never run.

    [params]
    "strategy.rotation_threshold" = { low = 0.3, high = 1.2 }
    "strategy.exit_confirmations" = { low = 1, high = 5 }
    "strategy.stop_mode" = { choices = ["percent", "atr"] }
    "risk.stop_loss_pct" = { low = 4, high = 15, step = 1 }

    [objective]
    metric = "sharpe"          # sharpe | sortino | calmar | cagr, on each fold's test window
    aggregate = "median"       # median | mean | min across folds
    turnover_penalty = 0.01    # subtracted per 1x equity traded per year
    drawdown_penalty = 0.5     # subtracted per 100 % of maximum drawdown
"""

from __future__ import annotations

import math
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from bot.config import ConfigError, RiskSettings, Settings, format_errors
from bot.domain.params import StrategyParams

Metric = Literal["sharpe", "sortino", "calmar", "cagr"]
Aggregate = Literal["median", "mean", "min"]
METRICS: tuple[str, ...] = typing.get_args(Metric)
AGGREGATES: tuple[str, ...] = typing.get_args(Aggregate)
SECTIONS = ("strategy", "risk")


@dataclass(frozen=True, slots=True)
class Range:
    """A numeric key searched between ``low`` and ``high`` (inclusive)."""

    key: str
    low: float
    high: float
    integer: bool
    step: float | None = None
    log: bool = False


@dataclass(frozen=True, slots=True)
class Choice:
    """A key searched over a list of values (any type the key accepts)."""

    key: str
    choices: tuple[Any, ...]


Param = Range | Choice


@dataclass(frozen=True, slots=True)
class Objective:
    """How a trial is scored from its test windows (never its training windows)."""

    metric: Metric = "sharpe"
    aggregate: Aggregate = "median"
    turnover_penalty: float = 0.01
    drawdown_penalty: float = 0.5


@dataclass(frozen=True, slots=True)
class SearchSpace:
    params: tuple[Param, ...]
    objective: Objective

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.params)


def apply_values(settings: Settings, values: Mapping[str, Any]) -> Settings:
    """``settings`` with ``values`` (``section.key`` -> value) set, validated again like a
    loaded config; raise :class:`ConfigError` naming the key when the result is invalid."""
    data = settings.model_dump()
    data["strategy"].pop("max_leverage", None)  # derived from risk.max_leverage on load
    for key, value in values.items():
        section, name = key.split(".", 1)
        data[section][name] = list(value) if isinstance(value, tuple) else value
    try:
        built = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc)) from None
    # The environment beats these values (as it beats a config file): a trial that did not
    # get what it asked for must not be recorded as if it had.
    for key, value in values.items():
        section, name = key.split(".", 1)
        got = getattr(getattr(built, section), name)
        if (list(got) if isinstance(got, tuple) else got) != (
                list(value) if isinstance(value, tuple | list) else value):
            raise ConfigError([f"{key}: {value!r} was asked for but {got!r} is set, most "
                               "likely by a SECTORBOT__ environment variable; unset it"])
    return built


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(StrategyParams)
    out: dict[str, Any] = {f"strategy.{f.name}": hints[f.name] for f in fields(StrategyParams)
                           if f.name != "max_leverage"}
    out.update({f"risk.{name}": info.annotation
                for name, info in RiskSettings.model_fields.items()})
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)


def _parse_param(key: str, body: Any, kind: Any, problems: list[str]) -> Param | None:
    where = f"params.{key!r}"
    if not isinstance(body, dict):
        problems.append(f"{where}: expected a table like {{ low = 1, high = 5 }} or "
                        "{ choices = [...] }")
        return None
    allowed = {"choices"} if "choices" in body else {"low", "high", "step", "log"}
    for bad in sorted(set(body) - allowed):
        problems.append(f"{where}.{bad}: unknown key")
    if "choices" in body:
        choices = body["choices"]
        if not isinstance(choices, list) or not choices:
            problems.append(f"{where}.choices: expected a non-empty list")
            return None
        return Choice(key, tuple(tuple(c) if isinstance(c, list) else c for c in choices))
    if kind not in (int, float):
        problems.append(f"{where}: this key is not a number; give choices = [...]")
        return None
    low: Any = body.get("low")
    high: Any = body.get("high")
    if not (_number(low) and _number(high)):
        problems.append(f"{where}: low and high must both be finite numbers")
        return None
    if low >= high:
        problems.append(f"{where}: low ({low}) must be below high ({high})")
        return None
    step: Any = body.get("step")
    log: Any = body.get("log", False)
    if step is not None and (not _number(step) or step <= 0):
        problems.append(f"{where}.step: must be a positive number")
        return None
    if not isinstance(log, bool) or (log and (low <= 0 or step is not None)):
        problems.append(f"{where}.log: true needs low > 0 and no step")
        return None
    integer = kind is int
    if integer and not all(float(v).is_integer() for v in (low, high, step or 1)):
        problems.append(f"{where}: {key} is a whole number; low, high and step must be too")
        return None
    return Range(key, float(low), float(high), integer, None if step is None else float(step),
                 log)


def _parse_objective(body: Any, problems: list[str]) -> Objective:
    if body is None:
        return Objective()
    if not isinstance(body, dict):
        problems.append("objective: expected a table")
        return Objective()
    default = Objective()
    for bad in sorted(set(body) - {"metric", "aggregate", "turnover_penalty",
                                   "drawdown_penalty"}):
        problems.append(f"objective.{bad}: unknown key")
    metric = body.get("metric", default.metric)
    if metric not in METRICS:
        problems.append(f"objective.metric: must be one of {', '.join(METRICS)}")
        metric = default.metric
    aggregate = body.get("aggregate", default.aggregate)
    if aggregate not in AGGREGATES:
        problems.append(f"objective.aggregate: must be one of {', '.join(AGGREGATES)}")
        aggregate = default.aggregate
    penalties = {}
    for name in ("turnover_penalty", "drawdown_penalty"):
        value = body.get(name, getattr(default, name))
        if not _number(value) or value < 0:
            problems.append(f"objective.{name}: must be a number >= 0")
            value = getattr(default, name)
        penalties[name] = float(value)
    return Objective(metric, aggregate, **penalties)


def _endpoints(param: Param) -> list[Any]:
    if isinstance(param, Choice):
        return list(param.choices)
    cast = int if param.integer else float
    return [cast(param.low), cast(param.high)]


def _flatten(raw: Any) -> Any:
    """``strategy.x = {...}`` written without quotes is a nested TOML table; read it as the
    key ``"strategy.x"`` it was meant to be."""
    if not isinstance(raw, dict):
        return raw
    out: dict[str, Any] = {}
    for key, body in raw.items():
        nested = (isinstance(body, dict) and body
                  and not set(body) & {"low", "high", "choices", "step", "log"}
                  and all(isinstance(v, dict) for v in body.values()))
        if nested:
            out.update({f"{key}.{name}": inner for name, inner in body.items()})
        else:
            out[key] = body
    return out


def load_space(path: Path, base: Settings) -> SearchSpace:
    """Read and validate ``path`` against ``base``; raise :class:`ConfigError` listing every
    problem as ``space: <where>: <reason>``."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise ConfigError([f"space: cannot read {path}: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"space: {path} is not valid TOML: {exc}"]) from None
    problems: list[str] = []
    for bad in sorted(set(data) - {"params", "objective"}):
        problems.append(f"{bad}: unknown section (expected [params] and [objective])")
    raw = _flatten(data.get("params"))
    if not isinstance(raw, dict) or not raw:
        problems.append("params: at least one key to search is required")
        raw = {}
    kinds = _field_types()
    params: list[Param] = []
    for key, body in raw.items():
        if key == "strategy.max_leverage":
            problems.append(f"params.{key!r}: not settable; search risk.max_leverage")
            continue
        if key not in kinds:
            section = key.split(".", 1)[0]
            reason = ("unknown key" if section in SECTIONS
                      else f"only {' and '.join(SECTIONS)} keys can be searched")
            problems.append(f"params.{key!r}: {reason}")
            continue
        env = "SECTORBOT__" + key.replace(".", "__").upper()
        if env in os.environ:
            problems.append(f"params.{key!r}: {env} is set and would override every trial; "
                            "unset it to search this key")
            continue
        param = _parse_param(key, body, kinds[key], problems)
        if param is not None:
            params.append(param)
    searched = {p.key.split(".", 1)[1] for p in params}
    for param in params:
        for value in _endpoints(param):
            try:
                apply_values(base, {param.key: value})
            except ConfigError as exc:
                # Refused on its own. When the reason names another searched key, the two may
                # agree in some trials: those trials run, the others are recorded invalid.
                others = searched - {param.key.split(".", 1)[1]}
                problems.extend(f"params.{param.key!r}: {value!r} is refused: {line}"
                                for line in exc.lines
                                if not any(name in line for name in others))
    objective = _parse_objective(data.get("objective"), problems)
    if problems:
        raise ConfigError([f"space: {line}" for line in problems])
    return SearchSpace(tuple(params), objective)


__all__ = ["AGGREGATES", "METRICS", "Choice", "Objective", "Param", "Range", "SearchSpace",
           "apply_values", "load_space"]
