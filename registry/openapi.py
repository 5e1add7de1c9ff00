"""The OpenAPI document's configuration, and its docs UI served by the app itself.

Litestar's render plugins load their scripts from a CDN by default; an instance on an internal network (or a
strict content security policy) would show an empty page. Swagger UI's files come from the `swagger-ui-py`
package instead and are served under DOCS_ASSETS, behind the same authentication as the document.
"""

from pathlib import Path

import swagger_ui
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

from guard.openapi import COMPONENTS, SECURITY

DOCS_ASSETS = "/schema-assets"
SWAGGER_UI_FILES = Path(swagger_ui.__file__).parent / "static"


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Offix processor and recipient registry",
        version="0.1.0",
        path="/schema",
        security=SECURITY,
        components=COMPONENTS,
        render_plugins=[
            SwaggerRenderPlugin(
                path=["/", "/swagger"],
                js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                standalone_preset_js_url=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' type='image/png' href='{DOCS_ASSETS}/favicon-32x32.png'>",
            ),
            JsonRenderPlugin(),
            YamlRenderPlugin(),
        ],
    )


def docs_assets_router() -> Router:
    return create_static_files_router(path=DOCS_ASSETS, directories=[SWAGGER_UI_FILES], include_in_schema=False)
