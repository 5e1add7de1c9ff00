"""Health probes: the only endpoints without authentication."""

from typing import Any

from litestar import Controller, Request, get
from litestar.response import Response
from sqlalchemy import text

from web.composition import started_services
from web.contract import HealthLiveAnswer, HealthReadyAnswer, answers


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", exclude_from_auth=True, responses=answers(200, HealthLiveAnswer, "The process answers"))
    async def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get(
        "/ready",
        exclude_from_auth=True,
        responses={
            **answers(200, HealthReadyAnswer, "Ready: the database answers and the guard can decide"),
            **answers(503, HealthReadyAnswer, "Not ready: what is down"),
        },
    )
    async def ready(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        # An instance whose guard cannot decide is not ready: the load balancer should send checks elsewhere.
        services = started_services(request.app)
        if services is None:
            return Response({"status": "unavailable", "guard": {"status": "not started"}}, status_code=503)
        guard = services.snapshots.describe()
        # Shown, not counted in the status: only checks naming a person need them (they answer 503 without).
        guard["objections"] = services.objections.describe()
        guard["restrictions"] = services.restrictions.describe()
        try:
            async with services.sessionmaker() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # any failure to reach the database means "not ready"
            body = {"status": "unavailable", "database": type(exc).__name__, "guard": guard}
            return Response(body, status_code=503)
        # Evidence of tampering with the decision log: the guard fails closed until an operator resolves it.
        if services.evidence.problem is not None:
            guard = {**guard, "status": "unavailable", "evidence": services.evidence.describe()}
        if guard["status"] != "ok":
            return Response({"status": "unavailable", "database": "ok", "guard": guard}, status_code=503)
        return Response({"status": "ok", "database": "ok", "guard": guard})
