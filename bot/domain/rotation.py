"""Rotation detection and the life of a rotation from one decision to the next.

A rotation moves the rotational bucket from the sector most held (the cooling sector) to
the best-scoring confident sector (the heating one). Life cycle:

- **start**: the heating sector beats the most-held one by more than
  ``rotation_threshold`` and both have ``min_confidence``. Confirmations start at 0.
- **active**: each later decision checks it. Still valid (the incoming sector leads by at
  least ``rotation_hold_margin``, with confidence) adds a confirmation; weakening (leads by
  less) resets them; flipped (the leaving sector is back ahead, or the incoming one has no
  usable score) abandons the rotation. ``exit_confirmations`` consecutive confirmations
  confirm the exit. Not confirmed within ``rotation_time_stop_days``: failed, dropped.
- **completed**: the overlay is closed; the state is kept only to remember the residual the
  sector left keeps, until the next rotation replaces it. That next rotation may start no
  sooner than ``rotation_cooldown_days`` after this one started, and never out of the
  sector just left (it holds only its residual).

Only while a rotation is active does no new one start: a third sector overtaking waits for
the running one to complete, fail or flip (at most a few decisions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.models import Bucket, RotationState, Universe
from bot.domain.params import StrategyParams
from bot.domain.signals import SignalReport


class Phase(StrEnum):
    NONE = "none"
    ACTIVE = "active"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    """No rotation under way; remembered only to hold off the next one for a while."""

    @property
    def holds_sectors(self) -> bool:
        """Whether the state still shapes the book (the incoming sector, the transition or
        residual of the sector left)."""
        return self in (Phase.ACTIVE, Phase.COMPLETED)


def phase_of(state: RotationState | None, params: StrategyParams) -> Phase:
    if state is None:
        return Phase.NONE
    if state.abandoned is not None:
        return Phase.ABANDONED
    return Phase.COMPLETED if state.confirmations >= params.exit_confirmations else Phase.ACTIVE


@dataclass(frozen=True, slots=True)
class RotationOutcome:
    """The state to carry forward, its phase, whether it started now, and why."""

    state: RotationState | None
    phase: Phase
    started: bool
    reasons: tuple[str, ...]


def _rotational_names(universe: Universe) -> set[str]:
    return {s.name for s in universe.sectors if s.bucket is Bucket.ROTATIONAL}


def _has_spot_token(universe: Universe, sector: str, report: SignalReport) -> bool:
    return any(t.spot and report.is_ready(t.symbol) for t in universe.sector(sector).tokens)


def advance_rotation(prior: RotationState | None, report: SignalReport, universe: Universe,
                     weights: Mapping[str, float], as_of: datetime,
                     params: StrategyParams) -> RotationOutcome:
    """Carry the prior rotation one decision forward, then look for a new one if free."""
    reasons: list[str] = []
    state = prior
    rotational = _rotational_names(universe)
    if state is not None:
        bad = [s for s in (state.from_sector, state.to_sector) if s not in rotational]
        if bad or state.from_sector == state.to_sector:
            reasons.append(f"rotation {state.from_sector}->{state.to_sector} dropped: "
                           "not two rotational sectors of this universe")
            state = None
    if state is not None and phase_of(state, params) is Phase.ACTIVE:
        if state.checked is not None and as_of <= state.checked:
            reasons.append(f"rotation {state.from_sector}->{state.to_sector}: already "
                           f"checked at {state.checked.isoformat()}, not counted again")
        else:
            state = _check_running(state, report, universe, as_of, params, reasons)
    started = False
    phase = phase_of(state, params)
    cooling_off = (state is not None and phase is Phase.COMPLETED
                   and as_of - state.started < timedelta(days=params.rotation_cooldown_days))
    settling = (state is not None and state.abandoned is not None
                and as_of - state.abandoned
                < timedelta(days=params.rotation_abandon_cooldown_days))
    if cooling_off and state is not None:
        reasons.append(f"no new rotation: cooldown of {params.rotation_cooldown_days} days "
                       f"since {state.from_sector}->{state.to_sector} started")
    elif settling and state is not None:
        reasons.append(f"no new rotation: {state.from_sector}->{state.to_sector} was abandoned "
                       f"on {state.abandoned:%Y-%m-%d}; cooldown of "
                       f"{params.rotation_abandon_cooldown_days} days")
    elif state is None or phase in (Phase.COMPLETED, Phase.ABANDONED):
        # The sector a completed rotation left holds only its residual: it is not a
        # candidate to rotate out of again (that would restart the rotation just finished).
        winding_down = state.from_sector if state is not None and phase is Phase.COMPLETED \
            else None
        steady = {k: v for k, v in weights.items() if k != winding_down}
        fresh = _detect(report, universe, steady, as_of, params, reasons)
        if fresh is not None:
            state, started = fresh, True
    return RotationOutcome(state, phase_of(state, params), started, tuple(reasons))


def _check_running(state: RotationState, report: SignalReport, universe: Universe,
                   as_of: datetime, params: StrategyParams,
                   reasons: list[str]) -> RotationState | None:
    name = f"{state.from_sector}->{state.to_sector}"
    leaving = report.score_of(state.from_sector)
    incoming = report.score_of(state.to_sector)
    if (incoming is None or incoming.score is None
            or not _has_spot_token(universe, state.to_sector, report)):
        reasons.append(f"rotation {name} abandoned: {state.to_sector} has no usable score")
        return replace(state, abandoned=as_of, checked=as_of)
    if leaving is not None and leaving.score is not None and incoming.score < leaving.score:
        reasons.append(f"rotation {name} abandoned: signals flipped ({state.from_sector} "
                       f"{leaving.score:.2f} > {state.to_sector} {incoming.score:.2f})")
        return replace(state, abandoned=as_of, checked=as_of)
    checked = replace(state, checked=as_of)
    if leaving is None or leaving.score is None:
        reasons.append(f"rotation {name} pending: {state.from_sector} score unavailable "
                       f"(confirmations stay {state.confirmations})")
        updated = checked
    else:
        gap = incoming.score - leaving.score
        if gap >= params.rotation_hold_margin and incoming.confidence >= params.min_confidence:
            count = state.confirmations + 1
            updated = replace(checked, confirmations=count)
            if count >= params.exit_confirmations:
                reasons.append(f"exit from {state.from_sector} confirmed: {state.to_sector} "
                               f"led by >= {params.rotation_hold_margin:g} for {count} "
                               f"decisions (gap {gap:.2f}); overlay closed")
                return updated
            reasons.append(f"rotation {name} valid: gap {gap:.2f} >= "
                           f"{params.rotation_hold_margin:g} (confirmation {count}/"
                           f"{params.exit_confirmations})")
        else:
            updated = replace(checked, confirmations=0)
            reasons.append(f"rotation {name} weakening: gap {gap:.2f} < "
                           f"{params.rotation_hold_margin:g} or low confidence "
                           "(confirmations reset)")
    if as_of - state.started >= timedelta(days=params.rotation_time_stop_days):
        reasons.append(f"time stop: rotation {name} not confirmed within "
                       f"{params.rotation_time_stop_days} days; overlay closed")
        return replace(updated, abandoned=as_of)
    return updated


def _detect(report: SignalReport, universe: Universe, weights: Mapping[str, float],
            as_of: datetime, params: StrategyParams,
            reasons: list[str]) -> RotationState | None:
    """A new rotation from the most-held rotational sector to the confident leader, or None."""
    rotational = [s.name for s in universe.sectors if s.bucket is Bucket.ROTATIONAL]
    held = sorted((-weights.get(n, 0.0), n) for n in rotational if weights.get(n, 0.0) > 0)
    if not held:
        return None
    cooling = held[0][1]
    leaders = sorted(
        (-s.score, s.sector) for s in report.scores
        if s.sector in rotational and s.score is not None
        and s.confidence >= params.min_confidence
        and _has_spot_token(universe, s.sector, report)
    )
    if not leaders:
        reasons.append("no rotation: no confident rotational leader")
        return None
    heating = leaders[0][1]
    heat_score = -leaders[0][0]
    if heating == cooling:
        reasons.append(f"no rotation: held {cooling} leads (score {heat_score:.2f})")
        return None
    cool = report.score_of(cooling)
    if cool is None or cool.score is None or cool.confidence < params.min_confidence:
        reasons.append(f"no rotation: held {cooling} has no confident score to compare")
        return None
    gap = heat_score - cool.score
    if gap <= params.rotation_threshold:
        reasons.append(f"no rotation: {heating} leads held {cooling} by {gap:.2f} <= "
                       f"threshold {params.rotation_threshold:g}")
        return None
    heat = report.score_of(heating)
    heat_confidence = heat.confidence if heat is not None else 0.0
    reasons.append(f"rotate {cooling}->{heating}: score gap {gap:.2f} > "
                   f"{params.rotation_threshold:g} (confidence {cool.confidence:.2f} / "
                   f"{heat_confidence:.2f})")
    return RotationState(from_sector=cooling, to_sector=heating, started=as_of,
                         from_weight_at_start=weights[cooling], confirmations=0, checked=as_of)
