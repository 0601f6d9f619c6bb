"""Starting deployment runs without waiting for them: the one door the API and the dashboard
use. A run that cannot be submitted (server down, 503 under load) returns None; the order is
already recorded, so the scheduled sweep drives it later."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectException
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_CLIENT_MAX_RETRIES,
    PREFECT_UI_URL,
    temporary_settings,
)

from storage import saga as log
from storage.db import session_scope
from storage.settings import get_settings

FULFILL_ORDER = "fulfill-order/fulfill-order"
CANCEL_ORDER = "cancel-order/cancel-order"
RECONCILE = "reconcile/reconcile"
READ_TIMEOUT_SECONDS = 5.0
PREFECT_ERRORS = (httpx.HTTPError, PrefectException, OSError)

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


def submit_order_run(order_id: str) -> str | None:
    """Start the recorded order's fulfill-order run; None leaves it pending for the sweep."""
    run_id = create_run(FULFILL_ORDER, {"order_id": order_id}, idempotency_key=order_id)
    if run_id is not None:
        with session_scope() as session:
            log.update_order(session, order_id=order_id, flow_run_id=run_id)
    return run_id


def submit_cancel_run(order_id: str) -> str | None:
    """Start a cancel-order run for a cancellation already requested on the order."""
    return create_run(CANCEL_ORDER, {"order_id": order_id})


def submit_retry_run(order_id: str) -> str | None:
    """Start a reconcile run that retries one needs_attention order."""
    return create_run(RECONCILE, {"retry_order_id": order_id})


def flow_run_link(flow_run_id: str) -> dict[str, Any]:
    """The run's id, state and Prefect UI link; state None when the server cannot say."""
    ui_url = PREFECT_UI_URL.value()
    info: dict[str, Any] = {
        "id": flow_run_id,
        "state": None,
        "state_type": None,
        "url": f"{ui_url}/runs/flow-run/{flow_run_id}" if ui_url else None,
    }
    if not PREFECT_API_URL.value():
        return info
    try:
        with (
            temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}),
            get_client(sync_client=True, httpx_settings={"timeout": READ_TIMEOUT_SECONDS}) as c,
        ):
            state = c.read_flow_run(UUID(flow_run_id)).state
    except PREFECT_ERRORS as exc:
        logger.warning("could not read flow run %s: %s", flow_run_id, exc)
        return info
    if state is not None:
        info.update(state=state.name, state_type=state.type.value)
    return info
