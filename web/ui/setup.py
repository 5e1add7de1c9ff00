"""The web UI's place in the app: its routes, the paths it serves without a login, its templates, its CSRF
middleware and security headers, and the lifespan step that sets the session secret and the session resolver."""

from pathlib import Path
from typing import Any

from litestar.exceptions import MethodNotAllowedException, NotFoundException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ExceptionHandlersMap

from kernel import i18n
from web.ui import language, pages, reasons, words
from web.ui.pages.common import http_error_page_or_json
from web.ui.security import SessionBoundCsrfMiddleware, add_security_headers

HERE = Path(__file__).resolve().parent
SECRET_NAME = "ui_session_secret"

route_handlers: list[Any] = [
    *pages.route_handlers,
    *language.route_handlers,
    create_static_files_router(path="/ui/static", directories=[HERE / "static"], include_in_schema=False),
]
# Paths the UI serves without a login (its login page and its own static files).
# The language switch is public too: the login page has it, before anyone is signed in.
public_path_patterns: list[str] = [
    "^/$",
    "^/ui/login$",
    "^/ui/login/oidc$",
    "^/ui/login/oidc/callback$",
    "^/ui/static/",
    "^/ui/language$",
]


def template_engine() -> JinjaTemplateEngine:
    """Jinja with its i18n extension: `{% trans %}` and `_()` in templates go through kernel.i18n, whose
    locale is the request's, so templates and Python code (form errors, badges) speak the same language."""
    engine = JinjaTemplateEngine(directory=HERE / "templates")
    env = engine.engine
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["location_kind"] = words.location_kind
    env.filters["distinct_reasons"] = reasons.distinct
    env.globals.update(words.template_globals())
    env.globals.update(
        current_language=i18n.current,
        language_names=i18n.LANGUAGE_NAMES,
        day=i18n.day,
        number=i18n.number,
        reason_line=reasons.reason_line,
        reason_title=reasons.reason_title,
        reason_text=reasons.reason_text,
    )
    return engine


def app_options() -> dict[str, Any]:
    """Extra Litestar arguments the UI needs: its templates, the security headers on every UI answer, and the
    HTML error pages for UI addresses no route serves."""
    return {
        # The locale of the UI's pages, form errors and badges, set before each request's handler runs.
        "before_request": language.apply_language,
        "template_config": TemplateConfig(instance=template_engine()),
        "before_send": [add_security_headers],
    }


# Answers no route gives: HTML pages under /ui/, JSON elsewhere.
exception_handlers: ExceptionHandlersMap = {
    NotFoundException: http_error_page_or_json,
    MethodNotAllowedException: http_error_page_or_json,
}
# After the authentication middleware: an anonymous form post is sent to the login page, not refused.
middleware: list[Any] = [SessionBoundCsrfMiddleware()]
