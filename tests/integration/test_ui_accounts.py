"""UI accounts on the real PostgreSQL: sign-in throttling by address and by account (growing delays, no lock-out,
the same answer for unknown and known e-mails), and administration without a developer (password reset, role,
disable and enable, unlock, revoking feeds and keys, all of it in a history; changing one's own password)."""

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.columns import utcnow
from kernel.db import make_engine, make_sessionmaker
from registry.services.users import (
    ACCOUNT_MAX_DELAY,
    ADDRESS_FREE_FAILURES,
    FREE_FAILURES,
    account_key,
    address_key,
    create_user,
    log_in,
    unlock_user,
)
from tests.ui_session import PASSWORD, as_user, csrf_token, post_form
from tests.ui_session import log_in as ui_log_in

T0 = utcnow().replace(microsecond=0)


@asynccontextmanager
async def transaction(url: str) -> AsyncIterator[AsyncSession]:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


async def attempt(url: str, email: str, password: str, address: str, seconds: float) -> Any:
    async with transaction(url) as session:
        return await log_in(session, email, password, address, now=T0 + timedelta(seconds=seconds))


@pytest.fixture
async def accounts(database: str) -> str:
    async with transaction(database) as session:
        await create_user(session, "ada@offix.example", "admin", PASSWORD, "test")
        await create_user(session, "lena@offix.example", "legal", PASSWORD, "test")
    return database


async def account_wait(url: str, email: str, seconds: float) -> float:
    """How long after `seconds` the account's next try must wait (0 when it may try at once)."""
    async with transaction(url) as session:
        next_try = (
            await session.execute(
                text("SELECT next_try_at FROM ui_login_throttle WHERE key = :key"), {"key": account_key(email)}
            )
        ).scalar_one_or_none()
    return max(0.0, (next_try - (T0 + timedelta(seconds=seconds))).total_seconds()) if next_try else 0.0


async def test_wrong_passwords_slow_an_account_down_with_growing_delays_that_stop_growing(accounts: str) -> None:
    # Each try from a new address: only the account's own count is at work. Each try waits as long as it must.
    waits, clock = [], 0.0
    for n in range(FREE_FAILURES + 8):
        result = await attempt(accounts, "ada@offix.example", "wrong", f"10.0.0.{n}", clock)
        assert result.token is None and result.wait_seconds == 0
        waits.append(await account_wait(accounts, "ada@offix.example", clock))
        if waits[-1]:
            early = await attempt(accounts, "ada@offix.example", PASSWORD, f"10.0.1.{n}", clock)
            assert early.token is None and early.wait_seconds == waits[-1]
        clock += waits[-1]
    assert waits[: FREE_FAILURES - 1] == [0] * (FREE_FAILURES - 1)
    growing = waits[FREE_FAILURES - 1 :]
    assert growing[:4] == [1, 2, 4, 8]
    assert max(growing) == ACCOUNT_MAX_DELAY.total_seconds() == growing[-1]
    # Never a lock-out: once the wait is over, the right password signs in at once.
    signed_in = await attempt(accounts, "ada@offix.example", PASSWORD, "10.0.2.1", clock)
    assert signed_in.token is not None


async def test_the_right_password_is_not_even_checked_while_the_account_must_wait(accounts: str) -> None:
    for n in range(FREE_FAILURES):
        await attempt(accounts, "lena@offix.example", "wrong", f"10.1.0.{n}", 0)
    early = await attempt(accounts, "lena@offix.example", PASSWORD, "10.1.1.1", 0)
    assert early.token is None and early.wait_seconds == 1


async def test_a_burst_of_concurrent_guesses_is_counted_one_by_one(accounts: str) -> None:
    burst = await asyncio.gather(
        *(attempt(accounts, "lena@offix.example", "wrong", f"10.5.0.{n}", 0) for n in range(FREE_FAILURES + 5))
    )
    assert sum(1 for r in burst if r.wait_seconds == 0) == FREE_FAILURES
    assert all(r.token is None for r in burst)


async def test_an_unknown_e_mail_is_answered_exactly_like_a_known_one(accounts: str) -> None:
    def answers(email: str, prefix: str) -> Any:
        async def run() -> list[Any]:
            out = []
            for n in range(FREE_FAILURES + 2):
                out.append(await attempt(accounts, email, "wrong", f"{prefix}.{n}", n * 0.1))
            return out

        return run()

    known = await answers("lena@offix.example", "10.2.0")
    unknown = await answers("nobody@offix.example", "10.3.0")
    assert known == unknown
    assert [r.wait_seconds for r in known][-1] > 0


