"""Decode a request body into its Struct, or fail with the API's `detail` list."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from kefal_lite.errors import ValidationFailed, items_from_msgspec

T = TypeVar("T")


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
