"""The guard's registry, read from the tables (DESIGN §4.5): the pure Snapshot whole, or the rows a run of
registry revisions touched. The refresher in guard/snapshot.py decides when to read; this module knows how,
so that the guard never imports the registry's tables (it is handed `RegistryTables` by the composition root).
"""

import asyncio
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Executable, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from guard.policy import Snapshot, direct_marketing_purposes, published_with_activities
from guard.snapshot import RegistryDelta, RegistryIndex
from guard.views import AgreementRecord, AgreementView, LocationView, PartyView, SubProcessorLinkView
from guard.vocabulary import ruleset_name
from kernel.db import registry_revision
from registry.models import Agreement, ControllerProfile, Location, Party, SubProcessorLink


async def load_snapshot(session: AsyncSession, *, ruleset: str) -> Snapshot:
    """Build the pure Snapshot from the tables in a handful of queries.

    The snapshot's ruleset is ``<ruleset>@<rules version>+r<registry revision>`` (`ruleset_name`): it changes
    whenever the rules or the registry do, two instances holding the same registry agree on it, and it is made
    once here rather than on every check. Read it in the same transaction as the tables (the refresher reads
    in one repeatable-read transaction), so the revision names exactly the rows read.

    The rows are read as plain columns, not ORM objects, and the views are built in a worker thread: with
    10,000 parties and 30,000 agreements, hydrating ORM objects and building the views on the event loop held
    it for about a second at a time, and every guard check waited. In a thread the interpreter hands the loop
    its turn every few milliseconds, so checks go on being answered (from the previous snapshot) meanwhile.
    """
    parties = await _all_rows(session, select(*_PARTY_COLUMNS).order_by(col(Party.key)))
    locations = await _all_rows(
        session, select(*_LOCATION_COLUMNS).order_by(col(Location.party_id), col(Location.position), col(Location.id))
    )
    links = await _all_rows(
        session,
        select(*_LINK_COLUMNS).order_by(
            col(SubProcessorLink.processor_id), col(SubProcessorLink.position), col(SubProcessorLink.id)
        ),
    )
    agreements = await _all_rows(session, select(*_AGREEMENT_COLUMNS).order_by(col(Agreement.key)))
    profile = (
        await session.execute(
            select(col(ControllerProfile.published_purposes), col(ControllerProfile.processing_activities)).where(
                col(ControllerProfile.id) == 1
            )
        )
    ).first()
    published, activities = (None, None) if profile is None else tuple(profile)
    revision = await registry_revision(session)
    return await asyncio.to_thread(
        _build_snapshot,
        parties,
        locations,
        links,
        agreements,
        ruleset_name(ruleset, revision),
        published_with_activities(published, activities),
        direct_marketing_purposes(activities),
    )


# Rows fetched per round trip while a snapshot loads: each batch is a short turn on the event loop (30,000
# agreements read in one go held it for about 200 ms).
ROWS_PER_FETCH = 2000


async def _all_rows(session: AsyncSession, statement: Executable) -> list[Any]:
    """Every row of `statement`, fetched ROWS_PER_FETCH at a time through a server-side cursor."""
    rows: list[Any] = []
    result = await session.stream(statement)
    async for batch in result.partitions(ROWS_PER_FETCH):
        rows.extend(batch)
    return rows


_PARTY_COLUMNS = tuple(
    col(c)
    for c in (
        Party.id,
        Party.key,
        Party.name,
        Party.role,
        Party.category,
        Party.established_in,
        Party.active,
        Party.international_organisation,
    )
)


_LOCATION_COLUMNS = (col(Location.party_id), col(Location.territory), col(Location.kind))


_LINK_COLUMNS = (
    col(SubProcessorLink.processor_id),
    col(SubProcessorLink.sub_processor_id),
    col(SubProcessorLink.approved_on),
    col(SubProcessorLink.objection_deadline),
    col(SubProcessorLink.authorisation),
    col(SubProcessorLink.notified_on),
    col(SubProcessorLink.objected_on),
)


# Every column AgreementView.of reads (the AgreementRecord protocol's attributes: a row answers them by name),
# and the party's id.
_AGREEMENT_COLUMNS = (
    col(Agreement.party_id),
    *(col(getattr(Agreement, name)) for name, value in vars(AgreementRecord).items() if isinstance(value, property)),
)


