"""One subject key for every instance of a registry (issue 33, finding 2), on the real PostgreSQL: the database
records the key's fingerprint; an instance with another key, or with none, refuses to start (it never makes
one of its own), so no instance allows a share another denies as SUBJECT_OBJECTED."""

import asyncio
import shutil
from pathlib import Path

import asyncpg
from click.testing import CliRunner
from litestar.testing import AsyncTestClient

from cli.main import main
from guard.subjects import KEY_FILE_NAME, SubjectKeyError
from tests.conftest import bearer, make_key, test_settings
from tests.integration.test_decision_log import plain_url
from tests.integration.test_objections import MARKETING, PERSON, codes, objection
from web.app import create_app


def instance(database: str, data_dir: Path):
    """An instance of the registry with its own data folder (a second host, or a restore without the key)."""
    return create_app(test_settings(database, data_dir=data_dir, log_signing_key_file=data_dir / "log.key"))


def _subject_key_error(exc: BaseException) -> SubjectKeyError | None:
    if isinstance(exc, SubjectKeyError):
        return exc
    for inner in getattr(exc, "exceptions", ()):  # (the test client's task group wraps what the lifespan raised)
        found = _subject_key_error(inner)
        if found is not None:
            return found
    return None


async def refusal_to_start(app) -> str:
    """Why the instance did not start (its SubjectKeyError); fails the test if it started."""
    try:
        async with AsyncTestClient(app):
            pass
    except BaseException as exc:
        found = _subject_key_error(exc)
        if found is None:
            raise
        return str(found)
    raise AssertionError("the instance started")


async def fingerprints(database: str) -> list[str]:
    connection = await asyncpg.connect(plain_url(database))
    try:
        return [row["fingerprint"] for row in await connection.fetch("SELECT fingerprint FROM guard_subject_key")]
    finally:
        await connection.close()


async def test_a_second_instance_without_the_registrys_key_refuses_to_start_instead_of_allowing_an_objected_share(
    seeded_database, tmp_path, writer_headers
):
    guard = bearer(await make_key(seeded_database, "webshop", "guard:check"))
    first, second = tmp_path / "first", tmp_path / "second"
    async with AsyncTestClient(instance(seeded_database, first)) as client:
        recorded = await client.post("/api/objections", json=objection(), headers=writer_headers)
        assert recorded.status_code == 201, recorded.text
        denied = await client.post("/api/guard/check", json={**MARKETING, "subject_ref": PERSON}, headers=guard)
        assert codes(denied.json()) == {"SUBJECT_OBJECTED"}
    assert len(await fingerprints(seeded_database)) == 1

    # Its own data folder, no key in it: it does not start, and makes no key.
    assert "is not here" in await refusal_to_start(instance(seeded_database, second))
    assert not (second / KEY_FILE_NAME).exists()

    # Another key of its own: it does not start either.
    second.mkdir(parents=True, exist_ok=True)
    (second / KEY_FILE_NAME).write_text("ab" * 32 + "\n")
    assert "is not the registry's" in await refusal_to_start(instance(seeded_database, second))

    # Provisioned with the first instance's key file, it starts and denies as the first did.
    shutil.copy(first / KEY_FILE_NAME, second / KEY_FILE_NAME)
    async with AsyncTestClient(instance(seeded_database, second)) as client:
        denied = await client.post("/api/guard/check", json={**MARKETING, "subject_ref": PERSON}, headers=guard)
        assert denied.status_code == 200, denied.text
        assert codes(denied.json()) == {"SUBJECT_OBJECTED"}
    assert len(await fingerprints(seeded_database)) == 1


async def test_the_command_line_without_the_registrys_key_exits_2_saying_how_to_provision_it(seeded_database, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    async with AsyncTestClient(instance(seeded_database, first)):
        pass  # records the fingerprint of the first instance's key
    environment = {"REGISTRY_DATABASE_URL": plain_url(seeded_database), "REGISTRY_DATA_DIR": str(second)}
    arguments = ["guard", "check", "--recipient", "kvarnberg", "--purpose", MARKETING["purpose"]]
    arguments += ["--category", "user.name", "--data-subject", "customer", "--subject-ref", PERSON]
    result = await asyncio.to_thread(CliRunner().invoke, main, arguments, env=environment)
    assert result.exit_code == 2, result.output
    assert "is not here" in result.stderr and "REGISTRY_SUBJECT_KEY" in result.stderr
    assert not (second / KEY_FILE_NAME).exists()
