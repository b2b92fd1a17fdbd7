"""``sectorbot optimize``: walk-forward parameter search on the real backtest, with Optuna."""
