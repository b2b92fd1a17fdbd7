"""The port through which the daemon reports what it did, for health and metrics.

The daemon calls these hooks where it already holds the figures (a cycle's outcome, the
risk watch's result, the scheduler's start), so monitoring costs no extra venue request and
the trading code imports no metrics library; :class:`NullObserver` is what a backtest and
``--once``/``--cycles`` runs get. An observer must never raise into trading: the one that
publishes (:class:`bot.service.telemetry.Telemetry`) swallows and logs its own failures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bot.domain.models import Universe
    from bot.service.cycle import CycleOutcome
    from bot.store.repo import StateStore


class DaemonObserver(Protocol):
    def wrap_log(self, log: Any) -> Any:
        """The logger the daemon hands down (an observer may watch its events)."""
        ...

    def service_started(self, cycle_interval_seconds: float, alive: Callable[[], bool],
                        store: StateStore, universe: Universe,
                        first_cycle_grace: float = 0.0) -> None:
        """The scheduler runs; ``alive`` says whether it still does. The first cycle is
        due up to ``first_cycle_grace`` seconds late (the providers' prefill runs first)."""
        ...

    def service_stopped(self) -> None:
        ...

    def cycle_completed(self, outcome: CycleOutcome, seconds: float,
                        store: StateStore) -> None:
        ...

    def cycle_failed(self, error: BaseException, seconds: float) -> None:
        ...

    def risk_watch_done(self, failed_steps: Sequence[str] | None,
                        error: BaseException | None, store: StateStore) -> None:
        """A risk watch ended: the steps that failed, or the error that ended it."""
        ...


class NullObserver:
    """Reports nowhere."""

    def wrap_log(self, log: Any) -> Any:
        return log

    def service_started(self, cycle_interval_seconds: float, alive: Callable[[], bool],
                        store: StateStore, universe: Universe,
                        first_cycle_grace: float = 0.0) -> None:
        pass

    def service_stopped(self) -> None:
        pass

    def cycle_completed(self, outcome: CycleOutcome, seconds: float,
                        store: StateStore) -> None:
        pass

    def cycle_failed(self, error: BaseException, seconds: float) -> None:
        pass

    def risk_watch_done(self, failed_steps: Sequence[str] | None,
                        error: BaseException | None, store: StateStore) -> None:
        pass


class ObserverChain:
    """Several observers as one: each sees every hook, and the logger is wrapped by each in
    turn (a service with both the monitoring endpoint and alerts)."""

    def __init__(self, observers: Sequence[DaemonObserver]) -> None:
        self._observers = tuple(observers)

    def wrap_log(self, log: Any) -> Any:
        for observer in self._observers:
            log = observer.wrap_log(log)
        return log

    def service_started(self, cycle_interval_seconds: float, alive: Callable[[], bool],
                        store: StateStore, universe: Universe,
                        first_cycle_grace: float = 0.0) -> None:
        for observer in self._observers:
            observer.service_started(cycle_interval_seconds, alive, store, universe,
                                     first_cycle_grace)

    def service_stopped(self) -> None:
        for observer in self._observers:
            observer.service_stopped()

    def cycle_completed(self, outcome: CycleOutcome, seconds: float,
                        store: StateStore) -> None:
        for observer in self._observers:
            observer.cycle_completed(outcome, seconds, store)

    def cycle_failed(self, error: BaseException, seconds: float) -> None:
        for observer in self._observers:
            observer.cycle_failed(error, seconds)

    def risk_watch_done(self, failed_steps: Sequence[str] | None,
                        error: BaseException | None, store: StateStore) -> None:
        for observer in self._observers:
            observer.risk_watch_done(failed_steps, error, store)
