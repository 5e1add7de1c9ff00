"""Read your writes: a registry write is answered only once this instance's guard obeys it (under `registry serve`,
every process of its guard role: guard/obedience.py).

Every write raises the registry's revision in its transaction (kernel.db.notify_registry_changed); the session
remembers the revision it committed. Before the answer to such a request starts, this hook waits until this
instance's snapshot holds that revision, at most `write_visibility_timeout_seconds`. Past the bound the write has
still happened and is answered as such; the headers say which revision was written and which one the guard obeys,
so a client sees when the guard has not caught up (``Registry-Guard-Revision`` lower than ``Registry-Revision``).

Only this instance is waited for: other instances apply the same change from its notice within the propagation
time (bench/snapshot_propagation.py), each stays bound by its snapshot's age, and their `/health/ready` names the
revision they obey, for a client that must know.
"""

import asyncio
import logging
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope
from sqlalchemy.ext.asyncio import AsyncSession

from guard.obedience import Positions
from kernel.db import WRITTEN_REVISION
from web.composition import started_services

log = logging.getLogger(__name__)

REVISION_HEADER = "Registry-Revision"
GUARD_REVISION_HEADER = "Registry-Guard-Revision"
# Where a request's session info is kept in the ASGI scope's state, for the hook to read after the handler.
_SESSION_INFO = "registry_session_info"


def track_writes(scope: Scope, session: AsyncSession) -> None:
    """Let the answer to this request wait for what `session` commits."""
    scope.setdefault("state", {})[_SESSION_INFO] = session.info


def written_revision(scope: Scope) -> int | None:
    info: dict[str, Any] | None = scope.get("state", {}).get(_SESSION_INFO)
    return None if info is None else info.get(WRITTEN_REVISION)


async def wait_until_the_guard_obeys(message: Message, scope: Scope) -> None:
    """Litestar `before_send` hook: hold a committed write's answer until the guard obeys it, or the bound."""
    if message["type"] != "http.response.start":
        return
    revision = written_revision(scope)
    if revision is None:
        return
    services = started_services(scope["app"])
    if services is None:
        return
    bound = services.settings.write_visibility_timeout_seconds
    if services.guard_role is None:
        held = await services.snapshots.wait_for(revision, bound)
    else:
        # Under `registry serve` the checks are answered by the guard role's processes: the write waits for
        # every one of them (through the database, guard/obedience.py), and for this process's own snapshot,
        # which the pages that follow the write are drawn from.
        await asyncio.gather(
            services.guard_role.wait_for(Positions(registry=revision), bound),
            services.snapshots.wait_for(revision, bound),
        )
        held = services.guard_role.registry_revision()
    headers = MutableScopeHeaders.from_message(message)
    headers[REVISION_HEADER] = str(revision)
    headers[GUARD_REVISION_HEADER] = "none" if held is None else str(held)
    if held is None or held < revision:
        log.warning(
            "answered a write of registry revision %s before this instance's guard obeyed it (it holds %s)",
            revision,
            held,
        )
