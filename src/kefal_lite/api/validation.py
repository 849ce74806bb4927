"""Turn decoding errors into the API's `detail` list: [{"loc", "msg", "type"}] per problem."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from kefal_lite.errors import ValidationFailed, validation_item
from kefal_lite.messages import humanize

T = TypeVar("T")

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


def decode_json(raw: bytes, type_: type[T], decoder: msgspec.json.Decoder[T] | None = None) -> T:
    try:
        if decoder is not None:
            return decoder.decode(raw)
        return msgspec.json.decode(raw, type=type_)
    except msgspec.DecodeError as exc:
        raise ValidationFailed(items_from_msgspec(exc)) from None


def convert(data: Any, type_: type[T]) -> T:
    """For form bodies: strings in, typed Struct out."""
    try:
        return msgspec.convert(data, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(items_from_msgspec(exc)) from None