def _build_snapshot(
    parties: Sequence[Any],
    location_rows: Sequence[Any],
    link_rows: Sequence[Any],
    agreement_rows: Sequence[Any],
    ruleset: str,
    published_purposes: frozenset[str] | None = None,
    direct_marketing: frozenset[str] = frozenset(),
) -> Snapshot:
    """The views of the table rows (read by column name; each sequence in the order the policy keeps)."""
    key_by_id = {p.id: p.key for p in parties}
    locations: dict[int, list[LocationView]] = defaultdict(list)
    for loc in location_rows:
        locations[loc.party_id].append(LocationView(territory=loc.territory, kind=loc.kind))
    links: dict[int, list[SubProcessorLinkView]] = defaultdict(list)
    for link in link_rows:
        links[link.processor_id].append(SubProcessorLinkView.of(link, key_by_id[link.sub_processor_id]))
    party_views = {p.key: PartyView.of(p, locations.get(p.id, ()), links.get(p.id, ())) for p in parties}
    agreements: dict[str, list[AgreementView]] = defaultdict(list)
    for row in agreement_rows:
        party_key = key_by_id[row.party_id]
        agreements[party_key].append(AgreementView.of(row, party_key))
    agreements_by_party = {key: tuple(views) for key, views in agreements.items()}
    return Snapshot(
        parties=party_views,
        agreements_by_party=agreements_by_party,
        ruleset=ruleset,
        published_purposes=published_purposes,
        direct_marketing_purposes=direct_marketing,
    )


async def load_delta(
    session: AsyncSession, index: RegistryIndex, party_keys: Collection[str], agreement_keys: Collection[str]
) -> RegistryDelta:
    """Read the rows of the named parties and agreements (and the other agreements of every party concerned)."""
    moved_from = {index.agreement_party[key] for key in agreement_keys if key in index.agreement_party}
    now_with: set[str] = set()
    if agreement_keys:
        rows = await session.execute(
            select(col(Party.key))
            .join(Agreement, col(Agreement.party_id) == col(Party.id))
            .where(col(Agreement.key).in_(list(agreement_keys)))
        )
        now_with = set(rows.scalars())
    holders = moved_from | now_with | set(party_keys)

    party_rows = (
        await session.execute(select(*_PARTY_COLUMNS).where(col(Party.key).in_(list(party_keys))))
        if party_keys
        else None
    )
    parties = [] if party_rows is None else list(party_rows)
    ids = [p.id for p in parties]
    locations: dict[int, list[LocationView]] = defaultdict(list)
    links: dict[int, list[SubProcessorLinkView]] = defaultdict(list)
    if ids:
        for loc in await session.execute(
            select(*_LOCATION_COLUMNS)
            .where(col(Location.party_id).in_(ids))
            .order_by(col(Location.party_id), col(Location.position), col(Location.id))
        ):
            locations[loc.party_id].append(LocationView(territory=loc.territory, kind=loc.kind))
        sub = aliased(Party)
        link: Any
        for link in await session.execute(
            select(*_LINK_COLUMNS, col(sub.key).label("sub_key"))
            .join(sub, col(sub.id) == col(SubProcessorLink.sub_processor_id))
            .where(col(SubProcessorLink.processor_id).in_(ids))
            .order_by(col(SubProcessorLink.processor_id), col(SubProcessorLink.position), col(SubProcessorLink.id))
        ):
            links[link.processor_id].append(SubProcessorLinkView.of(link, link.sub_key))
    found: dict[str, PartyView | None] = {key: None for key in party_keys}
    for p in parties:
        found[p.key] = PartyView.of(p, locations.get(p.id, ()), links.get(p.id, ()))

    agreements: dict[str, list[AgreementView]] = {key: [] for key in holders}
    if holders:
        for row in await session.execute(
            select(*_AGREEMENT_COLUMNS, col(Party.key).label("party_key"))
            .join(Party, col(Party.id) == col(Agreement.party_id))
            .where(col(Party.key).in_(list(holders)))
            .order_by(col(Agreement.key))
        ):
            agreements[row.party_key].append(AgreementView.of(row, row.party_key))
    return RegistryDelta(parties=found, agreements={key: tuple(views) for key, views in agreements.items()})


class RegistryTables:
    """The registry as the guard's refresher reads it (guard.snapshot.RegistrySource)."""

    async def snapshot(self, session: AsyncSession, *, ruleset: str) -> Snapshot:
        return await load_snapshot(session, ruleset=ruleset)

    async def delta(
        self, session: AsyncSession, index: RegistryIndex, party_keys: Collection[str], agreement_keys: Collection[str]
    ) -> RegistryDelta:
        return await load_delta(session, index, party_keys, agreement_keys)