async def test_a_few_wrong_passwords_from_a_shared_address_do_not_hold_up_the_admins_right_one(accounts: str) -> None:
    """Issue 33, finding 7: three colleagues' typos behind one office address used to throttle the address, and
    with it the admin's correct password. An address is throttled on its own, far larger, allowance."""
    office = "192.0.2.10"
    for n in range(FREE_FAILURES):
        assert (await attempt(accounts, f"colleague{n}@offix.example", "typo", office, 0)).wait_seconds == 0
    admin = await attempt(accounts, "ada@offix.example", PASSWORD, office, 0)
    assert admin.token is not None and admin.wait_seconds == 0


async def test_one_address_guessing_at_many_accounts_is_slowed_and_the_accounts_stay_open(accounts: str) -> None:
    guesser = "192.0.2.66"
    emails = [f"user{n}@offix.example" for n in range(ADDRESS_FREE_FAILURES)] + ["lena@offix.example"]
    for email in emails[:-1]:
        await attempt(accounts, email, "wrong", guesser, 0)
    slowed = await attempt(accounts, emails[-1], PASSWORD, guesser, 0)
    assert slowed.token is None and slowed.wait_seconds == 1
    # Lena, from her own address, is not slowed by someone else's guessing.
    from_elsewhere = await attempt(accounts, "lena@offix.example", PASSWORD, "198.51.100.7", 0)
    assert from_elsewhere.token is not None


async def test_an_admin_unlock_lifts_an_accounts_throttle_at_once(accounts: str) -> None:
    for n in range(FREE_FAILURES + 3):
        await attempt(accounts, "lena@offix.example", "wrong", f"10.4.0.{n}", n * 100)
    assert (await attempt(accounts, "lena@offix.example", PASSWORD, "10.4.1.1", 300)).wait_seconds > 0
    async with transaction(accounts) as session:
        await unlock_user(session, "lena@offix.example", "ada@offix.example")
    assert (await attempt(accounts, "lena@offix.example", PASSWORD, "10.4.1.1", 300)).token is not None


