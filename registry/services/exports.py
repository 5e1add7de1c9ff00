"""Exports auditors take: the registry as CSV (a zip of one file per table) and XLSX (one
sheet per table), and the decision log for a period as CSV, streamed from a server-side cursor."""

import csv
import io
import json
import zipfile
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from ledger.entries import format_timestamp
from ledger.tables import GuardDecision

Sheet = tuple[str, Sequence[str], Iterable[Sequence[Any]]]
DECISION_BATCH = 1_000

# --- CSV, as spreadsheet programs open it ----------------------------------------------------------------

# Excel reads a CSV as UTF-8 only when it starts with a byte order mark ("Bergström", not "BergstrÃ¶m").
BOM = "\ufeff"
# A cell a spreadsheet would read as a formula (OWASP "CSV injection"): =, +, -, @, and a tab or carriage return
# before one of them. Such a cell gets a leading apostrophe, which spreadsheets show as text and do not evaluate.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_delimiter(language: str | None) -> str:
    """The list separator a spreadsheet of that locale expects: ';' where the decimal separator is a comma
    (Swedish), ',' otherwise."""
    return ";" if language == "sv" else ","


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: text a spreadsheet would evaluate is neutralised; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_lines(rows: Iterable[Sequence[Any]], *, delimiter: str = ",") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows([[csv_cell(_text(v)) for v in row] for row in rows])
    return out.getvalue()


def csv_document(header: Sequence[str], rows: Iterable[Sequence[Any]], *, delimiter: str = ",") -> bytes:
    """A whole CSV file: the byte order mark, the header, the rows (every cell neutralised, see csv_cell)."""
    return (BOM + csv_lines([header], delimiter=delimiter) + csv_lines(rows, delimiter=delimiter)).encode("utf-8")


# --- Workbooks ---------------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def _workbook_cell(value: Any) -> Any:
    """A value as a workbook cell: a date (or its ISO text) as a real date, lists joined, the rest as is."""
    if isinstance(value, str) and len(value) == 10 and value[4:5] == "-" and value[7:8] == "-":
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)  # Excel has no time zones: UTC, as the log keeps it
    return _cell(value)


