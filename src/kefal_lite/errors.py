"""Domain errors, named by what went wrong. None of them knows HTTP: `app.py` alone maps
each to a status code and the API's error shape (and the CLI prints `detail`).

400 from validation is `{"detail": [{"loc", "msg", "type"}]}`; every other error
is `{"detail": "<one sentence a person can act on>"}`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from kefal_lite.messages import humanize


class ApiError(Exception):
    """Base of every refusal a person can act on (the name predates the CLI using them)."""

    detail = "internal error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail


DomainError = ApiError


class BadRequest(ApiError):
    detail = "bad request"


class Unauthorized(ApiError):
    """Not signed in, or the credentials do not hold."""

    detail = "invalid credentials"


class PaymentRequired(ApiError):
    detail = "the trial or subscription has expired"


class Forbidden(ApiError):
    detail = "not allowed"


class NotFound(ApiError):
    detail = "not found"


class Conflict(ApiError):
    detail = "conflict"


class TooManyRequests(ApiError):
    detail = "too many attempts; try again later"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


class BadGateway(ApiError):
    """An outside service (PayPal, an LLM) answered with an error."""

    detail = "an upstream service answered with an error"


class ServiceUnavailable(ApiError):
    detail = "the server is busy; retry shortly"

    def __init__(self, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def validation_item(loc: list[str | int], msg: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": "validation_error"}


class ValidationFailed(ApiError):
    """A body or query that does not fit its schema: FastAPI's list shape."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__("validation failed")
        self.items = items


class InvalidTransition(Conflict):
    """The incident (or its remediation) is not in a state this action starts from."""


class NotAllowed(Forbidden):
    """A rule of the product refuses it for this account (a plan's limit, say)."""


# Decoding errors become the validation list here, not in api/: ingest (a use case) and
# the handlers decode with the same words.
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_FIELD = re.compile(r"field `([^`]+)`")


def loc_from_path(source: str, path: str, message: str = "") -> list[str | int]:
    """`$.processes[0].pid` (msgspec) or `processes[0].pid` (Litestar) -> a loc list."""
    loc: list[str | int] = [source]
    path = path.removeprefix("$")
    if path == "data":  # Litestar's name for the whole body
        path = ""
    if path and not path.startswith((".", "[")):
        path = "." + path
    for name, index in _SEGMENT.findall(path):
        loc.append(int(index) if index else name)
    # "Object missing required field `x`" points at the object; name the field itself.
    field = _FIELD.search(message)
    if field:
        loc.append(field.group(1))
    return loc


def items_from_msgspec(exc: msgspec.DecodeError, source: str = "body") -> list[dict[str, Any]]:
    text = str(exc)
    message, _, path = text.partition(" - at `")
    if isinstance(exc, msgspec.ValidationError):
        loc = loc_from_path(source, path.rstrip("`"), message)
        return [validation_item(loc, humanize(message))]
    return [validation_item([source], f"invalid JSON: {message}")]
