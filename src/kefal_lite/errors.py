"""Domain errors. `app.py` turns each into the API's error shape; nothing else does.

400 from validation is `{"detail": [{"loc", "msg", "type"}]}`; every other error
is `{"detail": "<one sentence a person can act on>"}`.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status_code = 500
    detail = "internal error"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail
        self.headers = headers or {}


class BadRequest(ApiError):
    status_code = 400
    detail = "bad request"


class Unauthorized(ApiError):
    status_code = 401
    detail = "invalid credentials"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class PaymentRequired(ApiError):
    status_code = 402
    detail = "the trial or subscription has expired"


class Forbidden(ApiError):
    status_code = 403
    detail = "not allowed"


class NotFound(ApiError):
    status_code = 404
    detail = "not found"


class Conflict(ApiError):
    status_code = 409
    detail = "conflict"


class TooManyRequests(ApiError):
    status_code = 429
    detail = "too many attempts; try again later"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class BadGateway(ApiError):
    status_code = 502
    detail = "an upstream service answered with an error"


class ServiceUnavailable(ApiError):
    status_code = 503
    detail = "the server is busy; retry shortly"

    def __init__(self, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def validation_item(loc: list[str | int], msg: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": "validation_error"}


class ValidationFailed(ApiError):
    """A body or query that does not fit its schema: FastAPI's list shape."""

    status_code = 400

    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__("validation failed")
        self.items = items


class InvalidTransition(Conflict):
    """The incident (or its remediation) is not in a state this action starts from."""


class NotAllowed(Forbidden):
    """A rule of the product refuses it for this account (a plan's limit, say)."""
