"""What the spot book does while the kill switch is tripped.

A trip means the strategy has lost more than the user agreed to (or the venue cannot be
read): nothing is bought, no rotation starts or advances, no overlay is held (the risk watch
closes every perp; stops stay until their positions are gone). The spot book then follows
the configured action, which only ever sells:

- ``to_cash`` (the default): everything is sold to USDT. The only action that caps the loss
  at the drawdown the user configured, which is what a kill switch is for; the user comes
  back in deliberately with ``sectorbot resume``. On the bundled 2021-2025 replay it held the
  maximum drawdown to 29.4 % (the trip) where ``to_core`` let it reach 49.4 % and ``freeze``
  72.5 %, at the price of missing the late-2021 rally (see docs/kill-switch.md).
- ``to_core``: the core tokens (BTC, ETH) are kept, everything else is sold to USDT. The
  playbook's defensive posture ("favoring BTC/ETH core holdings"): the tails that fall
  furthest in a bear market go, the core's market risk stays.
- ``freeze``: nothing is traded. The loss is not locked in, but the book keeps all of its
  risk, the rotational and speculative tails included, while nobody watches.

Frozen tokens (no fresh price) are kept whatever the action: a price the bot does not know
is not a price to sell at.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.domain.models import Universe


def kill_switch_weights(book: Mapping[str, float], action: str, universe: Universe,
                        frozen: frozenset[str]) -> dict[str, float]:
    """Target spot weights (shares of equity) under ``action``; never above the book's own
    weight for any token, so a tripped switch can only sell."""
    if action == "freeze":
        return dict(book)
    keep = set(frozen)
    if action == "to_core":
        keep |= {t.symbol for t in universe.core}
    return {t: w for t, w in sorted(book.items()) if t in keep and w > 0}
