"""Data subjects' objections and unsubscribes, and one person's recipients, by keyed digest only.

The identifier a caller sends is normalised and digested (guard/subjects.py) before any statement runs: no
table, history record or log line of this module holds it. Writes take turns under one advisory lock and take
`change_seq` from a sequence, so that the guard's objection index (guard/objections.py) reads the changes in
commit order; each write NOTIFYs the guards, which block the subject at once.
"""

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from guard.objections import OBJECTION_WRITE_LOCK_ID, OBJECTIONS_CHANGED_CHANNEL
from guard.subjects import SubjectError, SubjectKey
from guard.views import OBJECTION_SCOPES
from kernel.errors import FieldError, NotFoundError, RegistryValidationError, pydantic_field_errors
from ledger.entries import format_timestamp
from registry.models.objection import Objection
from registry.schemas import ObjectionIn
from registry.services.common import change_record

# A mail tool's unsubscribe export: the largest file and the most rows one import takes.
IMPORT_MAX_BYTES = 32 * 1024 * 1024
IMPORT_MAX_ROWS = 500_000
# Header names (case-insensitive, spaces and underscores alike) mail tools give the address and the date.
# The headers of an address column and of a date column, as mail tools and people name them in English and
# Swedish (compared lower-case, '_' as a space, runs of spaces as one).
SUBJECT_HEADERS = (
    "email",
    "email address",
    "e-mail",
    "e-mail address",
    "mail",
    "subject",
    "customer number",
    "address",
    "e-post",
    "e-postadress",
    "epost",
    "epostadress",
    "e-post adress",
    "mejl",
    "mejladress",
    "mailadress",
    "kundnummer",
    "kundnr",
)
DATE_HEADERS = (
    "unsubscribed on",
    "unsub time",
    "unsubscribed at",
    "received on",
    "date",
    "timestamp",
    "opt out date",
    "avregistrerad",
    "avregistrerad den",
    "avregistreringsdatum",
    "mottagen",
    "mottagen den",
    "datum",
    "tidpunkt",
)
INSERT_CHUNK = 5000


def subject_digest(key: SubjectKey, subject: str, field: str = "subject") -> str:
    """The keyed digest of an identifier, or a 400 naming the field."""
    try:
        return key.digest(subject)
    except SubjectError as exc:
        raise RegistryValidationError([FieldError(field, f"the identifier {exc}")]) from None


def objection_document(row: Objection) -> dict[str, Any]:
    return {
        "id": row.id,
        "subject_digest": row.subject_digest,
        "scope": row.scope,
        "received_on": row.received_on.isoformat(),
        "source": row.source,
        "recorded_by": row.recorded_by,
        "recorded_at": format_timestamp(row.recorded_at),
        "withdrawn_at": None if row.withdrawn_at is None else format_timestamp(row.withdrawn_at),
        "withdrawn_by": row.withdrawn_by,
        "in_force": row.withdrawn_at is None,
    }


