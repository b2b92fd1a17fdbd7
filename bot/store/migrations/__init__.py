"""Alembic environment for the state store (run by ``bot.store.migrate``, no alembic.ini)."""
