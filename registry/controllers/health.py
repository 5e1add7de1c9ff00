"""Health probes: the only endpoints without authentication."""

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
    async def ready(self, state: State) -> Response[dict[str, str]]:
        try:
            async with state.sessionmaker() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # any failure to reach the database means "not ready"
            return Response({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        return Response({"status": "ok", "database": "ok"})
