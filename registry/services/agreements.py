"""Agreements: create, read, list, update, terminate, history."""

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kernel.columns import utcnow
from kernel.errors import ConflictError, FieldError, NotFoundError, RegistryValidationError
from registry.models import Agreement, Party
from registry.schemas import AgreementFields, AgreementIn, AgreementUpdate, could_be_key, plausible_day
from registry.services import integrity
from registry.services.common import Columns, change_record, finish_write, lock_registry_for_write
from registry.services.documents import agreement_document, with_metadata


@dataclass(frozen=True)
class AgreementFilter:
    party: str | None = None
    kind: str | None = None
    expires_before: date | None = None
    q: str | None = None


# The list's sortable columns: what a reader may ask for → the agreement table's column ("party": its name).
AGREEMENT_SORT_COLUMNS = {
    "key": "key",
    "party": "party",
    "kind": "kind",
    "effective_from": "effective_from",
    "expires_on": "expires_on",
    "owner_email": "owner_email",
}


def _filtered(stmt: Select[*Columns], f: AgreementFilter) -> Select[*Columns]:
    stmt = stmt.join(Party, col(Party.id) == col(Agreement.party_id))
    if f.party:
        stmt = stmt.where(col(Party.key) == f.party)
    if f.kind:
        stmt = stmt.where(col(Agreement.kind) == f.kind)
    if f.expires_before:
        stmt = stmt.where(col(Agreement.expires_on) < f.expires_before)
    if f.q:
        pattern = "%" + f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(col(Agreement.key).ilike(pattern), col(Party.name).ilike(pattern)))
    return stmt


def agreement_columns(data: AgreementFields, party_id: int) -> dict[str, Any]:
    """The agreement table's columns for a validated agreement."""
    return {
        "party_id": party_id,
        "kind": data.kind,
        "signed_on": data.signed_on,
        "effective_from": data.effective_from,
        "expires_on": data.expires_on,
        "terminated_on": data.terminated_on,
        "renewal": data.renewal,
        "notice_days": data.notice_days,
        "owner_email": data.owner_email,
        "document_uri": data.document.uri if data.document else None,
        "document_sha256": data.document.sha256 if data.document else None,
        "document_size": data.document.size if data.document else None,
        "data_categories": list(data.data_categories),
        "purposes": list(data.purposes),
        "data_subjects": list(data.data_subjects),
        "clauses": list(data.clauses),
        "transfers_outside_eea_permitted": data.transfers_outside_eea_permitted,
    }


def _apply(agreement: Agreement, data: AgreementFields, party_id: int) -> None:
    for name, value in agreement_columns(data, party_id).items():
        setattr(agreement, name, value)


async def agreement_row(session: AsyncSession, key: str, *, for_update: bool = False) -> tuple[Agreement, str]:
    """The agreement stored under `key` and its party's key, or NotFoundError."""
    if not could_be_key(key):
        raise NotFoundError(f"no agreement with key {key!r}")
    stmt = (
        select(Agreement, col(Party.key))
        .join(Party, col(Party.id) == col(Agreement.party_id))
        .where(col(Agreement.key) == key)
    )
    if for_update:
        stmt = stmt.with_for_update(of=Agreement)
    row = (await session.execute(stmt)).first()
    if row is None:
        raise NotFoundError(f"no agreement with key {key!r}")
    return row[0], row[1]


