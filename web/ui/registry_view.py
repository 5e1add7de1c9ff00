"""The registry as the UI's pages read it: this instance's guard snapshot, not the tables.

Every page used to load the whole registry through the ORM (10,000 parties and 30,000 agreements: seconds on the
event loop the guard answers on, for each page). The guard already holds the registry in memory, kept current
by its refresher (a change applied within a fraction of a second, a write through this instance obeyed before
it returns), and it is exactly what the guard decides on: pages now show that. What pages need of the whole
registry (the documents of the parties and agreements, each party's agreement status and places, the
findings) is worked out from a snapshot once and kept with it, in slices with the loop's other work between
them, so that no guard check waits for more than a slice. A new snapshot (a registry change) starts afresh.

When the guard holds no usable snapshot (not loaded yet, or too old to trust), a page reads the tables as before.
"""

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, TypeVar

from litestar import Request
from markupsafe import Markup, escape
from sqlalchemy.ext.asyncio import AsyncSession

from guard.policy import Snapshot, evaluate_party
from guard.snapshot import SnapshotUnavailable
from guard.views import AgreementView, PartyView
from registry.findings import finding
from registry.models.controller import ControllerProfile
from registry.services.documents import controller_document, link_columns, load_registry
from registry.services.records import territories, third_country_transfers
from web.composition import services_of
from web.ui import views as ui_views
from web.ui.words import role_label

# Items worked on between two turns of the event loop: a few milliseconds of work at most.
SLICE = 200

T = TypeVar("T")


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


async def in_slices(items: Iterable[Any], work: Callable[[Any], T]) -> list[T]:
    """`[work(item) for item in items]`, yielding to the event loop every SLICE items."""
    out: list[T] = []
    for n, item in enumerate(items, 1):
        out.append(work(item))
        if n % SLICE == 0:
            await asyncio.sleep(0)
    return out


@dataclass(frozen=True)
class ChoiceOptions:
    """The <option> elements of a long list of choices (every party: 10,000 of them), rendered once per snapshot
    and kept: rendered by the template on every page, they held the guard's event loop for tens of
    milliseconds a page (bench/ui_browse_export.py)."""

    html: str
    keys: frozenset[str]

    def selecting(self, value: str | None) -> Markup:
        """The options with `value`'s marked selected (none when it is not among them)."""
        if not value or value not in self.keys:
            return Markup(self.html)
        chosen = f'<option value="{escape(value)}">'
        return Markup(self.html.replace(chosen, chosen[:-1] + " selected>", 1))


def render_options(choices: Iterable[tuple[str, str]]) -> ChoiceOptions:
    """`(key, label)` pairs as <option> elements, both escaped."""
    pairs = list(choices)
    html = "".join(f'<option value="{escape(key)}">{escape(label)}</option>' for key, label in pairs)
    return ChoiceOptions(html, frozenset(key for key, _ in pairs))


# How a list of parties labels each one, by the name pages ask for it with.
PARTY_LABELS: dict[str, Callable[[dict[str, Any]], str]] = {
    "name": lambda p: str(p["name"]),
    "name_key": lambda p: f"{p['name']} ({p['key']})",
    "name_role": lambda p: f"{p['name']} ({role_label(p['role'])})",
}


