"""GET /metrics on the running service: Prometheus text, read from the counters the guard keeps; a key with
`metrics:read` (or `admin`) may scrape, a guard key may not."""

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    RUN_ID,
    SEED_ALLOWED_SHARE,
    bearer,
    create_database,
    database_url,
    drop_database,
    load_document,
    make_key,
    seed_document,
)
from tests.e2e.running_service import RunningService, running_service

DENIED = {**SEED_ALLOWED_SHARE, "recipient": "no-such-party"}
OUTSIDE_EEA = {**SEED_ALLOWED_SHARE, "destination": "US"}


@pytest.fixture(scope="module")
async def metrics_database(template_database: str) -> AsyncIterator[str]:
    name = f"registry_test_{RUN_ID}_metrics_{uuid.uuid4().hex[:6]}"
    await create_database(name, template=template_database)
    try:
        url = database_url(name)
        await load_document(url, seed_document(), actor="seed")
        yield url
    finally:
        await drop_database(name)


@pytest.fixture(scope="module")
def service(metrics_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with running_service(metrics_database, tmp_path_factory.mktemp("serve")) as running:
        yield running


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_the_decisions_their_deny_reasons_and_the_commits(service, metrics_database):
    guard = bearer(await make_key(metrics_database, "metrics-guard", "guard:check"))
    scraper = bearer(await make_key(metrics_database, "prometheus", "metrics:read"))
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
        answers = [await http.post("/api/guard/check", json=s, headers=guard) for s in (SEED_ALLOWED_SHARE, DENIED)]
        batch = await http.post("/api/guard/check-batch", json=[SEED_ALLOWED_SHARE, OUTSIDE_EEA, DENIED], headers=guard)
        scraped = await http.get("/metrics", headers=scraper)
        refused = await http.get("/metrics", headers=guard)
        anonymous = await http.get("/metrics")
    assert [a.status_code for a in answers] == [200, 200] and batch.status_code == 200
    assert [a["allowed"] for a in batch.json()] == [True, False, False]
    assert (refused.status_code, anonymous.status_code) == (403, 401)
    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")

    samples = _samples(scraped.text)
    assert samples[("guard_decisions_total", (("outcome", "allowed"),))] == 2
    assert samples[("guard_decisions_total", (("outcome", "denied"),))] == 3
    assert samples[("guard_deny_reasons_total", (("code", "RECIPIENT_UNKNOWN"),))] == 2
    assert samples[("guard_deny_reasons_total", (("code", "DESTINATION_OUTSIDE_EEA"),))] == 1
    assert samples[("guard_unavailable_total", ())] == 0
    # Every decision went through a group commit: the batch-size histogram adds up to the five decisions.
    assert samples[("guard_decision_log_batch_size_sum", ())] == 5
    commits = samples[("guard_decision_log_batch_size_count", ())]
    assert 2 <= commits <= 5
    assert samples[("guard_decision_log_commit_seconds_count", ())] == commits
    assert samples[("guard_snapshot_loaded", ())] == 1
    assert samples[("guard_snapshot_revision", ())] >= 1
    assert samples[("guard_snapshot_age_seconds", ())] >= 0
    assert samples[("reminder_queue_depth", ())] == 0
    assert samples[("registry_database_up", ())] == 1


async def test_an_admin_key_may_scrape_metrics(service, metrics_database):
    admin = bearer(await make_key(metrics_database, "metrics-admin", "admin"))
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
        scraped = await http.get("/metrics", headers=admin)
    assert scraped.status_code == 200
    assert "guard_decisions_total" in scraped.text
