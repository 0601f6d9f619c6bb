"""The provider's error shape, `{"error": {"type", "message", "code"?}}`, shared by its layers."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.responses import JSONResponse


def error_response(status: int, type_: str, message: str, code: str | None = None) -> JSONResponse:
    """A JSON error response in the provider's shape."""
    error = {"type": type_, "message": message}
    if code is not None:
        error["code"] = code
    return JSONResponse({"error": error}, status_code=status)


def describe(errors: list[dict], skip_loc: int = 0) -> str:
    """One line naming the first validation error (and how many others there are)."""
    if not errors:
        return "invalid request"
    first = errors[0]
    if first["type"] == "json_invalid":
        return f"invalid JSON body: {first['msg']}"
    where = ".".join(str(part) for part in first["loc"][skip_loc:])
    line = f"{where}: {first['msg']}" if where else str(first["msg"])
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more)"
    return " ".join(line.split())


def describe_validation(exc: ValidationError) -> str:
    """One line for a pydantic ValidationError."""
    return describe(exc.errors(include_url=False))
