"""Risk limits as the core sees them, with the one number that is never configurable."""

from __future__ import annotations

from dataclasses import dataclass

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
        if not 0 < self.max_slippage_fraction < 1:
            raise ValueError(
                f"max_slippage_fraction: {self.max_slippage_fraction} is outside (0, 1)")

    def clip_leverage(self, requested: float) -> float:
        """The leverage actually allowed for a request: never above the configured cap."""
        return max(0.0, min(requested, self.max_leverage, HARD_MAX_LEVERAGE))
