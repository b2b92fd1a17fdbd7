"""The daemon: one trading cycle, the scheduler that drives it, and the risk watch."""
