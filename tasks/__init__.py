"""Prefect tasks: one module per integration, each step next to its compensation."""
