"""Health probes: the only endpoints without authentication."""

from typing import Any

from litestar import Controller, get
from litestar.datastructures import State
from litestar.response import Response
from sqlalchemy import text


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", exclude_from_auth=True)
    async def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", exclude_from_auth=True)
    async def ready(self, state: State) -> Response[dict[str, Any]]:
        # An instance whose guard cannot decide is not ready: the load balancer should send checks elsewhere.
        snapshots = getattr(state, "guard_snapshots", None)
        guard = snapshots.describe() if snapshots is not None else {"status": "not started"}
        objections = getattr(state, "guard_objections", None)
        if objections is not None:
            # Shown, not counted in the status: only checks naming a person need it (they answer 503 without).
            guard["objections"] = objections.describe()
            guard["restrictions"] = state.guard_restrictions.describe()  # (started beside the objections)
        try:
            async with state.sessionmaker() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # any failure to reach the database means "not ready"
            body = {"status": "unavailable", "database": type(exc).__name__, "guard": guard}
            return Response(body, status_code=503)
        if guard["status"] != "ok":
            return Response({"status": "unavailable", "database": "ok", "guard": guard}, status_code=503)
        return Response({"status": "ok", "database": "ok", "guard": guard})
