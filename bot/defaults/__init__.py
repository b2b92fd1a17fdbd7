"""Defaults shipped inside the package so a fresh install runs with no files around it."""
