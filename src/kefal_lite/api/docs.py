"""The API's documentation pages under /schema, served from vendored files.

Litestar's Swagger page loads its code from a CDN and starts it with an inline
script: blank offline, and impossible under a strict Content-Security-Policy. This
page loads Swagger UI from web/vendor/swagger-ui/ and starts it from web/api-docs.js,
so it works on a LAN without internet and runs under the dashboard's own policy.
"""

from __future__ import annotations

import html
from typing import Any, cast

import msgspec
from litestar import Request, Response, Router
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    RequestBody,
    Schema,
)

VENDOR = "/vendor/swagger-ui"
# The dashboard's policy (app.CSP) plus what Swagger UI draws with: its CSS sets inline
# SVG icons as data: URLs, and it fetches the spec from this same origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
    " form-action 'self'"
)


class LocalSwagger(SwaggerRenderPlugin):
    def __init__(self) -> None:
        super().__init__(
            path="/swagger",
            js_url=f"{VENDOR}/swagger-ui-bundle.js",
            css_url=f"{VENDOR}/swagger-ui.css",
            favicon="",
            style="",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema["info"]["title"]))
        spec = html.escape(self.get_openapi_json_route(request), quote=True)
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{title} API</title>"
            f"<link rel='stylesheet' href='{self.css_url}'>"
            f"<script src='{self.js_url}' defer></script>"
            "<script src='/api-docs.js' defer></script>"
            f"</head><body><div id='swagger-ui' data-spec='{spec}'></div></body></html>"
        ).encode()


async def _headers(response: Response[Any]) -> Response[Any]:
    response.headers.update(
        {
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
    )
    return response


def openapi_router() -> Router:
    """/schema, /schema/openapi.json and /schema/swagger, with the policy on each."""
    return Router(
        path="/schema", route_handlers=[], after_request=_headers, include_in_schema=False
    )


def _inline(tp: Any) -> dict[str, Any]:
    """A type's JSON Schema with every $ref replaced by its definition (the wire types
    are trees, not recursive), so it needs no entry in the document's components."""
    (schema,), components = msgspec.json.schema_components((tp,), ref_template="{name}")

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(components[node["$ref"]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def body_of(
    tp: Any, description: str, media_types: tuple[str, ...] = ("application/json",)
) -> type[Operation]:
    """For handlers that read the raw body themselves (ingest keeps the bytes it stores;
    contribute decodes strictly with a prebuilt Decoder): the body's schema in the
    OpenAPI document, without a second decode at run time."""
    return documented(body=(tp, description, media_types))


def documented(
    *,
    body: tuple[Any, str, tuple[str, ...]] | None = None,
    response: dict[str, Any] | None = None,
) -> type[Operation]:
    """An Operation that declares what the handler's signature cannot: a body read raw,
    or a 200 whose media type depends on a parameter (`response`: media type -> type)."""
    request_body = None
    if body is not None:
        tp, description, media_types = body
        request_body = RequestBody(
            # Litestar serialises a plain dict as given; its own Schema would need the
            # type registered through a handler parameter, which is what we avoid.
            content={m: OpenAPIMediaType(schema=cast(Schema, _inline(tp))) for m in media_types},
            description=description,
            required=True,
        )

    class Documented(Operation):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if request_body is not None:
                self.request_body = request_body
            if response is not None and self.responses:
                ok = self.responses.get("200")
                if isinstance(ok, OpenAPIResponse):
                    ok.content = {
                        m: OpenAPIMediaType(schema=cast(Schema, _inline(t)))
                        for m, t in response.items()
                    }

    return Documented
