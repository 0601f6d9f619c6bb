"""The FastAPI app. Routes stay thin: flows record, cancel and retry (the intake does the work),
api.links reads the Prefect runs, storage reads and receives stock."""

from __future__ import annotations

from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Path,
    Request,
    Response,
    status,
)
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool

from api.auth import require_metrics_token, require_token
from api.links import run_links
from api.schemas import (
    PAGE_SIZE,
    ActionAccepted,
    AuditReport,
    Health,
    OrderStarted,
    OrderStatusReport,
    PageLimit,
    PageOffset,
    StatusWait,
    StockReceipt,
)
from api.waiting import status_watch
from flows.cancel import request_cancel
from flows.fulfill import record_order
from flows.outcome import Outcome
from flows.reconcile import request_retry
from payments.audit import audit
from storage import operations, prometheus, saga_log, snapshot
from storage.db import session_scope
from storage.errors import OrderConflict, ProductMismatch, StorageUnavailable
from storage.limits import IDENTIFIER
from storage.models import (
    ORDER_ID,
    SETTLED_STATUSES,
    TERMINAL_STATUSES,
    Order,
    OrderCreate,
    OrderStatus,
    Payment,
)
from storage.views import (
    EngineSnapshot,
    InventoryView,
    OrderSummary,
    PaymentView,
    WarehouseView,
)

WorkflowId = Annotated[str, Path(pattern=IDENTIFIER, description="workflow id or order id")]
NOT_FOUND = {status.HTTP_404_NOT_FOUND: {"description": "no such order"}}
LINK = "Link"
PAGED = {
    status.HTTP_200_OK: {
        "headers": {
            LINK: {
                "description": '`<url of the next page>; rel="next"`, absent on the last page',
                "schema": {"type": "string"},
            }
        }
    }
}
METRICS = prometheus.registry()

app = FastAPI(
    title="FlowForge",
    summary="Order fulfillment as recoverable sagas on Prefect",
    version="0.1.0",
)
router = APIRouter(dependencies=[Depends(require_token)])


