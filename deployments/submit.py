"""Starting cancel and retry runs without waiting for them (the API's door to the
deployments), and reading the state of an order's runs. A run that cannot be submitted
(server down, 503 under load) returns None: the request is already recorded."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_CLIENT_MAX_RETRIES,
    PREFECT_UI_URL,
    temporary_settings,
)

from flows.outcome import PREFECT_ERRORS
from storage.settings import get_settings

CANCEL_ORDER = "cancel-order/cancel-order"
RECONCILE = "reconcile/reconcile"
READ_TIMEOUT_SECONDS = 5.0
LINK_TIMEOUT_SECONDS = 1.0

logger = logging.getLogger(__name__)


def create_run(
    deployment: str, parameters: dict[str, Any], idempotency_key: str | None = None
) -> str | None:
    """Create a run of `deployment` (`flow/deployment`); its id, or None if Prefect refused."""
    if not PREFECT_API_URL.value():
        logger.warning("PREFECT_API_URL is not set: no run of %s submitted", deployment)
        return None
    retries = {PREFECT_CLIENT_MAX_RETRIES: get_settings().submit_retries}
    try:
        with (
            temporary_settings(updates=retries),
            get_client(
                sync_client=True, httpx_settings={"timeout": READ_TIMEOUT_SECONDS}
            ) as client,
        ):
            deployment_id = client.read_deployment_by_name(deployment).id
            run = client.create_flow_run_from_deployment(
                deployment_id, parameters=parameters, idempotency_key=idempotency_key
            )
    except PREFECT_ERRORS as exc:
        logger.warning("could not submit a run of %s: %s: %s", deployment, type(exc).__name__, exc)
        return None
    return str(run.id)


def submit_cancel_run(order_id: str) -> str | None:
    """Start a cancel-order run for a cancellation already requested on the order."""
    return create_run(CANCEL_ORDER, {"order_id": order_id})


def submit_retry_run(order_id: str) -> str | None:
    """Start a reconcile run that retries one needs_attention order."""
    return create_run(RECONCILE, {"retry_order_id": order_id})


def run_links(*, flow_run_id: str | None, task_run_id: str | None) -> dict[str, Any]:
    """`flow_run` and `task_run`: each run's id, state and Prefect UI link (None when the
    order has no such run). Best effort: the state is None when the server does not answer
    within `LINK_TIMEOUT_SECONDS`, so a slow Prefect never holds up a status read."""
    return {
        "flow_run": _link("flow-run", flow_run_id) if flow_run_id else None,
        "task_run": _link("task-run", task_run_id) if task_run_id else None,
    }


def _link(kind: str, run_id: str) -> dict[str, Any]:
    ui_url = PREFECT_UI_URL.value()
    info: dict[str, Any] = {
        "id": run_id,
        "state": None,
        "state_type": None,
        "url": f"{ui_url}/runs/{kind}/{run_id}" if ui_url else None,
    }
    if not PREFECT_API_URL.value():
        return info
    try:
        client = _status_client()
        with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}):
            run = (
                client.read_flow_run(UUID(run_id))
                if kind == "flow-run"
                else client.read_task_run(UUID(run_id))
            )
    except PREFECT_ERRORS as exc:
        logger.warning("could not read %s %s: %s", kind, run_id, exc)
        return info
    if run.state is not None:
        info.update(state=run.state.name, state_type=run.state.type.value)
    return info


@cache
def _status_client() -> SyncPrefectClient:
    """One client for every status read of this process (a new one costs ~44 ms of CPU)."""
    client = get_client(sync_client=True, httpx_settings={"timeout": LINK_TIMEOUT_SECONDS})
    client.__enter__()
    return client
