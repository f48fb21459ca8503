"""Record ingestion: validation of pushed records, the conflict-aware write engine, stored
conflicts, and file uploads.

Every writer of `records` goes through `engine.apply_batch` (or holds `engine.lock_entity`):
the engine relies on that lock to know which keys exist.
"""
