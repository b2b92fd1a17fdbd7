"""Canonical serialisation of decisions and rotation states, and the decision id."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime

import pytest

from bot.domain.codec import (
    canonical_float,
    decision_fingerprint,
    decision_from_dict,
    decision_to_dict,
    decision_to_json,
    rotation_state_from_dict,
    rotation_state_to_dict,
)
from bot.domain.engine import decide
from bot.domain.explain import render_decision
from bot.domain.models import Decision, RotationState
from bot.domain.params import StrategyParams
from tests.engine_fixtures import (
    PLAYBOOK_START,
    UNIVERSE,
    at,
    playbook_market,
    portfolio_from_weights,
)


def playbook_decision() -> Decision:
    market = playbook_market()
    portfolio = portfolio_from_weights(PLAYBOOK_START, market.prices(at(0)))
    return decide(market.snapshot(at(0)), portfolio, UNIVERSE, StrategyParams(), None)


def test_decision_round_trips_exactly() -> None:
    decision = playbook_decision()
    data = decision_to_dict(decision)
    assert decision_from_dict(data) == decision
    assert decision_from_dict(json.loads(json.dumps(data))) == decision
    assert decision_to_json(decision_from_dict(data)) == decision_to_json(decision)


def test_serialisation_is_canonical_json() -> None:
    decision = playbook_decision()
    text = decision_to_json(decision)
    assert text.isascii() and "NaN" not in text
    data = json.loads(text)
    assert list(data) == ["decision_id", "as_of", "regime", "action", "confidence",
                          "cash_reserve", "spot_weights", "bucket_weights", "overlay",
                          "rotation", "scores", "reasons", "frozen"]
    assert list(data["spot_weights"]) == sorted(data["spot_weights"])
    for score in data["scores"]:
        assert list(score["components"]) == sorted(score["components"])


def test_same_inputs_same_bytes_even_from_fresh_copies() -> None:
    market = playbook_market()
    snapshot = market.snapshot(at(0))
    portfolio = portfolio_from_weights(PLAYBOOK_START, market.prices(at(0)))
    params = StrategyParams()
    first = decide(snapshot, portfolio, UNIVERSE, params, None)
    again = decide(snapshot, portfolio, UNIVERSE, params, None)
    fresh = decide(copy.deepcopy(snapshot), copy.deepcopy(portfolio), copy.deepcopy(UNIVERSE),
                   copy.deepcopy(params), None)
    assert decision_to_json(first) == decision_to_json(again) == decision_to_json(fresh)
    assert len(first.decision_id) == 16
    assert first.decision_id == decision_fingerprint(dataclasses.replace(first, decision_id=""))


def test_the_id_follows_what_is_traded_not_the_wording() -> None:
    decision = playbook_decision()
    reworded = dataclasses.replace(decision, reasons=("something else",))
    assert decision_fingerprint(reworded) == decision.decision_id
    moved = dataclasses.replace(decision, cash_reserve=0.2)
    assert decision_fingerprint(moved) != decision.decision_id


def test_rotation_state_round_trips() -> None:
    state = RotationState("L1", "L2", datetime(2024, 3, 1, tzinfo=UTC), 0.3, 2,
                          datetime(2024, 3, 3, tzinfo=UTC))
    data = rotation_state_to_dict(state)
    assert rotation_state_from_dict(json.loads(json.dumps(data))) == state
    legacy = {k: v for k, v in data.items() if k != "checked"}
    assert rotation_state_from_dict(legacy) == dataclasses.replace(state, checked=None)


def test_canonical_floats() -> None:
    assert canonical_float(0.1 + 0.2) == 0.3
    assert canonical_float(-0.0) == 0.0 and str(canonical_float(-0.0)) == "0.0"
    assert canonical_float(1 / 3) == float("0.333333333333")
    with pytest.raises(ValueError, match="non-finite"):
        canonical_float(float("nan"))


def test_explanation_names_scores_rules_targets_and_legs() -> None:
    decision = playbook_decision()
    text = render_decision(decision, UNIVERSE)
    for needle in ("action: rotate", "regime: bull", "rotation: L1 -> L2",
                   "rank  sector", "mom_7d", "tvl_30d", "overbought", "cycle_prior",
                   "rotate L1->L2: score gap", "rotational", "L2 ", "short", "long",
                   "hedge L1 while rotating to L2", "cash reserve"):
        assert needle in text, needle
    lines = text.splitlines()
    table = lines[lines.index("Sector scores (z-units; '-' = missing or stale)") + 1:]
    assert table[1].split()[:2] == ["1", "L2"]
    plain = render_decision(decision)  # works without the universe too
    assert "BTC" in plain and "core" in plain
