"""Persistence: tables, sessions, atomic idempotent operations, the audit (no Prefect here)."""
