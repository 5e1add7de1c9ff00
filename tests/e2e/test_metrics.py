"""GET /metrics on the running service: Prometheus text, read from the counters the guard keeps; a key with
`metrics:read` (or `admin`) may scrape, a guard key may not."""

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    SEED_ALLOWED_SHARE,
    bearer,
    make_key,
)
from tests.e2e.running_service import running_service
from tests.outage import relayed
from web.api_keys import KEY_CACHE_SECONDS

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
    assert scraped.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"

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
    # Two single checks and one batch were answered: the latency histogram has three observations.
    assert samples[("guard_check_duration_seconds_count", ())] == 3
    assert samples[("guard_check_duration_seconds_bucket", (("le", "+Inf"),))] == 3
    assert samples[("guard_check_duration_seconds_sum", ())] > 0
    # Each process's own figures, labelled with its pid: the guard role's and the web role's (the workers of
    # `--workers N` each have theirs), not the supervisor's.
    cpu = [labels for (name, labels) in samples if name == "process_cpu_seconds_total"]
    resident = [labels for (name, labels) in samples if name == "process_resident_memory_bytes"]
    assert len(cpu) == 2 and len(resident) == 2 and all(dict(labels)["pid"].isdigit() for labels in cpu)


async def test_an_admin_key_may_scrape_metrics(service, seeded_service_database):
    admin = bearer(await make_key(seeded_service_database, "metrics-admin", "admin"))
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
        scraped = await http.get("/metrics", headers=admin)
    assert scraped.status_code == 200
    assert "guard_decisions_total" in scraped.text


async def test_metrics_answer_while_the_database_is_down_and_say_so(seeded_service_database, tmp_path: Path):
    scraper = bearer(await make_key(seeded_service_database, "prometheus-outage", "metrics:read"))
    guard = bearer(await make_key(seeded_service_database, "guard-outage", "guard:check"))
    with relayed(seeded_service_database) as relay, running_service(relay.url, tmp_path) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            assert (await http.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=guard)).status_code == 200
            before = await http.get("/metrics", headers=scraper)
            relay.cut()
            during = [await http.get("/metrics", headers=scraper)]
            await asyncio.sleep(KEY_CACHE_SECONDS + 1)  # past the key cache's time: its lookup now fails too
            during += [await http.get("/metrics", headers=scraper) for _ in range(2)]
            refused = await http.get("/metrics", headers=guard)
            relay.restore()
    assert before.status_code == 200 and _samples(before.text)[("registry_database_up", ())] == 1
    assert [answer.status_code for answer in during] == [200, 200, 200], during[-1].text
    samples = _samples(during[-1].text)
    assert samples[("registry_database_up", ())] == 0
    assert samples[("guard_decisions_total", (("outcome", "allowed"),))] == 1  # the counts survive the outage
    assert ("reminder_queue_depth", ()) not in samples
    assert refused.status_code in (401, 403, 503)  # a key that may not scrape is not let in by the outage
