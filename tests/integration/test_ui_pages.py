"""The web UI over HTTP: login, roles, CSRF, forms with errors next to their fields, conflicts, every page."""

import re
from typing import Any

import pytest

from tests.integration.registry_fixtures import ALL_CLAUSES
from tests.ui_session import PASSWORD, as_form, as_user, csrf_token, log_in, post_form


async def test_an_anonymous_page_request_is_redirected_to_the_login_page(ui_client: Any) -> None:
    response = await ui_client.get("/ui/parties?role=processor", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login?next=/ui/parties")
    root = await ui_client.get("/", follow_redirects=False)
    assert root.status_code == 303 and root.headers["location"] == "/ui/"


async def test_a_user_logs_in_sees_the_dashboard_and_logs_out(ui_client: Any) -> None:
    response = await log_in(ui_client, "lena@offix.example")
    assert response.status_code == 303 and response.headers["location"] == "/ui/"
    cookie = response.headers["set-cookie"]
    assert "registry_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    dashboard = await ui_client.get("/ui/")
    assert dashboard.status_code == 200 and "What needs attention" in dashboard.text
    logout = await ui_client.post(
        "/ui/logout", data={"_csrf_token": csrf_token(dashboard.text)}, follow_redirects=False
    )
    assert logout.status_code == 303
    after = await ui_client.get("/ui/", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/ui/login")


async def test_a_wrong_password_is_refused_in_the_same_words_as_an_unknown_e_mail(ui_client: Any) -> None:
    known = await log_in(ui_client, "lena@offix.example", "not the password")
    unknown = await log_in(ui_client, "nobody@offix.example", "not the password")
    assert known.status_code == unknown.status_code == 401
    assert "not right" in known.text and "locked" not in known.text
    assert known.text.replace("lena@offix.example", "") == unknown.text.replace("nobody@offix.example", "")


async def test_a_form_without_a_csrf_token_is_rejected(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    response = await ui_client.post("/ui/parties/new", data={"key": "x", "name": "X"}, follow_redirects=False)
    assert response.status_code == 403
    assert "security token" in response.text
    listing = await ui_client.get("/ui/parties?q=x")
    assert '/ui/parties/x"' not in listing.text


async def test_the_api_keeps_working_without_a_csrf_token(ui_client: Any, writer_headers: Any) -> None:
    response = await ui_client.post(
        "/api/parties",
        json={
            "key": "apitest",
            "name": "API Test",
            "role": "sub_processor",
            "category": "other",
            "established_in": "SE",
        },
        headers=writer_headers,
    )
    assert response.status_code == 201, response.text


async def test_a_session_cookie_does_not_authorise_api_calls(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    assert (await ui_client.get("/api/parties")).status_code == 401


async def test_ops_may_read_but_gets_403_on_edit_forms(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    assert (await ui_client.get("/ui/parties/nordfrakt")).status_code == 200
    assert (await ui_client.get("/ui/guard")).status_code == 200
    for path in (
        "/ui/parties/new",
        "/ui/parties/nordfrakt/edit",
        "/ui/agreements/new",
        "/ui/agreements/nordfrakt-dpa-2024/edit",
        "/ui/admin",
    ):
        response = await ui_client.get(path)
        assert response.status_code == 403, path
    page = await ui_client.get("/ui/parties")
    response = await ui_client.post(
        "/ui/parties/new", data={"key": "x", "name": "X", "_csrf_token": csrf_token(page.text)}
    )
    assert response.status_code == 403


async def test_validation_errors_appear_next_to_their_fields_in_plain_words(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    response = await post_form(
        ui_client,
        "/ui/parties/new",
        "/ui/parties/new",
        [
            ("key", "Bad Key"),
            ("name", ""),
            ("role", "processor"),
            ("category", "transport"),
            ("established_in", "USA"),
            ("active", "on"),
            ("loc_territory", "SE"),
            ("loc_kind", "storage"),
            ("loc_territory", "XX"),
            ("loc_kind", "processing"),
        ],
    )
    assert response.status_code == 400
    html = response.text
    key_error = re.search(r'<p class="field-error" id="key-error">([^<]+)</p>', html)
    assert key_error and "lower-case letters" in key_error.group(1)
    assert "[a-z0-9" not in key_error.group(1), "no trace of the schema's pattern is left in the message"
    assert re.search(r'id="name-error">This is required', html)
    assert re.search(r'id="established_in-error">“USA” is not a territory code we know', html)
    assert re.search(r'id="loc-1-territory-error">“XX” is not a territory code', html)
    assert 'aria-describedby="loc-1-territory-error"' in html
    assert 'value="Bad Key"' in html, "what the user typed stays in the form"


async def test_a_lawyer_reads_what_to_do_rather_than_schema_words(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    party = await post_form(
        ui_client,
        "/ui/parties/new",
        "/ui/parties/new",
        [
            ("key", "brittan"),
            ("name", "Brittan Ltd"),
            ("role", "processor"),
            ("category", "other"),
            ("established_in", "UK"),
            ("loc_territory", "SE"),
            ("loc_kind", ""),
            ("sub_party", ""),
            ("sub_approved_on", "2025-01-01"),
            ("sub_objection_deadline", ""),
        ],
    )
    assert party.status_code == 400
    html = party.text
    uk = re.search(r'id="established_in-error">([^<]+)</p>', html)
    assert uk and uk.group(1) == "“UK” is not a territory code we know. For the United Kingdom use GB."
    assert re.search(r'id="loc-0-kind-error">Choose what happens there', html)
    assert re.search(r'id="sub-0-party-error">Choose the sub-processor', html)
    agreement = await post_form(
        ui_client,
        "/ui/agreements/new",
        "/ui/agreements/new",
        [("key", "x-dpa"), ("party", ""), ("kind", "dpa"), ("effective_from", "2026-01-01"), ("owner_email", "")],
    )
    assert agreement.status_code == 400
    html = agreement.text
    assert re.search(r'id="party-error">Choose the party the agreement is with', html)
    assert re.search(r'id="data_categories-error">Choose at least one data category.</p>', html)
    assert re.search(r'id="purposes-error">Choose at least one purpose.</p>', html)
    assert "after validation" not in html and "String should" not in html and "Input should" not in html


async def test_one_save_reports_field_errors_and_date_order_together(ui_client: Any) -> None:
    """The schema checks date order only once every field is valid; the form reports all problems at once."""
    await as_user(ui_client, "lena@offix.example")
    response = await post_form(
        ui_client,
        "/ui/agreements/new",
        "/ui/agreements/new",
        [
            ("key", "nordfrakt-dpa-2030"),
            ("party", "nordfrakt"),
            ("kind", "dpa"),
            ("effective_from", "2030-01-01"),
            ("expires_on", "2029-01-01"),
            ("renewal", "auto"),
            ("owner_email", "not-an-address"),
            ("purposes", "essential.service.operations"),
        ],
    )
    assert response.status_code == 400
    html = response.text
    assert re.search(r'id="owner_email-error">“not-an-address” is not an e-mail address', html)
    assert re.search(r'id="data_categories-error">Choose at least one data category', html)
    assert re.search(r'id="expires_on-error">The expiry date cannot be before', html)
    assert re.search(r'id="notice_days-error">An agreement that renews automatically needs a notice period', html)
    assert re.search(r'value="essential.service.operations" checked', html), "what was ticked stays ticked"


async def test_agreement_date_order_error_sits_on_the_expiry_field(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    response = await post_form(
        ui_client,
        "/ui/agreements/new",
        "/ui/agreements/new",
        [
            ("key", "nordfrakt-dpa-2030"),
            ("party", "nordfrakt"),
            ("kind", "dpa"),
            ("effective_from", "2030-01-01"),
            ("expires_on", "2029-01-01"),
            ("renewal", "fixed"),
            ("owner_email", "legal@offix.example"),
            ("data_categories", "user.name"),
            ("purposes", "essential.service.operations"),
        ],
    )
    assert response.status_code == 400
    assert re.search(r'id="expires_on-error">The expiry date cannot be before', response.text)


async def test_a_legal_user_creates_a_party_and_an_agreement(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    created = await post_form(
        ui_client,
        "/ui/parties/new",
        "/ui/parties/new",
        [
            ("key", "snabbpost"),
            ("name", "Snabbpost AB"),
            ("role", "processor"),
            ("category", "transport"),
            ("established_in", "se"),
            ("active", "on"),
            ("loc_territory", "SE"),
            ("loc_kind", "storage"),
            ("loc_territory", ""),
            ("loc_kind", ""),
            ("sub_party", "molnhall"),
            ("sub_approved_on", "2025-01-10"),
            ("sub_objection_deadline", ""),
        ],
    )
    assert created.status_code == 303, created.text
    assert created.headers["location"].startswith("/ui/parties/snabbpost")
    agreement = await post_form(
        ui_client,
        "/ui/agreements/new?party=snabbpost",
        "/ui/agreements/new",
        [
            ("key", "snabbpost-dpa-2026"),
            ("party", "snabbpost"),
            ("kind", "dpa"),
            ("signed_on", "2026-01-01"),
            ("effective_from", "2026-01-01"),
            ("renewal", "fixed"),
            ("owner_email", "legal@offix.example"),
            ("data_categories", "user.name"),
            ("purposes", "essential.service.operations"),
            ("data_subjects", "customer"),
            *[("clauses", c) for c in ALL_CLAUSES],
        ],
    )
    assert agreement.status_code == 303, agreement.text
    page = await ui_client.get("/ui/parties/snabbpost")
    assert "Snabbpost AB" in page.text and "snabbpost-dpa-2026" in page.text and "Molnhall" in page.text
    # The history's actor cell, not the signed-in header that names lena on every page.
    assert "<td>lena@offix.example</td><td>created</td>" in page.text, "the history names who made the change"


async def test_the_agreement_form_shows_what_is_ticked_and_the_page_names_the_taxonomy(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    form = (await ui_client.get("/ui/agreements/nordfrakt-dpa-2024/edit")).text
    for key in ("user.name", "user.contact.address", "user.contact.phone_number"):
        assert re.search(rf'name="data_categories" value="{re.escape(key)}" checked', form), key
    chosen = re.search(r'id="data_categories-chosen"[^>]*>(.*?)</p>', form, re.S)
    assert chosen and "user.contact.phone_number" in chosen.group(1)
    assert "special category" in form, "Art. 9 categories are marked in the picker"
    page = (await ui_client.get("/ui/agreements/nordfrakt-dpa-2024")).text
    # Offix's own word for the key (the seed's vocabulary) comes first, the key after it.
    assert "Address <code>user.contact.address</code>" in page and "fixed term" in page
    assert 'href="https://docs.offix.example/agreements/nordfrakt-dpa-2024.pdf"' in page


async def test_history_reads_as_words_on_the_controllers_clock(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    edit = await post_form(
        ui_client,
        "/ui/parties/fjordvault/edit",
        "/ui/parties/fjordvault/edit",
        [
            ("version", "1"),
            ("name", "Fjordvault Backup AS"),
            ("role", "sub_processor"),
            ("category", "it_services"),
            ("established_in", "NO"),
            ("active", "on"),
            ("loc_territory", "NO"),
            ("loc_kind", "backup"),
            ("loc_territory", "SE"),
            ("loc_kind", "support_access"),
        ],
    )
    assert edit.status_code == 303, edit.text
    page = (await ui_client.get("/ui/parties/fjordvault")).text
    history = page[page.index('id="h-history"') :]
    assert "<dt>Locations</dt>" in history and "SE (support access)" in history
    assert '"territory"' not in history, "no JSON in the history"
    assert re.search(r'<td class="when">\d{4}-\d\d-\d\d \d\d:\d\d (CET|CEST)</td>', history)


async def test_an_edit_that_conflicts_says_so_and_keeps_the_users_values(ui_client: Any, writer_headers: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    form_page = await ui_client.get("/ui/agreements/nordfrakt-dpa-2024/edit")
    token = csrf_token(form_page.text)
    version = re.search(r'name="version" value="(\d+)"', form_page.text)
    assert version
    current = (await ui_client.get("/api/agreements/nordfrakt-dpa-2024", headers=writer_headers)).json()
    someone_else = {k: v for k, v in current.items() if k not in {"key", "created_at", "updated_at"}}
    someone_else["owner_email"] = "someone.else@offix.example"
    put = await ui_client.put("/api/agreements/nordfrakt-dpa-2024", json=someone_else, headers=writer_headers)
    assert put.status_code == 200, put.text
    mine = [
        ("version", version.group(1)),
        ("party", "nordfrakt"),
        ("kind", "dpa"),
        ("signed_on", str(current["signed_on"])),
        ("effective_from", str(current["effective_from"])),
        ("expires_on", "2027-06-30"),
        ("renewal", current["renewal"]),
        ("owner_email", "mine@offix.example"),
        *[("data_categories", c) for c in current["data_categories"]],
        *[("purposes", c) for c in current["purposes"]],
        *[("data_subjects", c) for c in current["data_subjects"]],
        *[("clauses", c) for c in current["clauses"]],
        ("_csrf_token", token),
    ]
    response = await ui_client.post(
        "/ui/agreements/nordfrakt-dpa-2024/edit", data=as_form(mine), follow_redirects=False
    )
    assert response.status_code == 409
    html = response.text
    assert "saved this record while you were editing" in html and "writer-test" in html
    assert 'value="mine@offix.example"' in html and 'value="2027-06-30"' in html
    assert "someone.else@offix.example" in html, "the conflict shows what the other person saved"
    new_version = re.search(r'name="version" value="(\d+)"', html)
    assert new_version and int(new_version.group(1)) == int(version.group(1)) + 1
    again = [(k, new_version.group(1) if k == "version" else v) for k, v in mine]
    saved = await ui_client.post("/ui/agreements/nordfrakt-dpa-2024/edit", data=as_form(again), follow_redirects=False)
    assert saved.status_code == 303
    stored = (await ui_client.get("/api/agreements/nordfrakt-dpa-2024", headers=writer_headers)).json()
    assert stored["owner_email"] == "mine@offix.example" and stored["expires_on"] == "2027-06-30"


async def test_try_a_share_shows_every_reason_of_a_denial(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    response = await post_form(
        ui_client,
        "/ui/guard",
        "/ui/guard",
        [
            ("recipient", "kvarnberg"),  # its DPA is open-ended: in force whatever day the suite runs
            ("purpose", "marketing.advertising"),
            ("data_categories", "user.name"),
            ("data_categories", "user.health_and_medical"),
            ("destination", "US"),
            ("data_subject", "customer"),
        ],
    )
    assert response.status_code == 200
    html = response.text
    assert "Denied" in html
    for code in ("PURPOSE_NOT_COVERED", "SPECIAL_CATEGORY", "DESTINATION_OUTSIDE_EEA"):
        assert code in html
    log = await ui_client.get("/ui/decisions?recipient=kvarnberg&outcome=denied")
    assert "1 decision<" in log.text
    assert "<td>olle@offix.example</td>" in log.text  # the caller column, not the signed-in header


async def test_a_share_holding_a_nul_character_is_a_form_error_and_is_not_logged(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    response = await post_form(
        ui_client,
        "/ui/guard",
        "/ui/guard",
        [
            ("recipient", "kvarn\x00berg"),
            ("purpose", "essential.service"),
            ("data_categories", "user.name"),
            ("data_subject", "customer"),
        ],
    )
    assert response.status_code == 400
    assert "NUL character" in response.text
    log = await ui_client.get("/ui/decisions")
    assert "0 decisions" in log.text


async def test_a_decision_log_page_far_past_the_end_is_empty_not_an_error(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    await post_form(
        ui_client,
        "/ui/guard",
        "/ui/guard",
        [
            ("recipient", "kvarnberg"),
            ("purpose", "essential.service"),
            ("data_categories", "user.name"),
            ("data_subject", "customer"),
        ],
    )
    response = await ui_client.get("/ui/decisions?offset=99999999999999999999")
    assert response.status_code == 200, response.text
    assert "1 decision" in response.text
    assert "No decisions match these filters." in response.text


async def test_the_import_form_reports_every_problem_with_its_path(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    document = (
        "controller: {name: Offix AB, established_in: SE}\n"
        "parties:\n  - {key: a, name: A, role: processor, category: other, established_in: UK}\n"
    )
    response = await post_form(ui_client, "/ui/registry", "/ui/registry/import", {"text": document, "confirm": "on"})
    assert response.status_code == 400
    assert "parties[0].established_in" in response.text and "Nothing was imported" in response.text
    export = await ui_client.get("/ui/registry/export?format=yaml")
    assert export.status_code == 200 and "nordfrakt" in export.text


async def test_an_admin_creates_a_user_who_can_then_log_in(ui_client: Any) -> None:
    await as_user(ui_client, "ada@offix.example")
    created = await post_form(
        ui_client,
        "/ui/admin",
        "/ui/admin/users",
        {"email": "nils@offix.example", "role": "ops", "password": "short"},
    )
    assert created.status_code == 400 and "at least 12 characters" in created.text
    created = await post_form(
        ui_client,
        "/ui/admin",
        "/ui/admin/users",
        {"email": "nils@offix.example", "role": "ops", "password": PASSWORD},
    )
    assert created.status_code == 303
    key = await post_form(ui_client, "/ui/admin", "/ui/admin/api-keys", [("name", "crm"), ("scopes", "guard:check")])
    assert key.status_code == 200 and "ofx_" in key.text
    await ui_client.post("/ui/logout", data={"_csrf_token": csrf_token(key.text)})
    assert (await log_in(ui_client, "nils@offix.example")).status_code == 303


PAGES = [
    "/ui/",
    "/ui/parties",
    "/ui/parties?status=lapsed&eea=outside",
    "/ui/parties/nordfrakt",
    "/ui/parties/nordfrakt/edit",
    "/ui/parties/new",
    "/ui/agreements",
    "/ui/agreements/nordfrakt-dpa-2024",
    "/ui/agreements/nordfrakt-dpa-2024/edit",
    "/ui/agreements/new",
    "/ui/guard",
    "/ui/decisions",
    "/ui/renewals",
    "/ui/registry",
    "/ui/admin",
]
# What a page loads or sends elsewhere; a plain link (<a href>) to an agreement's document is not loaded.
OFF_HOST = re.compile(r'(?:\bsrc|\baction|<link\b[^>]*\bhref)\s*=\s*"(?:https?:)?//', re.IGNORECASE)


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_renders_for_a_signed_in_user_and_loads_nothing_from_elsewhere(
    ui_client: Any, path: str
) -> None:
    await as_user(ui_client, "ada@offix.example")
    response = await ui_client.get(path)
    assert response.status_code == 200, response.text
    assert not OFF_HOST.search(response.text), OFF_HOST.search(response.text)
    for label_for in re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', response.text):
        assert f'for="{label_for}"' in response.text, f"input {label_for} on {path} has no label"


async def test_the_stylesheet_and_script_are_served_by_the_app(ui_client: Any) -> None:
    css = await ui_client.get("/ui/static/registry.css")
    js = await ui_client.get("/ui/static/registry.js")
    assert css.status_code == 200 and "--accent" in css.text
    assert js.status_code == 200


async def test_an_agreement_the_guard_refuses_never_shows_as_in_force(ui_client, writer_headers):
    """One truth: a dpa in force by its dates but missing clause (h) is shown as refused, as the guard treats it."""
    current = (await ui_client.get("/api/agreements/kvarnberg-dpa-2023", headers=writer_headers)).json()
    edited = {k: v for k, v in current.items() if k not in {"created_at", "updated_at"}}
    edited["clauses"] = [c for c in current["clauses"] if c != "audits"]
    put = await ui_client.put("/api/agreements/kvarnberg-dpa-2023", json=edited, headers=writer_headers)
    assert put.status_code == 200, put.text
    await as_user(ui_client, "olle@offix.example")
    html = (await ui_client.get("/ui/agreements/kvarnberg-dpa-2023")).text
    assert "the guard refuses it" in html
    assert '<span class="badge ok">in force</span>' not in html
    listed = (await ui_client.get("/ui/agreements?state=refused")).text
    assert "kvarnberg-dpa-2023" in listed
    assert "kvarnberg-dpa-2023" not in (await ui_client.get("/ui/agreements?state=in_force")).text


async def test_the_agreement_form_warns_before_saving_what_the_guard_would_refuse(ui_client, writer_headers):
    await as_user(ui_client, "lena@offix.example")
    form_page = await ui_client.get("/ui/agreements/kvarnberg-dpa-2023/edit")
    version = re.search(r'name="version" value="(\d+)"', form_page.text)
    assert version
    current = (await ui_client.get("/api/agreements/kvarnberg-dpa-2023", headers=writer_headers)).json()
    fields = [
        ("version", version.group(1)),
        ("party", "kvarnberg"),
        ("kind", "dpa"),
        ("signed_on", str(current["signed_on"])),
        ("effective_from", str(current["effective_from"])),
        ("renewal", current["renewal"]),
        ("notice_days", str(current["notice_days"])),
        ("owner_email", current["owner_email"]),
        ("document_uri", current["document"]["uri"]),
        ("document_sha256", current["document"]["sha256"]),
        *[("data_categories", c) for c in current["data_categories"]],
        *[("purposes", c) for c in current["purposes"]],
        *[("data_subjects", c) for c in current["data_subjects"]],
        *[("clauses", c) for c in current["clauses"] if c != "audits"],
        ("_csrf_token", csrf_token(form_page.text)),
    ]
    warned = await ui_client.post(
        "/ui/agreements/kvarnberg-dpa-2023/edit", data=as_form(fields), follow_redirects=False
    )
    assert warned.status_code == 200
    assert "the guard will refuse every share" in warned.text.lower() and "(h) audits" in warned.text
    unchanged = (await ui_client.get("/api/agreements/kvarnberg-dpa-2023", headers=writer_headers)).json()
    assert "audits" in unchanged["clauses"] and unchanged["version"] == current["version"]
    confirmed = await ui_client.post(
        "/ui/agreements/kvarnberg-dpa-2023/edit",
        data=as_form([*fields, ("save_anyway", "on")]),
        follow_redirects=False,
    )
    assert confirmed.status_code == 303, confirmed.text
    saved = (await ui_client.get("/api/agreements/kvarnberg-dpa-2023", headers=writer_headers)).json()
    assert "audits" not in saved["clauses"]
