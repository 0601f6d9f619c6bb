"""Test fault switches: injected errors and rate limits, dropped connections, slow answers,
stalled requests and latency.

Rules apply to the requests that change something — `payment_intents.create`,
`payment_intents.confirm`, `payment_intents.cancel`, `refunds.create` (the first matching rule
that fires wins); `latency_ms` delays every `/v1` request but the fault switches themselves.
"""

from __future__ import annotations

import asyncio
import random
import threading
from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provider.errors import ApiError

MAX_LATENCY_MS = 60_000
MAX_SLOW_SECONDS = 60.0
Operation = Literal[
    "payment_intents.create", "payment_intents.confirm", "payment_intents.cancel", "refunds.create"
]


class FaultRule(BaseModel):
    """One fault: what it does, to which requests, how often."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["error", "rate_limit", "drop", "slow", "stall"]
    on: Operation
    times: int | None = Field(None, ge=0)
    probability: float = Field(1.0, ge=0, le=1)
    keys: str = "*"


class FaultConfig(BaseModel):
    """The whole fault configuration (`PUT /v1/test/faults`, `PROVIDER_FAULTS`, `--faults`)."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(0, ge=0, le=MAX_LATENCY_MS)
    slow_seconds: float = Field(5.0, ge=0, le=MAX_SLOW_SECONDS, allow_inf_nan=False)
    seed: int | None = None
    rules: list[FaultRule] = Field(default_factory=list)


class Faults:
    """The live configuration with each rule's remaining count; thread-safe."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.replace(config or FaultConfig())

    def replace(self, config: FaultConfig) -> None:
        """Install a configuration, resetting the counters and the random generator."""
        with self._lock:
            self.config = config
            self._remaining = [rule.times for rule in config.rules]
            self._random = random.Random(config.seed)

    def snapshot(self) -> dict[str, Any]:
        """The configuration, each rule with its `remaining` count (null: unlimited)."""
        with self._lock:
            data = self.config.model_dump()
            for rule, remaining in zip(data["rules"], self._remaining, strict=True):
                rule["remaining"] = remaining
        return data

    def pick(self, on: str, key: str) -> FaultRule | None:
        """The rule that fires for this request, if any (counting it down)."""
        with self._lock:
            for index, rule in enumerate(self.config.rules):
                remaining = self._remaining[index]
                if rule.on != on or remaining == 0 or not fnmatchcase(key, rule.keys):
                    continue
                if self._random.random() >= rule.probability:
                    continue
                if remaining is not None:
                    self._remaining[index] = remaining - 1
                return rule
        return None


class FaultMiddleware:
    """Pure ASGI middleware applying the faults (it must see uvicorn's own `receive`). A
    `stall` is left to the application, which holds the request's idempotency key meanwhile:
    the middleware only says for how long (`scope["state"]["stall_seconds"]`)."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/v1/") or path.startswith("/v1/test/"):
            await self.app(scope, receive, send)
            return
        config = self.faults.config
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        operation = _operation(scope["method"], path)
        rule = operation and self.faults.pick(operation, _header(scope, b"idempotency-key"))
        if not rule:
            await self.app(scope, receive, send)
        elif rule.kind == "error":
            await ApiError(503, "api_error", "injected").response()(scope, receive, send)
        elif rule.kind == "rate_limit":
            error = ApiError(
                429,
                "invalid_request_error",
                "Too many requests hit the API too quickly (injected).",
                code="rate_limit",
            )
            await error.response()(scope, receive, send)
        elif rule.kind == "drop":
            await self.app(scope, receive, _discard)
            await _drop_connection(receive)
        elif rule.kind == "stall":
            scope.setdefault("state", {})["stall_seconds"] = config.slow_seconds
            await self.app(scope, receive, send)
        else:
            answer: list[Message] = []
            await self.app(scope, receive, _collect(answer))
            await asyncio.sleep(config.slow_seconds)
            for message in answer:
                await send(message)


def _operation(method: str, path: str) -> str | None:
    """The operation a request performs, as the fault rules name it (None: not one of them)."""
    if method != "POST":
        return None
    parts = path.strip("/").split("/")[1:]  # without "v1"
    if parts == ["payment_intents"]:
        return "payment_intents.create"
    if len(parts) == 3 and parts[0] == "payment_intents" and parts[2] in ("confirm", "cancel"):
        return f"payment_intents.{parts[2]}"
    if parts == ["refunds"]:
        return "refunds.create"
    return None


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


async def _discard(message: Message) -> None:
    """Swallow the application's answer: the client must never see it."""


def _collect(answer: list[Message]) -> Send:
    async def send(message: Message) -> None:
        answer.append(message)

    return send


async def _drop_connection(receive: Receive) -> None:
    """Abort the TCP connection with no response (uvicorn's h11 and httptools cycles)."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("cannot drop the connection: the server exposes no transport")
    transport.abort()
    # Let the protocol's connection_lost run, so uvicorn marks the cycle disconnected and
    # does not try to write its own 500 to the aborted transport.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
