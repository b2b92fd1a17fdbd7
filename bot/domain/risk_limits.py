"""Risk limits as the core sees them, with the one number that is never configurable."""

from __future__ import annotations

from dataclasses import dataclass

KILL_SWITCH_ACTIONS = ("freeze", "to_core", "to_cash")
"""What a tripped kill switch does with the spot book (perps are always closed)."""
HARD_MAX_LEVERAGE = 5.0
"""The leverage ceiling. Config above it is refused; orders above the configured cap are never
sent. The playbook's rule of thumb: never above 5x for a rotation trade, 2-3x is enough."""


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_leverage: float = 3.0
    max_account_leverage: float = 1.5
    stop_loss_fraction: float = 0.08
    max_drawdown_fraction: float = 0.25
    funding_exit_apr: float = 0.30
    liquidation_buffer_fraction: float = 0.10
    max_slippage_fraction: float = 0.02
    """A market order that adds risk is not sent once the venue's price is further than this
    from the price it was planned at; a fill further than this away is logged."""
    stop_cooldown_days: float = 7.0
    """No new overlay leg on a token within this many days of a stop-out on it: a stop that
    fired says the move failed, and buying it back the next day (AVAX 2021-02-16 and -17)
    pays the loss twice."""
    kill_switch_action: str = "to_cash"
    """Spot after a trip: ``to_cash`` (sell everything), ``to_core`` (keep the core tokens,
    sell the rest) or ``freeze`` (no order at all); see :mod:`bot.domain.kill_switch`."""

    def __post_init__(self) -> None:
        if not 0 < self.max_leverage <= HARD_MAX_LEVERAGE:
            raise ValueError(
                f"max_leverage: {self.max_leverage} is outside (0, {HARD_MAX_LEVERAGE}]"
            )
        if not 0 < self.max_account_leverage <= HARD_MAX_LEVERAGE:
            raise ValueError(
                f"max_account_leverage: {self.max_account_leverage} is outside "
                f"(0, {HARD_MAX_LEVERAGE}]"
            )
        if not 0 < self.stop_loss_fraction < 1:
            raise ValueError(f"stop_loss_fraction: {self.stop_loss_fraction} is outside (0, 1)")
        if self.stop_cooldown_days < 0:
            raise ValueError(f"stop_cooldown_days: {self.stop_cooldown_days} is negative")
        if self.kill_switch_action not in KILL_SWITCH_ACTIONS:
            raise ValueError(f"kill_switch_action: {self.kill_switch_action!r} is not one of "
                             f"{KILL_SWITCH_ACTIONS}")
        if not 0 < self.max_slippage_fraction < 1:
            raise ValueError(
                f"max_slippage_fraction: {self.max_slippage_fraction} is outside (0, 1)")

    def clip_leverage(self, requested: float) -> float:
        """The leverage actually allowed for a request: never above the configured cap."""
        return max(0.0, min(requested, self.max_leverage, HARD_MAX_LEVERAGE))
