"""Canonical, JSON-ready forms of decisions and rotation states.

Canonical means byte-for-byte stable: keys in a fixed order (mappings sorted), floats rounded
to ``SIGNIFICANT_DIGITS`` significant digits, datetimes as ISO-8601, enums as their values.
The engine rounds its own outputs the same way, so ``decision_from_dict(decision_to_dict(d))
== d`` holds exactly and the stored form of a decision is the decision.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.domain.models import (
    Bucket,
    Decision,
    OverlayLeg,
    PositionSide,
    Regime,
    RotationState,
    SectorScore,
)

SIGNIFICANT_DIGITS = 12
"""Enough for weights to sum to 1 within 1e-9 after rounding, few enough to hide the noise
of float summation order."""


def canonical_float(value: float) -> float:
    """``value`` rounded to ``SIGNIFICANT_DIGITS`` significant digits (``-0.0`` -> ``0.0``)."""
    if not math.isfinite(value):
        raise ValueError(f"non-finite number {value!r} cannot be serialised canonically")
    rounded = float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return rounded + 0.0 if rounded != 0 else 0.0


def _opt_float(value: float | None) -> float | None:
    return None if value is None else canonical_float(value)


def _float_map(values: Mapping[str, float]) -> dict[str, float]:
    return {k: canonical_float(values[k]) for k in sorted(values)}


def leg_to_dict(leg: OverlayLeg) -> dict[str, Any]:
    return {
        "token": leg.token,
        "side": leg.side.value,
        "equity_fraction": canonical_float(leg.equity_fraction),
        "leverage": canonical_float(leg.leverage),
        "stop_distance": canonical_float(leg.stop_distance),
        "reason": leg.reason,
    }


def leg_from_dict(data: Mapping[str, Any]) -> OverlayLeg:
    return OverlayLeg(
        token=str(data["token"]),
        side=PositionSide(data["side"]),
        equity_fraction=float(data["equity_fraction"]),
        leverage=float(data["leverage"]),
        stop_distance=float(data["stop_distance"]),
        reason=str(data["reason"]),
    )


def score_to_dict(score: SectorScore) -> dict[str, Any]:
    return {
        "sector": score.sector,
        "score": _opt_float(score.score),
        "confidence": canonical_float(score.confidence),
        "rank": score.rank,
        "components": {k: _opt_float(score.components[k]) for k in sorted(score.components)},
    }


def score_from_dict(data: Mapping[str, Any]) -> SectorScore:
    components = {str(k): (None if v is None else float(v))
                  for k, v in data["components"].items()}
    return SectorScore(
        sector=str(data["sector"]),
        score=None if data["score"] is None else float(data["score"]),
        confidence=float(data["confidence"]),
        components=components,
        rank=None if data["rank"] is None else int(data["rank"]),
    )


def rotation_state_to_dict(state: RotationState) -> dict[str, Any]:
    return {
        "from_sector": state.from_sector,
        "to_sector": state.to_sector,
        "started": state.started.isoformat(),
        "from_weight_at_start": canonical_float(state.from_weight_at_start),
        "confirmations": state.confirmations,
        "checked": None if state.checked is None else state.checked.isoformat(),
        "abandoned": None if state.abandoned is None else state.abandoned.isoformat(),
    }


def rotation_state_from_dict(data: Mapping[str, Any]) -> RotationState:
    """Inverse of :func:`rotation_state_to_dict` (``checked`` and ``abandoned`` may be
    absent: older rows)."""
    checked = data.get("checked")
    abandoned = data.get("abandoned")
    return RotationState(
        from_sector=str(data["from_sector"]),
        to_sector=str(data["to_sector"]),
        started=datetime.fromisoformat(data["started"]),
        from_weight_at_start=float(data["from_weight_at_start"]),
        confirmations=int(data.get("confirmations", 0)),
        checked=None if checked is None else datetime.fromisoformat(checked),
        abandoned=None if abandoned is None else datetime.fromisoformat(abandoned),
    )


def decision_to_dict(decision: Decision) -> dict[str, Any]:
    """The canonical form of a decision (see the module docstring)."""
    return {
        "decision_id": decision.decision_id,
        "as_of": decision.as_of.isoformat(),
        "regime": decision.regime.value,
        "action": decision.action,
        "confidence": canonical_float(decision.confidence),
        "cash_reserve": canonical_float(decision.cash_reserve),
        "spot_weights": _float_map(decision.spot_weights),
        "bucket_weights": {b.value: canonical_float(decision.bucket_weights.get(b, 0.0))
                           for b in Bucket},
        "overlay": [leg_to_dict(leg) for leg in decision.overlay],
        "rotation": (None if decision.rotation is None
                     else rotation_state_to_dict(decision.rotation)),
        "scores": [score_to_dict(s) for s in decision.scores],
        "reasons": list(decision.reasons),
        "frozen": sorted(decision.frozen),
    }


def decision_from_dict(data: Mapping[str, Any]) -> Decision:
    """Inverse of :func:`decision_to_dict`."""
    rotation = data.get("rotation")
    return Decision(
        decision_id=str(data["decision_id"]),
        as_of=datetime.fromisoformat(data["as_of"]),
        regime=Regime(data["regime"]),
        action=str(data["action"]),
        spot_weights={str(k): float(v) for k, v in data["spot_weights"].items()},
        bucket_weights={Bucket(k): float(v) for k, v in data["bucket_weights"].items()},
        cash_reserve=float(data["cash_reserve"]),
        overlay=tuple(leg_from_dict(leg) for leg in data["overlay"]),
        scores=tuple(score_from_dict(s) for s in data["scores"]),
        rotation=None if rotation is None else rotation_state_from_dict(rotation),
        reasons=tuple(str(r) for r in data["reasons"]),
        confidence=float(data["confidence"]),
        frozen=tuple(str(t) for t in data.get("frozen", ())),
    )


def to_json(data: Mapping[str, Any]) -> str:
    """Compact JSON in the dict's own (canonical) key order; ASCII only, no NaN."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def decision_to_json(decision: Decision) -> str:
    return to_json(decision_to_dict(decision))


def decision_fingerprint(decision: Decision) -> str:
    """The decision id: sha256 over what the decision asks for, first 16 hex characters.

    Covers ``as_of``, the action, the spot targets, the cash reserve, the overlay and the
    frozen tokens, so the
    same inputs give the same id (and the same client order ids after a restart), while any
    change in what would be traded gives a new one. Reasons and scores are not included:
    rewording an explanation must not re-key orders.
    """
    full = decision_to_dict(decision)
    payload = {key: full[key] for key in
               ("as_of", "action", "spot_weights", "cash_reserve", "overlay", "frozen")}
    return hashlib.sha256(to_json(payload).encode("ascii")).hexdigest()[:16]
