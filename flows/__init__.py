"""Prefect flows: the order saga, the recovery sweep, cancellation."""

import os

# No internet here and no telemetry anywhere: set before Prefect is imported.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
