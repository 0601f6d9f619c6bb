"""The peer: the floor's saga (`bench.floor`) as a DBOS workflow. Every unit is a
`@DBOS.step()` (steps and compensations retried by DBOS with FlowForge's retry counts, a
refusal never retried), checkpointed in DBOS's own SQLite system database; FlowForge's tables
stay in FlowForge's database. Needs the `bench` extra (`pip install -e '.[bench]'`)."""

from __future__ import annotations

from typing import Any

from dbos import DBOS, SetWorkflowID
from dbos import error as dbos_error

from bench import floor
from storage.errors import FinalError
from storage.settings import get_settings

UNITS = (floor.begin, floor.run_step, floor.unwind, floor.compensate, floor.finish)


def _step(unit: floor.Call) -> floor.Call:
    """`unit` as a DBOS step: interval = FlowForge's first retry delay, doubling after."""
    return DBOS.step(
        name=unit.__name__,
        retries_allowed=floor.retries(unit) > 0,
        max_attempts=floor.retries(unit) + 1,
        interval_seconds=get_settings().retry_delays[0],
        backoff_rate=2.0,
        should_retry=lambda exc: not isinstance(exc, FinalError),
    )(unit)


STEPS = {unit: _step(unit) for unit in UNITS}


def call_as_step(unit: floor.Call, *args: Any) -> Any:
    """Run `unit` as its DBOS step; when DBOS gives up, raise the last error, as the floor does."""
    try:
        return STEPS[unit](*args)
    except dbos_error.DBOSMaxStepRetriesExceeded as exc:
        raise exc.errors[-1] from exc


@DBOS.workflow(name="fulfill-order")
def fulfil(order_id: str) -> str:
    """One order's saga, durable in DBOS: a restarted process resumes it after its last step."""
    return floor.drive(order_id, call_as_step)


def launch(system_database_url: str) -> None:
    """Configure DBOS on its system database (a SQLite file or a PostgreSQL database, created
    by DBOS when missing) and start it in this process."""
    DBOS(config={"name": "flowforge-bench", "system_database_url": system_database_url})
    DBOS.launch()


def drive(order_id: str) -> str:
    """Run the order's workflow (its id is the order id) to its end."""
    with SetWorkflowID(order_id):
        return fulfil(order_id)
