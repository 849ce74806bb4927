"""msgspec's validation messages in words a person reads without knowing msgspec.

"Expected `str` of length >= 10" is exact but reads like a type checker; a form
says "at least 10 characters". Used for API validation items (the dashboard
shows them beside the field) and for configuration errors.
"""

from __future__ import annotations

import re

_TYPES = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Expected `str` of length >= (\d+)$"), "at least {0} characters"),
    (re.compile(r"^Expected `str` of length <= (\d+)$"), "at most {0} characters"),
    (re.compile(r"^Expected `array` of length >= (\d+)$"), "at least {0} items"),
    (re.compile(r"^Expected `array` of length <= (\d+)$"), "at most {0} items"),
    (re.compile(r"^Expected `(?:int|float)` >= (\S+)$"), "must be at least {0}"),
    (re.compile(r"^Expected `(?:int|float)` <= (\S+)$"), "must be at most {0}"),
    (re.compile(r"^Expected `(?:int|float)` > (\S+)$"), "must be greater than {0}"),
    (re.compile(r"^Expected `(?:int|float)` < (\S+)$"), "must be less than {0}"),
    (re.compile(r"^Expected `str` matching regex '(.*)'$"), "does not match the format {0}"),
    (re.compile(r"^Object missing required field `([^`]+)`$"), "required"),
)
_TYPE_MISMATCH = re.compile(r"^Expected `([^`]+)`, got `([^`]+)`$")


def humanize(message: str, *, types: bool = False) -> str:
    """A constraint failure in words; other messages unchanged. With `types`, also type
    mismatches ("Expected `int`, got `str`" -> "expected a whole number, got text"): the
    API keeps msgspec's wording for those, as its contract shows."""
    for pattern, text in _RULES:
        found = pattern.match(message)
        if found:
            return text.format(*found.groups())
    if types:
        found = _TYPE_MISMATCH.match(message)
        if found:
            want = " or ".join(_TYPES.get(t.strip(), t.strip()) for t in found[1].split("|"))
            return f"expected {want}, got {_TYPES.get(found[2], found[2])}"
    return message