def test_registry_user_unlock_lifts_the_throttle_from_the_command_line(accounts: str) -> None:
    async def throttle() -> None:
        async with transaction(accounts) as session:
            await session.execute(
                text(
                    "INSERT INTO ui_login_throttle (key, failures, next_try_at, last_failure_at)"
                    " VALUES (:key, 9, now() + interval '1 minute', now())"
                ),
                {"key": account_key("lena@offix.example")},
            )

    asyncio.run(throttle())
    env = {**os.environ, "REGISTRY_DATABASE_URL": accounts, "REGISTRY_SCHEDULER_ENABLED": "false"}
    run = [sys.executable, "-m", "cli", "user", "unlock"]
    done = subprocess.run([*run, "lena@offix.example"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unlocked lena@offix.example"
    unknown = subprocess.run([*run, "nobody@offix.example"], env=env, capture_output=True, text=True, timeout=120)
    assert unknown.returncode != 0 and "nobody@offix.example" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    async def remaining() -> int:
        async with transaction(accounts) as session:
            return int((await session.execute(text("SELECT count(*) FROM ui_login_throttle"))).scalar_one())

    assert asyncio.run(remaining()) == 0


# --- over HTTP ----------------------------------------------------------------------------------------------


async def throttle_row(url: str, key: str) -> None:
    async with transaction(url) as session:
        await session.execute(
            text(
                "INSERT INTO ui_login_throttle (key, failures, next_try_at, last_failure_at)"
                " VALUES (:key, 9, now() + interval '1 minute', now())"
            ),
            {"key": key},
        )


async def test_a_throttled_sign_in_is_a_429_with_retry_after_in_the_same_words_for_any_e_mail(
    ui_client: Any, seeded_database: str
) -> None:
    await throttle_row(seeded_database, account_key("lena@offix.example"))
    await throttle_row(seeded_database, account_key("nobody@offix.example"))
    known = await ui_log_in(ui_client, "lena@offix.example")
    unknown = await ui_log_in(ui_client, "nobody@offix.example")
    assert known.status_code == unknown.status_code == 429
    assert 0 < int(known.headers["retry-after"]) <= 60
    assert "Too many failed sign-ins" in known.text and "locked" not in known.text
    assert known.text.replace("lena@offix.example", "") == unknown.text.replace("nobody@offix.example", "")
    # Another account from the same client is not held up by Lena's.
    assert (await ui_log_in(ui_client, "olle@offix.example")).status_code == 303


async def test_a_throttled_client_address_is_held_up_for_every_account(ui_client: Any, seeded_database: str) -> None:
    await throttle_row(seeded_database, address_key("127.0.0.1"))
    await throttle_row(seeded_database, address_key("testclient"))
    assert (await ui_log_in(ui_client, "olle@offix.example")).status_code == 429


async def test_an_admin_unlocks_an_account_from_the_users_page(ui_client: Any, seeded_database: str) -> None:
    await throttle_row(seeded_database, account_key("lena@offix.example"))
    await as_user(ui_client, "ada@offix.example")
    admin = await ui_client.get("/ui/admin")
    assert "sign-ins throttled until" in admin.text and "Unlock lena@offix.example" in admin.text
    unlocked = await post_form(ui_client, "/ui/admin", "/ui/admin/users/unlock", {"email": "lena@offix.example"})
    assert unlocked.status_code == 303
    after = await ui_client.get("/ui/admin?done=unlocked")
    assert "sign-ins throttled until" not in after.text and "throttle was lifted" in after.text
    ui_client.cookies.clear()
    assert (await ui_log_in(ui_client, "lena@offix.example")).status_code == 303


async def test_an_admin_resets_a_password_and_the_user_must_choose_a_new_one(ui_client: Any) -> None:
    await as_user(ui_client, "ada@offix.example")
    reset = await post_form(ui_client, "/ui/admin", "/ui/admin/users/reset-password", {"email": "lena@offix.example"})
    assert reset.status_code == 200 and "it is not shown again" in reset.text
    temporary = reset.text.split('id="temporary-password">', 1)[1].split("<", 1)[0]
    assert len(temporary) >= 12
    ui_client.cookies.clear()
    assert (await ui_log_in(ui_client, "lena@offix.example")).status_code == 401  # the old password is gone
    signed_in = await ui_log_in(ui_client, "lena@offix.example", temporary)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui/account/password"
    # Every other page leads to the password form until a new password is chosen.
    for path in ("/ui/", "/ui/parties/new", "/ui/admin"):
        detour = await ui_client.get(path, follow_redirects=False)
        assert detour.status_code == 303 and detour.headers["location"] == "/ui/account/password", path
    form = await ui_client.get("/ui/account/password")
    assert "An administrator reset your password" in form.text
    changed = await ui_client.post(
        "/ui/account/password",
        data={
            "current_password": temporary,
            "new_password": "my very own new password",
            "confirm_password": "my very own new password",
            "_csrf_token": csrf_token(form.text),
        },
        follow_redirects=False,
    )
    assert changed.status_code == 303
    assert (await ui_client.get("/ui/parties/new")).status_code == 200
    ui_client.cookies.clear()
    assert (await ui_log_in(ui_client, "lena@offix.example", "my very own new password")).status_code == 303


async def test_a_user_changes_their_own_password_and_their_other_sessions_end(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    first_session = ui_client.cookies.get("registry_session")
    ui_client.cookies.clear()
    await as_user(ui_client, "olle@offix.example")
    wrong = await post_form(
        ui_client,
        "/ui/account/password",
        "/ui/account/password",
        {"current_password": "not it", "new_password": "short", "confirm_password": "other"},
    )
    assert wrong.status_code == 400
    assert "current password is not right" in wrong.text and "at least 12 characters" in wrong.text
    done = await post_form(
        ui_client,
        "/ui/account/password",
        "/ui/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "a new password of mine",
            "confirm_password": "a new password of mine",
        },
    )
    assert done.status_code == 200 and "Your password is changed" in done.text
    assert (await ui_client.get("/ui/")).status_code == 200  # this session goes on
    ui_client.cookies.clear()
    ui_client.cookies.set("registry_session", first_session)
    assert (await ui_client.get("/ui/", follow_redirects=False)).status_code == 303  # the other one ended


async def test_an_admin_changes_a_role_disables_and_enables_a_user_and_reuses_a_disabled_e_mail(
    ui_client: Any,
) -> None:
    await as_user(ui_client, "ada@offix.example")
    role = await post_form(
        ui_client, "/ui/admin", "/ui/admin/users/role", {"email": "olle@offix.example", "role": "legal"}
    )
    assert role.status_code == 303
    disabled = await post_form(ui_client, "/ui/admin", "/ui/admin/users/disable", {"email": "olle@offix.example"})
    assert disabled.status_code == 303
    enabled = await post_form(ui_client, "/ui/admin", "/ui/admin/users/enable", {"email": "olle@offix.example"})
    assert enabled.status_code == 303
    await post_form(ui_client, "/ui/admin", "/ui/admin/users/disable", {"email": "lena@offix.example"})
    reused = await post_form(
        ui_client,
        "/ui/admin",
        "/ui/admin/users",
        {"email": "lena@offix.example", "role": "ops", "password": "lenas second password"},
    )
    assert reused.status_code == 303
    history = (await ui_client.get("/ui/admin")).text.split('id="h-admin-history"', 1)[1]
    for line in ("change role → legal", "deactivate", "enable", "recreate → ops"):
        assert line in history, line
    ui_client.cookies.clear()
    await as_user(ui_client, "olle@offix.example")
    assert (await ui_client.get("/ui/parties/new")).status_code == 200  # legal now
    ui_client.cookies.clear()
    assert (await ui_log_in(ui_client, "lena@offix.example", "lenas second password")).status_code == 303


async def test_the_last_admin_can_be_neither_disabled_nor_demoted(ui_client: Any, seeded_database: str) -> None:
    async with transaction(seeded_database) as session:
        await create_user(session, "root@offix.example", "admin", PASSWORD, "test")
    await as_user(ui_client, "root@offix.example")
    await post_form(ui_client, "/ui/admin", "/ui/admin/users/disable", {"email": "ada@offix.example"})
    demoted = await post_form(
        ui_client, "/ui/admin", "/ui/admin/users/role", {"email": "root@offix.example", "role": "ops"}
    )
    assert demoted.status_code == 400 and "last active admin" in demoted.text


async def test_an_admin_revokes_a_calendar_feed_and_an_api_key_and_both_are_in_the_history(ui_client: Any) -> None:
    await as_user(ui_client, "ada@offix.example")
    created = await post_form(ui_client, "/ui/renewals", "/ui/renewals/feeds", {"feed_name": "legal-team"})
    feed_path = "/calendar/" + created.text.split("/calendar/", 2)[2].split(".ics", 1)[0] + ".ics"
    assert (await ui_client.get(feed_path)).status_code == 200
    key = await post_form(ui_client, "/ui/admin", "/ui/admin/api-keys", [("name", "crm"), ("scopes", "guard:check")])
    token = key.text.split('<code class="secret">', 1)[1].split("<", 1)[0]
    revoked = await post_form(ui_client, "/ui/admin", "/ui/admin/calendar-feeds/revoke", {"name": "legal-team"})
    assert revoked.status_code == 303
    assert (await ui_client.get(feed_path)).status_code == 404
    await post_form(ui_client, "/ui/admin", "/ui/admin/api-keys/revoke", {"name": "crm"})
    refused = await ui_client.get("/api/parties", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    history = (await ui_client.get("/ui/admin")).text.split('id="h-admin-history"', 1)[1]
    assert "calendar feed legal-team" in history and "api key crm" in history
    assert history.count("revoke") == 2 and "ada@offix.example" in history


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("/ui/admin/users/reset-password", {"email": "ada@offix.example"}),
        ("/ui/admin/users/role", {"email": "lena@offix.example", "role": "admin"}),
        ("/ui/admin/users/enable", {"email": "lena@offix.example"}),
        ("/ui/admin/users/unlock", {"email": "ada@offix.example"}),
        ("/ui/admin/calendar-feeds/revoke", {"name": "legal-team"}),
    ],
)
async def test_admin_actions_are_refused_to_a_legal_user(ui_client: Any, action: str, data: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    response = await post_form(ui_client, "/ui/parties/new", action, data)
    assert response.status_code == 403 and "Your role does not allow this" in response.text