@dataclass
class RegistryView:
    """One snapshot's registry for the pages: the documents of its parties and agreements, and what pages work
    out of all of them, each built on first use and kept with the snapshot."""

    snapshot: Snapshot | None
    controller: dict[str, Any] | None
    party_docs: dict[str, dict[str, Any]]
    agreement_docs: dict[str, dict[str, Any]]
    agreements_by_party: dict[str, list[dict[str, Any]]]
    _memo: dict[Any, Any] = field(default_factory=dict)

    async def memo(self, key: Any, build: Callable[[], Any]) -> Any:
        """The value `await build()` gives, worked out once per snapshot and `key`."""
        if key not in self._memo:
            self._memo[key] = await build()
        return self._memo[key]

    async def party_options(self, label: str, language: str, role: str | None = None) -> ChoiceOptions:
        """Every party (of `role`, if given) as <option> elements labelled as PARTY_LABELS[`label`] says, in
        `language` (the labels may hold translated words), rendered once per snapshot."""
        labelled = PARTY_LABELS[label]

        async def build() -> ChoiceOptions:
            parties = [p for p in self.party_docs.values() if role is None or p["role"] == role]
            return render_options(zip((p["key"] for p in parties), await in_slices(parties, labelled), strict=True))

        return await self.memo(("party_options", label, language, role), build)

    async def rule_findings(self, today: date) -> list[dict[str, Any]]:
        """The guard's findings for every active party (registry.findings.snapshot_findings), in slices."""
        snapshot = self.snapshot
        if snapshot is None:
            return []

        async def build() -> list[dict[str, Any]]:
            keys = sorted(k for k, p in snapshot.parties.items() if p.active)
            per_party = await in_slices(
                keys, lambda k: [finding(k, r) for r in evaluate_party(snapshot.parties[k], snapshot, today)]
            )
            return [f for found in per_party for f in found]

        found: list[dict[str, Any]] = await self.memo(("findings", today), build)
        return found

    async def in_force_dpas(self, today: date) -> list[tuple[str, str]]:
        """(agreement key, party key) of every dpa in force today with an active party: what
        AGREEMENT_UNDOCUMENTED looks at (registry.services.agreement_documents.undocumented_findings)."""
        snapshot = self.snapshot
        if snapshot is None:
            return []

        async def build() -> list[tuple[str, str]]:
            active = [k for k, p in snapshot.parties.items() if p.active]
            per_party = await in_slices(
                active,
                lambda k: [
                    (a.key, k)
                    for a in snapshot.agreements_by_party.get(k, ())
                    if a.kind == "dpa" and a.in_force_on(today)
                ],
            )
            return [pair for pairs in per_party for pair in pairs]

        pairs: list[tuple[str, str]] = await self.memo(("in_force_dpas", today), build)
        return pairs

    @property
    def rules(self) -> Snapshot:
        """What the guard's rules run over: its snapshot, else (pages read from the tables) one built from the
        documents, once."""
        if self.snapshot is not None:
            return self.snapshot
        if "rules" not in self._memo:
            published = (self.controller or {}).get("published_purposes")
            self._memo["rules"] = ui_views.rules_snapshot(self.chains, self.agreement_docs.values(), published)
        rules: Snapshot = self._memo["rules"]
        return rules

    def party_status(self, key: str, today: date, window: int) -> str:
        """The party's status by the guard's rules over its whole chain (views.party_status)."""
        party = self.party_docs[key]
        return ui_views.party_status(key, party, self.agreements_by_party.get(key, []), self.rules, today, window)

    @property
    def chains(self) -> Mapping[str, PartyView]:
        """Every party's guard view (what chains and places are walked over)."""
        if self.snapshot is not None:
            return self.snapshot.parties
        if "chains" not in self._memo:
            self._memo["chains"] = ui_views.party_views(self.party_docs)
        chains: Mapping[str, PartyView] = self._memo["chains"]
        return chains

    async def expiring(self, today: date, window: int) -> list[dict[str, Any]]:
        """The agreements expiring within `window` days, soonest first (the dashboard's list)."""

        async def build() -> list[dict[str, Any]]:
            states = await self.agreement_states(today, window)
            found = [a for a in self.agreement_docs.values() if states[a["key"]] == "expiring"]
            return sorted(found, key=lambda a: a["expires_on"])

        found: list[dict[str, Any]] = await self.memo(("expiring", today, window), build)
        return found

    async def agreement_states(self, today: date, window: int) -> dict[str, str]:
        """Every agreement's state (views.agreement_state) by key, for the list's filter on it."""

        async def build() -> dict[str, str]:
            docs = list(self.agreement_docs.values())
            states = await in_slices(docs, lambda a: ui_views.agreement_state(a, today, window))
            return {a["key"]: state for a, state in zip(docs, states, strict=True)}

        states: dict[str, str] = await self.memo(("agreement_states", today, window), build)
        return states

    async def outside_counts(self, end: date | None = None) -> dict[str, int]:
        """Each party's number of transfers in the Art. 30 record for a period ending on `end` (default today): its
        and its chain's places outside the EEA, international organisations and agreements permitting transfers."""
        snapshot = self.snapshot
        if snapshot is None:
            return {}
        today = ui_views.controller_today(self.controller)
        as_of = today if end is None else min(end, today)

        def count(key: str) -> int:
            party = snapshot.parties[key]
            return len(third_country_transfers(party, snapshot, territories(party, snapshot.parties), as_of))

        async def build() -> dict[str, int]:
            keys = list(snapshot.parties)
            counts = await in_slices(keys, count)
            return dict(zip(keys, counts, strict=True))

        counts: dict[str, int] = await self.memo(("outside_counts", as_of), build)
        return counts

    async def unapproved(self, today: date) -> list[dict[str, Any]]:
        """Every sub-processor link not in effect today (views.unapproved_links), in slices."""

        async def build() -> list[dict[str, Any]]:
            per_party = await in_slices(self.party_docs.values(), lambda p: ui_views.unapproved_links({"": p}, today))
            return [u for found in per_party for u in found]

        found: list[dict[str, Any]] = await self.memo(("unapproved", today), build)
        return found

    async def users_of(self, key: str) -> list[dict[str, Any]]:
        """The parties that engage `key` as a sub-processor (by a reverse index of the links, built once)."""

        async def build() -> dict[str, list[str]]:
            index: dict[str, list[str]] = {}

            def add(party: dict[str, Any]) -> None:
                for link in party["sub_processors"]:
                    index.setdefault(link["party"], []).append(party["key"])

            await in_slices(self.party_docs.values(), add)
            return index

        index: dict[str, list[str]] = await self.memo("users", build)
        return [self.party_docs[k] for k in index.get(key, [])]

    async def party_rows(
        self, keys: Iterable[str], today: date, window: int, row: Callable[[str], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """`row(key)` of each key (the parties list's rows: status and places), kept per day and window."""
        rows: dict[str, dict[str, Any]] = self._memo.setdefault(("party_rows", today, window), {})

        def one(key: str) -> dict[str, Any]:
            if key not in rows:
                rows[key] = row(key)
            return rows[key]

        return await in_slices(keys, one)


_views: dict[int, tuple[Snapshot, RegistryView]] = {}


async def read_controller(session: AsyncSession) -> dict[str, Any] | None:
    return controller_document(await session.get(ControllerProfile, 1))


async def registry_view(request: Request[Any, Any, Any], session: AsyncSession) -> RegistryView:
    """The registry the guard of this instance decides on, as pages read it (see the module's docstring); the
    tables when the guard holds no usable snapshot."""
    controller = await read_controller(session)
    refresher = services_of(request.app).snapshots
    try:
        snapshot = refresher.usable().snapshot if refresher is not None else None
    except SnapshotUnavailable:
        snapshot = None
    if snapshot is None:
        state = await load_registry(session)
        by_party: dict[str, list[dict[str, Any]]] = {}
        for a in state.agreement_docs.values():
            by_party.setdefault(a["party"], []).append(a)
        return RegistryView(None, state.controller, state.party_docs, state.agreement_docs, by_party)
    cached = _views.get(id(snapshot))
    if cached is not None and cached[0] is snapshot:
        return replace(cached[1], controller=controller)  # the same documents and memo, today's profile
    parties = await in_slices(sorted(snapshot.parties.values(), key=lambda p: p.key), party_document)
    agreements: dict[str, dict[str, Any]] = {}
    by_party = {}
    for key, views in snapshot.agreements_by_party.items():
        docs = [agreement_document(v) for v in views]
        by_party[key] = docs
        agreements.update((d["key"], d) for d in docs)
        if len(agreements) % SLICE < len(docs):
            await asyncio.sleep(0)
    view = RegistryView(snapshot, controller, {p["key"]: p for p in parties}, agreements, by_party)
    _views.clear()  # one snapshot's view at a time: the current one
    _views[id(snapshot)] = (snapshot, view)
    return view
