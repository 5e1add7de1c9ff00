"""What pages work out of a whole registry snapshot, each as a walk over its items: one definition, run two ways.

On a serving loop a walk runs in slices (`in_slices`: the loop's other work between every SLICE items), and its
result is kept with the snapshot (web/ui/registry_view.py `RegistryView`). In the first-view worker
(web/ui/first_view.py) the same walks run at once over the same snapshot read from the tables, off the loop.
Both paths call these functions, so what a page shows does not depend on where it was worked out.
"""

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, TypeVar

from guard.policy import Snapshot, evaluate_party
from guard.views import AgreementView, PartyView
from registry.findings import finding
from registry.services.documents import link_columns
from registry.services.records import territories, third_country_transfers
from web.ui import views as ui_views

# Items worked on between two turns of the event loop: a few milliseconds of work at most.
SLICE = 200

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 (an item)
R = TypeVar("R")


async def in_slices(items: Iterable[Any], work: Callable[[Any], T]) -> list[T]:
    """`[work(item) for item in items]`, yielding to the event loop every SLICE items."""
    out: list[T] = []
    for n, item in enumerate(items, 1):
        out.append(work(item))
        if n % SLICE == 0:
            await asyncio.sleep(0)
    return out


@dataclass(frozen=True)
class Walk(Generic[I, R, T]):
    """`total([step(item) for item in items])`: at once (`run`) or in slices on a loop (`run_in_slices`)."""

    items: Sequence[I]
    step: Callable[[I], R]
    total: Callable[[list[R]], T]

    def run(self) -> T:
        return self.total([self.step(item) for item in self.items])

    async def run_in_slices(self) -> T:
        return self.total(await in_slices(self.items, self.step))


def _flat(parts: list[list[T]]) -> list[T]:
    return [item for part in parts for item in part]


def party_document(view: PartyView) -> dict[str, Any]:
    """A party as the pages read it, from the guard's view (the fields lists, chains and maps show)."""
    return {
        "key": view.key,
        "name": view.name,
        "role": view.role,
        "category": view.category,
        "established_in": view.established_in,
        "active": view.active,
        "locations": [{"territory": loc.territory, "kind": loc.kind} for loc in view.locations],
        "sub_processors": [{"party": link.party, **link_columns(link)} for link in view.sub_processors],
    }


def agreement_document(view: AgreementView) -> dict[str, Any]:
    """An agreement as list pages read it, from the guard's view."""
    return {
        "key": view.key,
        "party": view.party,
        "kind": view.kind,
        "signed_on": view.signed_on,
        "effective_from": view.effective_from,
        "expires_on": view.expires_on,
        "terminated_on": view.terminated_on,
        "renewal": view.renewal,
        "notice_days": view.notice_days,
        "owner_email": view.owner_email,
        "data_categories": list(view.data_categories),
        "purposes": list(view.purposes),
        "data_subjects": list(view.data_subjects),
        "clauses": sorted(view.clauses),
        "transfers_outside_eea_permitted": view.transfers_outside_eea_permitted,
    }


def party_documents(snapshot: Snapshot) -> Walk[PartyView, dict[str, Any], dict[str, dict[str, Any]]]:
    """Every party's document by key, in key order."""
    return Walk(
        sorted(snapshot.parties.values(), key=lambda p: p.key),
        party_document,
        lambda docs: {d["key"]: d for d in docs},
    )


AgreementDocuments = tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]


def agreement_documents(
    snapshot: Snapshot,
) -> Walk[tuple[str, tuple[AgreementView, ...]], tuple[str, list[dict[str, Any]]], AgreementDocuments]:
    """Every agreement's document by key, and each party's by party key; in party key order (the snapshot's own
    order depends on how it was built: read whole, or changed record by record)."""

    def total(per_party: list[tuple[str, list[dict[str, Any]]]]) -> AgreementDocuments:
        by_party = dict(per_party)
        return {d["key"]: d for _, docs in per_party for d in docs}, by_party

    return Walk(
        sorted(snapshot.agreements_by_party.items()),
        lambda item: (item[0], [agreement_document(v) for v in item[1]]),
        total,
    )


def rule_findings(snapshot: Snapshot, today: date) -> Walk[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """The guard's findings for every active party (registry.findings.snapshot_findings), by party key."""
    return Walk(
        sorted(k for k, p in snapshot.parties.items() if p.active),
        lambda k: [finding(k, r) for r in evaluate_party(snapshot.parties[k], snapshot, today)],
        _flat,
    )


def in_force_dpas(snapshot: Snapshot, today: date) -> Walk[str, list[tuple[str, str]], list[tuple[str, str]]]:
    """(agreement key, party key) of every dpa in force today with an active party: what AGREEMENT_UNDOCUMENTED
    looks at (registry.services.agreement_documents.undocumented_findings)."""
    return Walk(
        sorted(k for k, p in snapshot.parties.items() if p.active),
        lambda k: [
            (a.key, k) for a in snapshot.agreements_by_party.get(k, ()) if a.kind == "dpa" and a.in_force_on(today)
        ],
        _flat,
    )


def agreement_states(
    agreement_docs: Mapping[str, dict[str, Any]], today: date, window: int
) -> Walk[dict[str, Any], tuple[str, str], dict[str, str]]:
    """Every agreement's state (views.agreement_state) by key."""
    return Walk(
        list(agreement_docs.values()),
        lambda a: (a["key"], ui_views.agreement_state(a, today, window)),
        dict,
    )


def expiring(agreement_docs: Mapping[str, dict[str, Any]], states: Mapping[str, str]) -> list[dict[str, Any]]:
    """The agreements whose state is "expiring", soonest first (the dashboard's list)."""
    found = [a for a in agreement_docs.values() if states[a["key"]] == "expiring"]
    return sorted(found, key=lambda a: a["expires_on"])


def outside_counts(snapshot: Snapshot, as_of: date) -> Walk[str, tuple[str, int], dict[str, int]]:
    """Each party's number of transfers in the Art. 30 record for a period ending on `as_of`: its and its chain's
    places outside the EEA, international organisations and agreements permitting transfers."""

    def count(key: str) -> tuple[str, int]:
        party = snapshot.parties[key]
        return key, len(third_country_transfers(party, snapshot, territories(party, snapshot.parties), as_of))

    return Walk(list(snapshot.parties), count, dict)


def unapproved(
    party_docs: Mapping[str, dict[str, Any]], today: date
) -> Walk[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Every sub-processor link not in effect today (views.unapproved_links)."""
    return Walk(list(party_docs.values()), lambda p: ui_views.unapproved_links({"": p}, today), _flat)


def users_index(
    party_docs: Mapping[str, dict[str, Any]],
) -> Walk[dict[str, Any], tuple[str, list[str]], dict[str, list[str]]]:
    """The parties that engage each sub-processor, by its key (a reverse index of the links)."""

    def total(per_party: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for processor, subs in per_party:
            for sub in subs:
                index.setdefault(sub, []).append(processor)
        return index

    return Walk(list(party_docs.values()), lambda p: (p["key"], [link["party"] for link in p["sub_processors"]]), total)
