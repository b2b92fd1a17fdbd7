"""Market-data and signal sources: bundled/user replay data, later live HTTP providers."""
