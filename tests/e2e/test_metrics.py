"""GET /metrics on the running service: Prometheus text, read from the counters the guard keeps; a key with
`metrics:read` (or `admin`) may scrape, a guard key may not."""

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    SEED_ALLOWED_SHARE,
    bearer,
    make_key,
)

DENIED = {**SEED_ALLOWED_SHARE, "recipient": "no-such-party"}
OUTSIDE_EEA = {**SEED_ALLOWED_SHARE, "destination": "US"}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_the_decisions_their_deny_reasons_and_the_commits(service, seeded_service_database):
    guard = bearer(await make_key(seeded_service_database, "metrics-guard", "guard:check"))
    scraper = bearer(await make_key(seeded_service_database, "prometheus", "metrics:read"))
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


async def test_an_admin_key_may_scrape_metrics(service, seeded_service_database):
    admin = bearer(await make_key(seeded_service_database, "metrics-admin", "admin"))
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
        scraped = await http.get("/metrics", headers=admin)
    assert scraped.status_code == 200
    assert "guard_decisions_total" in scraped.text
