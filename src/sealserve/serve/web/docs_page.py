"""`/docs` that works without the internet: the Swagger UI comes from the swagger-ui-bundle package, not a CDN."""

from __future__ import annotations

import html
import json
from pathlib import Path

import swagger_ui_bundle
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

ASSETS = "/docs/assets"
SWAGGER_UI = Path(swagger_ui_bundle.swagger_ui_path)  # Swagger UI 5 (swagger-ui-bundle-v2), Apache-2.0, as shipped
# The page itself is ours: no inline event handlers, only the packaged script and styles.
PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<link rel="icon" href="{ASSETS}/favicon-32x32.png">
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script>
SwaggerUIBundle({{
  url: {{openapi_url}},
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  oauth2RedirectUrl: window.location.origin + "/docs/oauth2-redirect",
}});
</script>
</body>
</html>
"""


def docs_routes(title: str, openapi_url: str) -> list[BaseRoute]:
    page = PAGE.replace("{title}", html.escape(f"{title} - API docs")).replace("{openapi_url}", json.dumps(openapi_url))

    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    return [
        Route("/docs", docs, methods=["GET"], include_in_schema=False),
        Route("/docs/oauth2-redirect", oauth2_redirect, methods=["GET"], include_in_schema=False),
        Mount(ASSETS, StaticFiles(directory=SWAGGER_UI), name="swagger-ui"),
    ]
