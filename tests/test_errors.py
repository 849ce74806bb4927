"""Domain errors know no HTTP; app.py's one table gives each a status."""

from __future__ import annotations

import inspect

from kefal_lite import errors
from kefal_lite.app import STATUS, status_of


def test_every_domain_error_has_a_status_and_subclasses_take_their_ancestors() -> None:
    kinds = [
        cls for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ApiError) and cls is not errors.ApiError
    ]  # fmt: skip
    assert len(kinds) >= 12
    for cls in kinds:
        assert not hasattr(cls, "status_code"), cls  # the status is app.py's alone
        exc = cls.__new__(cls)
        assert status_of(exc) in set(STATUS.values()), cls
    assert status_of(errors.InvalidTransition("x")) == 409
    assert status_of(errors.NotAllowed("x")) == 403
    assert status_of(errors.ValidationFailed([])) == 400
    assert status_of(errors.ApiError("x")) == 500
