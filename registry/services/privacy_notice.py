"""The privacy notice's "to whom do we disclose personal data, and do we transfer it outside the EU/EEA?" section,
generated from the processing activities and the registry (DESIGN §4.6), so that the published policy cannot
drift from what the guard enforces.

Only recipients the guard lets data reach are named: a party it refuses (no agreement in force, a place outside
the EEA, ...) receives nothing, so the notice does not name it. The transfer sentence holds because the guard
refuses every share that would leave the EU/EEA. Marking the notice published keeps the section's text in both
languages and its digest; while what the registry generates now differs from it, the notice is outdated
(NOTICE_OUTDATED, a finding that blocks nothing)."""

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kernel.calendar import calendar_today
from kernel.i18n import LANGUAGES, N_, gettext, use_locale
from registry.findings import snapshot_from_document
from registry.models import PrivacyNoticePublication
from registry.services.findings import registry_document
from registry.services.processing_activities import CATEGORY_LABELS, activity_entries, translate
from registry.services.records import territories

NOTICE_OUTDATED = "NOTICE_OUTDATED"
# The companies the notice names as controllers of what they receive, in the plural the policy uses
# ("tillverkare, leverantörer och återförsäljare").
CONTROLLER_CATEGORY_PLURALS = {
    "manufacturer": N_("manufacturers"),
    "supplier": N_("suppliers"),
    "reseller": N_("resellers"),
    "other": N_("other companies"),
}


def _joined(items: list[str]) -> str:
    """'a', 'a och b', 'a, b och c' in the current language."""
    if len(items) <= 1:
        return "".join(items)
    return gettext("{items} and {last}").format(items=", ".join(items[:-1]), last=items[-1])


def _section(controller: dict[str, Any] | None, activities: list[dict[str, Any]], authorities: bool) -> dict[str, Any]:
    """The section in the current language, from the activities' derived recipients."""
    allowed = [(a, [r for r in a["recipients"] if r["guard"] == "allowed"]) for a in activities]
    processors = sorted(
        {translate(CATEGORY_LABELS.get(r["category"], r["category"])) for _, rs in allowed for r in rs
         if r["role"] == "processor"}
    )  # fmt: skip
    controllers = sorted(
        {translate(CONTROLLER_CATEGORY_PLURALS.get(r["category"], CATEGORY_LABELS.get(r["category"], r["category"])))
         for _, rs in allowed for r in rs if r["role"] == "independent_controller"}
    )  # fmt: skip
    shared_for = [a["name"] for a, rs in allowed if any(r["role"] == "independent_controller" for r in rs)]
    paragraphs = []
    if processors:
        paragraphs.append(
            gettext(
                "We share personal data with our processors for {categories}. They process personal data on our "
                "behalf and on our instructions, under written agreements that guarantee its security."
            ).format(categories=_joined(processors))
        )
    if controllers:
        paragraphs.append(
            gettext(
                "We may share personal data with {categories} for: {activities}. The companies receiving it are "
                "controllers of that personal data."
            ).format(categories=_joined(controllers), activities=_joined(shared_for))
        )
    if authorities:
        paragraphs.append(gettext("Under compelling circumstances, data may be disclosed to authorities."))
    per_activity = [
        {
            "key": a["key"],
            "name": a["name"],
            "recipients": [
                {"key": r["key"], "name": r["name"], "role": r["role_text"], "category": r["category_text"]} for r in rs
            ],
            "text": gettext("{activity}: {recipients}.").format(
                activity=a["name"],
                recipients=", ".join(f"{r['name']} ({r['category_text']}, {r['role_text']})" for r in rs)
                if rs
                else gettext("no recipient"),
            ),
        }
        for a, rs in allowed
    ]
    transfer = gettext("We do not transfer any personal data outside the EU/EEA.")
    title = gettext("To whom do we disclose personal data, and do we transfer it outside the EU/EEA?")
    withheld = sorted(
        {(r["key"], r["name"], ", ".join(r["guard_reasons"])) for a in activities for r in a["recipients"]
         if r["guard"] != "allowed"}
    )  # fmt: skip
    lines = [title, *paragraphs, *(p["text"] for p in per_activity), transfer]
    return {
        "title": title,
        "paragraphs": paragraphs,
        "activities": per_activity,
        "transfer_sentence": transfer,
        "text": "\n\n".join(lines),
        "withheld": [{"key": k, "name": n, "reasons": r.split(", ") if r else []} for k, n, r in withheld],
    }


