"""The web UI's pages, one module per resource. Handlers stay thin: registry services do the writes, the guard
decides, and web/ui/forms.py moves values between forms and documents; common.py holds what they share."""

from typing import Any

from web.ui.pages import (
    account,
    activities,
    admin,
    agreements,
    dashboard,
    guard,
    link_decisions,
    login,
    objections,
    parties,
    records,
    registry_document,
    removed,
    renewals,
    subject_rights,
)

route_handlers: list[Any] = [
    *login.route_handlers,
    *account.route_handlers,
    *dashboard.route_handlers,
    *parties.route_handlers,
    *link_decisions.route_handlers,
    *agreements.route_handlers,
    *guard.route_handlers,
    *renewals.route_handlers,
    *registry_document.route_handlers,
    *admin.route_handlers,
    *records.route_handlers,
    *activities.route_handlers,
    *objections.route_handlers,
    *subject_rights.route_handlers,
    *removed.route_handlers,
]
