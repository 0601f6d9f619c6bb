"""Alembic's environment and FlowForge's migration scripts (driven by storage/migrations.py)."""