@app.exception_handler(StorageUnavailable)
@app.exception_handler(OperationalError)
@app.exception_handler(InterfaceError)
def storage_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """The database cannot be used (now or since start-up): 503, never a 500 with a traceback."""
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return JSONResponse(
        {"detail": f"database unavailable: {reason}"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@app.exception_handler(RequestValidationError)
def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field; the offending values are left out (NaN or 1e400 cannot be
    put back into JSON)."""
    errors = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]
    return JSONResponse(
        {"detail": jsonable_encoder(errors)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


@app.get("/health")
async def health() -> Health:
    """Liveness; the only endpoint that needs no token. Async: it answers on the event loop,
    never queued behind the worker threads that serve database reads."""
    return Health(status="ok")


def _find(workflow_id: str) -> Order:
    with session_scope(readonly=True) as session:
        order = saga_log.find_order(session, order_or_workflow_id=workflow_id)
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {workflow_id!r} not found")
    return order


@router.post(
    "/orders",
    responses={
        status.HTTP_409_CONFLICT: {"description": "an id names another order, or other details"},
    },
)
def create_order(
    body: OrderCreate,
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=ORDER_ID,
            description="the order id, for clients that send one as a header; the same as "
            "`order_id` in the body (both may be given if they are equal)",
        ),
    ] = None,
) -> OrderStarted:
    """Record the order and return at once: the intake claims it from the database. With an
    `order_id` of the client's choosing (or an `Idempotency-Key` header) the request is safe
    to retry: the same body answers 200 with the order as it stands, another body 409."""
    if idempotency_key is not None:
        if body.order_id not in (None, idempotency_key):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "the Idempotency-Key header and the body's order_id differ",
            )
        body = body.model_copy(update={"order_id": idempotency_key})
    try:
        order_id, created = record_order(body)
    except OrderConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    order = _find(order_id)
    # this request started it, even if an intake has already taken it since
    waiting = created or order.status == OrderStatus.PENDING
    return OrderStarted(
        workflow_id=order.workflow_id,
        order_id=order_id,
        status="started" if waiting else order.status,
        created=created,
        message=("order recorded" if created else "order already recorded")
        + ("; the intake runs it" if waiting else f"; it is {order.status}"),
    )


@router.get("/orders")
def list_orders(limit: PageLimit = PAGE_SIZE, offset: PageOffset = 0) -> list[OrderSummary]:
    """Known orders, newest first, without their events."""
    with session_scope(readonly=True) as session:
        orders = saga_log.list_orders(session, limit=limit, offset=offset)
        return snapshot.order_summaries(session, orders)


def _status_report(workflow_id: str) -> OrderStatusReport:
    order = _find(workflow_id)
    with session_scope(readonly=True) as session:
        summary = snapshot.order_summary(session, order)
    links = run_links(flow_run_id=order.flow_run_id, task_run_id=order.task_run_id)
    return OrderStatusReport.model_validate({**dict(summary), **links})


@router.get("/orders/{workflow_id}/status", responses=NOT_FOUND)
async def order_status(workflow_id: WorkflowId, wait: StatusWait = None) -> OrderStatusReport:
    """The saga's state from the database, and the Prefect run that drove it: the intake's
    task run (`task_run`) or a flow run (`flow_run`), each with its id, state and UI link.
    With `wait`, a long poll: it answers once the order is terminal or its status differs from
    the one it had when the request came, or after `wait` seconds. A waiting request holds no
    database connection and no thread (one poller per process watches every awaited order)."""
    if wait is not None:
        order = await run_in_threadpool(_find, workflow_id)
        if order.status not in TERMINAL_STATUSES:
            await status_watch().changed(order.order_id, order.status, wait)
        workflow_id = order.order_id
    return await run_in_threadpool(_status_report, workflow_id)


def _accepted(order: Order, outcome: Outcome) -> ActionAccepted:
    return ActionAccepted(
        workflow_id=order.workflow_id,
        order_id=order.order_id,
        status=outcome.summary.status,
        changed=outcome.changed,
        message=outcome.message,
    )


@router.post(
    "/orders/{workflow_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**NOT_FOUND, status.HTTP_409_CONFLICT: {"description": "already settled"}},
)
def cancel_order(workflow_id: WorkflowId) -> ActionAccepted:
    """Flag the order for cancellation: its driver stops at the next step boundary, or the
    intake compensates a completed one. `changed` is false when it was already requested."""
    order = _find(workflow_id)
    outcome = request_cancel(order.order_id)
    if outcome.summary.status in SETTLED_STATUSES:
        raise HTTPException(status.HTTP_409_CONFLICT, outcome.message)
    return _accepted(order, outcome)


@router.post(
    "/orders/{workflow_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **NOT_FOUND,
        status.HTTP_409_CONFLICT: {"description": "the order is not needs_attention"},
    },
)
def retry_order(workflow_id: WorkflowId) -> ActionAccepted:
    """Reopen the pending compensations of a needs_attention order; the intake re-runs them.
    `changed` is false when they are already queued or running."""
    order = _find(workflow_id)
    outcome = request_retry(order.order_id)
    if not outcome.changed and outcome.summary.status != OrderStatus.COMPENSATING:
        raise HTTPException(status.HTTP_409_CONFLICT, outcome.message)
    return _accepted(order, outcome)


@router.get("/inventory")
def inventory() -> list[InventoryView]:
    with session_scope(readonly=True) as session:
        return snapshot.inventory(session)


@router.post(
    "/inventory/{product_id}/receive",
    responses={status.HTTP_409_CONFLICT: {"description": "name or unit_price differs"}},
)
def receive_stock(
    product_id: Annotated[str, Path(pattern=IDENTIFIER)], body: StockReceipt
) -> InventoryView:
    """Add received units to a product (created when new); its inventory row after."""
    try:
        with session_scope() as session:
            product = operations.receive_stock(session, product_id=product_id, **body.model_dump())
    except ProductMismatch as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return InventoryView.model_validate(product)


@router.get("/payments/{charge_id}", responses={status.HTTP_404_NOT_FOUND: {}})
def payment(charge_id: Annotated[str, Path(pattern=IDENTIFIER)]) -> PaymentView:
    with session_scope(readonly=True) as session:
        row = session.get(Payment, charge_id)
        found = PaymentView.model_validate(row) if row else None
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"payment {charge_id!r} not found")
    return found


def _link_next(request: Request, response: Response, page: snapshot.Page, limit: int) -> None:
    """Point the `Link` header at the next page, if there is one."""
    if page.next_offset is not None:
        url = request.url.include_query_params(limit=limit, offset=page.next_offset)
        response.headers[LINK] = f'<{url}>; rel="next"'


@router.get("/warehouse", responses=PAGED)
def warehouse(
    request: Request, response: Response, limit: PageLimit = PAGE_SIZE, offset: PageOffset = 0
) -> list[WarehouseView]:
    """Warehouse records, newest first, a page at a time."""
    with session_scope(readonly=True) as session:
        page = snapshot.warehouse_page(session, limit=limit, offset=offset)
    _link_next(request, response, page, limit)
    return page.items


@router.get("/engine/snapshot", responses=PAGED)
def engine_snapshot(
    request: Request, response: Response, limit: PageLimit = PAGE_SIZE, offset: PageOffset = 0
) -> EngineSnapshot:
    """A page of orders (newest first) with their payments and warehouse records, and the
    whole inventory. `python -m storage snapshot` prints everything."""
    with session_scope(readonly=True) as session:
        page = snapshot.snapshot_page(session, limit=limit, offset=offset)
    _link_next(request, response, page, limit)
    return page.items


@app.get(
    "/metrics",
    dependencies=[Depends(require_metrics_token)],
    response_class=PlainTextResponse,
)
def metrics() -> Response:
    """Prometheus text format, counted from the database: every replica reports the same."""
    return Response(generate_latest(METRICS), media_type=prometheus.CONTENT_TYPE)


@router.get("/audit")
def audit_report() -> AuditReport:
    """Every violated invariant; `clean` when there is none."""
    with session_scope(readonly=True) as session:
        problems = audit(session)
    return AuditReport(clean=not problems, problems=problems)


app.include_router(router)
