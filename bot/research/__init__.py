"""Research on the replay data: what the signals are worth, measured before they get weight."""
