"""Signed agreements on file: the PDF kept in PostgreSQL, its digest in the agreement.

Storing a document records its SHA-256 and size in the agreement's `document` field, raises the agreement's
version and writes a change record, so the agreement's history shows which copy was on file when. The bytes
come back exactly as they were sent.
"""

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kernel.columns import utcnow
from kernel.errors import NotFoundError
from registry.models import Agreement
from registry.models.agreement_document import AgreementDocument, RemovedAgreementDocument
from registry.services.agreements import agreement_row
from registry.services.common import change_record, finish_write, lock_registry_for_write
from registry.services.documents import agreement_document, with_metadata

if TYPE_CHECKING:
    from registry.schemas import RegistryDocument

PDF_MAGIC = b"%PDF-"
# A PDF may start with a little junk before its header (ISO 32000-1 §7.5.2 lets readers look within the first
# 1024 bytes); a signed contract exported by an e-signature service starts with the header itself.
_FILENAME_UNSAFE = re.compile(r"[^\w.-]+")  # letters of any language kept (Bergström)


class NotAPdf(ValueError):
    """The upload is not a PDF document."""


class DocumentTooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the document is larger than the limit of {limit} bytes")


@dataclass(frozen=True)
class StoredDocument:
    agreement: str
    content: bytes
    sha256: str
    size: int
    filename: str


def document_uri(key: str) -> str:
    """Where the registry serves the copy on file; the agreement's `document.uri` once one is stored."""
    return f"/api/agreements/{key}/document"


