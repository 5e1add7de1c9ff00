"""A person's rights beyond objections, by keyed digest only: restrictions (Art. 18), erasure (Art. 17) and the
answer naming the recipients of their data (Art. 15(1)(c)).

Restrictions are written like objections (registry/services/objections.py): under their own advisory lock,
with `change_seq` from their own sequence, NOTIFYing the guards, which refuse every share of the person at once.

An erasure unlinks the person from everything the service keeps: the rows naming them beside the decision log
(`decision_subject`, digest and salt) are deleted, so the salted commitments in the hashed log entries link to
no one and the log's chains still verify; withdrawn objections and restrictions keep their rows with a random
digest; the history's copies of their digest are blanked. An objection in force is kept as a suppression entry,
so that the person is never marketed to again (Art. 21(3)). The erasure itself is recorded without the
identifier or its digest. Entries logged before migration 0017 hold the digest inside their hashed request and
cannot be unlinked without breaking the chain: the answer counts them (rotating the subject key unlinks them).
"""

import csv
import io
import uuid
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from guard.objections import RESTRICTION_WRITE_LOCK_ID, RESTRICTIONS_CHANGED_CHANNEL
from guard.subjects import SubjectKey
from kernel.errors import FieldError, RegistryValidationError, pydantic_field_errors
from kernel.i18n import N_, gettext
from ledger.entries import format_timestamp
from registry.models.party import Location, Party, SubProcessorLink
from registry.models.subject import Restriction
from registry.schemas import RestrictionIn
from registry.services.common import change_record
from registry.services.objections import (
    INSERT_CHUNK,
    ImportSummary,
    begin_objection_write,
    end_subject_entry,
    list_subject_entries,
    record_subject_entry,
    subject_digest,
)

SUPPRESSION_SOURCE = "suppression after erasure"


# --- Restrictions (Art. 18) -----------------------------------------------------------------------------------


def restriction_document(row: Restriction) -> dict[str, Any]:
    return {
        "id": row.id,
        "subject_digest": row.subject_digest,
        "received_on": row.received_on.isoformat(),
        "source": row.source,
        "recorded_by": row.recorded_by,
        "recorded_at": format_timestamp(row.recorded_at),
        "lifted_at": None if row.lifted_at is None else format_timestamp(row.lifted_at),
        "lifted_by": row.lifted_by,
        "in_force": row.lifted_at is None,
    }


