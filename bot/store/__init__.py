"""Durable state (SQLAlchemy): decisions, orders, fills, positions, equity, daemon cursor."""
