"""The provider's HTTP service: charges, full refunds, listings and test fault switches."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from provider.errors import describe, error_response
from provider.faults import FaultConfig, FaultMiddleware, Faults
from provider.schemas import ChargeParams, RefundParams
from provider.store import (
    Charge,
    ChargeAlreadyRefunded,
    DatabaseUnavailable,
    Missing,
    PartialRefund,
    Refund,
    Store,
)

DECLINED_PREFIX = "tok_declined"
MAX_KEY_LENGTH = 255


class ApiError(Exception):
    """An error answered in the provider's shape."""

    def __init__(self, status: int, type_: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.code = status, type_, message, code


def missing(kind: str, ident: str) -> ApiError:
    return ApiError(404, "invalid_request_error", f"No such {kind}: '{ident}'", "resource_missing")


def idempotency_mismatch(key: str) -> ApiError:
    return ApiError(
        409,
        "idempotency_error",
        f"Keys for idempotent requests can only be used with the same parameters"
        f" they were first used with (key '{key}')",
    )


class BearerAuth:
    """Pure ASGI middleware: every `/v1/...` request needs `Authorization: Bearer <api_key>`."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/v1" or path.startswith("/v1/")):
            given = dict(scope["headers"]).get(b"authorization")
            if given is None or not hmac.compare_digest(given, self.expected):
                message = "No API key provided" if given is None else "Invalid API key provided"
                await error_response(401, "authentication_error", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def store_of(request: Request) -> Store:
    return request.app.state.store


def faults_of(request: Request) -> Faults:
    return request.app.state.faults


def require_idempotency_key(key: str | None = Header(None, alias="Idempotency-Key")) -> str:
    if key is None or not key.strip():
        raise ApiError(400, "invalid_request_error", "The Idempotency-Key header is required")
    if len(key) > MAX_KEY_LENGTH:
        raise ApiError(
            400, "invalid_request_error", f"Idempotency-Key is longer than {MAX_KEY_LENGTH}"
        )
    return key


IdempotencyKey = Annotated[str, Depends(require_idempotency_key)]
StoreDep = Annotated[Store, Depends(store_of)]
FaultsDep = Annotated[Faults, Depends(faults_of)]
Limit = Annotated[int, Query(ge=1, le=100)]


def charge_object(charge: Charge) -> dict[str, Any]:
    return {
        "id": charge.id,
        "object": "charge",
        "amount": charge.amount,
        "currency": charge.currency,
        "payment_method": charge.payment_method,
        "customer": charge.customer,
        "status": charge.status,
        "refunded": charge.status == "refunded",
        "amount_refunded": charge.amount_refunded,
        "idempotency_key": charge.idempotency_key,
        "metadata": charge.metadata,
        "created": charge.created,
    }


def refund_object(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "object": "refund",
        "charge": refund.charge,
        "amount": refund.amount,
        "status": "succeeded",
        "created": refund.created,
    }


def listing(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more}


router = APIRouter(prefix="/v1")


@router.post("/charges")
def create_charge(
    params: ChargeParams,
    key: IdempotencyKey,
    store: StoreDep,
) -> dict[str, Any]:
    fingerprint = params.fingerprint()
    charge = store.charge_by_key(key)
    if charge is None:
        if params.payment_method.startswith(DECLINED_PREFIX):
            raise ApiError(402, "card_error", "Your card was declined", "card_declined")
        charge = store.create_charge(
            idempotency_key=key,
            fingerprint=fingerprint,
            amount=params.amount,
            currency=params.currency,
            payment_method=params.payment_method,
            customer=params.customer,
            metadata=params.metadata or {},
        )
    if charge.fingerprint != fingerprint:
        raise idempotency_mismatch(key)
    return charge_object(charge)


@router.get("/charges/{charge_id}")
def get_charge(charge_id: str, store: StoreDep) -> dict[str, Any]:
    charge = store.charge(charge_id)
    if charge is None:
        raise missing("charge", charge_id)
    return charge_object(charge)


@router.get("/charges")
def list_charges(
    store: StoreDep,
    idempotency_key: str | None = None,
    order_id: str | None = None,
    limit: Limit = 100,
    starting_after: str | None = None,
) -> dict[str, Any]:
    filters = {"idempotency_key": idempotency_key, "order_id": order_id}
    try:
        charges, has_more = store.charges(
            {column: value for column, value in filters.items() if value is not None},
            starting_after,
            limit,
        )
    except Missing as exc:
        raise missing("charge", str(exc)) from exc
    return listing([charge_object(charge) for charge in charges], has_more)


@router.post("/refunds")
def create_refund(
    params: RefundParams,
    key: IdempotencyKey,
    store: StoreDep,
) -> dict[str, Any]:
    fingerprint = params.fingerprint()
    try:
        refund = store.refund(
            idempotency_key=key,
            fingerprint=fingerprint,
            charge_id=params.charge,
            amount=params.amount,
        )
    except Missing as exc:
        raise missing("charge", params.charge) from exc
    except ChargeAlreadyRefunded as exc:
        raise ApiError(
            400,
            "invalid_request_error",
            f"Charge {params.charge} has already been refunded",
            "charge_already_refunded",
        ) from exc
    except PartialRefund as exc:
        raise ApiError(
            400, "invalid_request_error", "Only full refunds are supported: omit amount"
        ) from exc
    if refund.fingerprint != fingerprint:
        raise idempotency_mismatch(key)
    return refund_object(refund)


@router.get("/refunds")
def list_refunds(
    store: StoreDep,
    charge: str | None = None,
    limit: Limit = 100,
    starting_after: str | None = None,
) -> dict[str, Any]:
    try:
        refunds, has_more = store.refunds(
            {} if charge is None else {"charge": charge}, starting_after, limit
        )
    except Missing as exc:
        raise missing("refund", str(exc)) from exc
    return listing([refund_object(refund) for refund in refunds], has_more)


@router.get("/test/faults")
def get_faults(faults: FaultsDep) -> dict[str, Any]:
    return faults.snapshot()


@router.put("/test/faults")
def put_faults(config: FaultConfig, faults: FaultsDep) -> dict[str, Any]:
    faults.replace(config)
    return faults.snapshot()


async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.type, exc.message, exc.code)


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(400, "invalid_request_error", describe(list(exc.errors()), skip_loc=1))


async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return error_response(exc.status_code, "invalid_request_error", str(exc.detail))


async def on_database_unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
    return error_response(503, "api_error", str(exc), "database_unavailable")


def create_app(
    db_path: Path, api_key: str, faults: FaultConfig | None = None, *, create: bool = False
) -> FastAPI:
    """The provider service on its database file (made if missing only when `create` is set),
    with its API key and initial faults."""
    app = FastAPI(title="FlowForge payment provider", openapi_url=None)
    app.state.store = Store(Path(db_path), create=create)
    app.state.faults = Faults(faults)
    app.include_router(router)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(DatabaseUnavailable, on_database_unavailable)

    @app.get("/health")
    def health() -> dict[str, str]:
        app.state.store.check()  # a provider without its database is not healthy
        return {"status": "ok"}

    # Added last, so outermost: auth first, then faults, which see uvicorn's own `receive`.
    app.add_middleware(FaultMiddleware, faults=app.state.faults)
    app.add_middleware(BearerAuth, api_key=api_key)
    return app
