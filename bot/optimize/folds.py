"""Walk-forward windows: where each fold trains, where it is tested, and the untouched holdout.

The searchable period runs from the first day the engine may trade (the data's first day plus
``replay.warmup_days``, so every fold starts with the history its indicators need) to the day
before ``--holdout-from`` (or the data's last day). It is cut into ``folds + 1`` equal
segments: segment ``i + 1`` is fold ``i``'s test window. Its training window ends the day
before: the ``train_days`` before it (rolling; default one segment) or everything from the
start (anchored). A fold is run on data loaded up to its test window's last day and no
further, so no window can see data after its end; the objective reads the test window only.
Each window is backtested from cash, on its own (``bot.optimize.evaluate``); the training
window's figures are reported as in-sample beside the test ones (``train_days`` 0 skips them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

Scheme = Literal["rolling", "anchored"]
MIN_TEST_DAYS = 14


@dataclass(frozen=True, slots=True)
class Fold:
    index: int
    train_start: date
    test_start: date
    test_end: date

    @property
    def test_days(self) -> int:
        return (self.test_end - self.test_start).days + 1

    @property
    def train_days(self) -> int:
        return (self.test_start - self.train_start).days


class FoldError(ValueError):
    """The windows cannot be laid out; the message says which option to change."""


def walk_forward(first: date, last: date, folds: int, scheme: Scheme = "rolling",
                 train_days: int | None = None) -> tuple[Fold, ...]:
    """``folds`` consecutive test windows over ``[first, last]`` with their training windows."""
    if folds < 1:
        raise FoldError("--folds: must be at least 1")
    span = (last - first).days + 1
    segment = span // (folds + 1)
    if segment < MIN_TEST_DAYS:
        raise FoldError(f"--folds: {folds} folds over {span} searchable days ({first} .. "
                        f"{last}) leave {segment}-day windows; at least {MIN_TEST_DAYS} days "
                        "are needed: use fewer folds or more data")
    if train_days is not None and train_days < 0:
        raise FoldError("--train-days: must be 0 (no in-sample run) or more")
    train = segment if train_days is None else train_days
    # The first segment absorbs the remainder so every test window has the same length.
    first_test = last - timedelta(days=folds * segment - 1)
    out = []
    for i in range(folds):
        test_start = first_test + timedelta(days=i * segment)
        test_end = test_start + timedelta(days=segment - 1)
        train_start = first if scheme == "anchored" else max(
            first, test_start - timedelta(days=train))
        out.append(Fold(i, train_start, test_start, test_end))
    return tuple(out)


def holdout_window(first: date, holdout_from: date, last: date) -> tuple[date, date]:
    """The untouched window ``[holdout_from, last]``, checked against the data."""
    if holdout_from <= first:
        raise FoldError(f"--holdout-from: {holdout_from} leaves nothing to search before it "
                        f"(the first tradable day is {first})")
    if (last - holdout_from).days + 1 < MIN_TEST_DAYS:
        raise FoldError(f"--holdout-from: {holdout_from} leaves under {MIN_TEST_DAYS} days "
                        f"of holdout (the data ends {last})")
    return holdout_from, last


__all__ = ["MIN_TEST_DAYS", "Fold", "FoldError", "Scheme", "holdout_window", "walk_forward"]