def safe_filename(name: str | None, key: str) -> str:
    """A download name with no path, quotes or control characters: only the letters it is safe to echo."""
    stem = _FILENAME_UNSAFE.sub("-", (name or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip("-.")[:200]
    if not stem:
        stem = key
    return stem if stem.lower().endswith(".pdf") else stem + ".pdf"


def check_pdf(content: bytes) -> None:
    if not content.startswith(PDF_MAGIC):
        raise NotAPdf("the document is not a PDF (it does not start with %PDF-)")


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, refused as soon as it passes `limit` bytes (never held past the limit)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise DocumentTooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)


async def store_document(
    session: AsyncSession, key: str, content: bytes, filename: str | None, actor: str
) -> dict[str, Any]:
    """Put the signed PDF on file for agreement `key` (replacing any earlier copy); the agreement as answered."""
    check_pdf(content)
    await lock_registry_for_write(session)
    agreement, party_key = await agreement_row(session, key, for_update=True)
    assert agreement.id is not None
    digest = hashlib.sha256(content).hexdigest()
    values = {
        "content": content,
        "sha256": digest,
        "size": len(content),
        "filename": safe_filename(filename, key),
        "uploaded_by": actor[:200],
        "uploaded_at": utcnow(),
    }
    upsert = insert(AgreementDocument).values(agreement_id=agreement.id, **values)
    await session.execute(upsert.on_conflict_do_update(index_elements=["agreement_id"], set_=values))
    before = agreement_document(agreement, party_key)
    agreement.document_uri = document_uri(key)
    agreement.document_sha256 = digest
    agreement.document_size = len(content)
    after = agreement_document(agreement, party_key)
    if after != before:
        agreement.version += 1
        agreement.updated_at = utcnow()
        session.add(change_record("agreement", key, "document", actor, before, after))
        await finish_write(session, f"agreement:{key}", agreements=[key])
    return with_metadata(after, agreement)


async def read_document(session: AsyncSession, key: str) -> StoredDocument:
    agreement, _ = await agreement_row(session, key)
    row = await session.get(AgreementDocument, agreement.id)
    if row is None:
        raise NotFoundError(f"agreement {key!r} has no signed document on file")
    return StoredDocument(key, row.content, row.sha256, row.size, row.filename)


async def documents_on_file(session: AsyncSession) -> dict[str, tuple[str, int]]:
    """Agreement key -> (SHA-256, size) of every document on file (the bytes stay in the database)."""
    rows = await session.execute(
        select(col(Agreement.key), col(AgreementDocument.sha256), col(AgreementDocument.size)).join(
            Agreement, col(Agreement.id) == col(AgreementDocument.agreement_id)
        )
    )
    return {key: (digest, size) for key, digest, size in rows}


async def every_document(session: AsyncSession) -> AsyncIterator[StoredDocument]:
    """Every document on file, one at a time (an evidence bundle writes each out before reading the next)."""
    for key in sorted(await documents_on_file(session)):
        yield await read_document(session, key)


async def keep_removed_documents(session: AsyncSession, agreement_ids: list[int]) -> None:
    """Copy the signed PDFs of agreements about to be removed aside, so a restore can put them back (the
    document row itself cascades with its agreement)."""
    if not agreement_ids:
        return
    kept = (
        select(
            col(Agreement.key),
            col(AgreementDocument.sha256),
            col(AgreementDocument.content),
            col(AgreementDocument.size),
            col(AgreementDocument.filename),
            col(AgreementDocument.uploaded_by),
            col(AgreementDocument.uploaded_at),
            func.now(),
        )
        .join(Agreement, col(Agreement.id) == col(AgreementDocument.agreement_id))
        .where(col(AgreementDocument.agreement_id).in_(agreement_ids))
    )
    columns = ["agreement_key", "sha256", "content", "size", "filename", "uploaded_by", "uploaded_at", "removed_at"]
    await session.execute(insert(RemovedAgreementDocument).from_select(columns, kept).on_conflict_do_nothing())


async def restore_removed_document(session: AsyncSession, key: str, sha256: str | None) -> bool:
    """Put back the signed PDF a removed agreement had on file, when its restored state names that copy.

    True when the document is on file again. The copy must match the digest the agreement's history recorded:
    another copy kept under the same key (removed at another time) is not this agreement's contract."""
    if sha256 is None:
        return False
    kept = await session.get(RemovedAgreementDocument, (key, sha256))
    if kept is None:
        return False
    agreement, _ = await agreement_row(session, key, for_update=True)
    values = {
        "agreement_id": agreement.id,
        "content": kept.content,
        "sha256": kept.sha256,
        "size": kept.size,
        "filename": kept.filename,
        "uploaded_by": kept.uploaded_by,
        "uploaded_at": kept.uploaded_at,
    }
    await session.execute(insert(AgreementDocument).values(**values))
    await session.delete(kept)
    return True


def undocumented_finding(agreement: str, party: str, *, in_registry: bool = True) -> dict[str, Any]:
    """The AGREEMENT_UNDOCUMENTED finding of one dpa (see `undocumented_findings`)."""
    where = "in the registry" if in_registry else "referenced by the registry document"
    return {
        "party": party,
        "code": "AGREEMENT_UNDOCUMENTED",
        "message": (
            f"Data processing agreement {agreement} with {party} is in force, but no signed copy is {where}: "
            f"Art. 28(9) asks for the contract in writing; put the signed PDF on file (PUT {document_uri(agreement)})."
        ),
        "agreement": agreement,
        "blocks": False,  # the guard does not check the copy on file: an evidence gap, not a refusal
    }


def undocumented_findings(doc: "RegistryDocument", on_file: set[str] | None, today: date) -> list[dict[str, Any]]:
    """AGREEMENT_UNDOCUMENTED: a dpa in force today, with an active party, and no signed copy on file.

    `on_file` is the set of agreement keys with a document stored in the registry; None when there is no
    database (a registry file checked alone), where a dpa without any `document` reference is the finding.
    A finding, not a guard refusal: see the docstring of registry/findings.py.
    """
    from guard.views import AgreementView

    active = {p.key for p in doc.parties if p.active}
    findings = []
    for agreement in doc.agreements:
        if agreement.kind != "dpa" or agreement.party not in active:
            continue
        if not AgreementView.of(agreement, agreement.party).in_force_on(today):
            continue
        if (agreement.key in on_file) if on_file is not None else (agreement.document is not None):
            continue
        findings.append(undocumented_finding(agreement.key, agreement.party, in_registry=on_file is not None))
    return findings
