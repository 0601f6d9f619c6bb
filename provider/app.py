"""The provider's HTTP service: the subset of Stripe's API that FlowForge calls (PaymentMethods
from test tokens, PaymentIntents, refunds, lists), with Stripe's idempotency keys, and test
fault switches."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from provider import ledger
from provider.errors import ApiError, describe, invalid
from provider.faults import FaultConfig, FaultMiddleware, Faults
from provider.forms import FormError, decode
from provider.schemas import (
    IntentCancel,
    IntentConfirm,
    IntentCreate,
    ListParams,
    PaymentMethodCreate,
    RefundCreate,
    RefundList,
    Retrieve,
)
from provider.store import DatabaseUnavailable, Store

MAX_KEY_LENGTH = 255
P = TypeVar("P", bound=BaseModel)
Operation = Callable[[Any], dict[str, Any]]  # (connection) -> the object


class BearerAuth:
    """Pure ASGI middleware: every `/v1/...` request needs `Authorization: Bearer <api_key>`.
    The answer never repeats the key it was given."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/v1" or path.startswith("/v1/")):
            given = dict(scope["headers"]).get(b"authorization")
            if given is None or not hmac.compare_digest(given, self.expected):
                message = (
                    "You did not provide an API key."
                    if given is None
                    else "Invalid API Key provided."
                )
                error = ApiError(401, "invalid_request_error", message)
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def params_of(request: Request, model: type[P]) -> tuple[dict[str, Any], P]:
    """The request's parameters (a form body for POST, the query string otherwise), raw and
    validated by `model`."""
    text = (await request.body()).decode() if request.method == "POST" else request.url.query
    try:
        raw = decode(text)
    except FormError as exc:
        raise invalid(str(exc)) from exc
    try:
        return raw, model.model_validate(raw)
    except ValidationError as exc:
        message, param = describe(exc.errors(include_url=False))
        raise invalid(message, param=param) from exc


def _key_of(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and (not key.strip() or len(key) > MAX_KEY_LENGTH):
        raise invalid(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    return key


def _fingerprint(request: Request, raw: dict[str, Any]) -> str:
    canonical = json.dumps([request.method, request.url.path, raw], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _run(conn: Any, operation: Operation) -> tuple[int, dict[str, Any]]:
    try:
        return 200, operation(conn)
    except ApiError as exc:  # an answer of the operation: stored under the key like any other
        return exc.status, exc.body()


def execute(
    store: Store, key: str | None, fingerprint: str, operation: Operation, stall: float
) -> tuple[int, dict[str, Any]]:
    """Run a request that changes something, as Stripe does with an idempotency key: the first
    request runs (its answer, errors included, stored with the key); the same key with the same
    parameters gets that answer again; with other parameters 400 `idempotency_error`; while the
    first is still running, 409."""
    if key is None:
        with store.write() as conn:
            return _run(conn, operation)
    with store.write() as conn:
        row = conn.execute(
            "SELECT fingerprint, status, body FROM idempotency WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO idempotency (key, fingerprint) VALUES (?, ?)", (key, fingerprint)
            )
    if row is not None:
        if row["fingerprint"] != fingerprint:
            raise ApiError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they"
                f" were first used with. Try using a key other than '{key}' if you meant to"
                " execute a different request.",
            )
        if row["status"] is None:
            raise ApiError(
                409,
                "idempotency_error",
                "There is currently another in-progress request using this Idempotent Key"
                f" (that probably means you submitted twice, and the other request is still"
                f" going through): {key}. Please try again later.",
                code="idempotency_key_in_use",
            )
        return row["status"], json.loads(row["body"])
    try:
        time.sleep(stall)
        with store.write() as conn:
            status, body = _run(conn, operation)
            conn.execute(
                "UPDATE idempotency SET status = ?, body = ? WHERE key = ?",
                (status, json.dumps(body), key),
            )
    except BaseException:
        with store.write() as conn:  # never ran: the key is free again
            conn.execute("DELETE FROM idempotency WHERE key = ? AND status IS NULL", (key,))
        raise
    return status, body


async def change(request: Request, model: type[P], act: Callable[[Any, P], dict]) -> JSONResponse:
    """A POST: its parameters validated, then run under its idempotency key."""
    raw, params = await params_of(request, model)
    key = _key_of(request)
    stall = getattr(request.state, "stall_seconds", 0.0)
    status, body = await run_in_threadpool(
        execute,
        request.app.state.store,
        key,
        _fingerprint(request, raw),
        lambda conn: act(conn, params),
        stall,
    )
    return JSONResponse(body, status_code=status)


async def look(request: Request, model: type[P], act: Callable[[Any, P], dict]) -> JSONResponse:
    """A GET: its parameters validated, then read."""
    _, params = await params_of(request, model)
    store: Store = request.app.state.store

    def read() -> dict[str, Any]:
        with store.read() as conn:
            return act(conn, params)

    return JSONResponse(await run_in_threadpool(read))


router = APIRouter(prefix="/v1")


@router.post("/payment_methods")
async def create_payment_method(request: Request) -> JSONResponse:
    return await change(request, PaymentMethodCreate, ledger.create_payment_method)


@router.post("/payment_intents")
async def create_intent(request: Request) -> JSONResponse:
    return await change(request, IntentCreate, ledger.create_intent)


@router.get("/payment_intents")
async def list_intents(request: Request) -> JSONResponse:
    return await look(request, ListParams, ledger.list_intents)


@router.get("/payment_intents/{intent}")
async def get_intent(request: Request, intent: str) -> JSONResponse:
    return await look(request, Retrieve, lambda conn, p: ledger.get_intent(conn, intent, p.expand))


@router.post("/payment_intents/{intent}/confirm")
async def confirm_intent(request: Request, intent: str) -> JSONResponse:
    return await change(
        request, IntentConfirm, lambda conn, p: ledger.confirm_intent(conn, intent, p)
    )


@router.post("/payment_intents/{intent}/cancel")
async def cancel_intent(request: Request, intent: str) -> JSONResponse:
    return await change(
        request, IntentCancel, lambda conn, p: ledger.cancel_intent(conn, intent, p)
    )


@router.post("/refunds")
async def create_refund(request: Request) -> JSONResponse:
    return await change(request, RefundCreate, ledger.create_refund)


@router.get("/refunds")
async def list_refunds(request: Request) -> JSONResponse:
    return await look(request, RefundList, ledger.list_refunds)


@router.get("/test/faults")
def get_faults(request: Request) -> dict[str, Any]:
    return request.app.state.faults.snapshot()


@router.put("/test/faults")
def put_faults(config: FaultConfig, request: Request) -> dict[str, Any]:
    request.app.state.faults.replace(config)
    return request.app.state.faults.snapshot()


async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
    return exc.response()


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    message, param = describe(list(exc.errors()), skip_loc=1)
    return invalid(message, param=param).response()


async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code in (404, 405):
        message = f"Unrecognized request URL ({request.method}: {request.url.path})."
        return ApiError(404, "invalid_request_error", message).response()
    return ApiError(exc.status_code, "invalid_request_error", str(exc.detail)).response()


async def on_database_unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
    return ApiError(503, "api_error", str(exc), code="database_unavailable").response()


def create_app(
    db_path: Path, api_key: str, faults: FaultConfig | None = None, *, create: bool = False
) -> FastAPI:
    """The provider service on its database file (made if missing only when `create` is set),
    with its API key and initial faults."""
    app = FastAPI(title="FlowForge's local double of Stripe", openapi_url=None)
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