def notice_digest(texts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(texts, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


async def _sections(session: AsyncSession, today: date | None) -> tuple[dict[str, dict[str, Any]], date]:
    """The section in every language, from the registry as it is now (in the caller's transaction)."""
    doc = await registry_document(session)
    day = today or calendar_today(doc.controller.timezone)
    snapshot = snapshot_from_document(doc)
    controller = doc.controller.model_dump(mode="json")
    authorities = any(p.role == "authority" and p.active for p in snapshot.parties.values())
    sections = {}
    for language in LANGUAGES:
        with use_locale(language):
            activities = activity_entries(
                controller, snapshot, day, {}, lambda party: territories(party, snapshot.parties)
            )
            sections[language] = _section(controller, activities, authorities)
    return sections, day


@asynccontextmanager
async def _transaction(session: AsyncSession) -> AsyncIterator[None]:
    """The caller's transaction when one is open (its commit is the caller's), else one of our own."""
    if session.in_transaction():
        yield
        return
    async with session.begin():
        yield


async def _revision(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT revision FROM registry_revision WHERE id = 1"))).scalar() or 0)


async def _last_publication(session: AsyncSession) -> PrivacyNoticePublication | None:
    query = select(PrivacyNoticePublication).order_by(col(PrivacyNoticePublication.id).desc()).limit(1)
    return (await session.execute(query)).scalars().first()


async def privacy_notice(session: AsyncSession, language: str, *, today: date | None = None) -> dict[str, Any]:
    """The section in `language`, when it was last marked published, and NOTICE_OUTDATED when what the registry
    generates now is not what was published."""
    async with _transaction(session):
        sections, day = await _sections(session, today)
        published = await _last_publication(session)
        revision = await _revision(session)
    texts = {code: section["text"] for code, section in sections.items()}
    digest = notice_digest(texts)
    findings = []
    with use_locale(language):
        if published is None:
            findings.append(
                {
                    "code": NOTICE_OUTDATED,
                    "blocks": False,
                    "message": gettext("The privacy notice has never been marked published."),
                }
            )
        elif published.digest != digest:
            findings.append(
                {
                    "code": NOTICE_OUTDATED,
                    "blocks": False,
                    "message": gettext(
                        "The registry changed since the privacy notice was last marked published on {day}: its "
                        "recipients and transfers section now reads differently. Publish the new text, then mark "
                        "it published."
                    ).format(day=published.published_at.date().isoformat()),
                }
            )
    return {
        "language": language,
        "as_of": day.isoformat(),
        **sections[language],
        "digest": digest,
        "registry_revision": revision,
        "published": None
        if published is None
        else {
            "published_at": published.published_at.astimezone(UTC).isoformat(),
            "published_by": published.published_by,
            "registry_revision": published.registry_revision,
            "digest": published.digest,
            "text": published.texts.get(language, ""),
        },
        "findings": findings,
    }


async def mark_published(session: AsyncSession, actor: str, *, today: date | None = None) -> dict[str, Any]:
    """Record that the notice as the registry generates it now (both languages) has been published."""
    async with _transaction(session):
        sections, _ = await _sections(session, today)
        revision = await _revision(session)
        texts = {code: section["text"] for code, section in sections.items()}
        row = PrivacyNoticePublication(
            published_at=datetime.now(UTC),
            published_by=actor,
            registry_revision=revision,
            digest=notice_digest(texts),
            texts=texts,
        )
        session.add(row)
    return {
        "published_at": row.published_at.isoformat(),
        "published_by": actor,
        "registry_revision": revision,
        "digest": row.digest,
    }
