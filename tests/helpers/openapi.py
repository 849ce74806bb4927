"""The OpenAPI document as a contract: a real answer checked against the schema the
server documents for it."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient


def resolve_ref(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float),
}  # fmt: skip


def schema_mismatch(doc: dict[str, Any], schema: dict[str, Any], value: Any, at: str) -> str | None:
    """Why `value` does not match `schema` (the JSON Schema subset the document uses), or
    None when it does: every key documented, every required key present, types as said."""
    schema = resolve_ref(doc, schema)
    for union in ("oneOf", "anyOf"):
        if union in schema:
            why = [schema_mismatch(doc, s, value, at) for s in schema[union]]
            return None if None in why else f"{at}: none of {union} fits ({why})"
    if "const" in schema and value != schema["const"]:
        return f"{at}: {value!r} is not {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{at}: {value!r} is not one of {schema['enum']}"
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        ok = any(isinstance(value, _TYPES[k]) and not (k in ("integer", "number")
                 and isinstance(value, bool)) for k in kinds)  # fmt: skip
        if not ok:
            return f"{at}: {type(value).__name__} where the schema says {kind}"
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is not None:
            extra = set(value) - set(props)
            if extra and not schema.get("additionalProperties"):
                return f"{at}: undocumented keys {sorted(extra)}"
            missing = set(schema.get("required", ())) - set(value)
            if missing:
                return f"{at}: required keys missing {sorted(missing)}"
            for key, sub in props.items():
                if key in value:
                    why = schema_mismatch(doc, sub, value[key], f"{at}.{key}")
                    if why:
                        return why
        elif isinstance(schema.get("additionalProperties"), dict):
            for key, item in value.items():
                why = schema_mismatch(doc, schema["additionalProperties"], item, f"{at}.{key}")
                if why:
                    return why
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for n, item in enumerate(value):
            why = schema_mismatch(doc, schema["items"], item, f"{at}[{n}]")
            if why:
                return why
    return None


def assert_documented(client: TestClient[Any], method: str, template: str, response: Any) -> None:
    """A real answer (an httpx response) of `METHOD template` matches the body schema the
    server's own /schema/openapi.json documents for its status."""
    doc = client.get("/schema/openapi.json").json()
    documented = doc["paths"][template][method.lower()]["responses"][str(response.status_code)]
    schema = documented["content"]["application/json"]["schema"]
    why = schema_mismatch(doc, schema, response.json(), f"{method} {template}")
    assert why is None, why
