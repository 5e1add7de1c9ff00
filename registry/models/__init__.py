"""SQLModel table classes, and only those (DESIGN §7). Importing this package registers every table on
SQLModel.metadata, which Alembic compares against."""

# Sub-systems add their own modules below; keep each import so its tables are registered.
from ledger import tables as _decision_log_tables  # noqa: F401  (the ledger owns its tables; one metadata)
from registry.models import agreement_document, objection, reminder, revision, subject, user  # noqa: F401
from registry.models.agreement import Agreement
from registry.models.apikey import ApiKey
from registry.models.controller import ControllerProfile, PrivacyNoticePublication
from registry.models.history import ChangeRecord
from registry.models.party import Location, Party, SubProcessorLink

__all__ = [
    "Agreement",
    "ApiKey",
    "ChangeRecord",
    "ControllerProfile",
    "Location",
    "Party",
    "PrivacyNoticePublication",
    "SubProcessorLink",
]
