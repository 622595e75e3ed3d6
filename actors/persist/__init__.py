"""Persistence: snapshots and the append-only log, sans-IO (see docs/persistence.md)."""