async def begin_restriction_write(session: AsyncSession) -> None:
    """Take the restriction write lock (change numbers in commit order) and tell the guards at commit."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": RESTRICTION_WRITE_LOCK_ID})
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": RESTRICTIONS_CHANGED_CHANNEL})


def parse_restriction(payload: Any) -> RestrictionIn:
    if not isinstance(payload, dict):
        raise RegistryValidationError([FieldError("(body)", "a restriction is a JSON object")])
    try:
        return RestrictionIn.model_validate(payload)
    except ValidationError as exc:
        raise RegistryValidationError(pydantic_field_errors(exc)) from None


async def record_restriction(session: AsyncSession, key: SubjectKey, data: RestrictionIn, actor: str) -> dict[str, Any]:
    """Record one restriction (the caller's transaction); every guard refuses the person's shares once it
    commits, until it is lifted."""
    await begin_restriction_write(session)
    row = Restriction(
        subject_digest=key.digest_normalised(data.subject),
        received_on=data.received_on,
        source=data.source,
        recorded_by=actor,
    )
    return await record_subject_entry(session, row, actor, kind="restriction", document=restriction_document)


async def lift_restriction(session: AsyncSession, restriction_id: int, actor: str) -> dict[str, Any]:
    """Lift one restriction: it stays on record, marked lifted; NotFoundError for an unknown id."""
    await begin_restriction_write(session)
    return await end_subject_entry(
        session,
        Restriction,
        restriction_id,
        actor,
        kind="restriction",
        action="lift",
        ended="lifted",
        counter="restriction_change_counter",
        document=restriction_document,
    )


async def list_restrictions(
    session: AsyncSession,
    key: SubjectKey,
    *,
    subject: str | None,
    in_force: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Restrictions newest first, of one subject when `subject` is given."""
    return await list_subject_entries(
        session,
        Restriction,
        key,
        ended="lifted",
        document=restriction_document,
        subject=subject,
        in_force=in_force,
        limit=limit,
        offset=offset,
    )


async def import_restrictions(
    session: AsyncSession, rows: list[tuple[str, date]], *, source: str, actor: str
) -> ImportSummary:
    """Record a restriction for every subject in `rows` (from `parse_subject_rows`) that has none in force yet,
    in the caller's transaction: importing the same list twice records nothing new."""
    await begin_restriction_write(session)
    existing = set(
        (
            await session.execute(select(col(Restriction.subject_digest)).where(col(Restriction.lifted_at).is_(None)))
        ).scalars()
    )
    new: dict[str, date] = {}
    for digest, day in rows:
        if digest not in existing and digest not in new:
            new[digest] = day
    now = datetime.now(UTC)
    values = [
        {"subject_digest": d, "received_on": day, "source": source, "recorded_by": actor, "recorded_at": now}
        for d, day in new.items()
    ]
    for start in range(0, len(values), INSERT_CHUNK):
        await session.execute(insert(Restriction), values[start : start + INSERT_CHUNK])
    summary = ImportSummary(rows=len(rows), recorded=len(new), already_in_force=len(rows) - len(new))
    session.add(change_record("restriction", "import", "import", actor, None, {"source": source, **summary.as_dict()}))
    await session.flush()
    return summary


# --- Erasure (Art. 17) ---------------------------------------------------------------------------------------

_RANDOM_DIGEST = "encode(sha256(convert_to(gen_random_uuid()::text, 'UTF8')), 'hex')"


async def erase_subject(session: AsyncSession, key: SubjectKey, subject: str, actor: str) -> dict[str, Any]:
    """Unlink one person from everything the service keeps (see the module's docstring), in the caller's
    transaction. Erasing again finds nothing more to unlink and answers the same way, with zero counts."""
    digest = subject_digest(key, subject)
    await begin_objection_write(session)
    await begin_restriction_write(session)
    params = {"digest": digest, "actor": actor}
    unlinked = (
        await session.execute(text("DELETE FROM decision_subject WHERE subject_digest = :digest"), params)
    ).rowcount  # type: ignore[attr-defined]
    legacy = (
        await session.execute(text("SELECT count(*) FROM guard_decision WHERE subject_digest = :digest"), params)
    ).scalar_one()
    suppressed = (
        await session.execute(
            text("UPDATE objection SET source = :source WHERE subject_digest = :digest AND withdrawn_at IS NULL"),
            {**params, "source": SUPPRESSION_SOURCE},
        )
    ).rowcount  # type: ignore[attr-defined]
    # Withdrawn objections count for nothing: their rows stay, linked to no one. (A new change number, so that
    # every index applies the change; a withdrawn entry is not in any index.)
    withdrawn = (
        await session.execute(
            text(
                f"UPDATE objection SET subject_digest = {_RANDOM_DIGEST},"
                " change_seq = nextval('objection_change_counter')"
                " WHERE subject_digest = :digest AND withdrawn_at IS NOT NULL"
            ),
            params,
        )
    ).rowcount  # type: ignore[attr-defined]
    # Restrictions in force are lifted by the erasure (there is nothing left to restrict), all unlinked.
    lifted = (
        await session.execute(
            text(
                "UPDATE restriction SET lifted_at = now(), lifted_by = :actor"
                " WHERE subject_digest = :digest AND lifted_at IS NULL"
            ),
            params,
        )
    ).rowcount  # type: ignore[attr-defined]
    await session.execute(
        text(
            f"UPDATE restriction SET subject_digest = {_RANDOM_DIGEST},"
            " change_seq = nextval('restriction_change_counter') WHERE subject_digest = :digest"
        ),
        params,
    )
    # The history's copies of the digest (objection and restriction records), blanked in place.
    await session.execute(
        text(
            """UPDATE change_record SET
                before = CASE WHEN before->>'subject_digest' = :digest
                    THEN jsonb_set(before, '{subject_digest}', '"erased"') ELSE before END,
                after = CASE WHEN after->>'subject_digest' = :digest
                    THEN jsonb_set(after, '{subject_digest}', '"erased"') ELSE after END
            WHERE entity IN ('objection', 'restriction')
              AND (before->>'subject_digest' = :digest OR after->>'subject_digest' = :digest)"""
        ),
        params,
    )
    erasure_id = str(uuid.uuid4())
    outcome = {
        "erasure": erasure_id,
        "unlinked_log_entries": int(unlinked),
        "log_entries_still_linked": int(legacy),
        "objections_kept_as_suppression": int(suppressed),
        "withdrawn_objections_unlinked": int(withdrawn),
        "restrictions_lifted": int(lifted),
    }
    # The erasure on record, without the identifier or its digest.
    session.add(change_record("subject", erasure_id, "erase", actor, None, outcome))
    await session.flush()
    return outcome


# --- One person's recipients (Art. 15(1)(c)) -----------------------------------------------------------------

# Allowed shares naming the person, trials left out: since migration 0017 through `decision_subject`, before it
# through the log's own digest column.
_SHARES = """
SELECT d.recipient, d.request, d.decided_at FROM decision_subject s JOIN guard_decision d USING (decision_id)
WHERE s.subject_digest = :digest AND d.allowed AND NOT d.trial
UNION ALL
SELECT d.recipient, d.request, d.decided_at FROM guard_decision d
WHERE d.subject_digest = :digest AND d.allowed AND NOT d.trial
"""

CANNOT_KNOW = N_(
    "This answer lists the recipients of shares that the transfer guard allowed and that named this person. It "
    "cannot know of shares that did not name the person (shares of whole lists or without subject_ref), of "
    "shares made without asking the guard, of shares before the decision log began, nor of shares whose links "
    "to the person were removed by an erasure or a change of the subject key."
)


async def _chains(session: AsyncSession, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Each party's name, role, contact and territories, and its sub-processors (in effect or not, each with its
    own), for `keys` and every party their chains reach."""
    # Only the parties the recipients' chains reach, found in the database: reading every party, place and link
    # of a 10,000-party registry took this answer 2 s (bench/ui_browse_export.py).
    reach = select(col(Party.id).label("id")).where(col(Party.key).in_(keys)).cte("reach", recursive=True)
    # (UNION, not UNION ALL: the walk ends even if a cycle got in)
    reach = reach.union(
        select(col(SubProcessorLink.sub_processor_id))
        .join(reach, col(SubProcessorLink.processor_id) == reach.c.id)
        .where(col(SubProcessorLink.objected_on).is_(None))
    )
    reached = select(reach.c.id)
    parties = {p.id: p for p in (await session.execute(select(Party).where(col(Party.id).in_(reached)))).scalars()}
    by_key = {p.key: p for p in parties.values()}
    places: dict[int, set[str]] = {}
    located = select(Location).where(col(Location.party_id).in_(reached))
    for location in (await session.execute(located)).scalars():
        places.setdefault(location.party_id, set()).add(location.territory)
    links: dict[int, list[int]] = {}
    linked = select(SubProcessorLink).where(
        col(SubProcessorLink.processor_id).in_(reached), col(SubProcessorLink.objected_on).is_(None)
    )
    for found_link in (await session.execute(linked)).scalars():
        links.setdefault(found_link.processor_id, []).append(found_link.sub_processor_id)

    def describe(party: Party, seen: frozenset[int]) -> dict[str, Any]:
        assert party.id is not None
        territories = sorted(places.get(party.id, set()) | {party.established_in})
        subs = [
            describe(parties[s], seen | {s})
            for s in links.get(party.id, [])
            if s in parties and s not in seen  # (the registry refuses cycles; this keeps a walk finite anyway)
        ]
        return {
            "party": party.key,
            "name": party.name,
            "role": party.role,
            "established_in": party.established_in,
            "territories": territories,
            "contact": party.contact or {},
            "sub_processors": subs,
        }

    found: dict[str, dict[str, Any]] = {}
    for key in keys:
        party = by_key.get(key)
        if party is not None and party.id is not None:
            found[key] = describe(party, frozenset({party.id}))
    return found


def _territories(chain: dict[str, Any]) -> set[str]:
    found = set(chain["territories"])
    for sub in chain["sub_processors"]:
        found |= _territories(sub)
    return found


async def subject_recipients(session: AsyncSession, key: SubjectKey, subject: str) -> dict[str, Any]:
    """Every recipient the guard allowed a share naming this person (trials left out): the party, its role,
    contact, territories and sub-processor chain, the purposes and categories shared, the first and last share
    and their count; the period the log covers, and what the answer cannot know (Art. 15(1)(c), Art. 19)."""
    digest = subject_digest(key, subject)
    rows = (await session.execute(text(_SHARES), {"digest": digest})).all()
    by_recipient: dict[str, dict[str, Any]] = {}
    for recipient, request, decided_at in rows:
        entry = by_recipient.setdefault(
            recipient,
            {"purposes": set(), "categories": set(), "first": decided_at, "last": decided_at, "count": 0},
        )
        entry["purposes"].add(str(request.get("purpose", "")))
        entry["categories"].update(str(c) for c in request.get("data_categories", []))
        entry["first"] = min(entry["first"], decided_at)
        entry["last"] = max(entry["last"], decided_at)
        entry["count"] += 1
    chains = await _chains(session, sorted(by_recipient))
    recipients = []
    for party_key, entry in sorted(by_recipient.items()):
        chain = chains.get(party_key)
        recipients.append(
            {
                "party": party_key,
                "name": None if chain is None else chain["name"],
                "role": None if chain is None else chain["role"],
                "contact": None if chain is None else chain["contact"],
                "established_in": None if chain is None else chain["established_in"],
                "territories": [] if chain is None else sorted(_territories(chain)),
                "sub_processors": [] if chain is None else chain["sub_processors"],
                "purposes": sorted(entry["purposes"]),
                "categories": sorted(entry["categories"]),
                "first_shared_at": format_timestamp(entry["first"]),
                "last_shared_at": format_timestamp(entry["last"]),
                "count": entry["count"],
            }
        )
    began = (await session.execute(text("SELECT min(decided_at) FROM guard_decision"))).scalar_one()
    now = (await session.execute(text("SELECT now()"))).scalar_one()
    return {
        "subject_digest": digest,
        "period": {"from": None if began is None else format_timestamp(began), "to": format_timestamp(now)},
        "recipients": recipients,
        "cannot_know": gettext(CANNOT_KNOW),
    }


def _chain_text(subs: list[dict[str, Any]]) -> str:
    """A chain on one line: `party (territories) > its sub-processor (…)`, siblings separated by `; `."""
    parts = []
    for sub in subs:
        text_ = f"{sub['party']} ({', '.join(sub['territories'])})"
        if sub["sub_processors"]:
            text_ += f" > {_chain_text(sub['sub_processors'])}"
        parts.append(text_)
    return "; ".join(parts)


RECIPIENT_CSV_HEADERS = (
    N_("Recipient"),
    N_("Name"),
    N_("Role"),
    N_("Territories"),
    N_("Sub-processors"),
    N_("Contact"),
    N_("Purposes"),
    N_("Data categories"),
    N_("First shared"),
    N_("Last shared"),
    N_("Shares"),
)


def recipients_csv(answer: dict[str, Any], headers: list[str]) -> str:
    """The answer as CSV rows (one per recipient) under `headers` (in the reader's language), then the period
    and the statement of what it cannot know."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    for r in answer["recipients"]:
        contact = r["contact"] or {}
        writer.writerow(
            [
                r["party"],
                r["name"] or "",
                r["role"] or "",
                " ".join(r["territories"]),
                _chain_text(r["sub_processors"]),
                " ".join(v for v in (contact.get("name"), contact.get("email"), contact.get("phone")) if v),
                " ".join(r["purposes"]),
                " ".join(r["categories"]),
                r["first_shared_at"],
                r["last_shared_at"],
                r["count"],
            ]
        )
    writer.writerow([])
    writer.writerow([answer["period"]["from"] or "", answer["period"]["to"]])
    writer.writerow([answer["cannot_know"]])
    return out.getvalue()
