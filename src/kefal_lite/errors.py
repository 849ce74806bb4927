"""Domain errors, named by what went wrong. None of them knows HTTP: `app.py` alone maps
each to a status code and the API's error shape (and the CLI prints `detail`).

400 from validation is `{"detail": [{"loc", "msg", "type"}]}`; every other error
is `{"detail": "<one sentence a person can act on>"}`.
"""

from __future__ import annotations

from typing import Any


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
