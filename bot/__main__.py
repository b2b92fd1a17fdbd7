"""``python -m bot`` is the same as the ``sectorbot`` console script."""

from bot.cli import entry

entry()
