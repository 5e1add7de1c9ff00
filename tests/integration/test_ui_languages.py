"""The UI's language and the controller's own words, over HTTP against the real PostgreSQL."""

from typing import Any

from tests.conftest import SEED_ALLOWED_SHARE
from tests.ui_session import as_user, csrf_token


async def test_the_browser_language_picks_the_page_language_and_the_switch_overrides_it(ui_client: Any) -> None:
    login = await ui_client.get("/ui/login", headers={"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"})
    assert '<html lang="sv">' in login.text and "Logga in" in login.text
    english = await ui_client.get("/ui/login", headers={"Accept-Language": "en-GB"})
    assert '<html lang="en">' in english.text
    # Tests run with REGISTRY_DEFAULT_LANGUAGE=en: no preference at all is the default.
    assert '<html lang="en">' in (await ui_client.get("/ui/login")).text

    switched = await ui_client.post(
        "/ui/language",
        data={"language": "sv", "next": "/ui/login", "_csrf_token": csrf_token(english.text)},
        follow_redirects=False,
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/ui/login"
    after = await ui_client.get("/ui/login", headers={"Accept-Language": "en-GB"})
    assert '<html lang="sv">' in after.text, "the switch's cookie outranks Accept-Language"


async def test_the_switch_refuses_to_redirect_off_site_and_ignores_an_unknown_language(ui_client: Any) -> None:
    page = await ui_client.get("/ui/login")
    response = await ui_client.post(
        "/ui/language",
        data={"language": "de", "next": "https://evil.example/", "_csrf_token": csrf_token(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/ui/"
    assert "registry_lang" not in response.headers.get("set-cookie", "")


async def test_form_errors_are_in_swedish_on_a_swedish_page(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    headers = {"Accept-Language": "sv"}
    form = await ui_client.get("/ui/parties/new", headers=headers)
    response = await ui_client.post(
        "/ui/parties/new",
        headers=headers,
        data={
            "key": "ny-part",
            "name": "",
            "role": "processor",
            "category": "other",
            "established_in": "UK",
            "_csrf_token": csrf_token(form.text),
        },
    )
    assert response.status_code == 400
    assert "Formuläret har 2 problem." in response.text
    assert "”UK” är ingen landskod vi känner till. För Storbritannien, använd GB." in response.text
    assert "Detta är obligatoriskt." in response.text


async def test_the_dashboard_counts_every_denial_today_and_groups_them(
    ui_client: Any, guard_headers: dict[str, str]
) -> None:
    # 60 denials of one kind (more than a page of the log) and 3 of another.
    unpublished = {**SEED_ALLOWED_SHARE, "purpose": "marketing.advertising"}
    unknown = {**SEED_ALLOWED_SHARE, "recipient": "no-such-party"}
    batch = await ui_client.post(
        "/api/guard/check-batch", json=[unpublished] * 60 + [unknown] * 3, headers=guard_headers
    )
    assert batch.status_code == 200, batch.text
    assert not any(a["allowed"] for a in batch.json())
    await as_user(ui_client, "lena@offix.example")
    page = (await ui_client.get("/ui/", headers={"Accept-Language": "en"})).text
    assert 'Shares denied today <span class="count">63</span>' in page
    assert '<td class="num">60</td>' in page and '<td class="num">3</td>' in page
    assert "reason=PURPOSE_NOT_PUBLISHED" in page
    log = await ui_client.get("/ui/decisions?outcome=denied&reason=PURPOSE_NOT_PUBLISHED")
    assert "60 decisions" in log.text


async def test_the_controller_vocabulary_survives_export_and_import_and_names_unknown_keys(
    ui_client: Any, admin_headers: dict[str, str]
) -> None:
    exported = (await ui_client.get("/api/registry", headers=admin_headers)).json()
    vocabulary = exported["controller"]["vocabulary"]
    assert vocabulary["essential.service"]["sv"].startswith("Leverans av våra varor")
    assert (await ui_client.put("/api/registry", json=exported, headers=admin_headers)).status_code == 200
    exported["controller"]["vocabulary"] = {"not.a.key": {"sv": "Något"}}
    refused = await ui_client.put("/api/registry", json=exported, headers=admin_headers)
    assert refused.status_code == 400
    assert "controller.vocabulary" in refused.text and "not.a.key" in refused.text
