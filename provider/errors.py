"""Stripe's error shape, `{"error": {"type", "message", "code"?, "decline_code"?, "param"?}}`,
shared by the provider's layers."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse


class ApiError(Exception):
    """An error answered in Stripe's shape (`extra`: more fields of the error object, such as
    the `payment_intent` a decline leaves behind)."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        decline_code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        fields = {"code": code, "decline_code": decline_code, "param": param}
        self.error = {
            "type": type_,
            "message": message,
            **{name: value for name, value in fields.items() if value is not None},
            **(extra or {}),
        }

    def body(self) -> dict[str, Any]:
        return {"error": self.error}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    """400 invalid_request_error."""
    return ApiError(400, "invalid_request_error", message, param=param, code=code)


def missing(kind: str, ident: str, param: str | None = None) -> ApiError:
    """resource_missing, in Stripe's words: 404 for the object a URL names, 400 for one a
    parameter (`param`) names."""
    return ApiError(
        404 if param is None else 400,
        "invalid_request_error",
        f"No such {kind}: '{ident}'",
        code="resource_missing",
        param=param,
    )


def describe(errors: list[dict], skip_loc: int = 0) -> tuple[str, str | None]:
    """One line naming the first validation error (and how many others there are), and the
    parameter it is about (bracketed as in the request: `metadata[order_id]`)."""
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first["type"] == "json_invalid":
        return f"invalid JSON body: {first['msg']}", None
    loc = [str(part) for part in first["loc"][skip_loc:]]
    param = loc[0] + "".join(f"[{part}]" for part in loc[1:]) if loc else None
    if first["type"] == "extra_forbidden":
        line = f"Received unknown parameter: {param}"
    else:
        line = f"{param}: {first['msg']}" if param else str(first["msg"])
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more)"
    return " ".join(line.split()), param


def describe_validation(exc: ValidationError) -> str:
    """One line for a pydantic ValidationError."""
    return describe(exc.errors(include_url=False))[0]
