"""Prefect flows: the order saga, the recovery sweep, cancellation."""
