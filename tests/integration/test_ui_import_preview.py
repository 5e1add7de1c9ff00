"""The UI's import shows its change set before anything changes, and imports only what the person confirmed."""

import html
import re
from typing import Any

import yaml

from tests.ui_session import as_user, csrf_token, post_form

PREVIEW_TOKEN = re.compile(r'name="preview" value="([^"]+)"')
HIDDEN_DOCUMENT = re.compile(r'<textarea name="text" hidden aria-hidden="true">\n(.*?)</textarea>', re.S)


async def seed_with_one_party_removed_and_one_renamed(client: Any) -> str:
    exported = await client.get("/ui/registry/export?format=yaml")
    document = yaml.safe_load(exported.text)
    document["parties"] = [p for p in document["parties"] if p["key"] != "uppbordsverket"]
    for party in document["parties"]:
        if party["key"] == "nordfrakt":
            party["name"] = "Nordfrakt Transport AB"
    return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


async def preview(client: Any, document: str) -> Any:
    return await post_form(client, "/ui/registry", "/ui/registry/import", {"text": document})


async def confirm(client: Any, previewed: Any, **overrides: str) -> Any:
    token = PREVIEW_TOKEN.search(previewed.text)
    hidden = HIDDEN_DOCUMENT.search(previewed.text)
    assert token and hidden, "the preview page has no confirm form"
    # What a browser sends back: the hidden document with its lines as CR LF.
    form = {
        "preview": token.group(1),
        "text": html.unescape(hidden.group(1)).replace("\n", "\r\n"),
        "confirm": "on",
        "_csrf_token": csrf_token(previewed.text),
        **overrides,
    }
    return await client.post("/ui/registry/import", data=form, follow_redirects=False)


async def party_names(client: Any) -> dict[str, str]:
    exported = yaml.safe_load((await client.get("/ui/registry/export?format=yaml")).text)
    return {p["key"]: p["name"] for p in exported["parties"]}


async def test_an_import_is_first_a_preview_of_its_change_set_and_writes_nothing(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    before = await party_names(ui_client)
    previewed = await preview(ui_client, await seed_with_one_party_removed_and_one_renamed(ui_client))
    assert previewed.status_code == 200, previewed.text
    assert "Nothing has been changed yet" in previewed.text
    assert re.search(r"removed</strong> <code>uppbordsverket</code>", previewed.text)
    assert re.search(r"updated <code>nordfrakt</code>: name", previewed.text)
    assert "0 created, 1 updated, <strong>1 removed</strong>" in previewed.text
    assert await party_names(ui_client) == before


async def test_confirming_a_preview_imports_exactly_that_change_set(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    previewed = await preview(ui_client, await seed_with_one_party_removed_and_one_renamed(ui_client))
    imported = await confirm(ui_client, previewed)
    assert imported.status_code == 200, imported.text
    assert "Imported: 0 created, 1 updated, 1 deleted" in imported.text
    names = await party_names(ui_client)
    assert "uppbordsverket" not in names and names["nordfrakt"] == "Nordfrakt Transport AB"


async def test_a_preview_not_ticked_as_understood_imports_nothing(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    before = await party_names(ui_client)
    previewed = await preview(ui_client, await seed_with_one_party_removed_and_one_renamed(ui_client))
    answer = await confirm(ui_client, previewed, confirm="")
    assert answer.status_code == 200 and "Tick the box to confirm" in answer.text
    assert await party_names(ui_client) == before


async def test_a_document_edited_after_its_preview_is_previewed_again_not_imported(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    before = await party_names(ui_client)
    previewed = await preview(ui_client, await seed_with_one_party_removed_and_one_renamed(ui_client))
    hidden = HIDDEN_DOCUMENT.search(previewed.text)
    assert hidden
    edited = html.unescape(hidden.group(1)).replace("Nordfrakt Transport AB", "Someone Else AB")
    answer = await confirm(ui_client, previewed, text=edited)
    assert answer.status_code == 200 and "Nothing has been changed yet" in answer.text
    assert await party_names(ui_client) == before


async def test_a_registry_changed_between_preview_and_confirm_is_refused_with_the_new_change_set(
    ui_client: Any,
) -> None:
    await as_user(ui_client, "lena@offix.example")
    document = await seed_with_one_party_removed_and_one_renamed(ui_client)
    first = await preview(ui_client, document)
    # Someone else imports in between: rename another party.
    other = yaml.safe_load(document)
    for party in other["parties"]:
        if party["key"] == "kvarnberg":
            party["name"] = "Kvarnberg Renamed AB"
    second = await preview(ui_client, yaml.safe_dump(other, sort_keys=False, allow_unicode=True))
    assert (await confirm(ui_client, second)).status_code == 200
    renamed = await party_names(ui_client)
    assert renamed["kvarnberg"] == "Kvarnberg Renamed AB"

    stale = await confirm(ui_client, first)
    assert stale.status_code == 409, stale.text
    assert "The registry changed after your preview" in stale.text
    # The first document would now also undo the other rename: the new change set says so.
    assert re.search(r"updated <code>kvarnberg</code>: name", stale.text)
    assert await party_names(ui_client) == renamed
