"""The registry as the UI's pages read it: this instance's guard snapshot, not the tables.

Every page used to load the whole registry through the ORM (10,000 parties and 30,000 agreements: seconds on the
event loop the guard answers on, for each page). The guard already holds the registry in memory, kept current
by its refresher (a change applied within a fraction of a second, a write through this instance obeyed before
it returns), and it is exactly what the guard decides on: pages now show that. What pages need of the whole
registry (the documents of the parties and agreements, each party's agreement status and places, the
findings) is worked out from a snapshot once and kept with it, in slices with the loop's other work between
them, so that no guard check waits for more than a slice. A new snapshot (a registry change) starts afresh.

At 10,000 parties that first view still took seconds of the web role's loop. For a registry that size the
first-view worker (web/ui/first_view.py) prepares it instead, off the loop: it reads the registry at the
snapshot's revision and runs `RegistryView.warm` (web/ui/snapshot_view.py) there, as soon as it changes; a
page takes what it hands back only for the snapshot of the revision it read, once it is there (else: not ready
yet, failed, or another revision, the page works it out here as before, without waiting for the worker).

When the guard holds no usable snapshot (not loaded yet, or too old to trust), a page reads the tables as before.
"""

from dataclasses import replace
from typing import Any

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from guard.policy import Snapshot
from guard.snapshot import LoadedSnapshot, SnapshotUnavailable
from registry.models.controller import ControllerProfile
from registry.services.documents import controller_document, load_registry
from web.composition import services_of
from web.ui import views as ui_views
from web.ui.first_view import FirstViews
from web.ui.registry_walks import SLICE, agreement_document, in_slices, party_document
from web.ui.snapshot_view import RegistryView

__all__ = ["SLICE", "RegistryView", "agreement_document", "in_slices", "party_document", "registry_view"]


_views: dict[int, tuple[Snapshot, RegistryView]] = {}


async def read_controller(session: AsyncSession) -> dict[str, Any] | None:
    return controller_document(await session.get(ControllerProfile, 1))


async def registry_view(request: Request[Any, Any, Any], session: AsyncSession) -> RegistryView:
    """The registry the guard of this instance decides on, as pages read it (see the module's docstring); the
    tables when the guard holds no usable snapshot."""
    controller = await read_controller(session)
    refresher = services_of(request.app).snapshots
    try:
        loaded = refresher.usable() if refresher is not None else None
    except SnapshotUnavailable:
        loaded = None
    if loaded is None:
        state = await load_registry(session)
        by_party: dict[str, list[dict[str, Any]]] = {}
        for a in state.agreement_docs.values():
            by_party.setdefault(a["party"], []).append(a)
        return RegistryView(None, state.controller, state.party_docs, state.agreement_docs, by_party)
    snapshot = loaded.snapshot
    cached = _views.get(id(snapshot))
    if cached is not None and cached[0] is snapshot:
        return replace(cached[1], controller=controller)  # the same documents and memo, today's profile
    view = await prepared_view(services_of(request.app).first_views, loaded, controller)
    if view is None:
        view = await RegistryView.of_snapshot(snapshot, controller)
    cached = _views.get(id(snapshot))
    if cached is not None and cached[0] is snapshot:  # another page built it meanwhile: one view a snapshot
        return replace(cached[1], controller=controller)
    _views.clear()  # one snapshot's view at a time: the current one
    _views[id(snapshot)] = (snapshot, view)
    return view


async def prepared_view(
    first_views: FirstViews | None, loaded: LoadedSnapshot, controller: dict[str, Any] | None
) -> RegistryView | None:
    """The view of `loaded` from what the first-view worker prepared for its revision and the controller's today,
    once it is ready (never awaited); None when there is no worker here (the guard role), the registry is too small
    to be worth it, or the worker has not finished, failed, or read another revision or day: then the page works
    it out on the loop."""
    if first_views is None or not first_views.worth_it(loaded.snapshot):
        return None
    prepared = first_views.prepared_for(loaded.revision, ui_views.controller_today(controller))
    if prepared is None:
        return None
    return RegistryView(
        loaded.snapshot,
        controller,
        prepared.party_docs,
        prepared.agreement_docs,
        prepared.agreements_by_party,
        prepared_revision=prepared.revision,
        _memo=dict(prepared.memo),
    )