async def begin_objection_write(session: AsyncSession) -> None:
    """Take the objection write lock (change numbers in commit order) and tell the guards at commit."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": OBJECTION_WRITE_LOCK_ID})
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OBJECTIONS_CHANGED_CHANNEL})


def parse_objection(payload: Any) -> ObjectionIn:
    """A request body as an ObjectionIn, or a 400 naming every bad field."""
    if not isinstance(payload, dict):
        raise RegistryValidationError([FieldError("(body)", "an objection is a JSON object")])
    try:
        return ObjectionIn.model_validate(payload)
    except ValidationError as exc:
        raise RegistryValidationError(pydantic_field_errors(exc)) from None


async def record_objection(session: AsyncSession, key: SubjectKey, data: ObjectionIn, actor: str) -> dict[str, Any]:
    """Record one objection (the caller's transaction); in force for the guards once it commits."""
    await begin_objection_write(session)
    row = Objection(
        subject_digest=key.digest_normalised(data.subject),
        scope=data.scope,
        received_on=data.received_on,
        source=data.source,
        recorded_by=actor,
    )
    return await record_subject_entry(session, row, actor, kind="objection", document=objection_document)


async def withdraw_objection(session: AsyncSession, objection_id: int, actor: str) -> dict[str, Any]:
    """Withdraw one objection: it stays on record, marked withdrawn, and the history keeps both states."""
    await begin_objection_write(session)
    return await end_subject_entry(
        session,
        Objection,
        objection_id,
        actor,
        kind="objection",
        action="withdraw",
        ended="withdrawn",
        counter="objection_change_counter",
        document=objection_document,
    )


async def list_objections(
    session: AsyncSession,
    key: SubjectKey,
    *,
    subject: str | None,
    in_force: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Objections newest first, of one subject when `subject` is given."""
    return await list_subject_entries(
        session,
        Objection,
        key,
        ended="withdrawn",
        document=objection_document,
        subject=subject,
        in_force=in_force,
        limit=limit,
        offset=offset,
    )


# --- A person's entries in force until ended (objections withdrawn; restrictions lifted, subjects.py) -----------


async def record_subject_entry(
    session: AsyncSession, row: Any, actor: str, *, kind: str, document: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """Store `row` (the caller has taken the table's write lock) with its history entry; its document."""
    session.add(row)
    await session.flush()
    await session.refresh(row)
    recorded = document(row)
    session.add(change_record(kind, str(row.id), "create", actor, None, recorded))
    await session.flush()
    return recorded


async def end_subject_entry(
    session: AsyncSession,
    model: Any,
    entry_id: int,
    actor: str,
    *,
    kind: str,
    action: str,
    ended: str,
    counter: str,
    document: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """End one entry (the caller has taken the table's write lock): it stays on record, marked `ended` by
    `actor`, with a new change number so the guards' indexes see it; ending it twice changes nothing."""
    row = (await session.execute(select(model).where(col(model.id) == entry_id).with_for_update())).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no {kind} {entry_id}")
    before = document(row)
    if getattr(row, f"{ended}_at") is not None:
        return before
    await session.execute(
        update(model)
        .where(col(model.id) == entry_id)
        .values({f"{ended}_at": func.now(), f"{ended}_by": actor, "change_seq": text(f"nextval('{counter}')")})
    )
    await session.refresh(row)
    after = document(row)
    session.add(change_record(kind, str(entry_id), action, actor, before, after))
    await session.flush()
    return after


async def list_subject_entries(
    session: AsyncSession,
    model: Any,
    key: SubjectKey,
    *,
    ended: str,
    document: Callable[[Any], dict[str, Any]],
    subject: str | None,
    in_force: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Entries newest first, of one subject when `subject` is given, in force or ended when `in_force` says."""
    query = select(model)
    if subject is not None:
        query = query.where(col(model.subject_digest) == subject_digest(key, subject))
    if in_force is not None:
        ended_at = col(getattr(model, f"{ended}_at"))
        query = query.where(ended_at.is_(None) if in_force else ended_at.is_not(None))
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (await session.execute(query.order_by(col(model.id).desc()).limit(limit).offset(offset))).scalars()
    return [document(row) for row in rows], int(total)


# --- Importing a mail tool's unsubscribe list ----------------------------------------------------------------


@dataclass(frozen=True)
class ImportSummary:
    rows: int
    recorded: int
    already_in_force: int

    def as_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "recorded": self.recorded, "already_in_force": self.already_in_force}


def _header_name(name: str) -> str:
    return " ".join(name.strip().lower().replace("_", " ").split())


def _find_column(header: Sequence[str], wanted: Sequence[str]) -> int | None:
    names = [_header_name(h) for h in header]
    for candidate in wanted:
        if candidate in names:
            return names.index(candidate)
    return None


def _row_day(value: str) -> date | None:
    """The date of a mail tool's timestamp: ISO 8601 (date, or date and time), its first ten characters."""
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def parse_unsubscribes(raw: bytes, key: SubjectKey, *, default_day: date, scope: str) -> list[tuple[str, date]]:
    """(digest, received on) for every row of an unsubscribe CSV, or a 400 naming every bad row and field.

    The file needs a header row with an address column (`email`, `Email Address`, …); a date column
    (`unsubscribed_on`, `UNSUB_TIME`, …) is used when there is one, `default_day` otherwise. Comma, semicolon
    and tab separate alike. Nothing is recorded unless every row is good."""
    if scope not in OBJECTION_SCOPES:
        raise RegistryValidationError([FieldError("scope", "must be direct_marketing or all")])
    return parse_subject_rows(raw, key, default_day=default_day)


def parse_subject_rows(raw: bytes, key: SubjectKey, *, default_day: date) -> list[tuple[str, date]]:
    """(digest, received on) for every row of a CSV of people (an unsubscribe export, a list of restrictions):
    see `parse_unsubscribes`; a 400 naming every bad row and field."""
    if len(raw) > IMPORT_MAX_BYTES:
        raise RegistryValidationError([FieldError("file", f"is larger than {IMPORT_MAX_BYTES} bytes")])
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RegistryValidationError([FieldError("file", f"is not UTF-8 text ({exc.reason})")]) from None
    if "\x00" in content:
        raise RegistryValidationError([FieldError("file", "holds a NUL character: not a CSV file")])
    first_line = content.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise RegistryValidationError([FieldError("file", "is empty: a header row is needed")]) from None
    except csv.Error as exc:
        raise RegistryValidationError([FieldError("file", f"is not CSV ({exc})")]) from None
    subject_column = _find_column(header, SUBJECT_HEADERS)
    if subject_column is None:
        looked_for = ", ".join(SUBJECT_HEADERS)
        raise RegistryValidationError(
            [
                FieldError(
                    "file",
                    f"has no address column in its header row: it looked for {looked_for} (any case)",
                    "no_address_column",
                    {"looked_for": looked_for, "found": ", ".join(h.strip() for h in header)},
                )
            ]
        )
    date_column = _find_column(header, DATE_HEADERS)
    found: list[tuple[str, date]] = []
    errors: list[FieldError] = []
    try:
        for number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(found) >= IMPORT_MAX_ROWS:
                raise RegistryValidationError([FieldError("file", f"has more than {IMPORT_MAX_ROWS} rows")])
            cell = row[subject_column] if subject_column < len(row) else ""
            try:
                digest = key.digest(cell)
            except SubjectError as exc:
                errors.append(FieldError(f"row {number}.{header[subject_column].strip()}", f"the identifier {exc}"))
                continue
            day = default_day
            if date_column is not None and date_column < len(row) and row[date_column].strip():
                parsed = _row_day(row[date_column])
                if parsed is None or parsed > default_day or parsed.year < 1900:
                    errors.append(
                        FieldError(f"row {number}.{header[date_column].strip()}", "is not a past ISO 8601 date")
                    )
                    continue
                day = parsed
            found.append((digest, day))
    except csv.Error as exc:
        raise RegistryValidationError([FieldError("file", f"is not CSV ({exc})")]) from None
    if errors:
        raise RegistryValidationError(errors[:100])
    return found


async def import_unsubscribes(
    session: AsyncSession,
    rows: Sequence[tuple[str, date]],
    *,
    scope: str,
    source: str,
    actor: str,
) -> ImportSummary:
    """Record an objection of `scope` for every subject in `rows` that has none in force of that scope yet
    (so importing the same export twice records nothing new), in the caller's transaction."""
    await begin_objection_write(session)
    existing = set(
        (
            await session.execute(
                select(col(Objection.subject_digest)).where(
                    col(Objection.scope) == scope, col(Objection.withdrawn_at).is_(None)
                )
            )
        ).scalars()
    )
    new: dict[str, date] = {}
    for digest, day in rows:
        if digest not in existing and digest not in new:
            new[digest] = day
    now = datetime.now(UTC)
    values = [
        {
            "subject_digest": digest,
            "scope": scope,
            "received_on": day,
            "source": source,
            "recorded_by": actor,
            "recorded_at": now,
        }
        for digest, day in new.items()
    ]
    for start in range(0, len(values), INSERT_CHUNK):
        await session.execute(insert(Objection), values[start : start + INSERT_CHUNK])
    summary = ImportSummary(rows=len(rows), recorded=len(new), already_in_force=len(rows) - len(new))
    session.add(
        change_record(
            "objection", "import", "import", actor, None, {"scope": scope, "source": source, **summary.as_dict()}
        )
    )
    await session.flush()
    return summary