def workbook(sheets: Sequence[Sheet]) -> bytes:
    """An XLSX file of the given sheets (name, header, rows): dates are dates (a filter and a sort by date work),
    every sheet has its header frozen and an autofilter. Text is always stored as text: a value that starts with
    '=' (a party name, a caller) must not become a formula when an auditor opens the file."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, header, rows in sheets:
        sheet = book.create_sheet(title=name[:31])
        sheet.append(list(header))
        for row in rows:
            sheet.append([_workbook_cell(v) for v in row])
        for cells in sheet.iter_rows(min_row=2):
            for cell in cells:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    cell.data_type = "s"
                elif isinstance(cell.value, datetime):
                    cell.number_format = "yyyy-mm-dd hh:mm:ss"
                elif isinstance(cell.value, date):
                    cell.number_format = "yyyy-mm-dd"
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = sheet.dimensions
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- The registry as tables -------------------------------------------------------------------------------

PARTY_COLUMNS = (
    "key",
    "name",
    "role",
    "category",
    "org_number",
    "established_in",
    "active",
    "international_organisation",
    "contact",
)
LOCATION_COLUMNS = ("party", "territory", "kind")
CHAIN_COLUMNS = ("processor", "sub_processor", "approved_on", "objection_deadline")
AGREEMENT_COLUMNS = (
    "key",
    "party",
    "kind",
    "signed_on",
    "effective_from",
    "expires_on",
    "terminated_on",
    "renewal",
    "notice_days",
    "owner_email",
    "document_uri",
    "document_sha256",
    "document_size",
    "data_categories",
    "purposes",
    "data_subjects",
    "clauses",
    "transfers_outside_eea_permitted",
)


def _text(value: Any) -> Any:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return _cell(value)


def registry_tables(document: dict[str, Any]) -> list[Sheet]:
    """The registry document (as `export_registry` gives it) as four tables: parties, locations, chains,
    agreements."""
    parties = document["parties"]
    agreements = document["agreements"]
    return [
        ("parties", PARTY_COLUMNS, [[_text(p[c]) for c in PARTY_COLUMNS] for p in parties]),
        (
            "locations",
            LOCATION_COLUMNS,
            [[p["key"], loc["territory"], loc["kind"]] for p in parties for loc in p["locations"]],
        ),
        (
            "chains",
            CHAIN_COLUMNS,
            [
                [p["key"], s["party"], _text(s["approved_on"]), _text(s["objection_deadline"])]
                for p in parties
                for s in p["sub_processors"]
            ],
        ),
        (
            "agreements",
            AGREEMENT_COLUMNS,
            [
                [
                    *(_text(a[c]) for c in AGREEMENT_COLUMNS[:10]),
                    (a["document"] or {}).get("uri", ""),
                    (a["document"] or {}).get("sha256") or "",
                    (a["document"] or {}).get("size", ""),
                    *(_text(a[c]) for c in AGREEMENT_COLUMNS[13:]),
                ]
                for a in agreements
            ],
        ),
    ]


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]], *, delimiter: str = ",") -> bytes:
    return csv_document(header, rows, delimiter=delimiter)


def registry_csv_zip(document: dict[str, Any], *, delimiter: str = ",") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, header, rows in registry_tables(document):
            archive.writestr(f"{name}.csv", csv_bytes(header, rows, delimiter=delimiter))
    return out.getvalue()


def registry_xlsx(document: dict[str, Any]) -> bytes:
    return workbook(registry_tables(document))


# --- The decision log as CSV ------------------------------------------------------------------------------

DECISION_COLUMNS = (
    "seq",
    "decision_id",
    "decided_at",
    "caller",
    "recipient",
    "outcome",
    "purpose",
    "data_categories",
    "destination",
    "data_subject",
    "agreement",
    "reason_codes",
    "warning_codes",
    "ruleset",
    "request",
    "reasons",
    "warnings",
    "prev_hash",
    "hash",
)


def _decision_row(row: GuardDecision) -> list[Any]:
    request = row.request if isinstance(row.request, dict) else {}
    categories = request.get("data_categories")
    return [
        row.seq,
        str(row.decision_id),
        format_timestamp(row.decided_at),
        row.caller,
        row.recipient,
        "allowed" if row.allowed else "denied",
        request.get("purpose", ""),
        "; ".join(str(c) for c in categories) if isinstance(categories, list) else "",
        request.get("destination") or "",
        request.get("data_subject") or "",
        row.agreement or "",
        "; ".join(str(r.get("code", "")) for r in row.reasons),
        "; ".join(str(w.get("code", "")) for w in row.warnings),
        row.ruleset,
        json.dumps(row.request, ensure_ascii=False, sort_keys=True),
        json.dumps(row.reasons, ensure_ascii=False, sort_keys=True),
        json.dumps(row.warnings, ensure_ascii=False, sort_keys=True),
        row.prev_hash,
        row.hash,
    ]


def _csv_chunk(rows: Iterable[Sequence[Any]]) -> bytes:
    return csv_lines(rows).encode("utf-8")


async def decision_csv_rows(
    session: AsyncSession, since: datetime | None, until: datetime | None
) -> AsyncIterator[bytes]:
    """The decisions taken in [since, until), oldest first, as CSV: the header, then one chunk per batch of
    rows fetched from a server-side cursor, so memory holds one batch, not the period."""
    yield BOM.encode("utf-8") + _csv_chunk([DECISION_COLUMNS])
    stmt = select(GuardDecision).order_by(col(GuardDecision.seq))
    if since is not None:
        stmt = stmt.where(col(GuardDecision.decided_at) >= since)
    if until is not None:
        stmt = stmt.where(col(GuardDecision.decided_at) < until)
    result = await session.stream(stmt.execution_options(yield_per=DECISION_BATCH))
    try:
        async for batch in result.scalars().partitions(DECISION_BATCH):
            yield _csv_chunk([_decision_row(row) for row in batch])
    finally:
        await result.close()


async def stream_decision_csv(
    sessionmaker: async_sessionmaker[AsyncSession], since: datetime | None, until: datetime | None
) -> AsyncIterator[bytes]:
    """`decision_csv_rows` in a session and read-only transaction of its own: the response is sent after the
    handler (and its request session) has returned."""
    async with sessionmaker() as session, session.begin():
        async for chunk in decision_csv_rows(session, since, until):
            yield chunk
