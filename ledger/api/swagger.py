"""The API docs page (/schema/swagger) from vendored Swagger UI assets: no CDN, no inline code.

Litestar's own page loads Swagger UI from a CDN and starts it with an inline script holding
the whole schema; that page is blank without internet and needs a CSP with 'unsafe-inline'.
This one loads the vendored bundle and a static start script from /static, which fetches
the schema from /schema/openapi.json.
"""

from __future__ import annotations

import html
from typing import Any

from litestar import Request
from litestar.openapi.plugins import SwaggerRenderPlugin

VENDOR = "/static/vendor"
SWAGGER_JS = f"{VENDOR}/swagger-ui-bundle.js"
SWAGGER_CSS = f"{VENDOR}/swagger-ui.css"
SWAGGER_INIT = "/static/swagger-init.js"


class LocalSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Swagger UI from this server's own static files."""

    def __init__(self, spec_path: str = "/schema/openapi.json") -> None:
        super().__init__(js_url=SWAGGER_JS, css_url=SWAGGER_CSS, favicon="", style="")
        self.spec_path = spec_path

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema.get("info", {}).get("title", "API")))
        page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{self.css_url}">
</head>
<body>
<div id="swagger-ui" data-spec-url="{html.escape(self.spec_path)}"></div>
<script src="{self.js_url}"></script>
<script src="{SWAGGER_INIT}"></script>
</body>
</html>
"""
        return page.encode()