class AgreementService:
    def __init__(self, session: AsyncSession, actor: str) -> None:
        self.session = session
        self.actor = actor

    async def _row(self, key: str, *, for_update: bool = False) -> tuple[Agreement, str]:
        return await agreement_row(self.session, key, for_update=for_update)

    async def get(self, key: str) -> dict[str, Any]:
        agreement, party_key = await self._row(key)
        return with_metadata(agreement_document(agreement, party_key), agreement)

    async def search(self, f: AgreementFilter, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        total = (await self.session.execute(_filtered(select(func.count(col(Agreement.id))), f))).scalar_one()
        rows = await self.session.execute(
            _filtered(select(Agreement, col(Party.key)), f).order_by(col(Agreement.key)).limit(limit).offset(offset)
        )
        return [with_metadata(agreement_document(a, k), a) for a, k in rows], total

    async def ordered_keys(
        self, f: AgreementFilter, *, sort: str, descending: bool, limit: int | None, offset: int = 0
    ) -> tuple[list[str], int]:
        """The keys of the agreements that match, sorted and paged by the database (key breaks ties), and how
        many match; `limit` None: all of them (a caller that filters further)."""
        column = col(Party.name) if sort == "party" else col(getattr(Agreement, AGREEMENT_SORT_COLUMNS[sort]))
        order = column.desc().nulls_last() if descending else column.asc().nulls_last()
        total = (await self.session.execute(_filtered(select(func.count(col(Agreement.id))), f))).scalar_one()
        stmt = _filtered(select(col(Agreement.key)), f).order_by(order, col(Agreement.key)).offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self.session.execute(stmt)).scalars()), int(total)

    async def _party_id(self, data: AgreementFields) -> int:
        party = (await self.session.execute(select(Party).where(col(Party.key) == data.party))).scalar_one_or_none()
        roles = {party.key: party.role} if party else {}
        errors = integrity.agreement_party_errors("agreement", data.kind, data.party, roles)
        if errors:
            raise RegistryValidationError(errors)
        assert party is not None and party.id is not None
        return party.id

    async def create(self, data: AgreementIn, *, action: str = "create") -> dict[str, Any]:
        await lock_registry_for_write(self.session)
        if (await self.session.execute(select(col(Agreement.id)).where(col(Agreement.key) == data.key))).first():
            raise ConflictError(f"an agreement with key {data.key!r} exists already")
        party_id = await self._party_id(data)
        agreement = Agreement(key=data.key, **agreement_columns(data, party_id))
        self.session.add(agreement)
        await self.session.flush()
        after = agreement_document(agreement, data.party)
        self.session.add(change_record("agreement", data.key, action, self.actor, None, after))
        await finish_write(self.session, f"agreement:{data.key}", agreements=[data.key])
        return with_metadata(after, agreement)

    async def _locked_at_version(self, key: str, version: int) -> tuple[Agreement, str]:
        agreement, party_key = await self._row(key, for_update=True)
        if agreement.version != version:
            raise ConflictError(
                f"agreement {key!r} was changed by someone else (your version {version}, current "
                f"{agreement.version}); reload it and apply your change again",
                current_version=agreement.version,
            )
        return agreement, party_key

    async def update(self, key: str, data: AgreementUpdate) -> dict[str, Any]:
        await lock_registry_for_write(self.session)
        if data.key is not None and data.key != key:
            raise RegistryValidationError(
                [FieldError("key", f"the key cannot be changed ({key!r} in the URL, {data.key!r} in the body)")]
            )
        agreement, party_key = await self._locked_at_version(key, data.version)
        before = agreement_document(agreement, party_key)
        party_id = await self._party_id(data)
        on_file_size = agreement.document_size
        _apply(agreement, data, party_id)
        # An edit that leaves the document as it was (a form has no size field) keeps the size of the copy on file.
        kept = before["document"]
        if data.document and data.document.size is None and kept and kept.get("sha256") == data.document.sha256:
            agreement.document_size = on_file_size
        after = agreement_document(agreement, data.party)
        if after != before:
            agreement.version += 1
            agreement.updated_at = utcnow()
            self.session.add(change_record("agreement", key, "update", self.actor, before, after))
            await finish_write(self.session, f"agreement:{key}", agreements=[key])
        return with_metadata(after, agreement)

    async def terminate(self, key: str, version: int, on: date) -> dict[str, Any]:
        """Deactivating an agreement records its termination date; the row and its history stay."""
        try:
            plausible_day(on)  # the rule every other agreement date passes through the schema
        except ValueError as exc:
            raise RegistryValidationError([FieldError("terminated_on", str(exc))]) from None
        await lock_registry_for_write(self.session)
        agreement, party_key = await self._locked_at_version(key, version)
        before = agreement_document(agreement, party_key)
        if on < agreement.effective_from:
            raise RegistryValidationError(
                [FieldError("terminated_on", "terminated_on must not be before effective_from")]
            )
        if agreement.terminated_on is None or agreement.terminated_on > on:
            agreement.terminated_on = on
            agreement.version += 1
            agreement.updated_at = utcnow()
            after = agreement_document(agreement, party_key)
            self.session.add(change_record("agreement", key, "deactivate", self.actor, before, after))
            await finish_write(self.session, f"agreement:{key}", agreements=[key])
        return with_metadata(agreement_document(agreement, party_key), agreement)
