"""One registry snapshot as the UI's pages read it (`RegistryView`): the documents of its parties and agreements,
and what pages work out of all of them, each built on first use and kept with the snapshot. Free of the app's
composition, so that the first-view worker (web/ui/first_view.py) runs the same code in its own process;
web/ui/registry_view.py finds the view of the snapshot a request's instance holds."""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from markupsafe import Markup, escape

from guard.policy import Snapshot
from guard.views import PartyView
from web.ui import registry_walks as walks
from web.ui import views as ui_views
from web.ui.registry_walks import in_slices
from web.ui.words import role_label


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
    # The registry revision whose first view the worker prepared these from (web/ui/first_view.py); None: worked
    # out here, on the loop.
    prepared_revision: int | None = None
    _memo: dict[Any, Any] = field(default_factory=dict)

    @classmethod
    async def of_snapshot(cls, snapshot: Snapshot, controller: dict[str, Any] | None) -> "RegistryView":
        """The view of `snapshot` with its documents built (in slices) and nothing else worked out yet."""
        party_docs = await walks.party_documents(snapshot).run_in_slices()
        agreement_docs, by_party = await walks.agreement_documents(snapshot).run_in_slices()
        return cls(snapshot, controller, party_docs, agreement_docs, by_party)

    async def warm(self, today: date, window: int) -> None:
        """Work out what the first views of a snapshot need of the whole registry (the dashboard's findings,
        expiring agreements and unapproved links, the agreements' states, the Art. 30 page's transfer counts,
        the index of who engages each sub-processor), as those views would: in the first-view worker, so that
        they find it done (web/ui/first_view.py)."""
        await self.rule_findings(today)
        await self.in_force_dpas(today)
        await self.expiring(today, window)
        await self.unapproved(today)
        await self.outside_counts()
        await self.users_of("")

    def memo_items(self) -> dict[Any, Any]:
        """What has been worked out so far, by key (what the worker hands back)."""
        return dict(self._memo)

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
        """The guard's findings for every active party (registry_walks.rule_findings), in slices."""
        snapshot = self.snapshot
        if snapshot is None:
            return []
        found: list[dict[str, Any]] = await self.memo(
            ("findings", today), lambda: walks.rule_findings(snapshot, today).run_in_slices()
        )
        return found

    async def in_force_dpas(self, today: date) -> list[tuple[str, str]]:
        """(agreement key, party key) of every dpa in force today with an active party (registry_walks)."""
        snapshot = self.snapshot
        if snapshot is None:
            return []
        pairs: list[tuple[str, str]] = await self.memo(
            ("in_force_dpas", today), lambda: walks.in_force_dpas(snapshot, today).run_in_slices()
        )
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
            return walks.expiring(self.agreement_docs, await self.agreement_states(today, window))

        found: list[dict[str, Any]] = await self.memo(("expiring", today, window), build)
        return found

    async def agreement_states(self, today: date, window: int) -> dict[str, str]:
        """Every agreement's state (views.agreement_state) by key, for the list's filter on it."""
        states: dict[str, str] = await self.memo(
            ("agreement_states", today, window),
            lambda: walks.agreement_states(self.agreement_docs, today, window).run_in_slices(),
        )
        return states

    async def outside_counts(self, end: date | None = None) -> dict[str, int]:
        """Each party's number of transfers in the Art. 30 record for a period ending on `end` (default today): its
        and its chain's places outside the EEA, international organisations and agreements permitting transfers."""
        snapshot = self.snapshot
        if snapshot is None:
            return {}
        today = ui_views.controller_today(self.controller)
        as_of = today if end is None else min(end, today)
        counts: dict[str, int] = await self.memo(
            ("outside_counts", as_of), lambda: walks.outside_counts(snapshot, as_of).run_in_slices()
        )
        return counts

    async def unapproved(self, today: date) -> list[dict[str, Any]]:
        """Every sub-processor link not in effect today (views.unapproved_links), in slices."""
        found: list[dict[str, Any]] = await self.memo(
            ("unapproved", today), lambda: walks.unapproved(self.party_docs, today).run_in_slices()
        )
        return found

    async def users_of(self, key: str) -> list[dict[str, Any]]:
        """The parties that engage `key` as a sub-processor (by a reverse index of the links, built once)."""
        index: dict[str, list[str]] = await self.memo(
            "users", lambda: walks.users_index(self.party_docs).run_in_slices()
        )
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
