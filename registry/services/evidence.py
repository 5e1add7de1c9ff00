"""The evidence bundle: one zip an inspection can take away.

It holds the Art. 30 record (JSON, CSV, XLSX), the registry document (YAML), every signed agreement on file,
the decision-log export for the period (CSV), the result of verifying the log's hash chain, and a manifest of
the SHA-256 of every other file in it (`MANIFEST.sha256`, in the form `sha256sum -c` reads, and as JSON).
Everything is read in one transaction, so the files agree with each other.
"""

import hashlib
import json
import os
import tempfile
import zipfile
from datetime import date
from typing import IO, Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.verify import verify_log
from registry.services.agreement_documents import every_document
from registry.services.exports import decision_csv_rows
from registry.services.records import article_30_record, period_bounds, record_csv, record_xlsx
from registry.services.registry_document import export_registry

MANIFEST = "MANIFEST.sha256"


class _Bundle:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.digests: dict[str, tuple[str, int]] = {}

    def add(self, name: str, content: bytes) -> None:
        self.archive.writestr(name, content)
        self.digests[name] = (hashlib.sha256(content).hexdigest(), len(content))

    async def add_stream(self, name: str, chunks: Any) -> None:
        """A large member written chunk by chunk (the decision log), hashed on the way."""
        digest = hashlib.sha256()
        size = 0
        with self.archive.open(name, "w", force_zip64=True) as member:
            async for chunk in chunks:
                member.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        self.digests[name] = (digest.hexdigest(), size)


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")


async def write_evidence(session: AsyncSession, out: IO[bytes], start: date | None, end: date | None) -> dict[str, Any]:
    """Write the bundle to `out` (a binary file); returns its manifest."""
    if not session.in_transaction():
        async with session.begin():
            return await write_evidence(session, out, start, end)
    record = await article_30_record(session, start, end)
    first_day = date.fromisoformat(record["period"]["from"])
    last_day = date.fromisoformat(record["period"]["to"])
    from zoneinfo import ZoneInfo

    first, after = period_bounds(first_day, last_day, ZoneInfo(record["period"]["timezone"]))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        bundle = _Bundle(archive)
        bundle.add("article-30.json", _json(record))
        bundle.add("article-30.csv", record_csv(record))
        bundle.add("article-30.xlsx", record_xlsx(record))
        document = await export_registry(session)
        bundle.add("registry.yaml", yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode("utf-8"))
        async for stored in every_document(session):
            bundle.add(f"agreements/{stored.agreement}.pdf", stored.content)
        await bundle.add_stream("guard-decisions.csv", decision_csv_rows(session, first, after))
        verified = await verify_log(session)
        bundle.add(
            "verify-log.json",
            _json(
                {
                    "ok": verified.ok,
                    "entries": verified.entries,
                    "first_bad_seq": verified.first_bad_seq,
                    "first_bad_decision_id": verified.first_bad_decision_id,
                    "problem": verified.problem,
                    "result": verified.describe(),
                }
            ),
        )
        manifest = {
            "period": record["period"],
            "generated_at": record["generated_at"],
            "files": {name: {"sha256": d, "size": n} for name, (d, n) in sorted(bundle.digests.items())},
        }
        lines = "".join(f"{d}  {name}\n" for name, (d, _) in sorted(bundle.digests.items()))
        archive.writestr(MANIFEST, lines.encode("utf-8"))
        archive.writestr("manifest.json", _json(manifest))
    return manifest


async def evidence_bytes(session: AsyncSession, start: date | None, end: date | None) -> bytes:
    """The bundle as bytes, spooled through a temporary file (for the UI's download)."""
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        await write_evidence(session, spool, start, end)
        spool.seek(0, os.SEEK_SET)
        return spool.read()
