"""The Prefect runs of an order, as the API shows them: id, state and UI link, read with one
long-lived client and a short timeout, so a slow Prefect server never holds up a status."""

from __future__ import annotations

import logging
import math
import threading
import time
from functools import cache
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from flows.outcome import PREFECT_ERRORS
from flows.prefect_api import run_ui_url

LINK_TIMEOUT_SECONDS = 1.0
STATE_TTL_SECONDS = 5.0
MAX_REMEMBERED = 10_000

_states: dict[str, tuple[float, dict[str, str | None]]] = {}
_states_lock = threading.Lock()

logger = logging.getLogger(__name__)


def run_links(*, flow_run_id: str | None, task_run_id: str | None) -> dict[str, Any]:
    """`flow_run` and `task_run`: each run's id, state and Prefect UI link (None when the
    order has no such run). Best effort: the state is None when the server does not answer
    within `LINK_TIMEOUT_SECONDS`, so a slow Prefect never holds up a status read."""
    return {
        "flow_run": _link("flow-run", flow_run_id) if flow_run_id else None,
        "task_run": _link("task-run", task_run_id) if task_run_id else None,
    }


def _link(kind: str, run_id: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": run_id,
        "state": None,
        "state_type": None,
        "url": run_ui_url(kind, run_id),
    }
    if PREFECT_API_URL.value():
        info.update(_state(kind, run_id))
    return info


def _state(kind: str, run_id: str) -> dict[str, str | None]:
    """The run's state name and type: a final state is remembered for good, another for
    `STATE_TTL_SECONDS`, so clients polling a status do not each become a Prefect call."""
    now = time.monotonic()
    with _states_lock:
        known = _states.get(run_id)
    if known is not None and known[0] > now:
        return known[1]
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
        return {}
    if run.state is None:
        return {}
    state = {"state": run.state.name, "state_type": run.state.type.value}
    until = math.inf if run.state.is_final() else now + STATE_TTL_SECONDS
    with _states_lock:
        if len(_states) >= MAX_REMEMBERED:
            _states.clear()
        _states[run_id] = (until, state)
    return state


@cache
def _status_client() -> SyncPrefectClient:
    """One client for every status read of this process (a new one costs ~44 ms of CPU)."""
    client = get_client(sync_client=True, httpx_settings={"timeout": LINK_TIMEOUT_SECONDS})
    client.__enter__()
    return client
