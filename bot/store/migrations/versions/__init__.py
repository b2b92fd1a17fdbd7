"""Schema revisions, oldest first.

Never edit a revision that has shipped: add the next one (copy the newest file, bump
``revision``/``down_revision``, and update ``bot.store.schema`` plus ``SCHEMA_VERSION``).
Revisions use plain SQLAlchemy types, not the models, so later model changes cannot rewrite
history; ``DecimalText`` is ``String(64)`` and ``UtcDateTime`` is ``DateTime(timezone=True)``.
"""
