"""SQL storage (SQLAlchemy Core, async): resources, history, search indexes, outbox."""
