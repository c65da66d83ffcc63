"""The OpenAPI document at /schema/openapi.json, and the interactive docs page, which is off by default.

Why off: an HTML page that runs scripts from a CDN on the service's origin runs them next to the accountants'
web pages (/ui): such a script can read those pages with the session cookie the browser sends along. A
production service needs only the machine-readable document (/schema and /schema/openapi.json answer it as
JSON, no script); with `KONTOR_API_DOCS=true` (development) /schema is Swagger UI, pinned to one exact version
whose files the browser checks against their SHA-384 (Subresource Integrity, W3C), so a changed file on the CDN
does not run.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, SwaggerRenderPlugin

__all__ = ["SWAGGER_UI_VERSION", "PinnedSwaggerRenderPlugin", "render_plugins"]

SWAGGER_UI_VERSION = "5.18.2"
_CDN = f"https://cdn.jsdelivr.net/npm/swagger-ui-dist@{SWAGGER_UI_VERSION}"
# sha384 of the files of the npm package swagger-ui-dist 5.18.2 (the CDN serves the package's files as they are)
_INTEGRITY = {
    "swagger-ui-bundle.js": "sha384-NXtFPpN61oWCuN4D42K6Zd5Rt2+uxeIT36R7kpXBuY9tLnZorzrJ4ykpqwJfgjpZ",
    "swagger-ui-standalone-preset.js": "sha384-qr68CD0cvHa88PmVu7e1a58Ego4qvKtcvcLdS2a8Mo5zILI01gyIV9jVwJk7X2NU",
    "swagger-ui.css": "sha384-rcbEi6xgdPk0iWkAQzT2F3FeBJXdG+ydrawGlfHAFIZG7wU6aKbQaRewysYpmrlW",
}


class PinnedSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Litestar's Swagger UI page, its three files pinned to SWAGGER_UI_VERSION with integrity attributes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            js_url=f"{_CDN}/swagger-ui-bundle.js",
            css_url=f"{_CDN}/swagger-ui.css",
            standalone_preset_js_url=f"{_CDN}/swagger-ui-standalone-preset.js",
            **kwargs,
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        page = super().render(request, openapi_schema)
        for name, digest in _INTEGRITY.items():
            url = f"{_CDN}/{name}".encode()
            checked = b'integrity="' + digest.encode() + b'" crossorigin="anonymous"'
            page = page.replace(b'src="' + url + b'" crossorigin>', b'src="' + url + b'" ' + checked + b">")
            page = page.replace(
                b'href="' + url + b'" rel="stylesheet">', b'href="' + url + b'" rel="stylesheet" ' + checked + b">"
            )
        return page


def render_plugins(*, interactive: bool) -> list[OpenAPIRenderPlugin]:
    """/schema and /schema/openapi.json: the JSON document; with `interactive`, /schema is Swagger UI."""
    if interactive:
        return [JsonRenderPlugin(), PinnedSwaggerRenderPlugin(path=["/", "/swagger"])]
    return [JsonRenderPlugin(path=["/", "/openapi.json"])]
