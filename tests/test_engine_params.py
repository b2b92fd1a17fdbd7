"""StrategyParams: defaults are coherent, bad combinations are refused with the field named."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import bot.domain.params as params_module
from bot.domain.params import StrategyParams
from bot.domain.risk_limits import HARD_MAX_LEVERAGE


def test_defaults_are_valid_and_documented() -> None:
    params = StrategyParams()
    assert params.max_leverage == 3.0 <= HARD_MAX_LEVERAGE
    assert params.cycle_bonus < params.rotation_threshold
    assert sum(params.component_weights().values()) == pytest.approx(1.0)
    source = Path(params_module.__file__ or "").read_text()
    for f in dataclasses.fields(StrategyParams):
        assert f'{f.name}: ' in source
        after = source.split(f"    {f.name}: ", 1)[1].split("\n", 2)[1]
        assert after.strip().startswith('"""'), f"{f.name} has no docstring"


@pytest.mark.parametrize(("changes", "field"), [
    ({"max_leverage": 5.5}, "max_leverage"),
    ({"max_leverage": 0.0}, "max_leverage"),
    ({"long_leverage": 4.0}, "long_leverage"),
    ({"hedge_leverage": 3.5}, "hedge_leverage"),
    ({"core_min": 0.7}, "core_min"),
    ({"core_min": 0.6, "rotational_min": 0.3, "speculative_min": 0.2,
      "core_weight": 0.6, "core_max": 0.6, "rotational_max": 0.3,
      "speculative_max": 0.2, "speculative_weight": 0.2}, "core_min"),
    ({"core_max": 0.5, "core_weight": 0.5, "rotational_max": 0.2,
      "speculative_max": 0.15, "speculative_weight": 0.15}, "core_max"),
    ({"core_weight": 0.7}, "core_weight"),
    ({"speculative_weight": 0.05}, "speculative_weight"),
    ({"cycle_bonus": 0.6}, "cycle_bonus"),
    ({"rotation_hold_margin": 0.8}, "rotation_hold_margin"),
    ({"exit_residual_fraction": 0.9}, "exit_residual_fraction"),
    ({"tokens_per_sector": 1}, "tokens_per_sector"),
    ({"min_history_days": 20}, "min_history_days"),
    ({"momentum_lookbacks": ()}, "momentum_lookbacks"),
    ({"long_stop_distance": 0.0}, "long_stop_distance"),
    ({"hedge_stop_distance": 1.0}, "hedge_stop_distance"),
    ({"max_shift_per_rebalance": 0.0}, "max_shift_per_rebalance"),
    ({"drift_band": float("nan")}, "drift_band"),
    ({"exit_confirmations": 0}, "exit_confirmations"),
    ({"long_equity_fraction": 1.0}, "long_equity_fraction"),
])
def test_incoherent_params_are_refused_naming_the_field(changes: dict[str, Any],
                                                        field: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{field}: "):
        StrategyParams(**changes)


def test_the_leverage_ceiling_is_not_configurable() -> None:
    with pytest.raises(ValueError, match="not configurable"):
        StrategyParams(max_leverage=HARD_MAX_LEVERAGE + 0.01, long_leverage=2, hedge_leverage=2)
    assert StrategyParams(max_leverage=HARD_MAX_LEVERAGE).max_leverage == HARD_MAX_LEVERAGE


def test_pydantic_validates_it_and_forbids_unknown_keys() -> None:
    pydantic = pytest.importorskip("pydantic")
    adapter = pydantic.TypeAdapter(StrategyParams)
    params = adapter.validate_python({"rotation_threshold": 0.7, "momentum_lookbacks": [7, 21]})
    assert params.momentum_lookbacks == (7, 21)
    # Without ``__pydantic_config__`` a dataclass silently ignores unknown keys.
    with pytest.raises(pydantic.ValidationError, match="rotation_treshold"):
        adapter.validate_python({"rotation_treshold": 0.7})
    with pytest.raises(pydantic.ValidationError, match="max_leverage"):
        adapter.validate_python({"max_leverage": 6})


def test_the_strategy_section_of_the_settings_is_these_params() -> None:
    pydantic = pytest.importorskip("pydantic")
    from bot.config import Settings

    settings = Settings.model_validate({"strategy": {"rotation_threshold": 0.7}})
    assert settings.strategy == StrategyParams(rotation_threshold=0.7)
    with pytest.raises(pydantic.ValidationError, match=r"strategy\.rotation_treshold"):
        Settings.model_validate({"strategy": {"rotation_treshold": 0.7}})
